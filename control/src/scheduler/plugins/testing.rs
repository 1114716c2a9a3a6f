//! Pods and nodes for the plugins' unit tests, written as JSON the way a
//! manifest would be.

use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};

use crate::scheduler::framework::{CycleState, FilterPlugin, Status};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// A pod from the JSON of its spec (and optional metadata).
pub fn pod(spec: Value) -> PodInfo {
    pod_with_meta(
        json!({"name": "p", "namespace": "default", "uid": "uid-p"}),
        spec,
    )
}

/// A pod from the JSON of its metadata and spec.
pub fn pod_with_meta(meta: Value, spec: Value) -> PodInfo {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "c", "image": "i"}]);
    }
    let p: Pod = serde_json::from_value(json!({"metadata": meta, "spec": spec})).expect("pod");
    PodInfo::new(Arc::new(p))
}

/// A Ready node with 4 CPUs, 8Gi and 110 pods allocatable, plus `extra`
/// merged into its JSON (labels, taints, …).
pub fn node(name: &str, extra: Value) -> NodeInfo {
    let mut v = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {},
        "status": {
            "allocatable": {"cpu": "4", "memory": "8Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True"}]
        }
    });
    merge(&mut v, extra);
    let n: Node = serde_json::from_value(v).expect("node");
    let mut info = NodeInfo::named(name);
    info.set_node(Arc::new(n));
    info
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                merge(a.entry(k).or_insert(Value::Null), v);
            }
        }
        (a, b) => *a = b,
    }
}

/// Run a filter plugin's PreFilter and Filter.
pub fn run_filter(p: &dyn FilterPlugin, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
    let mut state = CycleState::default();
    if let Some(s) = p.pre_filter(&mut state, pod) {
        return Some(s);
    }
    p.filter(&state, pod, node)
}
