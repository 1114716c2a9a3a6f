//! The bootstrap policy: the roles and bindings Kubernetes creates at
//! start (the files in `policy/`, as Kubernetes renders them), and kedge's
//! own (`policy/kedge.yaml`: the admins' binding kubeadm makes, the
//! identities of kedge's built-in components). Reconciled at every start
//! as kube-apiserver does: what is missing is created; an existing object
//! whose `rbac.authorization.kubernetes.io/autoupdate` annotation is not
//! `"false"` gets the rules (or subjects) it lacks added, and keeps what a
//! user added.

use std::sync::OnceLock;

use serde_json::{json, Value};

use super::GROUP;
use crate::apiserver::auth::authn::UserInfo;
use crate::apiserver::objects;
use crate::apiserver::registry::{self, Resource};
use crate::apiserver::request::{Query, ResourceRequest};
use crate::apiserver::status::ApiResult;
use crate::apiserver::ApiState;

const FILES: &[&str] = &[
    include_str!("policy/cluster-roles.yaml"),
    include_str!("policy/controller-roles.yaml"),
    include_str!("policy/namespace-roles.yaml"),
    include_str!("policy/cluster-role-bindings.yaml"),
    include_str!("policy/controller-role-bindings.yaml"),
    include_str!("policy/namespace-role-bindings.yaml"),
    include_str!("policy/kedge.yaml"),
];

/// Every object of the bootstrap policy, roles before bindings.
pub fn objects() -> &'static [Value] {
    static ALL: OnceLock<Vec<Value>> = OnceLock::new();
    ALL.get_or_init(|| {
        FILES
            .iter()
            .flat_map(|text| {
                let list: serde_yaml::Value =
                    serde_yaml::from_str(text).expect("the bootstrap policy is valid YAML");
                let list = kedge_config::manifest::yaml_to_json(list);
                list.get("items")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default()
            })
            .collect()
    })
}

/// The rules of a bootstrap ClusterRole (the Node authorizer's rules are
/// `system:node`'s).
pub fn cluster_role_rules(name: &str) -> Vec<Value> {
    objects()
        .iter()
        .find(|o| {
            o.get("kind").and_then(Value::as_str) == Some("ClusterRole")
                && o.pointer("/metadata/name").and_then(Value::as_str) == Some(name)
        })
        .and_then(|o| o.get("rules").and_then(Value::as_array).cloned())
        .unwrap_or_default()
}

fn resource_of(kind: &str) -> &'static Resource {
    let plural = match kind {
        "ClusterRole" => "clusterroles",
        "Role" => "roles",
        "ClusterRoleBinding" => "clusterrolebindings",
        _ => "rolebindings",
    };
    registry::builtin::find(GROUP, "v1", plural).expect("RBAC kinds are served")
}

/// Create what is missing of the bootstrap policy and add what an
/// auto-updated object lacks.
pub fn reconcile(state: &ApiState) -> ApiResult<()> {
    let q = Query::default();
    let mut created = 0;
    let mut updated = 0;
    for obj in objects() {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        let r = resource_of(kind);
        let name = obj
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let namespace = obj.pointer("/metadata/namespace").and_then(Value::as_str);
        let req = ResourceRequest {
            resource: r,
            namespace: namespace.map(str::to_string),
            name: Some(name.to_string()),
            subresource: None,
            legacy_watch: false,
            user: UserInfo::apiserver(),
        };
        let Some(current) = state.cache.get(&r.key(namespace, name)) else {
            let create = ResourceRequest { name: None, ..req };
            objects::create(state, &create, &q, obj.clone())?;
            created += 1;
            continue;
        };
        if current
            .pointer("/metadata/annotations/rbac.authorization.kubernetes.io~1autoupdate")
            .and_then(Value::as_str)
            == Some("false")
        {
            continue;
        }
        let field = if kind.ends_with("Binding") {
            "subjects"
        } else {
            "rules"
        };
        let mut merged = current
            .get(field)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut changed = false;
        for item in obj
            .get(field)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if !merged.contains(item) {
                merged.push(item.clone());
                changed = true;
            }
        }
        let aggregation = obj.get("aggregationRule");
        if aggregation.is_some() && current.get("aggregationRule") != aggregation {
            changed = true;
        }
        if !changed {
            continue;
        }
        objects::update_with(state, &req, &q, objects::Part::Main, |cur| {
            let mut next = cur.clone();
            next[field] = json!(merged);
            if let Some(a) = aggregation {
                next["aggregationRule"] = a.clone();
            }
            Ok(next)
        })?;
        updated += 1;
    }
    if created + updated > 0 {
        tracing::info!(created, updated, "bootstrap RBAC policy reconciled");
    }
    Ok(())
}
