//! The lean HTTP/1.1 path against the Pingora path: the same requests,
//! ordinary and hostile, sent to two proxies serving one route table and
//! one backend must get the same answers, leave their connections open or
//! closed alike, and reach the backend as the same requests.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressClass};
use kedge_ingress::table::{compile, EndpointRegistry, ObjectKey, Snapshot};
use kedge_ingress::{ProxyServer, ServeOptions};
use parking_lot::Mutex;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the backend saw of each request: its line, its headers (names in
/// lower case, sorted, the random request ID left out) and its body.
type Seen = Arc<Mutex<Vec<String>>>;

/// A backend whose answer depends on the path it is asked for: every
/// framing a response can have, and some a backend should not send.
async fn backend(seen: Seen) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = listener.accept().await {
            tokio::spawn(serve_backend(s, seen.clone()));
        }
    });
    addr
}

async fn serve_backend(mut s: TcpStream, seen: Seen) -> Option<()> {
    let mut buf = Vec::new();
    loop {
        // A head.
        let head_len = loop {
            if let Some(i) = find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_len]).to_string();
        buf.drain(..head_len);
        let mut lines = head.split("\r\n");
        let line = lines.next()?.to_string();
        let mut headers: Vec<(String, String)> = lines
            .filter(|l| !l.is_empty())
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        headers.sort();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        // Its body.
        let body = if header("transfer-encoding").is_some() {
            read_chunked(&mut s, &mut buf).await?
        } else {
            let len: usize = header("content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            while buf.len() < len {
                let mut chunk = [0u8; 4096];
                let n = s.read(&mut chunk).await.ok()?;
                if n == 0 {
                    return None;
                }
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.drain(..len).collect()
        };
        let shown: Vec<String> = headers
            .iter()
            .filter(|(k, _)| k != "x-request-id")
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let text = format!(
            "{line}\n{}\nbody {} bytes: {}\n",
            shown.join("\n"),
            body.len(),
            String::from_utf8_lossy(&body)
        );
        seen.lock().push(text.clone());
        let path = line.split(' ').nth(1).unwrap_or("/").to_string();
        let reply: Vec<u8> = match path.as_str() {
            "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Kind: chunked\r\n\r\n5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
            "/close" => {
                s.write_all(b"HTTP/1.1 200 OK\r\nX-Kind: close\r\n\r\nuntil the end").await.ok()?;
                return None;
            }
            "/204" => b"HTTP/1.1 204 No Content\r\nX-Kind: none\r\n\r\n".to_vec(),
            "/304" => b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n".to_vec(),
            "/continue" => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
            "/big" => {
                let body = "0123456789abcdef".repeat(20_000);
                format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
            }
            "/slow" => {
                s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\none\r\n").await.ok()?;
                tokio::time::sleep(Duration::from_millis(30)).await;
                s.write_all(b"3\r\ntwo\r\n").await.ok()?;
                tokio::time::sleep(Duration::from_millis(30)).await;
                b"0\r\n\r\n".to_vec()
            }
            "/both" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n".to_vec(),
            "/badlength" => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
            "/nothing" => return None,
            "/garbage" => b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
            "/shutting" => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: close\r\nKeep-Alive: timeout=5\r\n\r\nbye".to_vec(),
            "/server" => b"HTTP/1.1 200 OK\r\nServer: backend\r\nDate: yesterday\r\nAccess-Control-Allow-Origin: *\r\nContent-Length: 0\r\n\r\n".to_vec(),
            _ => format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{text}",
                text.len()
            )
            .into_bytes(),
        };
        s.write_all(&reply).await.ok()?;
        if path == "/shutting" {
            return None;
        }
    }
}

