//! The server over real TLS and WebSockets, in front of a backend with
//! canned containers.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use super::channel;
use super::{serve, ServerTls, StreamingBackend};
use crate::runtime::{
    ExecOutput, ExecRequest, ExecSession, LogOptions, Result as RuntimeResult, RuntimeError,
};

// === fake backend ===

/// Containers `default/web/app` (id `app-1`, previous `app-0`) and
/// `default/web/sidecar` (id `side-1`). Exec runs a few fake commands:
/// `split` (stdout, stderr, exit 3), `cat` (echoes stdin until it closes),
/// `size` (prints the first TTY size it is given).
#[derive(Default)]
struct Fake {
    log_calls: Mutex<Vec<(String, LogOptions)>>,
    exec_calls: Mutex<Vec<(String, ExecRequest)>>,
}

impl StreamingBackend for Fake {
    fn find_container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Option<String> {
        match (namespace, pod, container?, previous) {
            ("default", "web", "app", false) => Some("app-1".into()),
            ("default", "web", "app", true) => Some("app-0".into()),
            ("default", "web", "sidecar", false) => Some("side-1".into()),
            _ => None,
        }
    }

    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, RuntimeResult<BoxStream<'static, RuntimeResult<Bytes>>>> {
        self.log_calls
            .lock()
            .push((id.to_string(), options.clone()));
        let lines = match id {
            "side-1" => return Box::pin(async { Err(RuntimeError::Failed("disk gone".into())) }),
            "app-0" => vec!["previous\n"],
            _ => vec!["line 1\n", "line 2\n"],
        };
        let chunks: Vec<RuntimeResult<Bytes>> =
            lines.into_iter().map(|l| Ok(Bytes::from(l))).collect();
        Box::pin(async move { Ok(stream::iter(chunks).boxed()) })
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, RuntimeResult<ExecSession>> {
        self.exec_calls
            .lock()
            .push((id.to_string(), request.clone()));
        let command = request.command.first().cloned().unwrap_or_default();
        Box::pin(async move {
            match command.as_str() {
                "split" => Ok(ExecSession {
                    output: stream::iter([
                        Ok(ExecOutput::Stdout(Bytes::from("out\n"))),
                        Ok(ExecOutput::Stderr(Bytes::from("err\n"))),
                    ])
                    .boxed(),
                    stdin: None,
                    resize: None,
                    exit_code: Box::pin(async { Ok(3) }),
                }),
                "cat" => {
                    let (writer, reader) = tokio::io::duplex(1024);
                    let output = stream::unfold(reader, |mut reader| async move {
                        let mut buf = vec![0; 1024];
                        match reader.read(&mut buf).await {
                            Ok(0) | Err(_) => None,
                            Ok(n) => {
                                buf.truncate(n);
                                Some((Ok(ExecOutput::Stdout(Bytes::from(buf))), reader))
                            }
                        }
                    });
                    Ok(ExecSession {
                        output: output.boxed(),
                        stdin: Some(Box::pin(writer)),
                        resize: None,
                        exit_code: Box::pin(async { Ok(0) }),
                    })
                }
                "size" => {
                    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(u16, u16)>();
                    let output = stream::unfold(rx, |mut rx| async move {
                        let (w, h) = rx.recv().await?;
                        Some((
                            Ok(ExecOutput::Stdout(Bytes::from(format!("{h} {w}\r\n")))),
                            rx,
                        ))
                    })
                    .take(1);
                    Ok(ExecSession {
                        output: output.boxed(),
                        stdin: None,
                        resize: Some(Box::new(move |w, h| {
                            let _ = tx.send((w, h));
                            Box::pin(async { Ok(()) })
                        })),
                        exit_code: Box::pin(async { Ok(0) }),
                    })
                }
                other => Err(RuntimeError::Failed(format!("no such command {other:?}"))),
            }
        })
    }
}

// === TLS ===

struct Pki {
    ca_pem: String,
    ca: Issuer<'static, KeyPair>,
}

impl Pki {
    fn new() -> Self {
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, "test-ca");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            ca_pem: cert.pem(),
            ca: Issuer::new(params, key),
        }
    }

    /// A certificate and key signed by the CA.
    fn sign(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_string()]).unwrap();
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A client config trusting the CA, with a client certificate when
    /// `client` is set.
    fn client(&self, client: Option<(String, String)>) -> TlsConnector {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        let config = match client {
            Some((cert, key)) => builder
                .with_client_auth_cert(
                    vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                    PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
                )
                .unwrap(),
            None => builder.with_no_client_auth(),
        };
        TlsConnector::from(Arc::new(config))
    }
}

