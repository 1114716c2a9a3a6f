//! The tunnel between node proxies (Istio's HBONE): HTTP/2 over the mutual
//! TLS of [`tls`](super::tls), one `CONNECT` stream per proxied
//! connection, its `:authority` the destination pod's `IP:port`. The
//! destination side knows the caller by the SPIFFE ID of its certificate,
//! asks the policy whether that caller may reach that destination (401
//! when not), connects, answers 200 and relays bytes; anything but
//! `CONNECT` is a 405. Several connections share one TLS session, each a
//! stream of its own.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use http_body_util::Empty;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use super::tls::spiffe_id_of;

/// The port node proxies take tunnels on.
pub const HBONE_PORT: u16 = 15008;

/// How much one stream may have in flight before the peer's window update:
/// a bulk transfer through the tunnel runs at most at window / round trip
/// (ztunnel's figures; hyper's defaults held one stream to a few Gbit/s on
/// loopback).
const STREAM_WINDOW: u32 = 4 << 20;
/// The same for all streams of a session together.
const SESSION_WINDOW: u32 = 16 << 20;
/// The largest DATA frame either side takes: bigger frames, fewer headers
/// and wake-ups per byte (the default is 16 KiB).
const MAX_FRAME: u32 = 1 << 20;
/// What a proxied connection's byte copier reads and writes at once: two
/// TLS records' worth (the default 8 KiB makes a frame and a wake-up of
/// every 8 KiB; more than this gained nothing measurable, and each
/// connection holds four of them across the two proxies).
pub const COPY_BUFFER: usize = 32 << 10;

/// Bytes copied both ways between two connections until both are done,
/// in [`COPY_BUFFER`]-sized pieces; the bytes each way.
pub async fn copy_both_ways<A, B>(a: &mut A, b: &mut B) -> std::io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    tokio::io::copy_bidirectional_with_sizes(a, b, COPY_BUFFER, COPY_BUFFER).await
}

