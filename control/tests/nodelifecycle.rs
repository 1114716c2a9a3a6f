//! The node lifecycle controller against an in-process API server, with a
//! Node and its heartbeat Lease kept by the test instead of a kubelet.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kedge_control::controllers::nodelifecycle::{self, NodeLifecycleOptions};
use kedge_control::controllers::Context;
use kedge_control::testing::{self, eventually_within};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

const NODE: &str = "n1";

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// Creates the node (Ready) and its Lease, then renews the Lease every
/// 200ms whenever `alive` holds (it keeps running while it does not).
async fn heartbeat(client: Client, alive: Arc<AtomicBool>) {
    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": now(), "lastTransitionTime": now(),
    }]}});
    nodes
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    let leases: Api<Lease> = Api::namespaced(client, nodelifecycle::LEASE_NAMESPACE);
    let lease: Lease = serde_json::from_value(json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": NODE, "namespace": nodelifecycle::LEASE_NAMESPACE},
        "spec": {"holderIdentity": NODE, "leaseDurationSeconds": 40,
                 "renewTime": jiff::Timestamp::now().strftime("%Y-%m-%dT%H:%M:%S.%6fZ").to_string()},
    }))
    .unwrap();
    leases.create(&PostParams::default(), &lease).await.unwrap();
    loop {
        if alive.load(Ordering::SeqCst) {
            let renew = jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%S.%6fZ")
                .to_string();
            let patch = json!({"spec": {"renewTime": renew}});
            let _ = leases
                .patch(NODE, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn bound_pod(client: &Client, name: &str, toleration_seconds: Option<i64>) {
    let mut toleration = json!({
        "key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute",
    });
    if let Some(s) = toleration_seconds {
        toleration["tolerationSeconds"] = json!(s);
    }
    let pod: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": NODE,
            "containers": [{"name": "c", "image": "busybox"}],
            "tolerations": [toleration],
        },
    }))
    .unwrap();
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    api.create(&PostParams::default(), &pod).await.unwrap();
    let status = json!({"status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True", "lastTransitionTime": now()},
    ]}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

fn taint_keys(node: &Node) -> Vec<(String, String)> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|t| (t.key, t.effect))
        .collect()
}

fn ready_status(node: &Node) -> Option<(String, Option<String>)> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status.clone(), c.reason.clone()))
}

#[tokio::test(flavor = "multi_thread")]
async fn silent_node_goes_unknown_tainted_and_evicts_by_toleration() {
    let api = testing::start().await;
    let client = api.client.clone();
    let grace = Duration::from_secs(2);
    tokio::spawn(nodelifecycle::run_with(
        Context::new(client.clone()),
        NodeLifecycleOptions::with_grace(grace),
    ));
    let alive = Arc::new(AtomicBool::new(true));
    tokio::spawn(heartbeat(client.clone(), alive.clone()));
    let nodes: Api<Node> = Api::all(client.clone());
    eventually_within(10, "the node", || {
        let nodes = nodes.clone();
        async move { nodes.get_opt(NODE).await.unwrap().is_some() }
    })
    .await;
    bound_pod(&client, "short", Some(2)).await;
    bound_pod(&client, "forever", None).await;

    // While the Lease is renewed, the node stays Ready and untainted.
    tokio::time::sleep(grace * 2).await;
    let node = nodes.get(NODE).await.unwrap();
    assert_eq!(ready_status(&node).unwrap().0, "True");
    assert!(taint_keys(&node).is_empty(), "{:?}", taint_keys(&node));

    alive.store(false, Ordering::SeqCst);
    let stopped = tokio::time::Instant::now();
    eventually_within(15, "the node to turn Unknown and tainted", || {
        let nodes = nodes.clone();
        async move {
            let node = nodes.get(NODE).await.unwrap();
            let keys = taint_keys(&node);
            ready_status(&node) == Some(("Unknown".into(), Some("NodeStatusUnknown".into())))
                && keys.contains(&("node.kubernetes.io/unreachable".into(), "NoExecute".into()))
                && keys.contains(&("node.kubernetes.io/unreachable".into(), "NoSchedule".into()))
        }
    })
    .await;
    let node = nodes.get(NODE).await.unwrap();
    let ready = node
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        ready.message.as_deref(),
        Some("Kubelet stopped posting node status.")
    );
    let taint = node
        .spec
        .unwrap()
        .taints
        .unwrap()
        .into_iter()
        .find(|t| t.effect == "NoExecute")
        .unwrap();
    let tainted = taint.time_added.expect("the NoExecute taint's timeAdded").0;
    assert!(stopped.elapsed() >= grace - Duration::from_millis(500));

    // The pod with tolerationSeconds 2 goes 2s after the taint was added.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    eventually_within(15, "the short-toleration pod to be deleted", || {
        let pods = pods.clone();
        async move {
            pods.get_opt("short")
                .await
                .unwrap()
                .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
        }
    })
    .await;
    let waited = jiff::Timestamp::now().duration_since(tainted);
    assert!(waited >= jiff::SignedDuration::from_secs(2), "{waited:?}");
    let events: Api<Event> = Api::namespaced(client.clone(), "default");
    let evictions: Vec<_> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("TaintManagerEviction"))
        .collect();
    assert_eq!(evictions.len(), 1, "{evictions:?}");
    assert_eq!(
        evictions[0].message.as_deref(),
        Some("Marking for deletion Pod default/short")
    );

    // The pod that tolerates without a limit stays, marked not Ready.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let forever = pods.get("forever").await.unwrap();
    assert!(forever.metadata.deletion_timestamp.is_none());
    let ready = forever
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False");

    // Heartbeats again: Ready (posted by the "kubelet") clears the taints.
    alive.store(true, Ordering::SeqCst);
    let status = json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "KubeletReady",
        "message": "kubelet is posting ready status",
        "lastHeartbeatTime": now(), "lastTransitionTime": now(),
    }]}});
    nodes
        .patch_status(NODE, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    eventually_within(10, "the taints to go", || {
        let nodes = nodes.clone();
        async move { taint_keys(&nodes.get(NODE).await.unwrap()).is_empty() }
    })
    .await;
    drop(api);
}
