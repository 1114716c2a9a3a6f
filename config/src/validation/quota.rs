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
        for k in names {
            let (min, max) = (get(&item.min, &k), get(&item.max, &k));
            let (default, request) = (get(&item.default, &k), get(&item.default_request, &k));
            let text = |m: &Option<std::collections::BTreeMap<String, Quantity>>| {
                m.as_ref()
                    .and_then(|m| m.get(&k))
                    .map(|q| q.0.clone())
                    .unwrap_or_default()
            };
            if let (Some(min), Some(max)) = (min, max) {
                if min > max {
                    errs.push(FieldError::invalid_str(
                        format!("{path}.min[{k}]"),
                        &text(&item.min),
                        format!(
                            "min value {} is greater than max value {}",
                            text(&item.min),
                            text(&item.max)
                        ),
                    ));
                }
            }
            if let (Some(request), Some(max)) = (request, max) {
                if request > max {
                    errs.push(FieldError::invalid_str(
                        format!("{path}.defaultRequest[{k}]"),
                        &text(&item.default_request),
                        format!(
                            "default request value {} is greater than max value {}",
                            text(&item.default_request),
                            text(&item.max)
                        ),
                    ));
                }
            }
            if let (Some(default), Some(max)) = (default, max) {
                if default > max {
                    errs.push(FieldError::invalid_str(
                        format!("{path}.default[{k}]"),
                        &text(&item.default),
                        format!(
                            "default value {} is greater than max value {}",
                            text(&item.default),
                            text(&item.max)
                        ),
                    ));
                }
            }
            if let (Some(min), Some(request)) = (min, request) {
                if min > request {
                    errs.push(FieldError::invalid_str(
                        format!("{path}.defaultRequest[{k}]"),
                        &text(&item.default_request),
                        format!(
                            "min value {} is greater than default request value {}",
                            text(&item.min),
                            text(&item.default_request)
                        ),
                    ));
                }
            }
            if let (Some(request), Some(default)) = (request, default) {
                if request > default {
                    errs.push(FieldError::invalid_str(
                        format!("{path}.defaultRequest[{k}]"),
                        &text(&item.default_request),
                        format!(
                            "default request value {} is greater than default limit value {}",
                            text(&item.default_request),
                            text(&item.default)
                        ),
                    ));
                }
            }
        }
    }
    errs
}
