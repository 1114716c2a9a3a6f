//! Shared by the proxy's integration tests: an in-process API server, and
//! Services and EndpointSlices written through it.
#![allow(dead_code)] // Each test binary uses its own part.

use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kedge_control::testing::{self, TestServer};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

/// The `service-proxy-name` the tests' Services carry, so the proxies leave
/// the API server's own `kubernetes` Service (10.96.0.1) alone.
pub const PROXY_NAME: &str = "kedge-proxy-test";

/// An in-process API server on loopback with its data in a temporary
/// directory; dropping it stops the server.
pub struct Cluster {
    pub client: Client,
    _server: kedge_control::server::RunningServer,
    _dir: tempfile::TempDir,
}

pub async fn start_api() -> Cluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    Cluster {
        client,
        _server: server,
        _dir: dir,
    }
}

/// Deletes the test's interface even if the proxy did not get to (a panic
/// before it was dropped); `ip link del` of a missing link is harmless.
pub struct LinkGuard(pub String);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &self.0])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// A Service in `default` carrying [`PROXY_NAME`].
pub async fn create_service(client: &Client, name: &str, spec: Value) -> Service {
    let api: Api<Service> = Api::namespaced(client.clone(), "default");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"service.kubernetes.io/service-proxy-name": PROXY_NAME}},
        "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &svc).await.unwrap()
}

/// An EndpointSlice of `service` with one port and endpoints `(ip, ready)`.
pub fn slice(
    service: &str,
    name: &str,
    port: u16,
    protocol: &str,
    endpoints: &[(IpAddr, bool)],
) -> EndpointSlice {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(ip, ready)| {
            json!({"addresses": [ip.to_string()], "nodeName": "node-a", "conditions": {"ready": ready}})
        })
        .collect();
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": "p", "port": port, "protocol": protocol}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

pub async fn put_slice(client: &Client, s: EndpointSlice) {
    let api: Api<EndpointSlice> = Api::namespaced(client.clone(), "default");
    let name = s.metadata.name.clone().unwrap();
    api.patch(
        &name,
        &PatchParams::apply("test").force(),
        &Patch::Apply(json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": s.metadata,
            "addressType": s.address_type,
            "ports": s.ports,
            "endpoints": s.endpoints,
        })),
    )
    .await
    .unwrap();
}
