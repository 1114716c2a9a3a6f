//! ComponentStatuses (v1, deprecated since 1.19 and still served, `kubectl
//! get cs`): worked out when read (`apiserver::componentstatus`), never
//! stored.

use k8s_openapi::api::core;

use super::super::Resource;
use super::{openapi, Kind, RESOURCE_METRICS};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "componentstatuses",
        singular: "componentstatus",
        kind: "ComponentStatus",
        namespaced: false,
        short_names: &["cs"],
        categories: &[],
        subresources: &[],
        verbs: &["get", "list"],
        custom: false,
        selectable_fields: &[],
    },
    openapi: openapi::<core::v1::ComponentStatus>,
    ..RESOURCE_METRICS
};
