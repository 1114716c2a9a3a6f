//! NetworkPolicies: which traffic the pods they select may take, enforced
//! by every node's service proxy. (networking.k8s.io/v1)

use k8s_openapi::api::networking;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "networking.k8s.io",
        version: "v1",
        plural: "networkpolicies",
        singular: "networkpolicy",
        kind: "NetworkPolicy",
        namespaced: true,
        short_names: &["netpol"],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::NETWORK_POLICY),
    openapi: openapi::<networking::v1::NetworkPolicy>,
    pod_spec: "",
    generation: true,
    on_create: OnCreate::AsGiven,
};
