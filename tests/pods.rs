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
metadata: {{name: over-limit}}
spec:
  restartPolicy: Never
  containers:
  - name: c
    image: {busybox}
    command: ["sh", "-c", "head -c 300000000 /dev/zero | tail"]
    resources: {{limits: {{memory: 20Mi}}}}
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
    assert!(
        eventually(WAIT, || {
            jsonpath(
                &c,
                "over-limit",
                "{.status.containerStatuses[0].state.terminated.reason}",
            ) == "OOMKilled"
        }),
        "a container over its memory limit is OOMKilled"
    );
    assert_eq!(status_column(&c, "over-limit"), "OOMKilled");

    // The infra container dies: the pod gets a new sandbox, and its
    // containers are made again in it.
    let infra = Command::new("docker")
        .args([
            "ps",
            "-q",
            "--filter",
            "label=io.kubernetes.pod.name=duo",
            "--filter",
            "label=io.kubernetes.container.name=POD",
        ])
        .output()
        .unwrap();
    let infra = String::from_utf8_lossy(&infra.stdout).trim().to_string();
    assert!(!infra.is_empty());
    Command::new("docker")
        .args(["kill", &infra])
        .output()
        .unwrap();
    assert!(eventually(WAIT, || {
        jsonpath(&c, "duo", "{.status.containerStatuses[*].restartCount}") == "1 1"
    }));
    c.wait_ready(&["pod/duo"], WAIT);

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

/// Wait for a file a pod writes into a hostPath volume.
fn read_when_written(path: &std::path::Path) -> String {
    assert!(
        eventually(WAIT, || std::fs::read_to_string(path)
            .is_ok_and(|s| s.ends_with('\n'))),
        "{} was never written",
        path.display()
    );
    std::fs::read_to_string(path).unwrap()
}

#[test]
fn pods_get_config_secrets_volumes_and_cluster_dns() {
    let busybox = images::busybox();
    let c = Cluster::up();
    let out = tempfile::tempdir().unwrap();
    let out_dir = out.path().join("out");
    c.apply(&format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: settings}}
data: {{GREETING: hello, app.conf: "mode=test\n"}}
---
apiVersion: v1
kind: Secret
metadata: {{name: creds}}
stringData: {{password: s3cret}}
---
apiVersion: v1
kind: Pod
metadata: {{name: app}}
spec:
  terminationGracePeriodSeconds: 1
  nodeSelector: {{kubernetes.io/hostname: {node}}}
  initContainers:
  - name: init
    image: {busybox}
    command: ["sh", "-c", "echo written-by-init > /work/index.html"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  containers:
  - name: web
    image: {busybox}
    command: ["httpd", "-f", "-p", "8080", "-h", "/work"]
    volumeMounts: [{{name: work, mountPath: /work}}]
  - name: check
    image: {busybox}
    command:
    - sh
    - -c
    - >-
      env > /out/env.tmp && mv /out/env.tmp /out/env;
      cat /etc/secret/password /etc/app/app.conf > /out/files;
      cat /etc/resolv.conf > /out/resolv.conf;
      until wget -q -O /out/web http://localhost:8080/index.html; do sleep 0.2; done;
      exec sleep 100000
    env:
    - {{name: GREETING, valueFrom: {{configMapKeyRef: {{name: settings, key: GREETING}}}}}}
    - {{name: PASSWORD, valueFrom: {{secretKeyRef: {{name: creds, key: password}}}}}}
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
    - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
    - {{name: MESSAGE, value: "$(GREETING)-world"}}
    envFrom: [{{prefix: CFG_, configMapRef: {{name: settings}}}}]
    volumeMounts:
    - {{name: secret, mountPath: /etc/secret, readOnly: true}}
    - {{name: conf, mountPath: /etc/app}}
    - {{name: out, mountPath: /out}}
  volumes:
  - {{name: work, emptyDir: {{}}}}
  - {{name: secret, secret: {{secretName: creds}}}}
  - {{name: conf, configMap: {{name: settings, items: [{{key: app.conf, path: app.conf}}]}}}}
  - {{name: out, hostPath: {{path: {out}, type: DirectoryOrCreate}}}}
"#,
        node = c.node.as_ref().unwrap().name,
        out = out_dir.display()
    ));
    let env = read_when_written(&out_dir.join("env"));
    for want in [
        "GREETING=hello",
        "PASSWORD=s3cret",
        "POD_NAME=app",
        "MESSAGE=hello-world",
        "CFG_GREETING=hello",
    ] {
        assert!(env.lines().any(|l| l == want), "{want} in\n{env}");
    }
    let ip = jsonpath(&c, "app", "{.status.podIP}");
    assert!(env.lines().any(|l| l == format!("POD_IP={ip}")), "{env}");
    assert_eq!(
        read_when_written(&out_dir.join("files")),
        "s3cretmode=test\n"
    );
    assert_eq!(
        read_when_written(&out_dir.join("resolv.conf")),
format!(
            "nameserver {}\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5\n",
            c.node.as_ref().unwrap().dns_ip()
        )
    );
    // The init container wrote what the web container serves, to the
    // third container over localhost.
    assert_eq!(read_when_written(&out_dir.join("web")), "written-by-init\n");
    c.wait_ready(&["pod/app"], WAIT);
}