struct Harness {
    addr: SocketAddr,
    connector: TlsConnector,
    pki: Pki,
    backend: Arc<Fake>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn start() -> Harness {
    let pki = Pki::new();
    let (cert, key) = pki.sign("node-a", ExtendedKeyUsagePurpose::ServerAuth);
    let tls = ServerTls::new(&cert, &key, &pki.ca_pem).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let backend = Arc::new(Fake::default());
    let task = tokio::spawn(serve(listener, tls, backend.clone()));
    let connector = pki.client(Some(pki.sign(
        "kube-apiserver-kubelet-client",
        ExtendedKeyUsagePurpose::ClientAuth,
    )));
    Harness {
        addr,
        connector,
        pki,
        backend,
        task,
    }
}

impl Harness {
    async fn tls(&self, connector: &TlsConnector) -> std::io::Result<TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        let name = ServerName::IpAddress(Ipv4Addr::LOCALHOST.into());
        connector.connect(name, tcp).await
    }

    /// GET `path`: status, headers and body.
    async fn get_with(
        &self,
        connector: &TlsConnector,
        path: &str,
    ) -> Result<(u16, HashMap<String, String>, String), String> {
        let tls = self.tls(connector).await.map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header("host", "node-a")
            .body(Empty::<Bytes>::new())
            .unwrap();
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let code = resp.status().as_u16();
        let headers = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?;
        Ok((
            code,
            headers,
            String::from_utf8_lossy(&body.to_bytes()).into_owned(),
        ))
    }

    async fn get(&self, path: &str) -> (u16, HashMap<String, String>, String) {
        self.get_with(&self.connector, path).await.unwrap()
    }

    /// Open an exec WebSocket in `container` of pod `default/web`
    /// offering `protocols`.
    async fn exec_in(
        &self,
        container: &str,
        query: &str,
        protocols: &str,
    ) -> Result<
        (
            tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
            String,
        ),
        tokio_tungstenite::tungstenite::Error,
    > {
        let tls = self.tls(&self.connector).await.unwrap();
        let mut req = format!("wss://127.0.0.1/exec/default/web/{container}?{query}")
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("sec-websocket-protocol", protocols.parse().unwrap());
        let (ws, resp) = tokio_tungstenite::client_async(req, tls).await?;
        let protocol = resp
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        Ok((ws, protocol))
    }
}

impl Harness {
    async fn exec(
        &self,
        query: &str,
        protocols: &str,
    ) -> Result<
        (
            tokio_tungstenite::WebSocketStream<TlsStream<TcpStream>>,
            String,
        ),
        tokio_tungstenite::tungstenite::Error,
    > {
        self.exec_in("app", query, protocols).await
    }
}

