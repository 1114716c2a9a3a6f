//! CustomResourceDefinitions: their admission, and the loop that does what
//! kube-apiserver's apiextensions controllers do through the API — accept a
//! definition's names unless another definition of the group holds them,
//! mark it established, serve its versions, and on deletion remove its
//! objects before letting it go.

use std::sync::Arc;

use serde_json::{json, Value};

use kedge_config::validation::FieldError;

use super::objects::{self, Part};
use super::registry::custom::{cel, columns, definition, schema, Served};
use super::registry::{builtin, Resource};
use super::request::{Query, ResourceRequest};
use super::{meta, ApiState};

/// The finalizer that holds a definition until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// Default and validate a definition: its own rules, each version's schema
/// (structural) and printer columns.
pub fn admit(mut crd: Value) -> Result<Value, Vec<FieldError>> {
    // The typed form catches wrong types with their paths.
    if let Err(e) = serde_json::from_value::<
        k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    >(crd.clone())
    {
        return Err(vec![FieldError::invalid("spec", "", e.to_string())]);
    }
    definition::apply_defaults(&mut crd);
    // A new definition (no stored version yet) starts from a clean status.
    let stored = crd
        .pointer("/status/storedVersions")
        .and_then(Value::as_array)
        .is_some_and(|v| !v.is_empty());
    if !stored {
        definition::prepare_for_create(&mut crd);
    }
    let mut errs = definition::validate(&crd);
    if let Some(versions) = crd.pointer("/spec/versions").and_then(Value::as_array) {
        for (i, v) in versions.iter().enumerate() {
            let path = format!("spec.versions[{i}]");
            if let Some(s) = v.pointer("/schema/openAPIV3Schema") {
                let schema_path = format!("{path}.schema.openAPIV3Schema");
                errs.extend(schema::validate_structural(s, &schema_path));
                errs.extend(cel::validate_rules(s, &schema_path));
            }
            if let Some(c) = v.get("additionalPrinterColumns") {
                errs.extend(
                    columns::validate(c, &format!("{path}.additionalPrinterColumns"))
                        .into_iter()
                        .map(|(field, message)| column_error(field, message)),
                );
            }
        }
    }
    if errs.is_empty() {
        Ok(crd)
    } else {
        Err(errs)
    }
}

/// A printer column error (already worded) as a field error.
fn column_error(field: String, message: String) -> FieldError {
    // The message is the whole `Kind: detail` text; carry it as the detail
    // of an error whose kind prints nothing of its own.
    let (kind, rest) = message.split_once(": ").unwrap_or((message.as_str(), ""));
    match kind {
        "Required value" => FieldError::required(field, rest),
        "Unsupported value" => {
            let (value, supported) = rest.split_once(": ").unwrap_or((rest, ""));
            let mut e = FieldError::not_supported(field, "", &[]);
            e.value = Some(value.to_string());
            e.detail = supported.to_string();
            e
        }
        "Invalid value" => {
            let (value, detail) = rest.split_once(": ").unwrap_or((rest, ""));
            FieldError::invalid(field, value, detail)
        }
        _ => FieldError::forbidden(field, message),
    }
}

/// Before an update of a definition's spec: its status stays, and a new
/// storage version joins `storedVersions`.
pub fn prepare_update(old: &Value, new: &mut Value) {
    definition::prepare_for_update(old, new);
}

/// Rules of a change to a definition.
pub fn validate_update(old: &Value, new: &Value) -> Vec<FieldError> {
    definition::validate_update(old, new)
}

/// A new definition starts with an empty status (its storage version
/// recorded) and the cleanup finalizer.
pub fn prepare_create(crd: &mut Value) {
    definition::prepare_for_create(crd);
    let mut finalizers = meta::finalizers(crd);
    if !finalizers.iter().any(|f| f == CLEANUP_FINALIZER) {
        finalizers.push(CLEANUP_FINALIZER.to_string());
    }
    meta::meta_mut(crd).insert("finalizers".into(), json!(finalizers));
}

fn resource() -> &'static Resource {
    builtin::find("apiextensions.k8s.io", "v1", "customresourcedefinitions")
        .expect("definitions are served")
}

/// Watch definitions and keep their status, the served custom resources and
/// the deletion of their objects up to date.
pub async fn run(state: Arc<ApiState>) {
    // Definitions being deleted are looked at again every second while
    // their objects go away.
    super::run_passes(state, resource().prefix(), reconcile).await
}

