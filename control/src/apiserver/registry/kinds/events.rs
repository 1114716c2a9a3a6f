//! Events (core/v1). (v1)

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "events",
        singular: "event",
        kind: "Event",
        namespaced: true,
        short_names: &["ev"],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[
            "involvedObject.*",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
    },
    admission: Admission::Typed(object::EVENT),
    openapi: openapi::<core::v1::Event>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
