//! ControllerRevisions: the templates DaemonSets and StatefulSets rolled
//! out, which `kubectl rollout history|undo` read. (apps/v1)

use k8s_openapi::api::apps;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "apps",
        version: "v1",
        plural: "controllerrevisions",
        singular: "controllerrevision",
        kind: "ControllerRevision",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::CONTROLLER_REVISION),
    openapi: openapi::<apps::v1::ControllerRevision>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
