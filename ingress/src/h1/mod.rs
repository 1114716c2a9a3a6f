//! The lean HTTP/1.1 path: plain-HTTP connections served by kedge's own
//! loop, one task per connection on the worker's single-threaded runtime.
//!
//! Pingora spends about twice nginx's CPU per proxied request on its
//! general machinery (docs/benchmarks.md). The common request — a GET or a
//! body with a Content-Length, to an HTTP backend — needs little of it: the
//! head is parsed in place ([`head`]), the route decided as on the Pingora
//! path ([`crate::request`]), the upstream request written with one write,
//! the response head rewritten and streamed back with the first body bytes
//! in one write, and the upstream connection kept in the worker's pool
//! ([`pool`]) without a task while idle.
//!
//! Whatever this path does not take goes to the Pingora path with the
//! bytes already read put back in front of the stream: requests of another
//! shape (see [`head`]), backends over TLS or gRPC, meshed pods. From then
//! on Pingora serves that connection.

mod body;
mod head;
mod pool;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pingora_core::apps::ServerApp;
use pingora_core::protocols::http::date::get_cached_date;
use pingora_core::protocols::l4::stream::Stream as L4Stream;
use pingora_core::protocols::{GetSocketDigest, SocketDigest, Stream};
use pingora_core::server::ShutdownWatch;
use pingora_proxy::HttpProxy;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::accept::{Rewound, SharedApp, TlsClient};
use crate::annotations::BackendProtocol;
use crate::metrics::Metrics;
use crate::proxy::IngressProxy;
use crate::request::{self, Answer, Facts, Routed, MAX_TRIES};
use crate::table::{Endpoint, Location, Target};
use crate::Routes;

use body::ChunkedEnd;
use head::{Framing, Parsed, RequestHead, ResponseHead};
pub(crate) use head::{MAX_HEADERS, MAX_LINE};
pub(crate) use pool::Pool;

/// How long a kept-alive client may stay silent between requests
/// (ingress-nginx's `keep-alive`).
const CLIENT_IDLE: Duration = Duration::from_secs(75);

/// How long a client may take to send a request head, and to take a
/// response write (nginx's `client_header_timeout`, `send_timeout`).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// The request body bytes that go out with the upstream head in one write.
const BODY_WITH_HEAD: usize = 64 * 1024;

/// Read size for streamed bodies.
const CHUNK: usize = 16 * 1024;

/// A client connection the lean path serves: plain TCP or TLS.
pub(crate) trait Client: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// Whether the client came over TLS.
    const TLS: bool;

    /// The connection as Pingora takes it, with the bytes already `read`
    /// put back in front.
    fn into_pingora(self, read: Vec<u8>, peer: SocketAddr) -> Stream;
}

impl Client for TcpStream {
    const TLS: bool = false;

    fn into_pingora(self, read: Vec<u8>, peer: SocketAddr) -> Stream {
        let mut l4 = L4Stream::from(self);
        let digest = SocketDigest::from_raw_fd(std::os::fd::AsRawFd::as_raw_fd(&l4));
        let _ = digest.peer_addr.set(Some(peer.into()));
        l4.set_socket_digest(digest);
        Box::new(Rewound::new(read, l4))
    }
}

impl Client for TlsClient {
    const TLS: bool = true;

    fn into_pingora(self, read: Vec<u8>, _: SocketAddr) -> Stream {
        Box::new(Rewound::new(read, self))
    }
}

/// What a worker's lean connections share.
pub(crate) struct Worker {
    pub routes: Arc<Routes>,
    pub metrics: Arc<Metrics>,
    /// The port HTTPS redirects name.
    pub https_port: u16,
    pub access_log: bool,
    pub mesh: Option<Arc<crate::mesh::MeshOrigin>>,
    /// The worker's idle upstream connections.
    pub pool: Pool,
    /// The Pingora path, for what this one does not take.
    pub fallback: Arc<SharedApp<HttpProxy<IngressProxy>>>,
}

