//! Hollow nodes against an in-process API server: registration and
//! heartbeats, pods run through the fake runtime with their status
//! reported, readiness and exits driven by annotations, and deletion of
//! bound pods finished by the kubelet.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod};
use kedge_control::testing::{self, eventually_some, TestServer};
use kedge_kubelet::hollow::{self, HollowOptions};
use kedge_kubelet::pod_workers::PodSyncSettings;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::json;

struct Cluster {
    client: Client,
    _server: kedge_control::server::RunningServer,
    _dir: tempfile::TempDir,
}

/// An API server and `count` hollow nodes with short intervals.
async fn start(count: usize) -> Cluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    let opts = HollowOptions {
        count,
        name_prefix: "hollow-".into(),
        labels: vec![("pool".into(), "hollow".into())],
        status_update_interval: Duration::from_millis(500),
        lease_renew_interval: Duration::from_millis(300),
        pod_sync: PodSyncSettings {
            resync_interval: Duration::from_secs(2),
            restart_backoff: Duration::from_millis(200),
            max_restart_backoff: Duration::from_millis(400),
            retry_interval: Duration::from_millis(200),
        },
        ..Default::default()
    };
    tokio::spawn(hollow::run(client.clone(), opts));
    Cluster {
        client,
        _server: server,
        _dir: dir,
    }
}

fn condition(pod: &Pod, type_: &str) -> Option<String> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.clone())
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default()
}

async fn create_pod(
    client: &Client,
    name: &str,
    node: &str,
    policy: &str,
    annotations: serde_json::Value,
) -> Api<Pod> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    let pod: Pod = serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": annotations},
        "spec": {
            "nodeName": node,
            "restartPolicy": policy,
            "containers": [{"name": "app", "image": "busybox:1.36"}],
        },
    }))
    .unwrap();
    pods.create(&PostParams::default(), &pod).await.unwrap();
    pods
}

async fn get_when(pods: &Api<Pod>, name: &str, what: &str, f: impl Fn(&Pod) -> bool) -> Pod {
    eventually_some(what, || async {
        let p = pods.get_opt(name).await.unwrap()?;
        f(&p).then_some(p)
    })
    .await
}

