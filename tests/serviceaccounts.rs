//! In-cluster API access the Kubernetes way, end to end with `kedge up`:
//! every namespace gets the `default` ServiceAccount and the
//! `kube-root-ca.crt` ConfigMap, pods get a bound token, the CA and their
//! namespace at /var/run/secrets/kubernetes.io/serviceaccount and the
//! `KUBERNETES_SERVICE_*` variables, and the API server accepts the token
//! through the `kubernetes` Service's ClusterIP.

mod common;

use std::time::Duration;

use common::{eventually, images, Cluster};

const WAIT: Duration = Duration::from_secs(90);
const SA_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";

/// The first address of the cluster's Service range.
fn kubernetes_ip(c: &Cluster) -> String {
    let cidr = &c.node.as_ref().unwrap().service_cidr;
    let base = cidr.split('/').next().unwrap();
    format!("{}.1", base.rsplit_once('.').unwrap().0)
}

fn exec(c: &Cluster, pod: &str, cmd: &[&str]) -> String {
    let mut args = vec!["exec", pod, "--"];
    args.extend_from_slice(cmd);
    c.kubectl(&args)
}

/// kubectl against `server` with nothing but a bearer token and the CA:
/// an empty kubeconfig, so no admin credential can slip in.
fn kubectl_with_token(
    c: &Cluster,
    server: &str,
    token: &str,
    args: &[&str],
) -> std::process::Output {
    let empty = c.home.join("empty-kubeconfig");
    std::fs::write(&empty, "apiVersion: v1\nkind: Config\n").unwrap();
    let ca = c.data_dir.join("ca.crt");
    std::process::Command::new("kubectl")
        .env("KUBECONFIG", &empty)
        .env("HOME", &c.home)
        .arg(format!("--server={server}"))
        .arg(format!("--token={token}"))
        .arg(format!("--certificate-authority={}", ca.display()))
        .args(args)
        .output()
        .expect("running kubectl")
}

#[test]
fn pods_get_a_token_the_ca_and_the_kubernetes_service() {
    let busybox = images::busybox();
    let c = Cluster::up();
    let ip = kubernetes_ip(&c);

    // The controllers give `default` its ServiceAccount and root CA.
    assert!(
        eventually(WAIT, || c
            .kubectl_output(&["get", "serviceaccount", "default"])
            .status
            .success()),
        "no default ServiceAccount"
    );
    let ca_pem = std::fs::read_to_string(c.data_dir.join("ca.crt")).unwrap();
    assert!(eventually(WAIT, || {
        let out = c.kubectl_output(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ]);
        String::from_utf8_lossy(&out.stdout) == ca_pem
    }));

    // The `kubernetes` Service: the first address, 443 → the server's port
    // on an address pods reach (the node's address on the pod network).
    let svc = c.kubectl(&[
        "get",
        "service",
        "kubernetes",
        "-o",
        "jsonpath={.spec.clusterIP} {.spec.ports[0].name} {.spec.ports[0].port} {.spec.ports[0].targetPort}",
    ]);
    assert_eq!(svc, format!("{ip} https 443 {}", c.port()));
    let node_address = c.node.as_ref().unwrap().address();
    assert!(eventually(WAIT, || {
        let out = c.kubectl_output(&[
            "get",
            "endpointslice",
            "kubernetes",
            "-o",
            "jsonpath={.endpoints[0].addresses[0]} {.ports[0].port}",
        ]);
        String::from_utf8_lossy(&out.stdout) == format!("{node_address} {}", c.port())
    }));
    assert_eq!(
        c.kubectl(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}"
        ]),
        node_address
    );

    c.apply(&format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: svc-link}}
spec:
  ports: [{{name: http, port: 8080, protocol: TCP}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: reader}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {busybox}, command: ["sleep", "100000"]}}