#[test]
fn deleting_a_pod_runs_prestop_then_sigterm_within_the_grace_period() {
    let busybox = images::busybox();
    let c = Cluster::up();
    let out = tempfile::tempdir().unwrap();
    let log = out.path().join("log");
    std::fs::write(&log, "").unwrap();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: graceful}}
spec:
  terminationGracePeriodSeconds: 20
  containers:
  - name: main
    image: {busybox}
    command: ["sh", "-c", "echo started >> /out/log; trap 'echo sigterm >> /out/log; exit 0' TERM; while true; do sleep 0.2; done"]
    lifecycle:
      postStart:
        exec: {{command: ["sh", "-c", "echo poststart >> /out/log"]}}
      preStop:
        exec: {{command: ["sh", "-c", "echo prestop >> /out/log"]}}
    volumeMounts: [{{name: out, mountPath: /out}}]
  volumes:
  - {{name: out, hostPath: {{path: {dir}}}}}
"#,
        dir = out.path().display()
    ));
    c.wait_ready(&["pod/graceful"], WAIT);
    c.kubectl(&["delete", "pod", "graceful", "--timeout=60s"]);
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.contains(&"poststart"), "{text}");
    let prestop = lines.iter().position(|l| *l == "prestop");
    let sigterm = lines.iter().position(|l| *l == "sigterm");
    assert!(
        prestop.is_some() && sigterm.is_some() && prestop < sigterm,
        "preStop ran, then SIGTERM arrived: {text}"
    );
}

#[test]
fn kubectl_logs_and_exec_reach_the_containers() {
    let busybox = images::busybox();
    let c = Cluster::up();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: talker}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {busybox}
    command: ["sh", "-c", "for i in 1 2 3; do echo line-$i; done; while true; do echo tick; sleep 0.2; done"]
    env: [{{name: FAVOURITE, value: kedge}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: crasher}}
spec:
  containers:
  - name: main
    image: {busybox}
    command: ["sh", "-c", "echo this-run-crashed; sleep 1; exit 1"]
