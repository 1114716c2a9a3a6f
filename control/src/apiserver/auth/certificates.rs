//! What the server itself does for CertificateSigningRequests: it records
//! who asked (the requester's user, uid, groups and extra, whatever the
//! body says), keeps the approval and the certificate apart (approvers
//! change conditions through `approval`, signers the certificate through
//! `status`), and checks the signer permissions Kubernetes asks for
//! (`approve` and `sign` on `signers/<signerName>`).

use serde_json::{json, Value};

use super::authn::UserInfo;
use super::authz::{self, Attributes};
use crate::apiserver::request::ResourceRequest;
use crate::apiserver::status::ApiResult;
use crate::apiserver::ApiState;

const GROUP: &str = "certificates.k8s.io";

fn is_csr(req: &ResourceRequest) -> bool {
    req.resource.group == GROUP && req.resource.kind == "CertificateSigningRequest"
}

/// A new request names its requester.
pub fn prepare_create(req: &ResourceRequest, obj: &mut Value) {
    if !is_csr(req) {
        return;
    }
    let user: &UserInfo = &req.user;
    if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
        spec.insert("username".into(), json!(user.name));
        spec.insert("groups".into(), json!(user.groups));
        if user.uid.is_empty() {
            spec.remove("uid");
        } else {
            spec.insert("uid".into(), json!(user.uid));
        }
        if user.extra.is_empty() {
            spec.remove("extra");
        } else {
            spec.insert("extra".into(), json!(user.extra));
        }
    }
}

/// `approval` changes the conditions and not the certificate; `status`
/// the certificate and other conditions, never Approved or Denied.
pub fn prepare_update(req: &ResourceRequest, old: &Value, new: &mut Value) {
    if !is_csr(req) {
        return;
    }
    let subresource = req.subresource.as_deref();
    if !matches!(subresource, Some("approval" | "status")) {
        return;
    }
    let Some(status) = new
        .as_object_mut()
        .map(|o| o.entry("status").or_insert_with(|| json!({})))
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    if subresource == Some("approval") {
        match old.pointer("/status/certificate") {
            Some(v) => status.insert("certificate".into(), v.clone()),
            None => status.remove("certificate"),
        };
        return;
    }
    let decision = |c: &&Value| {
        matches!(
            c.get("type").and_then(Value::as_str),
            Some("Approved" | "Denied")
        )
    };
    let mut conditions: Vec<Value> = old
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(decision)
        .cloned()
        .collect();
    conditions.extend(
        status
            .get("conditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|c| !decision(c))
            .cloned(),
    );
    if conditions.is_empty() {
        status.remove("conditions");
    } else {
        status.insert("conditions".into(), Value::Array(conditions));
    }
}

fn conditions(v: &Value) -> Option<&Value> {
    v.pointer("/status/conditions")
}

/// Approving or denying needs `approve` on the signer, issuing a
/// certificate `sign`.
pub fn authorize(
    state: &ApiState,
    req: &ResourceRequest,
    new: &Value,
    old: Option<&Value>,
) -> ApiResult<()> {
    if !is_csr(req) || req.user.is_superuser() {
        return Ok(());
    }
    let Some(old) = old else {
        return Ok(());
    };
    let signer = new
        .pointer("/spec/signerName")
        .and_then(Value::as_str)
        .unwrap_or("");
    let verb = match req.subresource.as_deref() {
        Some("approval") if conditions(new) != conditions(old) => "approve",
        Some("status")
            if new.pointer("/status/certificate") != old.pointer("/status/certificate") =>
        {
            "sign"
        }
        _ => return Ok(()),
    };
    authz::require(
        state,
        &req.user,
        &Attributes::resource(verb, GROUP, "signers", "", signer),
    )
}
