//! The scheduler against an in-process API server: Node objects made
//! through the API (Ready through the `nodes/status` subresource, no
//! kubelet), pods created through the API, placements read back from it.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Node, Pod};
use kedge_control::server::RunningServer;
use kedge_control::testing::{self, TestServer};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(20);

struct Cluster {
    _server: RunningServer,
    _dir: tempfile::TempDir,
    client: Client,
    scheduler: tokio::task::JoinHandle<()>,
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.scheduler.abort();
    }
}

async fn cluster() -> Cluster {
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    let scheduler = tokio::spawn(kedge_control::scheduler::run(client.clone()));
    Cluster {
        _server: server,
        _dir: dir,
        client,
        scheduler,
    }
}

/// A node with 4 CPUs, 8Gi and 110 pods, `spec` merged in, Ready unless
/// `ready` is false.
async fn node(c: &Cluster, name: &str, labels: Value, spec: Value, ready: bool) {
    let api: Api<Node> = Api::all(c.client.clone());
    let mut labels = labels;
    labels["kubernetes.io/hostname"] = json!(name);
    let n: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &n)
        .await
        .expect("create node");
    let resources = json!({"cpu": "4", "memory": "8Gi", "pods": "110"});
    let status = json!({"status": {
        "capacity": resources, "allocatable": resources,
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
            "reason": "KubeletReady", "message": "ready",
            "lastHeartbeatTime": "2025-01-01T00:00:00Z", "lastTransitionTime": "2025-01-01T00:00:00Z"}],
    }});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .expect("node status");
}

async fn ready_nodes(c: &Cluster, names: &[&str]) {
    for n in names {
        node(c, n, json!({}), json!({}), true).await;
    }
}

async fn create_pod(c: &Cluster, name: &str, spec: Value) {
    create_pod_with_meta(c, json!({"name": name}), spec).await;
}

async fn create_pod_with_meta(c: &Cluster, meta: Value, spec: Value) {
    let mut spec = spec;
    if spec.get("containers").is_none() {
        spec["containers"] = json!([{"name": "app", "image": "busybox"}]);
    }
    let api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let p: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec,
    }))
    .unwrap();
    api.create(&PostParams::default(), &p)
        .await
        .expect("create pod");
}

