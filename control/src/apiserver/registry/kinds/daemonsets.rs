//! DaemonSets. (apps/v1)

use k8s_openapi::api::apps;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "apps",
        version: "v1",
        plural: "daemonsets",
        singular: "daemonset",
        kind: "DaemonSet",
        namespaced: true,
        short_names: &["ds"],
        categories: &["all"],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::DAEMON_SET),
    openapi: openapi::<apps::v1::DaemonSet>,
    pod_spec: "spec.template.spec",
    generation: true,
    on_create: OnCreate::EmptyStatus,
};
