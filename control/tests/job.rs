//! The Job controller against an in-process API server. A stand-in kubelet
//! finishes each new pod through pods/status: Succeeded, Failed, or left
//! Running, as the pod's `test.kedge.io/outcome` annotation says.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{Event, Pod};
use kedge_control::controllers::{job, Context};
use kedge_control::testing::{self, TestServer};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use serde_json::json;

mod raw_status;

struct Cluster {
    client: Client,
    _dir: tempfile::TempDir,
    _server: kedge_control::server::RunningServer,
}

async fn start() -> Cluster {
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    tokio::spawn(job::run(Context::new(client.clone())));
    tokio::spawn(kubelet(client.clone()));
    Cluster {
        client,
        _dir: dir,
        _server: server,
    }
}

/// Moves each new pod to the phase its annotation asks for.
async fn kubelet(client: Client) {
    let pods: Api<Pod> = Api::all(client.clone());
    let mut events = watcher::watcher(pods, watcher::Config::default())
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(Ok(pod)) = events.next().await {
        // The server defaults new pods to Pending.
        let has_phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p != "Pending");
        if has_phase || pod.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let outcome = pod
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("test.kedge.io/outcome").cloned())
            .unwrap_or_default();
        let (phase, code) = match outcome.as_str() {
            "succeed" => ("Succeeded", 0),
            "fail" => ("Failed", 1),
            _ => ("Running", -1),
        };
        let state = if code >= 0 {
            json!({"terminated": {"exitCode": code, "reason": if code == 0 {"Completed"} else {"Error"}}})
        } else {
            json!({"running": {}})
        };
        let patch = json!({"status": {"phase": phase, "containerStatuses": [{
            "name": "c", "image": "busybox", "imageID": "", "ready": false,
            "restartCount": 0, "state": state
        }]}});
        let api: Api<Pod> = Api::namespaced(client.clone(), "default");
        let name = pod.metadata.name.clone().unwrap_or_default();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Err(e) = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                eprintln!("status of {name}: {e}");
            }
        });
    }
}

fn job(name: &str, outcome: &str, spec: serde_json::Value) -> Job {
    let mut spec = spec;
    spec["template"] = json!({
        "metadata": {"annotations": {"test.kedge.io/outcome": outcome}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}
    });
    serde_json::from_value(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": "default"},
        "spec": spec
    }))
    .unwrap()
}

