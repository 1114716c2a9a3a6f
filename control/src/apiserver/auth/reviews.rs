//! The review APIs, answered at once and never stored: access reviews
//! (`kubectl auth can-i`), rules reviews (`kubectl auth can-i --list`),
//! SelfSubjectReview (`kubectl auth whoami`) and TokenReview.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::authn::UserInfo;
use super::authz::{self, Attributes};
use super::rbac;
use crate::apiserver::request::ResourceRequest;
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::ApiState;

fn string(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

/// Answer a review created by `user`: the object with its status.
pub fn create(state: &ApiState, req: &ResourceRequest, mut obj: Value) -> ApiResult<Value> {
    let user = &req.user;
    let r = req.resource;
    obj["apiVersion"] = json!(r.api_version());
    obj["kind"] = json!(r.kind);
    let status = match r.kind {
        "SelfSubjectAccessReview" => access(state, user, &obj["spec"])?,
        "LocalSubjectAccessReview" => {
            let ns = req.namespace.as_deref().unwrap_or("");
            let asked = string(&obj, "/spec/resourceAttributes/namespace");
            if asked != ns {
                return Err(ApiError::bad_request(format!(
                    "spec.resourceAttributes.namespace must match namespace: {ns}"
                )));
            }
            access(state, &subject(&obj["spec"])?, &obj["spec"])?
        }
        "SubjectAccessReview" => access(state, &subject(&obj["spec"])?, &obj["spec"])?,
        "SelfSubjectRulesReview" => rules(state, user, &string(&obj, "/spec/namespace")),
        "SelfSubjectReview" => json!({"userInfo": user.to_json()}),
        "TokenReview" => token(state, &obj["spec"]),
        _ => return Err(ApiError::method_not_allowed("not a review")),
    };
    obj["status"] = status;
    if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        m.insert("creationTimestamp".into(), Value::Null);
    }
    Ok(obj)
}

/// The user a SubjectAccessReview asks about.
fn subject(spec: &Value) -> ApiResult<UserInfo> {
    let name = string(spec, "/user");
    let groups: Vec<String> = spec
        .get("groups")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|g| g.as_str().map(str::to_string))
        .collect();
    if name.is_empty() && groups.is_empty() {
        return Err(ApiError::invalid(
            "SubjectAccessReview",
            "authorization.k8s.io",
            "",
            &[kedge_config::validation::FieldError::invalid(
                "spec.user",
                "\"\"",
                "at least one of user or group must be specified",
            )],
        ));
    }
    let extra: BTreeMap<String, Vec<String>> = spec
        .get("extra")
        .and_then(|e| serde_json::from_value(e.clone()).ok())
        .unwrap_or_default();
    Ok(UserInfo {
        name,
        uid: string(spec, "/uid"),
        groups,
        extra,
    })
}

/// The attributes an access review asks about.
fn attributes(spec: &Value) -> ApiResult<Attributes> {
    if let Some(ra) = spec.get("resourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes {
            verb: string(ra, "/verb"),
            resource_request: true,
            api_group: string(ra, "/group"),
            api_version: string(ra, "/version"),
            resource: string(ra, "/resource"),
            subresource: string(ra, "/subresource"),
            namespace: string(ra, "/namespace"),
            name: string(ra, "/name"),
            path: String::new(),
        });
    }
    if let Some(na) = spec.get("nonResourceAttributes").filter(|v| v.is_object()) {
        return Ok(Attributes {
            verb: string(na, "/verb"),
            path: string(na, "/path"),
            ..Default::default()
        });
    }
    Err(ApiError::bad_request(
        "exactly one of nonResourceAttributes or resourceAttributes must be specified",
    ))
}

fn access(state: &ApiState, user: &UserInfo, spec: &Value) -> ApiResult<Value> {
    let attrs = attributes(spec)?;
    Ok(match authz::authorize(state, user, &attrs) {
        Ok(()) => json!({"allowed": true}),
        Err(reason) if reason.is_empty() => json!({"allowed": false}),
        Err(reason) => json!({"allowed": false, "reason": reason}),
    })
}

/// The rules `user` holds in `namespace`, as SelfSubjectRulesReview lists
/// them.
fn rules(state: &ApiState, user: &UserInfo, namespace: &str) -> Value {
    let (mut held, errors) = if user.as_node().is_some() {
        let mut r = rbac::policy::cluster_role_rules("system:node");
        let (more, errors) = rbac::rules_for(&state.cache, user, namespace);
        r.extend(more);
        (r, errors)
    } else {
        rbac::rules_for(&state.cache, user, namespace)
    };
    if user.is_superuser() {
        held.insert(
            0,
            json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}),
        );
        held.insert(1, json!({"nonResourceURLs": ["*"], "verbs": ["*"]}));
    }
    let mut resource_rules = Vec::new();
    let mut non_resource_rules = Vec::new();
    let list = |r: &Value, f: &str| r.get(f).cloned().unwrap_or(json!([]));
    for r in &held {
        if r.get("nonResourceURLs")
            .and_then(Value::as_array)
            .is_some_and(|u| !u.is_empty())
        {
            non_resource_rules.push(
                json!({"verbs": list(r, "verbs"), "nonResourceURLs": list(r, "nonResourceURLs")}),
            );
        } else {
            let mut rule = json!({
                "verbs": list(r, "verbs"),
                "apiGroups": list(r, "apiGroups"),
                "resources": list(r, "resources"),
            });
            if let Some(n) = r
                .get("resourceNames")
                .filter(|n| n.as_array().is_some_and(|a| !a.is_empty()))
            {
                rule["resourceNames"] = n.clone();
            }
            resource_rules.push(rule);
        }
    }
    let mut status = json!({
        "resourceRules": resource_rules,
        "nonResourceRules": non_resource_rules,
        "incomplete": !errors.is_empty(),
    });
    if !errors.is_empty() {
        status["evaluationError"] = json!(errors.join(", "));
    }
    status
}

fn token(state: &ApiState, spec: &Value) -> Value {
    let token = string(spec, "/token");
    match state.authn.authenticate_token(&token, &state.cache) {
        Ok(user) => json!({
            "authenticated": true,
            "user": user.to_json(),
            "audiences": [state.tokens.issuer.clone()],
        }),
        Err(e) => json!({"authenticated": false, "error": e.to_string(), "user": {}}),
    }
}