/// Why a tunnel could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The TCP connection or the TLS handshake failed.
    #[error("connecting to the peer proxy: {0}")]
    Io(#[from] std::io::Error),
    /// HTTP/2 failed.
    #[error("HTTP/2 with the peer proxy: {0}")]
    Http(#[from] hyper::Error),
    /// The peer answered the CONNECT with another status.
    #[error("the peer proxy answered {0}")]
    Refused(StatusCode),
    /// This side has no certificate to present yet, or it is unusable.
    #[error("no usable workload identity: {0}")]
    Identity(String),
    /// A NetworkPolicy does not let the source pod reach the destination.
    #[error("a NetworkPolicy does not allow the connection")]
    NetworkPolicy,
}

impl TunnelError {
    /// Whether this is a policy's answer (an AuthorizationPolicy's or a
    /// NetworkPolicy's), which says nothing of the destination's health.
    pub fn is_verdict(&self) -> bool {
        matches!(self, Self::NetworkPolicy)
            || matches!(self, Self::Refused(s) if *s == StatusCode::UNAUTHORIZED || *s == StatusCode::FORBIDDEN)
    }

    /// [`is_verdict`](Self::is_verdict) of the tunnel error somewhere in
    /// `error`'s chain of sources (an HTTP client's connect error, say).
    pub fn is_verdict_in(error: &(dyn std::error::Error + 'static)) -> bool {
        let mut next = Some(error);
        while let Some(error) = next {
            if let Some(tunnel) = error.downcast_ref::<TunnelError>() {
                return tunnel.is_verdict();
            }
            next = error.source();
        }
        false
    }
}

/// How the destination side reaches a destination: from the host, or from
/// inside the destination pod's network namespace with a marked socket.
pub type Connector =
    Arc<dyn Fn(SocketAddr) -> BoxFuture<'static, std::io::Result<TcpStream>> + Send + Sync>;

/// Destinations reached from where the proxy runs.
pub fn host_connector() -> Connector {
    Arc::new(|destination| Box::pin(TcpStream::connect(destination)))
}

/// What carries an accepted stream's bytes to the destination: given the
/// caller's SPIFFE ID, the destination, the stream and the connection to
/// the destination.
pub type Relay = Arc<
    dyn Fn(Arc<str>, SocketAddr, TunnelStream, TcpStream) -> BoxFuture<'static, ()> + Send + Sync,
>;

/// Bytes copied both ways, as they come.
pub fn copy_relay() -> Relay {
    Arc::new(|caller, destination, mut stream, mut upstream| {
        Box::pin(async move {
            if let Err(error) = copy_both_ways(&mut stream, &mut upstream).await {
                tracing::debug!(%caller, %destination, %error, "mesh connection ended");
            }
        })
    })
}

/// Serve tunnels on one accepted TCP connection: the TLS handshake with
/// `config`, then a CONNECT per stream. `allow(caller, destination)`
/// decides each one; `connect` reaches it; bytes are copied. Returns when
/// the connection ends.
pub async fn serve_connection<A>(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    allow: A,
    connect: Connector,
) -> Result<(), TunnelError>
where
    A: Fn(&str, SocketAddr) -> bool + Send + Sync + 'static,
{
    serve_connection_with(tcp, config, allow, connect, copy_relay()).await
}

/// [`serve_connection`], each accepted stream carried by `relay`.
pub async fn serve_connection_with<A>(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    allow: A,
    connect: Connector,
    relay: Relay,
) -> Result<(), TunnelError>
where
    A: Fn(&str, SocketAddr) -> bool + Send + Sync + 'static,
{
    let tls = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await?;
    let caller = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(spiffe_id_of);
    let Some(caller) = caller else {
        // The verifier asked for a certificate of the mesh; one with no
        // SPIFFE ID names nobody.
        return Ok(());
    };
    let caller: Arc<str> = Arc::from(caller);
    let allow = Arc::new(allow);
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let (caller, allow, connect, relay) = (
            caller.clone(),
            allow.clone(),
            connect.clone(),
            relay.clone(),
        );
        async move {
            Ok::<_, std::convert::Infallible>(
                accept_stream(request, caller, &*allow, &connect, relay).await,
            )
        }
    });
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(SESSION_WINDOW)
        .max_frame_size(MAX_FRAME)
        .serve_connection(TokioIo::new(tls), service)
        .await?;
    Ok(())
}

