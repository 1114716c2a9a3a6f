//! The mesh's workload identities: a node asks the Certificates API for the
//! certificate of a ServiceAccount whose pod it runs, as the node proxy
//! will, and gets a short-lived SPIFFE certificate from the mesh CA; a node
//! that runs no such pod is refused, and the certificate opens nothing in
//! the API.

mod common;

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{eventually, images, kubectl_with, ok, Cluster};

const SIGNER: &str = "kedge.io/mesh-workload";

/// A kubeconfig of `system:node:<name>`, as `kedge join` gives a node.
fn node_kubeconfig(c: &Cluster, name: &str) -> PathBuf {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(["kubeconfig", "user", "--client-name"])
        .arg(format!("system:node:{name}"))
        .args(["--org", "system:nodes", "--data-dir"])
        .arg(&c.data_dir)
        .output()
        .unwrap();
    let path = c.home.join(format!("{name}.kubeconfig"));
    std::fs::write(&path, ok(&out)).unwrap();
    path
}

/// A certificate request for `uri` with a new P-256 key, no subject (as a
/// mesh's workload requests are); the request and the key (PEM).
fn workload_request(uri: &str) -> (String, String) {
    use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    let csr = params.serialize_request(&key).unwrap();
    (csr.pem().unwrap(), key.serialize_pem())
}

/// Create a CertificateSigningRequest `name` to the mesh signer as the
/// user of `kubeconfig`.
fn request(c: &Cluster, kubeconfig: &Path, name: &str, uri: &str, seconds: u32) -> String {
    let (csr, key) = workload_request(uri);
    let encoded = base64(csr.as_bytes());
    let manifest = format!(
        "apiVersion: certificates.k8s.io/v1\nkind: CertificateSigningRequest\nmetadata:\n  name: {name}\nspec:\n  signerName: {SIGNER}\n  expirationSeconds: {seconds}\n  usages: [digital signature, key encipherment, client auth, server auth]\n  request: {encoded}\n"
    );
    ok(&c.kubectl_stdin(kubeconfig, &["create", "-f", "-"], &manifest));
    key
}

fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The CONDITION column of `kubectl get csr <name>` once it is decided.
fn decided(c: &Cluster, name: &str) -> String {
    let mut last = String::new();
    let done = common::eventually(Duration::from_secs(30), || {
        last = c.kubectl(&["get", "csr", name, "--no-headers"]);
        last.contains("Approved,Issued") || last.contains("Denied") || last.contains("Failed")
    });
    assert!(done, "the request {name} was not decided: {last}");
    last
}

fn condition(c: &Cluster, name: &str, field: &str) -> String {
    c.kubectl(&[
        "get",
        "csr",
        name,
        "-o",
        &format!("jsonpath={{.status.conditions[0].{field}}}"),
    ])
}

#[test]
fn a_node_gets_the_identities_of_its_own_pods_only() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "team-a"]);
    c.kubectl(&["create", "serviceaccount", "client", "-n", "team-a"]);
    // A pod of `client` bound to n1 (no kubelet needed: binding is what
    // makes it n1's).
    c.apply(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: client\n  namespace: team-a\nspec:\n  nodeName: n1\n  serviceAccountName: client\n  containers:\n  - name: c\n    image: busybox\n",
    );
    let n1 = node_kubeconfig(&c, "n1");
    let n2 = node_kubeconfig(&c, "n2");
    let id = "spiffe://cluster.local/ns/team-a/sa/client";

    // n1 runs the pod: approved and issued, for ten minutes.
    let key = request(&c, &n1, "n1-client", id, 600);
    let row = decided(&c, "n1-client");
    assert!(row.contains("Approved,Issued"), "{row}");
    assert!(
        row.contains(SIGNER) && row.contains("system:node:n1"),
        "{row}"
    );
    let encoded = c.kubectl(&[
        "get",
        "csr",
        "n1-client",
        "-o",
        "jsonpath={.status.certificate}",
    ]);
    let pem = decode_base64(encoded.trim());
    let (_, block) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = block.parse_x509().unwrap();
    let issuer = cert.issuer().to_string();
    assert!(
        issuer.contains("kedge-mesh-ca"),
        "issued by the mesh CA: {issuer}"
    );
    assert!(
        cert.subject().as_raw().len() <= 2,
        "no subject: {}",
        cert.subject()
    );
    let sans = cert.subject_alternative_name().unwrap().unwrap().value;
    let uris: Vec<String> = sans.general_names.iter().map(|n| format!("{n}")).collect();
    assert_eq!(uris, [format!("URI({id})")]);
    let eku = cert.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && eku.server_auth);
    let v = cert.validity();
    let lifetime = v.not_after.timestamp() - v.not_before.timestamp();
    assert!(
        (600..=600 + 300).contains(&lifetime),
        "ten minutes, backdated a little: {lifetime} s"
    );

    // The workload certificate is no way into the API: its CA is not the
    // cluster's.
    let workload = c.kubeconfig_for(
        "workload",
        &format!(
            "\n    client-certificate-data: {}\n    client-key-data: {}",
            base64(&pem),
            base64(key.as_bytes())
        ),
    );
    let refused = kubectl_with(&c, &workload, &["get", "pods", "-n", "team-a"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("Unauthorized") || stderr.contains("certificate"),
        "{stderr}"
    );

    // n2 runs no pod of `client`: denied, saying why.
    request(&c, &n2, "n2-client", id, 600);
    let row = decided(&c, "n2-client");
    assert!(row.contains("Denied"), "{row}");
    assert_eq!(condition(&c, "n2-client", "reason"), "NoWorkloadOnNode");
    let message = condition(&c, "n2-client", "message");
    assert!(
        message.contains("node n2 runs no pod of ServiceAccount team-a/client"),
        "{message}"
    );

    // Another trust domain, or a name that is no workload's: denied.
    request(
        &c,
        &n1,
        "n1-other-domain",
        "spiffe://elsewhere.example/ns/team-a/sa/client",
        600,
    );
    assert!(decided(&c, "n1-other-domain").contains("Denied"));
    assert_eq!(
        condition(&c, "n1-other-domain", "reason"),
        "InvalidWorkloadRequest"
    );

    // A request by someone who is not a node is left to an administrator.
    request(&c, &c.kubeconfig(), "admin-client", id, 600);
    request(&c, &n1, "n1-again", id, 3600);
    assert!(decided(&c, "n1-again").contains("Approved,Issued"));
    let row = c.kubectl(&["get", "csr", "admin-client", "--no-headers"]);
    assert!(row.contains("Pending"), "{row}");
    // ... who may approve it; the mesh CA then signs it.
    c.kubectl(&["certificate", "approve", "admin-client"]);
    assert!(decided(&c, "admin-client").contains("Approved,Issued"));

    // The trust bundle: the mesh CA, published by the API server where
    // node proxies (and nothing else of theirs) may read it.
    let bundle = c.kubectl(&[
        "get",
        "configmap",
        "kedge-mesh-ca",
        "-n",
        "kube-system",
        "-o",
        "jsonpath={.data.ca\\.crt}",
    ]);
    let mesh_ca = std::fs::read_to_string(c.data_dir.join("mesh-ca.crt")).unwrap();
    assert_eq!(bundle.trim(), mesh_ca.trim());
    let cluster_ca = std::fs::read_to_string(c.data_dir.join("ca.crt")).unwrap();
    assert_ne!(mesh_ca, cluster_ca, "the mesh CA is not the cluster CA");
    c.kubectl(&[
        "get",
        "configmap",
        "kedge-mesh-ca",
        "-n",
        "kube-system",
        "--as=system:kube-proxy",
    ]);
    let other = c.kubectl_fails(&[
        "get",
        "configmap",
        "kubeadm-config",
        "-n",
        "kube-system",
        "--as=system:kube-proxy",
    ]);
    assert!(other.contains("forbidden"), "{other}");

    // Once the pod is gone, n1 no longer gets the identity.
    c.kubectl(&[
        "delete",
        "pod",
        "client",
        "-n",
        "team-a",
        "--grace-period=0",
        "--force",
    ]);
    request(&c, &n1, "n1-after", id, 600);
    assert!(decided(&c, "n1-after").contains("Denied"));
}