/// `f` every 100 ms until it answers; `None` after [`WAIT`].
async fn try_eventually<T, F, Fut>(mut f: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(v) = f().await {
            return Some(v);
        }
        if tokio::time::Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_pod(c: &Cluster, name: &str) -> Pod {
    Api::<Pod>::namespaced(c.client.clone(), "default")
        .get(name)
        .await
        .expect("get pod")
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref()?.node_name.clone().filter(|n| !n.is_empty())
}

async fn scheduled_on(c: &Cluster, name: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(n) = node_of(&get_pod(c, name).await) {
            return n;
        }
        if tokio::time::Instant::now() > deadline {
            let events: Vec<String> = Api::<Event>::namespaced(c.client.clone(), "default")
                .list(&ListParams::default())
                .await
                .map(|l| l.items.into_iter().filter_map(|e| e.message).collect())
                .unwrap_or_default();
            panic!("timed out waiting for {name} to be scheduled; events: {events:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Wait for the pod's PodScheduled=False message to be `want`. The scheduler
/// watches nodes and pods apart, so an early attempt may have seen fewer
/// nodes (or a node before its status) and said something else.
async fn unschedulable_message(c: &Cluster, name: &str, want: &str) {
    unschedulable_message_where(c, name, |m| m == want).await
}

async fn unschedulable_message_where(c: &Cluster, name: &str, accept: impl Fn(&str) -> bool) {
    let last = std::sync::Mutex::new(None);
    let what = format!("{name}'s PodScheduled condition");
    let found = try_eventually(|| async {
        let p = get_pod(c, name).await;
        assert_eq!(node_of(&p), None, "{name} must stay unscheduled");
        let cond = p
            .status?
            .conditions?
            .into_iter()
            .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
        assert_eq!(cond.reason.as_deref(), Some("Unschedulable"));
        let message = cond.message?;
        let ok = accept(&message);
        *last.lock().unwrap() = Some(message);
        ok.then_some(())
    })
    .await;
    if found.is_none() {
        panic!(
            "timed out waiting for {what}; last: {:?}",
            last.lock().unwrap()
        );
    }
}

async fn events_for(c: &Cluster, pod: &str, reason: &str) -> Vec<Event> {
    Api::<Event>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default())
        .await
        .expect("events")
        .items
        .into_iter()
        .filter(|e| {
            e.involved_object.name.as_deref() == Some(pod) && e.reason.as_deref() == Some(reason)
        })
        .collect()
}

/// The pod's `reason` event whose message `accept`s; earlier attempts
/// may have left events with other messages.
async fn wait_for_event(
    c: &Cluster,
    pod: &str,
    reason: &str,
    accept: impl Fn(&str) -> bool,
) -> Event {
    let seen = std::sync::Mutex::new(Vec::new());
    let found = try_eventually(|| async {
        let events = events_for(c, pod, reason).await;
        *seen.lock().unwrap() = events.iter().filter_map(|e| e.message.clone()).collect();
        let e = events
            .into_iter()
            .find(|e| e.message.as_deref().is_some_and(&accept))?;
        assert_eq!(
            e.source.as_ref().and_then(|s| s.component.as_deref()),
            Some("default-scheduler")
        );
        Some(e)
    })
    .await;
    found.unwrap_or_else(|| {
        panic!(
            "timed out waiting for a {reason} event for {pod}; seen: {:?}",
            seen.lock().unwrap()
        )
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_of_one_owner_spread_across_nodes() {
    let c = cluster().await;
    ready_nodes(&c, &["n1", "n2", "n3"]).await;
    let owner = json!([{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web",
        "uid": "3b0e8a8e-0000-4000-8000-000000000001", "controller": true}]);
    for i in 0..6 {
        let meta =
            json!({"name": format!("web-{i}"), "labels": {"app": "web"}, "ownerReferences": owner});
        create_pod_with_meta(
            &c,
            meta,
            json!({"containers": [{"name": "app", "image": "busybox",
            "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}}}]}),
        )
        .await;
    }
    let mut per_node = std::collections::BTreeMap::new();
    for i in 0..6 {
        *per_node
            .entry(scheduled_on(&c, &format!("web-{i}")).await)
            .or_insert(0) += 1;
    }
    assert_eq!(
        per_node.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{per_node:?}"
    );
    wait_for_event(&c, "web-0", "Scheduled", |m| {
        m.starts_with("Successfully assigned default/web-0 to n")
    })
    .await;
    let p = get_pod(&c, "web-0").await;
    let cond = p.status.unwrap().conditions.unwrap();
    assert!(cond
        .iter()
        .any(|c| c.type_ == "PodScheduled" && c.status == "True"));
}

#[tokio::test(flavor = "multi_thread")]
async fn node_selector_without_a_match_stays_pending_until_a_node_is_labelled() {
    let c = cluster().await;
    ready_nodes(&c, &["n1", "n2", "n3"]).await;
    create_pod(&c, "mysql", json!({"nodeSelector": {"mysql": "true"}})).await;
    let want = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. \
                preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    unschedulable_message(&c, "mysql", want).await;
    let event = wait_for_event(&c, "mysql", "FailedScheduling", |m| m == want).await;
    assert_eq!(event.type_.as_deref(), Some("Warning"));

    // `kubectl label node n2 mysql=true`
    let label = json!({"metadata": {"labels": {"mysql": "true"}}});
    Api::<Node>::all(c.client.clone())
        .patch("n2", &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label node");
    assert_eq!(scheduled_on(&c, "mysql").await, "n2");
    wait_for_event(&c, "mysql", "Scheduled", |m| {
        m == "Successfully assigned default/mysql to n2"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_beyond_every_node_stay_pending_with_insufficient_cpu() {
    let c = cluster().await;
    ready_nodes(&c, &["n1", "n2", "n3"]).await;
    create_pod(
        &c,
        "big",
        json!({"containers": [{"name": "app", "image": "busybox",
        "resources": {"requests": {"cpu": "16"}}}]}),
    )
    .await;
    let want = "0/3 nodes are available: 3 Insufficient cpu. \
                preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.";
    unschedulable_message(&c, "big", want).await;
    wait_for_event(&c, "big", "FailedScheduling", |m| m == want).await;

    // Requests add up: two 3-CPU pods cannot share a 4-CPU node.
    for i in 0..3 {
        create_pod(
            &c,
            &format!("half-{i}"),
            json!({"containers": [{"name": "app", "image": "busybox",
            "resources": {"requests": {"cpu": "3"}}}]}),
        )
        .await;
    }
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(scheduled_on(&c, &format!("half-{i}")).await);
    }
    nodes.sort();
    assert_eq!(nodes, vec!["n1", "n2", "n3"]);
    create_pod(
        &c,
        "one-more",
        json!({"containers": [{"name": "app", "image": "busybox",
        "resources": {"requests": {"cpu": "3"}}}]}),
    )
    .await;
    unschedulable_message_where(&c, "one-more", |m| {
        m.starts_with("0/3 nodes are available: 3 Insufficient cpu.")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_schedule_taints_are_respected_unless_tolerated() {
    let c = cluster().await;
    let taint =
        |k: &str, v: &str, e: &str| json!({"taints": [{"key": k, "value": v, "effect": e}]});
    node(
        &c,
        "t1",
        json!({}),
        taint("dedicated", "db", "NoSchedule"),
        true,
    )
    .await;
    node(
        &c,
        "t2",
        json!({}),
        taint("dedicated", "db", "NoSchedule"),
        true,
    )
    .await;
    node(
        &c,
        "t3",
        json!({}),
        json!({"taints": [{"key": "maintenance", "effect": "NoExecute"}]}),
        true,
    )
    .await;
    create_pod(&c, "plain", json!({})).await;
    unschedulable_message(
        &c,
        "plain",
        "0/3 nodes are available: 1 node(s) had untolerated taint {maintenance: }, \
         2 node(s) had untolerated taint {dedicated: db}. \
         preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
    )
    .await;
    create_pod(
        &c,
        "db",
        json!({"tolerations": [
        {"key": "dedicated", "operator": "Equal", "value": "db", "effect": "NoSchedule"}]}),
    )
    .await;
    let on = scheduled_on(&c, "db").await;
    assert!(on == "t1" || on == "t2", "{on}");
}

#[tokio::test(flavor = "multi_thread")]
async fn host_port_conflicts_keep_pods_apart_until_the_port_is_freed() {
    let c = cluster().await;
    ready_nodes(&c, &["n1", "n2", "n3"]).await;
    let spec = json!({"containers": [{"name": "app", "image": "busybox",
        "ports": [{"containerPort": 80, "hostPort": 8080}]}]});
    for i in 0..3 {
        create_pod(&c, &format!("hp-{i}"), spec.clone()).await;
    }
    let mut nodes = Vec::new();
    for i in 0..3 {
        nodes.push(scheduled_on(&c, &format!("hp-{i}")).await);
    }
    nodes.sort();
    assert_eq!(nodes, vec!["n1", "n2", "n3"]);
    create_pod(&c, "hp-3", spec.clone()).await;
    unschedulable_message(
        &c,
        "hp-3",
        "0/3 nodes are available: 3 node(s) didn't have free ports for the requested pod ports. \
         preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.",
    )
    .await;
    let freed = node_of(&get_pod(&c, "hp-1").await).unwrap();
    Api::<Pod>::namespaced(c.client.clone(), "default")
        .delete(
            "hp-1",
            &DeleteParams {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .expect("delete");
    assert_eq!(scheduled_on(&c, "hp-3").await, freed);
}

#[tokio::test(flavor = "multi_thread")]
async fn cordoned_and_not_ready_nodes_are_skipped() {
    let c = cluster().await;
    node(
        &c,
        "cordoned",
        json!({}),
        json!({"unschedulable": true}),
        true,
    )
    .await;
    node(&c, "not-ready", json!({}), json!({}), false).await;
    node(&c, "ok", json!({}), json!({}), true).await;
    for i in 0..4 {
        create_pod(&c, &format!("p-{i}"), json!({})).await;
    }
    for i in 0..4 {
        assert_eq!(scheduled_on(&c, &format!("p-{i}")).await, "ok");
    }
    Api::<Node>::all(c.client.clone())
        .patch(
            "ok",
            &PatchParams::default(),
            &Patch::Merge(&json!({"spec": {"unschedulable": true}})),
        )
        .await
        .expect("cordon");
    let want = "0/3 nodes are available: 1 node(s) were not ready, 2 node(s) were unschedulable. \
                preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.";
    // A probe no node can take: its message names "ok" as unschedulable (not
    // as a selector mismatch) once the scheduler has seen the cordon, so
    // `late` cannot land on "ok" from a stale view.
    create_pod(&c, "probe", json!({"nodeSelector": {"nowhere": "true"}})).await;
    unschedulable_message(&c, "probe", want).await;
    create_pod(&c, "late", json!({})).await;
    unschedulable_message(&c, "late", want).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn no_nodes_at_all() {
    let c = cluster().await;
    create_pod(&c, "lonely", json!({})).await;
    unschedulable_message(&c, "lonely", "no nodes available to schedule pods").await;
    ready_nodes(&c, &["n1"]).await;
    assert_eq!(scheduled_on(&c, "lonely").await, "n1");
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_for_another_scheduler_are_left_alone() {
    let c = cluster().await;
    ready_nodes(&c, &["n1"]).await;
    create_pod(&c, "other", json!({"schedulerName": "my-scheduler"})).await;
    create_pod(&c, "mine", json!({})).await;
    assert_eq!(scheduled_on(&c, "mine").await, "n1");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(node_of(&get_pod(&c, "other").await), None);
}
