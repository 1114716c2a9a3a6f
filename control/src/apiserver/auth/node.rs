//! The Node authorizer and the NodeRestriction admission: a kubelet
//! (`system:node:<name>` in `system:nodes`) reads only the Secrets,
//! ConfigMaps, claims and ServiceAccount tokens its own pods use, renews
//! only its own Lease, and writes only its own Node and its own pods'
//! status. Everything else it may do is the `system:node` role's rules.

use std::sync::OnceLock;

use serde_json::Value;

use super::authn::UserInfo;
use super::authz::{Attributes, Decision};
use super::rbac;
use crate::apiserver::registry::Resource;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::ApiState;

/// The rules every node holds (`system:node`'s).
fn node_rules() -> &'static [Value] {
    static RULES: OnceLock<Vec<Value>> = OnceLock::new();
    RULES.get_or_init(|| rbac::policy::cluster_role_rules("system:node"))
}

/// The Node authorizer: no opinion on anyone but a node.
pub fn authorize(state: &ApiState, user: &UserInfo, attrs: &Attributes) -> Decision {
    let Some(node) = user.as_node() else {
        return Decision::NoOpinion(String::new());
    };
    if attrs.resource_request {
        let read = matches!(attrs.verb.as_str(), "get" | "list" | "watch");
        match (
            attrs.api_group.as_str(),
            attrs.resource.as_str(),
            attrs.subresource.as_str(),
        ) {
            ("", "secrets" | "configmaps" | "persistentvolumeclaims", "") => {
                // One named object, read: a pod of the node must use it.
                if !read || attrs.name.is_empty() {
                    return Decision::NoOpinion(format!(
                        "can only {} a named {} used by a pod of node '{node}'",
                        "read", attrs.resource
                    ));
                }
                return related(state, node, attrs);
            }
            ("", "persistentvolumes", "") => {
                if !read || attrs.name.is_empty() {
                    return Decision::NoOpinion(format!(
                        "can only read a named persistentvolume bound to a claim of a pod of node '{node}'"
                    ));
                }
                return volume_related(state, node, &attrs.name);
            }
            ("", "serviceaccounts", "token") => {
                if attrs.verb != "create" {
                    return Decision::NoOpinion(String::new());
                }
                return related(state, node, attrs);
            }
            ("coordination.k8s.io", "leases", "") => {
                // A create carries no name in its path: NodeRestriction
                // checks the object's.
                let own = attrs.namespace == "kube-node-lease"
                    && (attrs.name == node || attrs.verb == "create");
                let verb_ok = matches!(
                    attrs.verb.as_str(),
                    "get" | "create" | "update" | "patch" | "delete"
                );
                return if own && verb_ok {
                    Decision::Allow
                } else {
                    Decision::NoOpinion(
                        "can only access node lease with the same name as the requesting node"
                            .into(),
                    )
                };
            }
            _ => {}
        }
    }
    if node_rules().iter().any(|r| rbac::rule_allows(r, attrs)) {
        Decision::Allow
    } else {
        Decision::NoOpinion(String::new())
    }
}

