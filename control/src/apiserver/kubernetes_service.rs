//! The `kubernetes` Service in `default` and its endpoints: how pods find
//! the API server (`KUBERNETES_SERVICE_HOST`, `kubernetes.default.svc`).
//!
//! As Kubernetes' endpoint reconciler (`pkg/controlplane/reconcilers`)
//! does, the API server itself keeps the Service (ClusterIP = the first
//! address of the Service range, port 443 named `https` → the server's
//! port), and writes the Endpoints and the EndpointSlice `kubernetes` every
//! few seconds, so a deletion or an edit is undone. Their addresses are
//! every API server's that announced itself recently (its Lease
//! `apiserver-endpoint-<address>` in `kube-system`, renewed at each pass):
//! with several API servers on one etcd, pods reach any of them, and one
//! that stops drops out.

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
/// The Service that opens the dashboard on every node's port (as the
/// tutorials reach Kubernetes' dashboard through a NodePort): the API
/// server's own endpoints, whose root sends a browser to `/dashboard/`.
pub const DASHBOARD: &str = "kedge-dashboard";
/// Its namespace.
pub const DASHBOARD_NAMESPACE: &str = "kube-system";
/// How often the endpoints are checked (Kubernetes' `EndpointInterval`).
const INTERVAL: Duration = Duration::from_secs(10);

/// Where each API server announces its address, and for how long an
/// announcement holds (Kubernetes' lease endpoint reconciler: the
/// `kubernetes` endpoints are every API server that renewed recently).
const LEASE_NAMESPACE: &str = "kube-system";
const LEASE_PREFIX: &str = "apiserver-endpoint-";
const LEASE_SECONDS: i64 = 15;

fn request(plural: &str, group: &str, version: &str, name: Option<&str>) -> ResourceRequest {
    request_in(NAMESPACE, plural, group, version, name)
}

fn request_in(
    namespace: &str,
    plural: &str,
    group: &str,
    version: &str,
    name: Option<&str>,
) -> ResourceRequest {
    ResourceRequest {
        resource: registry::builtin::find(group, version, plural).expect("served resource"),
        namespace: Some(namespace.into()),
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

/// Create the dashboard's NodePort Service if it is missing (its node port
/// is allocated as any other's; a user's later edits stay).
pub fn ensure_dashboard_service(state: &ApiState, port: u16) -> ApiResult<()> {
    let req = request_in(DASHBOARD_NAMESPACE, "services", "", "v1", Some(DASHBOARD));
    match objects::get(state, &req) {
        Err(e) if e.code == 404 => {}
        other => return other.map(|_| ()),
    }
    let create = request_in(DASHBOARD_NAMESPACE, "services", "", "v1", None);
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": DASHBOARD,
            "namespace": DASHBOARD_NAMESPACE,
            "labels": {"app.kubernetes.io/name": DASHBOARD, "provider": "kedge"},
        },
        "spec": {
            "type": "NodePort",
            "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}],
        },
    });
    match objects::create(state, &create, &Query::default(), service) {
        Err(e) if e.code != 409 => Err(e),
        _ => Ok(()),
    }
}

/// Write `desired` as object `name` of `req`'s resource unless it already
/// says the same in the fields the reconciler owns.
pub(super) fn put(
    state: &ApiState,
    plural: &str,
    group: &str,
    version: &str,
    desired: Value,
) -> ApiResult<()> {
    let namespace = desired["metadata"]["namespace"]
        .as_str()
        .unwrap_or(NAMESPACE);
    let name = desired["metadata"]["name"].as_str().unwrap_or(NAME);
    let (namespace, name) = (namespace.to_string(), name.to_string());
    let request = |plural: &str, group: &str, version: &str, name: Option<&str>| {
        request_in(&namespace, plural, group, version, name)
    };
    let q = Query::default();
    let req = request(plural, group, version, Some(&name));
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

/// Renew this server's announcement of `address`.
fn announce(state: &ApiState, address: IpAddr) -> ApiResult<()> {
    let name = format!(
        "{LEASE_PREFIX}{}",
        address.to_string().replace(['.', ':'], "-")
    );
    let now = jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
        .to_string();
    put(
        state,
        "leases",
        "coordination.k8s.io",
        "v1",
        json!({
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": address.to_string(),
                "leaseDurationSeconds": LEASE_SECONDS,
                "renewTime": now,
            },
        }),
    )
}

/// The addresses of every API server whose announcement still holds.
fn announced(state: &ApiState) -> Vec<IpAddr> {
    let leases =
        registry::builtin::find("coordination.k8s.io", "v1", "leases").expect("served resource");
    let prefix = leases.key(Some(LEASE_NAMESPACE), LEASE_PREFIX);
    let now = jiff::Timestamp::now();
    let mut out: Vec<IpAddr> = state
        .cache
        .select(&prefix, |_| true)
        .iter()
        .filter_map(|lease| {
            let spec = lease.get("spec")?;
            let renewed: jiff::Timestamp = spec.get("renewTime")?.as_str()?.parse().ok()?;
            let seconds = spec.get("leaseDurationSeconds")?.as_i64()?;
            (renewed.as_second() + seconds >= now.as_second())
                .then(|| spec.get("holderIdentity")?.as_str()?.parse().ok())?
        })
        .collect();
    out.sort();
    out.dedup();
    out
}

/// Point the Endpoints and EndpointSlices of the `kubernetes` Service and
/// of the dashboard's at `addresses` (one family) on `port`.
pub fn ensure_endpoints(state: &ApiState, addresses: &[IpAddr], port: u16) -> ApiResult<()> {
    for (namespace, name) in [(NAMESPACE, NAME), (DASHBOARD_NAMESPACE, DASHBOARD)] {
        ensure_endpoints_of(state, namespace, name, addresses, port)?;
    }
    Ok(())
}

fn ensure_endpoints_of(
    state: &ApiState,
    namespace: &str,
    name: &str,
    addresses: &[IpAddr],
    port: u16,
) -> ApiResult<()> {
    let Some(first) = addresses.first() else {
        return Ok(());
    };
    let ips: Vec<String> = addresses
        .iter()
        .filter(|a| a.is_ipv4() == first.is_ipv4())
        .map(IpAddr::to_string)
        .collect();
    put(
        state,
        "endpoints",
        "",
        "v1",
        json!({
            "apiVersion": "v1",
            "kind": "Endpoints",
            "metadata": {
                "name": name,
                "namespace": namespace,
                // The API server writes the slice itself; nothing mirrors.
                "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"},
            },
            "subsets": [{
                "addresses": ips.iter().map(|ip| json!({"ip": ip})).collect::<Vec<_>>(),
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
                "name": name,
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": name},
            },
            "addressType": if first.is_ipv4() { "IPv4" } else { "IPv6" },
            "endpoints": ips
                .iter()
                .map(|ip| json!({"addresses": [ip], "conditions": {"ready": true}}))
                .collect::<Vec<_>>(),
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
            ensure_dashboard_service(&s, port)?;
            // Every API server of the cluster (several on one etcd) is an
            // endpoint while it keeps announcing itself.
            if let Some(ip) = advertise {
                announce(&s, ip)?;
            }
            ensure_endpoints(&s, &announced(&s), port)
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
