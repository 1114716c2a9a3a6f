//! LimitRanges (v1): a namespace's defaults and bounds for containers'
//! and pods' requests and limits, applied by admission
//! (`apiserver::admission::limitranger`).

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "limitranges",
        singular: "limitrange",
        kind: "LimitRange",
        namespaced: true,
        short_names: &["limits"],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::LIMIT_RANGE),
    openapi: openapi::<core::v1::LimitRange>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