async fn wait_for_job(api: &Api<Job>, name: &str, secs: u64, check: impl Fn(&Job) -> bool) -> Job {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let j = api.get(name).await.unwrap();
        if check(&j) {
            return j;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("timed out waiting on job {name}: {:?}", j.status);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn has_condition(j: &Job, type_: &str) -> Option<String> {
    j.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
        .map(|c| c.reason.clone().unwrap_or_default())
}

async fn reasons(client: &Client, name: &str) -> Vec<String> {
    let api: Api<Event> = Api::namespaced(client.clone(), "default");
    api.list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// A Job's pods. Listed across namespaces, so that no request of a test
/// looks like a Job sync's list of its namespace's pods.
async fn pods_of(client: &Client, name: &str) -> Vec<Pod> {
    let api: Api<Pod> = Api::all(client.clone());
    api.list(&ListParams::default().labels(&format!("batch.kubernetes.io/job-name={name}")))
        .await
        .unwrap()
        .items
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_to_completion_with_parallelism() {
    let c = start().await;
    let api: Api<Job> = Api::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &job("pi", "succeed", json!({"completions": 3, "parallelism": 2})),
    )
    .await
    .unwrap();
    let j = wait_for_job(&api, "pi", 30, |j| has_condition(j, "Complete").is_some()).await;
    let st = j.status.unwrap();
    assert_eq!(st.succeeded, Some(3));
    // Zero counters are omitted; `ready` and `terminating` are pointers in
    // the Go type and keep their 0.
    let raw = raw_status::raw_status::<Job>(&c.client, "pi").await;
    let shown = raw_status::present(&raw, &["failed", "active"]);
    assert!(shown.is_empty(), "{shown:?} in {raw}");
    assert_eq!((&raw["ready"], &raw["terminating"]), (&json!(0), &json!(0)));
    assert!(st.start_time.is_some() && st.completion_time.is_some());
    let conds: Vec<_> = st
        .conditions
        .unwrap()
        .into_iter()
        .map(|c| c.type_)
        .collect();
    assert_eq!(conds, ["SuccessCriteriaMet", "Complete"]);

    let pods = pods_of(&c.client, "pi").await;
    assert_eq!(pods.len(), 3);
    for p in &pods {
        assert!(p.metadata.name.as_ref().unwrap().starts_with("pi-"));
        let labels = p.metadata.labels.as_ref().unwrap();
        assert_eq!(labels["job-name"], "pi");
        assert!(labels.contains_key("batch.kubernetes.io/controller-uid"));
        let owner = &p.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!((owner.kind.as_str(), owner.controller), ("Job", Some(true)));
        // Counted, so the tracking finalizer is gone.
        assert!(p.metadata.finalizers.as_ref().is_none_or(|f| f.is_empty()));
    }
    let r = reasons(&c.client, "pi").await;
    assert!(r.iter().any(|r| r == "SuccessfulCreate"), "{r:?}");
    assert!(r.iter().any(|r| r == "Completed"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn indexed_job_completes_every_index() {
    let c = start().await;
    let api: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let spec = json!({"completions": 3, "parallelism": 3, "completionMode": "Indexed"});
    api.create(&PostParams::default(), &job("idx", "succeed", spec))
        .await
        .unwrap();
    let j = wait_for_job(&api, "idx", 30, |j| has_condition(j, "Complete").is_some()).await;
    let st = j.status.unwrap();
    assert_eq!(st.completed_indexes.as_deref(), Some("0-2"));
    assert_eq!(st.succeeded, Some(3));
    let mut idx: Vec<String> = pods_of(&c.client, "idx")
        .await
        .iter()
        .map(|p| p.metadata.annotations.as_ref().unwrap()[job::indexes::COMPLETION_INDEX].clone())
        .collect();
    idx.sort();
    assert_eq!(idx, ["0", "1", "2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_job_exceeds_backoff_limit() {
    let c = start().await;
    let api: Api<Job> = Api::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &job("bad", "fail", json!({"backoffLimit": 1})),
    )
    .await
    .unwrap();
    // One retry after the 10 s backoff, then the limit is exceeded.
    let j = wait_for_job(&api, "bad", 40, |j| has_condition(j, "Failed").is_some()).await;
    assert_eq!(
        has_condition(&j, "Failed").as_deref(),
        Some("BackoffLimitExceeded")
    );
    assert_eq!(
        has_condition(&j, "FailureTarget").as_deref(),
        Some("BackoffLimitExceeded")
    );
    let st = j.status.unwrap();
    assert_eq!(st.failed, Some(2));
    assert_eq!(st.succeeded, None);
    assert_eq!(st.active, None);
    let r = reasons(&c.client, "bad").await;
    assert!(r.iter().any(|r| r == "BackoffLimitExceeded"), "{r:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn active_deadline_fails_and_removes_pods() {
    let c = start().await;
    let api: Api<Job> = Api::namespaced(c.client.clone(), "default");
    api.create(
        &PostParams::default(),
        &job(
            "slow",
            "run",
            json!({"activeDeadlineSeconds": 2, "parallelism": 2, "completions": 2}),
        ),
    )
    .await
    .unwrap();
    wait_for_job(&api, "slow", 10, |j| {
        j.status.as_ref().and_then(|s| s.active) == Some(2)
    })
    .await;
    let j = wait_for_job(&api, "slow", 20, |j| has_condition(j, "Failed").is_some()).await;
    assert_eq!(
        has_condition(&j, "Failed").as_deref(),
        Some("DeadlineExceeded")
    );
    assert_eq!(j.status.unwrap().active, None);
    // The deleted pods lose their finalizer and go away.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !pods_of(&c.client, "slow").await.is_empty() {
        assert!(tokio::time::Instant::now() < deadline, "pods remain");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn suspend_deletes_pods_and_resume_restarts() {
    let c = start().await;
    let api: Api<Job> = Api::namespaced(c.client.clone(), "default");
    api.create(&PostParams::default(), &job("sus", "run", json!({})))
        .await
        .unwrap();
    wait_for_job(&api, "sus", 10, |j| {
        j.status.as_ref().and_then(|s| s.active) == Some(1)
    })
    .await;
    let patch = Patch::Merge(json!({"spec": {"suspend": true}}));
    api.patch("sus", &PatchParams::default(), &patch)
        .await
        .unwrap();
    let j = wait_for_job(&api, "sus", 10, |j| {
        has_condition(j, "Suspended").is_some()
            && j.status.as_ref().is_some_and(|s| s.active.is_none())
    })
    .await;
    assert_eq!(
        has_condition(&j, "Suspended").as_deref(),
        Some("JobSuspended")
    );
    let patch = Patch::Merge(json!({"spec": {"suspend": false}}));
    api.patch("sus", &PatchParams::default(), &patch)
        .await
        .unwrap();
    wait_for_job(&api, "sus", 10, |j| {
        has_condition(j, "Suspended").is_none()
            && j.status.as_ref().and_then(|s| s.active) == Some(1)
    })
    .await;
}

/// The request log of the API servers of this test binary
/// (`kedge_control::apiserver` debug events), as "METHOD path".
mod request_log {
    use std::sync::{Mutex, Once};

    use tracing::field::{Field, Visit};
    use tracing::span::{Attributes, Id, Record};
    use tracing::{Event, Level, Metadata, Subscriber};

    static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

    struct Log;

    #[derive(Default)]
    struct Fields(String, String);

    impl Visit for Fields {
        fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
            match field.name() {
                "method" => self.0 = format!("{value:?}"),
                "path" => self.1 = format!("{value:?}"),
                _ => {}
            }
        }
    }

    impl Subscriber for Log {
        fn enabled(&self, m: &Metadata<'_>) -> bool {
            *m.level() == Level::DEBUG && m.target() == "kedge_control::apiserver"
        }
        fn new_span(&self, _: &Attributes<'_>) -> Id {
            Id::from_u64(1)
        }
        fn record(&self, _: &Id, _: &Record<'_>) {}
        fn record_follows_from(&self, _: &Id, _: &Id) {}
        fn event(&self, event: &Event<'_>) {
            let mut f = Fields::default();
            event.record(&mut f);
            if !f.1.is_empty() {
                LOG.lock().unwrap().push(format!("{} {}", f.0, f.1));
            }
        }
        fn enter(&self, _: &Id) {}
        fn exit(&self, _: &Id) {}
    }

    /// Start logging (once per test binary).
    pub fn install() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| tracing::subscriber::set_global_default(Log).unwrap());
    }

    /// Every request logged so far.
    pub fn all() -> Vec<String> {
        LOG.lock().unwrap().clone()
    }
}

/// Syncs read pods from the shared informer, not from the API; counting
/// and creating from that cache still make exactly the pods asked for and
/// count each once. No test here lists a namespace's pods, so any such
/// request in the log (of every test running beside this one) is a sync's.
#[tokio::test(flavor = "multi_thread")]
async fn syncs_read_pods_from_the_cache_not_the_api() {
    request_log::install();
    let c = start().await;
    let api: Api<Job> = Api::namespaced(c.client.clone(), "default");
    let spec = json!({"completions": 4, "parallelism": 2});
    api.create(&PostParams::default(), &job("cached", "succeed", spec))
        .await
        .unwrap();
    let j = wait_for_job(&api, "cached", 30, |j| {
        has_condition(j, "Complete").is_some()
    })
    .await;
    assert_eq!(j.status.unwrap().succeeded, Some(4));

    let requests = request_log::all();
    assert!(
        requests
            .iter()
            .any(|r| r == "GET /apis/batch/v1/namespaces/default/jobs/cached"),
        "the log shows the syncs' own reads: {requests:?}"
    );
    let listed: Vec<_> = requests
        .iter()
        .filter(|r| *r == "GET /api/v1/namespaces/default/pods")
        .collect();
    assert!(listed.is_empty(), "{listed:?}");
    assert_eq!(pods_of(&c.client, "cached").await.len(), 4);
}
