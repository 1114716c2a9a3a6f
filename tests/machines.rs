//! A cluster of three machines, built as the tutorials build one: `kedge
//! init` on the first, `kedge join` with the command it prints on the
//! other two. Each machine is a network namespace with its own Docker
//! Engine (tests/common/machines.rs), so pods of different machines meet
//! only through the pod network's VXLAN tunnel over the machines' link.
//!
//! Shown: every node gets its own pod CIDR from the control plane; a pod
//! reaches pods on the other machines by pod IP with its own address as
//! the source, by Service name and ClusterIP; a NodePort answers on every
//! machine for pods elsewhere; and with one machine's cable cut its node
//! goes NotReady, its pods are replaced on the others, and the Service
//! keeps answering.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::machines::{Machine, Machines};
use common::{eventually, images};

const WAIT: Duration = Duration::from_secs(180);

/// `{"pod":…,"remote":"ip:port",…}` of the echo server: the field's value.
fn field(json: &str, name: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json.trim())
        .unwrap_or_else(|e| panic!("not the echo server's answer ({e}): {json}"));
    v[name].as_str().unwrap_or_default().to_string()
}

/// `wget` from the pod `from` (in `default`) to `url`; the body, if it
/// answered.
fn fetch(m1: &Machine, from: &str, url: &str) -> Option<String> {
    let out = m1.kubectl_output(&["exec", from, "--", "timeout", "5", "wget", "-qO-", url]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The pods of `app=echo`: (name, node, IP) of the Running ones.
fn echo_pods(m1: &Machine) -> Vec<(String, String, String)> {
    let out = m1.kubectl(&[
        "get",
        "pods",
        "-l",
        "app=echo",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.spec.nodeName} {.status.podIP} {.status.phase} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
    ]);
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            (w.len() == 4 && w[3] == "Running")
                .then(|| (w[0].to_string(), w[1].to_string(), w[2].to_string()))
        })
        .collect()
}

fn ready_nodes(m1: &Machine) -> BTreeSet<String> {
    let out = m1.kubectl_output(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name} {.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
    ]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_suffix(" True").map(str::to_string))
        .collect()
}