async fn accept_stream(
    request: Request<hyper::body::Incoming>,
    caller: Arc<str>,
    allow: &(dyn Fn(&str, SocketAddr) -> bool + Send + Sync),
    connect: &Connector,
    relay: Relay,
) -> Response<Empty<Bytes>> {
    let status = |code| {
        let mut response = Response::new(Empty::new());
        *response.status_mut() = code;
        response
    };
    if request.method() != Method::CONNECT {
        return status(StatusCode::METHOD_NOT_ALLOWED);
    }
    let Some(destination) = request
        .uri()
        .authority()
        .and_then(|a| a.as_str().parse::<SocketAddr>().ok())
    else {
        return status(StatusCode::BAD_REQUEST);
    };
    if !allow(&caller, destination) {
        tracing::info!(%caller, %destination, "mesh connection denied");
        return status(StatusCode::UNAUTHORIZED);
    }
    let upstream = match connect(destination).await {
        Ok(upstream) => upstream,
        Err(error) => {
            tracing::debug!(%caller, %destination, %error, "mesh destination unreachable");
            return status(StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let _ = upstream.set_nodelay(true);
    tracing::debug!(%caller, %destination, "mesh connection accepted");
    tokio::spawn(async move {
        match hyper::upgrade::on(request).await {
            Ok(upgraded) => relay(caller, destination, TokioIo::new(upgraded), upstream).await,
            Err(error) => tracing::debug!(%caller, %destination, %error, "no stream after CONNECT"),
        }
    });
    status(StatusCode::OK)
}

/// One proxied connection's stream through the tunnel.
pub type TunnelStream = TokioIo<hyper::upgrade::Upgraded>;

/// The client side of one TLS session to a peer proxy: CONNECT streams
/// opened on it one per proxied connection.
#[derive(Clone)]
pub struct TunnelClient {
    sender: hyper::client::conn::http2::SendRequest<Empty<Bytes>>,
}

impl TunnelClient {
    /// Open the session to the peer proxy at `peer`, with `config` (which
    /// names the identity the peer must have).
    pub async fn connect(
        peer: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<(Self, impl Future<Output = ()> + Send), TunnelError> {
        let tcp = TcpStream::connect(peer).await?;
        Self::over(tcp, config).await
    }

    /// The session over a TCP connection made already (from a pod's
    /// network namespace, say) to a peer proxy.
    pub async fn over(
        tcp: TcpStream,
        config: Arc<rustls::ClientConfig>,
    ) -> Result<(Self, impl Future<Output = ()> + Send), TunnelError> {
        let peer = tcp.peer_addr()?;
        let _ = tcp.set_nodelay(true);
        let name = ServerName::IpAddress(peer.ip().into());
        let tls = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await?;
        let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .initial_stream_window_size(STREAM_WINDOW)
            .initial_connection_window_size(SESSION_WINDOW)
            .max_frame_size(MAX_FRAME)
            .handshake(TokioIo::new(tls))
            .await?;
        let driver = async move {
            if let Err(error) = connection.await {
                tracing::debug!(%peer, %error, "tunnel session ended");
            }
        };
        Ok((Self { sender }, driver))
    }

    /// Whether the session has ended (the peer closed it, or it failed).
    pub fn is_closed(&self) -> bool {
        self.sender.is_closed()
    }

    /// A stream to `destination` through the peer proxy.
    pub async fn open(&mut self, destination: SocketAddr) -> Result<TunnelStream, TunnelError> {
        let request = Request::builder()
            .method(Method::CONNECT)
            .uri(destination.to_string())
            .body(Empty::new())
            .expect("a CONNECT request to an address is valid");
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        if response.status() != StatusCode::OK {
            return Err(TunnelError::Refused(response.status()));
        }
        Ok(TokioIo::new(hyper::upgrade::on(response).await?))
    }
}

/// The sessions one pod's proxy keeps to peer proxies, one per peer
/// address and identity: a connection to a pod whose session is up costs a
/// stream, not a TCP and TLS handshake.
#[derive(Default)]
pub struct TunnelPool {
    sessions: tokio::sync::Mutex<HashMap<(SocketAddr, String), TunnelClient>>,
}

impl TunnelPool {
    /// A stream to `destination` through the peer proxy at `peer`, which
    /// must be `expected`: on the session kept for them, else on a new one
    /// over a connection from `dial` with the TLS configuration `config`
    /// gives. A kept session that fails to open the stream is replaced
    /// once.
    pub async fn open<D, C>(
        &self,
        peer: SocketAddr,
        expected: &str,
        destination: SocketAddr,
        dial: D,
        config: C,
    ) -> Result<TunnelStream, TunnelError>
    where
        D: Fn(SocketAddr) -> BoxFuture<'static, std::io::Result<TcpStream>>,
        C: Fn() -> Result<Arc<rustls::ClientConfig>, TunnelError>,
    {
        let key = (peer, expected.to_string());
        // Held while a session is made, so a burst of first connections to
        // one peer makes one session.
        let mut sessions = self.sessions.lock().await;
        sessions.retain(|_, session| !session.is_closed());
        if let Some(session) = sessions.get(&key) {
            let mut session = session.clone();
            match session.open(destination).await {
                Ok(stream) => return Ok(stream),
                // A refusal is the peer's answer, not a broken session.
                Err(TunnelError::Refused(status)) => return Err(TunnelError::Refused(status)),
                Err(error) => {
                    tracing::debug!(%peer, %error, "tunnel session failed; opening another");
                    sessions.remove(&key);
                }
            }
        }
        let (mut session, driver) = TunnelClient::over(dial(peer).await?, config()?).await?;
        tokio::spawn(driver);
        sessions.insert(key, session.clone());
        drop(sessions);
        session.open(destination).await
    }
}

#[cfg(test)]
mod tests;
