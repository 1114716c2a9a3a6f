//! HTTP in the mesh, on the caller's side (as Linkerd's proxy does it): a
//! meshed pod's connection to an HTTP port of a Service (see
//! [`HttpPort`]) is served by the node proxy as HTTP, and each request is
//! sent to an endpoint of its own choosing — the less busy of two picked
//! at random (least-request, power of two choices), endpoints that keep
//! failing left out for a while (outlier ejection) — over connections
//! kept per endpoint (through the tunnel to meshed endpoints). A request
//! that may be repeated (an idempotent method without a body) is tried
//! again on another endpoint after a failed connection or a 502/503/504;
//! the Service's timeout bounds the whole. HTTP/2 (gRPC) requests of one
//! connection spread over the endpoints, none pinned to one.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::tunnel::{copy_both_ways, TunnelError};
use crate::table::HttpPort;

/// The bodies the proxy sends on.
pub type Body = BoxBody<Bytes, hyper::Error>;

/// Failures in a row that eject an endpoint (Envoy's `consecutive_5xx`).
const EJECT_AFTER: u32 = 5;
/// How long an ejected endpoint is left out (Envoy's base ejection time).
const EJECTION: Duration = Duration::from_secs(30);

/// A byte stream to an endpoint.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Makes a stream to an endpoint (through the tunnel when it is meshed).
pub type Dial =
    Arc<dyn Fn(SocketAddr) -> BoxFuture<'static, Result<Box<dyn Io>, TunnelError>> + Send + Sync>;

/// A connection to an endpoint, as the HTTP client pool holds it.
pub struct Upstream(TokioIo<Box<dyn Io>>);

impl Connection for Upstream {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Upstream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Upstream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// The client pool's connector: the URI's authority is the endpoint.
#[derive(Clone)]
pub struct Connector(Dial);

impl tower_service::Service<Uri> for Connector {
    type Response = Upstream;
    type Error = TunnelError;
    type Future = BoxFuture<'static, Result<Upstream, TunnelError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), TunnelError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let dial = self.0.clone();
        Box::pin(async move {
            let endpoint = uri
                .authority()
                .and_then(|a| a.as_str().parse::<SocketAddr>().ok())
                .ok_or_else(|| TunnelError::Identity(format!("no endpoint in {uri}")))?;
            Ok(Upstream(TokioIo::new(dial(endpoint).await?)))
        })
    }
}

/// One source pod's connections to endpoints, kept per endpoint: HTTP/1.1
/// connections one request at a time, an HTTP/2 connection for all.
#[derive(Clone)]
pub struct HttpClients {
    http1: Client<Connector, Body>,
    http2: Client<Connector, Body>,
}

impl HttpClients {
    /// Clients whose connections `dial` makes.
    pub fn new(dial: Dial) -> Self {
        let connector = Connector(dial);
        let mut builder = Client::builder(TokioExecutor::new());
        builder.pool_idle_timeout(Duration::from_secs(90));
        let http1 = builder.build(connector.clone());
        let http2 = builder.http2_only(true).build(connector);
        Self { http1, http2 }
    }
}

/// What is known of an endpoint's health.
#[derive(Default)]
struct EndpointState {
    outstanding: AtomicUsize,
    failures: AtomicU32,
    ejected_until: Mutex<Option<Instant>>,
}

/// Picks endpoints for requests, node-wide: least outstanding requests of
/// two, ejected endpoints left out (all of them taken back if all are
/// ejected, Envoy's panic mode).
#[derive(Default)]
pub struct RequestBalancer {
    endpoints: Mutex<HashMap<SocketAddr, Arc<EndpointState>>>,
    seed: AtomicU64,
}

/// An endpoint picked for a request; counts it outstanding until dropped.
pub struct Picked {
    /// The endpoint.
    pub endpoint: SocketAddr,
    state: Arc<EndpointState>,
}