"#
    ));
    c.wait_ready(&["pod/talker"], WAIT);

    // What the kubelet did shows in `kubectl describe`.
    assert!(eventually(WAIT, || {
        let d = c.kubectl(&["describe", "pod", "talker"]);
        ["Scheduled", "Pulled", "Created", "Started"]
            .iter()
            .all(|r| d.contains(&format!("  {r}  ")))
    }));

    let logs = c.kubectl(&["logs", "talker"]);
    assert!(logs.starts_with("line-1\nline-2\nline-3\n"), "{logs}");
    let tail = c.kubectl(&["logs", "talker", "--tail=1"]);
    assert_eq!(tail, "tick\n");

    // `logs -f` keeps streaming as the container writes.
    let mut follow = c
        .kubectl_cmd(&["logs", "-f", "talker", "-c", "main"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    let ticks = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|l| l == "tick")
            .take(20)
            .count()
    });
    assert!(
        eventually(WAIT, || ticks.is_finished()),
        "logs -f delivered new lines"
    );
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(ticks.join().unwrap(), 20);

    let env = c.kubectl(&["exec", "talker", "--", "env"]);
    assert!(env.lines().any(|l| l == "FAVOURITE=kedge"), "{env}");
    let out = c.kubectl_output(&[
        "exec",
        "talker",
        "--",
        "sh",
        "-c",
        "echo to-stderr >&2; exit 3",
    ]);
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next(),
        Some("to-stderr")
    );

    // stdin passes through.
    let mut cat = c
        .kubectl_cmd(&["exec", "-i", "talker", "--", "cat"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = cat.stdin.take().unwrap();
        stdin.write_all(b"through-stdin\n").unwrap();
    }
    let out = cat.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through-stdin\n");

    // -it: kubectl wants a terminal, which `script` gives it.
    let kubectl = format!(
        "kubectl --kubeconfig {} exec -it talker -- sh -c 'tty; echo interactive-$((40+2))'",
        c.kubeconfig().display()
    );
    let out = Command::new("script")
        .args(["-qec", &kubectl, "/dev/null"])
        .env("HOME", &c.home)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("/dev/pts/"), "a TTY inside: {text}");
    assert!(text.contains("interactive-42"), "{text}");

    // The ended container's output stays readable with --previous.
    assert!(eventually(WAIT, || {
        jsonpath(&c, "crasher", "{.status.containerStatuses[0].restartCount}")
            .parse::<u32>()
            .is_ok_and(|n| n >= 1)
    }));
    assert!(eventually(WAIT, || {
        let out = c.kubectl_output(&["logs", "crasher", "--previous"]);
        String::from_utf8_lossy(&out.stdout) == "this-run-crashed\n"
    }));
}

#[test]
fn a_deployment_of_echo_servers_rolls_to_a_new_image() {
    let echo = images::echo();
    let busybox = images::busybox();
    // A second tag of the same image stands for a new release.
    let v2 = format!("{echo}-v2");
    let status = Command::new("docker")
        .args(["tag", echo, &v2])
        .status()
        .unwrap();
    assert!(status.success());
    let c = Cluster::up();
    c.apply(&format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: 3
  strategy: {{rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}}}
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      terminationGracePeriodSeconds: 2
      containers:
      - name: echo
        image: {echo}
        ports: [{{name: http, containerPort: 8080}}]
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: POD_NAMESPACE, valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}}}
        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        readinessProbe:
          httpGet: {{path: /ready, port: http}}
          periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {busybox}, command: ["sleep", "100000"]}}
