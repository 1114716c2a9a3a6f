//! Validation of the RBAC kinds (`rbac.authorization.k8s.io/v1`), as
//! Kubernetes' `pkg/apis/rbac/validation`.

use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::Value;

use super::meta::{validate_object_meta, NameRule};
use super::FieldError;

const GROUP: &str = "rbac.authorization.k8s.io";

/// Role names are path segments: `system:node` is fine, `a/b` is not.
fn path_segment_errors(meta: &ObjectMeta) -> Vec<FieldError> {
    let mut errs = validate_object_meta(meta, NameRule::Any, "metadata");
    let name = meta.name.as_deref().unwrap_or("");
    let bad = if name == "." || name == ".." {
        Some(format!("may not be '{name}'"))
    } else {
        ["/", "%"]
            .iter()
            .find(|c| name.contains(*c))
            .map(|c| format!("may not contain '{c}'"))
    };
    if let Some(detail) = bad {
        errs.push(FieldError::invalid_str("metadata.name", name, detail));
    }
    errs
}

fn validate_rules(rules: &[PolicyRule], namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, rule) in rules.iter().enumerate() {
        let path = format!("rules[{i}]");
        if rule.verbs.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = rule.non_resource_urls.as_deref().unwrap_or_default();
        let resources = rule.resources.as_deref().unwrap_or_default();
        if !urls.is_empty() {
            if namespaced {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    format!("{urls:?}").replace(", ", " "),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !resources.is_empty() || rule.api_groups.as_ref().is_some_and(|g| !g.is_empty()) {
                errs.push(FieldError::invalid(
                    format!("{path}.nonResourceURLs"),
                    format!("{urls:?}").replace(", ", " "),
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if rule.api_groups.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required(
                format!("{path}.apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if resources.is_empty() {
            errs.push(FieldError::required(
                format!("{path}.resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
}

/// Role.
pub fn validate_role(r: &Role) -> Vec<FieldError> {
    let mut errs = path_segment_errors(&r.metadata);
    validate_rules(r.rules.as_deref().unwrap_or_default(), true, &mut errs);
    errs
}

/// ClusterRole.
pub fn validate_cluster_role(r: &ClusterRole) -> Vec<FieldError> {
    let mut errs = path_segment_errors(&r.metadata);
    validate_rules(r.rules.as_deref().unwrap_or_default(), false, &mut errs);
    if let Some(a) = &r.aggregation_rule {
        if a.cluster_role_selectors.as_ref().is_none_or(Vec::is_empty) {
            errs.push(FieldError::required(
                "aggregationRule.clusterRoleSelectors",
                "at least one clusterRoleSelector required if aggregationRule is non-nil",
            ));
        }
    }
    errs
}

fn validate_role_ref(r: &RoleRef, namespaced: bool, errs: &mut Vec<FieldError>) {
    if r.api_group != GROUP {
        errs.push(FieldError::not_supported(
            "roleRef.apiGroup",
            &r.api_group,
            &[GROUP],
        ));
    }
    let kinds: &[&str] = if namespaced {
        &["Role", "ClusterRole"]
    } else {
        &["ClusterRole"]
    };
    if !kinds.contains(&r.kind.as_str()) {
        errs.push(FieldError::not_supported("roleRef.kind", &r.kind, kinds));
    }
    if r.name.is_empty() {
        errs.push(FieldError::required("roleRef.name", ""));
    }
}

fn validate_subjects(subjects: &[Subject], namespaced: bool, errs: &mut Vec<FieldError>) {
    for (i, s) in subjects.iter().enumerate() {
        let path = format!("subjects[{i}]");
        if s.name.is_empty() {
            errs.push(FieldError::required(format!("{path}.name"), ""));
        }
        let group = s.api_group.as_deref().unwrap_or("");
        match s.kind.as_str() {
            "ServiceAccount" => {
                if !group.is_empty() {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        group,
                        &[""],
                    ));
                }
                if !namespaced && s.namespace.as_deref().unwrap_or("").is_empty() {
                    errs.push(FieldError::required(format!("{path}.namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != GROUP {
                    errs.push(FieldError::not_supported(
                        format!("{path}.apiGroup"),
                        group,
                        &[GROUP],
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                format!("{path}.kind"),
                other,
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
}

/// RoleBinding.
pub fn validate_role_binding(b: &RoleBinding) -> Vec<FieldError> {
    let mut errs = path_segment_errors(&b.metadata);
    validate_role_ref(&b.role_ref, true, &mut errs);
    validate_subjects(b.subjects.as_deref().unwrap_or_default(), true, &mut errs);
    errs
}

/// ClusterRoleBinding.
pub fn validate_cluster_role_binding(b: &ClusterRoleBinding) -> Vec<FieldError> {
    let mut errs = path_segment_errors(&b.metadata);
    validate_role_ref(&b.role_ref, false, &mut errs);
    validate_subjects(b.subjects.as_deref().unwrap_or_default(), false, &mut errs);
    errs
}

/// A binding's `roleRef` cannot change (delete and recreate the binding).
pub fn validate_binding_update(old: &Value, new: &Value) -> Vec<FieldError> {
    if old.get("roleRef") != new.get("roleRef") {
        return vec![FieldError::invalid(
            "roleRef",
            render_role_ref(new.get("roleRef")),
            "cannot change roleRef",
        )];
    }
    Vec::new()
}

fn render_role_ref(v: Option<&Value>) -> String {
    let s = |k: &str| {
        v.and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    format!(
        "rbac.RoleRef{{APIGroup:\"{}\", Kind:\"{}\", Name:\"{}\"}}",
        s("apiGroup"),
        s("kind"),
        s("name")
    )
}

/// Subjects default their apiGroup as Kubernetes does (`rbac.authorization.k8s.io`
/// for users and groups, empty for ServiceAccounts).
pub fn default_subjects(subjects: &mut [Subject]) {
    for s in subjects {
        if s.api_group.is_none() {
            s.api_group = match s.kind.as_str() {
                "User" | "Group" => Some(GROUP.to_string()),
                "ServiceAccount" => Some(String::new()),
                _ => None,
            };
        }
    }
}
