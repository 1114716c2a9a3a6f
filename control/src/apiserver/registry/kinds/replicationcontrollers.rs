//! ReplicationControllers, the ReplicaSet's predecessor with an
//! equality-only selector. (v1)

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, SCALE, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "replicationcontrollers",
        singular: "replicationcontroller",
        kind: "ReplicationController",
        namespaced: true,
        short_names: &["rc"],
        categories: &["all"],
        subresources: &[STATUS, SCALE],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &["status.replicas"],
    },
    admission: Admission::Typed(object::REPLICATION_CONTROLLER),
    openapi: openapi::<core::v1::ReplicationController>,
    pod_spec: "spec.template.spec",
    generation: true,
    on_create: OnCreate::EmptyStatus,
};