/// A ServiceAccount (a process that is its own workload, as the ingress
/// controller is) gets its own identity from the signer, and only its own.
#[test]
fn a_service_account_gets_its_own_identity_only() {
    let c = Cluster::start();
    c.kubectl(&["create", "namespace", "edge"]);
    c.kubectl(&["create", "serviceaccount", "gateway", "-n", "edge"]);
    c.kubectl(&[
        "create",
        "clusterrole",
        "csr-requester",
        "--verb=create,get",
        "--resource=certificatesigningrequests.certificates.k8s.io",
    ]);
    c.kubectl(&[
        "create",
        "clusterrolebinding",
        "gateway-csr",
        "--clusterrole=csr-requester",
        "--serviceaccount=edge:gateway",
    ]);
    let token = c.kubectl(&["create", "token", "gateway", "-n", "edge"]);
    let gateway = c.kubeconfig_for("gateway", &format!("\n    token: {}", token.trim()));

    request(
        &c,
        &gateway,
        "gateway-own",
        "spiffe://cluster.local/ns/edge/sa/gateway",
        600,
    );
    let row = decided(&c, "gateway-own");
    assert!(row.contains("Approved,Issued"), "{row}");
    assert!(row.contains("system:serviceaccount:edge:gateway"), "{row}");

    request(
        &c,
        &gateway,
        "gateway-other",
        "spiffe://cluster.local/ns/edge/sa/default",
        600,
    );
    assert!(decided(&c, "gateway-other").contains("Denied"));
    assert_eq!(condition(&c, "gateway-other", "reason"), "NotOwnIdentity");
    let message = condition(&c, "gateway-other", "message");
    assert!(
        message.contains("may ask for its own identity only"),
        "{message}"
    );
}

