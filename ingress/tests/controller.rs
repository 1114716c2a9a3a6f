//! The ingress controller against an in-process API server, with real
//! sockets: HTTP backends on loopback addresses behind Services and
//! EndpointSlices the tests write, the proxy on 127.0.0.1 ports, plain and
//! TLS clients written out byte for byte.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Event, Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kedge_control::testing::{self, eventually_some, TestServer};
use kedge_ingress::{ClassConfig, ControllerConfig, Listeners, ServeOptions};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

// === harness ===

struct Harness {
    client: Client,
    http: SocketAddr,
    https: SocketAddr,
    task: tokio::task::JoinHandle<Result<(), kedge_ingress::Error>>,
    _server: kedge_control::server::RunningServer,
    _dir: tempfile::TempDir,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start() -> Harness {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    let classes: Api<IngressClass> = Api::all(client.clone());
    classes
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "kedge",
                             "annotations": {"ingressclass.kubernetes.io/is-default-class": "true"}},
                "spec": {"controller": kedge_ingress::CONTROLLER_NAME}
            }))
            .unwrap(),
        )
        .await
        .unwrap();
    let listeners = Listeners::bind(
        &["127.0.0.1:0".parse().unwrap()],
        &["127.0.0.1:0".parse().unwrap()],
    )
    .unwrap();
    let http = listeners.http[0].local_addr().unwrap();
    let https = listeners.https[0].local_addr().unwrap();
    let cfg = ControllerConfig {
        classes: ClassConfig::default(),
        status_addresses: vec!["127.0.0.1".parse().unwrap()],
        host: Some("test-node".into()),
    };
    let task = tokio::spawn(kedge_ingress::run(
        client.clone(),
        cfg,
        listeners,
        ServeOptions {
            threads: 2,
            ..Default::default()
        },
        Arc::new(kedge_ingress::Metrics::new()),
    ));
    Harness {
        client,
        http,
        https,
        task,
        _server: server,
        _dir: dir,
    }
}

/// An HTTP/1.1 backend that answers every request with its name, the
/// request line and the headers it got, and counts what it served.
struct Backend {
    addr: SocketAddr,
    served: Arc<AtomicUsize>,
    seen: Arc<parking_lot::Mutex<Vec<String>>>,
}

async fn backend(ip: &str, port: u16, name: &'static str) -> Backend {
    let listener = TcpListener::bind((ip, port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let served = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let (s2, seen2) = (served.clone(), seen.clone());
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let (served, seen) = (s2.clone(), seen2.clone());
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if r.read_line(&mut line).await.ok()? == 0 {
                            return None;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse().ok())
                                .flatten()
                        })
                        .unwrap_or(0);
                    let mut body = vec![0; len];
                    r.read_exact(&mut body).await.ok()?;
                    served.fetch_add(1, Ordering::SeqCst);
                    seen.lock().push(head.clone());
                    let text = format!("{name}\n{head}");
                    // A Server header of its own, which the proxy replaces.
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\nServer: test-backend\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
                        text.len()
                    );
                    r.get_mut().write_all(resp.as_bytes()).await.ok()?;
                }
                #[allow(unreachable_code)]
                Some(())
            });
        }
    });
    Backend { addr, served, seen }
}

/// Two backends on 127.0.0.2 and 127.0.0.3 with the same port.
async fn backend_pair(a: &'static str, b: &'static str) -> (Backend, Backend) {
    loop {
        let first = backend("127.0.0.2", 0, a).await;
        if let Ok(l) = std::net::TcpListener::bind(("127.0.0.3", first.addr.port())) {
            drop(l);
            let second = backend("127.0.0.3", first.addr.port(), b).await;
            return (first, second);
        }
    }
}

async fn service(client: &Client, ns: &str, name: &str, endpoints: &[(SocketAddr, bool)]) {
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": ns},
        "spec": {"ports": [{"name": "http", "port": 80, "targetPort": 8080}]}
    }))
    .unwrap();
    Api::<Service>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &svc)
        .await
        .unwrap();
    set_endpoints(client, ns, name, endpoints).await;
}

