//! The `serviceaccounts/<name>/token` subresource: POST an
//! `authentication.k8s.io/v1` TokenRequest, get it back with `status.token`
//! and `status.expirationTimestamp` (what `kubectl create token` and the
//! kubelet's projected tokens ask for).

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec, TokenRequestStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};

use kedge_config::validation::FieldError;

use crate::apiserver::registry;
use crate::apiserver::request::{Query, ResourceRequest};
use crate::apiserver::status::{ApiError, ApiResult};
use crate::apiserver::tokens::{ObjectRef, TokenSpec};
use crate::apiserver::ApiState;

/// `spec.expirationSeconds` when the request gives none.
const DEFAULT_EXPIRATION_SECONDS: i64 = 3600;
/// The shortest lifetime a token may ask for.
const MIN_EXPIRATION_SECONDS: i64 = 600;
/// The longest (Kubernetes' validation limit, 2^32 seconds).
const MAX_EXPIRATION_SECONDS: i64 = 1 << 32;

const KIND: &str = "TokenRequest";
const GROUP: &str = "authentication.k8s.io";

fn uid_of(obj: &Value) -> String {
    obj.pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string()
}

fn get(state: &ApiState, plural: &str, namespace: Option<&str>, name: &str) -> ApiResult<Value> {
    let r = registry::builtin::find("", "v1", plural).expect("core resources are served");
    state
        .cache
        .get(&r.key(namespace, name))
        .map(|o| (*o).clone())
        .ok_or_else(|| ApiError::not_found(plural, name))
}

/// Issue a token for the ServiceAccount of `req`.
pub fn create(state: &ApiState, req: &ResourceRequest, q: &Query, body: Value) -> ApiResult<Value> {
    let sa_name = req.name.clone().unwrap_or_default();
    let namespace = req.namespace.clone().unwrap_or_default();
    match (
        body.get("apiVersion").and_then(Value::as_str),
        body.get("kind").and_then(Value::as_str),
    ) {
        (None | Some("" | "authentication.k8s.io/v1"), None | Some("" | KIND)) => {}
        (v, k) => {
            return Err(ApiError::bad_request(format!(
                "the body of the token subresource must be an authentication.k8s.io/v1 TokenRequest, not {} {}",
                v.unwrap_or(""),
                k.unwrap_or("")
            )))
        }
    }
    let mut body = body;
    // Status is the answer; what a client sends there is ignored (kubectl's
    // protobuf body carries an empty one).
    if let Some(o) = body.as_object_mut() {
        o.remove("status");
    }
    let mut request: TokenRequest = serde_json::from_value(body).map_err(|e| {
        ApiError::bad_request(format!(
            "TokenRequest in version \"v1\" cannot be handled as a TokenRequest: {e}"
        ))
    })?;

    let expiration = request
        .spec
        .expiration_seconds
        .unwrap_or(DEFAULT_EXPIRATION_SECONDS);
    let mut errors = Vec::new();
    if expiration < MIN_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid_int(
            "spec.expirationSeconds",
            expiration,
            "may not specify a duration less than 10 minutes",
        ));
    } else if expiration > MAX_EXPIRATION_SECONDS {
        errors.push(FieldError::invalid_int(
            "spec.expirationSeconds",
            expiration,
            "may not specify a duration larger than 2^32 seconds",
        ));
    }
    if !errors.is_empty() {
        return Err(ApiError::invalid(KIND, GROUP, &sa_name, &errors));
    }

    let sa = get(state, "serviceaccounts", Some(&namespace), &sa_name)?;
    let mut spec = TokenSpec {
        namespace: namespace.clone(),
        service_account: ObjectRef {
            name: sa_name.clone(),
            uid: uid_of(&sa),
        },
        audiences: request.spec.audiences.clone(),
        expiration_seconds: expiration,
        ..Default::default()
    };
    if let Some(bound) = &request.spec.bound_object_ref {
        let kind = bound.kind.as_deref().unwrap_or("");
        let group = bound
            .api_version
            .as_deref()
            .and_then(|v| v.split_once('/'))
            .map(|(g, _)| g)
            .unwrap_or("");
        let name = bound.name.clone().unwrap_or_default();
        let (plural, obj) = match (group, kind) {
            ("", "Pod") => {
                let pod = get(state, "pods", Some(&namespace), &name)?;
                let pod_sa = pod
                    .pointer("/spec/serviceAccountName")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                if pod_sa != sa_name {
                    return Err(ApiError::bad_request(format!(
                        "cannot bind token for serviceaccount \"{sa_name}\" to pod running with serviceaccount \"{pod_sa}\""
                    )));
                }
                ("pods", pod)
            }
            ("", "Secret") => ("secrets", get(state, "secrets", Some(&namespace), &name)?),
            _ => {
                return Err(ApiError::bad_request(format!(
                    "cannot bind token to object of type {}, Kind={kind}",
                    bound.api_version.as_deref().unwrap_or("")
                )))
            }
        };
        let uid = uid_of(&obj);
        if let Some(want) = bound.uid.as_deref().filter(|u| !u.is_empty()) {
            if want != uid {
                return Err(ApiError {
                    code: 409,
                    reason: "Conflict",
                    message: format!(
                        "Operation cannot be fulfilled on {kind} \"{name}\": the UID in the bound object reference ({want}) does not match the UID in record ({uid}). The object might have been deleted and then recreated"
                    ),
                    details: Some(json!({"name": name, "kind": kind})),
                });
            }
        }
        let object = ObjectRef { name, uid };
        if plural == "pods" {
            // The node the pod runs on goes into the token too, as
            // Kubernetes does since 1.30.
            spec.node = obj
                .pointer("/spec/nodeName")
                .and_then(Value::as_str)
                .and_then(|n| get(state, "nodes", None, n).ok())
                .map(|node| ObjectRef {
                    name: node
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    uid: uid_of(&node),
                });
            spec.pod = Some(object);
        } else {
            spec.secret = Some(object);
        }
    }

    let now = jiff::Timestamp::now();
    let claims = state.tokens.claims(&spec, now.as_second());
    let token = if q.get("dryRun") == Some("All") {
        String::new()
    } else {
        state.tokens.sign(&claims)
    };
    let expires = jiff::Timestamp::from_second(claims.exp)
        .map_err(|e| ApiError::internal(format!("token expiry: {e}")))?;
    tracing::debug!(namespace = %namespace, serviceaccount = %sa_name, expiration, "token issued");

    request.metadata.name = Some(sa_name);
    request.metadata.namespace = Some(namespace);
    request.spec = TokenRequestSpec {
        audiences: claims.aud.clone(),
        expiration_seconds: Some(expiration),
        bound_object_ref: request.spec.bound_object_ref.take(),
    };
    request.status = Some(TokenRequestStatus {
        token,
        expiration_timestamp: Time(expires),
    });
    let mut out = serde_json::to_value(&request)
        .map_err(|e| ApiError::internal(format!("encoding the TokenRequest: {e}")))?;
    out["apiVersion"] = json!("authentication.k8s.io/v1");
    out["kind"] = json!(KIND);
    Ok(out)
}
