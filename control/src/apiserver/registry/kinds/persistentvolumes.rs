//! PersistentVolumes: storage in the cluster, bound one to one to a claim.
//! (v1, cluster-scoped)

use serde_json::json;

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "persistentvolumes",
        singular: "persistentvolume",
        kind: "PersistentVolume",
        namespaced: false,
        short_names: &["pv"],
        categories: &[],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::PERSISTENT_VOLUME),
    openapi: openapi::<core::v1::PersistentVolume>,
    pod_spec: "",
    generation: false,
    // The volume controller makes it Available.
    on_create: OnCreate::Status(|| json!({"phase": "Pending"})),
};
