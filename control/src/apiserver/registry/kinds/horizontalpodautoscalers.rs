//! HorizontalPodAutoscalers (autoscaling/v2, the storage version).

use k8s_openapi::api::autoscaling;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "autoscaling",
        version: "v2",
        plural: "horizontalpodautoscalers",
        singular: "horizontalpodautoscaler",
        kind: "HorizontalPodAutoscaler",
        namespaced: true,
        short_names: &["hpa"],
        categories: &["all"],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::HORIZONTAL_POD_AUTOSCALER),
    openapi: openapi::<autoscaling::v2::HorizontalPodAutoscaler>,
    pod_spec: "",
    generation: true,
    on_create: OnCreate::EmptyStatus,
};
