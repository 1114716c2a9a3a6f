//! Workloads on hollow nodes, driven with kubectl as in the tutorials:
//! Deployments schedule, spread, heal, scale, roll out and roll back; a
//! nodeSelector waits for a labelled node; readiness moves pods in and out
//! of a Service's endpoints; deleting a Deployment cascades.

mod common;

use std::time::Duration;

use common::{eventually, Cluster};

const WAIT: Duration = Duration::from_secs(60);

fn running_pods(c: &Cluster, selector: &str) -> Vec<(String, String)> {
    let out = c.kubectl(&[
        "get", "pods", "-l", selector, "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() == 3 && f[2] == "Running").then(|| (f[0].to_string(), f[1].to_string()))
        })
        .collect()
}

fn write(c: &Cluster, name: &str, text: &str) -> String {
    let p = c.home.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn deployment_lifecycle_on_hollow_nodes() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(3, "hollow-", &[]);
    assert!(
        eventually(WAIT, || {
            c.kubectl(&["get", "nodes", "--no-headers"])
                .lines()
                .filter(|l| l.contains(" Ready "))
                .count()
                == 3
        }),
        "{}",
        c.kubectl(&["get", "nodes"])
    );

    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=kedge/echo:v1",
        "--replicas=3",
    ]);
    assert!(
        eventually(WAIT, || running_pods(&c, "app=web").len() == 3),
        "{}",
        c.kubectl(&["get", "pods", "-o", "wide"])
    );
    // Spread over the three nodes.
    let nodes: std::collections::HashSet<String> = running_pods(&c, "app=web")
        .into_iter()
        .map(|(_, n)| n)
        .collect();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    // The Deployment's status follows its pods a little later.
    assert!(
        eventually(WAIT, || c
            .kubectl(&["get", "deploy", "web"])
            .contains("3/3")),
        "{}",
        c.kubectl(&["get", "deploy", "web"])
    );

    // A deleted pod is replaced.
    let (victim, _) = running_pods(&c, "app=web")[0].clone();
    c.kubectl(&["delete", "pod", &victim]);
    assert!(eventually(WAIT, || {
        let pods = running_pods(&c, "app=web");
        pods.len() == 3 && pods.iter().all(|(p, _)| *p != victim)
    }));

    // Scale.
    c.kubectl(&["scale", "deployment", "web", "--replicas=5"]);
    assert!(eventually(WAIT, || running_pods(&c, "app=web").len() == 5));

    // Roll out a new image, then back.
    c.kubectl(&["set", "image", "deployment/web", "echo=kedge/echo:v2"]);
    let out = c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(out.contains("successfully rolled out"), "{out}");
    // Old pods may still be terminating: only the live ones count.
    let live = live_images(&c, "app=web");
    assert!(
        live.len() == 5 && live.iter().all(|i| i == "kedge/echo:v2"),
        "{live:?}"
    );
    let history = c.kubectl(&["rollout", "history", "deployment/web"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    c.kubectl(&["rollout", "undo", "deployment/web"]);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    let image = c.kubectl(&[
        "get",
        "deploy",
        "web",
        "-o",
        "jsonpath={.spec.template.spec.containers[0].image}",
    ]);
    assert_eq!(image, "kedge/echo:v1");

    // Events a user looks for.
    let events = c.kubectl(&["describe", "deployment", "web"]);
    assert!(events.contains("ScalingReplicaSet"), "{events}");

    // Deleting the Deployment removes its ReplicaSets and pods.
    c.kubectl(&["delete", "deployment", "web"]);
    assert!(eventually(WAIT, || {
        c.kubectl(&["get", "rs,pods", "-l", "app=web", "-o", "name"])
            .trim()
            .is_empty()
    }));
}

#[test]
fn node_selector_waits_for_a_labelled_node() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(3, "node-", &[]);
    assert!(eventually(WAIT, || c
        .kubectl(&["get", "nodes", "--no-headers"])
        .lines()
        .count()
        == 3));
    let f = write(&c, "mysql.yaml", "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: mysql\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: mysql}\n  template:\n    metadata:\n      labels: {app: mysql}\n    spec:\n      nodeSelector:\n        mysql: \"true\"\n      containers:\n      - name: mysql\n        image: mysql:5.7\n");
    c.kubectl(&["apply", "-f", &f]);
    assert!(eventually(WAIT, || c
        .kubectl(&["get", "events", "--field-selector=reason=FailedScheduling"])
        .contains("didn't match Pod's node affinity/selector")));
    let pods = c.kubectl(&["get", "pods", "-l", "app=mysql"]);
    assert!(pods.contains("Pending"), "{pods}");
    c.kubectl(&["label", "node", "node-1", "mysql=true"]);
    assert!(
        eventually(WAIT, || {
            running_pods(&c, "app=mysql")
                .iter()
                .any(|(_, n)| n == "node-1")
        }),
        "{}",
        c.kubectl(&["get", "pods", "-o", "wide"])
    );
}

