//! Endpoints, the legacy form of EndpointSlices. (v1)

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "endpoints",
        singular: "endpoints",
        kind: "Endpoints",
        namespaced: true,
        short_names: &["ep"],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::ENDPOINTS),
    openapi: openapi::<core::v1::Endpoints>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