/// One pass over every definition.
pub fn reconcile(state: &ApiState) {
    let r = resource();
    let (_, all) = state.cache.list(&r.prefix());
    let mut crds: Vec<Value> = all.into_iter().map(|(_, v)| (*v).clone()).collect();
    state
        .registry
        .replace_custom(Served::from_definitions(crds.iter()));
    // The oldest definition gets a contested name; names accepted in this
    // pass count for the definitions after it.
    let created = |c: &Value| {
        c.pointer("/metadata/creationTimestamp")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    crds.sort_by_key(|c| created(c));
    for i in 0..crds.len() {
        let crd = crds[i].clone();
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("");
        let result = if crd.pointer("/metadata/deletionTimestamp").is_some() {
            clean_up(state, &crd, name)
        } else {
            accept_names(state, &crd, &crds, name).map(|status| crds[i]["status"] = status)
        };
        if let Err(e) = result {
            if e.code != 404 && e.code != 409 {
                tracing::warn!(definition = name, error = %e.message, "custom resource definition");
            }
        }
    }
}

/// The names other definitions of the same group have accepted: their
/// plurals, singulars and short names, and their kinds and list kinds.
fn taken_names(crd: &Value, all: &[Value]) -> (Vec<String>, Vec<String>) {
    let group = crd.pointer("/spec/group");
    let uid = crd.pointer("/metadata/uid");
    let mut resources = Vec::new();
    let mut kinds = Vec::new();
    for other in all {
        if other.pointer("/metadata/uid") == uid || other.pointer("/spec/group") != group {
            continue;
        }
        let Some(n) = other.pointer("/status/acceptedNames") else {
            continue;
        };
        let s = |k: &str| n.get(k).and_then(Value::as_str).filter(|s| !s.is_empty());
        resources.extend(
            ["plural", "singular"]
                .iter()
                .filter_map(|k| s(k))
                .map(str::to_string),
        );
        if let Some(short) = n.get("shortNames").and_then(Value::as_array) {
            resources.extend(short.iter().filter_map(Value::as_str).map(str::to_string));
        }
        kinds.extend(
            ["kind", "listKind"]
                .iter()
                .filter_map(|k| s(k))
                .map(str::to_string),
        );
    }
    (resources, kinds)
}

fn definition_request(name: &str, subresource: Option<&str>) -> ResourceRequest {
    ResourceRequest {
        resource: resource(),
        namespace: None,
        name: Some(name.to_string()),
        subresource: subresource.map(str::to_string),
        legacy_watch: false,
        user: crate::apiserver::auth::authn::UserInfo::apiserver(),
    }
}

fn write_status(state: &ApiState, name: &str, status: Value) -> Result<(), super::ApiError> {
    let mut q = Query::default();
    q.set_default("fieldManager", "kube-apiserver");
    let req = definition_request(name, Some("status"));
    objects::update_with(state, &req, &q, Part::Status, move |current| {
        let mut new = current.clone();
        new["status"] = status.clone();
        Ok(new)
    })?;
    Ok(())
}

/// Accept the names of a definition and establish it, or say which name
/// is in use.
fn accept_names(
    state: &ApiState,
    crd: &Value,
    all: &[Value],
    name: &str,
) -> Result<Value, super::ApiError> {
    let now = meta::now();
    let (resources, kinds) = taken_names(crd, all);
    let status = if resources.is_empty() && kinds.is_empty() {
        definition::established_status(crd, &now)
    } else {
        let resources: Vec<&str> = resources.iter().map(String::as_str).collect();
        let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
        definition::conflicting_status(crd, &resources, &kinds, &now)
    };
    if crd.get("status") != Some(&status) {
        write_status(state, name, status.clone())?;
    }
    Ok(status)
}

/// Delete the objects of a definition being deleted; once none is left,
/// drop the finalizer (which lets the definition go).
fn clean_up(state: &ApiState, crd: &Value, name: &str) -> Result<(), super::ApiError> {
    if !meta::finalizers(crd).iter().any(|f| f == CLEANUP_FINALIZER) {
        return Ok(());
    }
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let plural = crd
        .pointer("/status/acceptedNames/plural")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .or_else(|| crd.pointer("/spec/names/plural").and_then(Value::as_str))
        .unwrap_or("");
    let served = state.registry.served();
    let resource = served
        .resources()
        .find(|r| r.group == group && r.plural == plural);
    let remaining = match resource {
        Some(r) => objects::delete_all_below(state, r, &r.prefix())?,
        None => 0,
    };
    let terminating = terminating_status(crd, remaining, &meta::now());
    if crd.get("status") != Some(&terminating) {
        write_status(state, name, terminating)?;
    }
    if remaining > 0 {
        return Ok(());
    }
    let mut q = Query::default();
    q.set_default("fieldManager", "kube-apiserver");
    let req = definition_request(name, None);
    objects::update_with(state, &req, &q, Part::Main, |current| {
        let mut new = current.clone();
        let mut finalizers = meta::finalizers(&new);
        finalizers.retain(|f| f != CLEANUP_FINALIZER);
        meta::meta_mut(&mut new).insert("finalizers".into(), json!(finalizers));
        meta::meta_mut(&mut new).remove("resourceVersion");
        Ok(new)
    })?;
    Ok(())
}

/// The status of a definition being deleted: `Terminating` true, saying
/// whether its objects are still going.
fn terminating_status(crd: &Value, remaining: usize, now: &str) -> Value {
    let (reason, message) = if remaining > 0 {
        (
            "InstanceDeletionInProgress",
            "CustomResource deletion is in progress",
        )
    } else {
        ("InstanceDeletionCompleted", "removed all instances")
    };
    let mut status = crd.get("status").cloned().unwrap_or_else(|| json!({}));
    let mut conditions: Vec<Value> = status
        .get("conditions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let condition = json!({
        "type": "Terminating",
        "status": "True",
        "reason": reason,
        "message": message,
    });
    match conditions
        .iter_mut()
        .find(|c| c.get("type").and_then(Value::as_str) == Some("Terminating"))
    {
        Some(c) => {
            let since = c.get("lastTransitionTime").cloned();
            *c = condition;
            c["lastTransitionTime"] = since.unwrap_or_else(|| json!(now));
        }
        None => {
            let mut c = condition;
            c["lastTransitionTime"] = json!(now);
            conditions.push(c);
        }
    }
    status["conditions"] = json!(conditions);
    status
}