#[test]
fn readiness_moves_pods_in_and_out_of_endpoints() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(2, "hollow-", &[]);
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=kedge/echo:v1",
        "--replicas=2",
        "--port=8080",
    ]);
    c.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]);
    let ready_count = |c: &Cluster| {
        let out = c.kubectl(&[
            "get",
            "endpointslices",
            "-l",
            "kubernetes.io/service-name=web",
            "-o",
            "jsonpath={.items[*].endpoints[*].conditions.ready}",
        ]);
        out.split_whitespace().filter(|v| *v == "true").count()
    };
    assert!(
        eventually(WAIT, || ready_count(&c) == 2),
        "{}",
        c.kubectl(&["get", "endpointslices", "-o", "yaml"])
    );
    let (pod, _) = running_pods(&c, "app=web")[0].clone();
    c.kubectl(&["annotate", "pod", &pod, "hollow.kedge.io/ready=false"]);
    assert!(eventually(WAIT, || ready_count(&c) == 1));
    // Endpoints are written by another controller than the slices.
    let not_ready = || {
        c.kubectl(&[
            "get",
            "endpoints",
            "web",
            "-o",
            "jsonpath={.subsets[*].notReadyAddresses[*].targetRef.name}",
        ])
    };
    assert!(eventually(WAIT, || not_ready() == pod), "{}", not_ready());
    c.kubectl(&["annotate", "pod", &pod, "hollow.kedge.io/ready-"]);
    assert!(eventually(WAIT, || ready_count(&c) == 2));
}

#[test]
fn pods_leave_a_lost_node_for_the_others() {
    // A short node grace period so the test does not wait 40 s; heartbeats
    // well inside it so only the killed agent's node is lost.
    let c = Cluster::start_with_env(&[], &[("KEDGE_NODE_MONITOR_GRACE_SECONDS", "3")]);
    let _stay = c.hollow_nodes(2, "stay-", &["--heartbeat-interval", "0.5"]);
    let mut lost = c.hollow_nodes(
        1,
        "lost-",
        &["--first-index", "2", "--heartbeat-interval", "0.5"],
    );
    assert!(eventually(WAIT, || {
        c.kubectl(&["get", "nodes", "--no-headers"])
            .lines()
            .filter(|l| l.contains(" Ready "))
            .count()
            == 3
    }));
    let f = write(
        &c,
        "web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      tolerations:\n      - {key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 2}\n      - {key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 2}\n      containers:\n      - name: web\n        image: kedge/echo:v1\n",
    );
    c.kubectl(&["apply", "-f", &f]);
    assert!(
        eventually(WAIT, || {
            let pods = running_pods(&c, "app=web");
            pods.len() == 3 && pods.iter().any(|(_, n)| n == "lost-2")
        }),
        "{}",
        c.kubectl(&["get", "pods", "-o", "wide"])
    );

    // The node's agent dies: the node goes NotReady (Unknown), is tainted,
    // and its pods are evicted and replaced on the nodes that remain.
    lost.kill();
    assert!(eventually(WAIT, || {
        c.kubectl(&["get", "node", "lost-2", "--no-headers"])
            .contains("NotReady")
    }));
    let taints = c.kubectl(&[
        "get",
        "node",
        "lost-2",
        "-o",
        "jsonpath={.spec.taints[*].key}",
    ]);
    assert!(
        taints.contains("node.kubernetes.io/unreachable"),
        "{taints}"
    );
    assert!(
        eventually(WAIT, || {
            let pods = running_pods(&c, "app=web");
            pods.len() == 3 && pods.iter().all(|(_, n)| n.starts_with("stay-"))
        }),
        "{}",
        c.kubectl(&["get", "pods", "-o", "wide"])
    );
}

