//! The ServiceAccount admission step of new pods, as Kubernetes'
//! `ServiceAccount` admission plugin does it: a pod without
//! `serviceAccountName` runs as `default`; unless automounting is turned
//! off (on the pod, else on the ServiceAccount), every container and init
//! container gets the projected `kube-api-access-xxxxx` volume (a bound
//! token, the cluster CA and the namespace) at
//! `/var/run/secrets/kubernetes.io/serviceaccount`; the ServiceAccount's
//! `imagePullSecrets` are copied to a pod that names none.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::apiserver::meta;
use crate::apiserver::registry;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::store::WatchCache;

/// The ServiceAccount of pods that name none.
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";
/// Where the token, CA and namespace appear in containers.
pub const TOKEN_MOUNT_PATH: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// Prefix of the projected volume's name (five random characters follow).
pub const VOLUME_PREFIX: &str = "kube-api-access-";
/// The ConfigMap with the cluster CA in every namespace.
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";
/// Lifetime the admission asks for: an hour and seven seconds, the value
/// Kubernetes uses so that its tokens can be told apart.
pub const TOKEN_EXPIRATION_SECONDS: i64 = 3607;

/// Admit a new pod in `namespace` (its `spec` is edited in place).
pub fn admit_pod(cache: &WatchCache, namespace: &str, pod: &mut Value) -> ApiResult<()> {
    let pod_name = meta::meta_str(pod, "name").unwrap_or("").to_string();
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    let name = match spec.get("serviceAccountName").and_then(Value::as_str) {
        Some(n) if !n.is_empty() => n.to_string(),
        _ => DEFAULT_SERVICE_ACCOUNT.to_string(),
    };
    spec.insert("serviceAccountName".into(), json!(name));
    // The deprecated alias mirrors the name, as the v1 conversion does.
    spec.insert("serviceAccount".into(), json!(name));

    let sa = service_account(cache, namespace, &name);
    if sa.is_none() && name != DEFAULT_SERVICE_ACCOUNT {
        return Err(ApiError::forbidden(format!(
            "pods \"{pod_name}\" is forbidden: error looking up service account {namespace}/{name}: serviceaccount \"{name}\" not found"
        )));
    }
    // Kubernetes refuses a pod whose `default` ServiceAccount is not made
    // yet. kedge's API server also runs without the controllers (tests,
    // `kedge server` alone), so such a pod is admitted: its token volume
    // waits in the kubelet until the serviceaccount controller has made
    // the account.

    let automount = spec
        .get("automountServiceAccountToken")
        .and_then(Value::as_bool)
        .or_else(|| {
            sa.as_ref()
                .and_then(|s| s.get("automountServiceAccountToken"))
                .and_then(Value::as_bool)
        })
        .unwrap_or(true);
    if automount {
        mount_token(spec);
    }

    let has_pull_secrets = spec
        .get("imagePullSecrets")
        .and_then(Value::as_array)
        .is_some_and(|s| !s.is_empty());
    if !has_pull_secrets {
        if let Some(secrets) = sa
            .as_ref()
            .and_then(|s| s.get("imagePullSecrets"))
            .and_then(Value::as_array)
            .filter(|s| !s.is_empty())
        {
            spec.insert("imagePullSecrets".into(), json!(secrets));
        }
    }
    Ok(())
}

fn service_account(cache: &WatchCache, namespace: &str, name: &str) -> Option<Arc<Value>> {
    let r =
        registry::builtin::find("", "v1", "serviceaccounts").expect("serviceaccounts are served");
    cache.get(&r.key(Some(namespace), name))
}

/// Add the projected token volume and its mounts, leaving containers that
/// already mount something at the token path alone.
fn mount_token(spec: &mut serde_json::Map<String, Value>) {
    let existing = spec
        .get("volumes")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .filter_map(|v| v.get("name").and_then(Value::as_str))
                .find(|n| n.starts_with(VOLUME_PREFIX))
                .map(str::to_string)
        });
    let volume_name = existing
        .clone()
        .unwrap_or_else(|| meta::generate_name(VOLUME_PREFIX));
    let mount = json!({
        "name": volume_name,
        "readOnly": true,
        "mountPath": TOKEN_MOUNT_PATH,
    });
    let mut needs_volume = false;
    for list in ["initContainers", "containers"] {
        let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) else {
            continue;
        };
        for c in containers {
            let mounts = c
                .as_object_mut()
                .map(|c| c.entry("volumeMounts").or_insert_with(|| json!([])));
            let Some(mounts) = mounts.and_then(Value::as_array_mut) else {
                continue;
            };
            let taken = mounts
                .iter()
                .any(|m| m.get("mountPath").and_then(Value::as_str) == Some(TOKEN_MOUNT_PATH));
            if !taken {
                mounts.push(mount.clone());
                needs_volume = true;
            }
        }
    }
    if needs_volume && existing.is_none() {
        let volumes = spec.entry("volumes").or_insert_with(|| json!([]));
        if let Some(volumes) = volumes.as_array_mut() {
            volumes.push(token_volume(&volume_name));
        }
    }
}

/// The projected volume of the token, the CA and the namespace.
pub fn token_volume(name: &str) -> Value {
    json!({
        "name": name,
        "projected": {
            "defaultMode": 0o644,
            "sources": [
                {"serviceAccountToken": {
                    "expirationSeconds": TOKEN_EXPIRATION_SECONDS,
                    "path": "token",
                }},
                {"configMap": {
                    "name": ROOT_CA_CONFIG_MAP,
                    "items": [{"key": "ca.crt", "path": "ca.crt"}],
                }},
                {"downwardAPI": {
                    "items": [{
                        "path": "namespace",
                        "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"},
                    }],
                }},
            ],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(spec: Value) -> Value {
        json!({"metadata": {"name": "p", "namespace": "ns"}, "spec": spec})
    }

    #[test]
    fn mounts_the_token_in_every_container_once() {
        let mut spec = pod(json!({
            "initContainers": [{"name": "init"}],
            "containers": [
                {"name": "a", "volumeMounts": [{"name": "x", "mountPath": "/x"}]},
                {"name": "b", "volumeMounts": [{"name": "own", "mountPath": TOKEN_MOUNT_PATH}]},
            ],
        }))["spec"]
            .as_object()
            .cloned()
            .unwrap();
        mount_token(&mut spec);
        let volumes = spec["volumes"].as_array().unwrap();
        assert_eq!(volumes.len(), 1);
        let name = volumes[0]["name"].as_str().unwrap();
        assert!(name.starts_with(VOLUME_PREFIX) && name.len() == VOLUME_PREFIX.len() + 5);
        let sources = &volumes[0]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3607);
        assert_eq!(sources[1]["configMap"]["name"], "kube-root-ca.crt");
        assert_eq!(
            sources[2]["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"],
            "metadata.namespace"
        );
        let mount_of = |list: &str, i: usize| spec[list][i]["volumeMounts"].clone();
        assert_eq!(mount_of("initContainers", 0)[0]["name"], name);
        assert_eq!(mount_of("containers", 0)[1]["mountPath"], TOKEN_MOUNT_PATH);
        assert_eq!(mount_of("containers", 0)[1]["readOnly"], true);
        // A container with its own mount at the path keeps it.
        assert_eq!(mount_of("containers", 1).as_array().unwrap().len(), 1);

        // Admitting again adds nothing.
        let before = spec.clone();
        mount_token(&mut spec);
        assert_eq!(spec, before);
    }
}
