//! ReplicaSets. (apps/v1)

use k8s_openapi::api::apps;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, SCALE, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "apps",
        version: "v1",
        plural: "replicasets",
        singular: "replicaset",
        kind: "ReplicaSet",
        namespaced: true,
        short_names: &["rs"],
        categories: &["all"],
        subresources: &[STATUS, SCALE],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &["status.replicas"],
    },
    admission: Admission::Typed(object::REPLICA_SET),
    openapi: openapi::<apps::v1::ReplicaSet>,
    pod_spec: "spec.template.spec",
    generation: true,
    on_create: OnCreate::EmptyStatus,
};