#[test]
fn a_job_runs_to_completion() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(2, "hollow-", &[]);
    let f = write(
        &c,
        "job.yaml",
        "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: pi\nspec:\n  completions: 3\n  parallelism: 2\n  template:\n    metadata:\n      annotations:\n        hollow.kedge.io/exit-code: \"0\"\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: pi\n        image: kedge/echo:v1\n",
    );
    c.kubectl(&["apply", "-f", &f]);
    c.kubectl(&[
        "wait",
        "--for=condition=complete",
        "job/pi",
        "--timeout=60s",
    ]);
    let out = c.kubectl(&["get", "job", "pi"]);
    assert!(out.contains("Complete") && out.contains("3/3"), "{out}");
    let pods = c.kubectl(&[
        "get",
        "pods",
        "-l",
        "job-name=pi",
        "-o",
        "jsonpath={.items[*].status.phase}",
    ]);
    assert_eq!(
        pods.split_whitespace()
            .filter(|p| *p == "Succeeded")
            .count(),
        3,
        "{pods}"
    );
}

#[test]
fn rollout_pause_and_resume_with_kubectl() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(2, "hollow-", &[]);
    c.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=kedge/echo:v1",
        "--replicas=2",
    ]);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    c.kubectl(&["rollout", "pause", "deployment/web"]);
    c.kubectl(&["set", "image", "deployment/web", "echo=kedge/echo:v2"]);
    // Paused: the template changed, the pods did not.
    std::thread::sleep(Duration::from_secs(2));
    let images = c.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=web",
        "-o",
        "jsonpath={.items[*].spec.containers[0].image}",
    ]);
    assert!(
        images.split_whitespace().all(|i| i == "kedge/echo:v1"),
        "{images}"
    );
    c.kubectl(&["rollout", "resume", "deployment/web"]);
    c.kubectl(&["rollout", "status", "deployment/web", "--timeout=60s"]);
    assert!(eventually(WAIT, || {
        let images = c.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=web",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[*].spec.containers[0].image}",
        ]);
        !images.is_empty() && images.split_whitespace().all(|i| i == "kedge/echo:v2")
    }));
    let history = c.kubectl(&["rollout", "history", "deployment/web"]);
    assert!(history.contains("REVISION"), "{history}");
}

