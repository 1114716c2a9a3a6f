//! API semantics seen by clients: watches (kubectl and kube-rs), errors with
//! field paths, optimistic concurrency, authentication, and durability of
//! acknowledged writes across a SIGKILL.

mod common;

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{eventually, Cluster};
use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Pod};
use kube::api::{Api, PostParams};
use kube::runtime::watcher;

fn pod(name: &str) -> Pod {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "c", "image": "busybox"}]},
    }))
    .unwrap()
}

/// Wait until the controllers have written what every namespace starts
/// with (the `default` ServiceAccount and the `kube-root-ca.crt`
/// ConfigMap of the four namespaces a cluster begins with), so those
/// writes do not land in the middle of a test.
async fn settled(client: &kube::Client) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    let sas: Api<ServiceAccount> = Api::all(client.clone());
    let cms: Api<ConfigMap> = Api::all(client.clone());
    let root_ca = kube::api::ListParams::default().fields("metadata.name=kube-root-ca.crt");
    for _ in 0..300 {
        let n_sa = sas.list(&Default::default()).await.unwrap().items.len();
        let n_cm = cms.list(&root_ca).await.unwrap().items.len();
        if n_sa >= 4 && n_cm >= 4 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the controllers did not fill the first namespaces");
}

fn configmap(name: &str) -> ConfigMap {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name},
        "data": {"k": "v"},
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn kubectl_watch_sees_objects_created_by_another_client() {
    let c = Cluster::start();
    // Warm kubectl's discovery cache so the watch starts quickly.
    c.kubectl(&["get", "pods"]);
    let mut child = c
        .kubectl_cmd(&["get", "pods", "-w", "--request-timeout=60s"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let seen = Arc::new(Mutex::new(String::new()));
    let seen2 = seen.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            seen2.lock().unwrap().push_str(&line);
            seen2.lock().unwrap().push('\n');
        }
    });
    let pods: Api<Pod> = Api::namespaced(c.client().await, "default");
    // Create repeatedly until the watch is open and sees one.
    let mut n = 0;
    let found = eventually(Duration::from_secs(30), || {
        n += 1;
        let name = format!("watched-{n}");
        let pods = pods.clone();
        let name2 = name.clone();
        let rt = tokio::runtime::Handle::current();
        std::thread::spawn(move || {
            rt.block_on(async { pods.create(&PostParams::default(), &pod(&name2)).await })
        })
        .join()
        .unwrap()
        .unwrap();
        std::thread::sleep(Duration::from_millis(400));
        seen.lock().unwrap().contains("watched-")
    });
    let _ = child.kill();
    let _ = child.wait();
    let out = seen.lock().unwrap().clone();
    assert!(found, "kubectl get -w printed:\n{out}");
    assert!(out.contains("Pending"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn kube_watcher_resumes_and_gets_410_after_compaction() {
    let c = Cluster::start_with(&["--watch-history", "5"]);
    let client = c.client().await;
    settled(&client).await;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let first = cms
        .create(&PostParams::default(), &configmap("a"))
        .await
        .unwrap();
    let rv = first.metadata.resource_version.clone().unwrap();

    // A watcher from the list sees a later create.
    let stream = watcher(cms.clone(), watcher::Config::default()).boxed();
    let (listed_tx, listed) = tokio::sync::oneshot::channel();
    let seen = tokio::spawn(async move {
        let mut stream = stream;
        let mut listed_tx = Some(listed_tx);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(watcher::Event::InitDone) => {
                    if let Some(tx) = listed_tx.take() {
                        let _ = tx.send(());
                    }
                }
                Ok(watcher::Event::Apply(cm)) if cm.metadata.name.as_deref() == Some("b") => {
                    return true;
                }
                _ => {}
            }
        }
        false
    });
    // `b` must come after the initial list to arrive as a live event.
    tokio::time::timeout(Duration::from_secs(20), listed)
        .await
        .expect("the watcher's initial list")
        .unwrap();
    cms.create(&PostParams::default(), &configmap("b"))
        .await
        .unwrap();
    assert!(tokio::time::timeout(Duration::from_secs(20), seen)
        .await
        .unwrap()
        .unwrap());

    // Resuming from a revision inside the history replays what followed.
    let mut w = cms
        .watch(&kube::api::WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        kube::api::WatchEvent::Added(cm) => assert_eq!(cm.metadata.name.as_deref(), Some("b")),
        other => panic!("expected ADDED b, got {other:?}"),
    }

    // Push the history past that revision: the same resume is now Expired.
    for i in 0..10 {
        cms.create(&PostParams::default(), &configmap(&format!("fill-{i}")))
            .await
            .unwrap();
    }
    let mut w = cms
        .watch(&kube::api::WatchParams::default(), &rv)
        .await
        .unwrap()
        .boxed();
    let ev = tokio::time::timeout(Duration::from_secs(10), w.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    match ev {
        kube::api::WatchEvent::Error(e) => {
            assert_eq!(e.code, 410);
            assert_eq!(e.reason, "Expired");
        }
        other => panic!("expected a 410 ERROR event, got {other:?}"),
    }
}

#[test]
fn invalid_manifests_get_field_paths() {
    let c = Cluster::start();
    let f = |n: &str| Cluster::fixture(&format!("invalid/{n}"));

    let err = c.kubectl_fails(&["apply", "-f", &f("wrong-type.yaml")]);
    assert!(err.contains("spec.replicas"), "{err}");

    let err = c.kubectl_fails(&["apply", "-f", &f("bad-name.yaml")]);
    assert!(
        err.contains("The ConfigMap \"Bad_Name\" is invalid"),
        "{err}"
    );
    assert!(
        err.contains("metadata.name: Invalid value: \"Bad_Name\""),
        "{err}"
    );

    let err = c.kubectl_fails(&["apply", "-f", &f("selector-mismatch.yaml")]);
    assert!(err.contains("The Deployment \"web\" is invalid"), "{err}");
    assert!(err.contains("spec.template.metadata.labels"), "{err}");
    assert!(
        err.contains("`selector` does not match template `labels`"),
        "{err}"
    );

    let err = c.kubectl_fails(&["apply", "-f", &f("unknown-kind.yaml")]);
    assert!(err.contains("no matches for kind \"Widget\""), "{err}");

    let err = c.kubectl_fails(&["create", "-f", &f("unknown-field.yaml")]);
    assert!(err.contains("unknown field \"color\""), "{err}");

    let err = c.kubectl_fails(&["create", "-f", &f("missing-image.yaml")]);
    assert!(
        err.contains("spec.containers[0].image: Required value"),
        "{err}"
    );
    assert!(
        err.contains("spec.containers[1].name: Duplicate value: \"c\""),
        "{err}"
    );
    assert!(
        err.contains("spec.containers[1].ports[0].containerPort"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_update_conflicts_and_a_wrong_token_is_unauthorized() {
    let c = Cluster::start();
    let cms: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    let cm = cms
        .create(&PostParams::default(), &configmap("x"))
        .await
        .unwrap();
    let mut newer = cm.clone();
    newer.data = Some([("k".to_string(), "v2".to_string())].into());
    cms.replace("x", &PostParams::default(), &newer)
        .await
        .unwrap();
    // `cm` still carries the first resourceVersion.
    let mut stale = cm.clone();
    stale.data = Some([("k".to_string(), "v3".to_string())].into());
    match cms.replace("x", &PostParams::default(), &stale).await {
        Err(kube::Error::Api(s)) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
        }
        other => panic!("expected 409, got {other:?}"),
    }

    // A token that does not authenticate is refused (the admin's
    // kubeconfig is left out: its client certificate would authenticate
    // first, as in Kubernetes).
    let ca = c.data_dir.join("ca.crt");
    let server = format!("--server={}", c.url);
    let ca = format!("--certificate-authority={}", ca.display());
    let err = c.kubectl_fails(&[
        "get",
        "pods",
        "--kubeconfig=/dev/null",
        &server,
        &ca,
        "--token=not-the-token",
    ]);
    assert!(
        err.contains("Unauthorized") || err.contains("provide credentials"),
        "{err}"
    );
    // No credentials at all: anonymous, who may not list namespaces.
    let out = c.kubectl_output(&[
        "get",
        "--raw",
        "/api/v1/namespaces",
        "--kubeconfig=/dev/null",
        &server,
        &ca,
    ]);
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread")]
async fn acknowledged_writes_survive_sigkill() {
    let mut c = Cluster::start();
    let client = c.client().await;
    let acked = Arc::new(Mutex::new(Vec::<(String, u64)>::new()));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            // Bounded: at most 500 writes per writer.
            for i in 0..500 {
                let name = format!("burst-{w}-{i}");
                match cms.create(&PostParams::default(), &configmap(&name)).await {
                    Ok(cm) => {
                        let rv = cm.metadata.resource_version.unwrap().parse().unwrap();
                        acked.lock().unwrap().push((name, rv));
                    }
                    Err(_) => return,
                }
            }
        }));
    }
    // Let the burst run, then kill the server in the middle of it.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while acked.lock().unwrap().len() < 100 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    c.kill();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() >= 100,
        "only {} writes before the kill",
        acked.len()
    );
    let max_rv = acked.iter().map(|(_, rv)| *rv).max().unwrap();

    c.restart();
    let cms: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    let list = cms.list(&Default::default()).await.unwrap();
    let names: std::collections::HashSet<String> = list
        .items
        .iter()
        .filter_map(|cm| cm.metadata.name.clone())
        .collect();
    for (name, _) in &acked {
        assert!(names.contains(name), "acknowledged write {name} lost");
    }
    let after = cms
        .create(&PostParams::default(), &configmap("after-restart"))
        .await
        .unwrap();
    let rv: u64 = after.metadata.resource_version.unwrap().parse().unwrap();
    assert!(rv > max_rv, "resourceVersion went back: {rv} <= {max_rv}");
}

