//! PodDisruptionBudget (policy/v1), as kube-apiserver validates it: one of
//! `minAvailable` and `maxUnavailable`, each a non-negative count or a
//! percentage up to 100 %, a valid selector and eviction policy.

use k8s_openapi::api::policy::v1::PodDisruptionBudget;

use super::apps::{not_more_than_100_percent, validate_positive_int_or_percent};
use super::meta::{validate_label_selector, validate_object_meta, NameRule};
use super::FieldError;

/// Validate a PodDisruptionBudget.
pub fn validate_pod_disruption_budget(pdb: &PodDisruptionBudget) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&pdb.metadata, NameRule::Subdomain, "metadata");
    let Some(spec) = &pdb.spec else {
        return errs;
    };
    if spec.min_available.is_some() && spec.max_unavailable.is_some() {
        errs.push(FieldError::invalid(
            "spec",
            "",
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for (v, path) in [
        (spec.min_available.as_ref(), "spec.minAvailable"),
        (spec.max_unavailable.as_ref(), "spec.maxUnavailable"),
    ] {
        errs.extend(validate_positive_int_or_percent(v, path));
        errs.extend(not_more_than_100_percent(v, path));
    }
    if let Some(sel) = &spec.selector {
        errs.extend(validate_label_selector(sel, "spec.selector"));
    }
    if let Some(p) = &spec.unhealthy_pod_eviction_policy {
        let allowed = ["AlwaysAllow", "IfHealthyBudget"];
        if !allowed.contains(&p.as_str()) {
            errs.push(FieldError::not_supported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                &allowed,
            ));
        }
    }
    errs
}