/// An HTTP GET from this (the host's) side to `addr`; the body.
fn http_get(addr: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect_timeout(&addr.parse().ok()?, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    write!(s, "GET / HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.starts_with("HTTP/1.")
        .then(|| out.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

#[test]
fn three_machines_one_pod_network() {
    let mut ms = Machines::new(3);
    let prefix = ms.prefix.clone();
    // Cluster names resolve in the cluster; nothing goes to the host's
    // resolver.
    let address = |i: usize| format!("{prefix}.{i}");

    // The control plane, and its first node, on m1. A shorter grace period
    // than the default 40 s (kube-controller-manager's
    // --node-monitor-grace-period; twice the kubelets' 10 s heartbeat)
    // keeps the cut-cable part of the test short.
    let m1_ip = address(1);
    // A pod range of the user's choosing, which joining nodes learn from
    // the control plane (else they would masquerade pod traffic between
    // machines, and the source address check below would fail).
    ms.machine(1).init(
        &["--cluster-cidr", "10.245.0.0/16"],
        &[("KEDGE_NODE_MONITOR_GRACE_SECONDS", "20")],
    );
    let join = ms.machines[0].join_commands(1).remove(0);
    assert!(
        join.starts_with(&format!("kedge join {m1_ip}:6443 ")),
        "the join command names the control plane's address: {join}"
    );
    for i in [2, 3] {
        ms.machine(i).join(&join, &[]);
    }
    let m1 = &ms.machines[0];
    let all: BTreeSet<String> = ["m1", "m2", "m3"].map(String::from).into();
    assert!(
        eventually(WAIT, || ready_nodes(m1) == all),
        "not every node went Ready: {:?}\n{}\n{}",
        ready_nodes(m1),
        ms.machines[1].log("join"),
        ms.machines[2].log("join"),
    );

    // Each node has a pod CIDR of its own, given by the control plane.
    let cidrs = m1.kubectl(&[
        "get",
        "nodes",
        "-o",
        "jsonpath={range .items[*]}{.metadata.name}={.spec.podCIDR} {end}",
    ]);
    let cidrs: std::collections::BTreeMap<&str, &str> = cidrs
        .split_whitespace()
        .filter_map(|w| w.split_once('='))
        .collect();
    assert_eq!(cidrs["m1"], "10.245.0.0/24", "{cidrs:?}");
    let given: BTreeSet<&str> = [cidrs["m2"], cidrs["m3"]].into();
    assert_eq!(
        given,
        ["10.245.1.0/24", "10.245.2.0/24"].into(),
        "{cidrs:?}"
    );

    // A Deployment over all three machines, its pods tolerating an
    // unreachable node for 5 s only; a client pod on m2.
    let echo = images::echo();
    let busybox = images::busybox();
    let manifest = format!(
        r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: echo}}}}
  template:
    metadata: {{labels: {{app: echo}}}}
    spec:
      tolerations:
      - {{key: node.kubernetes.io/unreachable, operator: Exists, effect: NoExecute, tolerationSeconds: 5}}
      - {{key: node.kubernetes.io/not-ready, operator: Exists, effect: NoExecute, tolerationSeconds: 5}}
      containers:
      - name: echo
        image: {echo}
        imagePullPolicy: Never
        env:
        - {{name: POD_NAME, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}
        - {{name: POD_IP, valueFrom: {{fieldRef: {{fieldPath: status.podIP}}}}}}
        readinessProbe:
          httpGet: {{path: /readyz, port: 8080}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: echo}}
spec:
  type: NodePort
  selector: {{app: echo}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: m2
  containers:
  - {{name: c, image: {busybox}, imagePullPolicy: Never, command: [sleep, "3600"]}}
"#
    );
    m1.apply("echo.yaml", &manifest);
    assert!(
        eventually(WAIT, || {
            let nodes: BTreeSet<String> = echo_pods(m1).into_iter().map(|p| p.1).collect();
            nodes == all
        }),
        "the echo pods did not run on all three machines: {:?}",
        echo_pods(m1)
    );
    assert!(eventually(WAIT, || m1
        .kubectl(&["get", "pod", "client", "-o", "jsonpath={.status.phase}"])
        .trim()
        == "Running"));
    let client_ip = m1
        .kubectl(&["get", "pod", "client", "-o", "jsonpath={.status.podIP}"])
        .trim()
        .to_string();
    let m2_net = cidrs["m2"].trim_end_matches("0/24");
    assert!(
        client_ip.starts_with(m2_net),
        "{client_ip} not in {}",
        cidrs["m2"]
    );

    // Pod to pod across machines, by pod IP: the source address is the
    // client pod's own.
    let on_m3 = echo_pods(m1)
        .into_iter()
        .find(|p| p.1 == "m3")
        .expect("an echo pod on m3");
    let mut answer = None;
    assert!(
        eventually(WAIT, || {
            answer = fetch(m1, "client", &format!("http://{}:8080/", on_m3.2));
            answer.is_some()
        }),
        "the pod on m2 does not reach {on_m3:?} on m3"
    );
    let answer = answer.unwrap();
    assert_eq!(field(&answer, "pod"), on_m3.0);
    let remote = field(&answer, "remote");
    assert_eq!(
        remote.rsplit_once(':').unwrap().0,
        client_ip,
        "the source address was rewritten on the way"
    );

    // By Service name and by ClusterIP: every replica, wherever it runs,
    // answers in turn.
    let cluster_ip = m1
        .kubectl(&["get", "svc", "echo", "-o", "jsonpath={.spec.clusterIP}"])
        .trim()
        .to_string();
    for url in ["http://echo/".to_string(), format!("http://{cluster_ip}/")] {
        let mut served = BTreeSet::new();
        assert!(
            eventually(WAIT, || {
                if let Some(a) = fetch(m1, "client", &url) {
                    served.insert(field(&a, "pod"));
                }
                served.len() == 3
            }),
            "{url} reached only {served:?}"
        );
    }

    // The NodePort on every machine's address, for pods on every machine.
    let node_port = m1
        .kubectl(&[
            "get",
            "svc",
            "echo",
            "-o",
            "jsonpath={.spec.ports[0].nodePort}",
        ])
        .trim()
        .to_string();
    for i in 1..=3 {
        let addr = format!("{}:{node_port}", address(i));
        let mut served = BTreeSet::new();
        assert!(
            eventually(WAIT, || {
                if let Some(a) = http_get(&addr) {
                    served.insert(field(&a, "pod"));
                }
                served.len() == 3
            }),
            "the NodePort on m{i} reached only {served:?}"
        );
    }

    // m3's cable cut: its node goes NotReady, its pod is replaced on the
    // others, and the Service answers throughout from what is left.
    ms.machines[2].link(false);
    let m1 = &ms.machines[0];
    assert!(
        eventually(WAIT, || !ready_nodes(m1).contains("m3")),
        "m3 did not go NotReady with its cable cut"
    );
    assert!(
        eventually(WAIT, || {
            let pods = echo_pods(m1);
            pods.len() == 3 && pods.iter().all(|p| p.1 != "m3")
        }),
        "the pod of m3 was not replaced: {:?}",
        echo_pods(m1)
    );
    let replicas: BTreeSet<String> = echo_pods(m1).into_iter().map(|p| p.0).collect();
    let mut served = BTreeSet::new();
    assert!(
        eventually(WAIT, || {
            if let Some(a) = fetch(m1, "client", "http://echo/") {
                served.insert(field(&a, "pod"));
            }
            served == replicas
        }),
        "the Service did not reach all of {replicas:?} after the cut: {served:?}"
    );
    for _ in 0..10 {
        let a = fetch(m1, "client", "http://echo/").expect("the Service answers");
        assert!(replicas.contains(&field(&a, "pod")), "{a}");
    }
    ms.machines[2].link(true);
}

/// The second control-plane machine of the tutorials, behind a shared
/// endpoint: etcd on the first, `kedge init --control-plane-endpoint <VIP>
/// --upload-certs` there with the virtual IP on it (as keepalived would
/// hold it), then on the second `kedge join --control-plane
/// --certificate-key` as printed, and a third machine joined as a node
/// through the endpoint. The second serves the same cluster with its own
/// API server and a certificate for the endpoint; when the first's kedge is
/// killed and the virtual IP moves, its scheduler takes over and the node
/// keeps working through the endpoint.
#[test]
fn a_second_control_plane_joins_behind_the_control_plane_endpoint() {
    let mut ms = Machines::new(3);
    let a1 = format!("{}.1", ms.prefix);
    let a2 = format!("{}.2", ms.prefix);
    let vip = format!("{}.100", ms.prefix);
    ms.machines[0].ip(&["addr", "add", &format!("{vip}/32"), "dev", "eth0"]);
    // etcd on the first machine, as kubeadm runs it there.
    let etcd_url = format!("http://{a1}:2379");
    let etcd_data = ms.machines[0].dir.join("etcd");
    let etcd_data = format!("--data-dir={}", etcd_data.display());
    let listen = format!("--listen-client-urls={etcd_url}");
    let advertise = format!("--advertise-client-urls={etcd_url}");
    ms.machine(1).spawn(
        "etcd",
        "etcd",
        &[
            "--name=m1",
            &etcd_data,
            &listen,
            &advertise,
            "--listen-peer-urls=http://127.0.0.1:2380",
            "--initial-advertise-peer-urls=http://127.0.0.1:2380",
            "--initial-cluster=m1=http://127.0.0.1:2380",
        ],
        &[],
    );
    assert!(
        eventually(WAIT, || common::etcd::health(&format!("{a1}:2379"))),
        "etcd on m1 did not start"
    );
    let endpoint = format!("{vip}:6443");
    let init = ms.machine(1).init(
        &[
            "--control-plane-endpoint",
            &endpoint,
            "--upload-certs",
            "--etcd-servers",
            &etcd_url,
        ],
        &[],
    );
    let joins = ms.machines[0].join_commands(2);
    for join in &joins {
        assert!(
            join.starts_with(&format!("kedge join {endpoint} ")),
            "a join command does not name the endpoint: {join}"
        );
    }
    let control_plane_join = joins
        .iter()
        .find(|j| j.contains("--control-plane"))
        .unwrap();
    let node_join = joins
        .iter()
        .find(|j| !j.contains("--control-plane"))
        .unwrap();
    ms.machine(2)
        .join(control_plane_join, &["--etcd-servers", &etcd_url]);
    ms.machine(3).join(node_join, &[]);

    // The second control plane's own admin sees every node Ready.
    let m2 = &ms.machines[1];
    let all: BTreeSet<String> = ["m1", "m2", "m3"].map(String::from).into();
    assert!(
        eventually(WAIT, || ready_nodes(m2) == all),
        "not every node Ready through m2: {:?}\n{}\n{}",
        ready_nodes(m2),
        m2.log("join"),
        ms.machines[2].log("join")
    );
    // The joined node talks to the endpoint, whose address the first
    // control plane listens on.
    let kubelet_conf = ms.machines[2].dir.join("kedge/kubelet.conf");
    let kubelet_conf = std::fs::read_to_string(kubelet_conf).unwrap();
    assert!(
        kubelet_conf.contains(&format!("server: https://{endpoint}")),
        "the node's kubeconfig does not name the endpoint:\n{kubelet_conf}"
    );
    let before =
        common::lease_holder(|a| m2.kubectl_output(a), "kube-scheduler").unwrap_or_default();
    assert!(!before.is_empty());
    // Pods reach either API server through the `kubernetes` Service.
    let api_endpoints = |m: &Machine| -> BTreeSet<String> {
        let out = m.kubectl_output(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].addresses[*].ip}",
        ]);
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(String::from)
            .collect()
    };
    let both_servers: BTreeSet<String> = [a1.clone(), a2.clone()].into();
    assert!(
        eventually(WAIT, || api_endpoints(m2) == both_servers),
        "the kubernetes Service has {:?}",
        api_endpoints(m2)
    );

    // The first machine's kedge killed, and the virtual IP moved to the
    // second (the node's neighbour entry dropped, as the gratuitous ARP
    // of whatever moves it would).
    ms.machine(1).kill(init);
    ms.machines[0].ip(&["addr", "del", &format!("{vip}/32"), "dev", "eth0"]);
    ms.machines[1].ip(&["addr", "add", &format!("{vip}/32"), "dev", "eth0"]);
    ms.machines[2].ip(&["neigh", "flush", "to", &vip]);
    let m2 = &ms.machines[1];
    assert!(
        eventually(WAIT, || {
            let now = common::lease_holder(|a| m2.kubectl_output(a), "kube-scheduler")
                .unwrap_or_default();
            !now.is_empty() && (now != before || before.ends_with(&identity_suffix(m2)))
        }),
        "m2 did not take the scheduler's Lease"
    );
    // The second control plane serves the endpoint with a certificate
    // for it: the admin's kubectl through the virtual IP verifies it.
    let server = format!("https://{endpoint}");
    let version = m2.kubectl_output(&["--server", &server, "get", "--raw", "/version"]);
    assert!(
        eventually(WAIT, || m2
            .kubectl_output(&["--server", &server, "get", "--raw", "/version"])
            .status
            .success()),
        "m2 does not serve the endpoint with a certificate for it: {}",
        String::from_utf8_lossy(&version.stderr)
    );
    // A new pod is scheduled and runs on the joined node, whose kubelet
    // reaches the cluster through the endpoint, now the second's.
    let busybox = images::busybox();
    let pod = format!(
        r#"{{"apiVersion":"v1","kind":"Pod","metadata":{{"name":"after"}},"spec":{{"nodeSelector":{{"kubernetes.io/hostname":"m3"}},"containers":[{{"name":"c","image":"{busybox}","imagePullPolicy":"Never","command":["sleep","3600"]}}]}}}}"#
    );
    m2.apply("after.json", &pod);
    assert!(
        eventually(WAIT, || m2
            .kubectl(&["get", "pod", "after", "-o", "jsonpath={.status.phase}"])
            .trim()
            == "Running"),
        "a pod was not scheduled and run on the node after the first control plane was lost:\n{}",
        ms.machines[2].log("join")
    );
    let only_m2: BTreeSet<String> = [a2.clone()].into();
    assert!(
        eventually(WAIT, || api_endpoints(m2) == only_m2),
        "the lost API server stayed an endpoint: {:?}",
        api_endpoints(m2)
    );
}

