//! The kubelet's HTTPS endpoint (port 10250 by default, advertised in the
//! Node's `daemonEndpoints`): what the API server proxies `kubectl logs`
//! and `kubectl exec` to.
//!
//! - `GET /containerLogs/{namespace}/{pod}/{container}`: the container's
//!   output as text/plain, streamed while `follow=true`.
//! - `GET|POST /exec/{namespace}/{pod}/{container}?command=…`: a WebSocket
//!   speaking `v5.channel.k8s.io` (or `v4`), see [`channel`].
//! - `GET|POST /portForward/{namespace}/{pod}`: `kubectl port-forward`,
//!   SPDY/3.1 on the connection or tunnelled in a WebSocket, see
//!   [`portforward`].
//! - `DELETE /localPath/{dir}`: remove a deleted local-path volume's
//!   directory (the volume controller asks through the API server's
//!   `nodes/proxy`).
//! - `GET /healthz`: `ok`.
//! - `GET /metrics`: the kubelet's Prometheus metrics.
//! - `GET /metrics/resource`: what the node and its containers use, as
//!   the API server's resource metrics scrape it (see [`crate::stats`]).
//! - `GET /stats/summary`: the Summary API.
//!
//! Only clients with a certificate signed by the cluster CA get in: the
//! API server presents one; nothing else talks to a kubelet.

pub mod channel;
mod exec;
mod logs;
mod portforward;
mod spdy;
mod tls;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::pod_workers::PodWorkers;
use crate::runtime::{ExecRequest, ExecSession, LogOptions, Result as RuntimeResult};
use crate::stats::{Sample, Summaries};

pub use tls::{ServerTls, TlsError};

/// The port a kubelet serves on unless told otherwise.
pub const DEFAULT_PORT: u16 = 10250;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Response body of every handler: whole or streamed.
type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// What the server needs from the node: which container a pod's container
/// name means, and the runtime calls on it. [`PodWorkers`] is the real
/// one; tests put canned output behind it.
pub trait StreamingBackend: Send + Sync + 'static {
    /// The runtime id of a container of a pod on this node (`previous`: the
    /// one that ended before it); `container` may be `None` when the pod
    /// has a single container.
    fn find_container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Option<String>;

    /// The container's output.
    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, RuntimeResult<BoxStream<'static, RuntimeResult<Bytes>>>>;

    /// Run a command in the container.
    fn exec<'a>(
        &'a self,
        id: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, RuntimeResult<ExecSession>>;

    /// The address port forwarding connects to for a pod of this node.
    fn pod_ip(&self, namespace: &str, pod: &str) -> Option<std::net::IpAddr> {
        let _ = (namespace, pod);
        None
    }

    /// Remove a deleted local-path volume's directory.
    fn remove_local_path<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>> {
        let _ = name;
        Box::pin(async { Err("this node keeps no volumes".to_string()) })
    }

    /// The node's Prometheus metrics.
    fn metrics(&self) -> String {
        String::new()
    }

    /// The node's name.
    fn node_name(&self) -> &str {
        ""
    }

    /// What the node and its running containers use now.
    fn sample(&self) -> BoxFuture<'_, Sample> {
        Box::pin(async { Sample::default() })
    }
}

// === impl PodWorkers ===

impl StreamingBackend for PodWorkers {
    fn find_container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Option<String> {
        PodWorkers::find_container(self, namespace, pod, container, previous)
    }

    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, RuntimeResult<BoxStream<'static, RuntimeResult<Bytes>>>> {
        self.runtime().container_logs(id, options)
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, RuntimeResult<ExecSession>> {
        self.runtime().exec(id, request)
    }

    fn pod_ip(&self, namespace: &str, pod: &str) -> Option<std::net::IpAddr> {
        PodWorkers::pod_ip(self, namespace, pod)
    }

    fn remove_local_path<'a>(&'a self, name: &'a str) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(PodWorkers::remove_local_path(self, name))
    }

    fn metrics(&self) -> String {
        self.encode_metrics()
    }

    fn node_name(&self) -> &str {
        PodWorkers::node_name(self)
    }

    fn sample(&self) -> BoxFuture<'_, Sample> {
        Box::pin(Sample::take(&**self.runtime()))
    }
}

/// Serve the kubelet API on `listener` until the future is dropped.
pub async fn serve<B: StreamingBackend>(listener: TcpListener, tls: ServerTls, backend: Arc<B>) {
    let acceptor = TlsAcceptor::from(tls.config());
    let summaries = Arc::new(Summaries::default());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "kubelet server: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let acceptor = acceptor.clone();
        let backend = backend.clone();
        let summaries = summaries.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(t)) => t,
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "kubelet server: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "kubelet server: TLS handshake timed out");
                    return;
                }
            };
            let service = hyper::service::service_fn(move |req| {
                let backend = backend.clone();
                let summaries = summaries.clone();
                async move { Ok::<_, Infallible>(handle(backend, &summaries, req).await) }
            });
            // HTTP/1.1 only: WebSocket upgrades need it, and the API server
            // is the only client.
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "kubelet server: connection ended with an error");
            }
        });
    }
}