async fn read_chunked(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = loop {
            if let Some(i) = find(buf, b"\r\n") {
                break i;
            }
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let line = String::from_utf8_lossy(&buf[..line_end]).to_string();
        let size = usize::from_str_radix(line.split(';').next()?.trim(), 16).ok()?;
        buf.drain(..line_end + 2);
        if size == 0 {
            // Trailers up to the blank line.
            loop {
                while find(buf, b"\r\n").is_none() {
                    let mut chunk = [0u8; 4096];
                    let n = s.read(&mut chunk).await.ok()?;
                    if n == 0 {
                        return None;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                let i = find(buf, b"\r\n")?;
                buf.drain(..i + 2);
                if i == 0 {
                    return Some(body);
                }
            }
        }
        while buf.len() < size + 2 {
            let mut chunk = [0u8; 4096];
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        body.extend_from_slice(&buf[..size]);
        buf.drain(..size + 2);
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A certificate for every test host, and the CA that signed it.
struct Cert {
    pem: String,
    key_pem: String,
    ca_der: Vec<u8>,
}

fn cert() -> Cert {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let hosts = ["d.test", "r.test", "none.test", "tls.test"].map(String::from);
    let leaf = rcgen::CertificateParams::new(hosts.to_vec())
        .unwrap()
        .signed_by(&key, &rcgen::Issuer::new(ca_params, ca_key))
        .unwrap();
    Cert {
        pem: leaf.pem(),
        key_pem: key.serialize_pem(),
        ca_der: ca.der().to_vec(),
    }
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// The route table (every host also served over TLS): `d.test` to the backend; `r.test` with a rewrite and
/// CORS; `none.test` to a Service without endpoints; `tls.test` with a
/// forced redirect to HTTPS.
fn objects(upstream: SocketAddr, cert: &Cert) -> Snapshot {
    let class: IngressClass = serde_json::from_value(json!({
        "metadata": {"name": "kedge"},
        "spec": {"controller": kedge_ingress::CONTROLLER_NAME}
    }))
    .unwrap();
    let ingress = |name: &str,
                   host: &str,
                   path: &str,
                   service: &str,
                   annotations: serde_json::Value|
     -> Ingress {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"ingressClassName": "kedge",
                     "tls": [{"hosts": [host], "secretName": "tls"}],
                     "rules": [{"host": host, "http": {"paths": [{"path": path,
                        "pathType": "ImplementationSpecific",
                        "backend": {"service": {"name": service, "port": {"number": 80}}}}]}}]}
        }))
        .unwrap()
    };
    let service = |name: &str| -> Service {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"ports": [{"name": "http", "port": 80, "targetPort": upstream.port()}]}
        }))
        .unwrap()
    };
    let slice: EndpointSlice = serde_json::from_value(json!({
        "metadata": {"name": "echo-1", "namespace": "default",
                     "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": upstream.port(), "protocol": "TCP"}],
        "endpoints": [{"addresses": [upstream.ip().to_string()], "conditions": {"ready": true}}]
    }))
    .unwrap();
    let secret: Secret = serde_json::from_value(json!({
        "metadata": {"name": "tls", "namespace": "default"},
        "type": "kubernetes.io/tls",
        "data": {"tls.crt": b64(&cert.pem), "tls.key": b64(&cert.key_pem)}
    }))
    .unwrap();
    let mut snap = Snapshot {
        ingresses: vec![
            Arc::new(ingress(
                "plain",
                "d.test",
                "/",
                "echo",
                json!({"nginx.ingress.kubernetes.io/ssl-redirect": "false"}),
            )),
            Arc::new(ingress(
                "rewritten",
                "r.test",
                "/pub/(.*)",
                "echo",
                json!({"nginx.ingress.kubernetes.io/rewrite-target": "/inner/$1",
                       "nginx.ingress.kubernetes.io/ssl-redirect": "false",
                       "nginx.ingress.kubernetes.io/enable-cors": "true",
                       "nginx.ingress.kubernetes.io/proxy-body-size": "10",
                       "nginx.ingress.kubernetes.io/upstream-vhost": "inside.svc"}),
            )),
            Arc::new(ingress(
                "empty",
                "none.test",
                "/",
                "nobody",
                json!({"nginx.ingress.kubernetes.io/ssl-redirect": "false"}),
            )),
            Arc::new(ingress(
                "secure",
                "tls.test",
                "/",
                "echo",
                json!({"nginx.ingress.kubernetes.io/force-ssl-redirect": "true"}),
            )),
        ],
        classes: vec![Arc::new(class)],
        services: HashMap::from([
            (ObjectKey::new("default", "echo"), Arc::new(service("echo"))),
            (
                ObjectKey::new("default", "nobody"),
                Arc::new(service("nobody")),
            ),
        ]),
        secrets: HashMap::from([(ObjectKey::new("default", "tls"), Arc::new(secret))]),
        ..Default::default()
    };
    snap.add_slice(Arc::new(slice));
    snap
}

