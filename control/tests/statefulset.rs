//! The StatefulSet controller against an in-process API server, with a
//! stand-in kubelet that marks pods Running and Ready through pods/status.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Event, Pod};
use kedge_control::controllers::{statefulset, Context};
use kedge_control::testing::{self, eventually_within, TestServer};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;

mod raw_status;

struct Cluster {
    client: Client,
    /// Pods turn Ready only while this is true.
    ready: Arc<AtomicBool>,
    /// Names of pods in the order their deletion was first seen.
    deleted: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
    _server: kedge_control::server::RunningServer,
}

async fn start() -> Cluster {
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    tokio::spawn(statefulset::run(Context::new(client.clone())));
    let ready = Arc::new(AtomicBool::new(true));
    tokio::spawn(kubelet(client.clone(), ready.clone()));
    let deleted = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(record_deletions(client.clone(), deleted.clone()));
    Cluster {
        client,
        ready,
        deleted,
        _dir: dir,
        _server: server,
    }
}

/// Every 100ms: pods not yet Ready turn Running and Ready (when allowed),
/// pods being deleted are finished.
async fn kubelet(client: Client, ready: Arc<AtomicBool>) {
    let api: Api<Pod> = Api::namespaced(client, "default");
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let Ok(list) = api.list(&ListParams::default()).await else {
            continue;
        };
        for pod in list.items {
            let name = pod.metadata.name.clone().unwrap_or_default();
            if pod.metadata.deletion_timestamp.is_some() {
                let _ = api
                    .delete(&name, &DeleteParams::default().grace_period(0))
                    .await;
                continue;
            }
            if is_ready(&pod) || !ready.load(Ordering::SeqCst) {
                continue;
            }
            let now = jiff::Timestamp::now().to_string();
            let patch = json!({"status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": "True", "lastTransitionTime": now},
                {"type": "ContainersReady", "status": "True", "lastTransitionTime": now},
            ]}});
            let _ = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await;
        }
    }
}

async fn record_deletions(client: Client, out: Arc<Mutex<Vec<String>>>) {
    let api: Api<Pod> = Api::namespaced(client, "default");
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut seen = std::collections::HashSet::new();
    while let Some(Ok(ev)) = events.next().await {
        let pods = match ev {
            watcher::Event::Apply(p) if p.metadata.deletion_timestamp.is_some() => vec![p],
            watcher::Event::Delete(p) => vec![p],
            _ => Vec::new(),
        };
        for p in pods {
            // One entry per pod object, however many events it sends.
            if seen.insert(p.metadata.uid.clone().unwrap_or_default()) {
                out.lock().push(p.metadata.name.unwrap_or_default());
            }
        }
    }
}

fn is_ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// Names of the live (not terminating) pods, sorted.
async fn live(client: &Client) -> Vec<String> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let mut names: Vec<String> = api
        .list(&ListParams::default().labels("app=web"))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .filter_map(|p| p.metadata.name)
        .collect();
    names.sort();
    names
}

fn sts(replicas: i32, policy: &str) -> StatefulSet {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "serviceName": "nginx",
            "podManagementPolicy": policy,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "nginx:1"}]}
            }
        }
    }))
    .unwrap()
}