/// Serve one accepted HTTP/1 connection. `port` is the listener's, for
/// `X-Forwarded-Port`.
pub(crate) async fn serve_connection<C: Client>(
    worker: Arc<Worker>,
    client: C,
    peer: SocketAddr,
    port: u16,
    shutdown: ShutdownWatch,
) {
    let ip = request::client_ip(peer.ip());
    let mut conn = Connection {
        client,
        peer: ip,
        peer_text: ip.to_string(),
        port,
        buf: Vec::with_capacity(4096),
        head: RequestHead::default(),
        out: Vec::with_capacity(4096),
        rbuf: Vec::with_capacity(CHUNK),
        resp: ResponseHead::default(),
        shutdown,
    };
    loop {
        let next = match conn.read_head().await {
            Ok(Parsed::Lean) => conn.serve_request(&worker).await,
            Ok(Parsed::Other) => Next::Handoff,
            Ok(Parsed::Partial) | Err(_) => Next::Close,
        };
        match next {
            Next::KeepAlive => continue,
            Next::Close => {
                let _ = conn.client.shutdown().await;
                return;
            }
            Next::Handoff => {
                return handoff(&worker.fallback, conn.client, conn.buf, peer, conn.shutdown).await
            }
        }
    }
}

/// Give the connection to the Pingora path, the bytes `read` so far first.
pub(crate) async fn handoff<C: Client>(
    fallback: &Arc<SharedApp<HttpProxy<IngressProxy>>>,
    client: C,
    read: Vec<u8>,
    peer: SocketAddr,
    shutdown: ShutdownWatch,
) {
    let stream = client.into_pingora(read, peer);
    let mut next = fallback.process_new(stream, &shutdown).await;
    while let Some(stream) = next {
        next = fallback.process_new(stream, &shutdown).await;
    }
}

/// What the connection does after a request.
enum Next {
    KeepAlive,
    Close,
    Handoff,
}

/// Why an exchange with a backend failed.
enum Failed {
    /// Before any byte of a response came back: on a reused connection,
    /// the request may be sent again on a new one.
    BeforeResponse,
    /// Anything else: answered 502 if nothing was sent to the client yet.
    Upstream,
    /// The client went away or stopped reading.
    Client,
}

struct Connection<C> {
    client: C,
    peer: IpAddr,
    /// The client's address as forwarded and logged.
    peer_text: String,
    port: u16,
    /// What the client sent and is not yet served.
    buf: Vec<u8>,
    head: RequestHead,
    /// What goes out next (an upstream request head, a response head).
    out: Vec<u8>,
    /// What the backend sent.
    rbuf: Vec<u8>,
    resp: ResponseHead,
    shutdown: ShutdownWatch,
}

