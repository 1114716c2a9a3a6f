//! StatefulSets. (apps/v1)

use k8s_openapi::api::apps;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, SCALE, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "apps",
        version: "v1",
        plural: "statefulsets",
        singular: "statefulset",
        kind: "StatefulSet",
        namespaced: true,
        short_names: &["sts"],
        categories: &["all"],
        subresources: &[STATUS, SCALE],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::STATEFUL_SET),
    openapi: openapi::<apps::v1::StatefulSet>,
    pod_spec: "spec.template.spec",
    generation: true,
    on_create: OnCreate::EmptyStatus,
};
