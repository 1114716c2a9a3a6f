//! Services end to end on `kedge up`: a pod reaches a Service by its DNS
//! name through the cluster DNS and the service proxy, the host reaches it
//! through a NodePort, readiness and scaling change who answers, and names
//! outside the cluster go to the upstream resolver (a stub on loopback).

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{dns_stub, eventually, images, Cluster, RealNode};

const WAIT: Duration = Duration::from_secs(90);

fn exec(c: &Cluster, args: &[&str]) -> std::process::Output {
    let mut full = vec!["-n", "luffy", "exec", "client", "--"];
    full.extend_from_slice(args);
    c.kubectl_output(&full)
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

/// The pod that answered a request to `url` from the client pod.
fn who_answers(c: &Cluster, url: &str) -> Option<String> {
    let out = exec(c, &["timeout", "5", "wget", "-q", "-O", "-", url]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v["pod"].as_str().map(str::to_string)
}

/// The pod that answered a request from the host to `addr` (`ip:port`).
fn from_host(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /from-host HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let body = text.split("\r\n\r\n").nth(1)?;
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    v["pod"].as_str().map(str::to_string)
}

/// The text of a metrics endpoint.
fn metrics(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// A node that joins with `kedge agent` runs its own service proxy and
/// cluster DNS, as kubeadm's DaemonSets would give it: a NodePort answers
/// on the node's address, through that node's proxy.
#[test]
fn an_agent_node_serves_node_ports_through_its_own_proxy() {
    agent_node(&[], |_| {});
}

/// The same with the agent's proxy in kernel mode, in a table of the
/// test's own that the agent deletes when it stops.
#[test]
fn an_agent_node_serves_node_ports_through_its_own_proxy_in_nftables_mode() {
    let table = NftablesTable::unique();
    let flags = [
        "--proxy-mode",
        "nftables",
        "--proxy-nftables-table",
        &table.name,
    ];
    agent_node(&flags, |agent| {
        assert!(table.exists());
        assert!(
            agent.terminate(Duration::from_secs(20)),
            "the agent did not stop"
        );
        assert!(!table.exists(), "the table {} is left", table.name);
    });
}

/// A pod on a node joined with `kedge agent` (with `extra` flags) behind a
/// NodePort Service: the node's address answers from the host, through the
/// agent's proxy. `then` gets the running agent at the end.
fn agent_node(extra: &[&str], then: impl FnOnce(&mut common::Agent)) {
    let nftables = extra.contains(&"nftables");
    let echo = images::echo();
    let c = Cluster::up();
    let dir = tempfile::tempdir().unwrap();
    let node = RealNode::new(dir.path());
    // Declared before the agent, so it runs after the agent is stopped.
    struct Removed<'a>(&'a RealNode);
    impl Drop for Removed<'_> {
        fn drop(&mut self) {
            self.0.remove_from_docker();
        }
    }
    let _removed = Removed(&node);
    let mut agent = c.real_agent_with(&node, extra);
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: joined, labels: {{app: joined}}}}
spec:
  nodeName: {node}
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: {echo}
    env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
---
apiVersion: v1
kind: Service
metadata: {{name: joined}}
spec:
  type: NodePort
  selector: {{app: joined}}
  ports: [{{port: 80, targetPort: 8080}}]