/// The data-dir part of a machine's control-plane identity.
fn identity_suffix(m: &Machine) -> String {
    kedge_control::leaderelection::identity(&m.dir.join("home/.kedge"))
        .rsplit('_')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Machines on one link route each other's pod CIDRs directly
/// (`--pod-network-backend host-gw`): no tunnel device, a plain route via
/// the other machine's address, and pods reach each other with their own
/// addresses.
#[test]
fn host_gw_routes_pods_between_machines_on_one_link() {
    let mut ms = Machines::new(2);
    let a1 = format!("{}.1", ms.prefix);
    let host_gw = ["--pod-network-backend", "host-gw"];
    ms.machine(1).init(&host_gw, &[]);
    let join = ms.machines[0].join_commands(1).remove(0);
    ms.machine(2).join(&join, &host_gw);
    let m1 = &ms.machines[0];
    let both: BTreeSet<String> = ["m1", "m2"].map(String::from).into();
    assert!(eventually(WAIT, || ready_nodes(m1) == both));

    let echo = images::echo();
    let busybox = images::busybox();
    let manifest = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: server}}
spec:
  nodeName: m1
  containers:
  - {{name: echo, image: {echo}, imagePullPolicy: Never}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: m2
  containers:
  - {{name: c, image: {busybox}, imagePullPolicy: Never, command: [sleep, "3600"]}}
"#
    );
    m1.apply("pods.yaml", &manifest);
    let ip_of = |pod: &str| {
        m1.kubectl(&["get", "pod", pod, "-o", "jsonpath={.status.podIP}"])
            .trim()
            .to_string()
    };
    assert!(eventually(WAIT, || !ip_of("server").is_empty()
        && !ip_of("client").is_empty()));
    let (server, client) = (ip_of("server"), ip_of("client"));
    let mut answer = None;
    assert!(
        eventually(WAIT, || {
            answer = fetch(m1, "client", &format!("http://{server}:8080/"));
            answer.is_some()
        }),
        "the pod on m2 does not reach the pod on m1 at {server}"
    );
    let remote = field(&answer.unwrap(), "remote");
    assert_eq!(remote.rsplit_once(':').unwrap().0, client);

    // A plain route through the other machine, and no tunnel.
    let m2 = &ms.machines[1];
    let routes = std::process::Command::new("ip")
        .args(["-n", &m2.netns, "-4", "route", "show"])
        .output()
        .unwrap();
    let routes = String::from_utf8_lossy(&routes.stdout);
    let server_net = server.rsplit_once('.').unwrap().0;
    assert!(
        routes
            .lines()
            .any(|l| l.starts_with(&format!("{server_net}.0/24 via {a1} "))),
        "{routes}"
    );
    let tunnel = std::process::Command::new("ip")
        .args(["-n", &m2.netns, "link", "show", "kedge.1"])
        .output()
        .unwrap();
    assert!(
        !tunnel.status.success(),
        "a VXLAN device exists in host-gw mode"
    );
}

