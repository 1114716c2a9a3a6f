//! Shared by the ReplicaSet and Deployment tests: an in-process API server,
//! the controllers in tasks, and a stand-in kubelet that marks pods Ready
//! through the pods/status subresource.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kedge_control::controllers::{deployment, replicaset, Context};
use kedge_control::testing::{self, TestServer};
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::json;

/// A running API server with the controllers and the fake kubelet.
pub struct Cluster {
    pub client: Client,
    /// Pods become Ready only while this is true.
    pub ready: Arc<AtomicBool>,
    /// Milliseconds before a new pod turns Ready.
    pub ready_delay_ms: Arc<AtomicU64>,
    _dir: tempfile::TempDir,
    _server: kedge_control::server::RunningServer,
}

/// Start everything.
pub async fn start() -> Cluster {
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    let ctx = Context::new(client.clone());
    tokio::spawn(replicaset::run(ctx.clone()));
    tokio::spawn(deployment::run(ctx));
    let ready = Arc::new(AtomicBool::new(true));
    let ready_delay_ms = Arc::new(AtomicU64::new(0));
    tokio::spawn(kubelet(
        client.clone(),
        ready.clone(),
        ready_delay_ms.clone(),
    ));
    Cluster {
        client,
        ready,
        ready_delay_ms,
        _dir: dir,
        _server: server,
    }
}

/// Marks each pod Running and Ready (after the delay), and finishes pods
/// that are being deleted.
async fn kubelet(client: Client, ready: Arc<AtomicBool>, delay: Arc<AtomicU64>) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(pods, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(Ok(pod)) = events.next().await {
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(client.clone(), &ns);
        if pod.metadata.deletion_timestamp.is_some() {
            let _ = api
                .delete(&name, &DeleteParams::default().grace_period(0))
                .await;
            continue;
        }
        let is_ready = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
        if is_ready || !ready.load(Ordering::SeqCst) {
            continue;
        }
        let wait = delay.load(Ordering::SeqCst);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(wait)).await;
            let now = jiff::Timestamp::now().to_string();
            let patch = json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            ]}});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        });
    }
}

/// Active (not terminating) pods in the namespace with these labels.
pub async fn active_pods(client: &Client, selector: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.list(&kube::api::ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect()
}

/// Whether the pod is Ready.
pub fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}
