//! ComponentStatus (`kubectl get cs`), as kube-apiserver reports it: the
//! scheduler, the controller manager and the store (`etcd-0`, whichever
//! store this is). The scheduler and controller manager run under leader
//! election, so each is healthy when some control plane holds its Lease
//! and renewed it within the Lease's duration; the store when it answers.

use serde_json::{json, Value};

use super::registry::{builtin, Resource};
use super::request::ResourceRequest;
use super::status::{ApiError, ApiResult};
use super::ApiState;

/// The warning kube-apiserver sends with every answer.
pub const WARNING: &str = "299 - \"v1 ComponentStatus is deprecated in v1.19+\"";

/// Whether `r` is ComponentStatus.
pub fn serves(r: &Resource) -> bool {
    r.group.is_empty() && r.plural == "componentstatuses"
}

/// The components, in kube-apiserver's order.
const COMPONENTS: [&str; 3] = ["scheduler", "controller-manager", "etcd-0"];

fn status(name: &str, health: Result<String, String>) -> Value {
    let condition = match health {
        Ok(message) => json!({"type": "Healthy", "status": "True", "message": message}),
        Err(error) => json!({"type": "Healthy", "status": "False", "error": error}),
    };
    json!({
        "kind": "ComponentStatus",
        "apiVersion": "v1",
        "metadata": {"name": name},
        "conditions": [condition],
    })
}

/// Whether the Lease `name` in kube-system is held and fresh.
fn lease_health(state: &ApiState, component: &str, lease: &str) -> Result<String, String> {
    let leases = builtin::find("coordination.k8s.io", "v1", "leases").expect("leases are served");
    let Some(obj) = state.cache.get(&leases.key(Some("kube-system"), lease)) else {
        return Err(format!("no {component} has taken the {lease} Lease"));
    };
    let spec = &obj["spec"];
    let holder = spec["holderIdentity"].as_str().unwrap_or("");
    let renewed = spec["renewTime"]
        .as_str()
        .and_then(|t| t.parse::<jiff::Timestamp>().ok());
    let duration = spec["leaseDurationSeconds"].as_i64().unwrap_or(15);
    let age = renewed.map(|t| jiff::Timestamp::now().as_second() - t.as_second());
    match age {
        Some(age) if !holder.is_empty() && age <= duration => Ok("ok".into()),
        Some(age) => Err(format!(
            "the {lease} Lease was last renewed {age}s ago, longer than its {duration}s"
        )),
        None => Err(format!("the {lease} Lease has never been renewed")),
    }
}

fn component(state: &ApiState, name: &str) -> Option<Value> {
    let health = match name {
        "scheduler" => lease_health(state, "scheduler", "kube-scheduler"),
        "controller-manager" => {
            lease_health(state, "controller manager", "kube-controller-manager")
        }
        "etcd-0" => tokio::task::block_in_place(|| state.cache.health())
            .map(|()| r#"{"health":"true","reason":""}"#.to_string()),
        _ => return None,
    };
    Some(status(name, health))
}

/// `GET` of one ComponentStatus or the list.
pub fn get(state: &ApiState, rr: &ResourceRequest) -> ApiResult<Value> {
    if let Some(name) = &rr.name {
        return component(state, name).ok_or_else(|| ApiError::not_found("componentstatus", name));
    }
    Ok(json!({
        "kind": "ComponentStatusList",
        "apiVersion": "v1",
        "metadata": {},
        "items": COMPONENTS.iter().filter_map(|c| component(state, c)).collect::<Vec<_>>(),
    }))
}
