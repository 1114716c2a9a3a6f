//! NetworkPolicy as the tutorials use it (Calico's examples), on real
//! Docker pods: default-deny ingress, an allow for `role=client`, egress
//! deny, and removal opening things again — by pod IP and by Service.

mod common;

use std::time::Duration;

use common::{eventually, images, Cluster};

const WAIT: Duration = Duration::from_secs(90);
/// How long a policy change may take to reach the data path.
const SETTLE: Duration = Duration::from_secs(20);

/// Whether `pod` gets an answer from `url` within 3 s (busybox wget; a
/// dropped connection attempt hangs until `timeout` ends it).
fn reaches(c: &Cluster, pod: &str, url: &str) -> bool {
    c.kubectl_output(&[
        "exec", "-n", "np", pod, "--", "timeout", "3", "wget", "-q", "-O", "-", url,
    ])
    .status
    .success()
}

/// Wait until `pod`'s reach of `url` is `want`, then check it stays so.
fn settles(c: &Cluster, pod: &str, url: &str, want: bool) -> bool {
    eventually(SETTLE, || reaches(c, pod, url) == want) && reaches(c, pod, url) == want
}

#[test]
fn network_policies_filter_pod_traffic_by_ip_and_by_service() {
    policies_filter(&[]);
}

/// The same with the kernel service proxy, whose DNAT puts Service
/// traffic on the forward path the policy table filters.
#[test]
fn network_policies_filter_pod_traffic_in_nftables_mode() {
    policies_filter(&["--proxy-mode", "nftables"]);
}

fn policies_filter(up_args: &[&str]) {
    let echo = images::echo();
    let busybox = images::busybox();
    let c = Cluster::up_with(up_args);
    c.kubectl(&["create", "namespace", "np"]);
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: server, namespace: np, labels: {{app: server}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: {echo}
    ports: [{{name: http, containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: server, namespace: np}}
spec:
  selector: {{app: server}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: np, labels: {{role: client}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{{name: c, image: {busybox}, command: [sleep, "3600"]}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: stranger, namespace: np}}
spec:
  terminationGracePeriodSeconds: 1
  containers: [{{name: c, image: {busybox}, command: [sleep, "3600"]}}]
"#
    ));
    c.wait_ready(
        &["-n", "np", "pod/server", "pod/client", "pod/stranger"],
        WAIT,
    );
    let ip = c.kubectl(&[
        "get",
        "pod",
        "-n",
        "np",
        "server",
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    let cluster_ip = c.kubectl(&[
        "get",
        "svc",
        "-n",
        "np",
        "server",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let by_ip = format!("http://{ip}:8080/");
    let by_service = format!("http://{cluster_ip}/");

    // No policy: open.
    for pod in ["client", "stranger"] {
        assert!(eventually(WAIT, || reaches(&c, pod, &by_ip)), "{pod} by IP");
        assert!(
            eventually(WAIT, || reaches(&c, pod, &by_service)),
            "{pod} by Service"
        );
    }

    // Default deny for ingress in the namespace.
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: np}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"#,
    );
    let listed = c.kubectl(&["get", "netpol", "-n", "np"]);
    assert!(listed.contains("default-deny-ingress"), "{listed}");
    for pod in ["client", "stranger"] {
        assert!(
            settles(&c, pod, &by_ip, false),
            "{pod} by IP is still let in"
        );
        assert!(
            settles(&c, pod, &by_service, false),
            "{pod} by Service is still let in"
        );
    }

    // Clients may reach the server's named port; others still may not.
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-clients, namespace: np}
spec:
  podSelector: {matchLabels: {app: server}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: client}}}]
    ports: [{port: http}]
"#,
    );
    assert!(settles(&c, "client", &by_ip, true), "client by IP");
    assert!(
        settles(&c, "client", &by_service, true),
        "client by Service"
    );
    assert!(settles(&c, "stranger", &by_ip, false), "stranger by IP");
    assert!(
        settles(&c, "stranger", &by_service, false),
        "stranger by Service"
    );

    // Egress deny for the client closes it from its side too.
    c.apply(
        r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: client-egress, namespace: np}
spec:
  podSelector: {matchLabels: {role: client}}
  policyTypes: [Egress]
"#,
    );
    assert!(settles(&c, "client", &by_ip, false), "client egress by IP");
    assert!(
        settles(&c, "client", &by_service, false),
        "client egress by Service"
    );
    c.kubectl(&["delete", "netpol", "-n", "np", "client-egress"]);
    assert!(
        settles(&c, "client", &by_ip, true),
        "client after egress removed"
    );

    // Removing the policies opens the server to everyone again.
    c.kubectl(&["delete", "netpol", "-n", "np", "--all"]);
    assert!(
        settles(&c, "stranger", &by_ip, true),
        "stranger after removal"
    );
    assert!(
        settles(&c, "stranger", &by_service, true),
        "stranger by Service after removal"
    );
}
