//! Nodes. (v1)

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate, PROXY};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "nodes",
        singular: "node",
        kind: "Node",
        namespaced: false,
        short_names: &["no"],
        categories: &[],
        subresources: &[STATUS, PROXY],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &["spec.unschedulable"],
    },
    admission: Admission::Typed(object::NODE),
    openapi: openapi::<core::v1::Node>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
