//! PersistentVolumeClaims: a namespace's request for storage, with the
//! DefaultStorageClass admission step. (v1)

use serde_json::{json, Value};

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{builtin, Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate};
use crate::apiserver::status::ApiResult;
use crate::apiserver::ApiState;

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "persistentvolumeclaims",
        singular: "persistentvolumeclaim",
        kind: "PersistentVolumeClaim",
        namespaced: true,
        short_names: &["pvc"],
        categories: &[],
        subresources: &[STATUS],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[],
    },
    admission: Admission::Typed(object::PERSISTENT_VOLUME_CLAIM),
    openapi: openapi::<core::v1::PersistentVolumeClaim>,
    pod_spec: "",
    generation: false,
    on_create: OnCreate::Prepare(prepare_create),
};

/// The annotations that mark a StorageClass as the default.
pub const DEFAULT_CLASS_ANNOTATIONS: [&str; 2] = [
    "storageclass.kubernetes.io/is-default-class",
    "storageclass.beta.kubernetes.io/is-default-class",
];

/// A new claim starts Pending; one that names no class gets the default
/// StorageClass (the newest, if several say so), as the DefaultStorageClass
/// admission plugin does. An explicit `""` asks for no class.
fn prepare_create(state: &ApiState, pvc: &mut Value) -> ApiResult<()> {
    pvc["status"] = json!({"phase": "Pending"});
    if pvc
        .pointer("/spec/storageClassName")
        .is_some_and(|c| !c.is_null())
    {
        return Ok(());
    }
    let classes = builtin::find("storage.k8s.io", "v1", "storageclasses").expect("served");
    let (_, all) = state.cache.list(&classes.prefix());
    let default = all
        .iter()
        .map(|(_, sc)| sc)
        .filter(|sc| {
            DEFAULT_CLASS_ANNOTATIONS.iter().any(|a| {
                sc.pointer(&format!("/metadata/annotations/{}", a.replace('/', "~1")))
                    .and_then(Value::as_str)
                    == Some("true")
            })
        })
        .max_by(|a, b| {
            let created = |v: &Value| {
                v.pointer("/metadata/creationTimestamp")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string()
            };
            created(a).cmp(&created(b))
        })
        .and_then(|sc| sc.pointer("/metadata/name").and_then(Value::as_str));
    if let (Some(name), Some(spec)) = (default, pvc.get_mut("spec").and_then(Value::as_object_mut))
    {
        spec.insert("storageClassName".into(), json!(name));
    }
    Ok(())
}
