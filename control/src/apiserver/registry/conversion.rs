//! Built-in kinds served in more than one version and stored in one, as
//! kube-apiserver converts them: HorizontalPodAutoscalers are stored as
//! `autoscaling/v2` and served as `autoscaling/v1` too (what `kubectl
//! autoscale` writes). What v1 has no field for — metrics besides the CPU
//! target, `behavior`, conditions, other current metrics — travels in the
//! annotations Kubernetes uses for it, so a v1 round trip loses nothing.

use serde_json::{json, Map, Value};

use super::{builtin, Resource};

const METRICS: &str = "autoscaling.alpha.kubernetes.io/metrics";
const BEHAVIOR: &str = "autoscaling.alpha.kubernetes.io/behavior";
const CONDITIONS: &str = "autoscaling.alpha.kubernetes.io/conditions";
const CURRENT_METRICS: &str = "autoscaling.alpha.kubernetes.io/current-metrics";

/// The version each converted kind is stored in.
fn storage_version(r: &Resource) -> Option<&'static str> {
    match (r.group, r.kind) {
        ("autoscaling", "HorizontalPodAutoscaler") => Some("v2"),
        _ => None,
    }
}

/// The stored form of `obj`, written through `r`: the storage version's
/// resource and the object converted to it; `None` when `r` is the
/// storage version (or the kind has one version).
pub fn to_storage(r: &Resource, obj: &Value) -> Option<(&'static Resource, Value)> {
    let stored = storage_version(r).filter(|v| *v != r.version)?;
    let target = builtin::find(r.group, stored, r.plural)?;
    let converted = match (r.group, r.kind) {
        ("autoscaling", "HorizontalPodAutoscaler") => hpa_v1_to_v2(obj),
        _ => return None,
    };
    Some((target, converted))
}

/// `obj` (stored) as `r`'s version shows it; `None` when it already is.
pub fn present(r: &Resource, obj: &Value) -> Option<Value> {
    let want = r.api_version();
    if obj.get("apiVersion").and_then(Value::as_str) == Some(want.as_str()) {
        return None;
    }
    match (r.group, r.kind, r.version) {
        ("autoscaling", "HorizontalPodAutoscaler", "v1") => Some(hpa_v2_to_v1(obj)),
        _ => None,
    }
}

/// The CPU utilization target of a v2 metric, if it is one.
fn cpu_utilization(metric: &Value, field: &str) -> Option<Value> {
    (metric["type"] == "Resource" && metric["resource"]["name"] == "cpu")
        .then(|| metric["resource"][field]["averageUtilization"].clone())
        .filter(|v| !v.is_null())
}

fn annotations(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj["metadata"]["annotations"].is_object() {
        obj["metadata"]["annotations"] = json!({});
    }
    obj["metadata"]["annotations"]
        .as_object_mut()
        .expect("made an object")
}

/// Keep `value` in annotation `key` when it is not empty.
fn stash(obj: &mut Value, key: &str, value: Value) {
    let empty = value.is_null() || value.as_array().is_some_and(Vec::is_empty);
    if !empty {
        annotations(obj).insert(key.to_string(), json!(value.to_string()));
    }
}

/// Take annotation `key` back as JSON.
fn unstash(obj: &mut Value, key: &str) -> Option<Value> {
    let text = annotations(obj).remove(key)?;
    serde_json::from_str(text.as_str()?).ok()
}

fn hpa_v2_to_v1(obj: &Value) -> Value {
    let mut out = json!({
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": obj["metadata"].clone(),
        "spec": {},
    });
    let spec = &obj["spec"];
    for field in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if !spec[field].is_null() {
            out["spec"][field] = spec[field].clone();
        }
    }
    let metrics = spec["metrics"].as_array().cloned().unwrap_or_default();
    let mut others = Vec::new();
    for m in metrics {
        match cpu_utilization(&m, "target") {
            Some(u) if out["spec"]["targetCPUUtilizationPercentage"].is_null() => {
                out["spec"]["targetCPUUtilizationPercentage"] = u;
            }
            _ => others.push(m),
        }
    }
    stash(&mut out, METRICS, json!(others));
    stash(&mut out, BEHAVIOR, spec["behavior"].clone());
    if let Some(status) = obj.get("status").filter(|s| s.is_object()) {
        let mut st = json!({
            "currentReplicas": status["currentReplicas"].as_i64().unwrap_or(0),
            "desiredReplicas": status["desiredReplicas"].as_i64().unwrap_or(0),
        });
        for field in ["observedGeneration", "lastScaleTime"] {
            if !status[field].is_null() {
                st[field] = status[field].clone();
            }
        }
        let mut other_current = Vec::new();
        for m in status["currentMetrics"]
            .as_array()
            .cloned()
            .unwrap_or_default()
        {
            match cpu_utilization(&m, "current") {
                Some(u) if st["currentCPUUtilizationPercentage"].is_null() => {
                    st["currentCPUUtilizationPercentage"] = u;
                }
                _ => other_current.push(m),
            }
        }
        stash(&mut out, CURRENT_METRICS, json!(other_current));
        stash(&mut out, CONDITIONS, status["conditions"].clone());
        out["status"] = st;
    }
    if out["metadata"]["annotations"]
        .as_object()
        .is_some_and(Map::is_empty)
    {
        out["metadata"]
            .as_object_mut()
            .map(|m| m.remove("annotations"));
    }
    out
}