#[test]
fn daemonset_statefulset_and_cronjob_with_kubectl() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(3, "hollow-", &[]);
    assert!(eventually(WAIT, || {
        c.kubectl(&["get", "nodes", "--no-headers"]).lines().count() == 3
    }));
    c.kubectl(&["label", "node", "hollow-0", "hollow-2", "disk=ssd"]);
    let manifest = write(
        &c,
        "workloads.yaml",
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      nodeSelector: {disk: ssd}
      containers: [{name: a, image: kedge/agent:1}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  clusterIP: None
  selector: {app: web}
  ports: [{port: 80}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: w, image: kedge/web:1}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: tick}
spec:
  schedule: "* * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: t, image: kedge/tick:1}]
"#,
    );
    c.kubectl(&["apply", "-f", &manifest]);

    // One daemon pod on each labelled node, none on the other.
    c.kubectl(&["rollout", "status", "daemonset/agent", "--timeout=60s"]);
    let mut nodes: Vec<String> = running_pods(&c, "app=agent")
        .into_iter()
        .map(|(_, node)| node)
        .collect();
    nodes.sort();
    assert_eq!(nodes, ["hollow-0", "hollow-2"]);

    // Ordinal names, in order; scaling down removes the highest.
    c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    let mut names: Vec<String> = running_pods(&c, "app=web")
        .into_iter()
        .map(|(name, _)| name)
        .collect();
    names.sort();
    assert_eq!(names, ["web-0", "web-1"]);
    c.kubectl(&["scale", "statefulset", "web", "--replicas=1"]);
    assert!(eventually(WAIT, || {
        let names: Vec<String> = running_pods(&c, "app=web")
            .into_iter()
            .map(|(name, _)| name)
            .collect();
        names == ["web-0"]
    }));

    // The CronJob's first run comes within a minute and is a Job it owns.
    assert!(eventually(Duration::from_secs(90), || {
        c.kubectl(&[
            "get",
            "jobs",
            "-o",
            "jsonpath={.items[*].metadata.ownerReferences[0].name}",
        ])
        .split_whitespace()
        .any(|owner| owner == "tick")
    }));
    // The CronJob's status is written after its Job is created.
    assert!(
        eventually(WAIT, || !c
            .kubectl(&[
                "get",
                "cronjob",
                "tick",
                "-o",
                "jsonpath={.status.lastScheduleTime}",
            ])
            .is_empty()),
        "lastScheduleTime is set"
    );
}

/// Whether the Node exists yet.
fn node_exists(c: &Cluster, name: &str) -> bool {
    c.kubectl_output(&["get", "node", name, "-o", "name"])
        .status
        .success()
}