/// Allow reading `attrs`' object when a pod bound to `node` refers to it.
fn related(state: &ApiState, node: &str, attrs: &Attributes) -> Decision {
    let (_, pods) = state
        .cache
        .list(&format!("/core/pods/{}/", attrs.namespace));
    let used = pods.iter().any(|(_, pod)| {
        pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
            && pod_refers_to(pod, &attrs.resource, &attrs.name)
    });
    if used {
        Decision::Allow
    } else {
        Decision::NoOpinion(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

/// Allow reading PersistentVolume `pv` when a pod bound to `node` uses a
/// claim bound to it (the node authorizer's pod → claim → volume edge).
fn volume_related(state: &ApiState, node: &str, pv: &str) -> Decision {
    let (_, pods) = state.cache.list("/core/pods/");
    let used = pods.iter().any(|(_, pod)| {
        pod.pointer("/spec/nodeName").and_then(Value::as_str) == Some(node)
            && pod
                .pointer("/spec/volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName")?.as_str())
                .any(|claim| {
                    let ns = pod
                        .pointer("/metadata/namespace")
                        .and_then(Value::as_str)
                        .unwrap_or("");
                    state
                        .cache
                        .get(&format!("/core/persistentvolumeclaims/{ns}/{claim}"))
                        .is_some_and(|pvc| {
                            pvc.pointer("/spec/volumeName").and_then(Value::as_str) == Some(pv)
                        })
                })
    });
    if used {
        Decision::Allow
    } else {
        Decision::NoOpinion(format!(
            "no relationship found between node '{node}' and this object"
        ))
    }
}

/// Whether `pod` uses the object `name` of `resource` (volumes, projected
/// sources, env, envFrom, image pull secrets, its ServiceAccount).
pub fn pod_refers_to(pod: &Value, resource: &str, name: &str) -> bool {
    let spec = &pod["spec"];
    let is = |v: &Value, pointer: &str| v.pointer(pointer).and_then(Value::as_str) == Some(name);
    let each = |v: &Value, field: &str| -> Vec<Value> {
        v.get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    let containers: Vec<Value> = ["initContainers", "containers", "ephemeralContainers"]
        .iter()
        .flat_map(|f| each(spec, f))
        .collect();
    let volumes = each(spec, "volumes");
    match resource {
        "serviceaccounts" => {
            let sa = spec
                .get("serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default");
            sa == name
        }
        "persistentvolumeclaims" => volumes
            .iter()
            .any(|v| is(v, "/persistentVolumeClaim/claimName")),
        "secrets" | "configmaps" => {
            let (volume, projected, key_ref, from_ref) = if resource == "secrets" {
                (
                    "/secret/secretName",
                    "/secret/name",
                    "secretKeyRef",
                    "secretRef",
                )
            } else {
                (
                    "/configMap/name",
                    "/configMap/name",
                    "configMapKeyRef",
                    "configMapRef",
                )
            };
            volumes.iter().any(|v| {
                is(v, volume)
                    || v.pointer("/projected/sources")
                        .and_then(Value::as_array)
                        .is_some_and(|s| s.iter().any(|s| is(s, projected)))
            }) || containers.iter().any(|c| {
                each(c, "env")
                    .iter()
                    .any(|e| is(e, &format!("/valueFrom/{key_ref}/name")))
                    || each(c, "envFrom")
                        .iter()
                        .any(|e| is(e, &format!("/{from_ref}/name")))
            }) || (resource == "secrets"
                && each(spec, "imagePullSecrets")
                    .iter()
                    .any(|s| is(s, "/name")))
        }
        _ => false,
    }
}

/// NodeRestriction: a node writes only its own Node object and only pods
/// bound to it. `old` is the stored object of an update or delete.
pub fn admit(
    user: &UserInfo,
    r: &Resource,
    name: &str,
    obj: Option<&Value>,
    old: Option<&Value>,
) -> ApiResult<()> {
    let Some(node) = user.as_node() else {
        return Ok(());
    };
    let refuse = |message: String| {
        let group = if r.group.is_empty() {
            String::new()
        } else {
            format!(".{}", r.group)
        };
        Err(ApiError::forbidden(format!(
            "{}{group} {name:?} is forbidden: {message}",
            r.plural
        )))
    };
    match (r.group, r.plural) {
        ("", "nodes") if name != node => refuse(format!(
            "node {node:?} is not allowed to modify node {name:?}"
        )),
        ("", "nodes") => {
            let changed = restricted_label_changes(obj, old);
            if changed.is_empty() {
                Ok(())
            } else if old.is_none() {
                refuse(format!(
                    "node {node:?} is not allowed to set the following labels: {}",
                    changed.join(", ")
                ))
            } else {
                refuse(format!(
                    "node {node:?} is not allowed to modify labels: {}",
                    changed.join(", ")
                ))
            }
        }
        ("coordination.k8s.io", "leases") if name != node => refuse(format!(
            "can only access node lease with the same name as the requesting node {node:?}"
        )),
        ("", "pods") => {
            let bound = |o: Option<&Value>| {
                o.and_then(|o| o.pointer("/spec/nodeName"))
                    .and_then(Value::as_str)
                    == Some(node)
            };
            // Creates are mirror pods bound to the node; updates, status
            // writes and deletes are of pods already bound to it.
            let ok = match old {
                Some(_) => bound(old),
                None => bound(obj),
            };
            if ok {
                Ok(())
            } else {
                refuse(format!(
                    "node {node:?} can only modify pods with spec.nodeName set to itself"
                ))
            }
        }
        _ => Ok(()),
    }
}

/// Whether a node may set a label on itself, as NodeRestriction decides:
/// nothing under `node-restriction.kubernetes.io/`, and of the
/// `kubernetes.io` and `k8s.io` namespaces only the kubelet's own labels.
fn node_may_set_label(key: &str) -> bool {
    const KUBELET_LABELS: &[&str] = &[
        "kubernetes.io/hostname",
        "kubernetes.io/arch",
        "kubernetes.io/os",
        "beta.kubernetes.io/arch",
        "beta.kubernetes.io/os",
        "beta.kubernetes.io/instance-type",
        "node.kubernetes.io/instance-type",
        "failure-domain.beta.kubernetes.io/region",
        "failure-domain.beta.kubernetes.io/zone",
        "topology.kubernetes.io/region",
        "topology.kubernetes.io/zone",
    ];
    let Some((prefix, _)) = key.split_once('/') else {
        return true;
    };
    if prefix == "node-restriction.kubernetes.io"
        || prefix.ends_with(".node-restriction.kubernetes.io")
    {
        return false;
    }
    let in_namespace = |ns: &str| prefix == ns || prefix.ends_with(&format!(".{ns}"));
    if !in_namespace("kubernetes.io") && !in_namespace("k8s.io") {
        return true;
    }
    KUBELET_LABELS.contains(&key)
        || in_namespace("kubelet.kubernetes.io")
        || in_namespace("node.kubernetes.io")
}

/// The restricted labels a node's write adds, changes or removes.
fn restricted_label_changes(new: Option<&Value>, old: Option<&Value>) -> Vec<String> {
    let labels = |v: Option<&Value>| {
        v.and_then(|v| v.pointer("/metadata/labels"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default()
    };
    let (new, old) = (labels(new), labels(old));
    let mut keys: Vec<String> = new
        .keys()
        .chain(old.keys())
        .filter(|k| new.get(*k) != old.get(*k) && !node_may_set_label(k))
        .cloned()
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nodes_set_only_their_own_labels() {
        for ok in [
            "disk",
            "ingress",
            "kubernetes.io/hostname",
            "node.kubernetes.io/instance-type",
            "example.com/team",
            "kubelet.kubernetes.io/x",
        ] {
            assert!(node_may_set_label(ok), "{ok}");
        }
        for no in [
            "node-restriction.kubernetes.io/trusted",
            "node-role.kubernetes.io/control-plane",
            "k8s.io/x",
            "foo.kubernetes.io/y",
        ] {
            assert!(!node_may_set_label(no), "{no}");
        }
        let old = json!({"metadata": {"labels": {"a": "1", "node-role.kubernetes.io/worker": ""}}});
        let new = json!({"metadata": {"labels": {"a": "2", "node-role.kubernetes.io/control-plane": ""}}});
        assert_eq!(
            restricted_label_changes(Some(&new), Some(&old)),
            [
                "node-role.kubernetes.io/control-plane",
                "node-role.kubernetes.io/worker"
            ]
        );
    }

    #[test]
    fn pods_refer_to_what_they_mount_and_read() {
        let pod = json!({"spec": {
            "serviceAccountName": "robot",
            "volumes": [
                {"name": "a", "secret": {"secretName": "tls"}},
                {"name": "b", "projected": {"sources": [{"configMap": {"name": "ca"}}]}},
                {"name": "c", "persistentVolumeClaim": {"claimName": "data"}},
            ],
            "containers": [{"name": "c", "env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}}}],
                            "envFrom": [{"configMapRef": {"name": "settings"}}]}],
            "imagePullSecrets": [{"name": "pull"}],
        }});
        for (r, n) in [
            ("secrets", "tls"),
            ("secrets", "db"),
            ("secrets", "pull"),
            ("configmaps", "ca"),
            ("configmaps", "settings"),
            ("persistentvolumeclaims", "data"),
            ("serviceaccounts", "robot"),
        ] {
            assert!(pod_refers_to(&pod, r, n), "{r}/{n}");
        }
        assert!(!pod_refers_to(&pod, "secrets", "other"));
        assert!(!pod_refers_to(&pod, "configmaps", "tls"));
    }
}
