//! RBAC (`rbac.authorization.k8s.io/v1`): the authorizer, which allows what
//! some rule of a role bound to the user allows; the rules a user holds
//! (SelfSubjectRulesReview, escalation checks); escalation prevention on
//! writes of roles and bindings; and the bootstrap policy (`policy`).
//!
//! Rules are read from the watch cache on every decision, so a Role and
//! RoleBinding take effect as soon as they are written.

pub mod escalation;
pub mod policy;

use serde_json::Value;

use super::authn::UserInfo;
use super::authz::{Attributes, Decision};
use crate::store::WatchCache;

/// The API group of RBAC.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// The key prefix of a kind's objects in the store.
fn prefix(plural: &str) -> String {
    format!("/{GROUP}/{plural}/")
}

fn strings<'a>(v: &'a Value, field: &str) -> impl Iterator<Item = &'a str> {
    v.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
}

fn str_of<'a>(v: &'a Value, pointer: &str) -> &'a str {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or("")
}

/// Whether a binding's subject is `user`. A ServiceAccount subject of a
/// RoleBinding without a namespace is in the binding's namespace.
pub fn subject_matches(subject: &Value, user: &UserInfo, binding_namespace: &str) -> bool {
    let name = str_of(subject, "/name");
    match str_of(subject, "/kind") {
        "User" => user.name == name,
        "Group" => user.in_group(name),
        "ServiceAccount" => {
            let ns = match str_of(subject, "/namespace") {
                "" => binding_namespace,
                ns => ns,
            };
            !ns.is_empty() && user.as_service_account() == Some((ns, name))
        }
        _ => false,
    }
}

/// Whether one policy rule allows `attrs`.
pub fn rule_allows(rule: &Value, attrs: &Attributes) -> bool {
    let has = |field: &str, want: &str| strings(rule, field).any(|s| s == "*" || s == want);
    if !has("verbs", &attrs.verb) {
        return false;
    }
    if !attrs.resource_request {
        return strings(rule, "nonResourceURLs").any(|u| {
            u == "*"
                || u == attrs.path
                || u.strip_suffix('*')
                    .is_some_and(|p| attrs.path.starts_with(p))
        });
    }
    if !has("apiGroups", &attrs.api_group) {
        return false;
    }
    let combined = attrs.combined_resource();
    let resource_ok = strings(rule, "resources").any(|r| {
        r == "*"
            || r == combined
            || (!attrs.subresource.is_empty()
                && r.strip_prefix("*/") == Some(attrs.subresource.as_str()))
    });
    if !resource_ok {
        return false;
    }
    let mut names = strings(rule, "resourceNames").peekable();
    names.peek().is_none() || names.any(|n| n == attrs.name)
}

/// The rules of the role a binding refers to; an error naming it when it
/// is missing.
pub(super) fn role_rules(
    cache: &WatchCache,
    binding: &Value,
    binding_namespace: &str,
) -> Result<Vec<Value>, String> {
    let name = str_of(binding, "/roleRef/name");
    // Keys are `<prefix><namespace>/<name>`, the namespace empty for
    // cluster-scoped kinds.
    let (key, what) = match str_of(binding, "/roleRef/kind") {
        "ClusterRole" => (
            format!("{}/{name}", prefix("clusterroles")),
            format!("clusterrole.{GROUP} {name:?} not found"),
        ),
        "Role" => (
            format!("{}{binding_namespace}/{name}", prefix("roles")),
            format!("role.{GROUP} {name:?} not found"),
        ),
        _ => {
            return Err(format!(
                "unknown roleRef kind in binding {:?}",
                str_of(binding, "/metadata/name")
            ))
        }
    };
    let role = cache.get(&key).ok_or(what)?;
    Ok(role
        .get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default())
}

