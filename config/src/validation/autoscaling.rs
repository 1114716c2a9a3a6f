//! HorizontalPodAutoscaler (autoscaling/v2), as kube-apiserver validates
//! it (`pkg/apis/autoscaling/validation`): replica bounds, the scale
//! target, resource metrics and their targets, and `behavior`.

use k8s_openapi::api::autoscaling::v2::{
    HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricTarget,
};

use super::meta::{validate_object_meta, NameRule};
use super::FieldError;

/// The longest stabilization window (one hour).
const MAX_STABILIZATION_SECONDS: i32 = 3600;
/// The longest policy period (half an hour).
const MAX_PERIOD_SECONDS: i32 = 1800;

/// Validate a HorizontalPodAutoscaler.
pub fn validate_horizontal_pod_autoscaler(hpa: &HorizontalPodAutoscaler) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&hpa.metadata, NameRule::Subdomain, "metadata");
    let Some(spec) = &hpa.spec else {
        errs.push(FieldError::required("spec", ""));
        return errs;
    };
    if let Some(min) = spec.min_replicas {
        if min < 1 {
            errs.push(FieldError::invalid_int(
                "spec.minReplicas",
                min.into(),
                "must be greater than or equal to 1",
            ));
        }
    }
    if spec.max_replicas < 1 {
        errs.push(FieldError::invalid_int(
            "spec.maxReplicas",
            spec.max_replicas.into(),
            "must be greater than 0",
        ));
    }
    if let Some(min) = spec.min_replicas {
        if spec.max_replicas < min {
            errs.push(FieldError::invalid_int(
                "spec.maxReplicas",
                spec.max_replicas.into(),
                "must be greater than or equal to `minReplicas`",
            ));
        }
    }
    let target = &spec.scale_target_ref;
    if target.kind.is_empty() {
        errs.push(FieldError::required("spec.scaleTargetRef.kind", ""));
    }
    if target.name.is_empty() {
        errs.push(FieldError::required("spec.scaleTargetRef.name", ""));
    } else if target.name.contains('/') || target.name.contains('%') {
        errs.push(FieldError::invalid_str(
            "spec.scaleTargetRef.name",
            &target.name,
            "may not contain '/' or '%'",
        ));
    }
    for (i, m) in spec.metrics.iter().flatten().enumerate() {
        errs.extend(validate_metric(m, &format!("spec.metrics[{i}]")));
    }
    if let Some(b) = &spec.behavior {
        if let Some(up) = &b.scale_up {
            errs.extend(validate_rules(up, "spec.behavior.scaleUp"));
        }
        if let Some(down) = &b.scale_down {
            errs.extend(validate_rules(down, "spec.behavior.scaleDown"));
        }
    }
    errs
}

fn validate_metric(m: &MetricSpec, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let kinds = [
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    let target = match m.type_.as_str() {
        "Resource" => match &m.resource {
            Some(r) => {
                if r.name.is_empty() {
                    errs.push(FieldError::required(format!("{path}.resource.name"), ""));
                }
                Some((&r.target, format!("{path}.resource.target")))
            }
            None => {
                errs.push(FieldError::required(
                    format!("{path}.resource"),
                    "must populate information for the given metric source",
                ));
                None
            }
        },
        "ContainerResource" => match &m.container_resource {
            Some(r) => {
                if r.container.is_empty() {
                    errs.push(FieldError::required(
                        format!("{path}.containerResource.container"),
                        "",
                    ));
                }
                Some((&r.target, format!("{path}.containerResource.target")))
            }
            None => {
                errs.push(FieldError::required(
                    format!("{path}.containerResource"),
                    "must populate information for the given metric source",
                ));
                None
            }
        },
        "External" | "Object" | "Pods" => None,
        "" => {
            errs.push(FieldError::required(
                format!("{path}.type"),
                "must specify a metric source type",
            ));
            None
        }
        other => {
            errs.push(FieldError::not_supported(
                format!("{path}.type"),
                other,
                &kinds,
            ));
            None
        }
    };
    if let Some((t, tpath)) = target {
        errs.extend(validate_target(t, &tpath));
    }
    errs
}

fn validate_target(t: &MetricTarget, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match t.type_.as_str() {
        "Utilization" => match t.average_utilization {
            Some(u) if u <= 0 => errs.push(FieldError::invalid_int(
                format!("{path}.averageUtilization"),
                u.into(),
                "must be greater than 0",
            )),
            Some(_) => {}
            None => errs.push(FieldError::required(
                format!("{path}.averageUtilization"),
                "must set averageUtilization when type is Utilization",
            )),
        },
        "AverageValue" => match &t.average_value {
            Some(q) if q.0.trim_start().starts_with('-') || is_zero(&q.0) => errs.push(
                FieldError::invalid_str(format!("{path}.averageValue"), &q.0, "must be positive"),
            ),
            Some(_) => {}
            None => errs.push(FieldError::required(
                format!("{path}.averageValue"),
                "must set averageValue when type is AverageValue",
            )),
        },
        "Value" => {
            if t.value.is_none() {
                errs.push(FieldError::required(
                    format!("{path}.value"),
                    "must set value when type is Value",
                ));
            }
        }
        "" => errs.push(FieldError::required(
            format!("{path}.type"),
            "must specify a metric target type",
        )),
        other => errs.push(FieldError::not_supported(
            format!("{path}.type"),
            other,
            &["AverageValue", "Utilization", "Value"],
        )),
    }
    errs
}

fn is_zero(q: &str) -> bool {
    q.trim()
        .trim_end_matches(|c: char| c.is_ascii_alphabetic())
        .parse::<f64>()
        .is_ok_and(|v| v == 0.0)
}

fn validate_rules(r: &HPAScalingRules, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(w) = r.stabilization_window_seconds {
        if !(0..=MAX_STABILIZATION_SECONDS).contains(&w) {
            errs.push(FieldError::invalid_int(
                format!("{path}.stabilizationWindowSeconds"),
                w.into(),
                format!("must be less than or equal to {MAX_STABILIZATION_SECONDS} and greater than or equal to 0"),
            ));
        }
    }
    if let Some(p) = &r.select_policy {
        if !["Disabled", "Max", "Min"].contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{path}.selectPolicy"),
                p,
                &["Disabled", "Max", "Min"],
            ));
        }
    }
    let policies = r.policies.as_deref().unwrap_or_default();
    if r.policies.is_some() && policies.is_empty() {
        errs.push(FieldError::required(
            format!("{path}.policies"),
            "must specify at least one Policy",
        ));
    }
    for (i, p) in policies.iter().enumerate() {
        let at = format!("{path}.policies[{i}]");
        if !["Percent", "Pods"].contains(&p.type_.as_str()) {
            errs.push(FieldError::not_supported(
                format!("{at}.type"),
                &p.type_,
                &["Percent", "Pods"],
            ));
        }
        if p.value <= 0 {
            errs.push(FieldError::invalid_int(
                format!("{at}.value"),
                p.value.into(),
                "must be greater than zero",
            ));
        }
        if p.period_seconds <= 0 || p.period_seconds > MAX_PERIOD_SECONDS {
            errs.push(FieldError::invalid_int(
                format!("{at}.periodSeconds"),
                p.period_seconds.into(),
                format!("must be greater than zero and less than or equal to {MAX_PERIOD_SECONDS}"),
            ));
        }
    }
    errs
}
