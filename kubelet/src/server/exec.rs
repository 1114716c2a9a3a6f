//! `GET|POST /exec/{namespace}/{pod}/{container}`: a command in a running
//! container over a WebSocket speaking `v5.channel.k8s.io` (or `v4`).
//!
//! The lookup and the handshake are checked before answering 101, so those
//! failures are plain HTTP Status errors; once upgraded, every outcome is a
//! Status on channel 3, as Kubernetes' kubelet reports it.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::stream::{BoxStream, SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{
    HeaderMap, CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL,
    SEC_WEBSOCKET_VERSION, UPGRADE,
};
use hyper::upgrade::Upgraded;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::channel::{self, Inbound, Protocol};
use super::{
    container_not_found, full, parse_bool, query_pairs, status_response, Body, StreamingBackend,
};
use crate::runtime::{ExecOutput, ExecRequest, ExecSession, ResizeFn, Result as RuntimeResult};

/// How long the client gets to answer our close before the connection is
/// dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

type Socket = WebSocketStream<TokioIo<Upgraded>>;

/// The container an exec request addresses.
#[derive(Debug, Clone)]
pub(super) struct Target {
    pub namespace: String,
    pub pod: String,
    pub container: String,
}

/// What an exec query asks for.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct ExecQuery {
    /// Passed to the runtime.
    pub request: ExecRequest,
    /// Send the process's stdout.
    pub stdout: bool,
    /// Send the process's stderr (never with a TTY, which merges it).
    pub stderr: bool,
}

/// Parse the query of an exec request as Kubernetes' kubelet does.
pub(super) fn parse_query(raw: Option<&str>) -> Result<ExecQuery, String> {
    let mut q = ExecQuery {
        request: ExecRequest::default(),
        stdout: false,
        stderr: false,
    };
    for (key, value) in query_pairs(raw) {
        match key.as_str() {
            "command" => q.request.command.push(value),
            "stdin" => q.request.stdin = parse_bool(&key, &value)?,
            "tty" => q.request.tty = parse_bool(&key, &value)?,
            "stdout" => q.stdout = parse_bool(&key, &value)?,
            "stderr" => q.stderr = parse_bool(&key, &value)?,
            _ => {}
        }
    }
    if q.request.command.is_empty() {
        return Err("you must specify at least one command for the container".into());
    }
    if q.request.tty {
        q.stderr = false;
    }
    if !q.request.stdin && !q.stdout && !q.stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr".into());
    }
    Ok(q)
}

/// Check a WebSocket upgrade request; returns the protocol to speak and
/// the `Sec-WebSocket-Accept` value, or why the request cannot upgrade.
pub(super) fn accept_websocket(headers: &HeaderMap) -> Result<(Protocol, String), String> {
    let value = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let upgrade = value(UPGRADE).to_ascii_lowercase();
    if upgrade.starts_with("spdy") {
        return Err(
            "SPDY is not supported by this kubelet; use a WebSocket client (v5.channel.k8s.io)"
                .into(),
        );
    }
    let connection = value(CONNECTION).to_ascii_lowercase();
    if !upgrade.split(',').any(|u| u.trim() == "websocket")
        || !connection.split(',').any(|c| c.trim() == "upgrade")
    {
        return Err("Upgrade request required".into());
    }
    if value(SEC_WEBSOCKET_VERSION) != "13" {
        return Err("unsupported WebSocket version: only 13 is spoken".into());
    }
    let key = value(SEC_WEBSOCKET_KEY);
    if key.is_empty() {
        return Err("missing Sec-WebSocket-Key".into());
    }
    let offered = headers
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok());
    let protocol = Protocol::negotiate(offered).ok_or_else(|| {
        format!(
            "none of the offered WebSocket protocols is spoken here; offer {} or {}",
            Protocol::V5.name(),
            Protocol::V4.name()
        )
    })?;
    Ok((protocol, derive_accept_key(key.as_bytes())))
}

