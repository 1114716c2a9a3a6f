//! ResourceQuota and LimitRange (v1), as kube-apiserver validates them:
//! quantities that are not negative, LimitRange item types it knows and
//! bounds in order (min ≤ default request ≤ default ≤ max).

use k8s_openapi::api::core::v1::{LimitRange, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::meta::{validate_object_meta, NameRule};
use super::FieldError;
use crate::quantity::parse_quantity;

fn nanos(q: &Quantity) -> Option<i128> {
    parse_quantity(&q.0).ok().map(|q| q.as_nanos())
}

/// Validate a ResourceQuota.
pub fn validate_resource_quota(q: &ResourceQuota) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&q.metadata, NameRule::Subdomain, "metadata");
    for (name, value) in q
        .spec
        .as_ref()
        .and_then(|s| s.hard.as_ref())
        .into_iter()
        .flatten()
    {
        let path = format!("spec.hard[{name}]");
        match nanos(value) {
            None => errs.push(FieldError::invalid_str(
                path,
                &value.0,
                "must be a quantity",
            )),
            Some(n) if n < 0 => errs.push(FieldError::invalid_str(
                path,
                &value.0,
                "must be greater than or equal to 0",
            )),
            _ => {}
        }
    }
    errs
}

/// Validate a LimitRange.
pub fn validate_limit_range(lr: &LimitRange) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&lr.metadata, NameRule::Subdomain, "metadata");
    let Some(spec) = &lr.spec else {
        return errs;
    };
    for (i, item) in spec.limits.iter().enumerate() {
        let path = format!("spec.limits[{i}]");
        let kinds = ["Container", "PersistentVolumeClaim", "Pod"];
        if !kinds.contains(&item.type_.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{path}.type"),
                &item.type_,
                &kinds,
            ));
        }
        let get = |m: &Option<std::collections::BTreeMap<String, Quantity>>, k: &str| {
            m.as_ref().and_then(|m| m.get(k)).and_then(nanos)
        };
        let mut names = std::collections::BTreeSet::new();
        for m in [&item.min, &item.max, &item.default, &item.default_request] {
            names.extend(m.iter().flatten().map(|(k, _)| k.clone()));
        }
        // Each bound no higher than the next, reported at `field`, in
        // Kubernetes' words.
        let order = [
            (
                &item.min,
                "min value",
                &item.max,
                "max value",
                "min",
                &item.min,
            ),
            (
                &item.default_request,
                "default request value",
                &item.max,
                "max value",
                "defaultRequest",
                &item.default_request,
            ),
            (
                &item.default,
                "default value",
                &item.max,
                "max value",
                "default",
                &item.default,
            ),
            (
                &item.min,
                "min value",
                &item.default_request,
                "default request value",
                "defaultRequest",
                &item.default_request,
            ),
            (
                &item.default_request,
                "default request value",
                &item.default,
                "default limit value",
                "defaultRequest",
                &item.default_request,
            ),
        ];
        for k in names {
            let text = |m: &Option<std::collections::BTreeMap<String, Quantity>>| {
                m.as_ref()
                    .and_then(|m| m.get(&k))
                    .map(|q| q.0.clone())
                    .unwrap_or_default()
            };
            for (low, low_name, high, high_name, field, shown) in order {
                if let (Some(l), Some(h)) = (get(low, &k), get(high, &k)) {
                    if l > h {
                        errs.push(FieldError::invalid_str(
                            format!("{path}.{field}[{k}]"),
                            &text(shown),
                            format!(
                                "{low_name} {} is greater than {high_name} {}",
                                text(low),
                                text(high)
                            ),
                        ));
                    }
                }
            }
        }
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_range_bounds_are_in_order() {
        let lr: LimitRange = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "l"},
            "spec": {"limits": [{"type": "Container", "min": {"cpu": "2"}, "max": {"cpu": "1"}, "defaultRequest": {"cpu": "500m"}}]},
        }))
        .unwrap();
        let errs: Vec<String> = validate_limit_range(&lr)
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert!(
            errs.iter().any(|e| e.contains("spec.limits[0].min[cpu]")
                && e.contains("min value 2 is greater than max value 1")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("spec.limits[0].defaultRequest[cpu]")
                    && e.contains("min value 2 is greater than default request value 500m")),
            "{errs:?}"
        );
        let bad: LimitRange = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "l"}, "spec": {"limits": [{"type": "Node"}]},
        }))
        .unwrap();
        assert_eq!(validate_limit_range(&bad).len(), 1);
    }
}
