//! The HorizontalPodAutoscaler on real pods: a Deployment whose pods burn
//! CPU (requests 100m) under an HPA of 50 % scales out to its maximum of 4,
//! then, once the load stops, back in to 1 (the test's HPA shortens the
//! scale-down window in its `behavior`, as a user would).

mod common;

use std::time::Duration;

use common::{eventually, images, Cluster};

const WAIT: Duration = Duration::from_secs(180);

fn replicas(c: &Cluster) -> String {
    c.kubectl(&[
        "get",
        "deployment",
        "burn",
        "-o",
        "jsonpath={.spec.replicas}",
    ])
}

#[test]
fn an_hpa_scales_a_busy_deployment_out_and_back_in() {
    let busybox = images::busybox();
    let c = Cluster::up();
    // Each pod burns a core until /tmp/stop exists.
    c.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: burn}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: burn}}}}
  template:
    metadata: {{labels: {{app: burn}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: burn
        image: {busybox}
        imagePullPolicy: Never
        command: ["sh", "-c", "while [ ! -f /tmp/stop ]; do :; done; exec sleep 100000"]
        resources:
          requests: {{cpu: 100m}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: burn}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: burn}}
  minReplicas: 1
  maxReplicas: 4
  metrics:
  - type: Resource
    resource:
      name: cpu
      target: {{type: Utilization, averageUtilization: 50}}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 0
      policies: [{{type: Percent, value: 100, periodSeconds: 15}}]
"#
    ));

    // Out to the maximum.
    assert!(
        eventually(WAIT, || replicas(&c) == "4"),
        "the HPA did not scale out: replicas {}\n{}",
        replicas(&c),
        c.kubectl(&["describe", "hpa", "burn"])
    );
    let row = c.kubectl(&["get", "hpa", "burn", "--no-headers"]);
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[1], "Deployment/burn", "{row}");
    assert!(row.contains("cpu: ") && row.contains("%/50%"), "{row}");
    let described = c.kubectl(&["describe", "hpa", "burn"]);
    for want in [
        "SuccessfulRescale",
        "New size: 4",
        "ValidMetricFound",
        "cpu resource utilization (percentage of request)",
    ] {
        assert!(described.contains(want), "no {want:?} in:\n{described}");
    }

    // The load stops in every pod: back in to one.
    assert!(eventually(WAIT, || {
        let pods = c.kubectl(&["get", "pods", "-l", "app=burn", "-o", "name"]);
        let running: Vec<&str> = pods.lines().collect();
        running.len() == 4
            && running.iter().all(|p| {
                c.kubectl_output(&["exec", p, "--", "touch", "/tmp/stop"])
                    .status
                    .success()
            })
    }));
    assert!(
        eventually(WAIT, || replicas(&c) == "1"),
        "the HPA did not scale back in: replicas {}\n{}",
        replicas(&c),
        c.kubectl(&["describe", "hpa", "burn"])
    );
    let described = c.kubectl(&["describe", "hpa", "burn"]);
    assert!(
        described.contains("All metrics below target"),
        "{described}"
    );
}