/// `kubectl drain` as the tutorials run it before maintenance: three
/// replicas on one node under a PodDisruptionBudget of `minAvailable: 2`
/// are evicted one at a time — the budget refuses the others (429, which
/// kubectl retries) until each replacement is Ready on the other node.
#[test]
fn kubectl_drain_respects_a_disruption_budget() {
    let c = Cluster::start();
    let _first = c.hollow_nodes(1, "drain-a-", &[]);
    assert!(eventually(WAIT, || node_exists(&c, "drain-a-0")));
    c.apply(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: kedge-test/none}]
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
"#,
    );
    assert!(eventually(WAIT, || running_pods(&c, "app=web").len() == 3));
    assert!(
        eventually(WAIT, || c.kubectl(&[
            "get",
            "pdb",
            "web",
            "-o",
            "jsonpath={.status.disruptionsAllowed}"
        ]) == "1"),
        "the budget allows no single disruption: {}",
        c.kubectl(&["get", "pdb", "web", "-o", "yaml"])
    );
    // A second node for the replacements, then the drain of the first.
    let second = c.hollow_nodes(1, "drain-b-", &["--first-index", "1"]);
    assert!(eventually(WAIT, || node_exists(&c, "drain-b-1")));

    let out = c.kubectl_output(&[
        "drain",
        "drain-a-0",
        "--ignore-daemonsets",
        "--delete-emptydir-data",
        "--timeout=120s",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "drain failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("cordoned"), "{stdout}");
    assert!(stdout.contains("drained"), "{stdout}");
    assert!(
        stderr.contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "the budget never held an eviction back:\n{stderr}"
    );
    // Every replica now runs on the other node; the drained one takes none.
    let pods = running_pods(&c, "app=web");
    assert_eq!(pods.len(), 3, "{pods:?}");
    assert!(pods.iter().all(|(_, node)| node == "drain-b-1"), "{pods:?}");
    let unschedulable = c.kubectl(&[
        "get",
        "node",
        "drain-a-0",
        "-o",
        "jsonpath={.spec.unschedulable}",
    ]);
    assert_eq!(unschedulable, "true");
    c.kubectl(&["uncordon", "drain-a-0"]);
    drop(second);
}

/// ResourceQuota and LimitRange as the tutorials use them: a namespace
/// allowed two pods refuses the third with kube-apiserver's message; a
/// LimitRange fills in requests and limits and refuses a container above
/// its maximum; a quota on requests refuses a pod that asks for none.
#[test]
fn quotas_and_limit_ranges_admit_pods() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "team"]);
    c.apply(
        r#"
apiVersion: v1
kind: ResourceQuota
metadata: {name: two-pods, namespace: team}
spec:
  hard: {pods: "2", requests.cpu: "1"}
---
apiVersion: v1
kind: LimitRange
metadata: {name: defaults, namespace: team}
spec:
  limits:
  - type: Container
    default: {cpu: 200m, memory: 64Mi}
    defaultRequest: {cpu: 100m}
    max: {cpu: "1"}
"#,
    );
    assert!(
        eventually(Duration::from_secs(30), || c.kubectl(&[
            "-n",
            "team",
            "get",
            "quota",
            "two-pods",
            "-o",
            "jsonpath={.status.hard.pods}"
        ]) == "2"),
        "the quota controller did not publish the quota"
    );
    let pod = |name: &str, cpu_limit: Option<&str>| {
        let resources = cpu_limit
            .map(|l| format!(", resources: {{limits: {{cpu: \"{l}\"}}}}"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, namespace: team}}\nspec:\n  containers: [{{name: c, image: kedge-test/none{resources}}}]\n"
        )
    };
    c.apply(&pod("one", None));
    // The LimitRange's defaults, as the pod is stored.
    let resources = c.kubectl(&[
        "-n",
        "team",
        "get",
        "pod",
        "one",
        "-o",
        "jsonpath={.spec.containers[0].resources}",
    ]);
    let resources: serde_json::Value = serde_json::from_str(&resources).unwrap();
    assert_eq!(resources["requests"]["cpu"], "100m", "{resources}");
    assert_eq!(resources["limits"]["cpu"], "200m", "{resources}");
    assert_eq!(resources["limits"]["memory"], "64Mi", "{resources}");
    // Above the LimitRange's maximum.
    let big = write(&c, "big.yaml", &pod("big", Some("2")));
    let refused = c.kubectl_fails(&["apply", "-f", &big]);
    assert!(
        refused.contains(
            "pods \"big\" is forbidden: maximum cpu usage per Container is 1, but limit is 2"
        ),
        "{refused}"
    );
    c.apply(&pod("two", None));
    let third = write(&c, "three.yaml", &pod("three", None));
    let refused = c.kubectl_fails(&["apply", "-f", &third]);
    assert!(
        refused.contains(
            "pods \"three\" is forbidden: exceeded quota: two-pods, requested: pods=1, used: pods=2, limited: pods=2"
        ),
        "{refused}"
    );
    let row = c.kubectl(&["-n", "team", "get", "quota", "two-pods", "--no-headers"]);
    assert!(
        row.contains("pods: 2/2") && row.contains("requests.cpu: 200m/1"),
        "{row}"
    );
    // Deleting a pod gives its share back.
    c.kubectl(&["-n", "team", "delete", "pod", "one", "--wait=false"]);
    assert!(eventually(Duration::from_secs(60), || c
        .kubectl_output(&["apply", "-f", &third])
        .status
        .success()));
}

/// The older tutorials' main controller, their manifest unchanged: a
/// ReplicationController keeps three replicas, replaces a deleted pod,
/// scales with `kubectl scale rc`, adopts a matching orphan, is scaled by
/// a HorizontalPodAutoscaler through its scale subresource, refuses a
/// selector its template does not carry, and takes its pods with it.
#[test]
fn a_replication_controller_keeps_its_replicas() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(2, "rc-", &[]);
    assert!(eventually(WAIT, || node_exists(&c, "rc-1")));
    let manifest = r#"
apiVersion: v1
kind: ReplicationController
metadata:
  name: nginx
spec:
  replicas: 3
  selector:
    app: nginx
  template:
    metadata:
      name: nginx
      labels:
        app: nginx
      annotations:
        hollow.kedge.io/cpu-millicores: "250"
    spec:
      containers:
      - name: nginx
        image: nginx
        ports:
        - containerPort: 80
        resources:
          requests: {cpu: 100m}
