//! Resource metrics as users read them: `kedge up`, a pod burning one core
//! and one sleeping, then the real `kubectl top node` and `kubectl top pod`
//! against the API server's `metrics.k8s.io`, and the kubelet's own
//! `/metrics/resource` and `/stats/summary` through the API server's node
//! proxy-free path (read by the admin with `kubectl get --raw`).

mod common;

use std::time::Duration;

use common::{eventually, images, Cluster};

const WAIT: Duration = Duration::from_secs(120);

/// `kubectl top pod` rows: (name, millicores, MiB).
fn top_pods(c: &Cluster, args: &[&str]) -> Vec<(String, u64, u64)> {
    let mut cmd = vec!["top", "pod", "--no-headers"];
    cmd.extend(args);
    let out = c.kubectl_output(&cmd);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // NAMESPACE first with -A.
            let f = if args.contains(&"-A") {
                &f[1..]
            } else {
                &f[..]
            };
            Some((
                f.first()?.to_string(),
                f.get(1)?.strip_suffix('m')?.parse().ok()?,
                f.get(2)?.strip_suffix("Mi")?.parse().ok()?,
            ))
        })
        .collect()
}

#[test]
fn kubectl_top_shows_what_real_pods_use() {
    let busybox = images::busybox();
    let c = Cluster::up();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: burn, labels: {{app: burn}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: burn
    image: {busybox}
    imagePullPolicy: Never
    command: ["sh", "-c", "while :; do :; done"]
---
apiVersion: v1
kind: Pod
metadata: {{name: idle, labels: {{app: idle}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: idle
    image: {busybox}
    imagePullPolicy: Never
    command: ["sh", "-c", "head -c 20000000 /dev/zero > /dev/shm/fill; exec sleep 100000"]
"#
    ));
    c.wait_ready(&["pod/burn", "pod/idle"], WAIT);

    // The group is discovered as kubectl needs it.
    let groups = c.kubectl(&["api-versions"]);
    assert!(
        groups.lines().any(|l| l == "metrics.k8s.io/v1beta1"),
        "{groups}"
    );

    // Two scrapes 15 s apart make the first window.
    let mut rows = Vec::new();
    assert!(
        eventually(WAIT, || {
            rows = top_pods(&c, &[]);
            rows.len() == 2
        }),
        "kubectl top pod showed no pods: {:?}",
        c.kubectl_output(&["top", "pod"])
    );
    let burn = rows.iter().find(|r| r.0 == "burn").unwrap();
    let idle = rows.iter().find(|r| r.0 == "idle").unwrap();
    // One core is 1000m; the machine's other work may take a little.
    assert!(
        (700..=1100).contains(&burn.1),
        "a pod burning one core shows {}m",
        burn.1
    );
    assert!(idle.1 < 50, "a sleeping pod shows {}m", idle.1);
    assert!(idle.2 >= 19, "a pod holding 20 MB shows {} Mi", idle.2);

    // Sorted by CPU, across namespaces, by label, by name, by container.
    let sorted = top_pods(&c, &["-A", "--sort-by=cpu"]);
    assert_eq!(
        sorted.first().map(|r| r.0.as_str()),
        Some("burn"),
        "{sorted:?}"
    );
    let selected = top_pods(&c, &["-l", "app=idle"]);
    assert_eq!(selected.len(), 1, "{selected:?}");
    assert_eq!(selected[0].0, "idle");
    let one = c.kubectl(&["top", "pod", "burn", "--containers", "--no-headers"]);
    assert!(one.starts_with("burn") && one.contains(" burn "), "{one}");

    // The node: non-zero CPU and memory, and percentages of its capacity.
    let node = c.kubectl(&["top", "node", "--no-headers"]);
    let fields: Vec<&str> = node.split_whitespace().collect();
    assert_eq!(fields.len(), 5, "{node}");
    let cores: u64 = fields[1].trim_end_matches('m').parse().unwrap();
    assert!(cores >= 700, "the node shows {cores}m with a core burning");
    assert!(fields[3].ends_with("Mi") && fields[3] != "0Mi", "{node}");

    // Errors as Kubernetes words them; and nothing but reads.
    let missing = c.kubectl_fails(&["top", "pod", "nope"]);
    assert!(
        missing.contains("podmetrics.metrics.k8s.io \"nope\" not found"),
        "{missing}"
    );
    let write = c.kubectl_fails(&[
        "delete",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/default/pods/burn",
    ]);
    assert!(
        write.contains("MethodNotAllowed") || write.contains("not supported"),
        "{write}"
    );

    // The kubelet's own endpoints (what the API server scrapes).
    let name = c.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let resource = c.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{name}/proxy/metrics/resource"),
    ]);
    assert!(
        resource.contains("container_cpu_usage_seconds_total{container=\"burn\",namespace=\"default\",pod=\"burn\"}"),
        "{resource}"
    );
    let summary = c.kubectl(&[
        "get",
        "--raw",
        &format!("/api/v1/nodes/{name}/proxy/stats/summary"),
    ]);
    let summary: serde_json::Value = serde_json::from_str(&summary).unwrap();
    assert_eq!(summary["node"]["nodeName"], name.as_str());
    assert!(summary["pods"]
        .as_array()
        .unwrap()
        .iter()
        .any(|p| p["podRef"]["name"] == "burn"));
}

/// Hollow nodes serve synthetic use (as much as their pods' annotations
/// say) on their kubelet endpoints: the pipeline runs at scale without
/// Docker, and the autoscaler can be driven from a manifest.
#[test]
fn hollow_nodes_report_synthetic_use() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(2, "top-", &[]);
    c.apply(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: steady}
spec:
  replicas: 2
  selector: {matchLabels: {app: steady}}
  template:
    metadata:
      labels: {app: steady}
      annotations:
        hollow.kedge.io/cpu-millicores: "250"
        hollow.kedge.io/memory-bytes: "104857600"
    spec:
      containers: [{name: app, image: kedge-test/none}]
"#,
    );
    let mut rows = Vec::new();
    assert!(
        eventually(WAIT, || {
            rows = top_pods(&c, &["-l", "app=steady"]);
            rows.len() == 2
        }),
        "no metrics for hollow pods: {:?}",
        c.kubectl_output(&["top", "pod"])
    );
    for (name, millicores, mib) in &rows {
        assert!((240..=260).contains(millicores), "{name}: {millicores}m");
        assert_eq!(*mib, 100, "{name}");
    }
    let nodes = c.kubectl(&["top", "node", "--no-headers"]);
    assert_eq!(nodes.lines().count(), 2, "{nodes}");
    // `kubectl get` prints them with metrics-server's columns.
    let table = c.kubectl(&["get", "podmetrics.metrics.k8s.io", "-l", "app=steady"]);
    let mut lines = table.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(header, ["NAME", "CPU", "MEMORY", "WINDOW"], "{table}");
    for line in lines {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.get(2), Some(&"100Mi"), "{table}");
        assert!(f.get(3).is_some_and(|w| w.ends_with('s')), "{table}");
    }
}
