//! Namespaces: the scope of names, with the `finalize` subresource the namespace lifecycle uses. (v1)

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate, FINALIZE};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "namespaces",
        singular: "namespace",
        kind: "Namespace",
        namespaced: false,
        short_names: &["ns"],
        categories: &[],
        subresources: &[STATUS, FINALIZE],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &["status.phase"],
    },
    admission: Admission::Typed(object::NAMESPACE),
    openapi: openapi::<core::v1::Namespace>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::Status(active),
};

/// A namespace is created `Active`.
fn active() -> serde_json::Value {
    serde_json::json!({"phase": "Active"})
}
