//! `pods/eviction` (policy/v1 Eviction): a delete that respects
//! PodDisruptionBudgets, what `kubectl drain` calls. A pod that is not
//! running, or that no budget selects, is deleted at once; one a budget
//! selects only while the budget allows a disruption, which the eviction
//! spends (`disruptionsAllowed` less one, the pod in `disruptedPods`)
//! in the same write that checks it; otherwise 429 TooManyRequests, as
//! kube-apiserver answers, and the client retries.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use kedge_config::selector::LabelSelector;

use super::objects::{self, Part};
use super::registry::builtin;
use super::request::{Query, ResourceRequest};
use super::status::{ApiError, ApiResult};
use super::ApiState;

fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(|l| serde_json::from_value(l.clone()).ok())
        .unwrap_or_default()
}

/// Whether the budget's selector picks `labels` (in policy/v1 an empty
/// selector picks every pod, an absent one none).
fn selects(pdb: &Value, labels: &BTreeMap<String, String>) -> bool {
    let Some(sel) = pdb.pointer("/spec/selector") else {
        return false;
    };
    let Ok(sel) = serde_json::from_value(sel.clone()) else {
        return false;
    };
    LabelSelector::from_label_selector(&sel).is_ok_and(|s| s.matches(labels))
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn too_many(pdb: &str, message: String) -> ApiError {
    ApiError::too_many_requests("Cannot evict pod as it would violate the pod's disruption budget.")
        .with_details(json!({
            "causes": [{"reason": "DisruptionBudget", "message": message}],
        }))
        .with_name(pdb)
}

/// `POST …/pods/{name}/eviction`.
pub fn evict(
    state: &ApiState,
    rr: &ResourceRequest,
    q: &Query,
    eviction: &Value,
) -> ApiResult<Value> {
    let name = rr.name.clone().unwrap_or_default();
    if let Some(given) = eviction.pointer("/metadata/name").and_then(Value::as_str) {
        if given != name {
            return Err(ApiError::bad_request(format!(
                "name in URL does not match name in Eviction object: {given} vs {name}"
            )));
        }
    }
    let pod_req = ResourceRequest {
        resource: rr.resource,
        namespace: rr.namespace.clone(),
        name: rr.name.clone(),
        subresource: None,
        legacy_watch: false,
        user: rr.user.clone(),
    };
    let pod = objects::get(state, &pod_req)?;
    let options = eviction
        .get("deleteOptions")
        .cloned()
        .unwrap_or_else(|| json!({}));
    let delete = || -> ApiResult<Value> {
        objects::delete(state, &pod_req, q, &options)?;
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201}),
        )
    };
    // Pods that are done, not started, or already going need no budget.
    let phase = pod
        .pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("");
    if matches!(phase, "Succeeded" | "Failed" | "Pending")
        || pod.pointer("/metadata/deletionTimestamp").is_some()
    {
        return delete();
    }
    let pdbs_r = builtin::find("policy", "v1", "poddisruptionbudgets").expect("PDBs are served");
    let namespace = rr.namespace.as_deref().unwrap_or("");
    let labels = labels_of(&pod);
    let (_, all) = state.cache.list(&pdbs_r.namespace_prefix(Some(namespace)));
    let budgets: Vec<_> = all.iter().filter(|(_, p)| selects(p, &labels)).collect();
    let budget = match budgets.as_slice() {
        [] => return delete(),
        [one] => one.1.clone(),
        _ => {
            return Err(ApiError::internal(
                "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.",
            ))
        }
    };
    let pdb_name = budget
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let ready = is_ready(&pod);
    let pdb_req = ResourceRequest {
        resource: pdbs_r,
        namespace: rr.namespace.clone(),
        name: Some(pdb_name.clone()),
        subresource: Some("status".into()),
        legacy_watch: false,
        user: super::auth::authn::UserInfo::apiserver(),
    };
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    // Check and spend the budget in one write.
    let mut spent = false;
    objects::update_with(
        state,
        &pdb_req,
        &Query::default(),
        Part::Status,
        |current| {
            let status = current.get("status").cloned().unwrap_or_else(|| json!({}));
            let generation = current
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0);
            let observed = status["observedGeneration"].as_i64().unwrap_or(0);
            if observed < generation {
                return Err(too_many(
                    &pdb_name,
                    format!(
                        "The disruption budget {pdb_name} is still being processed by the server."
                    ),
                ));
            }
            let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
            let healthy = status["currentHealthy"].as_i64().unwrap_or(0);
            let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
            // An unready pod may go while the budget is met (it adds nothing).
            if !ready && healthy >= desired {
                return Ok(current.clone());
            }
            if allowed <= 0 {
                return Err(too_many(
                &pdb_name,
                format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {healthy} currently"),
            ));
            }
            let mut new = current.clone();
            new["status"]["disruptionsAllowed"] = json!(allowed - 1);
            new["status"]["disruptedPods"][&name] = json!(now);
            spent = true;
            Ok(new)
        },
    )?;
    tracing::debug!(pod = %name, budget = %pdb_name, spent, "evicting");
    delete()
}
