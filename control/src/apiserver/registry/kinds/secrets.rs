//! Secrets. (v1)

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "secrets",
        singular: "secret",
        kind: "Secret",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &["type"],
    },
    admission: Admission::Typed(object::SECRET),
    openapi: openapi::<core::v1::Secret>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