---
apiVersion: v1
kind: Pod
metadata: {{name: no-token}}
spec:
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {busybox}, command: ["sleep", "100000"]}}
"#
    ));
    c.wait_ready(&["pod/reader", "pod/no-token"], WAIT);

    // Admission: the default ServiceAccount and the kube-api-access volume.
    let spec = c.kubectl(&[
        "get",
        "pod",
        "reader",
        "-o",
        "jsonpath={.spec.serviceAccountName} {.spec.volumes[0].name} {.spec.containers[0].volumeMounts[0].mountPath} {.spec.containers[0].volumeMounts[0].readOnly}",
    ]);
    let parts: Vec<&str> = spec.split(' ').collect();
    assert_eq!(parts[0], "default");
    assert!(parts[1].starts_with("kube-api-access-"), "{spec}");
    assert_eq!(parts[2..], [SA_DIR, "true"]);
    assert_eq!(
        c.kubectl(&["get", "pod", "no-token", "-o", "jsonpath={.spec.volumes}"]),
        ""
    );
    let ls = c.kubectl_output(&["exec", "no-token", "--", "ls", SA_DIR]);
    assert!(!ls.status.success(), "no-token has a token directory");

    // The files, as a pod reads them.
    let token = exec(&c, "reader", &["cat", &format!("{SA_DIR}/token")]);
    assert_eq!(token.split('.').count(), 3, "not a JWT: {token}");
    assert_eq!(
        exec(&c, "reader", &["cat", &format!("{SA_DIR}/ca.crt")]),
        ca_pem
    );
    assert_eq!(
        exec(&c, "reader", &["cat", &format!("{SA_DIR}/namespace")]),
        "default"
    );

    // The kubelet's variables for the `kubernetes` Service.
    let env = exec(&c, "reader", &["env"]);
    for want in [
        format!("KUBERNETES_SERVICE_HOST={ip}"),
        "KUBERNETES_SERVICE_PORT=443".to_string(),
        "KUBERNETES_SERVICE_PORT_HTTPS=443".to_string(),
        format!("KUBERNETES_PORT=tcp://{ip}:443"),
        format!("KUBERNETES_PORT_443_TCP=tcp://{ip}:443"),
        format!("KUBERNETES_PORT_443_TCP_ADDR={ip}"),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing in:\n{env}");
    }
    // Docker links variables of the namespace's Services, unless the pod
    // turns them off; the `kubernetes` Service's come regardless.
    let link_ip = c.kubectl(&[
        "get",
        "service",
        "svc-link",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    for want in [
        format!("SVC_LINK_SERVICE_HOST={link_ip}"),
        "SVC_LINK_SERVICE_PORT_HTTP=8080".to_string(),
        format!("SVC_LINK_PORT_8080_TCP=tcp://{link_ip}:8080"),
    ] {
        assert!(env.lines().any(|l| l == want), "{want} missing in:\n{env}");
    }
    let env = exec(&c, "no-token", &["env"]);
    assert!(!env.contains("SVC_LINK_"), "{env}");
    assert!(
        env.contains(&format!("KUBERNETES_SERVICE_HOST={ip}")),
        "{env}"
    );

    // The ClusterIP leads to the API server from inside the pod (busybox
    // has no TLS client: nc exits 0 only once the connection is made).
    let reach = c.kubectl_output(&[
        "exec",
        "reader",
        "--",
        "sh",
        "-c",
        "nc -w 3 $KUBERNETES_SERVICE_HOST $KUBERNETES_SERVICE_PORT </dev/null; echo exit=$?",
    ]);
    let out = String::from_utf8_lossy(&reach.stdout).to_string()
        + &String::from_utf8_lossy(&reach.stderr);
    assert!(
        out.contains("exit=0"),
        "cannot reach {ip}:443 from the pod: {out}"
    );

    // The token authenticates through the ClusterIP with the cluster CA,
    // and names the pod's ServiceAccount: RBAC gives it nothing until a
    // binding does.
    let server = format!("https://{ip}:443");
    let out = kubectl_with_token(&c, &server, &token, &["get", "pods"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(r#"User "system:serviceaccount:default:default" cannot list resource "pods""#),
        "{err}"
    );
    c.kubectl(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    let out = kubectl_with_token(&c, &server, &token, &["get", "pods", "-o", "name"]);
    assert!(
        out.status.success(),
        "the pod's token was refused: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("pod/reader"));
    let out = kubectl_with_token(&c, &server, "not-a-token", &["get", "pods"]);
    assert!(!out.status.success());

    // A deleted pod's token stops working (after the deletion leeway;
    // the pod is gone at once with a zero grace period).
    c.kubectl(&["delete", "pod", "reader", "--grace-period=0", "--force"]);
    assert!(eventually(WAIT, || !kubectl_with_token(
        &c,
        &c.url,
        &token,
        &["get", "pods"]
    )
    .status
    .success()));
}

#[test]
fn kubectl_create_token_and_an_in_cluster_client() {
    let c = Cluster::up();
    assert!(eventually(WAIT, || c
        .kubectl_output(&["get", "serviceaccount", "default"])
        .status
        .success()));

    // The namespace's ServiceAccounts may read it.
    c.kubectl(&[
        "create",
        "rolebinding",
        "serviceaccounts-view",
        "--clusterrole=view",
        "--group=system:serviceaccounts:default",
    ]);

    // `kubectl create token` (protobuf TokenRequest) and its options.
    let token = c.kubectl(&["create", "token", "default", "--duration=20m"]);
    let token = token.trim();
    let out = kubectl_with_token(&c, &c.url, token, &["get", "serviceaccounts", "-o", "name"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("serviceaccount/default"));
    let err = c.kubectl_fails(&["create", "token", "default", "--duration=5m"]);
    assert!(
        err.contains("spec.expirationSeconds") && err.contains("10 minutes"),
        "{err}"
    );
    let err = c.kubectl_fails(&["create", "token", "nobody"]);
    assert!(
        err.contains("serviceaccounts \"nobody\" not found"),
        "{err}"
    );
    // A token for another audience is not one for the API server.
    let other = c.kubectl(&["create", "token", "default", "--audience=vault"]);
    assert!(
        !kubectl_with_token(&c, &c.url, other.trim(), &["get", "pods"])
            .status
            .success()
    );

    // A ServiceAccount deleted and made again invalidates its old tokens;
    // the controller puts `default` back.
    c.kubectl(&["create", "serviceaccount", "robot"]);
    let robot = c.kubectl(&["create", "token", "robot"]);
    assert!(
        kubectl_with_token(&c, &c.url, robot.trim(), &["get", "pods"])
            .status
            .success()
    );
    c.kubectl(&["delete", "serviceaccount", "robot"]);
    c.kubectl(&["create", "serviceaccount", "robot"]);
    assert!(
        !kubectl_with_token(&c, &c.url, robot.trim(), &["get", "pods"])
            .status
            .success()
    );
    c.kubectl(&["delete", "serviceaccount", "default"]);
    assert!(eventually(WAIT, || c
        .kubectl_output(&["get", "serviceaccount", "default"])
        .status
        .success()));

    // A new namespace gets its ServiceAccount and CA too.
    c.kubectl(&["create", "namespace", "team"]);
    c.kubectl(&[
        "create",
        "rolebinding",
        "serviceaccounts-view",
        "--clusterrole=view",
        "--group=system:serviceaccounts:team",
        "-n",
        "team",
    ]);
    assert!(eventually(WAIT, || c
        .kubectl_output(&[
            "get",
            "-n",
            "team",
            "serviceaccount/default",
            "configmap/kube-root-ca.crt"
        ])
        .status
        .success()));

    // kubectl inside a pod with nothing but its in-cluster configuration
    // (KUBERNETES_SERVICE_HOST/PORT, the token and the CA).
    let Some(image) = images::kubectl() else {
        eprintln!("no static kubectl on this machine; skipping the in-cluster client");
        return;
    };
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: team}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {image}, command: ["sleep", "100000"]}}
"#
    ));
    c.wait_ready(&["-n", "team", "pod/client"], WAIT);
    let out = c.kubectl(&[
        "exec", "-n", "team", "client", "--", "kubectl", "get", "pods", "-o", "name",
    ]);
    assert_eq!(out.trim(), "pod/client");
    let who = c.kubectl(&[
        "exec",
        "-n",
        "team",
        "client",
        "--",
        "kubectl",
        "get",
        "serviceaccount",
        "default",
        "-o",
        "jsonpath={.metadata.namespace}",
    ]);
    assert_eq!(who, "team");
}
