//! `GET|POST /portForward/{namespace}/{pod}`: `kubectl port-forward`.
//!
//! The client speaks `portforward.k8s.io` over SPDY/3.1, either on the
//! upgraded connection itself (`Upgrade: SPDY/3.1`) or tunnelled in a
//! WebSocket (`SPDY/3.1+portforward.k8s.io`, what kubectl ≥ 1.31 sends
//! first). For each local connection it opens two streams carrying the same
//! `requestID` and `port`: an `error` stream the kubelet writes a failure
//! to, and a `data` stream whose bytes go to and from the pod's port. The
//! kubelet connects to the port at the pod's IP; when the copy ends it
//! finishes both streams, which tells kubectl the connection is done.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, CONNECTION, SEC_WEBSOCKET_PROTOCOL, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::spdy::{self, Frame, HeaderCodec};
use super::{full, status_response, Body, StreamingBackend};

/// The subprotocol of port forwarding.
const PROTOCOL: &str = "portforward.k8s.io";

/// The WebSocket subprotocol that tunnels it.
const TUNNELED: &str = "SPDY/3.1+portforward.k8s.io";

/// How long to connect to the pod's port.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames queued for the connection's writer.
const WRITE_QUEUE: usize = 64;

/// Largest data frame sent: one read of the pod's socket.
const READ_CHUNK: usize = 32 << 10;

/// How the request upgrades.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Transport {
    /// The connection speaks SPDY after the 101.
    Spdy,
    /// The connection speaks WebSocket; its binary messages carry SPDY.
    WebSocket,
}

fn header(headers: &HeaderMap, name: impl hyper::header::AsHeaderName) -> &str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn choose_transport(headers: &HeaderMap) -> Result<Transport, String> {
    let upgrade = header(headers, UPGRADE).to_ascii_lowercase();
    if upgrade.split(',').any(|u| u.trim() == "websocket") {
        let offered = headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim() == TUNNELED);
        return if offered {
            Ok(Transport::WebSocket)
        } else {
            Err(format!("offer the WebSocket protocol {TUNNELED}"))
        };
    }
    if upgrade.starts_with("spdy/3.1") {
        let versions = headers
            .get_all("x-stream-protocol-version")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        return if versions.is_empty() || versions.contains(&PROTOCOL) {
            Ok(Transport::Spdy)
        } else {
            Err(format!(
                "unable to upgrade: unable to negotiate protocol: client supports {versions:?}, server supports [\"{PROTOCOL}\"]"
            ))
        };
    }
    Err("Upgrade request required".into())
}

/// Answer a port-forward request: 101 and the session in a task of its own.
pub(super) async fn handle<B: StreamingBackend>(
    backend: Arc<B>,
    namespace: &str,
    pod: &str,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let transport = match choose_transport(req.headers()) {
        Ok(t) => t,
        Err(message) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &message),
    };
    let Some(ip) = backend.pod_ip(namespace, pod) else {
        return status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("pod {namespace}/{pod} has no address on this node to forward to"),
        );
    };
    let name = format!("{namespace}/{pod}");
    let on_upgrade = hyper::upgrade::on(&mut req);
    let answer = match transport {
        Transport::Spdy => Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(UPGRADE, "SPDY/3.1")
            .header(CONNECTION, "Upgrade")
            .header("X-Stream-Protocol-Version", PROTOCOL),
        Transport::WebSocket => {
            let key = header(req.headers(), hyper::header::SEC_WEBSOCKET_KEY);
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header(UPGRADE, "websocket")
                .header(CONNECTION, "Upgrade")
                .header(
                    hyper::header::SEC_WEBSOCKET_ACCEPT,
                    tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes()),
                )
                .header(SEC_WEBSOCKET_PROTOCOL, TUNNELED)
        }
    };
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => TokioIo::new(u),
            Err(e) => {
                tracing::debug!(error = %e, "port-forward: upgrade failed");
                return;
            }
        };
        tracing::debug!(pod = %name, ?transport, "port-forward session");
        match transport {
            Transport::Spdy => session(upgraded, ip, &name).await,
            Transport::WebSocket => {
                let socket = WebSocketStream::from_raw_socket(upgraded, Role::Server, None).await;
                let (near, far) = tokio::io::duplex(64 << 10);
                let tunnel = tokio::spawn(tunnel(socket, far));
                session(near, ip, &name).await;
                tunnel.abort();
            }
        }
    });
    answer
        .body(full(""))
        .expect("static response parts are valid")
}

/// Carry the SPDY bytes between the WebSocket's binary messages and `io`.
async fn tunnel<S>(socket: WebSocketStream<S>, io: tokio::io::DuplexStream)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut ws_tx, mut ws_rx) = socket.split();
    let (mut rd, mut wr) = tokio::io::split(io);
    let inbound = async {
        while let Some(Ok(msg)) = ws_rx.next().await {
            match msg {
                Message::Binary(b) if wr.write_all(&b).await.is_err() => break,
                Message::Close(_) => break,
                _ => {}
            }
        }
        let _ = wr.shutdown().await;
    };
    let outbound = async {
        let mut buf = vec![0u8; READ_CHUNK + 64];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let chunk = Bytes::copy_from_slice(&buf[..n]);
                    if ws_tx.send(Message::Binary(chunk)).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = ws_tx.close().await;
    };
    tokio::join!(inbound, outbound);
}

/// The two streams of one forwarded connection, as they arrive.
#[derive(Default)]
struct Pair {
    error: Option<u32>,
    data: Option<u32>,
    port: u16,
    /// Bytes from the client for the pod, until the forward starts.
    inbound: Option<mpsc::Receiver<Bytes>>,
    forward: Option<AbortHandle>,
}