"#
    ));
    c.kubectl(&["rollout", "status", "deployment/echo", "--timeout=120s"]);
    c.wait_ready(&["pod/client"], WAIT);

    // Every replica answers, from another pod, with its own identity.
    let pods = c.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=echo",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{\"\\n\"}{end}",
    ]);
    let pods: Vec<(String, String)> = pods
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(n, ip)| (n.to_string(), ip.to_string()))
        .collect();
    assert_eq!(pods.len(), 3, "{pods:?}");
    for (name, ip) in &pods {
        let url = format!("http://{ip}:8080/hello?x=1");
        let body = c.kubectl(&[
            "exec", "client", "--", "timeout", "5", "wget", "-q", "-O", "-", &url,
        ]);
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(v["pod"], name.as_str(), "{body}");
        assert_eq!(v["namespace"], "default");
        assert_eq!(v["podIP"], ip.as_str());
        assert_eq!(v["path"], "/hello?x=1");
        assert_eq!(v["method"], "GET");
    }

    c.kubectl(&["set", "image", "deployment/echo", &format!("echo={v2}")]);
    c.kubectl(&["rollout", "status", "deployment/echo", "--timeout=120s"]);
    assert!(eventually(WAIT, || {
        let out = c.kubectl(&[
            "get",
            "pods",
            "-l",
            "app=echo",
            "-o",
            "jsonpath={range .items[*]}{.spec.containers[0].image} {.status.phase} {.status.containerStatuses[0].ready}{\"\\n\"}{end}",
        ]);
        let lines: Vec<&str> = out.lines().collect();
        lines.len() == 3 && lines.iter().all(|l| *l == format!("{v2} Running true"))
    }));
}

#[test]
fn config_map_files_follow_updates_and_containers_run_as_their_user() {
    let busybox = images::busybox();
    let c = Cluster::up();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: ConfigMap
metadata: {{name: live}}
data: {{colour: blue}}
---
apiVersion: v1
kind: Pod
metadata: {{name: reader}}
spec:
  terminationGracePeriodSeconds: 1
  securityContext: {{runAsUser: 65534, runAsGroup: 65534}}
  containers:
  - name: main
    image: {busybox}
    command: ["sh", "-c", "echo uid=$(id -u) gid=$(id -g); while true; do echo colour=$(cat /etc/live/colour); sleep 0.5; done"]
    volumeMounts: [{{name: live, mountPath: /etc/live}}]
  volumes:
  - {{name: live, configMap: {{name: live}}}}
"#
    ));
    c.wait_ready(&["pod/reader"], WAIT);
    // Ready can come before the first line reaches the log.
    let logs = || c.kubectl(&["logs", "reader"]);
    assert!(eventually(WAIT, || logs().contains('\n')), "no logs");
    let logs = logs();
    assert!(logs.starts_with("uid=65534 gid=65534\n"), "{logs}");
    assert!(eventually(WAIT, || c
        .kubectl(&["logs", "reader", "--tail=1"])
        == "colour=blue\n"));
    c.kubectl(&[
        "patch",
        "configmap",
        "live",
        "-p",
        r#"{"data":{"colour":"green"}}"#,
    ]);
    // The kubelet rewrites the files on its next sync of the pod (at the
    // latest its resync period), atomically.
    assert!(eventually(WAIT, || c
        .kubectl(&["logs", "reader", "--tail=1"])
        == "colour=green\n"));
}

/// Run `kubectl port-forward` with `args` until the returned guard drops;
/// the local port it chose (`:remote` asks for any free one). `websockets`
/// false makes kubectl speak SPDY on the upgraded connection itself.
fn port_forward(c: &Cluster, args: &[&str], websockets: bool) -> (PortForward, u16) {
    use std::io::BufRead;
    let mut all = vec!["port-forward"];
    all.extend_from_slice(args);
    let mut child = c
        .kubectl_cmd(&all)
        .env(
            "KUBECTL_PORT_FORWARD_WEBSOCKETS",
            if websockets { "true" } else { "false" },
        )
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            // "Forwarding from 127.0.0.1:43121 -> 8080"
            if let Some(port) = line
                .strip_prefix("Forwarding from 127.0.0.1:")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|p| p.parse::<u16>().ok())
            {
                let _ = tx.send(port);
            }
        }
    });
    let port = rx.recv_timeout(WAIT).expect("kubectl port-forward listens");
    (PortForward { child }, port)
}

/// A running `kubectl port-forward`, stopped by PID when dropped.
struct PortForward {
    child: std::process::Child,
}