"#;
    c.apply(manifest);
    assert!(
        eventually(WAIT, || running_pods(&c, "app=nginx").len() == 3),
        "{}",
        c.kubectl(&["get", "rc,pods", "-o", "wide"])
    );
    assert!(
        eventually(WAIT, || c
            .kubectl(&["get", "rc", "nginx", "--no-headers"])
            .split_whitespace()
            .collect::<Vec<_>>()[1..4]
            == ["3", "3", "3"]),
        "{}",
        c.kubectl(&["get", "rc", "nginx"])
    );
    let owner = c.kubectl(&[
        "get", "pods", "-l", "app=nginx", "-o",
        "jsonpath={.items[0].metadata.ownerReferences[0].apiVersion}/{.items[0].metadata.ownerReferences[0].kind}",
    ]);
    assert_eq!(owner, "v1/ReplicationController");

    // A deleted pod is replaced.
    let (victim, _) = running_pods(&c, "app=nginx")[0].clone();
    c.kubectl(&["delete", "pod", &victim, "--wait=false"]);
    assert!(eventually(WAIT, || {
        let pods = running_pods(&c, "app=nginx");
        pods.len() == 3 && pods.iter().all(|(p, _)| *p != victim)
    }));

    // Scale through the scale subresource.
    let out = c.kubectl(&["scale", "rc", "nginx", "--replicas=5"]);
    assert!(out.contains("scaled"), "{out}");
    assert!(eventually(WAIT, || running_pods(&c, "app=nginx").len() == 5));
    let described = c.kubectl(&["describe", "rc", "nginx"]);
    assert!(described.contains("SuccessfulCreate"), "{described}");
    assert!(described.contains("5 current / 5 desired"), "{described}");

    // Deleted with --cascade=orphan it leaves its pods; created again it
    // adopts them and removes the two beyond its three, creating none.
    let before: Vec<String> = running_pods(&c, "app=nginx")
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    c.kubectl(&["delete", "rc", "nginx", "--cascade=orphan"]);
    assert!(
        eventually(WAIT, || c
            .kubectl(&[
                "get",
                "pods",
                "-l",
                "app=nginx",
                "-o",
                "jsonpath={.items[*].metadata.ownerReferences}",
            ])
            .trim()
            .is_empty()),
        "{}",
        c.kubectl(&["get", "pods", "-o", "yaml"])
    );
    assert_eq!(running_pods(&c, "app=nginx").len(), 5);
    c.apply(manifest);
    assert!(
        eventually(WAIT, || {
            let pods = running_pods(&c, "app=nginx");
            pods.len() == 3 && pods.iter().all(|(p, _)| before.contains(p))
        }),
        "{}",
        c.kubectl(&["get", "pods", "-l", "app=nginx"])
    );

    // An autoscaler drives it like any scalable workload: each pod uses
    // 250% of its request, so it goes to its maximum.
    c.kubectl(&[
        "autoscale",
        "rc",
        "nginx",
        "--min=1",
        "--max=4",
        "--cpu-percent=50",
    ]);
    assert!(
        eventually(Duration::from_secs(120), || c.kubectl(&[
            "get",
            "rc",
            "nginx",
            "-o",
            "jsonpath={.spec.replicas}"
        ]) == "4"),
        "{}",
        c.kubectl(&["describe", "hpa", "nginx"])
    );
    assert!(eventually(WAIT, || running_pods(&c, "app=nginx").len() == 4));
    c.kubectl(&["delete", "hpa", "nginx"]);

    // A selector the template does not carry is refused with the field.
    let out = c.apply_output(
        r#"
apiVersion: v1
kind: ReplicationController
metadata: {name: broken}
spec:
  selector: {app: other}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: nginx}]