"#,
        node = node.name
    ));
    c.wait_ready(&["pod/joined"], WAIT);
    let node_port = c.kubectl(&[
        "get",
        "svc",
        "joined",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let url = format!("{}:{node_port}", node.address());
    assert!(
        eventually(WAIT, || from_host(&url).as_deref() == Some("joined")),
        "the NodePort on the agent node's address answers"
    );
    // The agent's own proxy carried it, and its DNS runs beside it.
    let text = metrics(agent.metrics_addr.as_deref().unwrap());
    if nftables {
        assert!(
            text.lines()
                .any(|l| l.starts_with("kedge_proxy_nftables_rules ") && !l.ends_with(" 0")),
            "{text}"
        );
    } else {
        assert!(
            text.lines()
                .any(|l| l.starts_with("kedge_proxy_connections_total{")
                    && l.contains("service=\"joined\"")),
            "{text}"
        );
    }
    assert!(text.contains("# TYPE kedge_dns_"), "{text}");
    then(&mut agent);
}

#[test]
fn pods_reach_services_by_name_and_the_host_through_a_node_port() {
    walkthrough(&[]);
}

/// The same walkthrough with the proxy's kernel mode: DNAT in a table of
/// the test's own, which is gone afterwards.
#[test]
fn pods_reach_services_by_name_and_the_host_through_a_node_port_in_nftables_mode() {
    let table = NftablesTable::unique();
    let mut c = walkthrough(&[
        "--proxy-mode",
        "nftables",
        "--proxy-nftables-table",
        &table.name,
    ]);
    assert!(table.exists());
    // The proxy deletes its table when it stops.
    assert!(
        c.terminate(Duration::from_secs(20)),
        "kedge up did not stop"
    );
    assert!(!table.exists(), "the table {} is left", table.name);
}

/// The nftables table name of one test: unique on this machine while the
/// test runs, and deleted on drop if the proxy left it (a crash).
struct NftablesTable {
    name: String,
}

impl NftablesTable {
    fn unique() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Self {
            name: format!("kedge_t{}_{n}", std::process::id()),
        }
    }

    fn exists(&self) -> bool {
        std::process::Command::new("nft")
            .args(["list", "table", "ip", &self.name])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for NftablesTable {
    fn drop(&mut self) {
        // Only this test's own table; the machine's other tables are not
        // ours to touch.
        if self.exists() {
            let _ = std::process::Command::new("nft")
                .args(["delete", "table", "ip", &self.name])
                .status();
        }
    }
}

/// The seed's walkthrough on `kedge up` with `extra` flags; the cluster is
/// left running.
fn walkthrough(extra: &[&str]) -> Cluster {
    let nftables = extra.contains(&"nftables");
    let echo = images::echo();
    let busybox = images::busybox();
    let stub = dns_stub();
    let upstream = format!("127.0.0.1:{stub}");
    let mut args = vec!["--dns-upstream", upstream.as_str()];
    args.extend_from_slice(extra);
    let c = Cluster::up_with(&args);
    let node = c.node.clone().unwrap();
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata: {{name: luffy}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: myblog, namespace: luffy}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: myblog}}}}
  template:
    metadata: {{labels: {{app: myblog}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: {echo}
        env: [{{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}]
        readinessProbe:
          httpGet: {{path: /readyz, port: 8080}}
          periodSeconds: 1
          failureThreshold: 1
---
apiVersion: v1
kind: Service
metadata: {{name: myblog, namespace: luffy}}
spec:
  selector: {{app: myblog}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: mysql, namespace: luffy}}
spec:
  selector: {{app: mysql}}
  ports: [{{port: 3306}}]
---
apiVersion: v1
kind: Service
metadata: {{name: elsewhere, namespace: default}}
spec:
  ports: [{{port: 80}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: luffy}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{{name: c, image: {busybox}, command: ["sleep", "100000"]}}]
"#
    ));
    c.kubectl(&[
        "-n",
        "luffy",
        "rollout",
        "status",
        "deployment/myblog",
        "--timeout=120s",
    ]);
    c.wait_ready(&["-n", "luffy", "pod/client"], WAIT);
    let ip_of = |ns: &str, svc: &str| {
        c.kubectl(&[
            "-n",
            ns,
            "get",
            "svc",
            svc,
            "-o",
            "jsonpath={.spec.clusterIP}",
        ])
    };

    // Names through the search list, and fully qualified.
    let mysql = ip_of("luffy", "mysql");
    let myblog = ip_of("luffy", "myblog");
    let elsewhere = ip_of("default", "elsewhere");
    for (name, ip) in [
        ("mysql", &mysql),
        ("myblog.luffy.svc.cluster.local", &myblog),
        ("elsewhere.default.svc.cluster.local", &elsewhere),
    ] {
        let out = stdout(&exec(&c, &["nslookup", name]));
        assert!(
            out.contains(&format!("Address: {ip}")),
            "{name} → {ip}:\n{out}"
        );
    }
    // The C library's resolver walks the search list (ndots:5) for dotted
    // names too.
    assert!(eventually(WAIT, || who_answers(&c, "http://myblog.luffy/").is_some()));
    let out = exec(
        &c,
        &[
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            "http://elsewhere.default/",
        ],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("refused"), "resolved, nothing listens: {err}");
    let out = exec(&c, &["nslookup", "nosuch.luffy.svc.cluster.local."]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("NXDOMAIN"),
        "{}",
        stdout(&out)
    );
    // A name outside the cluster goes to the upstream: the stub.
    let out = stdout(&exec(&c, &["nslookup", "outside.example."]));
    assert!(out.contains("Address: 192.0.2.7"), "{out}");

    // Through the ClusterIP, both replicas answer.
    let pods: BTreeSet<String> = c
        .kubectl(&[
            "-n",
            "luffy",
            "get",
            "pods",
            "-l",
            "app=myblog",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ])
        .split_whitespace()
        .map(str::to_string)
        .collect();
    assert_eq!(pods.len(), 2);
    // The proxy may get the second endpoint a little after the first.
    let mut answered = BTreeSet::new();
    assert!(
        eventually(WAIT, || {
            if let Some(pod) = who_answers(&c, "http://myblog/") {
                assert!(pods.contains(&pod), "{pod} is not one of {pods:?}");
                answered.insert(pod);
            }
            answered == pods
        }),
        "both replicas answer through the Service: {answered:?}"
    );

    // From the host, through a NodePort on the node's address.
    c.kubectl(&[
        "-n",
        "luffy",
        "patch",
        "svc",
        "myblog",
        "-p",
        r#"{"spec":{"type":"NodePort"}}"#,
    ]);
    let node_port = c.kubectl(&[
        "-n",
        "luffy",
        "get",
        "svc",
        "myblog",
        "-o",
        "jsonpath={.spec.ports[0].nodePort}",
    ]);
    let node_url = format!("{}:{node_port}", node.address());
    let from_host = || from_host(&node_url);
    assert!(eventually(WAIT, || from_host().is_some_and(|p| pods.contains(&p))));

    // One replica fails its readiness probe: it gets no more traffic.
    let unready = pods.iter().next().unwrap().clone();
    let unready_ip = c.kubectl(&[
        "-n",
        "luffy",
        "get",
        "pod",
        &unready,
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    let out = exec(
        &c,
        &[
            "timeout",
            "5",
            "wget",
            "-q",
            "-O",
            "-",
            &format!("http://{unready_ip}:8080/set-unready"),
        ],
    );
    assert!(out.status.success());
    assert!(eventually(WAIT, || {
        c.kubectl(&[
            "-n",
            "luffy",
            "get",
            "pod",
            &unready,
            "-o",
            "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
        ]) == "False"
    }));
    assert!(eventually(WAIT, || {
        (0..10).all(|_| who_answers(&c, "http://myblog/").is_some_and(|p| p != unready))
            && (0..10).all(|_| from_host().is_some_and(|p| p != unready))
    }));

    // The proxy and the DNS count what they did.
    let metrics_addr = c.arg_after("--metrics-addr").unwrap();
    let metrics = metrics(&metrics_addr);
    if nftables {
        // The kernel counts the connections; the proxy counts its rules.
        assert!(
            metrics
                .lines()
                .any(|l| l.starts_with("kedge_proxy_nftables_rules ") && !l.ends_with(" 0")),
            "{metrics}"
        );
    } else {
        assert!(
            metrics.contains("kedge_proxy_connections_total{"),
            "{metrics}"
        );
    }
    assert!(metrics.contains("kedge_dns_requests_total{"), "{metrics}");

    // No replica at all: refused at once, not a hang.
    c.kubectl(&[
        "-n",
        "luffy",
        "scale",
        "deployment",
        "myblog",
        "--replicas=0",
    ]);
    assert!(eventually(WAIT, || {
        let out = exec(
            &c,
            &["timeout", "5", "wget", "-q", "-O", "-", "http://myblog/"],
        );
        String::from_utf8_lossy(&out.stderr).contains("refused")
    }));
    let refused =
        std::net::TcpStream::connect_timeout(&node_url.parse().unwrap(), Duration::from_secs(5));
    assert_eq!(
        refused.unwrap_err().kind(),
        std::io::ErrorKind::ConnectionRefused
    );
    c
}