#[tokio::test(flavor = "multi_thread")]
async fn nodes_register_become_ready_and_renew_leases() {
    let c = start(2).await;
    let nodes: Api<Node> = Api::all(c.client.clone());
    let node = eventually_some("hollow-1 Ready", || async {
        let n = nodes.get_opt("hollow-1").await.unwrap()?;
        let ready = n
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(n)
    })
    .await;
    let labels = node.metadata.labels.clone().unwrap();
    assert_eq!(labels["kubernetes.io/hostname"], "hollow-1");
    assert_eq!(labels["kubernetes.io/os"], "linux");
    assert_eq!(labels["pool"], "hollow");
    assert!(labels.contains_key("kubernetes.io/arch"));
    assert_eq!(
        node.spec.as_ref().unwrap().pod_cidr.as_deref(),
        Some("10.244.1.0/24")
    );
    let status = node.status.clone().unwrap();
    assert_eq!(status.capacity.as_ref().unwrap()["cpu"].0, "4");
    assert_eq!(status.allocatable.as_ref().unwrap()["memory"].0, "16Gi");
    assert_eq!(status.allocatable.as_ref().unwrap()["pods"].0, "110");
    let addresses = status.addresses.unwrap();
    assert!(addresses
        .iter()
        .any(|a| a.type_ == "InternalIP" && a.address == "127.0.0.11"));
    assert!(addresses
        .iter()
        .any(|a| a.type_ == "Hostname" && a.address == "hollow-1"));
    let info = status.node_info.unwrap();
    assert_eq!(info.kubelet_version, "v1.32.0-kedge");
    assert_eq!(info.container_runtime_version, "fake://1.0");
    let conds = status.conditions.unwrap();
    let ready = conds.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(ready.reason.as_deref(), Some("KubeletReady"));
    assert_eq!(
        ready.message.as_deref(),
        Some("kubelet is posting ready status")
    );
    for t in ["MemoryPressure", "DiskPressure", "PIDPressure"] {
        assert!(conds.iter().any(|c| c.type_ == t && c.status == "False"));
    }

    // The Lease is renewed.
    let leases: Api<Lease> = Api::namespaced(c.client.clone(), "kube-node-lease");
    let first = eventually_some("a lease", || async {
        let l = leases.get_opt("hollow-0").await.unwrap()?;
        l.spec?.renew_time
    })
    .await;
    let lease = leases.get("hollow-0").await.unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("hollow-0"));
    assert_eq!(spec.lease_duration_seconds, Some(40));
    eventually_some("the lease renewed", || async {
        let t = leases.get("hollow-0").await.unwrap().spec?.renew_time?;
        (t.0 > first.0).then_some(())
    })
    .await;

    // The heartbeat moves on.
    let beat = |n: &Node| {
        n.status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.type_ == "Ready")
                    .and_then(|c| c.last_heartbeat_time.clone())
            })
    };
    let before = beat(&node).unwrap();
    eventually_some("a newer heartbeat", || async {
        let n = nodes.get("hollow-1").await.unwrap();
        (beat(&n)?.0 > before.0).then_some(())
    })
    .await;

    // A deleted Node registers again.
    let uid = node.metadata.uid.clone().unwrap();
    nodes
        .delete("hollow-1", &DeleteParams::default())
        .await
        .unwrap();
    eventually_some("hollow-1 registered again", || async {
        let n = nodes.get_opt("hollow-1").await.unwrap()?;
        (n.metadata.uid.as_deref() != Some(uid.as_str())).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_run_report_status_and_follow_the_ready_annotation() {
    let c = start(2).await;
    let pods = create_pod(&c.client, "web", "hollow-1", "Always", json!({})).await;
    let pod = get_when(&pods, "web", "web Running and Ready", |p| {
        phase(p) == "Running" && condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
    let st = pod.status.clone().unwrap();
    let ip = st.pod_ip.clone().unwrap();
    assert!(ip.starts_with("10.244.1."), "pod IP {ip}");
    assert_eq!(st.host_ip.as_deref(), Some("127.0.0.11"));
    assert!(st.start_time.is_some());
    assert_eq!(st.qos_class.as_deref(), Some("BestEffort"));
    for t in ["PodScheduled", "Initialized", "ContainersReady"] {
        assert_eq!(condition(&pod, t).as_deref(), Some("True"), "{t}");
    }
    let cs = &st.container_statuses.unwrap()[0];
    assert_eq!(cs.name, "app");
    assert_eq!(cs.image, "busybox:1.36");
    assert!(cs.image_id.contains("sha256:"));
    assert!(cs.container_id.as_deref().unwrap().starts_with("fake://"));
    assert!(cs.ready);
    assert_eq!(cs.started, Some(true));
    assert_eq!(cs.restart_count, 0);
    assert!(cs.state.as_ref().unwrap().running.is_some());

    // A second pod gets its own address.
    let pods2 = create_pod(&c.client, "web2", "hollow-1", "Always", json!({})).await;
    let other = get_when(&pods2, "web2", "web2 Running", |p| {
        p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
    })
    .await;
    assert_ne!(other.status.unwrap().pod_ip.unwrap(), ip);

    // Readiness fails while the annotation says so.
    let set = |v: serde_json::Value| {
        let pods = pods.clone();
        async move {
            pods.patch(
                "web",
                &PatchParams::default(),
                &Patch::Merge(json!({"metadata": {"annotations": {"hollow.kedge.io/ready": v}}})),
            )
            .await
            .unwrap();
        }
    };
    set(json!("false")).await;
    let pod = get_when(&pods, "web", "web not Ready", |p| {
        condition(p, "Ready").as_deref() == Some("False")
    })
    .await;
    assert_eq!(phase(&pod), "Running");
    assert_eq!(condition(&pod, "ContainersReady").as_deref(), Some("False"));
    set(serde_json::Value::Null).await;
    get_when(&pods, "web", "web Ready again", |p| {
        condition(p, "Ready").as_deref() == Some("True")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_follow_the_restart_policy() {
    let c = start(1).await;
    let exit3 = json!({"hollow.kedge.io/exit-code": "3"});
    let never = create_pod(&c.client, "never", "hollow-0", "Never", exit3.clone()).await;
    let pod = get_when(&never, "never", "never Failed", |p| phase(p) == "Failed").await;
    let cs = &pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(term.exit_code, 3);
    assert_eq!(term.reason.as_deref(), Some("Error"));
    assert_eq!(cs.restart_count, 0);
    assert_eq!(condition(&pod, "Ready").as_deref(), Some("False"));

    let ok = json!({"hollow.kedge.io/exit-code": "0"});
    let done = create_pod(&c.client, "done", "hollow-0", "OnFailure", ok).await;
    let pod = get_when(&done, "done", "done Succeeded", |p| phase(p) == "Succeeded").await;
    let cs = &pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let term = cs.state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(term.reason.as_deref(), Some("Completed"));

    let flaky = create_pod(&c.client, "flaky", "hollow-0", "OnFailure", exit3).await;
    let pod = get_when(&flaky, "flaky", "flaky restarted twice", |p| {
        p.status
            .as_ref()
            .and_then(|s| s.container_statuses.as_ref())
            .is_some_and(|cs| cs[0].restart_count >= 2)
    })
    .await;
    assert_eq!(phase(&pod), "Running");
    let cs = &pod
        .status
        .as_ref()
        .unwrap()
        .container_statuses
        .as_ref()
        .unwrap()[0];
    let last = cs.last_state.as_ref().unwrap().terminated.as_ref().unwrap();
    assert_eq!(last.exit_code, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn deleting_a_bound_pod_is_finished_by_the_kubelet() {
    let c = start(1).await;
    let pods = create_pod(&c.client, "gone", "hollow-0", "Always", json!({})).await;
    get_when(&pods, "gone", "gone Running", |p| phase(p) == "Running").await;
    pods.delete("gone", &DeleteParams::default()).await.unwrap();
    eventually_some("gone deleted", || async {
        pods.get_opt("gone").await.unwrap().is_none().then_some(())
    })
    .await;
    // The name can be used again, and the new pod runs.
    create_pod(&c.client, "gone", "hollow-0", "Always", json!({})).await;
    get_when(&pods, "gone", "the new gone Running", |p| {
        phase(p) == "Running"
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_gone_from_the_api_leave_the_runtime() {
    let c = start(0).await;
    // One node on its own watch, with its runtime in reach.
    let kubelet = std::sync::Arc::new(hollow::kubelet(
        c.client.clone(),
        &HollowOptions::default(),
        7,
        None,
    ));
    let runtime = kubelet.pod_workers().runtime().clone();
    tokio::spawn({
        let kubelet = kubelet.clone();
        async move { kubelet.run().await }
    });
    let pods = create_pod(&c.client, "forced", "hollow-7", "Always", json!({})).await;
    let pod = get_when(&pods, "forced", "forced Running", |p| phase(p) == "Running").await;
    assert!(pod.status.unwrap().pod_ip.unwrap().starts_with("10.244.7."));
    assert_eq!(runtime.list_pod_sandboxes().await.unwrap().len(), 1);
    // A forced deletion does not wait for the kubelet.
    let force = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    pods.delete("forced", &force).await.unwrap();
    eventually_some("the sandbox removed", || async {
        runtime
            .list_pod_sandboxes()
            .await
            .unwrap()
            .is_empty()
            .then_some(())
    })
    .await;
}
