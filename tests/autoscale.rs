//! The HorizontalPodAutoscaler on real pods: `kubectl autoscale deployment
//! burn --cpu-percent=50 --min=1 --max=4` (kubectl writes it as
//! autoscaling/v1) on a Deployment whose pods burn CPU (requests 100m)
//! scales it out to 4, then, once the load stops, back in to 1 (the test
//! shortens the scale-down window in the HPA's v2 `behavior`, as a user
//! would).

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
"#
    ));
    let made = c.kubectl(&[
        "autoscale",
        "deployment",
        "burn",
        "--cpu-percent=50",
        "--min=1",
        "--max=4",
    ]);
    assert!(made.contains("autoscaled"), "{made}");
    // Read as v1, it is what was written; as v2 (kubectl's preferred
    // version) a CPU metric, to which a user adds a short scale-down.
    let v1 = c.kubectl(&[
        "get",
        "horizontalpodautoscalers.v1.autoscaling",
        "burn",
        "-o",
        "jsonpath={.apiVersion} {.spec.targetCPUUtilizationPercentage}",
    ]);
    assert_eq!(v1, "autoscaling/v1 50");
    let v2 = c.kubectl(&[
        "get",
        "hpa",
        "burn",
        "-o",
        "jsonpath={.apiVersion} {.spec.metrics[0].resource.target.averageUtilization}",
    ]);
    assert_eq!(v2, "autoscaling/v2 50");
    c.kubectl(&[
        "patch",
        "hpa",
        "burn",
        "--type=merge",
        "-p",
        r#"{"spec":{"behavior":{"scaleDown":{"stabilizationWindowSeconds":0,"policies":[{"type":"Percent","value":100,"periodSeconds":15}]}}}}"#,
    ]);

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