struct Proxies {
    lean: ProxyServer,
    pingora: ProxyServer,
    seen: Seen,
    tls: tokio_rustls::TlsConnector,
}

async fn proxies() -> Proxies {
    let seen = Seen::default();
    let upstream = backend(seen.clone()).await;
    let fallback = Arc::new(kedge_ingress::tls::TlsCert::fallback());
    let cert = cert();
    let compiled = compile(
        &objects(upstream, &cert),
        &Default::default(),
        &EndpointRegistry::default(),
        fallback.clone(),
    );
    assert!(compiled.problems.is_empty(), "{:?}", compiled.problems);
    let routes = kedge_ingress::new_routes(fallback);
    routes.store(Arc::new(compiled.table));
    let start = |lean_http1| {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let listeners = kedge_ingress::Listeners::bind(&[any], &[any]).unwrap();
        kedge_ingress::server::start(
            routes.clone(),
            Arc::new(kedge_ingress::Metrics::new()),
            listeners,
            ServeOptions {
                threads: 1,
                access_log: false,
                https_port: Some(8443),
                lean_http1,
                ..Default::default()
            },
        )
        .unwrap()
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.ca_der.clone().into()).unwrap();
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Proxies {
        lean: start(true),
        pingora: start(false),
        seen,
        tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
    }
}

/// One client exchange: what came back and whether the proxy closed.
#[derive(Debug, PartialEq, Eq)]
struct Exchange {
    responses: Vec<Response>,
    closed: bool,
    /// Bytes after the last whole response.
    rest: String,
}

#[derive(Debug, PartialEq, Eq)]
struct Response {
    status: u16,
    /// Lower-case names, sorted; Date's value and the framing headers'
    /// left out (bodies are compared decoded).
    headers: Vec<String>,
    body: String,
}

/// Send `parts` (a pause between them) and read until the proxy closes or
/// stays silent for a while; `heads` marks the responses to HEAD requests.
async fn exchange(
    addr: SocketAddr,
    tls: Option<&tokio_rustls::TlsConnector>,
    parts: &[&[u8]],
    heads: &[bool],
) -> Exchange {
    let tcp = TcpStream::connect(addr).await.unwrap();
    match tls {
        None => exchange_on(tcp, parts, heads).await,
        Some(tls) => {
            let name = rustls::pki_types::ServerName::try_from("d.test").unwrap();
            let s = tls.connect(name, tcp).await.unwrap();
            exchange_on(s, parts, heads).await
        }
    }
}

