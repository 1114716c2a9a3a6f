//! The request path through Pingora: match the request against the
//! current route table, answer what the annotations answer themselves
//! (redirects, CORS preflight, allow-lists, size limits, the default
//! backend), and send the rest to a ready endpoint with the path rewritten
//! and the forwarding headers set.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use http::Method;
use pingora_core::protocols::http::error_resp;
use pingora_core::upstreams::peer::HttpPeer;
use pingora_core::{Error, ErrorSource, ErrorType, Result};
use pingora_http::{RequestHeader, ResponseHeader};
use pingora_proxy::{FailToProxy, ProxyHttp, Session};

use crate::annotations::BackendProtocol;
use crate::metrics::Metrics;
use crate::request::{self, MAX_HEADERS, MAX_LINE, MAX_TRIES};
use crate::table::{Endpoint, Location, Target};
use crate::Routes;

/// Every answer names kedge as its server, proxied or not, as nginx puts
/// its own name on both (ingress-nginx hides the version).
const SERVER: http::HeaderValue = http::HeaderValue::from_static("kedge");

const X_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
const X_REAL_IP: http::HeaderName = http::HeaderName::from_static("x-real-ip");
const X_FORWARDED_FOR: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: http::HeaderName = http::HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PORT: http::HeaderName = http::HeaderName::from_static("x-forwarded-port");
const X_FORWARDED_PROTO: http::HeaderName = http::HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_SCHEME: http::HeaderName = http::HeaderName::from_static("x-forwarded-scheme");
const X_SCHEME: http::HeaderName = http::HeaderName::from_static("x-scheme");
const PROXY: http::HeaderName = http::HeaderName::from_static("proxy");

/// The ingress proxy's request logic.
pub struct IngressProxy {
    routes: Arc<Routes>,
    metrics: Arc<Metrics>,
    /// The HTTPS port redirects point at.
    https_port: u16,
    access_log: bool,
    /// The way into the mesh for requests to meshed pods.
    pub mesh: Option<Arc<crate::mesh::MeshOrigin>>,
}

impl IngressProxy {
    /// Requests matched against `routes`; redirects to HTTPS name
    /// `https_port`; one access-log line per request when `access_log`.
    pub fn new(
        routes: Arc<Routes>,
        metrics: Arc<Metrics>,
        https_port: u16,
        access_log: bool,
    ) -> Self {
        Self {
            routes,
            metrics,
            https_port,
            access_log,
            mesh: None,
        }
    }
}

/// What one request carries from phase to phase.
pub struct RequestCtx {
    started: Instant,
    location: Option<Arc<Location>>,
    /// The Host header as sent (with any port), for the backend.
    host_header: String,
    /// The host without port, lower case.
    host: String,
    tls: bool,
    /// The normalized request path.
    path: String,
    tried: Vec<SocketAddr>,
    endpoint: Option<Arc<Endpoint>>,
    upstream_started: Option<Instant>,
    body_bytes: u64,
    status: u16,
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    session
        .client_addr()
        .and_then(|a| a.as_inet())
        .map(|a| request::client_ip(a.ip()))
}

/// Framing that lets a proxy and a backend disagree on where a request
/// ends: Content-Length beside Transfer-Encoding, a transfer coding other
/// than chunked, or Content-Lengths that differ. nginx refuses all three.
fn smuggling_shape(req: &RequestHeader) -> bool {
    let te: Vec<_> = req
        .headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .collect();
    let cl: Vec<_> = req
        .headers
        .get_all(http::header::CONTENT_LENGTH)
        .iter()
        .collect();
    if !te.is_empty() {
        let chunked_last = te
            .last()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.rsplit(',').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        return !cl.is_empty() || !chunked_last;
    }
    cl.windows(2).any(|w| w[0] != w[1])
}

/// 414 for a request target too long, 431 for headers too large.
fn oversized(req: &RequestHeader) -> Option<u16> {
    if req.raw_path().len() > MAX_LINE {
        return Some(414);
    }
    let mut total = 0;
    for (name, value) in req.headers.iter() {
        let line = name.as_str().len() + value.len() + 4;
        if line > MAX_LINE {
            return Some(431);
        }
        total += line;
    }
    (total > MAX_HEADERS).then_some(431)
}