/// Answer an exec request: 101 and the session in a task of its own.
pub(super) async fn handle<B: StreamingBackend>(
    backend: Arc<B>,
    target: Target,
    mut req: Request<Incoming>,
) -> Response<Body> {
    let query = match parse_query(req.uri().query()) {
        Ok(q) => q,
        Err(message) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &message),
    };
    let (protocol, accept) = match accept_websocket(req.headers()) {
        Ok(a) => a,
        Err(message) => return status_response(StatusCode::BAD_REQUEST, "BadRequest", &message),
    };
    let Some(id) = backend.find_container(
        &target.namespace,
        &target.pod,
        Some(&target.container),
        false,
    ) else {
        return container_not_found(&target.namespace, &target.pod, &target.container);
    };
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "exec: upgrade failed");
                return;
            }
        };
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        run(socket, protocol, &*backend, &id, &query, &target).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "Upgrade")
        .header(SEC_WEBSOCKET_ACCEPT, accept)
        .header(SEC_WEBSOCKET_PROTOCOL, protocol.name())
        .body(full(""))
        .expect("static response parts are valid")
}

/// Run the command and bridge it to the WebSocket until it ends.
async fn run<B: StreamingBackend>(
    socket: Socket,
    protocol: Protocol,
    backend: &B,
    id: &str,
    query: &ExecQuery,
    target: &Target,
) {
    let (mut tx, rx) = socket.split();
    let (input, status) = match backend.exec(id, &query.request).await {
        Ok(session) => {
            let ExecSession {
                output,
                stdin,
                resize,
                exit_code,
            } = session;
            let input = tokio::spawn(pump_input(rx, protocol, stdin, resize));
            let Some(status) = pump_output(&mut tx, output, query).await else {
                // The client is gone; dropping the session ends the exec's
                // streams.
                input.abort();
                return;
            };
            let status = match status {
                Ok(()) => match exit_code.await {
                    Ok(code) => channel::exit_status(&query.request.command, code),
                    Err(e) => channel::internal_error(&format!(
                        "error waiting for the command in container {:?}: {e}",
                        target.container
                    )),
                },
                Err(e) => channel::internal_error(&format!(
                    "error reading the output of the command in container {:?}: {e}",
                    target.container
                )),
            };
            (input, status)
        }
        Err(e) => {
            tracing::debug!(pod = %target.pod, container = %target.container, error = %e, "exec failed");
            let input = tokio::spawn(pump_input(rx, protocol, None, None));
            let status =
                channel::internal_error(&format!("error executing command in container: {e}"));
            (input, status)
        }
    };
    close(tx, input, status).await;
}

/// Send the output until it ends: `Some(Ok)` when it ended, `Some(Err)`
/// when the runtime failed, `None` when the client went away.
async fn pump_output(
    tx: &mut SplitSink<Socket, Message>,
    mut output: BoxStream<'static, RuntimeResult<ExecOutput>>,
    query: &ExecQuery,
) -> Option<RuntimeResult<()>> {
    while let Some(item) = output.next().await {
        let message = match item {
            Ok(ExecOutput::Stdout(b)) if query.stdout => channel::frame(channel::STDOUT, &b),
            Ok(ExecOutput::Stderr(b)) if query.stderr => channel::frame(channel::STDERR, &b),
            Ok(_) => continue,
            Err(e) => return Some(Err(e)),
        };
        if tx.send(Message::Binary(message)).await.is_err() {
            return None;
        }
    }
    Some(Ok(()))
}

