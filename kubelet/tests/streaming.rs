//! pods/log and pods/exec end to end: a client talks to the API server,
//! which finds the pod's node and passes the request to that node's kubelet
//! server (client certificate from the cluster CA, WebSocket passed through
//! untouched), in front of a backend with canned containers.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::{self, BoxStream};
use futures::{AsyncBufReadExt, SinkExt, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Node, Pod};
use kedge_control::testing::{self, TestServer};
use kedge_kubelet::runtime::{
    ExecOutput, ExecRequest, ExecSession, LogOptions, Result as RuntimeResult, RuntimeError,
};
use kedge_kubelet::server::{self, ServerTls, StreamingBackend};
use kube::api::{Api, LogParams, Patch, PatchParams, PostParams};
use kube::Client;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, RootCertStore};
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

/// One container, `default/web/app`: logs are two lines (more while
/// following), exec knows `split` and `cat`.
struct Canned;

impl StreamingBackend for Canned {
    fn find_container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Option<String> {
        (namespace == "default" && pod == "web" && container == Some("app") && !previous)
            .then(|| "app-1".to_string())
    }

    fn container_logs<'a>(
        &'a self,
        _id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, RuntimeResult<BoxStream<'static, RuntimeResult<Bytes>>>> {
        let follow = options.follow;
        let tail = options.tail_lines;
        Box::pin(async move {
            let mut lines = vec!["one\n", "two\n"];
            if let Some(n) = tail {
                lines = lines.split_off(lines.len().saturating_sub(n as usize));
            }
            let head = stream::iter(lines.into_iter().map(|l| Ok(Bytes::from(l))));
            if !follow {
                return Ok(head.boxed());
            }
            // Following: one more line a little later, then nothing until
            // the client leaves.
            let later = stream::once(async {
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(Bytes::from("three\n"))
            });
            Ok(head.chain(later).chain(stream::pending()).boxed())
        })
    }

    fn exec<'a>(
        &'a self,
        _id: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, RuntimeResult<ExecSession>> {
        let command = request.command.clone();
        Box::pin(async move {
            match command.first().map(String::as_str) {
                Some("split") => Ok(ExecSession {
                    output: stream::iter([
                        Ok(ExecOutput::Stdout(Bytes::from("to-out\n"))),
                        Ok(ExecOutput::Stderr(Bytes::from("to-err\n"))),
                    ])
                    .boxed(),
                    stdin: None,
                    resize: None,
                    exit_code: Box::pin(async { Ok(3) }),
                }),
                Some("cat") => {
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
                _ => Err(RuntimeError::Failed("unknown command".into())),
            }
        })
    }
}

struct Cluster {
    client: Client,
    server: kedge_control::server::RunningServer,
    ca_pem: String,
    _dir: tempfile::TempDir,
}

/// An API server, a kubelet server for node `node-s`, and pods: `web`
/// (running on node-s), `idle` (not scheduled), `starting` (waiting).
async fn start() -> Cluster {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let TestServer {
        server,
        client,
        dir,
    } = testing::start().await;
    let ca_pem = std::fs::read_to_string(dir.path().join("ca.crt")).unwrap();

    let tls =
        ServerTls::self_signed("node-s", &[IpAddr::V4(Ipv4Addr::LOCALHOST)], &ca_pem).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(server::serve(listener, tls, Arc::new(Canned)));

    let nodes: Api<Node> = Api::all(client.clone());
    let node: Node = serde_json::from_value(json!({"metadata": {"name": "node-s"}})).unwrap();
    nodes.create(&PostParams::default(), &node).await.unwrap();
    let status = json!({"status": {
        "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
    }});
    nodes
        .patch_status("node-s", &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();

    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    for (name, node, state) in [
        (
            "web",
            Some("node-s"),
            json!({"running": {"startedAt": "2026-01-01T00:00:00Z"}}),
        ),
        ("idle", None, json!({})),
        (
            "starting",
            Some("node-s"),
            json!({"waiting": {"reason": "ContainerCreating"}}),
        ),
    ] {
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": [{"name": "app", "image": "busybox"}]},
        }))
        .unwrap();
        pods.create(&PostParams::default(), &pod).await.unwrap();
        if node.is_some() {
            let status = json!({"status": {"phase": "Running", "containerStatuses": [{
                "name": "app", "image": "busybox", "imageID": "", "ready": true,
                "restartCount": 0, "state": state,
            }]}});
            pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .unwrap();
        }
    }
    Cluster {
        client,
        server,
        ca_pem,
        _dir: dir,
    }
}