fn decode_base64(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

fn metrics(addr: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text
}

/// `kedge up` with default flags: the node proxy asks for the identity of
/// each ServiceAccount with a meshed pod on the node, and only those.
#[test]
fn the_node_proxy_holds_the_identities_of_its_meshed_pods() {
    let busybox = images::busybox();
    let c = Cluster::up();
    c.kubectl(&["create", "namespace", "shop"]);
    c.kubectl(&["label", "namespace", "shop", "kedge.io/mesh=enabled"]);
    c.kubectl(&["create", "namespace", "plain"]);
    for namespace in ["shop", "plain"] {
        c.kubectl(&["create", "serviceaccount", "web", "-n", namespace]);
        c.apply(&format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: {namespace}\nspec:\n  serviceAccountName: web\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: web\n    image: {busybox}\n    imagePullPolicy: Never\n    command: [sleep, '100000']\n"
        ));
    }
    c.wait_ready(&["pod", "web", "-n", "shop"], Duration::from_secs(120));
    let metrics_addr = c.arg_after("--metrics-addr").unwrap();
    let held =
        r#"kedge_mesh_workload_certificate_expiry_seconds{namespace="shop",service_account="web"}"#;
    let mut text = String::new();
    assert!(
        eventually(Duration::from_secs(60), || {
            text = metrics(&metrics_addr);
            text.contains(held) && text.contains("kedge_mesh_trust_bundle_certificates 1")
        }),
        "the node holds shop/web's certificate and the mesh's trust bundle:\n{text}"
    );
    assert!(!text.contains(r#"namespace="plain""#), "{text}");
    // The request was the node's own, approved because its pod is there;
    // nothing was asked for the pod outside the mesh.
    let csrs = c.kubectl(&["get", "csr", "--no-headers"]);
    let node = c.kubectl(&["get", "nodes", "-o", "jsonpath={.items[0].metadata.name}"]);
    let mesh: Vec<&str> = csrs.lines().filter(|l| l.contains(SIGNER)).collect();
    assert_eq!(mesh.len(), 1, "{csrs}");
    assert!(
        mesh[0].contains(&format!("system:node:{node}")) && mesh[0].contains("Approved,Issued"),
        "{csrs}"
    );
    // Its lifetime is a day, renewed half way.
    let expires: i64 = text
        .lines()
        .find(|l| l.starts_with(held))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(
        (23 * 3600..=24 * 3600 + 60).contains(&(expires - now)),
        "{expires} vs {now}"
    );

    // The pod goes: so does its identity.
    c.kubectl(&["delete", "pod", "web", "-n", "shop", "--wait=true"]);
    assert!(
        eventually(Duration::from_secs(60), || {
            text = metrics(&metrics_addr);
            !text.contains(held)
        }),
        "the certificate is dropped with the last pod:\n{text}"
    );
}

/// What `pod` (in `namespace`) gets from `url`, if anything within 5 s.
fn fetch(c: &Cluster, namespace: &str, pod: &str, url: &str) -> Option<String> {
    let out = c.kubectl_output(&[
        "exec", "-n", namespace, pod, "--", "timeout", "5", "wget", "-q", "-O", "-", url,
    ]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).to_string())
}

/// `kedge up` with default flags, two meshed pods and one outside: the
/// client's request to the server's Service crosses the pod network only
/// as mutual TLS to the tunnel port, the server's node proxy knows the
/// client by its SPIFFE ID, the server sees the client's address, the
/// connection is counted per workload pair; a pod outside the mesh gets
/// through in plaintext while the namespace is PERMISSIVE, and is refused
/// once it is STRICT (while the kubelet's probes pass); an authorization
/// policy refuses one ServiceAccount and not the others.
#[test]
fn meshed_pods_talk_in_mutual_tls_under_strict_mode_and_policies() {
    let (echo, busybox) = (images::echo(), images::busybox());
    let c = Cluster::up_with_env(&[], &[("RUST_LOG", "warn,kedge_proxy::mesh=info")]);
    c.kubectl(&["create", "namespace", "shop"]);
    c.kubectl(&["label", "namespace", "shop", "kedge.io/mesh=enabled"]);
    c.kubectl(&["create", "namespace", "outside"]);
    for account in ["web", "client"] {
        c.kubectl(&["create", "serviceaccount", account, "-n", "shop"]);
    }
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: shop, labels: {{app: web}}}}
spec:
  serviceAccountName: web
  terminationGracePeriodSeconds: 1
  containers:
  - name: echo
    image: {echo}
    imagePullPolicy: Never
    ports: [{{containerPort: 8080}}]
    readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: 8080}}]
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: shop}}
spec:
  serviceAccountName: client
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {busybox}, imagePullPolicy: Never, command: [sleep, '100000']}}
---
apiVersion: v1
kind: Pod
metadata: {{name: stranger, namespace: outside}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {busybox}, imagePullPolicy: Never, command: [sleep, '100000']}}
"#
    ));
    for (namespace, pod) in [("shop", "web"), ("shop", "client"), ("outside", "stranger")] {
        c.wait_ready(&["pod", pod, "-n", namespace], Duration::from_secs(120));
    }
    assert!(
        eventually(Duration::from_secs(60), || {
            let log = c.log();
            ["pod=web", "pod=client"].iter().all(|pod| {
                log.lines()
                    .any(|l| l.contains("captured by the mesh") && l.contains(pod))
            })
        }),
        "both meshed pods are captured:\n{}",
        c.log()
    );

    // The request, with a marker in its path, while everything the client
    // pod sends and receives on the node's links is captured.
    let marker = format!("mesh-marker-{}", std::process::id());
    let pod_ip = |namespace: &str, pod: &str| {
        c.kubectl(&[
            "get",
            "pod",
            pod,
            "-n",
            namespace,
            "-o",
            "jsonpath={.status.podIP}",
        ])
    };
    let client_ip = pod_ip("shop", "client");
    let dump = tempfile::NamedTempFile::new().unwrap();
    let mut tcpdump = Command::new("tcpdump")
        .args(["-i", "any", "--immediate-mode", "-U", "-n", "-w"])
        .arg(dump.path())
        .args(["tcp", "and", "host", &client_ip])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("tcpdump");
    // It says so once it listens.
    let mut said = std::io::BufReader::new(tcpdump.stderr.take().unwrap()).lines();
    assert!(said.any(|l| l.is_ok_and(|l| l.contains("listening on"))));
    std::thread::spawn(move || for _ in said {});
    let mut answer = None;
    eventually(Duration::from_secs(30), || {
        answer = fetch(&c, "shop", "client", &format!("http://web.shop/{marker}"));
        answer.is_some()
    });
    std::thread::sleep(Duration::from_millis(500));
    let _ = Command::new("kill")
        .args(["-INT", &tcpdump.id().to_string()])
        .status();
    let _ = tcpdump.wait();
    let answer = answer.expect("the client reached the server through its Service");
    assert!(
        answer.contains(&marker),
        "the server saw the request: {answer}"
    );
    let captured = std::fs::read(dump.path()).unwrap();
    assert!(
        !captured
            .windows(marker.len())
            .any(|w| w == marker.as_bytes()),
        "the request never crossed the pod network in plaintext"
    );
    let read = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(dump.path())
        .output()
        .unwrap();
    let packets = String::from_utf8_lossy(&read.stdout).to_string();
    eprintln!("client {client_ip}\n{packets}");
    assert!(
        packets.contains(".15008"),
        "through the tunnel port:\n{packets}"
    );
    assert!(
        !packets
            .lines()
            .any(|l| l.contains(".8080:") || l.contains(".8080 ")),
        "nothing went to the application's port over the pod network:\n{packets}"
    );

    // The server's proxy knew the client by its identity, and counted it.
    let log = c.log();
    assert!(
        log.lines().any(|l| l.contains("mesh connection accepted")
            && l.contains("spiffe://cluster.local/ns/shop/sa/client")),
        "{log}"
    );
    // The Service port declares no protocol; the request was seen to be
    // HTTP: counted as a request by the client's side, as a mutual-TLS
    // connection by the server's.
    let metrics_addr = c.arg_after("--metrics-addr").unwrap();
    let text = metrics(&metrics_addr);
    assert!(
        text.lines()
            .any(|l| l.starts_with("kedge_mesh_requests_total{")
                && l.contains(r#"source_workload="shop/client""#)
                && l.contains(r#"destination_workload="shop/web""#)
                && l.contains(r#"response_code="200""#)),
        "{text}"
    );
    assert!(
        text.lines().any(
            |l| l.starts_with("kedge_mesh_tcp_connections_opened_total{")
                && l.contains(r#"reporter="destination""#)
                && l.contains(r#"source_workload="shop/client""#)
                && l.contains(r#"destination_workload="shop/web""#)
                && l.contains(r#"connection_security_policy="mutual_tls""#)
        ),
        "{text}"
    );

    // Outside the mesh: plaintext to the pod passes while PERMISSIVE...
    let web_ip = pod_ip("shop", "web");
    let direct = format!("http://{web_ip}:8080/plain");
    let service = "http://web.shop/plain";
    assert!(fetch(&c, "outside", "stranger", &direct).is_some());
    assert!(fetch(&c, "outside", "stranger", service).is_some());
    // ... and is refused once the namespace is STRICT; the meshed client
    // still gets through, and the kubelet's probes still pass.
    c.kubectl(&["label", "namespace", "shop", "kedge.io/mesh-mtls=strict"]);
    assert!(
        eventually(Duration::from_secs(20), || fetch(
            &c, "outside", "stranger", &direct
        )
        .is_none()),
        "a STRICT pod refuses plaintext:\n{}\n{}",
        metrics(&metrics_addr),
        c.log()
    );
    assert!(
        fetch(&c, "outside", "stranger", service).is_none(),
        "nor through its Service (the node's service proxy is outside the mesh)"
    );
    assert!(fetch(&c, "shop", "client", "http://web.shop/again").is_some());
    assert!(c
        .log()
        .lines()
        .any(|l| l.contains("plaintext refused") && l.contains("pod=web")));
    // Three failed probes a second apart would have made it unready.
    std::thread::sleep(Duration::from_secs(5));
    let ready = c.kubectl(&[
        "get",
        "pod",
        "web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
    ]);
    assert_eq!(
        ready, "True",
        "probes from the node are not plaintext from a stranger"
    );
}

/// Namespace `shop` in the mesh, with `manifest` and the pod `load` (the
/// netbench image) applied there.
fn meshed_shop_with_load(c: &Cluster, manifest: &str) {
    c.kubectl(&["create", "namespace", "shop"]);
    c.kubectl(&["label", "namespace", "shop", "kedge.io/mesh=enabled"]);
    let netbench = images::netbench();
    c.apply(&format!(
        "{manifest}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: load, namespace: shop}}\n\
         spec:\n  terminationGracePeriodSeconds: 1\n  containers:\n  \
         - {{name: load, image: {netbench}, imagePullPolicy: Never}}\n"
    ));
    c.wait_ready(&["pod", "load", "-n", "shop"], Duration::from_secs(120));
}

/// Namespace `shop` in the mesh with the pod `load`, three echo pods of
/// Deployment `api` behind Service `api` with the port `port` (YAML, to
/// 8080) and `extra` applied; once the rollout is done, the Service's
/// ClusterIP.
fn meshed_api(c: &Cluster, port: &str, extra: &str) -> String {
    let echo = images::echo();
    meshed_shop_with_load(
        c,
        &format!(
            r#"
apiVersion: apps/v1
kind: Deployment
metadata: {{name: api, namespace: shop}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: api}}}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: {echo}
        imagePullPolicy: Never
        readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: shop}}
spec:
  selector: {{app: api}}
  ports: [{port}]
{extra}"#
        ),
    );
    c.kubectl(&[
        "rollout",
        "status",
        "deployment/api",
        "-n",
        "shop",
        "--timeout=120s",
    ]);
    c.kubectl(&[
        "get",
        "service",
        "api",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ])
}

/// Answers per (status, echo server hostname) from `netbench http`, and
/// the connections it opened.
fn http_load(c: &Cluster, target: &str, count: usize) -> (BTreeMap<(u16, String), usize>, usize) {
    let (answers, connections, _) = load(c, &["http", target, &count.to_string()]);
    (answers, connections)
}

/// What `netbench <args>` run in pod `load` reports: answers per (status,
/// echo server hostname), connections opened and requests failed.
fn load(c: &Cluster, args: &[&str]) -> (BTreeMap<(u16, String), usize>, usize, usize) {
    let mut command = vec!["exec", "-n", "shop", "load", "--", "/netbench"];
    command.extend(args);
    let out = c.kubectl(&command);
    let mut answers = BTreeMap::new();
    let (mut connections, mut failures) = (0, 0);
    for line in out.lines() {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap_or_default()
                .to_string()
        };
        if line.starts_with("answer ") {
            answers.insert(
                (field("status").parse().unwrap(), field("hostname")),
                field("count").parse().unwrap(),
            );
        } else if line.starts_with("http ") || line.starts_with("h2 ") {
            connections = field("connections").parse().unwrap();
            failures = field("failures").parse().unwrap();
        }
    }
    (answers, connections, failures)
}

/// The sum of the series of `metric` whose labels contain all of `labels`.
fn sum_of(text: &str, metric: &str, labels: &[&str]) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(&format!("{metric}{{")))
        .filter(|l| labels.iter().all(|label| l.contains(label)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// `kedge up` with default flags, a meshed namespace and a Service port
/// named `http` over three echo pods: the requests of one kept-alive
/// connection spread over all three (the node proxy balances requests,
/// not connections), and are counted per answering workload; with a pod
/// deleted in the middle of a load, retries leave no request failed.
#[test]
fn http_requests_of_one_connection_spread_over_pods_and_survive_one_going_away() {
    let c = Cluster::up();
    let cluster_ip = meshed_api(&c, "{name: http, port: 80, targetPort: 8080}", "");
    let target = format!("{cluster_ip}:80");
    // Once the three endpoints are in and every pod is captured, one
    // connection's 90 requests reach all three.
    let mut last = (BTreeMap::new(), 0);
    let spread = eventually(Duration::from_secs(60), || {
        last = http_load(&c, &target, 90);
        last.0.len() == 3 && last.0.keys().all(|(status, _)| *status == 200)
    });
    let (answers, connections) = last;
    assert!(spread, "{answers:?}");
    assert_eq!(connections, 1, "one connection: {answers:?}");
    assert!(answers.values().all(|n| *n >= 10), "{answers:?}");
    let metrics_addr = c.arg_after("--metrics-addr").unwrap();
    let text = metrics(&metrics_addr);
    let counted: u64 = text
        .lines()
        .filter(|l| {
            l.starts_with("kedge_mesh_requests_total{")
                && l.contains(r#"source_workload="shop/default""#)
                && l.contains(r#"destination_service="shop/api""#)
                && l.contains(r#"destination_workload="shop/default""#)
                && l.contains(r#"response_code="200""#)
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum();
    assert!(
        counted >= 90,
        "the requests were counted: {counted}\n{text}"
    );
    assert!(text.contains(
        r#"kedge_mesh_request_duration_seconds_count{source_workload="shop/default",destination_service="shop/api"}"#
    ));
    // The same, as `kedge mesh top` shows it.
    let out = Command::new(env!("CARGO_BIN_EXE_kedge"))
        .args(["mesh", "top", "--metrics-addr", &metrics_addr])
        .output()
        .unwrap();
    let top = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        top.starts_with("SOURCE"),
        "{top}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        top.lines().any(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            cells.len() == 7
                && cells[..2] == ["shop/default", "shop/api"]
                && cells[2].parse::<u64>().is_ok_and(|n| n >= 90)
                && cells[3] == "100.00%"
        }),
        "{top}"
    );

    // A pod deleted while 3,000 requests run: none fails.
    let victim = c.kubectl(&[
        "get",
        "pods",
        "-n",
        "shop",
        "-l",
        "app=api",
        "-o",
        "jsonpath={.items[0].metadata.name}",
    ]);
    let load = {
        let kubeconfig = c.kubeconfig();
        let home = c.home.clone();
        let target = target.clone();
        std::thread::spawn(move || {
            Command::new("kubectl")
                .env("HOME", home)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args([
                    "exec",
                    "-n",
                    "shop",
                    "load",
                    "--",
                    "/netbench",
                    "http",
                    &target,
                    "3000",
                ])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(800));
    c.kubectl(&[
        "delete",
        "pod",
        &victim,
        "-n",
        "shop",
        "--grace-period=0",
        "--wait=false",
    ]);
    let out = load.join().unwrap();
    let out = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.lines()
            .filter(|l| l.starts_with("answer "))
            .all(|l| l.contains("status=200")),
        "every request answered 200:\n{out}"
    );
    assert!(out.contains("failures=0"), "{out}");
    let answered: usize = out
        .lines()
        .filter_map(|l| l.split("count=").nth(1)?.parse::<usize>().ok())
        .sum();
    assert_eq!(answered, 3000, "{out}");
}

/// `kedge up` with default flags and a Service port of
/// `appProtocol: kubernetes.io/h2c` over three echo pods, called the way
/// gRPC clients call, over one HTTP/2 connection with requests in flight
/// together: the requests spread over all three pods, and the node proxy's
/// request count and latency histogram for the pair grow by exactly the
/// requests sent. A pod that answers every request with 503 while it stays
/// ready is ejected: its failures are retried on the others, so the client
/// sees none, and after the ejection it gets no more requests.
#[test]
fn http2_requests_of_one_connection_spread_over_pods_and_a_failing_pod_is_ejected() {
    let c = Cluster::up();
    let cluster_ip = meshed_api(
        &c,
        "{name: rpc, port: 80, targetPort: 8080, appProtocol: kubernetes.io/h2c}",
        "",
    );
    let target = format!("{cluster_ip}:80");
    let mut last = (BTreeMap::new(), 0, 0);
    let spread = eventually(Duration::from_secs(60), || {
        last = load(&c, &["h2", &target, "90"]);
        last.0.len() == 3 && last.0.keys().all(|(status, _)| *status == 200)
    });
    let (answers, connections, failures) = last;
    assert!(spread, "{answers:?}");
    assert_eq!((connections, failures), (1, 0), "{answers:?}");
    // The least busy of two takes each request: a slower pod gets fewer,
    // none is left out.
    assert!(answers.values().all(|n| *n >= 3), "{answers:?}");

    // The metrics count what was sent: 300 requests, 300 more of each.
    let metrics_addr = c.arg_after("--metrics-addr").unwrap();
    let pair = [
        r#"source_workload="shop/default""#,
        r#"destination_service="shop/api""#,
    ];
    let counts = |text: &str| {
        let ok: Vec<&str> = pair
            .iter()
            .copied()
            .chain([r#"response_code="200""#])
            .collect();
        (
            sum_of(text, "kedge_mesh_requests_total", &ok),
            sum_of(text, "kedge_mesh_request_duration_seconds_count", &pair),
        )
    };
    let before = counts(&metrics(&metrics_addr));
    let (answers, _, failures) = load(&c, &["h2", &target, "300"]);
    assert_eq!(failures, 0, "{answers:?}");
    assert_eq!(answers.values().sum::<usize>(), 300, "{answers:?}");
    let after = counts(&metrics(&metrics_addr));
    assert_eq!(
        (after.0 - before.0, after.1 - before.1),
        (300, 300),
        "requests and latencies counted once each"
    );

    // One pod fails every request but stays ready.
    let pods = c.kubectl(&[
        "get",
        "pods",
        "-n",
        "shop",
        "-l",
        "app=api",
        "-o",
        r#"jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{"\n"}{end}"#,
    ]);
    let (failing, failing_ip) = pods.lines().next().unwrap().split_once(' ').unwrap();
    let (set, _, _) = load(
        &c,
        &["http", &format!("{failing_ip}:8080"), "1", "/set-failing"],
    );
    assert_eq!(set.keys().next().map(|(s, _)| *s), Some(200), "{set:?}");
    let ejections = |text: &str| sum_of(text, "kedge_mesh_endpoint_ejections_total", &pair);
    let ejected_before = ejections(&metrics(&metrics_addr));
    let (answers, _, failures) = load(&c, &["h2", &target, "300"]);
    assert_eq!(failures, 0, "{answers:?}");
    assert!(
        answers.keys().all(|(status, _)| *status == 200),
        "retries hid the failing pod's 503s: {answers:?}"
    );
    assert_eq!(answers.values().sum::<usize>(), 300, "{answers:?}");
    assert!(
        !answers.keys().any(|(_, host)| host == failing),
        "{failing} answered nothing: {answers:?}"
    );
    let text = metrics(&metrics_addr);
    assert!(
        ejections(&text) > ejected_before,
        "the failing pod was ejected\n{text}"
    );
    // Ejected, it is not even tried: the next requests need no retries.
    let retries = |text: &str| sum_of(text, "kedge_mesh_request_retries_total", &pair);
    let retried_before = retries(&text);
    let (answers, _, failures) = load(&c, &["h2", &target, "100"]);
    assert_eq!(failures, 0, "{answers:?}");
    assert_eq!(
        retries(&metrics(&metrics_addr)),
        retried_before,
        "no request went to the ejected pod: {answers:?}"
    );
}

/// `kedge up` with default flags: a NetworkPolicy on a meshed pod keeps
/// its meaning in the mesh. It lets clients labelled `role: client` reach
/// port 8080 only; their connections cross as tunnels to port 15008,
/// which the enforcer lets through for meshed pods, and the node proxy
/// applies the policy with the connection's own port: the client gets its
/// answers (by pod address and through the Service), any other pod of the
/// namespace is refused.
#[test]
fn a_network_policy_on_a_meshed_pod_applies_to_tunnelled_connections() {
    let echo = images::echo();
    let netbench = images::netbench();
    let c = Cluster::up_with_env(&[], &[("RUST_LOG", "warn,kedge_proxy::mesh=info")]);
    meshed_shop_with_load(
        &c,
        &format!(
            r#"
apiVersion: v1
kind: Pod
metadata: {{name: api, namespace: shop, labels: {{app: api}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: echo, image: {echo}, imagePullPolicy: Never}}
---
apiVersion: v1
kind: Pod
metadata: {{name: client, namespace: shop, labels: {{role: client}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: client, image: {netbench}, imagePullPolicy: Never}}
---
apiVersion: v1
kind: Service
metadata: {{name: api, namespace: shop}}
spec:
  selector: {{app: api}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {{name: api, namespace: shop}}
spec:
  podSelector: {{matchLabels: {{app: api}}}}
  ingress:
  - from: [{{podSelector: {{matchLabels: {{role: client}}}}}}]
    ports: [{{port: 8080}}]
"#
        ),
    );
    for pod in ["api", "client"] {
        c.wait_ready(&["pod", pod, "-n", "shop"], Duration::from_secs(120));
    }
    let ip = |pod: &str| {
        c.kubectl(&[
            "get",
            "pod",
            pod,
            "-n",
            "shop",
            "-o",
            "jsonpath={.status.podIP}",
        ])
    };
    let api = format!("{}:8080", ip("api"));
    let cluster_ip = c.kubectl(&[
        "get",
        "service",
        "api",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let from = |pod: &str, target: &str| {
        let out = c.kubectl(&[
            "exec",
            "-n",
            "shop",
            pod,
            "--",
            "/netbench",
            "http",
            target,
            "3",
        ]);
        let ok = out
            .lines()
            .any(|l| l.starts_with("answer status=200") && l.ends_with("count=3"));
        (ok, out)
    };
    let mut last = (false, String::new());
    let reached = eventually(Duration::from_secs(60), || {
        last = from("client", &api);
        last.0
    });
    assert!(
        reached,
        "the client reaches port 8080 through the mesh:\n{}",
        last.1
    );
    let (ok, out) = from("client", &format!("{cluster_ip}:80"));
    assert!(ok, "and through the Service:\n{out}");
    let (ok, out) = from("load", &api);
    assert!(
        !ok && out.contains("failures=3"),
        "another pod is refused:\n{out}"
    );
    let (ok, out) = from("load", &format!("{cluster_ip}:80"));
    assert!(
        !ok && !out.contains("status=200"),
        "also through the Service:\n{out}"
    );
    assert!(
        c.log()
            .contains("mesh connection denied by a NetworkPolicy"),
        "the proxy says why"
    );
}

/// `kedge up` with default flags and the ingress controller on the node
/// (ports 80 and 443): an Ingress to pods of a STRICT namespace, which
/// refuse plaintext, is served, because the ingress reaches meshed pods in
/// mutual TLS as its own ServiceAccount; the pod's proxy logs that
/// identity, and an AuthorizationPolicy naming it admits it.
#[test]
fn the_ingress_reaches_strict_meshed_pods_in_mutual_tls_as_itself() {
    let echo = images::echo();
    // The ingress on its default ports (the harness leaves it out unless
    // a test names its port).
    let c = Cluster::up_with_env(
        &["--ingress-http-port", "80"],
        &[("RUST_LOG", "warn,kedge_proxy::mesh=info")],
    );
    let node = c.node.clone().unwrap();
    assert!(eventually(Duration::from_secs(60), || {
        c.kubectl_output(&["label", "node", &node.name, "ingress=true"])
            .status
            .success()
    }));
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Namespace
metadata:
  name: shop
  labels: {{kedge.io/mesh: enabled, kedge.io/mesh-mtls: strict}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: web, namespace: shop}}
spec:
  replicas: 1
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: echo
        image: {echo}
        imagePullPolicy: Never
        readinessProbe: {{httpGet: {{path: /readyz, port: 8080}}, periodSeconds: 1}}
---
apiVersion: v1
kind: Service
metadata: {{name: web, namespace: shop}}
spec:
  selector: {{app: web}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata: {{name: web, namespace: shop}}
spec:
  rules:
  - host: shop.example
    http:
      paths:
      - {{path: /, pathType: Prefix, backend: {{service: {{name: web, port: {{number: 80}}}}}}}}
---
apiVersion: mesh.kedge.io/v1alpha1
kind: AuthorizationPolicy
metadata: {{name: only-the-ingress, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: web}}}}
  action: ALLOW
  rules:
  - from: [{{source: {{principals: ["cluster.local/ns/kedge-ingress/sa/kedge-ingress"]}}}}]
"#
    ));
    c.kubectl(&[
        "rollout",
        "status",
        "deployment/web",
        "-n",
        "shop",
        "--timeout=120s",
    ]);
    // Until the DaemonSet counts the labelled node, rollout status has
    // nothing to wait for: wait for its pod on the node first.
    let placed = eventually(Duration::from_secs(120), || {
        c.kubectl_output(&[
            "-n",
            "kedge-ingress",
            "get",
            "pods",
            "-o",
            "jsonpath={.items[0].spec.nodeName}",
        ])
        .stdout
            == node.name.as_bytes()
    });
    assert!(
        placed,
        "the ingress controller runs on the node: {}\n{}",
        c.kubectl(&["get", "daemonsets,pods", "-A", "-o", "wide"]),
        c.kubectl(&["get", "node", "--show-labels"])
    );
    c.kubectl(&[
        "-n",
        "kedge-ingress",
        "rollout",
        "status",
        "daemonset/kedge-ingress",
        "--timeout=180s",
    ]);
    let address: std::net::IpAddr = node.address().parse().unwrap();
    let web = std::net::SocketAddr::new(address, 80);
    let mut last = None;
    let served = eventually(Duration::from_secs(90), || {
        last = common::web::http(web, "shop.example", "/");
        last.as_ref().is_some_and(|(status, _, _)| *status == 200)
    });
    assert!(served, "the ingress serves the STRICT pod: {last:?}");
    let (_, _, body) = last.unwrap();
    assert!(
        body.contains("\"namespace\":") || body.contains("hostname"),
        "{body}"
    );
    let log = c.log();
    assert!(
        log.lines().any(|l| l.contains("mesh connection accepted")
            && l.contains("spiffe://cluster.local/ns/kedge-ingress/sa/kedge-ingress")),
        "the pod's proxy knows the ingress by its identity"
    );
}

/// `kedge up` with default flags and Service ports that declare no
/// protocol: the mesh looks at each connection's first bytes. HTTP on port
/// `web` is balanced request by request over the three pods behind it; the
/// netbench protocol on port `bench` (not HTTP) is carried as it is.
#[test]
fn http_is_detected_on_a_port_that_declares_no_protocol() {
    let netbench = images::netbench();
    let c = Cluster::up();
    let api = meshed_api(
        &c,
        "{name: web, port: 80, targetPort: 8080}",
        &format!(
            r#"---
apiVersion: v1
kind: Pod
metadata: {{name: bench, namespace: shop, labels: {{app: bench}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: bench, image: {netbench}, imagePullPolicy: Never, args: [serve, "5001"]}}
---
apiVersion: v1
kind: Service
metadata: {{name: bench, namespace: shop}}
spec:
  selector: {{app: bench}}
  ports: [{{name: bench, port: 5001}}]
"#
        ),
    );
    c.wait_ready(&["pod", "bench", "-n", "shop"], Duration::from_secs(120));
    let bench = c.kubectl(&[
        "get",
        "service",
        "bench",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let target = format!("{api}:80");
    let mut last = (BTreeMap::new(), 0);
    let spread = eventually(Duration::from_secs(60), || {
        last = http_load(&c, &target, 90);
        last.0.len() == 3 && last.0.keys().all(|(status, _)| *status == 200)
    });
    let (answers, connections) = last;
    assert!(spread, "requests balanced one by one: {answers:?}");
    assert_eq!(connections, 1, "{answers:?}");
    let out = c.kubectl(&[
        "exec",
        "-n",
        "shop",
        "load",
        "--",
        "/netbench",
        "rr",
        &format!("{bench}:5001"),
        "200",
    ]);
    assert!(out.starts_with("rr count=200"), "{out}");
}

/// A canary by weights: Service `api` split 90/10 between `api-v1` and
/// `api-v2` (one pod each); of 1,000 requests from a meshed pod, v2
/// answers 10% within a few points, with no request failing; the weights
/// changed under load drop no request either.
#[test]
fn a_traffic_split_sends_each_service_its_weight_of_the_requests() {
    let echo = images::echo();
    let c = Cluster::up();
    let mut manifest = r#"
apiVersion: v1
kind: Service
metadata:
  name: api
  namespace: shop
  annotations: {kedge.io/mesh-traffic-split: "api-v1=90,api-v2=10"}
spec:
  selector: {app: api}
  ports: [{name: http, port: 80, targetPort: 8080}]
"#
    .to_string();
    for version in ["v1", "v2"] {
        manifest.push_str(&format!(
            r#"
---
apiVersion: v1
kind: Pod
metadata: {{name: api-{version}, namespace: shop, labels: {{app: api, version: {version}}}}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: echo, image: {echo}, imagePullPolicy: Never}}
---
apiVersion: v1
kind: Service
metadata: {{name: api-{version}, namespace: shop}}
spec:
  selector: {{app: api, version: {version}}}
  ports: [{{name: http, port: 80, targetPort: 8080}}]
"#
        ));
    }
    meshed_shop_with_load(&c, &manifest);
    for pod in ["api-v1", "api-v2"] {
        c.wait_ready(&["pod", pod, "-n", "shop"], Duration::from_secs(120));
    }
    let cluster_ip = c.kubectl(&[
        "get",
        "service",
        "api",
        "-n",
        "shop",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]);
    let target = format!("{cluster_ip}:80");
    // Until the pods are captured and the backends have endpoints.
    assert!(eventually(Duration::from_secs(60), || {
        let (answers, _) = http_load(&c, &target, 40);
        answers.len() == 2 && answers.keys().all(|(status, _)| *status == 200)
    }));
    let (answers, _) = http_load(&c, &target, 1000);
    let count = |pod: &str| {
        answers
            .iter()
            .filter(|((status, host), _)| *status == 200 && host == pod)
            .map(|(_, n)| *n)
            .sum::<usize>()
    };
    let (v1, v2) = (count("api-v1"), count("api-v2"));
    assert_eq!(v1 + v2, 1000, "{answers:?}");
    assert!(
        (60..=140).contains(&v2),
        "v2 took {v2} of 1000: {answers:?}"
    );

    // The weights turned to 10/90 while 3,000 requests run: none fails,
    // and the requests after it go mostly to v2.
    let load = {
        let (kubeconfig, home, target) = (c.kubeconfig(), c.home.clone(), target.clone());
        std::thread::spawn(move || {
            Command::new("kubectl")
                .env("HOME", home)
                .arg("--kubeconfig")
                .arg(kubeconfig)
                .args([
                    "exec",
                    "-n",
                    "shop",
                    "load",
                    "--",
                    "/netbench",
                    "http",
                    &target,
                    "3000",
                ])
                .output()
                .unwrap()
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    c.kubectl(&[
        "annotate",
        "service",
        "api",
        "-n",
        "shop",
        "--overwrite",
        "kedge.io/mesh-traffic-split=api-v1=10,api-v2=90",
    ]);
    let out = String::from_utf8_lossy(&load.join().unwrap().stdout).to_string();
    assert!(out.contains("failures=0"), "{out}");
    assert!(
        out.lines()
            .filter(|l| l.starts_with("answer "))
            .all(|l| l.contains("status=200")),
        "{out}"
    );
    let moved = eventually(Duration::from_secs(30), || {
        let (answers, _) = http_load(&c, &target, 200);
        let v2: usize = answers
            .iter()
            .filter(|((status, host), _)| *status == 200 && host == "api-v2")
            .map(|(_, n)| *n)
            .sum();
        v2 >= 150
    });
    assert!(moved, "the new weights apply");
}

/// The slowest of the suite (about six minutes, run beside the others):
/// with `--mesh-certificate-lifetime 10m`, the shortest the Certificates
/// API gives, the node renews a pod's certificate half way and traffic
/// goes on with the new one.
#[test]
fn workload_certificates_are_renewed_half_way_and_traffic_goes_on() {
    let busybox = images::busybox();
    let c = Cluster::up_with(&["--mesh-certificate-lifetime", "10m"]);
    c.kubectl(&["create", "namespace", "shop"]);
    c.kubectl(&["label", "namespace", "shop", "kedge.io/mesh=enabled"]);
    c.apply(&format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: web, namespace: shop}}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - {{name: c, image: {busybox}, imagePullPolicy: Never, command: [httpd, -f, -p, '8080', -h, /etc]}}
"#
    ));
    c.wait_ready(&["pod", "web", "-n", "shop"], Duration::from_secs(120));
    let metrics_addr = c.arg_after("--metrics-addr").unwrap();
    let expiry = || {
        metrics(&metrics_addr)
            .lines()
            .find(|l| {
                l.starts_with(
                    r#"kedge_mesh_workload_certificate_expiry_seconds{namespace="shop",service_account="default"}"#,
                )
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
    };
    let mut first = None;
    assert!(eventually(Duration::from_secs(60), || {
        first = expiry();
        first.is_some()
    }));
    let first = first.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        first <= now + 600 && first > now + 500,
        "ten minutes: {first} at {now}"
    );
    let web_ip = c.kubectl(&[
        "get",
        "pod",
        "web",
        "-n",
        "shop",
        "-o",
        "jsonpath={.status.podIP}",
    ]);
    let url = format!("http://{web_ip}:8080/hostname");
    assert!(eventually(Duration::from_secs(30), || fetch(
        &c, "shop", "web", &url
    )
    .is_some()));
    // Renewed half way: within five minutes.
    let mut renewed = None;
    assert!(
        eventually(Duration::from_secs(400), || {
            renewed = expiry().filter(|e| *e > first);
            renewed.is_some()
        }),
        "the certificate was renewed"
    );
    // Half way through its validity, which starts a little before it was
    // issued (the signer backdates for clock skew): not at once, not late.
    assert!(renewed.unwrap() >= first + 120, "{renewed:?} after {first}");
    // The pod, calling itself through the mesh, gets through with the new
    // certificate.
    assert!(eventually(Duration::from_secs(30), || fetch(
        &c, "shop", "web", &url
    )
    .is_some()));
    let csrs = c.kubectl(&["get", "csr", "--no-headers"]);
    assert!(
        csrs.lines()
            .filter(|l| l.contains("kedge.io/mesh-workload"))
            .count()
            >= 2,
        "{csrs}"
    );
}
