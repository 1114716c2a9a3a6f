//! Oversized request bodies: the API server answers 413 with a Status, as
//! kube-apiserver does, and the client receives that answer even while it
//! is still sending the body.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::ConfigMap;
use kedge_control::testing::{self, TestServer};
use kube::api::{Api, PostParams};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::{client::TlsStream, rustls, TlsConnector};

/// What a client sends: well over the 3 MiB limit.
const SENT: usize = 20 * 1024 * 1024;

/// The Status kube-apiserver answers.
fn too_large() -> Value {
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Request entity too large: limit is 3145728",
        "reason": "RequestEntityTooLarge",
        "code": 413,
    })
}

struct Server {
    test: TestServer,
    addr: std::net::SocketAddr,
    token: String,
}

async fn start() -> Server {
    let test = testing::start().await;
    let addr = test
        .server
        .url
        .trim_start_matches("https://")
        .parse()
        .unwrap();
    let token = test.server.state.admin_token().to_string();
    Server { test, addr, token }
}

impl Server {
    async fn connect(&self, alpn: &[u8]) -> TlsStream<TcpStream> {
        let ca = std::fs::read(self.test.dir.path().join("ca.crt")).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pemfile::certs(&mut ca.as_slice()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// An HTTP/1.1 POST of `sent` bytes written whole before the answer is
    /// read, as a client that does not look for an early answer does. The
    /// body is chunked, or has a Content-Length of `advertised`.
    async fn post_http1(
        &self,
        tls: &mut TlsStream<TcpStream>,
        advertised: Option<usize>,
        sent: usize,
        authorized: bool,
    ) -> (u16, Value) {
        let mut head = "POST /api/v1/namespaces/default/configmaps HTTP/1.1\r\n\
             Host: localhost\r\nContent-Type: application/json\r\n"
            .to_string();
        if authorized {
            head += &format!("Authorization: Bearer {}\r\n", self.token);
        }
        match advertised {
            Some(length) => head += &format!("Content-Length: {length}\r\n\r\n"),
            None => head += "Transfer-Encoding: chunked\r\n\r\n",
        }
        tls.write_all(head.as_bytes()).await.unwrap();
        let block = vec![b' '; 64 * 1024];
        for _ in 0..sent / block.len() {
            if advertised.is_none() {
                tls.write_all(format!("{:x}\r\n", block.len()).as_bytes())
                    .await
                    .unwrap();
            }
            tls.write_all(&block)
                .await
                .expect("the server takes the body");
            if advertised.is_none() {
                tls.write_all(b"\r\n").await.unwrap();
            }
        }
        if advertised.is_none() {
            tls.write_all(b"0\r\n\r\n").await.unwrap();
        }
        tls.flush().await.unwrap();
        read_http1(tls).await
    }
}

/// The status code and JSON body of one HTTP/1.1 response with a
/// Content-Length.
async fn read_http1(tls: &mut TlsStream<TcpStream>) -> (u16, Value) {
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&answer[..end]).to_string();
                let length: usize = head
                    .lines()
                    .find_map(|l| {
                        let (name, value) = l.split_once(':')?;
                        name.eq_ignore_ascii_case("content-length")
                            .then(|| value.trim().parse().ok())?
                    })
                    .unwrap_or_else(|| panic!("no Content-Length in {head:?}"));
                if answer.len() >= end + 4 + length {
                    let code = head
                        .split_whitespace()
                        .nth(1)
                        .and_then(|c| c.parse().ok())
                        .unwrap_or_else(|| panic!("no status in {head:?}"));
                    let body = &answer[end + 4..end + 4 + length];
                    return (code, serde_json::from_slice(body).unwrap());
                }
            }
            match tls.read(&mut buf).await {
                Ok(0) => panic!("the connection ended after {answer:?}"),
                Ok(n) => answer.extend_from_slice(&buf[..n]),
                Err(e) => panic!("no answer: {e}"),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .expect("the answer in time")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_with_content_length_is_413() {
    let server = start().await;
    let mut tls = server.connect(b"http/1.1").await;
    assert_eq!(
        server.post_http1(&mut tls, Some(SENT), SENT, true).await,
        (413, too_large())
    );
    // The body was read to its end: the connection serves on.
    tls.write_all(b"GET /version HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (code, version) = read_http1(&mut tls).await;
    assert_eq!((code, version["major"].as_str()), (200, Some("1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_chunked_body_is_413() {
    let server = start().await;
    let mut tls = server.connect(b"http/1.1").await;
    assert_eq!(
        server.post_http1(&mut tls, None, SENT, true).await,
        (413, too_large())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_too_large_to_read_is_answered_at_once() {
    let server = start().await;
    let mut tls = server.connect(b"http/1.1").await;
    // Not read past the advertised length: answered before the body, and
    // what the client still sends does not cost it the answer.
    assert_eq!(
        server
            .post_http1(&mut tls, Some(1 << 30), 8 << 20, true)
            .await,
        (413, too_large())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_oversized_body_still_gets_its_answer() {
    let server = start().await;
    let mut tls = server.connect(b"http/1.1").await;
    // No credentials: anonymous, whom RBAC lets create nothing.
    let (code, status) = server.post_http1(&mut tls, Some(SENT), SENT, false).await;
    assert_eq!((code, status["reason"].as_str()), (403, Some("Forbidden")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_body_over_http2_is_413() {
    let server = start().await;
    let tls = server.connect(b"h2").await;
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        Some(&b"h2"[..]),
        "HTTP/2 negotiated"
    );
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);
    let blocks = futures::stream::iter(
        (0..SENT / (64 * 1024))
            .map(|_| Ok::<_, std::io::Error>(Frame::data(Bytes::from(vec![b' '; 64 * 1024])))),
    );
    let request = hyper::Request::post("https://localhost/api/v1/namespaces/default/configmaps")
        .header("Authorization", format!("Bearer {}", server.token))
        .header("Content-Type", "application/json")
        .body(StreamBody::new(blocks))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 413);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap(), too_large());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_sees_request_entity_too_large() {
    let server = start().await;
    let config_maps: Api<ConfigMap> = Api::namespaced(server.test.client.clone(), "default");
    let big: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "big"},
        "data": {"blob": "x".repeat(4 * 1024 * 1024)},
    }))
    .unwrap();
    match config_maps.create(&PostParams::default(), &big).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 413);
            assert_eq!(status.reason, "RequestEntityTooLarge");
            assert_eq!(status.message, "Request entity too large: limit is 3145728");
        }
        other => panic!("expected 413, got {other:?}"),
    }
    // A body under the limit is taken.
    let small: ConfigMap = serde_json::from_value(json!({
        "metadata": {"name": "small"},
        "data": {"blob": "x".repeat(1024 * 1024)},
    }))
    .unwrap();
    config_maps
        .create(&PostParams::default(), &small)
        .await
        .unwrap();
}
