//! Ingresses. (networking.k8s.io/v1)

use k8s_openapi::api::networking;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "networking.k8s.io",
        version: "v1",
        plural: "ingresses",
        singular: "ingress",
        kind: "Ingress",
        namespaced: true,
        short_names: &["ing"],
        categories: &[],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::INGRESS),
    openapi: openapi::<networking::v1::Ingress>,
    pod_spec: "",
    generation: true,
    on_create: OnCreate::AsGiven,
};
