//! StorageClasses: how claims of a class get their volumes. (storage.k8s.io/v1,
//! cluster-scoped)

use k8s_openapi::api::storage;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS};
use super::{openapi, Admission, Kind, OnCreate};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "storage.k8s.io",
        version: "v1",
        plural: "storageclasses",
        singular: "storageclass",
        kind: "StorageClass",
        namespaced: false,
        short_names: &["sc"],
        categories: &[],
        subresources: &[],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::STORAGE_CLASS),
    openapi: openapi::<storage::v1::StorageClass>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::AsGiven,
};
