//! ResourceQuota admission (kube-apiserver's plugin): a create in a
//! namespace with quotas is charged against each quota that tracks what it
//! uses — object counts (`pods`, `services`, `configmaps`, `secrets`,
//! `count/<resource>[.<group>]`, …) and, for pods, the sums of their
//! containers' requests and limits (`requests.cpu` or `cpu`,
//! `limits.memory`, …). The charge is added to the quota's
//! `status.used` in the same write that checks it, so concurrent creates
//! cannot together pass a limit; the quota controller recounts from what
//! exists (and gives back what deleted objects used). Refusals are
//! kube-apiserver's 403s.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use kedge_config::quantity::parse_quantity;

use super::super::objects::{self, Part};
use super::super::registry::{builtin, Resource};
use super::super::request::{Query, ResourceRequest};
use super::super::status::{ApiError, ApiResult};
use super::super::ApiState;

/// The names a quota may give each count of `r`'s objects.
pub fn count_names(r: &Resource) -> Vec<String> {
    let mut names = vec![if r.group.is_empty() {
        format!("count/{}", r.plural)
    } else {
        format!("count/{}.{}", r.plural, r.group)
    }];
    if r.group.is_empty()
        && matches!(
            r.plural,
            "pods"
                | "services"
                | "configmaps"
                | "secrets"
                | "replicationcontrollers"
                | "resourcequotas"
                | "persistentvolumeclaims"
        )
    {
        names.push(r.plural.to_string());
    }
    names
}

/// What a pod's containers ask for, summed, by quota resource name, in
/// billionths.
pub fn pod_usage(pod: &Value) -> BTreeMap<String, i128> {
    let mut out = BTreeMap::new();
    for c in pod["spec"]["containers"].as_array().into_iter().flatten() {
        for (field, prefix) in [("requests", "requests."), ("limits", "limits.")] {
            for (resource, v) in c["resources"][field].as_object().into_iter().flatten() {
                if let Some(quantity) = v.as_str().and_then(|s| parse_quantity(s).ok()) {
                    *out.entry(format!("{prefix}{resource}")).or_insert(0) += quantity.as_nanos();
                    if field == "requests" {
                        *out.entry(resource.clone()).or_insert(0) += quantity.as_nanos();
                    }
                }
            }
        }
    }
    out
}