"#,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains(
            "spec.template.metadata.labels: Invalid value: map[string]string{\"app\":\"web\"}: `selector` does not match template `labels`"
        ),
        "{stderr}"
    );

    // Deleting it takes its pods.
    c.kubectl(&["delete", "rc", "nginx"]);
    assert!(eventually(WAIT, || c
        .kubectl(&["get", "rc,pods", "-l", "app=nginx", "-o", "name"])
        .trim()
        .is_empty()));
}

/// The image of each live (not terminating) pod matching `selector`.
fn live_images(c: &Cluster, selector: &str) -> Vec<String> {
    c.kubectl(&[
        "get", "pods", "-l", selector, "-o",
        "jsonpath={range .items[*]}{.spec.containers[0].image} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ])
    .lines()
    .filter(|l| l.split_whitespace().count() == 1)
    .map(|l| l.trim().to_string())
    .collect()
}

/// `kubectl rollout history|undo|status` for a DaemonSet and a
/// StatefulSet, as for a Deployment: each template rolled out is a
/// ControllerRevision; undo puts the previous one back (and it becomes the
/// newest revision).
#[test]
fn daemonsets_and_statefulsets_roll_back_with_rollout_undo() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(2, "undo-", &[]);
    assert!(eventually(WAIT, || node_exists(&c, "undo-1")));
    c.apply(
        r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: kedge/agent:1}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: kedge/db:1}]
"#,
    );
    for (workload, container, selector, old, new) in [
        (
            "daemonset/agent",
            "agent",
            "app=agent",
            "kedge/agent:1",
            "kedge/agent:2",
        ),
        ("statefulset/db", "db", "app=db", "kedge/db:1", "kedge/db:2"),
    ] {
        c.kubectl(&["rollout", "status", workload, "--timeout=60s"]);
        let history = c.kubectl(&["rollout", "history", workload]);
        assert!(history.contains("REVISION"), "{history}");
        c.kubectl(&["set", "image", workload, &format!("{container}={new}")]);
        let out = c.kubectl(&["rollout", "status", workload, "--timeout=90s"]);
        assert!(
            out.contains("successfully rolled out") || out.contains("complete"),
            "{out}"
        );
        assert!(
            eventually(WAIT, || live_images(&c, selector) == [new, new]),
            "{:?}",
            live_images(&c, selector)
        );
        let revisions = |c: &Cluster| -> Vec<String> {
            c.kubectl(&["rollout", "history", workload])
                .lines()
                .skip_while(|l| !l.starts_with("REVISION"))
                .skip(1)
                .filter_map(|l| l.split_whitespace().next().map(str::to_string))
                .collect()
        };
        assert_eq!(revisions(&c), ["1", "2"]);
        // The recorded template of a revision.
        let two = c.kubectl(&["rollout", "history", workload, "--revision=2"]);
        assert!(two.contains(new), "{two}");

        let out = c.kubectl(&["rollout", "undo", workload]);
        assert!(out.contains("rolled back"), "{out}");
        c.kubectl(&["rollout", "status", workload, "--timeout=90s"]);
        let image = c.kubectl(&[
            "get",
            workload,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ]);
        assert_eq!(image, old);
        assert!(
            eventually(WAIT, || live_images(&c, selector) == [old, old]),
            "{:?}",
            live_images(&c, selector)
        );
        // The first template came back as revision 3.
        assert!(
            eventually(WAIT, || revisions(&c) == ["2", "3"]),
            "{:?}",
            revisions(&c)
        );
    }
    let listed = c.kubectl(&["get", "controllerrevisions"]);
    assert!(listed.contains("daemonset.apps/agent"), "{listed}");
    assert!(listed.contains("statefulset.apps/db"), "{listed}");
    // Deleting the workloads takes their history with them.
    c.kubectl(&["delete", "daemonset/agent", "statefulset/db"]);
    assert!(eventually(WAIT, || c
        .kubectl(&["get", "controllerrevisions", "-o", "name"])
        .trim()
        .is_empty()));
}

