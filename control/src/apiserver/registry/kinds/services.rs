//! Services (their addresses are allocated in `allocator`). (v1)

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "services",
        singular: "service",
        kind: "Service",
        namespaced: true,
        short_names: &["svc"],
        categories: &["all"],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &["spec.clusterIP", "spec.type"],
    },
    admission: Admission::Typed(object::SERVICE),
    openapi: openapi::<core::v1::Service>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
