//! LimitRanger (kube-apiserver's admission plugin): the LimitRanges of a
//! pod's namespace fill in each container's missing requests and limits
//! (`defaultRequest`, `default`) before the pod is validated, and refuse
//! one outside `min`, `max` or `maxLimitRequestRatio`, per Container or
//! summed per Pod, in Kubernetes' words.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use kedge_config::quantity::{parse_quantity, Quantity};

use super::super::registry::builtin;
use super::super::status::{ApiError, ApiResult};
use super::super::ApiState;

/// The LimitRange items of `namespace`.
fn items(state: &ApiState, namespace: &str) -> Vec<Value> {
    let Some(r) = builtin::find("", "v1", "limitranges") else {
        return Vec::new();
    };
    let (_, ranges) = state.cache.list(&r.namespace_prefix(Some(namespace)));
    ranges
        .iter()
        .flat_map(|(_, lr)| {
            lr.pointer("/spec/limits")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn containers_mut(pod: &mut Value) -> Vec<&mut Value> {
    let Some(spec) = pod.get_mut("spec").and_then(Value::as_object_mut) else {
        return Vec::new();
    };
    spec.iter_mut()
        .filter(|(k, _)| k.as_str() == "initContainers" || k.as_str() == "containers")
        .filter_map(|(_, v)| v.as_array_mut())
        .flatten()
        .collect()
}

/// Fill in missing requests and limits from the namespace's defaults.
pub fn default_pod(state: &ApiState, namespace: &str, pod: &mut Value) {
    let ranges: Vec<Value> = items(state, namespace)
        .into_iter()
        .filter(|i| i["type"] == "Container")
        .collect();
    if ranges.is_empty() {
        return;
    }
    for c in containers_mut(pod) {
        for item in &ranges {
            // A default limit is also the default request, as the
            // LimitRange's own defaulting makes it.
            let limits = item["default"].as_object().cloned().unwrap_or_default();
            let mut requests = item["defaultRequest"]
                .as_object()
                .cloned()
                .unwrap_or_default();
            for (k, v) in &limits {
                requests.entry(k.clone()).or_insert_with(|| v.clone());
            }
            for (field, defaults) in [("limits", &limits), ("requests", &requests)] {
                for (resource, value) in defaults {
                    let set = &mut c["resources"][field];
                    if !set.is_object() {
                        *set = json!({});
                    }
                    if set.get(resource).is_none() {
                        // A request defaults no higher than the limit given.
                        let limit = c["resources"]["limits"].get(resource).cloned();
                        let value = match (field, limit) {
                            ("requests", Some(l)) if less(&l, value) => l,
                            _ => value.clone(),
                        };
                        c["resources"][field][resource] = value;
                    }
                }
            }
        }
    }
}

fn q(v: &Value) -> Option<Quantity> {
    v.as_str().and_then(|s| parse_quantity(s).ok())
}

fn less(a: &Value, b: &Value) -> bool {
    matches!((q(a), q(b)), (Some(a), Some(b)) if a < b)
}

/// The violations of the namespace's ranges by `pod` (admitted), in
/// Kubernetes' words.
pub fn check_pod(state: &ApiState, namespace: &str, name: &str, pod: &Value) -> ApiResult<()> {
    let items = items(state, namespace);
    if items.is_empty() {
        return Ok(());
    }
    let containers: Vec<&Value> = ["initContainers", "containers"]
        .iter()
        .flat_map(|f| pod["spec"][f].as_array().into_iter().flatten())
        .collect();
    let mut errs = Vec::new();
    for item in &items {
        match item["type"].as_str() {
            Some("Container") => {
                for c in &containers {
                    let requests = resource_map(&c["resources"]["requests"]);
                    let limits = resource_map(&c["resources"]["limits"]);
                    check(item, "Container", &requests, &limits, &mut errs);
                }
            }
            Some("Pod") => {
                let mut requests = BTreeMap::new();
                let mut limits = BTreeMap::new();
                for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
                    add(&mut requests, &resource_map(&c["resources"]["requests"]));
                    add(&mut limits, &resource_map(&c["resources"]["limits"]));
                }
                check(item, "Pod", &requests, &limits, &mut errs);
            }
            _ => {}
        }
    }
    match errs.len() {
        0 => Ok(()),
        1 => Err(ApiError::forbidden(format!(
            "pods \"{name}\" is forbidden: {}",
            errs[0]
        ))),
        _ => Err(ApiError::forbidden(format!(
            "pods \"{name}\" is forbidden: [{}]",
            errs.join(", ")
        ))),
    }
}

/// An amount: its value in billionths and how it is written.
#[derive(Clone)]
struct Amount {
    nanos: i128,
    text: String,
}

fn resource_map(v: &Value) -> BTreeMap<String, Amount> {
    v.as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| {
                    let quantity = q(v)?;
                    Some((
                        k.clone(),
                        Amount {
                            nanos: quantity.as_nanos(),
                            text: quantity.to_string(),
                        },
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A sum written as Kubernetes would: millicores for CPU, else whole units.
fn sum_text(resource: &str, nanos: i128) -> String {
    if resource == "cpu" && nanos % 1_000_000_000 != 0 {
        format!("{}m", nanos / 1_000_000)
    } else {
        (nanos / 1_000_000_000).to_string()
    }
}

fn add(total: &mut BTreeMap<String, Amount>, more: &BTreeMap<String, Amount>) {
    for (k, v) in more {
        let nanos = total.get(k).map_or(0, |t| t.nanos) + v.nanos;
        total.insert(
            k.clone(),
            Amount {
                nanos,
                text: sum_text(k, nanos),
            },
        );
    }
}

fn check(
    item: &Value,
    kind: &str,
    requests: &BTreeMap<String, Amount>,
    limits: &BTreeMap<String, Amount>,
    errs: &mut Vec<String>,
) {
    for (resource, min) in resource_map(&item["min"]) {
        match requests.get(&resource) {
            Some(r) if r.nanos < min.nanos => errs.push(format!(
                "minimum {resource} usage per {kind} is {}, but request is {}",
                min.text, r.text
            )),
            None => errs.push(format!(
                "minimum {resource} usage per {kind} is {}.  No request is specified",
                min.text
            )),
            _ => {}
        }
    }
    for (resource, max) in resource_map(&item["max"]) {
        match limits.get(&resource) {
            Some(l) if l.nanos > max.nanos => errs.push(format!(
                "maximum {resource} usage per {kind} is {}, but limit is {}",
                max.text, l.text
            )),
            None => errs.push(format!(
                "maximum {resource} usage per {kind} is {}.  No limit is specified",
                max.text
            )),
            _ => {}
        }
    }
    for (resource, ratio) in resource_map(&item["maxLimitRequestRatio"]) {
        if let (Some(l), Some(r)) = (limits.get(&resource), requests.get(&resource)) {
            if r.nanos != 0 {
                let actual = l.nanos as f64 / r.nanos as f64;
                if actual > ratio.nanos as f64 / 1e9 {
                    errs.push(format!(
                        "{resource} max limit to request ratio per {kind} is {}, but provided ratio is {actual:.6}",
                        ratio.text
                    ));
                }
            }
        }
    }
}
