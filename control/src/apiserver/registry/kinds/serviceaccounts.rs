//! ServiceAccounts, with the `token` subresource (TokenRequest). (v1)

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate, TOKEN};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "serviceaccounts",
        singular: "serviceaccount",
        kind: "ServiceAccount",
        namespaced: true,
        short_names: &["sa"],
        categories: &[],
        subresources: &[TOKEN],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::SERVICE_ACCOUNT),
    openapi: openapi::<core::v1::ServiceAccount>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
