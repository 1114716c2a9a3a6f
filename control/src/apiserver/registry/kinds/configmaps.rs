//! ConfigMaps. (v1)

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "configmaps",
        singular: "configmap",
        kind: "ConfigMap",
        namespaced: true,
        short_names: &["cm"],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::CONFIG_MAP),
    openapi: openapi::<core::v1::ConfigMap>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