impl Drop for Picked {
    fn drop(&mut self) {
        self.state.outstanding.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RequestBalancer {
    /// An endpoint of `endpoints` for a request, avoiding `tried` when
    /// there is another.
    pub fn pick(&self, endpoints: &[SocketAddr], tried: &[SocketAddr]) -> Option<Picked> {
        let now = Instant::now();
        let states: Vec<(SocketAddr, Arc<EndpointState>)> = {
            let mut known = self.endpoints.lock();
            endpoints
                .iter()
                .map(|e| (*e, known.entry(*e).or_default().clone()))
                .collect()
        };
        let healthy = |(_, s): &&(SocketAddr, Arc<EndpointState>)| {
            s.ejected_until.lock().is_none_or(|until| until <= now)
        };
        let mut candidates: Vec<&(SocketAddr, Arc<EndpointState>)> = states
            .iter()
            .filter(healthy)
            .filter(|(e, _)| !tried.contains(e))
            .collect();
        if candidates.is_empty() {
            candidates = states.iter().filter(healthy).collect();
        }
        if candidates.is_empty() {
            candidates = states.iter().collect();
        }
        let chosen = match candidates.len() {
            0 => return None,
            1 => candidates[0],
            n => {
                let r = self.random();
                let a = (r % n as u64) as usize;
                let b = (a + 1 + ((r >> 32) % (n as u64 - 1)) as usize) % n;
                let load = |i: usize| candidates[i].1.outstanding.load(Ordering::Relaxed);
                if load(b) < load(a) {
                    candidates[b]
                } else {
                    candidates[a]
                }
            }
        };
        chosen.1.outstanding.fetch_add(1, Ordering::Relaxed);
        Some(Picked {
            endpoint: chosen.0,
            state: chosen.1.clone(),
        })
    }

    /// How a request to `picked` went; returns whether that ejected it.
    pub fn record(&self, picked: &Picked, ok: bool) -> bool {
        if ok {
            picked.state.failures.store(0, Ordering::Relaxed);
            return false;
        }
        let failures = picked.state.failures.fetch_add(1, Ordering::Relaxed) + 1;
        if failures < EJECT_AFTER {
            return false;
        }
        picked.state.failures.store(0, Ordering::Relaxed);
        *picked.state.ejected_until.lock() = Some(Instant::now() + EJECTION);
        true
    }

    /// Forget endpoints no Service has any more.
    pub fn retain(&self, keep: impl Fn(&SocketAddr) -> bool) {
        self.endpoints.lock().retain(|e, _| keep(e));
    }

    /// xorshift64*, seeded once from the clock: fair enough to pick two
    /// endpoints, or a split's backend.
    pub fn random(&self) -> u64 {
        let mut x = self.seed.load(Ordering::Relaxed);
        if x == 0 {
            x = Instant::now().elapsed().as_nanos() as u64
                ^ std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0x9E37_79B9_7F4A_7C15, |d| d.as_nanos() as u64)
                | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.seed.store(x, Ordering::Relaxed);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// What happened to one request, for metrics and logs.
pub struct Outcome {
    /// The status answered to the application.
    pub status: StatusCode,
    /// The endpoint that answered, if one did.
    pub endpoint: Option<SocketAddr>,
    /// Attempts after the first.
    pub retries: u32,
    /// Endpoints ejected meanwhile.
    pub ejected: Vec<SocketAddr>,
}

/// What is told of each request as it ends.
pub type OnDone = dyn Fn(&Outcome, Duration) + Send + Sync;

/// What a connection's requests need: the Service port's current
/// endpoints, the balancer, the clients, and where outcomes go.
pub struct Route {
    /// The endpoints now (they change under a connection).
    pub endpoints: Box<dyn Fn() -> Arc<[SocketAddr]> + Send + Sync>,
    /// The port's request policy.
    pub port: HttpPort,
    /// Node-wide endpoint choice.
    pub balancer: Arc<RequestBalancer>,
    /// The source pod's connections.
    pub clients: HttpClients,
    /// Called once per request with how long it took.
    pub done: Box<OnDone>,
}

/// Serve the application's connection as HTTP (HTTP/1.1 or HTTP/2, as it
/// speaks), each request along `route`.
pub async fn serve<S: Io + 'static>(app: S, route: Arc<Route>) -> Result<(), String> {
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let route = route.clone();
        async move { Ok::<_, std::convert::Infallible>(forward(request, &route).await) }
    });
    hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
        .serve_connection_with_upgrades(TokioIo::new(app), service)
        .await
        .map_err(|e| e.to_string())
}

/// Whether a request may be sent again: an idempotent method and no body.
fn repeatable(request: &Request<Incoming>) -> bool {
    use hyper::body::Body as _;
    matches!(
        *request.method(),
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) && request.body().is_end_stream()
        && !request.headers().contains_key(hyper::header::UPGRADE)
}

fn answer(status: StatusCode) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from(format!("{status}\n")))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