/// Pingora itself drops Content-Length when Transfer-Encoding is also
/// present (RFC 9112 allows that if the connection closes afterwards);
/// nginx answers 400. The trace Pingora leaves is keep-alive switched off
/// on an HTTP/1.1 request that carries Transfer-Encoding and did not ask
/// for the connection to close.
fn te_beside_cl(session: &Session) -> bool {
    let req = session.req_header();
    req.version == http::Version::HTTP_11
        && req.headers.contains_key(http::header::TRANSFER_ENCODING)
        && session.get_keepalive().is_none()
        && !req
            .headers
            .get_all(http::header::CONNECTION)
            .iter()
            .any(|v| {
                v.to_str()
                    .is_ok_and(|v| v.to_ascii_lowercase().contains("close"))
            })
}

/// Answer the request from the proxy itself.
async fn respond(
    session: &mut Session,
    ctx: &mut RequestCtx,
    code: u16,
    headers: &[(&'static str, String)],
    body: &'static [u8],
) -> Result<bool> {
    let mut resp = ResponseHeader::build(code, Some(headers.len() + 3))?;
    // Date comes from Pingora's session, which sets it on every answer.
    resp.insert_header(http::header::SERVER, SERVER)?;
    for (name, value) in headers {
        resp.insert_header(*name, value.as_str())?;
    }
    resp.insert_header("Content-Length", body.len().to_string())?;
    if !body.is_empty() {
        resp.insert_header("Content-Type", "text/html")?;
    }
    if matches!(code, 400 | 414 | 431) {
        // Whatever follows a malformed request on this connection cannot
        // be trusted to start where the client says it does.
        session.set_keepalive(None);
    }
    let head_only = body.is_empty() || session.req_header().method == Method::HEAD;
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session
            .write_response_body(Some(Bytes::from_static(body)), true)
            .await?;
    }
    ctx.status = code;
    Ok(true)
}

#[async_trait]
impl ProxyHttp for IngressProxy {
    type CTX = RequestCtx;

    /// No downstream modules: the default adds a (disabled) compression
    /// module whose filters would still run on every response.
    fn init_downstream_modules(&self, _modules: &mut pingora_core::modules::http::HttpModules) {}

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx {
            started: Instant::now(),
            location: None,
            host_header: String::new(),
            host: String::new(),
            tls: false,
            path: String::new(),
            tried: Vec::new(),
            endpoint: None,
            upstream_started: None,
            body_bytes: 0,
            status: 0,
        }
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        ctx.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
        let req = session.req_header();
        if smuggling_shape(req) || te_beside_cl(session) {
            return respond(session, ctx, 400, &[], b"").await;
        }
        if let Some(code) = oversized(req) {
            return respond(session, ctx, code, &[], b"").await;
        }
        let host = match req.uri.authority() {
            Some(a) => Some(a.as_str()),
            None => match req.headers.get(http::header::HOST).map(|h| h.to_str()) {
                Some(Ok(h)) => Some(h),
                Some(Err(_)) => return respond(session, ctx, 400, &[], b"").await,
                // HTTP/1.0 without Host: the catch-all server.
                None => None,
            },
        };
        let facts = request::Facts {
            method: &req.method,
            host,
            path: req.uri.path(),
            path_and_query: req.uri.path_and_query().map_or("/", |pq| pq.as_str()),
            tls: ctx.tls,
            client: client_ip(session),
            content_length: req
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok()),
        };
        let mut routed = request::Routed::default();
        let decided = request::decide(&self.routes, self.https_port, &facts, &mut routed);
        ctx.location = routed.location;
        ctx.host = routed.host;
        ctx.host_header = routed.host_header;
        ctx.path = routed.path;
        match decided {
            Ok(()) => Ok(false),
            Err(a) => respond(session, ctx, a.code, &a.headers, a.body).await,
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // A chunked body has no Content-Length to check up front.
        if let (Some(b), Some(loc)) = (body.as_ref(), ctx.location.as_ref()) {
            ctx.body_bytes += b.len() as u64;
            if loc
                .config
                .body_size
                .is_some_and(|limit| ctx.body_bytes > limit)
            {
                return Error::e_explain(ErrorType::HTTPStatus(413), "request body too large");
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let Some(location) = ctx.location.clone() else {
            return Error::e_explain(ErrorType::InternalError, "no location matched");
        };
        let Target::Backend(backend) = &location.target else {
            return Error::e_explain(ErrorType::HTTPStatus(404), "default backend");
        };
        let Some(endpoint) = backend.pick(&ctx.tried).cloned() else {
            return Error::e_explain(ErrorType::HTTPStatus(503), "no ready endpoint");
        };
        ctx.tried.push(endpoint.addr);
        let cfg = &location.config;
        let tls = cfg.backend_protocol == BackendProtocol::Https;
        // The SNI only matters over TLS; leaving it empty otherwise lets
        // every host share the endpoint's keep-alive pool.
        let sni = if tls { ctx.host.clone() } else { String::new() };
        let mut peer = match self
            .mesh
            .as_ref()
            .and_then(|mesh| mesh.proxy_for(endpoint.addr))
        {
            // A meshed pod: through the mesh's tunnel, in mutual TLS.
            Some(socket) => HttpPeer::new_proxy(
                &socket.to_string_lossy(),
                endpoint.addr.ip(),
                endpoint.addr.port(),
                tls,
                &sni,
                Default::default(),
            ),
            None => HttpPeer::new(endpoint.addr, tls, sni),
        };
        peer.options.connection_timeout = Some(cfg.connect_timeout);
        peer.options.read_timeout = Some(cfg.read_timeout);
        peer.options.write_timeout = Some(cfg.send_timeout);
        if tls {
            // ingress-nginx does not verify backends' certificates by default.
            peer.options.verify_cert = false;
            peer.options.verify_hostname = false;
        }
        endpoint.start();
        ctx.endpoint = Some(endpoint);
        ctx.upstream_started = Some(Instant::now());
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        self.metrics.connect_failure();
        if let Some(ep) = ctx.endpoint.take() {
            // Count the failure as a slow answer so EWMA steers away.
            ep.finish(1_000_000.0);
        }
        let others = match ctx.location.as_ref().map(|l| &l.target) {
            Some(Target::Backend(b)) => b.endpoints.len() > ctx.tried.len(),
            _ => false,
        };
        // Nothing was sent yet, so any method may go to another endpoint.
        if others && ctx.tried.len() < MAX_TRIES {
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let Some(location) = ctx.location.as_ref() else {
            return Ok(());
        };
        let query = session.req_header().uri.query();
        let new_path = match request::rewritten(location, &ctx.path, query) {
            Ok(Some(p)) => Some(p),
            Err(()) => {
                return Error::e_explain(ErrorType::HTTPStatus(400), "rewritten path escapes /")
            }
            // Send the path as the client wrote it, in origin form.
            Ok(None) => upstream
                .uri
                .authority()
                .is_some()
                .then(|| {
                    session
                        .req_header()
                        .uri
                        .path_and_query()
                        .map(|pq| pq.as_str().to_string())
                })
                .flatten(),
        };
        let host = location
            .config
            .upstream_vhost
            .as_deref()
            .unwrap_or(&ctx.host_header);
        let host = http::HeaderValue::from_str(host)
            .map_err(|e| Error::because(ErrorType::HTTPStatus(400), "Host", e))?;
        let forwarded_host = http::HeaderValue::from_str(&ctx.host_header)
            .map_err(|e| Error::because(ErrorType::HTTPStatus(400), "Host", e))?;
        // Each value is made once and shared (a HeaderValue clone is a
        // reference count).
        let scheme = http::HeaderValue::from_static(if ctx.tls { "https" } else { "http" });
        let client = match client_ip(session) {
            Some(ip) => http::HeaderValue::from_str(&ip.to_string())
                .expect("an IP address is a valid header value"),
            None => http::HeaderValue::from_static(""),
        };
        let port = session
            .server_addr()
            .and_then(|a| a.as_inet())
            .map(|a| http::HeaderValue::from(a.port()))
            .unwrap_or_else(|| http::HeaderValue::from_static(""));
        let request_id = match session.req_header().headers.get(&X_REQUEST_ID) {
            Some(v) => v.clone(),
            None => http::HeaderValue::from_str(&request::request_id())
                .expect("hex is a valid header value"),
        };
        // The upstream request is rebuilt from plain parts: Pingora's own
        // header insert keeps a second map of the names' original case and
        // parses each name again, which made these nine headers a sixth of
        // the proxy's instructions (docs/benchmarks.md). Header names then
        // go upstream in canonical or lower case, as HTTP/2 sends them.
        let mut parts = upstream.as_owned_parts();
        if let Some(p) = new_path {
            parts.uri = p
                .parse::<http::Uri>()
                .map_err(|e| Error::because(ErrorType::HTTPStatus(400), "rewritten path", e))?;
        }
        let h = &mut parts.headers;
        h.reserve(10);
        h.insert(http::header::HOST, host);
        h.insert(X_REQUEST_ID, request_id);
        h.insert(X_REAL_IP, client.clone());
        h.insert(X_FORWARDED_FOR, client);
        h.insert(X_FORWARDED_HOST, forwarded_host);
        h.insert(X_FORWARDED_PORT, port);
        h.insert(X_FORWARDED_PROTO, scheme.clone());
        h.insert(X_FORWARDED_SCHEME, scheme.clone());
        h.insert(X_SCHEME, scheme);
        // httpoxy: a client's Proxy header must not reach CGI-style backends.
        h.remove(PROXY);
        *upstream = RequestHeader::from(parts);
        Ok(())
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        _ctx: &mut RequestCtx,
    ) -> FailToProxy {
        // Pingora's default, but with kedge's Server header in place of
        // Pingora's own. (What Pingora refuses before any phase runs,
        // unparseable headers and CONNECT, still names Pingora.)
        let code = match e.etype() {
            ErrorType::HTTPStatus(code) => *code,
            _ => match e.esource() {
                ErrorSource::Upstream => 502,
                ErrorSource::Downstream => match e.etype() {
                    // The connection is gone: nothing to answer on.
                    ErrorType::WriteError | ErrorType::ReadError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                ErrorSource::Internal | ErrorSource::Unset => 500,
            },
        };
        if code > 0 {
            let mut resp = error_resp::gen_error_response(code);
            // Pingora's session puts the real Date over the placeholder.
            let named = resp.insert_header(http::header::SERVER, SERVER);
            let written = match named {
                Ok(()) => session.write_error_response(resp, Bytes::new()).await,
                Err(e) => Err(e),
            };
            if let Err(e) = written {
                tracing::debug!("error answer not sent: {e}");
            }
        }
        FailToProxy {
            error_code: code,
            can_reuse_downstream: false,
        }
    }

    async fn response_filter(
        &self,
        _session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.status = resp.status.as_u16();
        // nginx hides the backend's Server (and Date, which Pingora's
        // session replaces) and sends its own.
        resp.insert_header(http::header::SERVER, SERVER)?;
        if let Some(cors) = ctx.location.as_ref().and_then(|l| l.config.cors.as_ref()) {
            for (name, value) in request::cors_headers(cors) {
                resp.insert_header(name, value)?;
            }
        }
        Ok(())
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        let status = match (ctx.status, e) {
            (0, Some(e)) => match e.etype() {
                ErrorType::HTTPStatus(c) => *c,
                _ => 502,
            },
            (s, _) => s,
        };
        if let (Some(ep), Some(t)) = (ctx.endpoint.take(), ctx.upstream_started) {
            ep.finish(t.elapsed().as_secs_f64() * 1e6);
        }
        let took = ctx.started.elapsed();
        if let Some(loc) = &ctx.location {
            self.metrics.request(&loc.labels, &loc.stats, status, took);
        }
        if self.access_log {
            let req = session.req_header();
            tracing::info!(
                target: "kedge_ingress::access",
                client = %client_ip(session).map(|i| i.to_string()).unwrap_or_default(),
                method = %req.method,
                host = %ctx.host,
                uri = %req.uri,
                status,
                upstream = %ctx.tried.last().map(|a| a.to_string()).unwrap_or_default(),
                ms = took.as_secs_f64() * 1000.0,
                error = %e.map(|e| e.to_string()).unwrap_or_default(),
            );
        }
    }
}
