//! PodDisruptionBudgets (policy/v1): how many of a set of pods voluntary
//! disruptions (evictions, `kubectl drain`) must leave running.

use k8s_openapi::api::policy;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "policy",
        version: "v1",
        plural: "poddisruptionbudgets",
        singular: "poddisruptionbudget",
        kind: "PodDisruptionBudget",
        namespaced: true,
        short_names: &["pdb"],
        categories: &[],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::POD_DISRUPTION_BUDGET),
    openapi: openapi::<policy::v1::PodDisruptionBudget>,
    pod_spec: "",
    generation: true,
    on_create: OnCreate::EmptyStatus,
};
