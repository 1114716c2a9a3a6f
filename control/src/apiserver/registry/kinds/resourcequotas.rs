//! ResourceQuotas (v1): the limits of what a namespace may hold, charged
//! by admission (`apiserver::admission::resourcequota`) and recounted by
//! the resource quota controller.

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "resourcequotas",
        singular: "resourcequota",
        kind: "ResourceQuota",
        namespaced: true,
        short_names: &["quota"],
        categories: &[],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::RESOURCE_QUOTA),
    openapi: openapi::<core::v1::ResourceQuota>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::EmptyStatus,
};
