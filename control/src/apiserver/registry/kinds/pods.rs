//! Pods, with `binding` (the scheduler's write), `log` and `exec` (passed to kubelets). (v1)

use serde_json::{json, Value};

use k8s_openapi::api::core;
use kedge_config::object;

use super::super::{Resource, ALL_VERBS, STATUS};
use super::{openapi, Admission, Kind, OnCreate, BINDING, EVICTION, EXEC, LOG, PORTFORWARD};
use crate::apiserver::meta::meta_str;
use crate::apiserver::status::ApiResult;
use crate::apiserver::{serviceaccount, ApiState};

/// The kind.
pub const KIND: Kind = Kind {
    resource: Resource {
        group: "",
        version: "v1",
        plural: "pods",
        singular: "pod",
        kind: "Pod",
        namespaced: true,
        short_names: &["po"],
        categories: &["all"],
        subresources: &[STATUS, BINDING, LOG, EXEC, PORTFORWARD, EVICTION],
        verbs: ALL_VERBS,
        custom: false,
        selectable_fields: &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
    },
    admission: Admission::Typed(object::POD),
    openapi: openapi::<core::v1::Pod>,
    pod_spec: "spec",
    generation: true,
    on_create: OnCreate::Prepare(prepare_create),
};

/// What a new pod gets before it is stored: its ServiceAccount (and token
/// volume), the default tolerations, and a `Pending` status with its QoS
/// class.
fn prepare_create(state: &ApiState, pod: &mut Value) -> ApiResult<()> {
    // Mirror pods of static pods keep what their node wrote.
    if pod
        .pointer("/metadata/annotations/kubernetes.io~1config.mirror")
        .is_none()
    {
        let ns = meta_str(pod, "namespace").unwrap_or("default").to_string();
        serviceaccount::admit_pod(&state.cache, &ns, pod)?;
    }
    add_default_tolerations(pod);
    let qos = pod_qos(pod);
    let status = pod
        .get("status")
        .cloned()
        .filter(|s| s.get("phase").is_some())
        .unwrap_or_else(|| json!({"phase": "Pending", "qosClass": qos}));
    pod["status"] = status;
    Ok(())
}

/// The DefaultTolerationSeconds admission step: pods tolerate a not-ready or
/// unreachable node for 300 s before eviction, unless they say otherwise.
fn add_default_tolerations(pod: &mut Value) {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let tolerations = spec.entry("tolerations").or_insert_with(|| json!([]));
    let Some(list) = tolerations.as_array_mut() else {
        return;
    };
    for key in [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ] {
        let covered = list.iter().any(|t| {
            let k = t.get("key").and_then(Value::as_str);
            let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
            let op = t.get("operator").and_then(Value::as_str).unwrap_or("Equal");
            (k == Some(key) || (k.is_none() && op == "Exists"))
                && (effect.is_empty() || effect == "NoExecute")
        });
        if !covered {
            list.push(json!({
                "key": key,
                "operator": "Exists",
                "effect": "NoExecute",
                "tolerationSeconds": 300,
            }));
        }
    }
}

/// Kubernetes' QoS class of a pod from its containers' resources.
fn pod_qos(pod: &Value) -> &'static str {
    let containers: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|k| pod.pointer(&format!("/spec/{k}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut guaranteed = true;
    for c in &containers {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        for res in ["cpu", "memory"] {
            let l = lim.and_then(|m| m.get(res));
            let q = req.and_then(|m| m.get(res)).or(l);
            if l.is_none() || q != l {
                guaranteed = false;
            }
        }
    }
    if !any {
        "BestEffort"
    } else if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}
