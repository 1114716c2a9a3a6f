//! The Deployment controller (with the ReplicaSet controller) against an
//! in-process API server; the test plays the kubelet.

mod raw_status;
#[path = "deployment_support.rs"]
mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kedge_control::testing::eventually_within;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use parking_lot::Mutex;
use serde_json::json;

fn deployment(name: &str, replicas: i32, strategy: serde_json::Value) -> Deployment {
    serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "strategy": strategy,
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]}
            }
        }
    }))
    .unwrap()
}

async fn complete(api: &Api<Deployment>, name: &str) -> bool {
    let d = api.get(name).await.unwrap();
    let want = d.spec.as_ref().unwrap().replicas.unwrap();
    let s = d.status.clone().unwrap_or_default();
    s.observed_generation >= d.metadata.generation
        && s.updated_replicas == Some(want)
        && s.replicas == Some(want)
        && s.available_replicas == Some(want)
}

async fn wait_complete(api: &Api<Deployment>, name: &str) {
    eventually_within(60, &format!("{name} complete"), || async {
        complete(api, name).await
    })
    .await;
}

async fn replica_sets(client: &kube::Client, app: &str) -> Vec<ReplicaSet> {
    Api::<ReplicaSet>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels(&format!("app={app}")))
        .await
        .unwrap()
        .items
}

fn revision(rs: &ReplicaSet) -> String {
    rs.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"].clone()
}

fn image(rs: &ReplicaSet) -> String {
    rs.spec
        .as_ref()
        .unwrap()
        .template
        .as_ref()
        .unwrap()
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
        .image
        .clone()
        .unwrap()
}

async fn set_image(api: &Api<Deployment>, name: &str, image: &str) {
    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": image}]}}}});
    api.patch(name, &PatchParams::default(), &Patch::Strategic(&patch))
        .await
        .unwrap();
}