async fn exchange_on<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    parts: &[&[u8]],
    heads: &[bool],
) -> Exchange {
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        if s.write_all(p).await.is_err() || s.flush().await.is_err() {
            break;
        }
    }
    let mut raw = Vec::new();
    let mut closed = false;
    loop {
        let mut chunk = [0u8; 65536];
        match tokio::time::timeout(Duration::from_millis(400), s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => raw.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    let mut responses = Vec::new();
    let mut at = 0;
    while at < raw.len() {
        let head_only = heads.get(responses.len()).copied().unwrap_or(false);
        match parse_response(&raw[at..], head_only, closed) {
            Some((r, used)) => {
                responses.push(r);
                at += used;
            }
            None => break,
        }
    }
    Exchange {
        responses,
        closed,
        rest: String::from_utf8_lossy(&raw[at..]).to_string(),
    }
}

fn parse_response(raw: &[u8], head_only: bool, closed: bool) -> Option<(Response, usize)> {
    let end = find(raw, b"\r\n\r\n")? + 4;
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let mut headers = Vec::new();
    let mut length = None;
    let mut chunked = false;
    for line in head.split("\r\n").skip(1).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once(':')?;
        let (k, v) = (k.to_ascii_lowercase(), v.trim());
        match k.as_str() {
            "date" => headers.push("date: (a date)".to_string()),
            // The backend's hop-by-hop Keep-Alive: the lean path drops it,
            // as nginx does; Pingora passes it on.
            "keep-alive" => {}
            "content-length" => length = v.parse::<usize>().ok(),
            "transfer-encoding" => chunked = v.eq_ignore_ascii_case("chunked"),
            _ => headers.push(format!("{k}: {v}")),
        }
    }
    if chunked && length.is_some() {
        // Never to be sent (RFC 9112 §6.2); compared like a header.
        headers.push("(a Content-Length beside chunked)".to_string());
    }
    headers.sort();
    let no_body = head_only || matches!(status, 204 | 304) || status < 200;
    let (body, used) = if no_body {
        (Vec::new(), end)
    } else if chunked {
        let mut body = Vec::new();
        let mut at = end;
        loop {
            let line_end = at + find(&raw[at..], b"\r\n")?;
            let size_text = String::from_utf8_lossy(&raw[at..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                // Trailers are not compared (the Pingora path drops them).
                let blank = find(&raw[at..], b"\r\n\r\n")
                    .filter(|_| !raw[at..].starts_with(b"\r\n"))
                    .map_or(at + 2, |i| at + i + 4);
                break (body, blank);
            }
            body.extend_from_slice(raw.get(at..at + size)?);
            at += size + 2;
        }
    } else if let Some(n) = length {
        (raw.get(end..end + n)?.to_vec(), end + n)
    } else if closed {
        (raw[end..].to_vec(), raw.len())
    } else {
        return None;
    };
    Some((
        Response {
            status,
            headers,
            body: String::from_utf8_lossy(&body).to_string(),
        },
        used,
    ))
}

struct Case {
    name: &'static str,
    /// Written with a pause between them.
    parts: Vec<Vec<u8>>,
    heads: Vec<bool>,
    /// The parts are whole requests, which a client may also pipeline.
    pipelined: bool,
    /// Why the lean path answers otherwise than the Pingora path, where it
    /// does on purpose (compared with nginx only).
    unlike_pingora: Option<&'static str>,
}

impl Case {
    /// Whether the case asks the backend for one of its special answers.
    fn backend_special(&self) -> bool {
        const SPECIAL: &[&str] = &[
            "/chunked ",
            "/close ",
            "/204 ",
            "/304 ",
            "/continue ",
            "/big ",
            "/slow ",
            "/badlength ",
            "/both ",
            "/nothing ",
            "/garbage ",
            "/shutting ",
            "/server ",
        ];
        let text = String::from_utf8_lossy(&self.parts.concat()).to_string();
        SPECIAL.iter().any(|p| text.contains(p))
    }
}

fn case(name: &'static str, raw: &str) -> Case {
    Case {
        name,
        parts: vec![raw.as_bytes().to_vec()],
        heads: vec![],
        pipelined: false,
        unlike_pingora: None,
    }
}

/// Requests one after the other on one connection.
fn in_turn(name: &'static str, requests: &[&str]) -> Case {
    Case {
        name,
        parts: requests.iter().map(|r| r.as_bytes().to_vec()).collect(),
        heads: vec![],
        pipelined: true,
        unlike_pingora: None,
    }
}

/// The lean path answers `Expect: 100-continue` itself (100 Continue
/// before it reads a body that has not come) and does not pass the
/// expectation on, as nginx does; Pingora passes it on.
const EXPECT_UPSTREAM: &str = "Expect is the proxy's to answer";

fn cases() -> Vec<Case> {
    let get = |path: &str| format!("GET {path} HTTP/1.1\r\nHost: d.test\r\n\r\n");
    let mut cases = vec![
        case("a plain GET", &get("/plain?x=1&y=%20")),
        case("a body with a Content-Length", "POST /form HTTP/1.1\r\nHost: d.test\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"),
        in_turn("three requests", &[&get("/one"), &get("/two"), &get("/three")]),
        case("a chunked response", &get("/chunked")),
        case("a response ended by closing", &get("/close")),
        in_turn("a close-delimited answer, then another request", &[&get("/close"), &get("/after")]),
        case("204", &get("/204")),
        case("304", &get("/304")),
        case("an interim 100 before the answer", &get("/continue")),
        case("a large body", &get("/big")),
        case("chunks that come slowly", &get("/slow")),
        case("two Content-Lengths from the backend", &get("/badlength")),
        in_turn(
            "a Content-Length beside chunked from the backend",
            &[&get("/both"), &get("/after")],
        ),
        case("a backend that closes without answering", &get("/nothing")),
        in_turn(
            "a kept-alive backend connection closed under a GET",
            &[&get("/plain"), &get("/nothing")],
        ),
        in_turn(
            "a kept-alive backend connection closed under a POST",
            &[&get("/plain"), "POST /nothing HTTP/1.1\r\nHost: d.test\r\nContent-Length: 2\r\n\r\nok"],
        ),
        case("a backend that does not speak HTTP", &get("/garbage")),
        in_turn("a backend that closes after its answer", &[&get("/shutting"), &get("/next")]),
        case("the backend's Server, Date and CORS headers", &get("/server")),
        case("Connection: close", "GET /c HTTP/1.1\r\nHost: d.test\r\nConnection: close\r\n\r\n"),
        case("Connection: keep-alive", "GET /k HTTP/1.1\r\nHost: d.test\r\nConnection: keep-alive\r\n\r\n"),
        case("hop-by-hop and forwarding headers from the client", "GET /h HTTP/1.1\r\nHost: d.test\r\nKeep-Alive: 5\r\nTE: trailers\r\nProxy: evil\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Request-ID: mine\r\nProxy-Authorization: secret\r\nX-Mixed-Case: Value\r\n\r\n"),
        case("a host with a port and upper case", "GET /p HTTP/1.1\r\nHost: D.Test:8080\r\n\r\n"),
        case("an unknown host", "GET / HTTP/1.1\r\nHost: nowhere.test\r\n\r\n"),
        case("no Host", "GET / HTTP/1.1\r\n\r\n"),
        case("a bad Host", "GET / HTTP/1.1\r\nHost: d.test/evil\r\n\r\n"),
        case("two Hosts", "GET / HTTP/1.1\r\nHost: d.test\r\nHost: r.test\r\n\r\n"),
        case("a rewrite, the upstream vhost and CORS", "GET /pub/a/b?q=1 HTTP/1.1\r\nHost: r.test\r\nOrigin: http://o.test\r\n\r\n"),
        case("a CORS preflight", "OPTIONS /pub/x HTTP/1.1\r\nHost: r.test\r\n\r\n"),
        case("a body over the size limit", "POST /pub/x HTTP/1.1\r\nHost: r.test\r\nContent-Length: 11\r\n\r\nhello world"),
        case("a Service without endpoints", "GET / HTTP/1.1\r\nHost: none.test\r\n\r\n"),
        case("a forced redirect to HTTPS", "GET /x?y=1 HTTP/1.1\r\nHost: tls.test\r\n\r\n"),
        case("path traversal", &get("/a/../../etc/passwd")),
        case("encoded path traversal", &get("/a/%2e%2e/%2e%2e/etc")),
        case("dot segments that stay inside", &get("/a/./b/../c")),
        case("an absolute-form target", "GET http://d.test/abs HTTP/1.1\r\nHost: d.test\r\n\r\n"),
        case("CONNECT", "CONNECT d.test:443 HTTP/1.1\r\nHost: d.test\r\n\r\n"),
        case("OPTIONS *", "OPTIONS * HTTP/1.1\r\nHost: d.test\r\n\r\n"),
        case("HTTP/1.0", "GET /old HTTP/1.0\r\nHost: d.test\r\n\r\n"),
        case("HTTP/1.0 kept alive", "GET /old HTTP/1.0\r\nHost: d.test\r\nConnection: keep-alive\r\n\r\n"),
        case("a request line that is not HTTP", "GARBAGE\r\n\r\n"),
        case("a header without a colon", "GET / HTTP/1.1\r\nHost: d.test\r\nBroken\r\n\r\n"),
        case("Content-Length beside chunked", "POST /s HTTP/1.1\r\nHost: d.test\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: d.test\r\n\r\n"),
        case("two different Content-Lengths", "POST /s HTTP/1.1\r\nHost: d.test\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
        case("a Content-Length that is not a number", "POST /s HTTP/1.1\r\nHost: d.test\r\nContent-Length: 1x\r\n\r\nab"),
        case("a chunked request body", "POST /chunked-in HTTP/1.1\r\nHost: d.test\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
        case("a transfer coding that is not chunked", "POST /s HTTP/1.1\r\nHost: d.test\r\nTransfer-Encoding: gzip\r\n\r\n"),
        Case {
            unlike_pingora: Some(EXPECT_UPSTREAM),
            ..case("Expect: 100-continue", "POST /e HTTP/1.1\r\nHost: d.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nok")
        },
        case("a header line over 8 KiB", &format!("GET / HTTP/1.1\r\nHost: d.test\r\nX-Big: {}\r\n\r\n", "a".repeat(9000))),
        case("a target over 8 KiB", &get(&format!("/{}", "a".repeat(9000)))),
        case("a nominated hop-by-hop header", "GET /n HTTP/1.1\r\nHost: d.test\r\nConnection: X-Secret\r\nX-Secret: 1\r\n\r\n"),
        case("a nominated protected header", "GET /n HTTP/1.1\r\nHost: d.test\r\nConnection: X-Forwarded-For\r\n\r\n"),
        // Not pipelined: once the connection is Pingora's, pipelined
        // requests get Pingora's answer (the first, then a close).
        Case {
            pipelined: false,
            ..in_turn("a lean request, then one for Pingora", &[&get("/first"), "GET /chunked-in HTTP/1.1\r\nHost: d.test\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", &get("/third")])
        },
        case("an obsolete line folding", "GET / HTTP/1.1\r\nHost: d.test\r\nX-Fold: a\r\n b\r\n\r\n"),
        case("a bare LF", "GET /lf HTTP/1.1\nHost: d.test\n\n"),
        case("a NUL in a header", "GET / HTTP/1.1\r\nHost: d.test\r\nX-Nul: a\0b\r\n\r\n"),
    ];
    let mut head = case(
        "HEAD of a body",
        "HEAD /plain HTTP/1.1\r\nHost: d.test\r\n\r\n",
    );
    head.heads = vec![true];
    cases.push(head);
    let mut head_then_get = in_turn(
        "HEAD then GET on one connection",
        &[
            "HEAD /big HTTP/1.1\r\nHost: d.test\r\n\r\n",
            "GET /plain HTTP/1.1\r\nHost: d.test\r\n\r\n",
        ],
    );
    head_then_get.heads = vec![true, false];
    cases.push(head_then_get);
    cases.push(Case {
        name: "a head and body in pieces",
        parts: vec![
            b"POST /pieces HTTP/1.1\r\nHo".to_vec(),
            b"st: d.test\r\nContent-Length: 10\r\n\r\n01234".to_vec(),
            b"56789".to_vec(),
        ],
        heads: vec![],
        pipelined: false,
        unlike_pingora: None,
    });
    cases.push(Case {
        name: "a body larger than one read",
        parts: vec![
            b"POST /large-body HTTP/1.1\r\nHost: d.test\r\nContent-Length: 200000\r\n\r\n".to_vec(),
            vec![b'x'; 100_000],
            vec![b'y'; 100_000],
        ],
        heads: vec![],
        pipelined: false,
        unlike_pingora: None,
    });
    cases.push(Case {
        name: "Expect: 100-continue, the body held back",
        parts: vec![
            b"POST /e HTTP/1.1\r\nHost: d.test\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n"
                .to_vec(),
            b"ok".to_vec(),
        ],
        heads: vec![],
        pipelined: false,
        // Also: Pingora sends no 100 Continue, and the client waits out
        // its own time before sending the body.
        unlike_pingora: Some(EXPECT_UPSTREAM),
    });
    cases
}

/// One case through one proxy: what the client got and what the backend
/// saw, with the proxy's own port (in `X-Forwarded-Port`) named, not given.
async fn through(
    p: &Proxies,
    proxy: &ProxyServer,
    tls: bool,
    parts: &[&[u8]],
    heads: &[bool],
) -> (Exchange, Vec<String>) {
    let addr = if tls {
        proxy.https_addrs[0]
    } else {
        proxy.http_addrs[0]
    };
    let port = format!("x-forwarded-port: {}", addr.port());
    let scrub = |s: &str| s.replace(&port, "x-forwarded-port: (the listener's)");
    let mut got = exchange(addr, tls.then_some(&p.tls), parts, heads).await;
    for r in &mut got.responses {
        r.body = scrub(&r.body);
    }
    let seen = std::mem::take(&mut *p.seen.lock());
    (got, seen.iter().map(|s| scrub(s)).collect())
}

async fn compare_paths(tls: bool) {
    let p = proxies().await;
    let mut differences = Vec::new();
    for case in cases() {
        if case.unlike_pingora.is_some() {
            continue;
        }
        let parts: Vec<&[u8]> = case.parts.iter().map(|p| p.as_slice()).collect();
        p.seen.lock().clear();
        let (pingora, pingora_seen) = through(&p, &p.pingora, tls, &parts, &case.heads).await;
        let (lean, lean_seen) = through(&p, &p.lean, tls, &parts, &case.heads).await;
        if lean != pingora || lean_seen != pingora_seen {
            differences.push(format!(
                "== {}\n-- Pingora: {pingora:#?}\n{pingora_seen:#?}\n-- lean: {lean:#?}\n{lean_seen:#?}",
                case.name
            ));
        }
        // Pipelined, the same requests get the same answers from the lean
        // path, in order (Pingora answers only the first and closes; nginx
        // answers them all).
        if case.pipelined {
            let all = case.parts.concat();
            let (piped, piped_seen) = through(&p, &p.lean, tls, &[&all], &case.heads).await;
            if piped != lean || piped_seen != lean_seen {
                differences.push(format!(
                    "== {} (pipelined)\n-- in turn: {lean:#?}\n{lean_seen:#?}\n-- pipelined: {piped:#?}\n{piped_seen:#?}",
                    case.name
                ));
            }
        }
    }
    assert!(
        differences.is_empty(),
        "{} cases differ:\n{}",
        differences.len(),
        differences.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lean_path_answers_as_the_pingora_path_does() {
    compare_paths(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_too() {
    compare_paths(true).await;
}

/// nginx proxying to `upstream` as ingress-nginx configures it for one
/// host, on a port of its own; stopped (by its PID) when dropped.
struct Nginx {
    child: std::process::Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn nginx(upstream: SocketAddr) -> Nginx {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let p = dir.path().display();
    let conf = format!(
        "master_process off; daemon off; pid {p}/nginx.pid; error_log {p}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{ access_log off;\n\
           client_body_temp_path {p}/body; proxy_temp_path {p}/proxy;\n\
           fastcgi_temp_path {p}/fcgi; uwsgi_temp_path {p}/uwsgi; scgi_temp_path {p}/scgi;\n\
           large_client_header_buffers 4 8k;\n\
           upstream up {{ server {upstream}; keepalive 32; }}\n\
           server {{ listen 127.0.0.1:{port}; server_name d.test;\n\
             location / {{ proxy_pass http://up; proxy_http_version 1.1;\n\
               proxy_set_header Connection \"\"; proxy_set_header Host $host;\n\
               proxy_set_header X-Real-IP $remote_addr; proxy_set_header X-Forwarded-For $remote_addr;\n\
               proxy_set_header Proxy \"\"; }} }} }}\n"
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = std::process::Command::new("nginx")
        .arg("-c")
        .arg(&path)
        .arg("-p")
        .arg(dir.path())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("nginx (apt-get install nginx-light) runs");
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Nginx {
        child,
        addr,
        _dir: dir,
    }
}

/// What the backend saw: the request lines only.
fn request_lines(seen: &[String]) -> Vec<String> {
    seen.iter()
        .map(|s| s.lines().next().unwrap_or("").to_string())
        .collect()
}

/// Refused: answered 4xx/5xx first, or closed without an answer.
fn refused(e: &Exchange) -> bool {
    e.responses.first().is_none_or(|r| r.status >= 400)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_requests_get_no_further_than_through_nginx() {
    let p = proxies().await;
    // A backend of nginx's own, telling the same log what it sees.
    let nginx = nginx(backend(p.seen.clone()).await);
    let mut table = vec!["| request | nginx | kedge |".to_string()];
    let mut wrong = Vec::new();
    for case in cases() {
        // Requests for the one host both serve alike, to the backend's
        // ordinary answer (how nginx takes a misbehaving backend is not
        // the question here).
        if case.backend_special() {
            continue;
        }
        if !case
            .parts
            .first()
            .is_some_and(|p| String::from_utf8_lossy(p).contains("Host: d.test\r\n"))
        {
            continue;
        }
        let parts: Vec<&[u8]> = case.parts.iter().map(|p| p.as_slice()).collect();
        p.seen.lock().clear();
        let by_nginx = exchange(nginx.addr, None, &parts, &case.heads).await;
        let nginx_seen = request_lines(&std::mem::take(&mut *p.seen.lock()));
        let (by_kedge, kedge_seen) = through(&p, &p.lean, false, &parts, &case.heads).await;
        let kedge_seen = request_lines(&kedge_seen);
        let status = |e: &Exchange| {
            e.responses
                .iter()
                .map(|r| r.status.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        table.push(format!(
            "| {} | {} | {} |",
            case.name,
            status(&by_nginx),
            status(&by_kedge)
        ));
        if case.unlike_pingora.is_some() {
            // Final answers: a server may leave out 100 Continue once the
            // body is there (RFC 9110 §10.1.1); nginx sends it regardless.
            let status = |e: &Exchange| {
                e.responses
                    .iter()
                    .map(|r| r.status)
                    .filter(|s| *s >= 200)
                    .collect::<Vec<_>>()
            };
            if status(&by_nginx) != status(&by_kedge) {
                wrong.push(format!("{}: answered unlike nginx", case.name));
            }
        }
        if refused(&by_nginx) && !refused(&by_kedge) {
            wrong.push(format!("{}: nginx refuses, kedge does not", case.name));
        }
        // Nothing reaches the backend through kedge that nginx would not
        // let through.
        for line in &kedge_seen {
            if !nginx_seen.contains(line) {
                wrong.push(format!("{}: only kedge passed on {line:?}", case.name));
            }
        }
    }
    println!("{}", table.join("\n"));
    assert!(
        wrong.is_empty(),
        "{}\n{}",
        wrong.join("\n"),
        table.join("\n")
    );
}
