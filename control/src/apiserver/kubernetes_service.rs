//! The `kubernetes` Service in `default` and its endpoints: how pods find
//! the API server (`KUBERNETES_SERVICE_HOST`, `kubernetes.default.svc`).
//!
//! As Kubernetes' endpoint reconciler (`pkg/controlplane/reconcilers`)
//! does, the API server itself keeps the Service (ClusterIP = the first
//! address of the Service range, port 443 named `https` → the server's
//! port), and writes the Endpoints and the EndpointSlice `kubernetes` with
//! its advertise address, every few seconds, so a deletion or an edit is
//! undone.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::objects::{self, Part};
use super::registry;
use super::request::{Query, ResourceRequest};
use super::status::ApiResult;
use super::ApiState;

/// The Service's name.
pub const NAME: &str = "kubernetes";
/// Its namespace.
pub const NAMESPACE: &str = "default";
/// How often the endpoints are checked (Kubernetes' `EndpointInterval`).
const INTERVAL: Duration = Duration::from_secs(10);

fn request(plural: &str, group: &str, version: &str, name: Option<&str>) -> ResourceRequest {
    ResourceRequest {
        resource: registry::builtin::find(group, version, plural).expect("served resource"),
        namespace: Some(NAMESPACE.into()),
        name: name.map(str::to_string),
        subresource: None,
        legacy_watch: false,
        user: crate::apiserver::auth::authn::UserInfo::apiserver(),
    }
}

/// The Service as the API server wants it.
fn service(state: &ApiState, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": NAME,
            "namespace": NAMESPACE,
            "labels": {"component": "apiserver", "provider": "kubernetes"},
        },
        "spec": {
            "clusterIP": state.cluster.kubernetes_service_ip().to_string(),
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
            "sessionAffinity": "None",
            "type": "ClusterIP",
        },
    })
}

/// Create the Service if it is missing, and point its target port at
/// `port` if the server moved.
pub fn ensure_service(state: &ApiState, port: u16) -> ApiResult<()> {
    let q = Query::default();
    let req = request("services", "", "v1", Some(NAME));
    match objects::get(state, &req) {
        Err(e) if e.code == 404 => {
            let create = request("services", "", "v1", None);
            match objects::create(state, &create, &q, service(state, port)) {
                Err(e) if e.code != 409 => return Err(e),
                _ => {}
            }
        }
        Err(e) => return Err(e),
        Ok(current) => {
            let target = current
                .pointer("/spec/ports/0/targetPort")
                .and_then(Value::as_u64);
            if target != Some(u64::from(port)) {
                objects::update_with(state, &req, &q, Part::Main, |cur| {
                    let mut new = cur.clone();
                    new["spec"]["ports"] = service(state, port)["spec"]["ports"].clone();
                    Ok(new)
                })?;
            }
        }
    }
    Ok(())
}

/// Write `desired` as object `name` of `req`'s resource unless it already
/// says the same in the fields the reconciler owns.
fn put(
    state: &ApiState,
    plural: &str,
    group: &str,
    version: &str,
    desired: Value,
) -> ApiResult<()> {
    let q = Query::default();
    let req = request(plural, group, version, Some(NAME));
    let owned = |o: &Value| {
        let mut o = o.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("metadata");
            m.remove("apiVersion");
            m.remove("kind");
        }
        o
    };
    match objects::get(state, &req) {
        Err(e) if e.code == 404 => {
            let create = request(plural, group, version, None);
            match objects::create(state, &create, &q, desired) {
                Err(e) if e.code != 409 => Err(e),
                _ => Ok(()),
            }
        }
        Err(e) => Err(e),
        Ok(current) if owned(&current) == owned(&desired) => Ok(()),
        Ok(_) => objects::update_with(state, &req, &q, Part::Main, |cur| {
            let mut new = desired.clone();
            new["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
            Ok(new)
        })
        .map(|_| ()),
    }
}

/// Point the Endpoints and EndpointSlice `kubernetes` at `address:port`.
pub fn ensure_endpoints(state: &ApiState, address: IpAddr, port: u16) -> ApiResult<()> {
    let ip = address.to_string();
    put(
        state,
        "endpoints",
        "",
        "v1",
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                // The API server writes the slice itself; nothing mirrors.
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": [{
                "addresses": [{"ip": ip}],
                "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
            }],
        }),
    )?;
    put(
        state,
        "endpointslices",
        "discovery.k8s.io",
        "v1",
        json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": NAME,
                "namespace": NAMESPACE,
                "labels": {"kubernetes.io/service-name": NAME},
            },
            "addressType": if address.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
            "ports": [{"name": "https", "port": port, "protocol": "TCP"}],
        }),
    )
}

/// Keep the Service and its endpoints (at `advertise:port`, when the server
/// has an address pods can reach) until the task is dropped.
pub async fn run(state: Arc<ApiState>, advertise: Option<IpAddr>, port: u16) {
    loop {
        let s = state.clone();
        let done = tokio::task::spawn_blocking(move || {
            ensure_service(&s, port)?;
            match advertise {
                Some(ip) => ensure_endpoints(&s, ip, port),
                None => Ok(()),
            }
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e.message, "reconciling the kubernetes Service"),
            Err(e) => tracing::warn!(error = %e, "reconciling the kubernetes Service"),
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