/// Watches the pods of `app` and calls `check(active, ready)` at every event.
fn sample(
    client: &kube::Client,
    app: &str,
    check: impl Fn(&[Arc<Pod>]) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    let api: Api<Pod> = Api::namespaced(client.clone(), "default");
    let (reader, writer) = reflector::store();
    let cfg = watcher::Config::default().labels(&format!("app={app}"));
    let stream = reflector::reflector(writer, watcher::watcher(api, cfg)).default_backoff();
    tokio::spawn(async move {
        let mut stream = stream.boxed();
        while let Some(ev) = stream.next().await {
            // The store is complete only once the initial list is done.
            if !matches!(ev, Ok(watcher::Event::Apply(_) | watcher::Event::Delete(_))) {
                continue;
            }
            let pods: Vec<Arc<Pod>> = reader
                .state()
                .into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none())
                .collect();
            check(&pods);
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_update_history_and_undo() {
    let c = support::start().await;
    c.ready_delay_ms.store(200, Ordering::SeqCst);
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let strategy =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}});
    api.create(&PostParams::default(), &deployment("web", 3, strategy))
        .await
        .unwrap();
    wait_complete(&api, "web").await;

    let rss = replica_sets(&c.client, "web").await;
    assert_eq!(rss.len(), 1);
    let first = &rss[0];
    let hash = first.metadata.labels.as_ref().unwrap()["pod-template-hash"].clone();
    assert_eq!(
        first.metadata.name.as_deref(),
        Some(format!("web-{hash}").as_str())
    );
    assert_eq!(
        first
            .spec
            .as_ref()
            .unwrap()
            .selector
            .match_labels
            .as_ref()
            .unwrap()["pod-template-hash"],
        hash
    );
    assert_eq!(revision(first), "1");
    let a = first.metadata.annotations.as_ref().unwrap();
    assert_eq!(a["deployment.kubernetes.io/desired-replicas"], "3");
    assert_eq!(a["deployment.kubernetes.io/max-replicas"], "4");
    for p in support::active_pods(&c.client, "app=web").await {
        assert_eq!(
            p.metadata.labels.as_ref().unwrap()["pod-template-hash"],
            hash
        );
    }

    // Roll to img:2 while sampling the bounds at every pod event.
    let violations = Arc::new(Mutex::new(Vec::<String>::new()));
    let v = violations.clone();
    let sampler = sample(&c.client, "web", move |pods| {
        let ready = pods.iter().filter(|p| support::is_ready(p)).count();
        if pods.len() > 4 || ready < 3 {
            v.lock().push(format!("{} pods, {ready} ready", pods.len()));
        }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    set_image(&api, "web", "img:2").await;
    wait_complete(&api, "web").await;
    let rss = replica_sets(&c.client, "web").await;
    assert_eq!(rss.len(), 2);
    let new = rss.iter().find(|r| image(r) == "img:2").unwrap();
    let old = rss.iter().find(|r| image(r) == "img:1").unwrap();
    assert_eq!(revision(new), "2");
    assert_eq!(revision(old), "1");
    assert_eq!(old.spec.as_ref().unwrap().replicas, Some(0));
    let d = api.get("web").await.unwrap();
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "2"
    );
    let progressing = d
        .status
        .as_ref()
        .unwrap()
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "Progressing")
        .cloned()
        .unwrap();
    assert_eq!(
        progressing.reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );

    // kubectl rollout undo: a JSON patch of the old template.
    let mut template =
        serde_json::to_value(old.spec.as_ref().unwrap().template.as_ref().unwrap()).unwrap();
    template["metadata"]["labels"]
        .as_object_mut()
        .unwrap()
        .remove("pod-template-hash");
    let patch = json!([{"op": "replace", "path": "/spec/template", "value": template}]);
    let req = hyper::Request::patch("/apis/apps/v1/namespaces/default/deployments/web")
        .header("Content-Type", "application/json-patch+json")
        .body(serde_json::to_vec(&patch).unwrap())
        .unwrap();
    c.client.request::<Deployment>(req).await.unwrap();
    wait_complete(&api, "web").await;
    let rss = replica_sets(&c.client, "web").await;
    assert_eq!(rss.len(), 2, "undo reuses the old ReplicaSet");
    let back = rss.iter().find(|r| image(r) == "img:1").unwrap();
    assert_eq!(revision(back), "3");
    assert_eq!(back.spec.as_ref().unwrap().replicas, Some(3));
    assert_eq!(
        back.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision-history"],
        "1"
    );
    let d = api.get("web").await.unwrap();
    assert_eq!(
        d.metadata.annotations.as_ref().unwrap()["deployment.kubernetes.io/revision"],
        "3"
    );
    eventually_within(30, "old pods gone", || async {
        let pods = support::active_pods(&c.client, "app=web").await;
        pods.len() == 3
            && pods
                .iter()
                .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("img:1"))
    })
    .await;
    sampler.abort();
    let violations = violations.lock().clone();
    assert!(violations.is_empty(), "bounds broken: {violations:?}");

    // ScalingReplicaSet events on the Deployment.
    let events: Api<k8s_openapi::api::core::v1::Event> =
        Api::namespaced(c.client.clone(), "default");
    let list = events.list(&ListParams::default()).await.unwrap();
    let msg = format!("Scaled up replica set web-{hash} from 0 to 3");
    assert!(
        list.items
            .iter()
            .any(|e| e.reason.as_deref() == Some("ScalingReplicaSet")
                && e.message.as_deref() == Some(msg.as_str())),
        "no event {msg:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_resume_and_scale() {
    let c = support::start().await;
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("app", 2, json!({"type": "RollingUpdate"})),
    )
    .await
    .unwrap();
    wait_complete(&api, "app").await;
    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": true}})),
    )
    .await
    .unwrap();
    set_image(&api, "app", "img:2").await;
    // Paused: scaling still applies, the template does not roll.
    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"replicas": 4}})),
    )
    .await
    .unwrap();
    eventually_within(30, "scaled while paused", || async {
        support::active_pods(&c.client, "app=app").await.len() == 4
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(replica_sets(&c.client, "app").await.len(), 1);
    let d = api.get("app").await.unwrap();
    let cond = d
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "Progressing")
        .unwrap();
    assert_eq!(cond.reason.as_deref(), Some("DeploymentPaused"));

    api.patch(
        "app",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"paused": null}})),
    )
    .await
    .unwrap();
    wait_complete(&api, "app").await;
    let rss = replica_sets(&c.client, "app").await;
    assert_eq!(rss.len(), 2);
    assert!(rss
        .iter()
        .any(|r| image(r) == "img:2" && r.spec.as_ref().unwrap().replicas == Some(4)));
}