/// Two machines, the `default` namespace in the mesh: a client pod on m1
/// calls a server pod on m2 through its Service. The machines' link
/// carries the request only inside mutual TLS to the tunnel port (the
/// pod network's VXLAN packets, captured on m2's cable, never hold it in
/// plaintext), and m2's node proxy knew the caller by its SPIFFE ID.
#[test]
fn meshed_pods_on_two_machines_talk_in_mutual_tls_across_the_link() {
    let mut ms = Machines::new(2);
    ms.machine(1)
        .init(&["--cluster-cidr", "10.245.0.0/16"], &[]);
    let join = ms.machines[0].join_commands(1).remove(0);
    ms.machine(2).join(&join, &[]);
    let both: BTreeSet<String> = ["m1", "m2"].map(String::from).into();
    assert!(eventually(WAIT, || ready_nodes(&ms.machines[0]) == both));

    let (echo, busybox) = (images::echo(), images::busybox());
    let m1 = &ms.machines[0];
    m1.kubectl(&["label", "namespace", "default", "kedge.io/mesh=enabled"]);
    m1.kubectl(&["create", "serviceaccount", "client"]);
    m1.apply(
        "mesh.yaml",
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: web, labels: {{app: web}}}}
spec:
  nodeName: m2
  containers:
  - {{name: echo, image: {echo}, imagePullPolicy: Never}}
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: m1
  serviceAccountName: client
  containers:
  - {{name: c, image: {busybox}, imagePullPolicy: Never, command: [sleep, "3600"]}}