/// A StatefulSet's partition: only ordinals at or above it take the new
/// template, and one below it that is recreated keeps the old one; then
/// the whole set rolls, `maxUnavailable` at a time.
#[test]
fn a_statefulset_rolls_out_above_its_partition() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(2, "part-", &[]);
    assert!(eventually(WAIT, || node_exists(&c, "part-1")));
    c.apply(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: web}
spec:
  serviceName: web
  replicas: 3
  selector: {matchLabels: {app: web}}
  updateStrategy:
    type: RollingUpdate
    rollingUpdate: {partition: 2}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: kedge/web:1}]
"#,
    );
    c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    let image_of = |pod: &str| {
        c.kubectl_output(&[
            "get",
            "pod",
            pod,
            "-o",
            "jsonpath={.spec.containers[0].image} {.metadata.deletionTimestamp}",
        ])
        .stdout
    };
    c.kubectl(&["set", "image", "statefulset/web", "web=kedge/web:2"]);
    assert!(eventually(WAIT, || image_of("web-2") == b"kedge/web:2 "));
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(image_of("web-0"), b"kedge/web:1 ");
    assert_eq!(image_of("web-1"), b"kedge/web:1 ");
    // Below the partition a recreated pod keeps the current revision.
    c.kubectl(&["delete", "pod", "web-0", "--wait=false"]);
    assert!(
        eventually(WAIT, || image_of("web-0") == b"kedge/web:1 "
            && c.kubectl(&[
                "get",
                "pod",
                "web-0",
                "-o",
                "jsonpath={.status.phase}"
            ]) == "Running"),
        "{}",
        String::from_utf8_lossy(&image_of("web-0"))
    );
    let status = c.kubectl(&[
        "get",
        "sts",
        "web",
        "-o",
        "jsonpath={.status.currentRevision} {.status.updateRevision} {.status.updatedReplicas}",
    ]);
    let parts: Vec<&str> = status.split_whitespace().collect();
    assert!(
        parts.len() == 3 && parts[0] != parts[1] && parts[2] == "1",
        "{status}"
    );

    // The partition lowered, the rest roll, two at a time.
    c.kubectl(&[
        "patch",
        "sts",
        "web",
        "-p",
        r#"{"spec":{"updateStrategy":{"rollingUpdate":{"partition":0,"maxUnavailable":2}}}}"#,
    ]);
    c.kubectl(&["rollout", "status", "statefulset/web", "--timeout=60s"]);
    assert!(eventually(WAIT, || ["web-0", "web-1", "web-2"]
        .iter()
        .all(|p| image_of(p) == b"kedge/web:2 ")));
}

/// A StatefulSet's claims under `persistentVolumeClaimRetentionPolicy`
/// Delete: a scaled-down replica's claim goes with its pod, and the rest
/// go with the set (Retain, the default, keeps them: see tests/storage.rs).
#[test]
fn a_statefulset_deletes_its_claims_when_its_policy_says_so() {
    let c = Cluster::start();
    let _nodes = c.hollow_nodes(1, "ret-", &[]);
    assert!(eventually(WAIT, || node_exists(&c, "ret-0")));
    c.apply(
        r#"
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  replicas: 2
  selector: {matchLabels: {app: db}}
  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Delete}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: kedge/db:1
        volumeMounts: [{name: data, mountPath: /data}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 10Mi}}
"#,
    );
    c.kubectl(&["rollout", "status", "statefulset/db", "--timeout=60s"]);
    let claims = || {
        let out = c.kubectl_output(&["get", "pvc", "-o", "name"]);
        let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(str::to_string)
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        claims(),
        [
            "persistentvolumeclaim/data-db-0",
            "persistentvolumeclaim/data-db-1"
        ]
    );
    c.kubectl(&["scale", "statefulset", "db", "--replicas=1"]);
    assert!(
        eventually(WAIT, || claims() == ["persistentvolumeclaim/data-db-0"]),
        "{:?}",
        claims()
    );
    c.kubectl(&["delete", "statefulset", "db"]);
    assert!(eventually(WAIT, || claims().is_empty()), "{:?}", claims());
}