/// One request along the route: picked endpoint, retries, timeout.
async fn forward(request: Request<Incoming>, route: &Route) -> Response<Body> {
    let started = Instant::now();
    let mut outcome = Outcome {
        status: StatusCode::BAD_GATEWAY,
        endpoint: None,
        retries: 0,
        ejected: Vec::new(),
    };
    let work = attempts(request, route, &mut outcome);
    let response = match route.port.timeout {
        Some(limit) => match tokio::time::timeout(limit, work).await {
            Ok(response) => response,
            Err(_) => answer(StatusCode::GATEWAY_TIMEOUT),
        },
        None => work.await,
    };
    outcome.status = response.status();
    (route.done)(&outcome, started.elapsed());
    response
}

async fn attempts(
    mut request: Request<Incoming>,
    route: &Route,
    outcome: &mut Outcome,
) -> Response<Body> {
    let repeat = repeatable(&request);
    let tries = if repeat { 1 + route.port.retries } else { 1 };
    let upgrade = request.headers().contains_key(hyper::header::UPGRADE);
    let app_upgrade = upgrade.then(|| hyper::upgrade::on(&mut request));
    let (parts, body) = request.into_parts();
    let mut body = Some(body);
    let mut tried = Vec::new();
    for attempt in 0..tries {
        let endpoints = (route.endpoints)();
        let Some(picked) = route.balancer.pick(&endpoints, &tried) else {
            return answer(StatusCode::SERVICE_UNAVAILABLE);
        };
        tried.push(picked.endpoint);
        outcome.retries = attempt;
        let path = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        let Ok(uri) = Uri::try_from(format!("http://{}{path}", picked.endpoint)) else {
            return answer(StatusCode::BAD_REQUEST);
        };
        let mut upstream = Request::new(match body.take() {
            Some(b) if !repeat => b.boxed(),
            _ => Empty::new().map_err(|never| match never {}).boxed(),
        });
        *upstream.method_mut() = parts.method.clone();
        *upstream.uri_mut() = uri;
        *upstream.headers_mut() = parts.headers.clone();
        let client = if parts.version == Version::HTTP_2 {
            &route.clients.http2
        } else {
            *upstream.version_mut() = Version::HTTP_11;
            &route.clients.http1
        };
        let last = attempt + 1 == tries;
        match client.request(upstream).await {
            Ok(response) => {
                let status = response.status();
                let failed = status.is_server_error();
                if route.balancer.record(&picked, !failed) {
                    outcome.ejected.push(picked.endpoint);
                }
                let retry = matches!(
                    status,
                    StatusCode::BAD_GATEWAY
                        | StatusCode::SERVICE_UNAVAILABLE
                        | StatusCode::GATEWAY_TIMEOUT
                );
                if retry && !last {
                    continue;
                }
                outcome.endpoint = Some(picked.endpoint);
                if status == StatusCode::SWITCHING_PROTOCOLS {
                    if let Some(app_upgrade) = app_upgrade {
                        return switch_protocols(response, app_upgrade);
                    }
                }
                return response.map(|b| b.boxed());
            }
            Err(error) => {
                let verdict = TunnelError::is_verdict_in(&error);
                if !verdict && route.balancer.record(&picked, false) {
                    outcome.ejected.push(picked.endpoint);
                }
                tracing::debug!(endpoint = %picked.endpoint, %error, attempt, "mesh request failed");
                if last {
                    return answer(StatusCode::BAD_GATEWAY);
                }
            }
        }
    }
    answer(StatusCode::BAD_GATEWAY)
}

/// A 101 from the endpoint: the application's connection and the
/// endpoint's become one byte stream (WebSocket).
fn switch_protocols(
    mut response: Response<Incoming>,
    app: impl Future<Output = Result<hyper::upgrade::Upgraded, hyper::Error>> + Send + 'static,
) -> Response<Body> {
    let endpoint = hyper::upgrade::on(&mut response);
    tokio::spawn(async move {
        if let (Ok(app), Ok(endpoint)) = (app.await, endpoint.await) {
            let (mut app, mut endpoint) = (TokioIo::new(app), TokioIo::new(endpoint));
            let _ = copy_both_ways(&mut app, &mut endpoint).await;
        }
    });
    response.map(|_| Empty::new().map_err(|never| match never {}).boxed())
}