/// Run one SPDY session until the client goes away.
async fn session<S>(io: S, ip: IpAddr, pod: &str)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Bytes>(WRITE_QUEUE);
    let writer = tokio::spawn(async move {
        while let Some(frame) = out_rx.recv().await {
            if wr.write_all(&frame).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut codec = HeaderCodec::default();
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    // Client data streams: their request and where their bytes go.
    let mut data_streams: HashMap<u32, (String, mpsc::Sender<Bytes>)> = HashMap::new();
    let mut forwards = JoinSet::new();
    loop {
        let frame = match spdy::read_frame(&mut rd, &mut codec).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(%pod, error = %e, "port-forward session ended");
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream, headers, ..
            } => {
                let get = |n: &str| {
                    headers
                        .iter()
                        .find(|(k, _)| k == n)
                        .map(|(_, v)| v.as_str())
                        .unwrap_or("")
                };
                let kind = get("streamtype").to_string();
                let request = get("requestid").to_string();
                let port = get("port").to_string();
                let reply = spdy::syn_reply(stream, &mut codec);
                if out_tx.send(reply).await.is_err() {
                    break;
                }
                let pair = pairs.entry(request.clone()).or_default();
                match kind.as_str() {
                    "error" => pair.error = Some(stream),
                    "data" => {
                        pair.data = Some(stream);
                        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
                        pair.inbound = Some(rx);
                        data_streams.insert(stream, (request.clone(), tx));
                    }
                    _ => {
                        let _ = out_tx
                            .send(spdy::rst_stream(stream, spdy::PROTOCOL_ERROR))
                            .await;
                        continue;
                    }
                }
                pair.port = port.parse().unwrap_or(0);
                if let (Some(error), Some(data), None) = (pair.error, pair.data, &pair.forward) {
                    let inbound = pair.inbound.take().expect("set with the data stream");
                    let handle = forwards.spawn(forward(
                        ForwardTo {
                            ip,
                            port: pair.port,
                            port_header: port,
                            pod: pod.to_string(),
                        },
                        error,
                        data,
                        inbound,
                        out_tx.clone(),
                    ));
                    pair.forward = Some(handle);
                }
            }
            Frame::Data { stream, fin, data } => {
                if let Some((_, tx)) = data_streams.get(&stream) {
                    // A full queue holds the whole session back, as SPDY
                    // without flow control must.
                    if !data.is_empty() && tx.send(data).await.is_err() {
                        data_streams.remove(&stream);
                    }
                }
                if fin {
                    // The client sends nothing more: the pod's side of the
                    // connection is shut for writing.
                    data_streams.remove(&stream);
                }
            }
            Frame::RstStream { stream } => {
                if let Some((request, _)) = data_streams.remove(&stream) {
                    if let Some(pair) = pairs.remove(&request) {
                        if let Some(f) = pair.forward {
                            f.abort();
                        }
                    }
                }
            }
            Frame::Ping(id) => {
                if out_tx.send(spdy::ping(id)).await.is_err() {
                    break;
                }
            }
            Frame::GoAway => break,
            Frame::Other => {}
        }
        // Forget requests whose forward is over.
        while forwards.try_join_next().is_some() {}
        pairs.retain(|_, p| p.forward.as_ref().is_none_or(|f| !f.is_finished()));
    }
    forwards.abort_all();
    drop(out_tx);
    let _ = writer.await;
}

/// Where one forwarded connection goes.
struct ForwardTo {
    ip: IpAddr,
    port: u16,
    port_header: String,
    pod: String,
}

/// Connect to the pod's port and copy both ways; then report any failure
/// on the error stream and finish both streams.
async fn forward(
    to: ForwardTo,
    error_stream: u32,
    data_stream: u32,
    mut inbound: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Bytes>,
) {
    let result = async {
        if to.port == 0 {
            return Err(format!("invalid port header {:?}", to.port_header));
        }
        let addr = SocketAddr::new(to.ip, to.port);
        let conn = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("dial tcp {addr}: i/o timeout"))?
            .map_err(|e| format!("dial tcp {addr}: {e}"))?;
        let _ = conn.set_nodelay(true);
        let (mut from_pod, mut to_pod) = conn.into_split();
        let upstream = async {
            while let Some(chunk) = inbound.recv().await {
                if to_pod.write_all(&chunk).await.is_err() {
                    return;
                }
            }
            let _ = to_pod.shutdown().await;
        };
        let downstream = async {
            let mut buf = vec![0u8; READ_CHUNK];
            loop {
                match from_pod.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if out
                            .send(spdy::data(data_stream, false, &buf[..n]))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        };
        // The client finishing only shuts the pod's side for writing; the
        // pod closing its side ends the forward (what the client still
        // sends then has nowhere to go).
        tokio::pin!(upstream, downstream);
        let mut upstream_done = false;
        loop {
            tokio::select! {
                _ = &mut upstream, if !upstream_done => upstream_done = true,
                _ = &mut downstream => break,
            }
        }
        Ok(())
    }
    .await;
    let _ = out.send(spdy::data(data_stream, true, b"")).await;
    if let Err(e) = result {
        let message = format!(
            "error forwarding port {} to pod {}: {e}",
            to.port_header, to.pod
        );
        tracing::debug!(%message, "port-forward");
        let _ = out
            .send(spdy::data(error_stream, false, message.as_bytes()))
            .await;
    }
    let _ = out.send(spdy::data(error_stream, true, b"")).await;
}