#[tokio::test(flavor = "multi_thread")]
async fn recreate_never_mixes_versions() {
    let c = support::start().await;
    c.ready_delay_ms.store(100, Ordering::SeqCst);
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &deployment("db", 2, json!({"type": "Recreate"})),
    )
    .await
    .unwrap();
    wait_complete(&api, "db").await;
    let mixed = Arc::new(Mutex::new(false));
    let m = mixed.clone();
    let sampler = sample(&c.client, "db", move |pods| {
        let images: std::collections::BTreeSet<_> = pods
            .iter()
            .map(|p| p.spec.as_ref().unwrap().containers[0].image.clone())
            .collect();
        if images.len() > 1 {
            *m.lock() = true;
        }
    });
    set_image(&api, "db", "img:2").await;
    wait_complete(&api, "db").await;
    sampler.abort();
    assert!(!*mixed.lock(), "old and new pods ran together");
    let rss = replica_sets(&c.client, "db").await;
    assert!(rss
        .iter()
        .any(|r| image(r) == "img:2" && revision(r) == "2"));
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_deadline_exceeded() {
    let c = support::start().await;
    c.ready.store(false, Ordering::SeqCst);
    let api: Api<Deployment> = Api::namespaced(c.client.clone(), "default");
    let mut d = deployment("stuck", 2, json!({"type": "RollingUpdate"}));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(2);
    api.create(&PostParams::default(), &d).await.unwrap();
    eventually_within(30, "ProgressDeadlineExceeded", || async {
        let d = api.get("stuck").await.unwrap();
        let conds = d.status.and_then(|s| s.conditions).unwrap_or_default();
        let timed_out = conds.iter().any(|c| {
            c.type_ == "Progressing"
                && c.status == "False"
                && c.reason.as_deref() == Some("ProgressDeadlineExceeded")
        });
        let unavailable = conds.iter().any(|c| {
            c.type_ == "Available"
                && c.status == "False"
                && c.reason.as_deref() == Some("MinimumReplicasUnavailable")
        });
        timed_out && unavailable
    })
    .await;

    // No pod is Ready: the counters Kubernetes omits at zero are absent.
    let rs_name = replica_sets(&c.client, "stuck").await[0]
        .metadata
        .name
        .clone()
        .unwrap();
    eventually_within(10, "2 unavailable replicas", || async {
        let raw = raw_status::raw_status::<Deployment>(&c.client, "stuck").await;
        raw["replicas"] == json!(2) && raw["unavailableReplicas"] == json!(2)
    })
    .await;
    let raw = raw_status::raw_status::<Deployment>(&c.client, "stuck").await;
    let shown = raw_status::present(&raw, &["readyReplicas", "availableReplicas"]);
    assert!(shown.is_empty(), "{shown:?} in {raw}");
    assert_eq!(raw["updatedReplicas"], json!(2), "{raw}");
    let raw = raw_status::raw_status::<ReplicaSet>(&c.client, &rs_name).await;
    let shown = raw_status::present(&raw, &["readyReplicas", "availableReplicas"]);
    assert!(shown.is_empty(), "{shown:?} in {raw}");
    assert_eq!(raw["replicas"], json!(2), "{raw}");

    // Once they are, the counts show and unavailableReplicas goes.
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    for p in support::active_pods(&c.client, "app=stuck").await {
        let now = jiff::Timestamp::now().to_string();
        let patch = json!({"status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True", "lastTransitionTime": now},
        ]}});
        pods.patch_status(
            p.metadata.name.as_deref().unwrap(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
        .unwrap();
    }
    eventually_within(30, "2 ready replicas", || async {
        let raw = raw_status::raw_status::<Deployment>(&c.client, "stuck").await;
        let rs = raw_status::raw_status::<ReplicaSet>(&c.client, &rs_name).await;
        raw["readyReplicas"] == json!(2)
            && raw["availableReplicas"] == json!(2)
            && raw.get("unavailableReplicas").is_none()
            && rs["readyReplicas"] == json!(2)
    })
    .await;
}