impl<C: Client> Connection<C> {
    /// Read until a whole request head is in the buffer.
    async fn read_head(&mut self) -> io::Result<Parsed> {
        loop {
            if !self.buf.is_empty() {
                match self.head.parse(&self.buf) {
                    Parsed::Partial => {}
                    done => return Ok(done),
                }
            }
            self.buf.reserve(4096);
            let n = if self.buf.is_empty() {
                // Between requests: a drain closes an idle connection.
                if *self.shutdown.borrow() {
                    return Ok(Parsed::Partial);
                }
                tokio::select! {
                    read = tokio::time::timeout(CLIENT_IDLE, self.client.read_buf(&mut self.buf)) => read,
                    _ = self.shutdown.changed() => return Ok(Parsed::Partial),
                }
            } else {
                tokio::time::timeout(CLIENT_TIMEOUT, self.client.read_buf(&mut self.buf)).await
            };
            match n {
                Ok(Ok(0)) | Err(_) => return Ok(Parsed::Partial),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    fn text(&self, r: std::ops::Range<usize>) -> &str {
        // httparse admits only visible ASCII in the request line, and the
        // Host value was checked to be visible ASCII.
        std::str::from_utf8(&self.buf[r]).unwrap_or("")
    }

    /// Serve the request whose head is parsed.
    async fn serve_request(&mut self, worker: &Worker) -> Next {
        let started = Instant::now();
        // No response yet (the last request's status must not count).
        self.resp.status = 0;
        let method = self.head.method().clone();
        let target = self.text(self.head.target.clone());
        let (path, query) = match target.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (target, None),
        };
        let facts = Facts {
            method: &method,
            host: self.head.host.clone().map(|r| self.text(r)),
            path,
            path_and_query: target,
            tls: C::TLS,
            client: Some(self.peer),
            content_length: self.head.content_length,
        };
        let mut routed = Routed::default();
        let decided = request::decide(&worker.routes, worker.https_port, &facts, &mut routed);
        let Some(location) = routed.location.clone() else {
            // The host or path was malformed: the Pingora path answers it.
            return Next::Handoff;
        };
        if let Err(answer) = decided {
            return self
                .answer(worker, &location, &routed, answer, started)
                .await;
        }
        let Target::Backend(backend) = &location.target else {
            return Next::Handoff;
        };
        if location.config.backend_protocol != BackendProtocol::Http {
            return Next::Handoff;
        }
        let upstream_target = match request::rewritten(&location, &routed.path, query) {
            Ok(t) => t,
            Err(()) => return Next::Handoff,
        };
        let body_len = self.head.content_length.unwrap_or(0);
        let in_buf = (body_len as usize).min(self.buf.len() - self.head.len);
        let body_with_head = in_buf == body_len as usize && in_buf <= BODY_WITH_HEAD;
        self.upstream_head(&location, &routed, upstream_target.as_deref());
        if body_with_head {
            let at = self.head.len;
            self.out.extend_from_slice(&self.buf[at..at + in_buf]);
        }

        // Pick an endpoint and reach it, moving on to another when
        // connecting fails (nothing was sent yet).
        let mut tried = [SocketAddr::from(([0, 0, 0, 0], 0)); MAX_TRIES];
        let mut n = 0;
        let cfg = &location.config;
        let (mut upstream, endpoint, mut reused) = loop {
            let Some(endpoint) = backend.pick(&tried[..n]).cloned() else {
                return self
                    .fail(worker, &location, &routed, 503, started, None)
                    .await;
            };
            tried[n] = endpoint.addr;
            n += 1;
            if worker
                .mesh
                .as_ref()
                .is_some_and(|m| m.proxy_for(endpoint.addr).is_some())
            {
                return Next::Handoff;
            }
            endpoint.start();
            if let Some(conn) = worker.pool.take(endpoint.addr) {
                break (conn, endpoint, true);
            }
            match connect(endpoint.addr, cfg.connect_timeout).await {
                Ok(conn) => break (conn, endpoint, false),
                Err(e) => {
                    tracing::debug!(endpoint = %endpoint.addr, error = %e, "connecting upstream");
                    worker.metrics.connect_failure();
                    // Counted as a slow answer so EWMA steers away.
                    endpoint.finish(1_000_000.0);
                    if n < MAX_TRIES && backend.endpoints.len() > n {
                        continue;
                    }
                    return self
                        .fail(
                            worker,
                            &location,
                            &routed,
                            502,
                            started,
                            Some(endpoint.addr),
                        )
                        .await;
                }
            }
        };
        let upstream_started = Instant::now();
        let addr = endpoint.addr;

        // Send the request and read the response head; a reused
        // connection the backend closed meanwhile is replaced once.
        let result = loop {
            let sent = self
                .send_request(&mut upstream, body_with_head, in_buf, body_len, cfg)
                .await;
            let result = match sent {
                Ok(()) => self.read_response_head(&mut upstream, &method, cfg).await,
                Err(e) => Err(e),
            };
            match result {
                // Only a request that may be sent twice (RFC 9110 §9.2.2):
                // the backend may have acted on it before closing.
                Err(Failed::BeforeResponse) if reused && body_with_head && idempotent(&method) => {
                    reused = false;
                    match connect(addr, cfg.connect_timeout).await {
                        Ok(conn) => upstream = conn,
                        Err(_) => {
                            worker.metrics.connect_failure();
                            break Err(Failed::Upstream);
                        }
                    }
                }
                other => break other,
            }
        };
        let outcome = match result {
            Ok(()) => self.relay_response(&mut upstream, &location).await,
            Err(e) => Err(e),
        };
        endpoint_done(&endpoint, upstream_started);
        let status = self.resp.status;
        match outcome {
            Ok(Relayed {
                upstream_reusable,
                keep_alive,
            }) => {
                if upstream_reusable {
                    worker.pool.put(addr, upstream);
                }
                self.log(worker, &location, &routed, status, started, Some(addr), "");
                self.consume(body_len);
                if keep_alive {
                    Next::KeepAlive
                } else {
                    Next::Close
                }
            }
            Err(Failed::Client) => {
                self.log(
                    worker,
                    &location,
                    &routed,
                    status,
                    started,
                    Some(addr),
                    "client",
                );
                Next::Close
            }
            Err(Failed::BeforeResponse | Failed::Upstream) if status == 0 => {
                self.fail(worker, &location, &routed, 502, started, Some(addr))
                    .await
            }
            Err(_) => {
                // The response was cut short: closing tells the client.
                self.log(
                    worker,
                    &location,
                    &routed,
                    status,
                    started,
                    Some(addr),
                    "upstream",
                );
                Next::Close
            }
        }
    }

    /// The upstream request head: the client's request line and headers
    /// (hop-by-hop ones out), the Host and forwarding headers ingress-nginx
    /// sets.
    fn upstream_head(&mut self, location: &Location, routed: &Routed, rewritten: Option<&str>) {
        let out = &mut self.out;
        out.clear();
        out.extend_from_slice(self.head.method().as_str().as_bytes());
        out.push(b' ');
        match rewritten {
            Some(t) => out.extend_from_slice(t.as_bytes()),
            None => out.extend_from_slice(&self.buf[self.head.target.clone()]),
        }
        out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
        let host = location
            .config
            .upstream_vhost
            .as_deref()
            .unwrap_or(&routed.host_header);
        out.extend_from_slice(host.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (name, value) in &self.head.headers {
            let name = &self.buf[name.clone()];
            if head::dropped_request_header(name) {
                continue;
            }
            push_header(out, name, &self.buf[value.clone()]);
        }
        out.extend_from_slice(b"X-Request-ID: ");
        match &self.head.request_id {
            Some(r) => out.extend_from_slice(&self.buf[r.clone()]),
            None => push_request_id(out),
        }
        out.extend_from_slice(b"\r\nX-Real-IP: ");
        out.extend_from_slice(self.peer_text.as_bytes());
        out.extend_from_slice(b"\r\nX-Forwarded-For: ");
        out.extend_from_slice(self.peer_text.as_bytes());
        out.extend_from_slice(b"\r\nX-Forwarded-Host: ");
        out.extend_from_slice(routed.host_header.as_bytes());
        out.extend_from_slice(b"\r\nX-Forwarded-Port: ");
        out.extend_from_slice(itoa::Buffer::new().format(self.port).as_bytes());
        out.extend_from_slice(if C::TLS {
            b"\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Scheme: https\r\nX-Scheme: https\r\n\r\n"
                .as_slice()
        } else {
            b"\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Scheme: http\r\nX-Scheme: http\r\n\r\n"
                .as_slice()
        });
    }

    /// Send the upstream head (with the body, when it came with it) and
    /// the rest of the body as the client sends it.
    async fn send_request(
        &mut self,
        upstream: &mut TcpStream,
        body_with_head: bool,
        in_buf: usize,
        body_len: u64,
        cfg: &crate::annotations::LocationConfig,
    ) -> Result<(), Failed> {
        let timeout = cfg.send_timeout;
        write_all(upstream, &self.out, timeout)
            .await
            .map_err(|_| Failed::BeforeResponse)?;
        if body_with_head {
            return Ok(());
        }
        let at = self.head.len;
        write_all(upstream, &self.buf[at..at + in_buf], timeout)
            .await
            .map_err(|_| Failed::Upstream)?;
        if in_buf as u64 == body_len {
            // A large body read whole: it leaves the buffer with the head.
            return Ok(());
        }
        if self.head.expect_continue {
            // The client waits for this before it sends the rest (nginx
            // sends it as it starts reading the body).
            write_all(
                &mut self.client,
                b"HTTP/1.1 100 Continue\r\n\r\n",
                CLIENT_TIMEOUT,
            )
            .await
            .map_err(|_| Failed::Client)?;
        }
        let mut left = body_len - in_buf as u64;
        while left > 0 {
            self.rbuf.clear();
            let want = (left as usize).min(CHUNK);
            self.rbuf.resize(want, 0);
            let n = match tokio::time::timeout(CLIENT_TIMEOUT, self.client.read(&mut self.rbuf))
                .await
            {
                Ok(Ok(n)) if n > 0 => n,
                _ => return Err(Failed::Client),
            };
            write_all(upstream, &self.rbuf[..n], timeout)
                .await
                .map_err(|_| Failed::Upstream)?;
            left -= n as u64;
        }
        // The body came partly from the buffer, which held nothing after
        // it; the rest was read past the buffer.
        self.buf.truncate(self.head.len);
        self.head.content_length = Some(0);
        Ok(())
    }

    /// Read the backend's response head into `rbuf` (skipping interim 1xx
    /// answers).
    async fn read_response_head(
        &mut self,
        upstream: &mut TcpStream,
        method: &http::Method,
        cfg: &crate::annotations::LocationConfig,
    ) -> Result<(), Failed> {
        self.rbuf.clear();
        self.resp.status = 0;
        loop {
            if !self.rbuf.is_empty() {
                match self.resp.parse(&self.rbuf, method) {
                    Ok(()) if self.resp.status == 101 => return Err(Failed::Upstream),
                    Ok(()) if self.resp.status < 200 => {
                        // Interim answers go on to the client as they come.
                        self.out.clear();
                        self.response_head(None);
                        self.out.extend_from_slice(b"\r\n");
                        write_all(&mut self.client, &self.out, CLIENT_TIMEOUT)
                            .await
                            .map_err(|_| Failed::Client)?;
                        self.rbuf.drain(..self.resp.len);
                        continue;
                    }
                    Ok(()) => return Ok(()),
                    Err(head::BadResponse::Partial) => {}
                    Err(head::BadResponse::Invalid) => {
                        self.resp.status = 0;
                        return Err(Failed::Upstream);
                    }
                }
            }
            self.rbuf.reserve(CHUNK);
            let first = self.rbuf.is_empty();
            match tokio::time::timeout(cfg.read_timeout, upstream.read_buf(&mut self.rbuf)).await {
                Ok(Ok(n)) if n > 0 => {}
                Ok(_) if first => return Err(Failed::BeforeResponse),
                _ => return Err(Failed::Upstream),
            }
        }
    }

    /// Send the response head (rewritten) and body to the client.
    async fn relay_response(
        &mut self,
        upstream: &mut TcpStream,
        location: &Location,
    ) -> Result<Relayed, Failed> {
        let framing = self.resp.framing.unwrap_or(Framing::Close);
        let cors = location.config.cors.as_ref();
        let body_pending = self.head.content_length.unwrap_or(0) as usize
            > self.buf.len().saturating_sub(self.head.len);
        let keep_alive = !self.head.close && !*self.shutdown.borrow() && !body_pending;
        self.out.clear();
        self.response_head(cors);
        let resp = &self.resp;
        let out = &mut self.out;
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(get_cached_date().as_bytes());
        out.extend_from_slice(b"\r\n");
        if let Some(cors) = cors {
            for (name, value) in request::cors_headers(cors) {
                push_header(out, name.as_bytes(), value.as_bytes());
            }
        }
        if matches!(framing, Framing::Chunked | Framing::Close) {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        }
        out.extend_from_slice(if keep_alive {
            b"Connection: keep-alive\r\n\r\n".as_slice()
        } else {
            b"Connection: close\r\n\r\n".as_slice()
        });

        // The body bytes that came with the head go out with it.
        let start = resp.len;
        let mut reusable = resp.reusable;
        let mut chunked = ChunkedEnd::default();
        let mut left = match framing {
            Framing::Length(n) => n,
            _ => 0,
        };
        let (taken, mut done) = take_body(
            framing,
            &self.rbuf[start..],
            &mut left,
            &mut chunked,
            &mut reusable,
        )?;
        frame(framing, &self.rbuf[start..start + taken], out);
        write_all(&mut self.client, out, CLIENT_TIMEOUT)
            .await
            .map_err(|_| Failed::Client)?;

        let read_timeout = location.config.read_timeout;
        while !done {
            self.rbuf.clear();
            self.rbuf.reserve(CHUNK);
            let n =
                match tokio::time::timeout(read_timeout, upstream.read_buf(&mut self.rbuf)).await {
                    Ok(Ok(n)) => n,
                    _ => return Err(Failed::Upstream),
                };
            if n == 0 {
                if framing != Framing::Close {
                    return Err(Failed::Upstream);
                }
                done = true;
                self.out.clear();
                self.out.extend_from_slice(b"0\r\n\r\n");
            } else {
                let (taken, end) =
                    take_body(framing, &self.rbuf, &mut left, &mut chunked, &mut reusable)?;
                done = end;
                self.out.clear();
                frame(framing, &self.rbuf[..taken], &mut self.out);
            }
            write_all(&mut self.client, &self.out, CLIENT_TIMEOUT)
                .await
                .map_err(|_| Failed::Client)?;
        }
        Ok(Relayed {
            upstream_reusable: reusable,
            keep_alive,
        })
    }

    /// Append the backend's status line and headers to `out`, without
    /// those the proxy drops or sets itself, and kedge's Server header.
    fn response_head(&mut self, cors: Option<&crate::annotations::Cors>) {
        let resp = &self.resp;
        let out = &mut self.out;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(itoa::Buffer::new().format(resp.status).as_bytes());
        out.push(b' ');
        let reason = &self.rbuf[resp.reason.clone()];
        if reason.is_empty() {
            let canonical = http::StatusCode::from_u16(resp.status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("");
            out.extend_from_slice(canonical.as_bytes());
        } else {
            out.extend_from_slice(reason);
        }
        out.extend_from_slice(b"\r\n");
        // A body the proxy frames itself goes without the backend's length
        // (a backend that sent both has it framed as chunked).
        let reframed = matches!(resp.framing, Some(Framing::Chunked | Framing::Close));
        for (name, value) in &resp.headers {
            let name = &self.rbuf[name.clone()];
            if head::dropped_response_header(name)
                || (cors.is_some() && is_cors_header(name))
                || (reframed && name.eq_ignore_ascii_case(b"content-length"))
            {
                continue;
            }
            push_header(out, name, &self.rbuf[value.clone()]);
        }
        out.extend_from_slice(b"Server: kedge\r\n");
    }

    /// Answer the request from the proxy itself.
    async fn answer(
        &mut self,
        worker: &Worker,
        location: &Location,
        routed: &Routed,
        answer: Answer,
        started: Instant,
    ) -> Next {
        let body_pending = self.head.content_length.unwrap_or(0) > 0;
        let keep_alive = !self.head.close
            && !*self.shutdown.borrow()
            && !body_pending
            && !matches!(answer.code, 400 | 414 | 431);
        let head_only = answer.body.is_empty() || *self.head.method() == http::Method::HEAD;
        let out = &mut self.out;
        out.clear();
        status_line(out, answer.code);
        out.extend_from_slice(b"Server: kedge\r\n");
        for (name, value) in &answer.headers {
            push_header(out, name.as_bytes(), value.as_bytes());
        }
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(itoa::Buffer::new().format(answer.body.len()).as_bytes());
        if !answer.body.is_empty() {
            out.extend_from_slice(b"\r\nContent-Type: text/html");
        }
        self.finish_head(keep_alive);
        if !head_only {
            self.out.extend_from_slice(answer.body);
        }
        let written = write_all(&mut self.client, &self.out, CLIENT_TIMEOUT).await;
        self.log(worker, location, routed, answer.code, started, None, "");
        self.consume(0);
        if keep_alive && written.is_ok() {
            Next::KeepAlive
        } else {
            Next::Close
        }
    }

    /// Answer with an error of the proxy's own (no endpoint, the backend
    /// failed) and close, as the Pingora path does.
    async fn fail(
        &mut self,
        worker: &Worker,
        location: &Location,
        routed: &Routed,
        code: u16,
        started: Instant,
        upstream: Option<SocketAddr>,
    ) -> Next {
        let out = &mut self.out;
        out.clear();
        status_line(out, code);
        out.extend_from_slice(
            b"Server: kedge\r\nContent-Length: 0\r\nCache-Control: private, no-store",
        );
        self.finish_head(false);
        let _ = write_all(&mut self.client, &self.out, CLIENT_TIMEOUT).await;
        self.log(
            worker, location, routed, code, started, upstream, "upstream",
        );
        Next::Close
    }

    /// End a head of the proxy's own: Date, Connection, the blank line.
    fn finish_head(&mut self, keep_alive: bool) {
        self.out.extend_from_slice(b"\r\nDate: ");
        self.out.extend_from_slice(get_cached_date().as_bytes());
        self.out.extend_from_slice(if keep_alive {
            b"\r\nConnection: keep-alive\r\n\r\n".as_slice()
        } else {
            b"\r\nConnection: close\r\n\r\n".as_slice()
        });
    }

    /// Drop the served request (head and body) from the buffer.
    fn consume(&mut self, body_len: u64) {
        let end = (self.head.len + body_len as usize).min(self.buf.len());
        self.buf.drain(..end);
    }

    #[allow(clippy::too_many_arguments)]
    fn log(
        &self,
        worker: &Worker,
        location: &Location,
        routed: &Routed,
        status: u16,
        started: Instant,
        upstream: Option<SocketAddr>,
        error: &str,
    ) {
        let took = started.elapsed();
        worker
            .metrics
            .request(&location.labels, &location.stats, status, took);
        if worker.access_log {
            tracing::info!(
                target: "kedge_ingress::access",
                client = %self.peer_text,
                method = %self.head.method(),
                host = %routed.host,
                uri = %self.text(self.head.target.clone()),
                status,
                upstream = %upstream.map(|a| a.to_string()).unwrap_or_default(),
                ms = took.as_secs_f64() * 1000.0,
                error,
            );
        }
    }
}

/// How a relayed exchange ended.
struct Relayed {
    upstream_reusable: bool,
    keep_alive: bool,
}

/// How much of `bytes` belongs to the body, and whether it ends there.
fn take_body(
    framing: Framing,
    bytes: &[u8],
    left: &mut u64,
    chunked: &mut ChunkedEnd,
    reusable: &mut bool,
) -> Result<(usize, bool), Failed> {
    let (taken, done) = match framing {
        Framing::Empty => (0, true),
        Framing::Length(_) => {
            let take = (*left).min(bytes.len() as u64);
            *left -= take;
            (take as usize, *left == 0)
        }
        Framing::Chunked => match chunked.feed(bytes) {
            Ok(Some(n)) => (n, true),
            Ok(None) => (bytes.len(), false),
            Err(_) => return Err(Failed::Upstream),
        },
        Framing::Close => (bytes.len(), false),
    };
    if taken < bytes.len() {
        // The backend sent more than its response: not to be trusted again.
        *reusable = false;
    }
    Ok((taken, done))
}

/// Append body bytes as they go to the client: as they are, or as one
/// chunk for a body the backend ends by closing.
fn frame(framing: Framing, bytes: &[u8], out: &mut Vec<u8>) {
    if framing == Framing::Close {
        if bytes.is_empty() {
            return;
        }
        out.extend_from_slice(format!("{:x}\r\n", bytes.len()).as_bytes());
        out.extend_from_slice(bytes);
        out.extend_from_slice(b"\r\n");
    } else {
        out.extend_from_slice(bytes);
    }
}

/// Whether a request may be repeated without changing its effect.
fn idempotent(method: &http::Method) -> bool {
    use http::Method;
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE
    )
}

/// Append one header line.
fn push_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A fresh `X-Request-ID`, 32 hex digits as `request::request_id` makes
/// them, written in place.
fn push_request_id(out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id: u128 = rand::random();
    out.extend((0..32).rev().map(|i| HEX[((id >> (i * 4)) & 0xf) as usize]));
}

/// `Access-Control-*`: replaced by a location's own CORS headers.
fn is_cors_header(name: &[u8]) -> bool {
    name.len() > 15 && name[..15].eq_ignore_ascii_case(b"access-control-")
}

fn status_line(out: &mut Vec<u8>, code: u16) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(itoa::Buffer::new().format(code).as_bytes());
    out.push(b' ');
    let reason = http::StatusCode::from_u16(code)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

fn endpoint_done(endpoint: &Endpoint, started: Instant) {
    endpoint.finish(started.elapsed().as_secs_f64() * 1e6);
}

async fn connect(addr: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let conn = tokio::time::timeout(timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    conn.set_nodelay(true)?;
    Ok(conn)
}

/// Write all of `bytes` and flush (a TLS client gathers its records until
/// a flush).
async fn write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    timeout: Duration,
) -> io::Result<()> {
    if bytes.is_empty() {
        return Ok(());
    }
    let write = async {
        stream.write_all(bytes).await?;
        stream.flush().await
    };
    tokio::time::timeout(timeout, write)
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_32_hex_digits() {
        let mut out = Vec::new();
        super::push_request_id(&mut out);
        assert_eq!(out.len(), 32);
        assert!(out
            .iter()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    }
}