async fn set_endpoints(client: &Client, ns: &str, name: &str, endpoints: &[(SocketAddr, bool)]) {
    let port = endpoints.first().map_or(8080, |(a, _)| a.port());
    let eps: Vec<Value> = endpoints
        .iter()
        .map(
            |(a, ready)| json!({"addresses": [a.ip().to_string()], "conditions": {"ready": ready}}),
        )
        .collect();
    let slice: EndpointSlice = serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": format!("{name}-slice"), "namespace": ns,
                     "labels": {"kubernetes.io/service-name": name}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
        "endpoints": eps,
    }))
    .unwrap();
    Api::<EndpointSlice>::namespaced(client.clone(), ns)
        .patch(
            &format!("{name}-slice"),
            &PatchParams::apply("test").force(),
            &Patch::Apply(&slice),
        )
        .await
        .unwrap();
}

async fn apply_ingress(client: &Client, ns: &str, v: Value) {
    let mut v = v;
    v["apiVersion"] = json!("networking.k8s.io/v1");
    v["kind"] = json!("Ingress");
    v["metadata"]["namespace"] = json!(ns);
    let name = v["metadata"]["name"].as_str().unwrap().to_string();
    let ing: Ingress = serde_json::from_value(v).unwrap();
    Api::<Ingress>::namespaced(client.clone(), ns)
        .patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&ing),
        )
        .await
        .unwrap();
}