async fn wait_ready(c: &Cluster, n: i32) {
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    eventually_within(30, &format!("{n} ready replicas"), || {
        let api = api.clone();
        let client = c.client.clone();
        async move {
            let st = api.get("web").await.unwrap().status.unwrap_or_default();
            live(&client).await.len() == n as usize
                && st.replicas == n
                && st.ready_replicas == Some(n)
                && st.current_revision == st.update_revision
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ordered_ready_creates_in_order_heals_and_scales_down_in_reverse() {
    let c = start().await;
    c.ready.store(false, Ordering::SeqCst);
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &sts(3, "OrderedReady"))
        .await
        .unwrap();
    eventually_within(30, "web-0", || async { live(&c.client).await == ["web-0"] }).await;
    // Nothing more until web-0 is Ready.
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(live(&c.client).await, ["web-0"]);
    // None Ready: readyReplicas is omitted at zero, availableReplicas (no
    // omitempty in the Go type) is not.
    eventually_within(10, "status of web-0", || async {
        let raw = raw_status::raw_status::<StatefulSet>(&c.client, "web").await;
        raw["replicas"] == json!(1) && raw["currentReplicas"] == json!(1)
    })
    .await;
    let raw = raw_status::raw_status::<StatefulSet>(&c.client, "web").await;
    assert!(raw.get("readyReplicas").is_none(), "{raw}");
    assert_eq!(raw["availableReplicas"], json!(0), "{raw}");
    c.ready.store(true, Ordering::SeqCst);
    wait_ready(&c, 3).await;
    let raw = raw_status::raw_status::<StatefulSet>(&c.client, "web").await;
    assert_eq!(raw["readyReplicas"], json!(3), "{raw}");
    assert_eq!(live(&c.client).await, ["web-0", "web-1", "web-2"]);

    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let p = pod_api.get("web-1").await.unwrap();
    let labels = p.metadata.labels.clone().unwrap();
    assert_eq!(labels["statefulset.kubernetes.io/pod-name"], "web-1");
    assert_eq!(labels["apps.kubernetes.io/pod-index"], "1");
    let st = api.get("web").await.unwrap().status.unwrap();
    assert_eq!(
        Some(&labels["controller-revision-hash"]),
        st.update_revision.as_ref()
    );
    assert_eq!(st.updated_replicas, Some(3));
    assert_eq!(st.current_replicas, Some(3));
    let spec = p.spec.unwrap();
    assert_eq!(spec.hostname.as_deref(), Some("web-1"));
    assert_eq!(spec.subdomain.as_deref(), Some("nginx"));
    let owner = &p.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.controller),
        ("StatefulSet", Some(true))
    );

    let events: Api<Event> = Api::namespaced(c.client.clone(), "default");
    eventually_within(10, "a SuccessfulCreate event", || async {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .any(|e| {
                e.reason.as_deref() == Some("SuccessfulCreate")
                    && e.message.as_deref()
                        == Some("create Pod web-0 in StatefulSet web successful")
            })
    })
    .await;

    // A deleted member comes back under its name.
    let old_uid = p.metadata.uid.clone();
    pod_api
        .delete("web-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually_within(30, "web-1 back", || async {
        pod_api
            .get_opt("web-1")
            .await
            .unwrap()
            .is_some_and(|p| p.metadata.uid != old_uid && is_ready(&p))
    })
    .await;
    wait_ready(&c, 3).await;

    // The recorder runs on its own watch: let it catch up with the old
    // web-1 before clearing, so it cannot land in the list below.
    eventually_within(30, "the old web-1's deletion recorded", || async {
        c.deleted.lock().iter().any(|n| n == "web-1")
    })
    .await;
    c.deleted.lock().clear();
    api.patch(
        "web",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 1}})),
    )
    .await
    .unwrap();
    wait_ready(&c, 1).await;
    assert_eq!(live(&c.client).await, ["web-0"]);
    eventually_within(30, "both deletions recorded", || async {
        c.deleted.lock().len() >= 2
    })
    .await;
    assert_eq!(*c.deleted.lock(), ["web-2", "web-1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn parallel_creates_all_at_once() {
    let c = start().await;
    c.ready.store(false, Ordering::SeqCst);
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &sts(3, "Parallel"))
        .await
        .unwrap();
    eventually_within(30, "3 pods, none ready", || async {
        live(&c.client).await == ["web-0", "web-1", "web-2"]
    })
    .await;
    c.ready.store(true, Ordering::SeqCst);
    wait_ready(&c, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_update_replaces_from_the_highest_ordinal() {
    let c = start().await;
    let api: Api<StatefulSet> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &sts(3, "OrderedReady"))
        .await
        .unwrap();
    wait_ready(&c, 3).await;
    let before = api.get("web").await.unwrap().status.unwrap();
    c.deleted.lock().clear();
    let image = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "c", "image": "nginx:2"}]}}}});
    api.patch("web", &PatchParams::default(), &Patch::Strategic(image))
        .await
        .unwrap();
    eventually_within(60, "the rollout", || async {
        let st = api.get("web").await.unwrap().status.unwrap_or_default();
        st.update_revision != before.update_revision
            && st.current_revision == st.update_revision
            && st.updated_replicas == Some(3)
            && st.ready_replicas == Some(3)
    })
    .await;
    eventually_within(30, "the three deletions recorded", || async {
        c.deleted.lock().len() >= 3
    })
    .await;
    assert_eq!(*c.deleted.lock(), ["web-2", "web-1", "web-0"]);
    let pod_api: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for p in pod_api.list(&ListParams::default()).await.unwrap().items {
        let image = p.spec.unwrap().containers[0].image.clone();
        assert_eq!(image.as_deref(), Some("nginx:2"));
    }
}