/// Every binary message until the server closes: (channel, data).
async fn read_frames<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>) -> Vec<(u8, String)>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut frames = Vec::new();
    let read = async {
        while let Some(message) = ws.next().await {
            match message.expect("a clean WebSocket") {
                Message::Binary(data) => {
                    frames.push((data[0], String::from_utf8_lossy(&data[1..]).into_owned()))
                }
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the server closes the WebSocket");
    frames
}

fn status_of(frames: &[(u8, String)]) -> serde_json::Value {
    let (_, status) = frames
        .iter()
        .find(|(c, _)| *c == channel::ERROR)
        .expect("a Status on channel 3");
    serde_json::from_str(status).unwrap()
}

// === tests ===

#[tokio::test]
async fn requires_a_client_certificate_from_the_cluster_ca() {
    let h = start().await;
    let (code, _, body) = h.get("/healthz").await;
    assert_eq!((code, body.as_str()), (200, "ok"));

    let anonymous = h.pki.client(None);
    assert!(h.get_with(&anonymous, "/healthz").await.is_err());

    let stranger = Pki::new();
    let foreign = h.pki.client(Some(
        stranger.sign("intruder", ExtendedKeyUsagePurpose::ClientAuth),
    ));
    assert!(h.get_with(&foreign, "/healthz").await.is_err());
}

#[tokio::test]
async fn self_signed_serving_certificates_are_made() {
    let pki = Pki::new();
    let tls = ServerTls::self_signed("node-a", &[IpAddr::V4(Ipv4Addr::LOCALHOST)], &pki.ca_pem);
    assert!(tls.is_ok(), "{tls:?}");
    assert!(ServerTls::self_signed("node-a", &[], "not a pem").is_err());
}

#[tokio::test]
async fn streams_container_logs() {
    let h = start().await;
    let (code, headers, body) = h
        .get("/containerLogs/default/web/app?follow=true&tailLines=5&timestamps=true&limitBytes=100&sinceSeconds=9")
        .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(headers["transfer-encoding"], "chunked");
    assert_eq!(body, "line 1\nline 2\n");
    let (id, options) = h.backend.log_calls.lock()[0].clone();
    assert_eq!(id, "app-1");
    assert_eq!(
        options,
        LogOptions {
            follow: true,
            tail_lines: Some(5),
            timestamps: true,
            since_seconds: Some(9),
            limit_bytes: Some(100),
        }
    );

    let (_, _, body) = h.get("/containerLogs/default/web/app?previous=true").await;
    assert_eq!(body, "previous\n");
}

#[tokio::test]
async fn log_errors_are_statuses() {
    let h = start().await;
    let (code, _, body) = h.get("/containerLogs/default/web/nope").await;
    assert_eq!(code, 404);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "NotFound");

    let (code, _, body) = h.get("/containerLogs/default/web/app?tailLines=-3").await;
    assert_eq!(code, 400, "{body}");

    let (code, _, body) = h.get("/containerLogs/default/web/sidecar").await;
    assert_eq!(code, 500);
    assert!(body.contains("disk gone"), "{body}");

    let (code, _, _) = h.get("/nothing/here").await;
    assert_eq!(code, 404);
}

#[tokio::test]
async fn exec_reports_output_and_a_non_zero_exit() {
    let h = start().await;
    let (mut ws, protocol) = h
        .exec(
            "command=split&command=x&stdout=true&stderr=true",
            "v5.channel.k8s.io, v4.channel.k8s.io",
        )
        .await
        .unwrap();
    assert_eq!(protocol, "v5.channel.k8s.io");
    let frames = read_frames(&mut ws).await;
    assert_eq!(frames[0], (channel::STDOUT, "out\n".to_string()));
    assert_eq!(frames[1], (channel::STDERR, "err\n".to_string()));
    let status = status_of(&frames);
    assert_eq!(status["status"], "Failure");
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(status["details"]["causes"][0]["message"], "3");
    let (id, request) = h.backend.exec_calls.lock()[0].clone();
    assert_eq!(id, "app-1");
    assert_eq!(request.command, ["split", "x"]);
}

#[tokio::test]
async fn exec_drops_streams_not_asked_for() {
    let h = start().await;
    let (mut ws, _) = h
        .exec("command=split&stdout=true", "v5.channel.k8s.io")
        .await
        .unwrap();
    let frames = read_frames(&mut ws).await;
    assert!(
        frames.iter().all(|(c, _)| *c != channel::STDERR),
        "{frames:?}"
    );
}

#[tokio::test]
async fn exec_echoes_stdin_until_the_client_closes_it() {
    let h = start().await;
    let (mut ws, _) = h
        .exec(
            "command=cat&stdin=true&stdout=true&stderr=true",
            "v5.channel.k8s.io",
        )
        .await
        .unwrap();
    ws.send(Message::Binary(channel::frame(channel::STDIN, b"hello\n")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[
        channel::CLOSE,
        channel::STDIN,
    ])))
    .await
    .unwrap();
    let frames = read_frames(&mut ws).await;
    let stdout: String = frames
        .iter()
        .filter(|(c, _)| *c == channel::STDOUT)
        .map(|(_, d)| d.as_str())
        .collect();
    assert_eq!(stdout, "hello\n");
    assert_eq!(
        status_of(&frames),
        serde_json::json!({"metadata": {}, "status": "Success"})
    );
}

#[tokio::test]
async fn exec_resizes_the_tty_over_v4() {
    let h = start().await;
    let (mut ws, protocol) = h
        .exec(
            "command=size&stdin=true&stdout=true&tty=true",
            "v4.channel.k8s.io",
        )
        .await
        .unwrap();
    assert_eq!(protocol, "v4.channel.k8s.io");
    ws.send(Message::Binary(channel::frame(
        channel::RESIZE,
        br#"{"Width":100,"Height":40}"#,
    )))
    .await
    .unwrap();
    let frames = read_frames(&mut ws).await;
    assert_eq!(frames[0], (channel::STDOUT, "40 100\r\n".to_string()));
    assert_eq!(status_of(&frames)["status"], "Success");
}

#[tokio::test]
async fn exec_failures_after_the_upgrade_are_statuses() {
    let h = start().await;
    let (mut ws, _) = h
        .exec("command=missing&stdout=true", "v5.channel.k8s.io")
        .await
        .unwrap();
    let frames = read_frames(&mut ws).await;
    let status = status_of(&frames);
    assert_eq!(status["reason"], "InternalError");
    assert!(
        status["message"]
            .as_str()
            .unwrap()
            .contains("no such command"),
        "{status}"
    );
}

#[tokio::test]
async fn exec_failures_before_the_upgrade_are_http_errors() {
    let h = start().await;
    let err = h
        .exec("command=split&stdout=true", "v3.channel.k8s.io")
        .await
        .expect_err("no common protocol");
    assert!(err.to_string().contains("400"), "{err}");

    let (code, _, body) = h.get("/exec/default/web/app?command=ls&stdout=1").await;
    assert_eq!(code, 400);
    assert!(body.contains("Upgrade request required"), "{body}");

    let (code, _, _) = h.get("/exec/default/web/nope?command=ls&stdout=1").await;
    assert_eq!(code, 400, "the handshake is checked first");

    let err = h
        .exec_in("nope", "command=ls&stdout=true", "v5.channel.k8s.io")
        .await
        .expect_err("no such container");
    assert!(err.to_string().contains("404"), "{err}");
}