/// Route one request.
async fn handle<B: StreamingBackend>(
    backend: Arc<B>,
    summaries: &Summaries,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_string();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let method = req.method().clone();
    let response = match (&method, segments.as_slice()) {
        (&Method::GET, ["healthz"]) => text_response(StatusCode::OK, "ok"),
        (&Method::GET, ["metrics"]) => Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .body(full(backend.metrics()))
            .expect("a valid response"),
        (&Method::GET, ["metrics", "resource"]) => Response::builder()
            .status(StatusCode::OK)
            .header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
            .body(full(backend.sample().await.resource_metrics()))
            .expect("a valid response"),
        (&Method::GET, ["stats", "summary"]) => {
            let sample = backend.sample().await;
            let summary = summaries.summary(backend.node_name(), &sample);
            Response::builder()
                .status(StatusCode::OK)
                .header("Content-Type", "application/json")
                .body(full(summary.to_string()))
                .expect("a valid response")
        }
        (&Method::GET, ["containerLogs", namespace, pod, container]) => {
            logs::handle(&*backend, namespace, pod, container, req.uri().query()).await
        }
        // The form with the pod's UID is accepted too; the name is enough.
        (&Method::GET | &Method::POST, ["exec", namespace, pod, container])
        | (&Method::GET | &Method::POST, ["exec", namespace, pod, _, container]) => {
            let target = exec::Target {
                namespace: namespace.to_string(),
                pod: pod.to_string(),
                container: container.to_string(),
            };
            exec::handle(backend, target, req).await
        }
        (&Method::DELETE, ["localPath", name]) => match backend.remove_local_path(name).await {
            Ok(()) => text_response(StatusCode::OK, "removed"),
            Err(message) => status_response(StatusCode::BAD_REQUEST, "BadRequest", &message),
        },
        (&Method::GET | &Method::POST, ["portForward", namespace, pod])
        | (&Method::GET | &Method::POST, ["portForward", namespace, pod, _]) => {
            let (namespace, pod) = (namespace.to_string(), pod.to_string());
            portforward::handle(backend, &namespace, &pod, req).await
        }
        (
            _,
            ["healthz"]
            | ["metrics"]
            | ["metrics", "resource"]
            | ["stats", "summary"]
            | ["containerLogs", ..]
            | ["exec", ..]
            | ["localPath", ..]
            | ["portForward", ..],
        ) => status_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            &format!("{method} is not allowed on {path}"),
        ),
        _ => status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("the kubelet serves nothing at {path}"),
        ),
    };
    tracing::debug!(%method, %path, code = response.status().as_u16(), "kubelet request");
    response
}

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

fn text_response(code: StatusCode, text: &'static str) -> Response<Body> {
    Response::builder()
        .status(code)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(full(text))
        .expect("static response parts are valid")
}

/// An error as a `metav1.Status`, which the API server passes on.
fn status_response(code: StatusCode, reason: &str, message: &str) -> Response<Body> {
    let status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code.as_u16(),
    });
    Response::builder()
        .status(code)
        .header("Content-Type", "application/json")
        .body(full(status.to_string()))
        .expect("static response parts are valid")
}

/// The answer when a pod's container is not on this node.
fn container_not_found(namespace: &str, pod: &str, container: &str) -> Response<Body> {
    status_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("container {container:?} in pod \"{namespace}/{pod}\" not found on this node"),
    )
}

/// A runtime error while answering a request.
fn runtime_error_response(e: &crate::runtime::RuntimeError) -> Response<Body> {
    use crate::runtime::RuntimeError;
    match e {
        RuntimeError::NotFound { .. } => {
            status_response(StatusCode::NOT_FOUND, "NotFound", &e.to_string())
        }
        RuntimeError::Unsupported(_) => {
            status_response(StatusCode::BAD_REQUEST, "BadRequest", &e.to_string())
        }
        _ => status_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            &e.to_string(),
        ),
    }
}

/// A query string's pairs, skipping empty keys (`?&follow=true`).
fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(raw.unwrap_or("").as_bytes())
        .filter(|(k, _)| !k.is_empty())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// A boolean query value as Kubernetes parses it (`strconv.ParseBool`).
fn parse_bool(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Ok(true),
        "" | "0" | "f" | "F" | "false" | "FALSE" | "False" => Ok(false),
        _ => Err(format!("{key}: invalid boolean {value:?}")),
    }
}

#[cfg(test)]
mod tests;
