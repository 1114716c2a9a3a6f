//! Leases (node heartbeats, leader election). (coordination.k8s.io/v1)

use k8s_openapi::api::coordination;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "coordination.k8s.io",
        version: "v1",
        plural: "leases",
        singular: "lease",
        kind: "Lease",
        namespaced: true,
        short_names: &[],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::LEASE),
    openapi: openapi::<coordination::v1::Lease>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