/// Whether a pod counts against a quota (terminal pods do not).
pub fn pod_counts(pod: &Value) -> bool {
    !matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

/// A quantity in billionths written back as Kubernetes writes it.
pub fn format_amount(name: &str, nanos: i128) -> String {
    let whole = nanos % 1_000_000_000 == 0;
    if name.ends_with("cpu") && !whole {
        format!("{}m", nanos / 1_000_000)
    } else {
        let units = nanos / 1_000_000_000;
        if name.ends_with("memory") || name.ends_with("storage") {
            for (suffix, size) in [("Gi", 1i128 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
                if units != 0 && units % size == 0 {
                    return format!("{}{suffix}", units / size);
                }
            }
        }
        units.to_string()
    }
}

fn amount(v: &Value) -> Option<i128> {
    v.as_str()
        .and_then(|s| parse_quantity(s).ok())
        .map(|q| q.as_nanos())
}

/// Charge the creation of `obj` (of `r`, named `name`) to the quotas of
/// `namespace`, or refuse it.
pub fn charge(
    state: &ApiState,
    r: &Resource,
    namespace: &str,
    name: &str,
    obj: &Value,
    dry_run: bool,
) -> ApiResult<()> {
    let quotas_r = builtin::find("", "v1", "resourcequotas").expect("quotas are served");
    let (_, quotas) = state
        .cache
        .list(&quotas_r.namespace_prefix(Some(namespace)));
    if quotas.is_empty() {
        return Ok(());
    }
    // What the object uses, by every name a quota may track it under.
    let mut usage: BTreeMap<String, i128> = BTreeMap::new();
    let is_pod = r.group.is_empty() && r.plural == "pods";
    if !is_pod || pod_counts(obj) {
        for n in count_names(r) {
            usage.insert(n, 1_000_000_000);
        }
    }
    let pod = is_pod.then(|| pod_usage(obj));
    if let Some(p) = &pod {
        usage.extend(p.clone());
    }
    for (_, quota) in &quotas {
        let quota_name = quota
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let hard = quota["spec"]["hard"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        // A compute resource the quota tracks must be asked for.
        if is_pod {
            let missing: Vec<&String> = hard
                .keys()
                .filter(|k| {
                    k.starts_with("requests.")
                        || k.starts_with("limits.")
                        || matches!(k.as_str(), "cpu" | "memory")
                })
                .filter(|k| !usage.contains_key(*k))
                .collect();
            if !missing.is_empty() {
                let list: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
                return Err(ApiError::forbidden(format!(
                    "{} \"{name}\" is forbidden: failed quota: {quota_name}: must specify {}",
                    r.plural,
                    list.join(",")
                )));
            }
        }
        let charged: Vec<&String> = hard.keys().filter(|k| usage.contains_key(*k)).collect();
        if charged.is_empty() {
            continue;
        }
        let refusal = |used: &BTreeMap<String, i128>| -> Option<ApiError> {
            let over: Vec<&String> = charged
                .iter()
                .copied()
                .filter(|k| {
                    let limit = amount(&hard[k.as_str()]).unwrap_or(0);
                    used.get(*k).copied().unwrap_or(0) + usage[*k] > limit
                })
                .collect();
            if over.is_empty() {
                return None;
            }
            let list = |f: &dyn Fn(&str) -> i128| {
                over.iter()
                    .map(|k| format!("{k}={}", format_amount(k, f(k))))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            Some(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: exceeded quota: {quota_name}, requested: {}, used: {}, limited: {}",
                r.plural,
                list(&|k| usage[k]),
                list(&|k| used.get(k).copied().unwrap_or(0)),
                list(&|k| amount(&hard[k]).unwrap_or(0)),
            )))
        };
        let quota_req = ResourceRequest {
            resource: quotas_r,
            namespace: Some(namespace.to_string()),
            name: Some(quota_name.clone()),
            subresource: Some("status".into()),
            legacy_watch: false,
            user: super::super::auth::authn::UserInfo::apiserver(),
        };
        let used_of = |q: &Value| -> BTreeMap<String, i128> {
            q["status"]["used"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), amount(v)?)))
                        .collect()
                })
                .unwrap_or_default()
        };
        if quota["status"]["hard"].is_null() {
            return Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: status unknown for quota: {quota_name}, resources: {}",
                r.plural,
                charged
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )));
        }
        if dry_run {
            if let Some(e) = refusal(&used_of(quota)) {
                return Err(e);
            }
            continue;
        }
        objects::update_with(
            state,
            &quota_req,
            &Query::default(),
            Part::Status,
            |current| {
                let mut used = used_of(current);
                if let Some(e) = refusal(&used) {
                    return Err(e);
                }
                let mut new = current.clone();
                for k in &charged {
                    let total = used.entry((*k).clone()).or_insert(0);
                    *total += usage[*k];
                    new["status"]["used"][k.as_str()] = json!(format_amount(k, *total));
                }
                Ok(new)
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_charged_its_containers_requests_and_limits() {
        let pod = json!({"spec": {"containers": [
            {"name": "a", "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}},
            {"name": "b", "resources": {"requests": {"cpu": "250m"}}},
        ]}});
        let usage = pod_usage(&pod);
        assert_eq!(format_amount("requests.cpu", usage["requests.cpu"]), "350m");
        assert_eq!(format_amount("cpu", usage["cpu"]), "350m");
        assert_eq!(
            format_amount("requests.memory", usage["requests.memory"]),
            "64Mi"
        );
        assert_eq!(format_amount("limits.cpu", usage["limits.cpu"]), "1");
        assert!(!usage.contains_key("limits.memory"));
        assert!(pod_counts(&pod));
        assert!(!pod_counts(&json!({"status": {"phase": "Succeeded"}})));
        assert_eq!(format_amount("pods", 3_000_000_000), "3");
    }
}
