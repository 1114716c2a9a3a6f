//! NodeMetrics (metrics.k8s.io/v1beta1): what a node uses, read from the
//! resource metrics the API server scrapes (`apiserver::resource_metrics`),
//! never stored.

use super::super::Resource;
use super::{Kind, RESOURCE_METRICS};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "metrics.k8s.io",
        version: "v1beta1",
        plural: "nodes",
        singular: "nodemetrics",
        kind: "NodeMetrics",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: &["get", "list"],
        custom: false,
        selectable_fields: &[],
    },
    ..RESOURCE_METRICS
};