fn hpa_v1_to_v2(obj: &Value) -> Value {
    let mut v1 = obj.clone();
    let others = unstash(&mut v1, METRICS);
    let behavior = unstash(&mut v1, BEHAVIOR);
    let conditions = unstash(&mut v1, CONDITIONS);
    let other_current = unstash(&mut v1, CURRENT_METRICS);
    if v1["metadata"]["annotations"]
        .as_object()
        .is_some_and(Map::is_empty)
    {
        v1["metadata"]
            .as_object_mut()
            .map(|m| m.remove("annotations"));
    }
    let spec = &v1["spec"];
    let mut out = json!({
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": v1["metadata"].clone(),
        "spec": {},
    });
    for field in ["scaleTargetRef", "minReplicas", "maxReplicas"] {
        if !spec[field].is_null() {
            out["spec"][field] = spec[field].clone();
        }
    }
    let mut metrics = Vec::new();
    if let Some(u) = spec
        .get("targetCPUUtilizationPercentage")
        .filter(|u| !u.is_null())
    {
        metrics.push(json!({
            "type": "Resource",
            "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": u}},
        }));
    }
    metrics.extend(
        others
            .and_then(|o| o.as_array().cloned())
            .unwrap_or_default(),
    );
    if !metrics.is_empty() {
        out["spec"]["metrics"] = json!(metrics);
    }
    if let Some(b) = behavior {
        out["spec"]["behavior"] = b;
    }
    if let Some(status) = v1.get("status").filter(|s| s.is_object()) {
        let mut st = json!({
            "desiredReplicas": status["desiredReplicas"].as_i64().unwrap_or(0),
        });
        for field in ["observedGeneration", "lastScaleTime", "currentReplicas"] {
            if !status[field].is_null() {
                st[field] = status[field].clone();
            }
        }
        let mut current = Vec::new();
        if let Some(u) = status
            .get("currentCPUUtilizationPercentage")
            .filter(|u| !u.is_null())
        {
            current.push(json!({
                "type": "Resource",
                "resource": {"name": "cpu", "current": {"averageUtilization": u}},
            }));
        }
        current.extend(
            other_current
                .and_then(|o| o.as_array().cloned())
                .unwrap_or_default(),
        );
        if !current.is_empty() {
            st["currentMetrics"] = json!(current);
        }
        if let Some(c) = conditions {
            st["conditions"] = c;
        }
        out["status"] = st;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2() -> Value {
        json!({
            "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "minReplicas": 1, "maxReplicas": 4,
                "metrics": [
                    {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}},
                    {"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "100Mi"}}},
                ],
                "behavior": {"scaleDown": {"stabilizationWindowSeconds": 0}},
            },
            "status": {
                "currentReplicas": 2, "desiredReplicas": 3,
                "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 75}}}],
                "conditions": [{"type": "AbleToScale", "status": "True"}],
            },
        })
    }

    #[test]
    fn v1_shows_the_cpu_target_and_keeps_the_rest_in_annotations() {
        let r = builtin::find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v1 = present(r, &v2()).unwrap();
        assert_eq!(v1["apiVersion"], "autoscaling/v1");
        assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 50);
        assert_eq!(v1["status"]["currentCPUUtilizationPercentage"], 75);
        assert_eq!(v1["status"]["desiredReplicas"], 3);
        assert!(v1["metadata"]["annotations"][METRICS]
            .as_str()
            .unwrap()
            .contains("memory"));
        // And back: nothing lost.
        let (stored, back) = to_storage(r, &v1).unwrap();
        assert_eq!(stored.version, "v2");
        assert_eq!(back, v2());
        // The storage version is not converted.
        let r2 = builtin::find("autoscaling", "v2", "horizontalpodautoscalers").unwrap();
        assert!(present(r2, &v2()).is_none());
        assert!(to_storage(r2, &v2()).is_none());
    }

    #[test]
    fn what_kubectl_autoscale_writes_becomes_a_cpu_metric() {
        let r = builtin::find("autoscaling", "v1", "horizontalpodautoscalers").unwrap();
        let v1 = json!({
            "apiVersion": "autoscaling/v1", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "burn"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "burn"},
                     "minReplicas": 1, "maxReplicas": 4, "targetCPUUtilizationPercentage": 50},
        });
        let (_, v2) = to_storage(r, &v1).unwrap();
        assert_eq!(
            v2["spec"]["metrics"],
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 50}}}])
        );
        assert!(v2["metadata"].get("annotations").is_none());
    }
}
