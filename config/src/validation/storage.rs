//! Storage: PersistentVolume, PersistentVolumeClaim (v1) and StorageClass
//! (storage.k8s.io/v1), with Kubernetes' messages.

use k8s_openapi::api::core::v1::{
    PersistentVolume, PersistentVolumeClaim, PersistentVolumeClaimSpec,
};
use k8s_openapi::api::storage::v1::StorageClass;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::meta::{validate_object_meta, NameRule};
use super::{child, index, FieldError};

/// The access modes a volume may offer or a claim ask for.
pub const ACCESS_MODES: [&str; 4] = [
    "ReadOnlyMany",
    "ReadWriteMany",
    "ReadWriteOnce",
    "ReadWriteOncePod",
];

const RECLAIM_POLICIES: [&str; 3] = ["Delete", "Recycle", "Retain"];
const BINDING_MODES: [&str; 2] = ["Immediate", "WaitForFirstConsumer"];
const VOLUME_MODES: [&str; 2] = ["Block", "Filesystem"];

fn validate_access_modes(modes: Option<&Vec<String>>, path: &str) -> Vec<FieldError> {
    let modes = modes.map(Vec::as_slice).unwrap_or_default();
    if modes.is_empty() {
        return vec![FieldError::required(
            path,
            "at least 1 access mode is required",
        )];
    }
    let mut errs = Vec::new();
    for m in modes {
        if !ACCESS_MODES.contains(&m.as_str()) {
            errs.push(FieldError::not_supported(path, m, &ACCESS_MODES));
        }
    }
    if modes.iter().any(|m| m == "ReadWriteOncePod") && modes.len() > 1 {
        errs.push(FieldError::forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    errs
}

fn validate_storage_quantity(q: Option<&Quantity>, path: &str, what: &str) -> Vec<FieldError> {
    match q {
        None => vec![FieldError::required(path, "")],
        Some(q) => match crate::quantity::parse_quantity(&q.0) {
            Ok(n) if n.as_bytes() > 0 => Vec::new(),
            Ok(_) => vec![FieldError::invalid_str(
                path,
                &q.0,
                format!("must be greater than zero{what}"),
            )],
            Err(e) => vec![FieldError::invalid_str(path, &q.0, e.to_string())],
        },
    }
}

/// Validates a PersistentVolume (`ValidatePersistentVolume`).
pub fn validate_persistent_volume(pv: &PersistentVolume) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&pv.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    let spec = pv.spec.as_ref().unwrap_or(&default);
    errs.extend(validate_access_modes(
        spec.access_modes.as_ref(),
        "spec.accessModes",
    ));
    errs.extend(validate_storage_quantity(
        spec.capacity.as_ref().and_then(|c| c.get("storage")),
        "spec.capacity[storage]",
        "",
    ));
    if let Some(p) = spec.persistent_volume_reclaim_policy.as_deref() {
        if !RECLAIM_POLICIES.contains(&p) {
            errs.push(FieldError::not_supported(
                "spec.persistentVolumeReclaimPolicy",
                p,
                &RECLAIM_POLICIES,
            ));
        }
    }
    if let Some(m) = spec.volume_mode.as_deref() {
        if !VOLUME_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                "spec.volumeMode",
                m,
                &VOLUME_MODES,
            ));
        }
    }
    let sources = [
        ("hostPath", spec.host_path.is_some()),
        ("local", spec.local.is_some()),
        ("nfs", spec.nfs.is_some()),
        ("csi", spec.csi.is_some()),
    ];
    match sources.iter().filter(|(_, set)| *set).count() {
        0 => errs.push(FieldError::required("spec", "must specify a volume type")),
        1 => {}
        _ => errs.push(FieldError::forbidden(
            "spec",
            "may not specify more than 1 volume type",
        )),
    }
    if let Some(hp) = &spec.host_path {
        if hp.path.is_empty() {
            errs.push(FieldError::required("spec.hostPath.path", ""));
        }
    }
    if let Some(local) = &spec.local {
        if local.path.is_empty() {
            errs.push(FieldError::required("spec.local.path", ""));
        }
        if spec.node_affinity.is_none() {
            errs.push(FieldError::required(
                "spec.nodeAffinity",
                "Local volume requires node affinity",
            ));
        }
    }
    errs
}

/// Validates a PersistentVolumeClaim (`ValidatePersistentVolumeClaim`).
pub fn validate_persistent_volume_claim(pvc: &PersistentVolumeClaim) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&pvc.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    errs.extend(validate_claim_spec(
        pvc.spec.as_ref().unwrap_or(&default),
        "spec",
    ));
    errs
}

/// The rules of a claim's spec, also those of a StatefulSet's
/// volumeClaimTemplates.
pub fn validate_claim_spec(spec: &PersistentVolumeClaimSpec, path: &str) -> Vec<FieldError> {
    let mut errs = validate_access_modes(spec.access_modes.as_ref(), &child(path, "accessModes"));
    let requests = spec.resources.as_ref().and_then(|r| r.requests.as_ref());
    errs.extend(validate_storage_quantity(
        requests.and_then(|r| r.get("storage")),
        &format!("{path}.resources[storage]"),
        "",
    ));
    if let Some(m) = spec.volume_mode.as_deref() {
        if !VOLUME_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                child(path, "volumeMode"),
                m,
                &VOLUME_MODES,
            ));
        }
    }
    errs
}

/// Validates a StorageClass (`ValidateStorageClass`).
pub fn validate_storage_class(sc: &StorageClass) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&sc.metadata, NameRule::Subdomain, "metadata");
    if sc.provisioner.is_empty() {
        errs.push(FieldError::required("provisioner", ""));
    }
    if let Some(p) = sc.reclaim_policy.as_deref() {
        if !["Delete", "Retain"].contains(&p) {
            errs.push(FieldError::not_supported(
                "reclaimPolicy",
                p,
                &["Delete", "Retain"],
            ));
        }
    }
    if let Some(m) = sc.volume_binding_mode.as_deref() {
        if !BINDING_MODES.contains(&m) {
            errs.push(FieldError::not_supported(
                "volumeBindingMode",
                m,
                &BINDING_MODES,
            ));
        }
    }
    for (i, o) in sc.mount_options.iter().flatten().enumerate() {
        if o.is_empty() {
            errs.push(FieldError::required(index("mountOptions", i), ""));
        }
    }
    errs
}