#[tokio::test(flavor = "multi_thread")]
async fn finalizers_hold_deletion_and_deletecollection_selects() {
    let c = Cluster::start();
    let cms: Api<ConfigMap> = Api::namespaced(c.client().await, "default");
    let mut held = configmap("held");
    held.metadata.finalizers = Some(vec!["example.com/hold".into()]);
    cms.create(&PostParams::default(), &held).await.unwrap();
    cms.delete("held", &Default::default()).await.unwrap();
    // Still there, marked for deletion.
    let cm = cms.get("held").await.unwrap();
    assert!(cm.metadata.deletion_timestamp.is_some());
    // Clearing the finalizer lets it go.
    let patch = serde_json::json!({"metadata": {"finalizers": null}});
    cms.patch(
        "held",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(&patch),
    )
    .await
    .unwrap();
    assert!(cms.get_opt("held").await.unwrap().is_none());

    for (name, tier) in [("a", "web"), ("b", "web"), ("c", "db")] {
        let mut cm = configmap(name);
        cm.metadata.labels = Some([("tier".to_string(), tier.to_string())].into());
        cms.create(&PostParams::default(), &cm).await.unwrap();
    }
    cms.delete_collection(
        &Default::default(),
        &kube::api::ListParams::default().labels("tier=web"),
    )
    .await
    .unwrap();
    let left: Vec<String> = cms
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|cm| cm.metadata.name)
        .filter(|n| n != "kube-root-ca.crt")
        .collect();
    assert_eq!(left, vec!["c".to_string()]);
}

/// `kubectl get cs`, the check the tutorials run after installing: the
/// scheduler, the controller manager and the store, healthy, with the
/// deprecation warning kube-apiserver sends.
#[test]
fn component_statuses_report_the_control_plane() {
    let c = Cluster::start();
    let mut table = String::new();
    assert!(
        eventually(Duration::from_secs(60), || {
            table = c.kubectl(&["get", "cs", "--no-headers"]);
            table.lines().filter(|l| l.contains(" Healthy ")).count() == 3
        }),
        "not every component healthy:\n{table}"
    );
    for name in ["scheduler", "controller-manager", "etcd-0"] {
        assert!(table.lines().any(|l| l.starts_with(name)), "{table}");
    }
    let out = c.kubectl_output(&["get", "componentstatus", "scheduler", "-o", "json"]);
    assert!(out.status.success());
    let cs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cs["conditions"][0]["type"], "Healthy");
    assert_eq!(cs["conditions"][0]["message"], "ok");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("v1 ComponentStatus is deprecated"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let missing = c.kubectl_fails(&["get", "cs", "nope"]);
    assert!(missing.contains("not found"), "{missing}");
}
