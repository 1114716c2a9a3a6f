//! Escalation prevention: nobody writes a role granting, or a binding to a
//! role holding, a permission they do not hold themselves — unless RBAC
//! gives them `escalate` on the role (for roles) or `bind` on it (for
//! bindings), as Kubernetes' RBAC storage enforces.

use serde_json::Value;

use super::{role_rules, rules_for, str_of, strings, GROUP};
use crate::apiserver::auth::authn::UserInfo;
use crate::apiserver::auth::authz::{self, Attributes};
use crate::apiserver::registry::Resource;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::ApiState;

/// One permission: a verb on a group's resource (with a name), or a verb
/// on a path.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Atom<'a> {
    Resource {
        verb: &'a str,
        group: &'a str,
        resource: &'a str,
        name: Option<&'a str>,
    },
    Path {
        verb: &'a str,
        url: &'a str,
    },
}

/// A rule broken into the single permissions it grants.
fn atoms(rule: &Value) -> Vec<Atom<'_>> {
    let mut out = Vec::new();
    for verb in strings(rule, "verbs") {
        for url in strings(rule, "nonResourceURLs") {
            out.push(Atom::Path { verb, url });
        }
        for group in strings(rule, "apiGroups") {
            for resource in strings(rule, "resources") {
                let mut names = strings(rule, "resourceNames").peekable();
                if names.peek().is_none() {
                    out.push(Atom::Resource {
                        verb,
                        group,
                        resource,
                        name: None,
                    });
                }
                for name in names {
                    out.push(Atom::Resource {
                        verb,
                        group,
                        resource,
                        name: Some(name),
                    });
                }
            }
        }
    }
    out
}

/// Whether an owner's rule grants all of `atom`.
fn rule_covers(owner: &Value, atom: &Atom<'_>) -> bool {
    let has = |field: &str, want: &str| strings(owner, field).any(|s| s == "*" || s == want);
    match atom {
        Atom::Path { verb, url } => {
            has("verbs", verb)
                && strings(owner, "nonResourceURLs").any(|o| {
                    o == "*" || o == *url || o.strip_suffix('*').is_some_and(|p| url.starts_with(p))
                })
        }
        Atom::Resource {
            verb,
            group,
            resource,
            name,
        } => {
            let resource_ok = strings(owner, "resources").any(|o| {
                o == "*"
                    || o == *resource
                    || (o.starts_with("*/")
                        && resource
                            .split_once('/')
                            .is_some_and(|(_, sub)| o[2..] == *sub))
            });
            let mut owner_names = strings(owner, "resourceNames").peekable();
            let name_ok =
                owner_names.peek().is_none() || name.is_some_and(|n| owner_names.any(|o| o == n));
            has("verbs", verb) && has("apiGroups", group) && resource_ok && name_ok
        }
    }
}

/// The rules of `requested` that `owner` does not cover.
pub fn uncovered<'a>(owner: &[Value], requested: &'a [Value]) -> Vec<&'a Value> {
    requested
        .iter()
        .filter(|r| {
            !atoms(r)
                .iter()
                .all(|a| owner.iter().any(|o| rule_covers(o, a)))
        })
        .collect()
}

/// A rule as Kubernetes prints one in escalation errors.
fn describe(rule: &Value) -> String {
    let fields = [
        ("apiGroups", "APIGroups"),
        ("resources", "Resources"),
        ("resourceNames", "ResourceNames"),
        ("nonResourceURLs", "NonResourceURLs"),
        ("verbs", "Verbs"),
    ];
    let parts: Vec<String> = fields
        .iter()
        .filter_map(|(field, title)| {
            let v: Vec<String> = strings(rule, field).map(|s| format!("{s:?}")).collect();
            (!v.is_empty()).then(|| format!("{title}:[{}]", v.join(" ")))
        })
        .collect();
    format!("{{{}}}", parts.join(", "))
}

fn rules(obj: &Value) -> Vec<Value> {
    obj.get("rules")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// Refuse a write of a role or binding that would grant `user` more than
/// they hold. Other kinds pass.
pub fn check(
    state: &ApiState,
    user: &UserInfo,
    r: &Resource,
    obj: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    if r.group != GROUP || user.is_superuser() {
        return Ok(());
    }
    let namespace = str_of(obj, "/metadata/namespace");
    let name = str_of(obj, "/metadata/name");
    let forbidden = |message: String| {
        ApiError::forbidden(format!(
            "{}.{GROUP} {name:?} is forbidden: {message}",
            r.plural
        ))
        .with_details(serde_json::json!({"name": name, "group": GROUP, "kind": r.plural}))
    };
    let granted = match r.kind {
        "Role" | "ClusterRole" => {
            let unchanged = old.is_some_and(|o| {
                o.get("rules") == obj.get("rules")
                    && o.get("aggregationRule") == obj.get("aggregationRule")
            });
            if unchanged {
                return Ok(());
            }
            let escalate = Attributes::resource("escalate", GROUP, r.plural, namespace, name);
            if authz::authorize(state, user, &escalate).is_ok() {
                return Ok(());
            }
            if obj.get("aggregationRule").is_some_and(|a| !a.is_null()) {
                return Err(forbidden(
                    "must have cluster-admin privileges to use an aggregationRule".into(),
                ));
            }
            rules(obj)
        }
        "RoleBinding" | "ClusterRoleBinding" => {
            let unchanged = old.is_some_and(|o| {
                o.get("subjects") == obj.get("subjects") && o.get("roleRef") == obj.get("roleRef")
            });
            if unchanged {
                return Ok(());
            }
            let kind = str_of(obj, "/roleRef/kind");
            let role = str_of(obj, "/roleRef/name");
            let plural = if kind == "Role" {
                "roles"
            } else {
                "clusterroles"
            };
            let bind = Attributes::resource("bind", GROUP, plural, namespace, role);
            if authz::authorize(state, user, &bind).is_ok() {
                return Ok(());
            }
            // The referenced role's rules, read as the authorizer reads them.
            role_rules(&state.cache, obj, namespace).map_err(forbidden)?
        }
        _ => return Ok(()),
    };
    let (held, _) = rules_for(&state.cache, user, namespace);
    let missing = uncovered(&held, &granted);
    if missing.is_empty() {
        return Ok(());
    }
    let groups: Vec<String> = user.groups.iter().map(|g| format!("{g:?}")).collect();
    let lines: Vec<String> = missing.iter().map(|r| describe(r)).collect();
    Err(forbidden(format!(
        "user {:?} (groups=[{}]) is attempting to grant RBAC permissions not currently held:\n{}",
        user.name,
        groups.join(" "),
        lines.join("\n")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn owners_cover_what_they_hold_and_no_more() {
        let owner = vec![
            json!({"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}),
            json!({"apiGroups": ["apps"], "resources": ["*"], "verbs": ["*"]}),
            json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get"]}),
        ];
        let ok = [
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}),
            json!({"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["update"]}),
            json!({"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["a"], "verbs": ["get"]}),
        ];
        assert!(uncovered(&owner, &ok).is_empty());
        let too_much = [
            json!({"apiGroups": [""], "resources": ["pods"], "verbs": ["delete"]}),
            json!({"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}),
            json!({"apiGroups": ["*"], "resources": ["pods"], "verbs": ["get"]}),
            json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
        ];
        assert_eq!(uncovered(&owner, &too_much).len(), 4);
    }

    #[test]
    fn describes_rules_as_kubernetes() {
        let r = json!({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]});
        assert_eq!(
            describe(&r),
            r#"{APIGroups:[""], Resources:["secrets"], Verbs:["get" "list"]}"#
        );
    }
}
