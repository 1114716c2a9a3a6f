//! Pods as real Docker containers: `kedge up` (or a server and a real
//! agent) driven with kubectl, on images the suite builds itself.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{eventually, images, Cluster, RealNode};

const WAIT: Duration = Duration::from_secs(90);

fn jsonpath(c: &Cluster, pod: &str, path: &str) -> String {
    let out = c.kubectl_output(&["get", "pod", pod, "-o", &format!("jsonpath={path}")]);
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The STATUS column of `kubectl get pod`.
fn status_column(c: &Cluster, pod: &str) -> String {
    let out = c.kubectl_output(&["get", "pod", pod, "--no-headers"]);
    let line = String::from_utf8_lossy(&out.stdout).to_string();
    line.split_whitespace()
        .nth(2)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn containers_of_a_pod_share_localhost_and_follow_restart_policies() {
    let busybox = images::busybox();
    let c = Cluster::up();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: duo}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: web
    image: {busybox}
    command: ["sh", "-c", "echo hello-from-web > /tmp/index.html; exec httpd -f -p 8080 -h /tmp"]
    readinessProbe:
      httpGet: {{path: /index.html, port: 8080}}
      periodSeconds: 1
  - name: client
    image: {busybox}
    command: ["sh", "-c", "until wget -q -O /tmp/got http://localhost:8080/index.html; do sleep 0.2; done; touch /tmp/ready; exec sleep 100000"]
    readinessProbe:
      exec: {{command: ["cat", "/tmp/ready"]}}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: onfailure-exit0}}
spec:
  restartPolicy: OnFailure
  containers:
  - {{name: c, image: {busybox}, command: ["sh", "-c", "exit 0"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: onfailure-exit1}}
spec:
  restartPolicy: OnFailure
  containers:
  - {{name: c, image: {busybox}, command: ["sh", "-c", "exit 1"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: never-exit1}}
spec:
  restartPolicy: Never
  containers:
  - {{name: c, image: {busybox}, command: ["sh", "-c", "exit 1"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: not-ready}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {busybox}
    command: ["sleep", "100000"]
    readinessProbe:
      tcpSocket: {{port: 9999}}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: not-alive}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: {busybox}
    command: ["sleep", "100000"]
    livenessProbe:
      httpGet: {{path: /healthz, port: 9999}}
      periodSeconds: 1
      failureThreshold: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: no-such-image}}
spec:
  containers:
  - name: c
    image: kedge-test/not-built-here:1
    imagePullPolicy: Always
"#
    ));

    // Both containers of `duo` run in one network namespace: the client
    // reached the web server on localhost, so it turned ready.
    c.wait_ready(&["pod/duo"], WAIT);
    let ip = jsonpath(&c, "duo", "{.status.podIP}");
    let node = c.node.as_ref().unwrap();
    let prefix = node.pod_cidr.rsplit_once('.').unwrap().0;
    assert!(ip.starts_with(prefix), "pod IP {ip} from {}", node.pod_cidr);

    assert!(
        eventually(WAIT, || jsonpath(&c, "onfailure-exit0", "{.status.phase}")
            == "Succeeded"),
        "exit 0 under OnFailure completes"
    );
    assert_eq!(
        jsonpath(
            &c,
            "onfailure-exit0",
            "{.status.containerStatuses[0].restartCount}"
        ),
        "0"
    );
    assert!(
        eventually(WAIT, || jsonpath(&c, "never-exit1", "{.status.phase}")
            == "Failed"),
        "exit 1 under Never fails the pod"
    );
    assert_eq!(status_column(&c, "never-exit1"), "Error");
    assert!(
        eventually(WAIT, || status_column(&c, "onfailure-exit1")
            == "CrashLoopBackOff"),
        "exit 1 under OnFailure restarts with a back-off: {}",
        status_column(&c, "onfailure-exit1")
    );
    assert!(
        eventually(WAIT, || {
            jsonpath(
                &c,
                "not-alive",
                "{.status.containerStatuses[0].restartCount}",
            )
            .parse::<u32>()
            .is_ok_and(|n| n >= 1)
        }),
        "a failing liveness probe restarts the container"
    );
    assert!(
        eventually(WAIT, || {
            let s = status_column(&c, "no-such-image");
            s == "ErrImagePull" || s == "ImagePullBackOff"
        }),
        "an image that cannot be pulled shows why"
    );
    // Running, never ready: READY 0/1.
    assert!(eventually(WAIT, || status_column(&c, "not-ready") == "Running"));
    let line = c.kubectl(&["get", "pod", "not-ready", "--no-headers"]);
    assert_eq!(line.split_whitespace().nth(1), Some("0/1"), "{line}");
}

fn container_ids(c: &Cluster, pod: &str) -> String {
    jsonpath(c, pod, "{.status.containerStatuses[*].containerID}")
}

fn docker_count(label: &str) -> usize {
    let out = Command::new("docker")
        .args(["ps", "-aq", "--filter", &format!("label={label}")])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).lines().count()
}

#[test]
fn a_restarted_kubelet_adopts_its_containers() {
    let busybox = images::busybox();
    let c = Cluster::start();
    let dir = tempfile::tempdir().unwrap();
    let node = RealNode::new(dir.path());
    let mut agent = c.real_agent(&node);
    let pod = |name: &str| {
        format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: main, image: {busybox}, command: ["sleep", "100000"]}}
  - {{name: side, image: {busybox}, command: ["sleep", "100000"]}}
"#
        )
    };
    c.apply(&pod("keep"));
    c.apply(&pod("drop"));
    c.wait_ready(&["pod/keep", "pod/drop"], WAIT);
    let ids = container_ids(&c, "keep");
    let ip = jsonpath(&c, "keep", "{.status.podIP}");
    let keep_uid = jsonpath(&c, "keep", "{.metadata.uid}");
    let drop_uid = jsonpath(&c, "drop", "{.metadata.uid}");

    agent.kill();
    // Deleted while the kubelet is away: its containers are orphans.
    c.kubectl(&["delete", "pod", "drop", "--wait=false"]);
    let agent2 = c.real_agent(&node);
    assert!(
        eventually(WAIT, || docker_count(&format!(
            "io.kubernetes.pod.uid={drop_uid}"
        )) == 0),
        "the deleted pod's containers are removed"
    );
    c.wait_ready(&["pod/keep"], WAIT);
    assert_eq!(container_ids(&c, "keep"), ids, "the same containers");
    assert_eq!(
        jsonpath(&c, "keep", "{.status.podIP}"),
        ip,
        "the same pod IP"
    );
    // The infra container and two app containers: none duplicated.
    assert_eq!(
        docker_count(&format!("io.kubernetes.pod.uid={keep_uid}")),
        3
    );
    drop(agent2);
    node.remove_from_docker();
}