impl PortForward {
    /// Stop it and return what it wrote to stderr.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        let _ = self.child.wait();
        err
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection to 127.0.0.1:`port`; the
/// whole response (the echo server closes after answering).
fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// `kubectl port-forward` to a Service and to a pod, as users reach a
/// dashboard or a database, and `kubectl cp` both ways: unchanged kubectl
/// against the kubelet's SPDY port forwarding and exec with tar.
#[test]
fn kubectl_port_forward_and_cp_reach_a_pod() {
    let echo = images::echo();
    let busybox = images::busybox();
    let c = Cluster::up();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: myblog, labels: {{app: myblog}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: {echo}
    ports: [{{containerPort: 8080}}]
    env:
    - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
---
apiVersion: v1
kind: Service
metadata: {{name: myblog}}
spec:
  selector: {{app: myblog}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: files}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: main
    image: {busybox}
    command: ["sh", "-c", "mkdir -p /data/sub && echo from-the-pod > /data/sub/inside.txt && sleep 3600"]
"#
    ));
    c.wait_ready(&["pod/myblog", "pod/files"], WAIT);

    // To the Service, as the tutorials type it: kubectl picks its pod and
    // the target port.
    let (forward, port) = port_forward(&c, &["svc/myblog", "18080:80"], true);
    assert_eq!(port, 18080);
    for i in 0..3 {
        let answer = match http_get(port, &format!("/visit/{i}")) {
            Ok(a) => a,
            Err(e) => panic!("{e}: kubectl port-forward said: {}", forward.stop()),
        };
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.contains("\"myblog\""), "{answer}");
        assert!(answer.contains(&format!("/visit/{i}")), "{answer}");
    }
    // Connections side by side share the session.
    let parallel: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || http_get(port, &format!("/p/{i}"))))
        .collect();
    let answers: Vec<_> = parallel.into_iter().map(|t| t.join().unwrap()).collect();
    if answers.iter().any(Result::is_err) {
        panic!("{answers:?}: kubectl port-forward said: {}", forward.stop());
    }
    for (i, answer) in answers.into_iter().enumerate() {
        let answer = answer.unwrap();
        assert!(answer.contains(&format!("/p/{i}")), "{answer}");
    }
    drop(forward);

    // To the pod by name; a port nothing listens on is reported by the
    // kubelet on the error stream.
    let (forward, port) = port_forward(&c, &["pod/myblog", ":8080"], true);
    assert!(http_get(port, "/direct").unwrap().contains("/direct"));
    drop(forward);
    let (forward, port) = port_forward(&c, &["pod/myblog", ":9"], true);
    let refused = http_get(port, "/nothing-here");
    assert!(
        refused.as_ref().map_or(true, |a| a.is_empty()),
        "{refused:?}"
    );
    std::thread::sleep(Duration::from_millis(500));
    let stderr = forward.stop();
    assert!(stderr.contains("error forwarding port 9"), "{stderr}");

    // Older clients (and kubectl told so) speak SPDY without the WebSocket.
    let (forward, port) = port_forward(&c, &["pod/myblog", ":8080"], false);
    for i in 0..2 {
        let answer = http_get(port, &format!("/spdy/{i}")).unwrap();
        assert!(answer.contains(&format!("/spdy/{i}")), "{answer}");
    }
    drop(forward);

    // kubectl cp in and out (tar through exec).
    let local = c.home.join("upload.txt");
    std::fs::write(&local, "from-the-host\n").unwrap();
    c.kubectl(&["cp", &local.display().to_string(), "files:/data/upload.txt"]);
    let inside = c.kubectl(&["exec", "files", "--", "cat", "/data/upload.txt"]);
    assert_eq!(inside, "from-the-host\n");
    let out_dir = c.home.join("copied");
    c.kubectl(&["cp", "files:/data/sub", &out_dir.display().to_string()]);
    assert_eq!(
        std::fs::read_to_string(out_dir.join("inside.txt")).unwrap(),
        "from-the-pod\n"
    );
}
