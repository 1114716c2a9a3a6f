//! The service mesh in the node proxy. Pods opt in with the label
//! `kedge.io/mesh: enabled` on their namespace (or on themselves; a pod
//! labelled `disabled` stays out); hostNetwork pods never take part.
//!
//! - [`identity`]: the certificates of the ServiceAccounts of the meshed
//!   pods on this node, asked of the Certificates API as the node and
//!   rotated at half their lifetime.
//! - [`netns`]: listeners, sockets and capture rules inside a pod's
//!   network namespace.
//! - [`outbound`]: a captured connection carried on, through the tunnel
//!   when its destination is meshed.
//! - [`tls`]: mutual TLS between node proxies, each side known by its
//!   workload's SPIFFE ID.
//! - [`tunnel`]: connections carried between node proxies as HTTP/2
//!   CONNECT streams over that TLS (Istio's HBONE).
//! - [`workloads`]: the cluster's pods by address, meshed or not.
//! - [`sandbox`]: where a pod's network namespace is.
//! - [`node`]: all of it for the meshed pods of this node.
//! - [`metrics`]: connections per workload pair.

pub mod http;
pub mod identity;
pub mod metrics;
pub mod netns;
pub mod node;
pub mod outbound;
pub mod policy;
pub mod sandbox;
pub mod tls;
pub mod tunnel;
pub mod workloads;

#[cfg(test)]
mod testing;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::watch;

use crate::table::ProxyTable;
use identity::{Identities, IdentityConfig};
use metrics::MeshMetrics;
use node::NodeMesh;
use policy::{AuthorizationPolicy, Policies};
use workloads::Workloads;

/// The label that opts a namespace or a pod into the mesh.
pub const MESH_LABEL: &str = "kedge.io/mesh";
/// The label (on a namespace or a pod) that says whether a meshed pod
/// takes plaintext from outside the mesh: `permissive` (the default) or
/// `strict`.
pub const MTLS_LABEL: &str = "kedge.io/mesh-mtls";

/// The mesh on this node until dropped: the identities of its meshed pods
/// (asked for with `node_client`, the node's credentials) and their data
/// path, from the cluster's pods and namespaces (watched with
/// `watch_client`), the service proxy's table (`services`) and the
/// NetworkPolicies it enforces (`network_policy`).
pub async fn run(
    watch_client: Client,
    node_client: Client,
    config: IdentityConfig,
    identities: Arc<Identities>,
    metrics: Arc<MeshMetrics>,
    services: watch::Receiver<Arc<ProxyTable>>,
    network_policy: Arc<crate::netpol::Policy>,
) {
    let (changed, changed_rx) = watch::channel(());
    let changed = Arc::new(changed);
    let (pods, pods_watch) = follow::<Pod>(Api::all(watch_client.clone()), changed.clone());
    let (namespaces, namespaces_watch) =
        follow::<Namespace>(Api::all(watch_client.clone()), changed);
    let (policies_tx, policies) = watch::channel(Arc::new(Policies::default()));
    let (policy_changed, mut policy_changed_rx) = watch::channel(());
    let (policy_store, policies_watch) =
        follow::<AuthorizationPolicy>(Api::all(watch_client.clone()), Arc::new(policy_changed));
    let policy_index = async move {
        loop {
            let index = Policies::index(policy_store.state().iter().map(|p| &**p));
            policies_tx.send_replace(Arc::new(index));
            if policy_changed_rx.changed().await.is_err() {
                return;
            }
        }
    };
    let watches =
        futures::future::join4(pods_watch, namespaces_watch, policies_watch, policy_index);
    let (workloads_tx, workloads) = watch::channel(Arc::new(Workloads::default()));
    let index = {
        let (pods, namespaces, mut changed) =
            (pods.clone(), namespaces.clone(), changed_rx.clone());
        async move {
            let _ = pods.wait_until_ready().await;
            let _ = namespaces.wait_until_ready().await;
            loop {
                let index = Workloads::index(
                    pods.state().iter().map(|p| &**p),
                    namespaces.state().iter().map(|n| &**n),
                );
                workloads_tx.send_replace(Arc::new(index));
                if changed.changed().await.is_err() {
                    return;
                }
            }
        }
    };
    let sandboxes = sandbox::DockerSandboxes::connect(&config.node_name);
    let mesh = Arc::new(NodeMesh::new(
        &config,
        identities.clone(),
        workloads,
        services,
        policies,
        metrics,
        network_policy,
    ));
    let identities = identity::run(
        watch_client,
        node_client,
        config,
        identities,
        pods,
        namespaces,
        changed_rx,
    );
    match sandboxes {
        Ok(sandboxes) => {
            tokio::join!(
                watches,
                index,
                identities,
                node::run(mesh, Box::new(sandboxes))
            );
        }
        Err(error) => {
            tracing::warn!(%error, "no container engine to find pods' namespaces in; the mesh holds identities only");
            tokio::join!(watches, index, identities);
        }
    }
}

/// A reflector of all of `api`'s objects, and the future that drives it,
/// marking `changed` on every event.
fn follow<K>(
    api: Api<K>,
    changed: Arc<watch::Sender<()>>,
) -> (Store<K>, impl std::future::Future<Output = ()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream =
        reflector::reflector(writer, watcher(api, watcher::Config::default())).default_backoff();
    let drive = async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(error) = event {
                tracing::debug!(%error, "mesh watch");
            }
            changed.send_replace(());
        }
    };
    (store, drive)
}

/// Whether `pod` is in the mesh, given its namespace's labels: the pod's
/// own label decides if it has one, else the namespace's.
pub fn is_meshed(pod: &Pod, namespace_labels: Option<&BTreeMap<String, String>>) -> bool {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
    {
        return false;
    }
    match label(pod.metadata.labels.as_ref(), MESH_LABEL) {
        Some(value) => value == "enabled",
        None => label(namespace_labels, MESH_LABEL) == Some("enabled"),
    }
}

fn label<'a>(labels: Option<&'a BTreeMap<String, String>>, key: &str) -> Option<&'a str> {
    labels.and_then(|l| l.get(key)).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &[(&str, &str)], host_network: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n",
                         "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
            "spec": {"hostNetwork": host_network, "containers": []}
        }))
        .unwrap()
    }

    #[test]
    fn the_pod_label_wins_over_the_namespace_and_host_network_never_joins() {
        let enabled: BTreeMap<String, String> = [(MESH_LABEL.to_string(), "enabled".to_string())]
            .into_iter()
            .collect();
        assert!(is_meshed(&pod(&[], false), Some(&enabled)));
        assert!(!is_meshed(&pod(&[], false), None));
        assert!(!is_meshed(
            &pod(&[(MESH_LABEL, "disabled")], false),
            Some(&enabled)
        ));
        assert!(is_meshed(&pod(&[(MESH_LABEL, "enabled")], false), None));
        assert!(!is_meshed(
            &pod(&[(MESH_LABEL, "enabled")], true),
            Some(&enabled)
        ));
    }
}