/// Feed the client's stdin and resizes to the exec until the client closes.
async fn pump_input(
    mut rx: SplitStream<Socket>,
    protocol: Protocol,
    mut stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    resize: Option<ResizeFn>,
) {
    while let Some(message) = rx.next().await {
        let data = match message {
            Ok(Message::Binary(data)) => data,
            Ok(Message::Close(_)) | Err(_) => break,
            // Pings are answered by the socket itself; text frames belong
            // to the base64 protocols, which are not spoken.
            Ok(_) => continue,
        };
        match channel::parse(protocol, &data) {
            Ok(Inbound::Stdin(bytes)) => {
                if let Some(w) = stdin.as_mut() {
                    let written = async {
                        w.write_all(&bytes).await?;
                        w.flush().await
                    };
                    if let Err(e) = written.await {
                        tracing::debug!(error = %e, "exec: writing stdin");
                        stdin = None;
                    }
                }
            }
            Ok(Inbound::CloseStdin) => close_stdin(&mut stdin).await,
            Ok(Inbound::Resize { width, height }) => {
                if let Some(resize) = &resize {
                    if let Err(e) = resize(width, height).await {
                        tracing::debug!(error = %e, "exec: resizing the TTY");
                    }
                }
            }
            Ok(Inbound::Ignored) => {}
            Err(e) => tracing::debug!(error = %e, "exec: ignoring a client message"),
        }
    }
    close_stdin(&mut stdin).await;
}

async fn close_stdin(stdin: &mut Option<Pin<Box<dyn AsyncWrite + Send>>>) {
    if let Some(mut w) = stdin.take() {
        if let Err(e) = w.shutdown().await {
            tracing::debug!(error = %e, "exec: closing stdin");
        }
    }
}

/// Send the final Status, then close the WebSocket.
async fn close(mut tx: SplitSink<Socket, Message>, input: JoinHandle<()>, status: Value) {
    let status = channel::frame(channel::ERROR, status.to_string().as_bytes());
    let _ = tx.send(Message::Binary(status)).await;
    let _ = tx
        .send(Message::Close(Some(CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        })))
        .await;
    // The reader sees the client's answer to the close and ends; a client
    // that never answers is cut off.
    let abort = input.abort_handle();
    if tokio::time::timeout(CLOSE_GRACE, input).await.is_err() {
        abort.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn parses_exec_queries() {
        let q = parse_query(Some(
            "command=sh&command=-c&command=echo+a%26b&container=c&stdin=true&stdout=true&stderr=true",
        ))
        .unwrap();
        assert_eq!(q.request.command, ["sh", "-c", "echo a&b"]);
        assert!(q.request.stdin && !q.request.tty && q.stdout && q.stderr);

        let q = parse_query(Some("command=sh&stdin=1&stdout=1&stderr=1&tty=1")).unwrap();
        assert!(q.request.tty && q.stdout);
        assert!(!q.stderr, "a TTY merges stderr into stdout");

        assert!(parse_query(Some("stdout=true")).is_err());
        assert!(parse_query(Some("command=ls")).is_err());
        assert!(parse_query(Some("command=ls&tty=true")).is_err());
        assert!(parse_query(Some("command=ls&stdout=yes")).is_err());
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                hyper::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    #[test]
    fn accepts_websocket_upgrades() {
        let base = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "websocket"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        let mut ok = base.to_vec();
        ok.push(("sec-websocket-protocol", "v5.channel.k8s.io"));
        ok.push(("sec-websocket-protocol", "v4.channel.k8s.io"));
        let (protocol, accept) = accept_websocket(&headers(&ok)).unwrap();
        assert_eq!(protocol, Protocol::V5);
        // RFC 6455's example.
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

        let mut v4 = base.to_vec();
        v4.push(("sec-websocket-protocol", "v4.channel.k8s.io"));
        assert_eq!(accept_websocket(&headers(&v4)).unwrap().0, Protocol::V4);

        assert!(accept_websocket(&headers(&base)).is_err(), "no protocol");
        let spdy = [
            ("connection", "Upgrade"),
            ("upgrade", "SPDY/3.1"),
            ("x-stream-protocol-version", "v4.channel.k8s.io"),
        ];
        assert!(accept_websocket(&headers(&spdy))
            .unwrap_err()
            .contains("SPDY"));
        assert_eq!(
            accept_websocket(&headers(&[])).unwrap_err(),
            "Upgrade request required"
        );
    }
}