fn api_error(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.message),
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_pass_through_the_api_server() {
    let c = start().await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");

    let all = pods.logs("web", &LogParams::default()).await.unwrap();
    assert_eq!(all, "one\ntwo\n");
    let params = LogParams {
        container: Some("app".into()),
        tail_lines: Some(1),
        ..Default::default()
    };
    assert_eq!(pods.logs("web", &params).await.unwrap(), "two\n");

    // Following streams lines as they come.
    let follow = LogParams {
        follow: true,
        ..Default::default()
    };
    let mut lines = pods.log_stream("web", &follow).await.unwrap().lines();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let line = tokio::time::timeout(Duration::from_secs(10), lines.try_next())
            .await
            .expect("a line while following")
            .unwrap()
            .unwrap();
        seen.push(line);
    }
    assert_eq!(seen, ["one", "two", "three"]);

    let (code, message) = api_error(pods.logs("nope", &LogParams::default()).await.unwrap_err());
    assert_eq!((code, message.as_str()), (404, "pods \"nope\" not found"));
    let (code, message) = api_error(pods.logs("idle", &LogParams::default()).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (400, "pod idle does not have a host assigned")
    );
    let (code, message) = api_error(
        pods.logs("starting", &LogParams::default())
            .await
            .unwrap_err(),
    );
    assert_eq!(
        (code, message.as_str()),
        (
            400,
            "container \"app\" in pod \"starting\" is waiting to start: ContainerCreating"
        )
    );
    let bad = LogParams {
        container: Some("db".into()),
        ..Default::default()
    };
    let (code, message) = api_error(pods.logs("web", &bad).await.unwrap_err());
    assert_eq!(
        (code, message.as_str()),
        (400, "container db is not valid for pod web")
    );
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_rustls::client::TlsStream<TcpStream>>;

impl Cluster {
    /// Open `…/pods/{pod}/exec?{query}` as kubectl does: a WebSocket
    /// offering v5 and v4. Returns the socket and the chosen protocol, or
    /// the HTTP status and body of a refusal.
    async fn exec(&self, pod: &str, query: &str) -> Result<(Socket, String), (u16, Value)> {
        let mut roots = RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).unwrap())
            .unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let addr = self.server.url.trim_start_matches("https://").to_string();
        let tcp = TcpStream::connect(&addr).await.unwrap();
        let tls = TlsConnector::from(Arc::new(config))
            .connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), tcp)
            .await
            .unwrap();
        let url = format!("wss://{addr}/api/v1/namespaces/default/pods/{pod}/exec?{query}");
        let mut req = url.into_client_request().unwrap();
        let headers = req.headers_mut();
        headers.insert(
            "sec-websocket-protocol",
            "v5.channel.k8s.io, v4.channel.k8s.io".parse().unwrap(),
        );
        headers.insert(
            "authorization",
            format!("Bearer {}", self.server.state.admin_token())
                .parse()
                .unwrap(),
        );
        match tokio_tungstenite::client_async(req, tls).await {
            Ok((ws, resp)) => {
                let protocol = resp.headers()["sec-websocket-protocol"]
                    .to_str()
                    .unwrap()
                    .to_string();
                Ok((ws, protocol))
            }
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp.body().clone().unwrap_or_default();
                Err((
                    resp.status().as_u16(),
                    serde_json::from_slice(&body).unwrap(),
                ))
            }
            Err(e) => panic!("exec: {e}"),
        }
    }
}

/// Every binary message until the server closes: (channel, text).
async fn read_frames(ws: &mut Socket) -> Vec<(u8, String)> {
    let mut frames = Vec::new();
    let read = async {
        while let Some(message) = ws.next().await {
            match message.expect("a clean WebSocket") {
                Message::Binary(d) => frames.push((d[0], String::from_utf8_lossy(&d[1..]).into())),
                Message::Close(_) => break,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("the WebSocket closes");
    frames
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_passes_the_websocket_through() {
    let c = start().await;

    let (mut ws, protocol) = c
        .exec(
            "web",
            "command=split&command=now&container=app&stdout=true&stderr=true",
        )
        .await
        .unwrap();
    assert_eq!(protocol, "v5.channel.k8s.io");
    let frames = read_frames(&mut ws).await;
    assert_eq!(frames[0], (1, "to-out\n".to_string()));
    assert_eq!(frames[1], (2, "to-err\n".to_string()));
    let status: Value = serde_json::from_str(&frames[2].1).unwrap();
    assert_eq!(frames[2].0, 3);
    assert_eq!(status["reason"], "NonZeroExitCode");
    assert_eq!(
        status["details"]["causes"][0],
        json!({"reason": "ExitCode", "message": "3"})
    );

    let (mut ws, _) = c
        .exec("web", "command=cat&stdin=true&stdout=true&stderr=true")
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(b"\x00ping\n")))
        .await
        .unwrap();
    ws.send(Message::Binary(Bytes::from_static(&[255, 0])))
        .await
        .unwrap();
    let frames = read_frames(&mut ws).await;
    assert_eq!(frames[0], (1, "ping\n".to_string()));
    assert_eq!(
        frames.last().unwrap(),
        &(3, r#"{"metadata":{},"status":"Success"}"#.to_string())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn exec_refusals_are_statuses() {
    let c = start().await;
    let (code, status) = c
        .exec("starting", "command=ls&stdout=true")
        .await
        .err()
        .unwrap();
    assert_eq!(code, 400);
    assert_eq!(status["kind"], "Status");
    assert_eq!(
        status["message"],
        "container \"app\" in pod \"starting\" is waiting to start: ContainerCreating"
    );

    let (code, status) = c
        .exec("nope", "command=ls&stdout=true")
        .await
        .err()
        .unwrap();
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));

    // The kubelet's own refusal comes back as it sent it.
    let (code, status) = c.exec("web", "command=ls").await.err().unwrap();
    assert_eq!(code, 400);
    assert_eq!(
        status["message"],
        "you must specify at least 1 of stdin, stdout, stderr"
    );
}
