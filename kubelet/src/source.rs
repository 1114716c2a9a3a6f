//! The API server pod source: one watch of the pods bound to a set of
//! nodes, each event handed to the pod workers of the node the pod is bound
//! to. Many hollow nodes in one process share one watch, so 1000 nodes cost
//! the API server one watcher, not 1000.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;

use crate::pod_workers::PodWorkers;

/// The nodes served by one watch, by node name.
pub type NodeSet = HashMap<String, Arc<PodWorkers>>;

/// The field selector of the watch: equality for one node; for several, a
/// field selector cannot name a set, so every bound pod is watched and the
/// ones of other nodes are skipped here.
pub fn field_selector(nodes: &NodeSet) -> String {
    match nodes.keys().next() {
        Some(name) if nodes.len() == 1 => format!("spec.nodeName={name}"),
        _ => "spec.nodeName!=".to_string(),
    }
}

fn node_of(pod: &Pod) -> Option<&str> {
    pod.spec.as_ref().and_then(|s| s.node_name.as_deref())
}

/// Watch the pods of `nodes` and feed their workers until the future is
/// dropped. Watch errors are retried with back-off.
pub async fn watch_pods(client: Client, nodes: Arc<NodeSet>) {
    let api: Api<Pod> = Api::all(client);
    let config = watcher::Config::default().fields(&field_selector(&nodes));
    let mut stream = watcher(api, config).default_backoff().boxed();
    // UIDs listed since the last (re)list, to find the pods that vanished
    // while the watch was down.
    let mut listed: HashSet<String> = HashSet::new();
    while let Some(event) = stream.next().await {
        match event {
            Ok(watcher::Event::Init) => listed.clear(),
            Ok(watcher::Event::InitApply(pod)) => {
                if let Some(uid) = &pod.metadata.uid {
                    listed.insert(uid.clone());
                }
                dispatch(&nodes, pod);
            }
            Ok(watcher::Event::InitDone) => {
                for workers in nodes.values() {
                    workers.remove_orphans(&listed).await;
                }
                listed.clear();
            }
            Ok(watcher::Event::Apply(pod)) => dispatch(&nodes, pod),
            Ok(watcher::Event::Delete(pod)) => {
                let workers = node_of(&pod).and_then(|n| nodes.get(n));
                if let (Some(workers), Some(uid)) = (workers, &pod.metadata.uid) {
                    workers.forget(uid);
                }
            }
            Err(e) => tracing::warn!(error = %e, "pod watch"),
        }
    }
}

fn dispatch(nodes: &NodeSet, pod: Pod) {
    if let Some(workers) = node_of(&pod).and_then(|n| nodes.get(n)) {
        workers.update(Arc::new(pod));
    }
}
