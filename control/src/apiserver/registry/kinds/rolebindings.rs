//! RoleBindings. (rbac.authorization.k8s.io/v1)

use k8s_openapi::api::rbac;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "rbac.authorization.k8s.io",
        version: "v1",
        plural: "rolebindings",
        singular: "rolebinding",
        kind: "RoleBinding",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::ROLE_BINDING),
    openapi: openapi::<rbac::v1::RoleBinding>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