"#
        ),
    );
    let captured = |m: &Machine, log: &str, pod: &str| {
        m.log(log)
            .lines()
            .any(|l| l.contains("captured by the mesh") && l.contains(&format!("pod={pod} ")))
    };
    assert!(
        eventually(WAIT, || captured(&ms.machines[0], "init", "client")
            && captured(&ms.machines[1], "join", "web")),
        "both pods are captured by their nodes' proxies:\n{}\n{}",
        ms.machines[0].log("init"),
        ms.machines[1].log("join")
    );

    // Everything on m2's cable while the client calls.
    let dump = ms.machines[1].dir.join("link.pcap");
    let dump_arg = dump.display().to_string();
    let tcpdump = ms.machines[1].spawn(
        "tcpdump",
        "tcpdump",
        &[
            "-i",
            "eth0",
            "--immediate-mode",
            "-U",
            "-n",
            "-w",
            &dump_arg,
        ],
        &[],
    );
    assert!(eventually(Duration::from_secs(10), || ms.machines[1]
        .log("tcpdump")
        .contains("listening on")));
    let marker = format!("mesh-marker-{}", std::process::id());
    let m1 = &ms.machines[0];
    let mut answer = None;
    eventually(Duration::from_secs(60), || {
        answer = fetch(m1, "client", &format!("http://web/{marker}"));
        answer.is_some()
    });
    let answer = answer.expect("the client reached the server on the other machine");
    assert_eq!(field(&answer, "hostname"), "web", "{answer}");
    let client_ip = m1.kubectl(&["get", "pod", "client", "-o", "jsonpath={.status.podIP}"]);
    assert_eq!(
        field(&answer, "remote").rsplit_once(':').unwrap().0,
        client_ip,
        "the server saw the client's address"
    );
    assert!(answer.contains(&marker), "{answer}");
    std::thread::sleep(Duration::from_millis(500));
    ms.machines[1].kill(tcpdump);

    let raw = std::fs::read(&dump).unwrap();
    assert!(
        !raw.windows(marker.len()).any(|w| w == marker.as_bytes()),
        "the request never crossed the link in plaintext"
    );
    let decoded = std::process::Command::new("tcpdump")
        .args(["-n", "-T", "vxlan", "-r", &dump_arg, "udp", "port", "8472"])
        .output()
        .unwrap();
    let decoded = String::from_utf8_lossy(&decoded.stdout).to_string();
    assert!(
        decoded.contains(".15008"),
        "pod traffic crossed in the tunnel:\n{decoded}"
    );
    let log = ms.machines[1].log("join");
    assert!(
        log.lines().any(|l| l.contains("mesh connection accepted")
            && l.contains("caller=spiffe://cluster.local/ns/default/sa/client")),
        "{log}"
    );
}