/// Visit the rules of every role bound to `user` at the cluster scope and,
/// when `namespace` is not empty, in that namespace; `visit` returns true
/// to stop. Missing roles are collected as errors.
fn visit_rules(
    cache: &WatchCache,
    user: &UserInfo,
    namespace: &str,
    mut visit: impl FnMut(&Value) -> bool,
) -> Vec<String> {
    let mut errors = Vec::new();
    // Only the user's bindings are copied out of the cache; their roles
    // are read after, outside its lock.
    let cluster = cache.select(&prefix("clusterrolebindings"), |b| {
        strings_of_subjects(b).any(|s| subject_matches(s, user, ""))
    });
    for b in &cluster {
        match role_rules(cache, b, "") {
            Ok(rules) => {
                if rules.iter().any(&mut visit) {
                    return errors;
                }
            }
            Err(e) => errors.push(e),
        }
    }
    if namespace.is_empty() {
        return errors;
    }
    let local = cache.select(&format!("{}{namespace}/", prefix("rolebindings")), |b| {
        strings_of_subjects(b).any(|s| subject_matches(s, user, namespace))
    });
    for b in &local {
        match role_rules(cache, b, namespace) {
            Ok(rules) => {
                if rules.iter().any(&mut visit) {
                    return errors;
                }
            }
            Err(e) => errors.push(e),
        }
    }
    errors
}

fn strings_of_subjects(binding: &Value) -> impl Iterator<Item = &Value> {
    binding
        .get("subjects")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

/// The RBAC authorizer.
pub fn authorize(cache: &WatchCache, user: &UserInfo, attrs: &Attributes) -> Decision {
    let mut allowed = false;
    let errors = visit_rules(cache, user, &attrs.namespace, |rule| {
        allowed = rule_allows(rule, attrs);
        allowed
    });
    if allowed {
        return Decision::Allow;
    }
    if errors.is_empty() {
        Decision::NoOpinion(String::new())
    } else {
        Decision::NoOpinion(format!("RBAC: [{}]", errors.join(", ")))
    }
}

/// Every rule `user` holds in `namespace` (cluster-wide ones included),
/// and the errors met (missing roles).
pub fn rules_for(
    cache: &WatchCache,
    user: &UserInfo,
    namespace: &str,
) -> (Vec<Value>, Vec<String>) {
    let mut rules = Vec::new();
    let errors = visit_rules(cache, user, namespace, |r| {
        rules.push(r.clone());
        false
    });
    (rules, errors)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(verb: &str, group: &str, resource: &str, name: &str) -> Attributes {
        Attributes::resource(verb, group, resource, "ns", name)
    }

    #[test]
    fn rules_match_verbs_groups_resources_and_names() {
        let rule =
            json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]});
        assert!(rule_allows(&rule, &attrs("get", "", "pods", "a")));
        assert!(!rule_allows(&rule, &attrs("delete", "", "pods", "a")));
        assert!(!rule_allows(&rule, &attrs("get", "apps", "pods", "a")));
        let mut log = attrs("get", "", "pods", "a");
        log.subresource = "log".into();
        assert!(rule_allows(&rule, &log));
        log.subresource = "exec".into();
        assert!(!rule_allows(&rule, &log));
        let star = json!({"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]});
        let mut scale = attrs("update", "apps", "deployments", "w");
        scale.subresource = "scale".into();
        assert!(rule_allows(&star, &scale));
        let named = json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["one"], "verbs": ["get"]});
        assert!(rule_allows(&named, &attrs("get", "", "configmaps", "one")));
        assert!(!rule_allows(&named, &attrs("get", "", "configmaps", "two")));
        assert!(!rule_allows(&named, &attrs("get", "", "configmaps", "")));
    }

    #[test]
    fn non_resource_urls_match_exactly_or_by_prefix() {
        let rule = json!({"nonResourceURLs": ["/healthz", "/apis/*"], "verbs": ["get"]});
        let path = |p: &str| Attributes {
            verb: "get".into(),
            path: p.into(),
            ..Default::default()
        };
        assert!(rule_allows(&rule, &path("/healthz")));
        assert!(rule_allows(&rule, &path("/apis/apps")));
        assert!(!rule_allows(&rule, &path("/api")));
    }

    #[test]
    fn subjects() {
        let sa = UserInfo::service_account("ns", "robot", "");
        assert!(subject_matches(
            &json!({"kind": "ServiceAccount", "name": "robot"}),
            &sa,
            "ns"
        ));
        assert!(!subject_matches(
            &json!({"kind": "ServiceAccount", "name": "robot"}),
            &sa,
            "other"
        ));
        assert!(subject_matches(
            &json!({"kind": "Group", "name": "system:serviceaccounts"}),
            &sa,
            ""
        ));
        assert!(!subject_matches(
            &json!({"kind": "User", "name": "robot"}),
            &sa,
            ""
        ));
    }
}