/// An Ingress with one rule: `host`, one path to port 80 of `service`.
fn one_path(
    name: &str,
    annotations: Value,
    host: &str,
    path: &str,
    path_type: &str,
    service: &str,
) -> Value {
    json!({"metadata": {"name": name, "annotations": annotations},
           "spec": {"rules": [{"host": host, "http": {"paths": [
               {"path": path, "pathType": path_type,
                "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}})
}

/// A response, read whole.
#[derive(Debug)]
struct Response {
    status: u16,
    head: String,
    body: String,
}

impl Response {
    /// Whether the echoed request (the backend's body) carried `name: value`,
    /// the name in any case.
    fn echoed(&self, name: &str, value: &str) -> bool {
        self.body.lines().any(|l| {
            l.split_once(':')
                .is_some_and(|(k, v)| k.eq_ignore_ascii_case(name) && v.trim() == value)
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The proxy's own `Server` and a `Date`, on proxied answers and on
    /// its own alike, as nginx sends them.
    fn assert_server_and_date(&self) {
        assert_eq!(self.header("server"), Some("kedge"), "{}", self.head);
        assert!(
            self.header("date").is_some_and(|d| d.ends_with(" GMT")),
            "{}",
            self.head
        );
    }
}

fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Response {
        status,
        head: head.to_string(),
        body: body.to_string(),
    }
}

/// Send raw bytes, read until the server closes.
async fn raw(addr: SocketAddr, request: &[u8]) -> Response {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf)).await;
    parse_response(&buf)
}

async fn get(addr: SocketAddr, host: &str, path: &str) -> Response {
    raw(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

/// Over TLS with SNI `sni`, trusting `roots`; returns the response and
/// the server certificate's DER.
async fn get_tls(
    addr: SocketAddr,
    sni: &str,
    roots: rustls::RootCertStore,
    path: &str,
) -> (Response, Vec<u8>) {
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    (parse_response(&buf), cert)
}

/// Accepts any server certificate: for looking at the fallback one.
#[derive(Debug)]
struct AnyCert;

impl rustls::client::danger::ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

async fn served_cert(addr: SocketAddr, sni: &str) -> Vec<u8> {
    let config = rustls::ClientConfig::builder()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCert))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A CA and a leaf certificate for `host` it signed.
struct Pki {
    ca_der: Vec<u8>,
    leaf_pem: String,
    leaf_der: Vec<u8>,
    key_pem: String,
}

fn pki(host: &str) -> Pki {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec![host.to_string()])
        .unwrap()
        .signed_by(&key, &rcgen::Issuer::new(ca_params, ca_key))
        .unwrap();
    Pki {
        ca_der: ca.der().to_vec(),
        leaf_pem: leaf.pem(),
        leaf_der: leaf.der().to_vec(),
        key_pem: key.serialize_pem(),
    }
}

fn roots(p: &Pki) -> rustls::RootCertStore {
    let mut r = rustls::RootCertStore::empty();
    r.add(p.ca_der.clone().into()).unwrap();
    r
}

/// An Ingress serving `host` over TLS with the certificate in `secret`,
/// every path to port 80 of `service`.
fn tls_ingress(name: &str, host: &str, secret: &str, service: &str) -> Value {
    json!({"metadata": {"name": name}, "spec": {
        "tls": [{"hosts": [host], "secretName": secret}],
        "rules": [{"host": host, "http": {"paths": [
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}})
}

async fn put_tls_secret(client: &Client, ns: &str, name: &str, p: &Pki) {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": ns},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(&p.leaf_pem), "tls.key": b64(&p.key_pem)}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), ns)
        .patch(
            name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(&secret),
        )
        .await
        .unwrap();
}

// === tests ===

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_rewrites_and_default_backend() {
    let h = start().await;
    let (a, b) = backend_pair("myblog-a", "myblog-b").await;
    service(
        &h.client,
        "default",
        "myblog",
        &[(a.addr, true), (b.addr, true)],
    )
    .await;
    let admin = backend("127.0.0.4", 0, "admin").await;
    service(&h.client, "default", "admin", &[(admin.addr, true)]).await;
    apply_ingress(
        &h.client,
        "default",
        json!({"metadata": {"name": "myblog"}, "spec": {"rules": [{
        "host": "myblog.luffy.com",
        "http": {"paths": [
            {"path": "/exact", "pathType": "Exact",
             "backend": {"service": {"name": "admin", "port": {"number": 80}}}},
            {"path": "/", "pathType": "Prefix",
             "backend": {"service": {"name": "myblog", "port": {"name": "http"}}}}
        ]}}]}}),
    )
    .await;
    apply_ingress(
        &h.client,
        "default",
        one_path(
            "rewrite",
            json!({ "nginx.ingress.kubernetes.io/rewrite-target": "/admin/$2"}),
            "rw.luffy.com",
            "/foo(/|$)(.*)",
            "ImplementationSpecific",
            "admin",
        ),
    )
    .await;

    let r = eventually_some("the Ingress served", || async {
        let r = get(h.http, "myblog.luffy.com", "/hello?x=1").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(r.body.contains("GET /hello?x=1 HTTP/1.1"), "{}", r.body);
    // What the Ingress conformance suite checks on a proxied answer; the
    // backend's own Server header is replaced.
    r.assert_server_and_date();
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(r.header("content-length").is_some(), "{}", r.head);
    assert!(
        r.echoed("X-Forwarded-Host", "myblog.luffy.com"),
        "{}",
        r.body
    );
    assert!(r.echoed("X-Forwarded-Proto", "http"), "{}", r.body);
    assert!(r.echoed("X-Real-IP", "127.0.0.1"), "{}", r.body);
    assert!(
        r.body.to_ascii_lowercase().contains("x-request-id: "),
        "{}",
        r.body
    );

    // Both replicas answer, in turn. (A new table, made on any change such
    // as the controller's own status writes, starts the turn anew.)
    eventually_some("both replicas in turn", || async {
        let served = || {
            (
                a.served.load(Ordering::SeqCst),
                b.served.load(Ordering::SeqCst),
            )
        };
        let before = served();
        for _ in 0..10 {
            assert_eq!(get(h.http, "myblog.luffy.com", "/").await.status, 200);
        }
        let after = served();
        (after.0 - before.0 == 5 && after.1 - before.1 == 5).then_some(())
    })
    .await;

    // Exact before prefix; a longer path under it is the prefix's.
    assert!(get(h.http, "myblog.luffy.com", "/exact")
        .await
        .body
        .starts_with("admin"));
    assert!(get(h.http, "myblog.luffy.com", "/exact/x")
        .await
        .body
        .starts_with("myblog"));

    // rewrite-target with capture groups, query kept. The second Ingress may
    // reach the routing table after the first one.
    let r = eventually_some("the rewrite Ingress served", || async {
        let r = get(h.http, "rw.luffy.com", "/foo/bar?q=1").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(r.body.contains("GET /admin/bar?q=1 HTTP/1.1"), "{}", r.body);
    let r = get(h.http, "rw.luffy.com", "/foo").await;
    assert!(r.body.contains("GET /admin/ HTTP/1.1"), "{}", r.body);
    // Nothing matches /other on that host: the default backend.
    assert_eq!(get(h.http, "rw.luffy.com", "/other").await.status, 404);

    // Host mismatch: the built-in default backend.
    let r = get(h.http, "unknown.luffy.com", "/").await;
    assert_eq!(r.status, 404);
    assert!(r.body.contains("404 Not Found"));
    r.assert_server_and_date();

    // Readiness: an unready endpoint gets no more requests.
    set_endpoints(
        &h.client,
        "default",
        "myblog",
        &[(a.addr, true), (b.addr, false)],
    )
    .await;
    eventually_some("the unready endpoint dropped", || async {
        let before = b.served.load(Ordering::SeqCst);
        for _ in 0..6 {
            get(h.http, "myblog.luffy.com", "/").await;
        }
        (b.served.load(Ordering::SeqCst) == before).then_some(())
    })
    .await;
    // No ready endpoint: 503 at once.
    set_endpoints(&h.client, "default", "myblog", &[(a.addr, false)]).await;
    eventually_some("503 without endpoints", || async {
        (get(h.http, "myblog.luffy.com", "/").await.status == 503).then_some(())
    })
    .await;

    // The load-balancer status names the address served on.
    eventually_some("status written", || async {
        let ing = Api::<Ingress>::namespaced(h.client.clone(), "default")
            .get("myblog")
            .await
            .ok()?;
        let ip = ing.status?.load_balancer?.ingress?.first()?.ip.clone()?;
        (ip == "127.0.0.1").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_from_secrets_by_sni_with_redirect_and_rotation() {
    let h = start().await;
    let web = backend("127.0.0.5", 0, "secure").await;
    service(&h.client, "default", "secure", &[(web.addr, true)]).await;
    let first = pki("secure.luffy.com");
    put_tls_secret(&h.client, "default", "secure-tls", &first).await;
    apply_ingress(
        &h.client,
        "default",
        tls_ingress("secure", "secure.luffy.com", "secure-tls", "secure"),
    )
    .await;

    // HTTPS with the Secret's certificate, checked against its CA.
    let (r, cert) = eventually_some("HTTPS served", || async {
        if served_cert(h.https, "secure.luffy.com").await != first.leaf_der {
            return None;
        }
        Some(get_tls(h.https, "secure.luffy.com", roots(&first), "/x").await)
    })
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(cert, first.leaf_der);
    assert!(r.echoed("X-Forwarded-Proto", "https"), "{}", r.body);

    // Plain HTTP is redirected with 308, path and query kept.
    let r = get(h.http, "secure.luffy.com", "/a/b?c=d").await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://secure.luffy.com:{}/a/b?c=d", h.https.port()).as_str())
    );

    // An unknown name gets the fallback certificate.
    let fallback = served_cert(h.https, "nobody.example").await;
    assert_ne!(fallback, first.leaf_der);

    // Rotating the Secret changes the certificate without a restart.
    let second = pki("secure.luffy.com");
    put_tls_secret(&h.client, "default", "secure-tls", &second).await;
    eventually_some("the new certificate served", || async {
        (served_cert(h.https, "secure.luffy.com").await == second.leaf_der).then_some(())
    })
    .await;
    let (r, _) = get_tls(h.https, "secure.luffy.com", roots(&second), "/").await;
    assert_eq!(r.status, 200);

    // A session made on one worker resumes on any: the workers share one
    // session cache and ticket key (the kernel spreads connections over
    // them by port, so eight in a row reach both).
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let config = Arc::new(
            rustls::ClientConfig::builder_with_protocol_versions(&[version])
                .with_root_certificates(roots(&second))
                .with_no_client_auth(),
        );
        let kinds = {
            let mut kinds = Vec::new();
            for _ in 0..8 {
                kinds.push(handshake_kind(h.https, "secure.luffy.com", config.clone()).await);
            }
            kinds
        };
        assert_eq!(kinds[0], rustls::HandshakeKind::Full, "{version:?}");
        assert!(
            kinds[1..]
                .iter()
                .all(|k| *k == rustls::HandshakeKind::Resumed),
            "{version:?}: {kinds:?}"
        );
    }
}

/// One request over a new TLS connection made with `config` (and so with
/// its session cache); how the handshake went.
async fn handshake_kind(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> rustls::HandshakeKind {
    let connector = tokio_rustls::TlsConnector::from(config);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes())
        .await
        .unwrap();
    // Reading to the end also takes in the session tickets.
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tls.read_to_end(&mut buf)).await;
    assert_eq!(parse_response(&buf).status, 200);
    tls.get_ref().1.handshake_kind().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_never_reach_a_backend() {
    let h = start().await;
    let web = backend("127.0.0.6", 0, "guarded").await;
    service(&h.client, "default", "guarded", &[(web.addr, true)]).await;
    apply_ingress(
        &h.client,
        "default",
        one_path(
            "guarded",
            json!({ "nginx.ingress.kubernetes.io/rewrite-target": "/inner/$1"}),
            "g.luffy.com",
            "/pub/(.*)",
            "ImplementationSpecific",
            "guarded",
        ),
    )
    .await;
    eventually_some("the Ingress served", || async {
        (get(h.http, "g.luffy.com", "/pub/ok").await.status == 200).then_some(())
    })
    .await;
    let before = web.served.load(Ordering::SeqCst);

    // Path traversal, plain and percent-encoded.
    assert_eq!(
        get(h.http, "g.luffy.com", "/pub/../../etc/passwd")
            .await
            .status,
        400
    );
    assert_eq!(
        get(h.http, "g.luffy.com", "/pub/%2e%2e/%2e%2e/etc")
            .await
            .status,
        400
    );
    // A bad request line and a bad Host.
    assert_eq!(raw(h.http, b"GARBAGE\r\n\r\n").await.status, 400);
    assert_eq!(
        raw(
            h.http,
            b"GET /pub/x HTTP/1.1\r\nHost: g.luffy.com/evil\r\n\r\n"
        )
        .await
        .status,
        400
    );
    // Conflicting Content-Length and Transfer-Encoding: the smuggling shape.
    let smuggle = b"POST /pub/x HTTP/1.1\r\nHost: g.luffy.com\r\nContent-Length: 4\r\n\
                    Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /pub/smuggled HTTP/1.1\r\nHost: g.luffy.com\r\n\r\n";
    let r = raw(h.http, smuggle).await;
    assert!(r.status == 400 || r.status == 0, "{}", r.head);
    // Two Content-Length values that disagree.
    let r = raw(
        h.http,
        b"POST /pub/x HTTP/1.1\r\nHost: g.luffy.com\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
    )
    .await;
    assert!(r.status == 400 || r.status == 0, "{}", r.head);
    // Oversized headers.
    let big = format!(
        "GET /pub/x HTTP/1.1\r\nHost: g.luffy.com\r\nX-Big: {}\r\n\r\n",
        "a".repeat(256 * 1024)
    );
    let r = raw(h.http, big.as_bytes()).await;
    assert_eq!(r.status, 431, "{}", r.head);

    assert_eq!(web.served.load(Ordering::SeqCst), before);
    // The proxy still serves.
    let r = get(h.http, "g.luffy.com", "/pub/after").await;
    assert!(r.body.contains("GET /inner/after HTTP/1.1"), "{}", r.body);
    assert!(!web.seen.lock().iter().any(|h| h.contains("smuggled")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snippets_are_refused_with_an_event() {
    let h = start().await;
    let web = backend("127.0.0.7", 0, "snippet").await;
    service(&h.client, "default", "snippet", &[(web.addr, true)]).await;
    apply_ingress(
        &h.client,
        "default",
        one_path(
            "snippet",
            json!({ "nginx.ingress.kubernetes.io/configuration-snippet": "return 200 'owned';"}),
            "s.luffy.com",
            "/",
            "Prefix",
            "snippet",
        ),
    )
    .await;
    let events: Api<Event> = Api::namespaced(h.client.clone(), "default");
    let message = eventually_some("the Rejected event", || async {
        let list = events.list(&ListParams::default()).await.ok()?;
        list.items
            .into_iter()
            .find(|e| e.reason.as_deref() == Some("Rejected"))
            .and_then(|e| e.message)
    })
    .await;
    assert!(message.contains("configuration-snippet"), "{message}");
    assert_eq!(get(h.http, "s.luffy.com", "/").await.status, 404);
    assert_eq!(web.served.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn annotations_answered_by_the_proxy() {
    let h = start().await;
    let web = backend("127.0.0.8", 0, "annotated").await;
    service(&h.client, "default", "annotated", &[(web.addr, true)]).await;
    let rule = |host: &str| {
        json!([{"host": host, "http": {"paths": [{"path": "/", "pathType": "Prefix",
            "backend": {"service": {"name": "annotated", "port": {"number": 80}}}}]}}])
    };
    let cases = [
        (
            "app-root",
            json!({"nginx.ingress.kubernetes.io/app-root": "/app"}),
        ),
        (
            "moved",
            json!({"nginx.ingress.kubernetes.io/permanent-redirect": "https://elsewhere.example/new"}),
        ),
        (
            "cors",
            json!({"nginx.ingress.kubernetes.io/enable-cors": "true",
                        "nginx.ingress.kubernetes.io/cors-allow-origin": "https://app.example"}),
        ),
        (
            "private",
            json!({"nginx.ingress.kubernetes.io/whitelist-source-range": "10.0.0.0/8"}),
        ),
        (
            "small",
            json!({"nginx.ingress.kubernetes.io/proxy-body-size": "10"}),
        ),
        (
            "vhost",
            json!({"nginx.ingress.kubernetes.io/upstream-vhost": "internal.example"}),
        ),
        ("forced", json!({"kedge.io/force-ssl-redirect": "true"})),
    ];
    for (name, annotations) in &cases {
        apply_ingress(
            &h.client,
            "default",
            json!({"metadata": {"name": name, "annotations": annotations},
                   "spec": {"rules": rule(&format!("{name}.luffy.com"))}}),
        )
        .await;
    }
    // The last one applied: the others are in the table too.
    eventually_some("every Ingress served", || async {
        (get(h.http, "forced.luffy.com", "/").await.status == 308).then_some(())
    })
    .await;

    let r = get(h.http, "app-root.luffy.com", "/").await;
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("http://app-root.luffy.com/app"));
    r.assert_server_and_date();
    assert_eq!(get(h.http, "app-root.luffy.com", "/app").await.status, 200);

    let r = get(h.http, "moved.luffy.com", "/x").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://elsewhere.example/new"));

    let r = raw(
        h.http,
        b"OPTIONS / HTTP/1.1\r\nHost: cors.luffy.com\r\nOrigin: https://app.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );
    let r = get(h.http, "cors.luffy.com", "/").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example")
    );

    // 127.0.0.1 is not in 10.0.0.0/8.
    assert_eq!(get(h.http, "private.luffy.com", "/").await.status, 403);

    let small_ok = raw(
        h.http,
        b"POST / HTTP/1.1\r\nHost: small.luffy.com\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert_eq!(small_ok.status, 200);
    let too_big = raw(
        h.http,
        b"POST / HTTP/1.1\r\nHost: small.luffy.com\r\nContent-Length: 20\r\nConnection: close\r\n\r\n01234567890123456789",
    )
    .await;
    assert_eq!(too_big.status, 413);
    too_big.assert_server_and_date();
    // Chunked: no length up front, counted as it arrives.
    let chunked = raw(
        h.http,
        b"POST / HTTP/1.1\r\nHost: small.luffy.com\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n14\r\n01234567890123456789\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!(chunked.status, 413);
    // Refused mid-body, through the proxy's error answer.
    chunked.assert_server_and_date();

    let r = get(h.http, "vhost.luffy.com", "/").await;
    assert!(r.echoed("Host", "internal.example"), "{}", r.body);
    assert!(
        r.echoed("X-Forwarded-Host", "vhost.luffy.com"),
        "{}",
        r.body
    );

    let r = get(h.http, "forced.luffy.com", "/p").await;
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(format!("https://forced.luffy.com:{}/p", h.https.port()).as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_upgrades_pass_through() {
    let h = start().await;
    // A backend that accepts the upgrade, then echoes bytes.
    let listener = TcpListener::bind("127.0.0.9:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut r = BufReader::new(s);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                if !head.to_ascii_lowercase().contains("upgrade: websocket") {
                    return;
                }
                let mut s = r.into_inner();
                s.write_all(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
                    .await
                    .unwrap();
                let (mut rd, mut wr) = s.split();
                let _ = tokio::io::copy(&mut rd, &mut wr).await;
            });
        }
    });
    service(&h.client, "default", "ws", &[(addr, true)]).await;
    apply_ingress(
        &h.client,
        "default",
        one_path("ws", json!({}), "ws.luffy.com", "/", "Prefix", "ws"),
    )
    .await;
    let mut conn = eventually_some("the upgrade accepted", || async {
        let mut s = TcpStream::connect(h.http).await.ok()?;
        s.write_all(
            b"GET /chat HTTP/1.1\r\nHost: ws.luffy.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        )
        .await
        .ok()?;
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).await.ok()? == 0 {
                return None;
            }
            head.push(byte[0]);
        }
        String::from_utf8_lossy(&head).contains(" 101 ").then_some(s)
    })
    .await;
    for msg in [&b"ping"[..], b"frames both ways"] {
        conn.write_all(msg).await.unwrap();
        let mut back = vec![0u8; msg.len()];
        tokio::time::timeout(Duration::from_secs(5), conn.read_exact(&mut back))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
}

/// A TLS client config trusting `roots`, offering `alpn`.
fn client_tls(roots: rustls::RootCertStore, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_over_tls_to_an_http1_backend() {
    let h = start().await;
    let web = backend("127.0.0.10", 0, "h2-backend").await;
    service(&h.client, "default", "h2web", &[(web.addr, true)]).await;
    let p = pki("h2.luffy.com");
    put_tls_secret(&h.client, "default", "h2-tls", &p).await;
    apply_ingress(
        &h.client,
        "default",
        tls_ingress("h2", "h2.luffy.com", "h2-tls", "h2web"),
    )
    .await;
    eventually_some("the certificate served", || async {
        (served_cert(h.https, "h2.luffy.com").await == p.leaf_der).then_some(())
    })
    .await;

    let connector = tokio_rustls::TlsConnector::from(client_tls(roots(&p), &[b"h2"]));
    let tcp = TcpStream::connect(h.https).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("h2.luffy.com").unwrap();
    let tls = connector.connect(name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    // Several streams on the one connection.
    for i in 0..3 {
        let req = http::Request::builder()
            .uri(format!("https://h2.luffy.com/stream/{i}?q=1"))
            .body(())
            .unwrap();
        let (resp, _) = client.send_request(req, true).unwrap();
        let resp = resp.await.unwrap();
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        let mut text = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.unwrap();
            let _ = body.flow_control().release_capacity(chunk.len());
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8(text).unwrap();
        // The backend gets HTTP/1.1 in origin form, with the Host the
        // client named in :authority.
        assert!(
            text.contains(&format!("GET /stream/{i}?q=1 HTTP/1.1")),
            "{text}"
        );
        // Header names arrive in lower case from an HTTP/2 client.
        let lower = text.to_ascii_lowercase();
        assert!(lower.contains("host: h2.luffy.com"), "{text}");
        assert!(lower.contains("x-forwarded-proto: https"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_protocol_https() {
    let h = start().await;
    // A backend that speaks only TLS, with a self-signed certificate (not
    // verified, as ingress-nginx does not verify backends by default).
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["backend.internal".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let server_config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server_config));
    let listener = TcpListener::bind("127.0.0.11:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let mut r = BufReader::new(tls);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    head.push_str(&line);
                }
                let body = format!("over tls\n{head}");
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = r.get_mut().write_all(resp.as_bytes()).await;
                let _ = r.get_mut().shutdown().await;
            });
        }
    });
    service(&h.client, "default", "secure-backend", &[(addr, true)]).await;
    apply_ingress(
        &h.client,
        "default",
        one_path(
            "tls-backend",
            json!({ "nginx.ingress.kubernetes.io/backend-protocol": "HTTPS"}),
            "tb.luffy.com",
            "/",
            "Prefix",
            "secure-backend",
        ),
    )
    .await;
    let r = eventually_some("the TLS backend answered", || async {
        let r = get(h.http, "tb.luffy.com", "/x").await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert!(r.body.starts_with("over tls"), "{}", r.body);
    assert!(r.body.contains("GET /x HTTP/1.1"), "{}", r.body);
}

/// Requests one after another on one kept-alive connection until `stop`,
/// reconnecting only when the proxy closes between requests; returns how
/// many were answered 200 and what went wrong otherwise.
async fn keep_asking(
    addr: SocketAddr,
    host: &'static str,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> (usize, Vec<String>) {
    let (mut ok, mut failed) = (0, Vec::new());
    'connections: while !stop.load(Ordering::SeqCst) {
        let mut s = BufReader::new(TcpStream::connect(addr).await.unwrap());
        while !stop.load(Ordering::SeqCst) {
            let request = format!("GET /load HTTP/1.1\r\nHost: {host}\r\n\r\n");
            if let Err(e) = s.get_mut().write_all(request.as_bytes()).await {
                failed.push(format!("sending: {e}"));
                continue 'connections;
            }
            let mut head = String::new();
            loop {
                let mut line = String::new();
                match s.read_line(&mut line).await {
                    Ok(0) | Err(_) => {
                        failed.push(format!("no answer (after {head:?})"));
                        continue 'connections;
                    }
                    Ok(_) if line == "\r\n" => break,
                    Ok(_) => head.push_str(&line),
                }
            }
            let parsed = parse_response(format!("{head}\r\n").as_bytes());
            let len: usize = parsed
                .header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; len];
            if s.read_exact(&mut body).await.is_err() {
                failed.push("a body cut short".into());
                continue 'connections;
            }
            if parsed.status == 200 {
                ok += 1;
            } else {
                failed.push(head);
            }
            if parsed
                .header("connection")
                .is_some_and(|c| c.eq_ignore_ascii_case("close"))
            {
                continue 'connections;
            }
        }
    }
    (ok, failed)
}

/// A rollout (endpoints moving from one backend to another and back, the
/// old one serving until it is out, as a terminating pod does) and 50
/// edits of the Ingress, while four clients keep kept-alive connections
/// busy: not one request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_request_fails_through_a_rollout_and_fifty_ingress_edits() {
    let h = start().await;
    let (old, new) = backend_pair("old", "new").await;
    service(&h.client, "default", "load", &[(old.addr, true)]).await;
    let ingress = |i: usize| {
        let mut v = one_path(
            "load",
            json!({"nginx.ingress.kubernetes.io/proxy-read-timeout": (30 + i % 7).to_string()}),
            "load.luffy.com",
            "/",
            "Prefix",
            "load",
        );
        // Every other edit adds a second path.
        if i % 2 == 1 {
            v["spec"]["rules"][0]["http"]["paths"]
                .as_array_mut()
                .unwrap()
                .push(json!({"path": format!("/extra-{i}"), "pathType": "Prefix",
                             "backend": {"service": {"name": "load", "port": {"number": 80}}}}));
        }
        v
    };
    apply_ingress(&h.client, "default", ingress(0)).await;
    eventually_some("the Ingress served", || async {
        (get(h.http, "load.luffy.com", "/").await.status == 200).then_some(())
    })
    .await;

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(keep_asking(h.http, "load.luffy.com", stop.clone())))
        .collect();
    for i in 1..=50 {
        match i {
            10 => {
                set_endpoints(
                    &h.client,
                    "default",
                    "load",
                    &[(old.addr, true), (new.addr, true)],
                )
                .await
            }
            20 => {
                set_endpoints(
                    &h.client,
                    "default",
                    "load",
                    &[(old.addr, false), (new.addr, true)],
                )
                .await
            }
            25 => set_endpoints(&h.client, "default", "load", &[(new.addr, true)]).await,
            35 => {
                set_endpoints(
                    &h.client,
                    "default",
                    "load",
                    &[(new.addr, true), (old.addr, true)],
                )
                .await
            }
            45 => set_endpoints(&h.client, "default", "load", &[(old.addr, true)]).await,
            _ => {}
        }
        apply_ingress(&h.client, "default", ingress(i)).await;
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let (mut answered, mut failures) = (0, Vec::new());
    for c in clients {
        let (ok, failed) = c.await.unwrap();
        answered += ok;
        failures.extend(failed);
    }
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    assert!(answered > 100, "only {answered} requests answered");
    // Both backends served: the rollout went through.
    assert!(old.served.load(Ordering::SeqCst) > 0);
    assert!(new.served.load(Ordering::SeqCst) > 0);
}
