//! A pod worker's syncs against the fake runtime, asserting the runtime
//! calls they make in order, and an API server that knows no pod (status
//! patches and deletes are answered 404, as for a pod already gone, and
//! recorded).

use std::convert::Infallible;
use std::net::Ipv4Addr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use super::*;
use crate::runtime::fake::{
    FakeRuntime, FakeRuntimeOptions, EXIT_AFTER_ANNOTATION, EXIT_CODE_ANNOTATION,
};

/// The requests the API server saw: method, path and body.
type Requests = Arc<Mutex<Vec<(String, String, String)>>>;

/// An API server that answers every request 404 NotFound and records it.
async fn fake_api() -> (Client, Requests) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let requests = Requests::default();
    let seen = requests.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let seen = seen.clone();
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let seen = seen.clone();
                async move {
                    let method = req.method().to_string();
                    let path = req.uri().path().to_string();
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let body = String::from_utf8_lossy(&body.unwrap_or_default()).into_owned();
                    seen.lock().push((method, path, body));
                    let status = json!({
                        "kind": "Status", "apiVersion": "v1", "status": "Failure",
                        "reason": "NotFound", "code": 404, "message": "not found",
                    });
                    let response = Response::builder()
                        .status(404)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(status.to_string())))
                        .unwrap();
                    Ok::<_, Infallible>(response)
                }
            });
            tokio::spawn(async move {
                let io = TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    (Client::try_from(config).unwrap(), requests)
}

struct Harness {
    runtime: Arc<FakeRuntime>,
    worker: PodWorker,
    requests: Requests,
}

async fn harness() -> Harness {
    let (client, requests) = fake_api().await;
    let runtime = FakeRuntime::new(FakeRuntimeOptions {
        start_delay: Duration::ZERO,
        pod_cidr: Some((Ipv4Addr::new(10, 244, 1, 0), 24)),
    });
    runtime.record_calls();
    let settings = PodSyncSettings {
        restart_backoff: Duration::from_secs(10),
        ..Default::default()
    };
    let workers = PodWorkers::new(
        client,
        "node-1",
        "192.0.2.1".parse().unwrap(),
        runtime.clone(),
        settings,
    );
    Harness {
        runtime,
        worker: PodWorker::new(workers, "uid-1".into()),
        requests,
    }
}

impl Harness {
    /// Sync `pod` once; the runtime calls it made, in their short form.
    async fn sync(&mut self, pod: &Pod) -> (Next, Vec<String>) {
        let next = self
            .worker
            .sync(Some(&Arc::new(pod.clone())))
            .await
            .unwrap();
        let calls = self.runtime.take_calls();
        (next, calls.iter().map(ToString::to_string).collect())
    }

    /// The phases of the status patches sent so far.
    fn posted_phases(&self) -> Vec<String> {
        self.requests
            .lock()
            .iter()
            .filter(|(method, path, _)| method == "PATCH" && path.ends_with("/status"))
            .filter_map(|(_, _, body)| {
                let v: Value = serde_json::from_str(body).ok()?;
                Some(v["status"]["phase"].as_str()?.to_string())
            })
            .collect()
    }
}

/// Pod `p` with `restartPolicy: policy`, init containers and app
/// containers given as (name, image), and annotations that steer the fake
/// runtime.
fn pod(
    policy: &str,
    init: &[(&str, &str)],
    containers: &[(&str, &str)],
    annotations: Value,
) -> Pod {
    let list = |cs: &[(&str, &str)]| -> Vec<Value> {
        cs.iter()
            .map(|(name, image)| json!({"name": name, "image": image}))
            .collect()
    };
    serde_json::from_value(json!({
        "metadata": {
            "name": "p", "namespace": "default", "uid": "uid-1",
            "annotations": annotations,
        },
        "spec": {
            "nodeName": "node-1",
            "restartPolicy": policy,
            "initContainers": list(init),
            "containers": list(containers),
        },
    }))
    .unwrap()
}

async fn sandbox_id(rt: &FakeRuntime) -> String {
    let sandboxes = rt.list_pod_sandboxes().await.unwrap();
    assert_eq!(sandboxes.len(), 1, "{sandboxes:?}");
    sandboxes[0].id.clone()
}

#[tokio::test]
async fn a_new_pod_makes_its_sandbox_then_each_init_container_then_the_app() {
    let mut h = harness().await;
    let p = pod(
        "Always",
        &[("i1", "img:1"), ("i2", "img:1")],
        &[("a", "img:1"), ("b", "img:1")],
        json!({}),
    );
    // The fake's init containers complete as soon as they start.
    let (_, calls) = h.sync(&p).await;
    assert_eq!(
        calls,
        [
            "run_pod_sandbox p",
            "create_container i1#0",
            "start_container i1"
        ]
    );
    let (_, calls) = h.sync(&p).await;
    assert_eq!(calls, ["create_container i2#0", "start_container i2"]);
    let (_, calls) = h.sync(&p).await;
    assert_eq!(
        calls,
        [
            "create_container a#0",
            "start_container a",
            "create_container b#0",
            "start_container b"
        ]
    );
    // Running as it should: nothing to do.
    let (next, calls) = h.sync(&p).await;
    assert!(calls.is_empty(), "{calls:?}");
    assert!(matches!(next, Next::After(_)));
}

#[tokio::test]
async fn a_lost_sandbox_stops_the_containers_and_everything_is_made_again() {
    let mut h = harness().await;
    let p = pod("Always", &[], &[("a", "img:1")], json!({}));
    h.sync(&p).await;
    let old = sandbox_id(&h.runtime).await;
    // Its infra container died.
    h.runtime.stop_pod_sandbox(&old).await.unwrap();
    h.runtime.take_calls();

    let (_, calls) = h.sync(&p).await;
    // The restart is counted: the new container is attempt 1.
    assert_eq!(
        calls,
        [
            "stop_container a",
            "remove_pod_sandbox p",
            "run_pod_sandbox p",
            "create_container a#1",
            "start_container a"
        ]
    );
    assert_ne!(sandbox_id(&h.runtime).await, old);
}

#[tokio::test]
async fn a_new_image_stops_the_container_before_its_successor_is_made() {
    let mut h = harness().await;
    let p = pod("Never", &[], &[("a", "img:1"), ("b", "img:1")], json!({}));
    h.sync(&p).await;
    let p = pod("Never", &[], &[("a", "img:2"), ("b", "img:1")], json!({}));
    let (_, calls) = h.sync(&p).await;
    assert_eq!(
        calls,
        [
            "stop_container a",
            "create_container a#1",
            "start_container a"
        ]
    );
}

#[tokio::test]
async fn a_container_that_exits_follows_the_restart_policy_with_back_off() {
    let mut h = harness().await;
    let p = pod(
        "Always",
        &[],
        &[("a", "img:1")],
        json!({EXIT_CODE_ANNOTATION: "1"}),
    );
    h.sync(&p).await;
    // The first restart is immediate.
    let (_, calls) = h.sync(&p).await;
    assert_eq!(calls, ["create_container a#1", "start_container a"]);
    // The second waits the restart back-off: nothing now, a sync then.
    let (next, calls) = h.sync(&p).await;
    assert!(calls.is_empty(), "{calls:?}");
    match next {
        Next::After(d) => assert!(
            d > Duration::from_secs(8) && d <= Duration::from_secs(10),
            "{d:?}"
        ),
        _ => panic!("a sync after the back-off"),
    }
}

#[tokio::test]
async fn a_pod_that_never_restarts_is_finished_when_its_container_fails() {
    let mut h = harness().await;
    let p = pod(
        "Never",
        &[],
        &[("a", "img:1")],
        json!({EXIT_CODE_ANNOTATION: "1"}),
    );
    // It exits as soon as it starts, so its status already says Failed.
    let (next, calls) = h.sync(&p).await;
    assert_eq!(
        calls,
        [
            "run_pod_sandbox p",
            "create_container a#0",
            "start_container a",
            "stop_pod_sandbox p"
        ]
    );
    assert!(matches!(next, Next::Idle));
    assert_eq!(h.posted_phases().last().map(String::as_str), Some("Failed"));
    // Finished: nothing more is asked of the runtime.
    let (_, calls) = h.sync(&p).await;
    assert!(calls.is_empty(), "{calls:?}");
}

#[tokio::test]
async fn a_pod_whose_containers_succeeded_stops_its_sandbox_on_the_next_sync() {
    let mut h = harness().await;
    let p = pod(
        "OnFailure",
        &[],
        &[("a", "img:1")],
        json!({EXIT_CODE_ANNOTATION: "0", EXIT_AFTER_ANNOTATION: "0.05"}),
    );
    let (_, calls) = h.sync(&p).await;
    assert_eq!(
        calls,
        [
            "run_pod_sandbox p",
            "create_container a#0",
            "start_container a"
        ]
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (next, calls) = h.sync(&p).await;
    assert_eq!(calls, ["stop_pod_sandbox p"]);
    assert!(matches!(next, Next::Idle));
    assert_eq!(
        h.posted_phases().last().map(String::as_str),
        Some("Succeeded")
    );
}

#[tokio::test]
async fn an_init_container_gone_from_the_runtime_is_made_again() {
    let mut h = harness().await;
    let p = pod("Always", &[("i1", "img:1")], &[("a", "img:1")], json!({}));
    h.sync(&p).await;
    let id = h.worker.containers["i1"].id.clone().unwrap();
    h.runtime.remove_container(&id).await.unwrap();
    h.runtime.take_calls();
    // Not a restart: it is made as the first time.
    let (_, calls) = h.sync(&p).await;
    assert_eq!(calls, ["create_container i1#0", "start_container i1"]);
    let (_, calls) = h.sync(&p).await;
    assert_eq!(calls, ["create_container a#0", "start_container a"]);
}

#[tokio::test]
async fn deleting_a_pod_stops_its_containers_then_its_sandbox_then_removes_it() {
    let mut h = harness().await;
    let mut p = pod("Always", &[], &[("a", "img:1"), ("b", "img:1")], json!({}));
    h.sync(&p).await;
    p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    p.metadata.deletion_grace_period_seconds = Some(1);
    let (next, calls) = h.sync(&p).await;
    assert!(matches!(next, Next::Done));
    assert_eq!(
        calls,
        [
            "stop_container a",
            "stop_container b",
            "stop_pod_sandbox p",
            "remove_pod_sandbox p"
        ]
    );
    let deleted = h
        .requests
        .lock()
        .iter()
        .any(|(method, path, _)| method == "DELETE" && path.ends_with("/pods/p"));
    assert!(deleted, "the pod is deleted for good");
}
