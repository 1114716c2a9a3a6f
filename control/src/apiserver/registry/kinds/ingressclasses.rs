//! IngressClasses. (networking.k8s.io/v1)

use k8s_openapi::api::networking;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingressclasses",
        singular: "ingressclass",
        kind: "IngressClass",
        namespaced: false,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::INGRESS_CLASS),
    openapi: openapi::<networking::v1::IngressClass>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
