//! HorizontalPodAutoscalers as autoscaling/v1 (what `kubectl autoscale`
//! writes): served from the v2 objects through `registry::conversion`.

use k8s_openapi::api::autoscaling;

use super::super::Resource;
use super::{horizontalpodautoscalers, openapi, Kind};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        version: "v1",
        ..horizontalpodautoscalers::KIND.resource
    },
    openapi: openapi::<autoscaling::v1::HorizontalPodAutoscaler>,
    ..horizontalpodautoscalers::KIND
};
