//! The DaemonSet controller against an in-process API server with the
//! scheduler, Node objects made by the test, and a stand-in kubelet that
//! marks bound pods Ready and finishes graceful deletions.

use std::time::Duration;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Node, Pod};
use kedge_control::controllers::{daemonset, Context};
use kedge_control::testing::{self, eventually_within};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

mod raw_status;

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

async fn node(client: &Client, name: &str) {
    let nodes: Api<Node> = Api::all(client.clone());
    let n: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
    }))
    .unwrap();
    nodes.create(&PostParams::default(), &n).await.unwrap();
    let res = json!({"cpu": "4", "memory": "8Gi", "pods": "110"});
    let status = json!({"status": {
        "capacity": res, "allocatable": res,
        "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                        "lastHeartbeatTime": now(), "lastTransitionTime": now()}],
    }});
    nodes
        .patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
}

async fn label(client: &Client, name: &str, value: Option<&str>) {
    let nodes: Api<Node> = Api::all(client.clone());
    let patch = json!({"metadata": {"labels": {"daemon": value}}});
    nodes
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

/// Marks bound pods Running and Ready; removes pods being deleted.
async fn kubelet(client: Client) {
    let api: Api<Pod> = Api::namespaced(client, "default");
    loop {
        for p in api.list(&ListParams::default()).await.unwrap().items {
            let name = p.metadata.name.clone().unwrap();
            if p.metadata.deletion_timestamp.is_some() {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                continue;
            }
            let bound = p.spec.as_ref().and_then(|s| s.node_name.as_ref()).is_some();
            let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
            if bound && !running {
                let status = json!({"status": {"phase": "Running", "conditions": [
                    {"type": "Ready", "status": "True", "lastTransitionTime": now()},
                ]}});
                let _ = api
                    .patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                    .await;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Live (not terminating) pods by node.
async fn placement(client: &Client) -> Vec<(String, String)> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut out: Vec<(String, String)> = api
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .map(|p| {
            let node = p.spec.and_then(|s| s.node_name).unwrap_or_default();
            let hash = p
                .metadata
                .labels
                .unwrap_or_default()
                .get("controller-revision-hash")
                .cloned()
                .unwrap_or_default();
            (node, hash)
        })
        .collect();
    out.sort();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn one_pod_per_labelled_node_and_rolling_update() {
    let api = testing::start().await;
    let client = api.client.clone();
    tokio::spawn(daemonset::run(Context::new(client.clone())));
    tokio::spawn(kedge_control::scheduler::run(client.clone()));
    tokio::spawn(kubelet(client.clone()));
    node(&client, "n1").await;
    node(&client, "n2").await;
    node(&client, "n3").await;

    let ds: DaemonSet = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "agent", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "agent"}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": {
                "metadata": {"labels": {"app": "agent"}},
                "spec": {"nodeSelector": {"daemon": "yes"},
                         "containers": [{"name": "c", "image": "agent:1"}]}
            }
        }
    }))
    .unwrap();
    let dss: Api<DaemonSet> = Api::namespaced(client.clone(), "default");
    dss.create(&PostParams::default(), &ds).await.unwrap();

    // No node wanted: the four counts without omitempty read 0, the
    // others are absent, as Go encodes them.
    eventually_within(10, "the first status", || async {
        let raw = raw_status::raw_status::<DaemonSet>(&client, "agent").await;
        raw["observedGeneration"] == json!(1)
    })
    .await;
    assert_eq!(
        raw_status::raw_status::<DaemonSet>(&client, "agent").await,
        json!({
            "currentNumberScheduled": 0, "desiredNumberScheduled": 0,
            "numberMisscheduled": 0, "numberReady": 0, "observedGeneration": 1,
        })
    );

    // Labelling nodes brings one pod to each.
    label(&client, "n1", Some("yes")).await;
    label(&client, "n2", Some("yes")).await;
    let c = client.clone();
    eventually_within(30, "a pod on n1 and n2", || {
        let c = c.clone();
        async move {
            let nodes: Vec<String> = placement(&c).await.into_iter().map(|p| p.0).collect();
            nodes == ["n1", "n2"]
        }
    })
    .await;
    let d = dss.clone();
    eventually_within(15, "status counts", || {
        let d = d.clone();
        async move {
            let st = d.get("agent").await.unwrap().status.unwrap_or_default();
            st.desired_number_scheduled == 2
                && st.current_number_scheduled == 2
                && st.number_ready == 2
                && st.number_available == Some(2)
                && st.updated_number_scheduled == Some(2)
                && st.number_misscheduled == 0
                && st.observed_generation == Some(1)
        }
    })
    .await;
    let raw = raw_status::raw_status::<DaemonSet>(&client, "agent").await;
    assert!(raw.get("numberUnavailable").is_none(), "{raw}");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod = pods
        .list(&ListParams::default().labels("app=agent"))
        .await
        .unwrap()
        .items
        .remove(0);
    assert!(pod.metadata.name.unwrap().starts_with("agent-"));
    let owner = &pod.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("DaemonSet", Some(true))
    );
    let tolerations = pod.spec.unwrap().tolerations.unwrap();
    assert!(tolerations
        .iter()
        .any(|t| t.key.as_deref() == Some("node.kubernetes.io/unschedulable")));

    // Unlabelling a node takes its pod away.
    label(&client, "n1", None).await;
    let c = client.clone();
    eventually_within(30, "only n2 left", || {
        let c = c.clone();
        async move {
            let nodes: Vec<String> = placement(&c).await.into_iter().map(|p| p.0).collect();
            nodes == ["n2"]
        }
    })
    .await;
    label(&client, "n1", Some("yes")).await;
    label(&client, "n3", Some("yes")).await;
    let c = client.clone();
    let d = dss.clone();
    // Available on all three before the rollout: an old pod that is not
    // yet available is replaced at once, outside the maxUnavailable budget,
    // as Kubernetes does.
    eventually_within(30, "pods available on all three", || {
        let (c, d) = (c.clone(), d.clone());
        async move {
            let st = d.get("agent").await.unwrap().status.unwrap_or_default();
            placement(&c).await.len() == 3 && st.number_available == Some(3)
        }
    })
    .await;
    let old_hash = placement(&client).await[0].1.clone();

    // A new template rolls out; never more than one node without a live pod.
    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "agent:2"}]}}}});
    dss.patch("agent", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let now = placement(&client).await;
        assert!(now.len() >= 2, "more than maxUnavailable down: {now:?}");
        let st = dss.get("agent").await.unwrap().status.unwrap_or_default();
        if now.len() == 3
            && now.iter().all(|(_, h)| *h != old_hash)
            && st.updated_number_scheduled == Some(3)
            && st.number_available == Some(3)
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "rollout stuck: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(api);
}
