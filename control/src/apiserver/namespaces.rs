//! Namespace lifecycle: a namespace being deleted has its contents removed,
//! then its `kubernetes` finalizer cleared, which lets it go. This runs beside
//! the API server on its own verbs, as Kubernetes' namespace controller
//! would through the API.

use std::sync::Arc;

use serde_json::{json, Value};

use super::objects;
use super::registry;
use super::request::{Query, ResourceRequest};
use super::ApiState;

/// Watch namespaces and finalize those being deleted.
pub async fn run(state: Arc<ApiState>) {
    let ns = registry::builtin::find("", "v1", "namespaces").expect("namespaces are served");
    // Contents may still be going away: every second as well.
    super::run_passes(state, ns.prefix(), sweep).await
}

fn sweep(state: &ApiState) {
    let ns = registry::builtin::find("", "v1", "namespaces").expect("namespaces are served");
    let (_, all) = state.cache.list(&ns.prefix());
    for (_, obj) in all {
        if obj.pointer("/metadata/deletionTimestamp").is_none() {
            continue;
        }
        let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) else {
            continue;
        };
        if let Err(e) = finalize(state, name) {
            tracing::warn!(namespace = name, error = %e.message, "namespace finalization");
        }
    }
}

fn finalize(state: &ApiState, namespace: &str) -> Result<(), super::status::ApiError> {
    let q = Query::default();
    let mut remaining = 0usize;
    // Every version of a custom resource shares one storage prefix: visit
    // each prefix once.
    let mut seen = std::collections::HashSet::new();
    let resources = state.registry.resources();
    for r in resources
        .into_iter()
        .filter(|r| r.namespaced && seen.insert(r.prefix()))
    {
        remaining += objects::delete_all_below(state, r, &r.namespace_prefix(Some(namespace)))?;
    }
    if remaining > 0 {
        return Ok(());
    }
    let ns = registry::builtin::find("", "v1", "namespaces").expect("namespaces are served");
    let req = ResourceRequest {
        resource: ns,
        namespace: None,
        name: Some(namespace.to_string()),
        subresource: Some("finalize".into()),
        legacy_watch: false,
        user: crate::apiserver::auth::authn::UserInfo::apiserver(),
    };
    let current = state.cache.get(&ns.key(None, namespace));
    let Some(current) = current else {
        return Ok(());
    };
    let mut finalizers: Vec<Value> = current
        .pointer("/spec/finalizers")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    finalizers.retain(|f| f != "kubernetes");
    match objects::finalize_namespace(state, &req, &q, json!({"spec": {"finalizers": finalizers}}))
    {
        Ok(_) => Ok(()),
        Err(e) if e.code == 404 => Ok(()),
        Err(e) => Err(e),
    }
}