/// How a stream starts, once its first bytes are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sniffed {
    /// An HTTP/1 request line.
    Http1,
    /// The HTTP/2 connection preface.
    Http2,
    /// Anything else.
    Other,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What `start` (a stream's first bytes) says, or `None` while it could
/// still be either.
pub fn sniff(start: &[u8]) -> Option<Sniffed> {
    let n = start.len().min(H2_PREFACE.len());
    if start[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Sniffed::Http2);
    }
    // A method (upper-case token) and a space: `GET `, `OPTIONS `.
    let token = start.iter().take_while(|b| b.is_ascii_uppercase()).count();
    match start.get(token) {
        Some(b' ') if token > 0 => Some(Sniffed::Http1),
        None if token == start.len() && token < 16 => None,
        _ => Some(Sniffed::Other),
    }
}

/// A stream whose first bytes were read already and are given back first.
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    /// `inner`, `prefix` read from it first.
    pub fn new(prefix: Bytes, inner: S) -> Self {
        Self { prefix, inner }
    }

    /// The stream underneath.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Read `stream`'s first bytes until [`sniff`] can tell, it ends, or
/// `wait` passes (a protocol whose server speaks first: `Other`); the
/// stream with them given back, and what it is.
pub async fn sniff_stream<S: AsyncRead + Unpin>(
    mut stream: S,
    wait: Duration,
) -> std::io::Result<(Prefixed<S>, Sniffed)> {
    use tokio::io::AsyncReadExt;
    let deadline = tokio::time::Instant::now() + wait;
    let mut start = Vec::with_capacity(H2_PREFACE.len());
    let kind = loop {
        if let Some(kind) = sniff(&start) {
            break kind;
        }
        let mut chunk = [0u8; 24];
        let want = H2_PREFACE.len().saturating_sub(start.len()).max(1);
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk[..want])).await {
            Ok(Ok(0)) | Err(_) => break Sniffed::Other,
            Ok(Ok(n)) => start.extend_from_slice(&chunk[..n]),
            Ok(Err(error)) => return Err(error),
        }
    };
    Ok((Prefixed::new(Bytes::from(start), stream), kind))
}

/// The destination's side of a stream that carries HTTP (`version`, as
/// sniffed): each request is let through to `upstream` (the pod) when
/// `allow(method, path)` says so, else answered 403 as Istio does.
pub async fn serve_inbound<S>(
    stream: S,
    version: Sniffed,
    upstream: TcpStream,
    allow: impl Fn(&Method, &str) -> bool + Send + Sync + 'static,
) -> Result<(), String>
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    enum Sender {
        Http1(tokio::sync::Mutex<hyper::client::conn::http1::SendRequest<Body>>),
        Http2(hyper::client::conn::http2::SendRequest<Body>),
    }
    let upstream = TokioIo::new(upstream);
    let sender = if version == Sniffed::Http2 {
        let (sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), upstream)
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Sender::Http2(sender)
    } else {
        let (sender, connection) = hyper::client::conn::http1::handshake(upstream)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(connection);
        Sender::Http1(tokio::sync::Mutex::new(sender))
    };
    let sender = Arc::new(sender);
    let allow = Arc::new(allow);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let (sender, allow) = (sender.clone(), allow.clone());
        async move {
            if !allow(request.method(), request.uri().path()) {
                let mut denied = Response::new(
                    Full::new(Bytes::from_static(b"RBAC: access denied\n"))
                        .map_err(|never| match never {})
                        .boxed(),
                );
                *denied.status_mut() = StatusCode::FORBIDDEN;
                return Ok::<_, std::convert::Infallible>(denied);
            }
            let request = request.map(|b| b.boxed());
            let sent = match &*sender {
                Sender::Http1(sender) => {
                    let mut sender = sender.lock().await;
                    match sender.ready().await {
                        Ok(()) => sender.send_request(request).await,
                        Err(error) => Err(error),
                    }
                }
                Sender::Http2(sender) => sender.clone().send_request(request).await,
            };
            Ok(match sent {
                Ok(response) => response.map(|b| b.boxed()),
                Err(error) => {
                    tracing::debug!(%error, "the pod did not answer a mesh request");
                    answer(StatusCode::BAD_GATEWAY)
                }
            })
        }
    });
    let io = TokioIo::new(stream);
    let served = if version == Sniffed::Http2 {
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(io, service)
            .await
    } else {
        hyper::server::conn::http1::Builder::new()
            .serve_connection(io, service)
            .await
    };
    served.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;
