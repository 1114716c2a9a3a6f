//! The HTTPS accept path: one rustls configuration for every worker.
//!
//! Pingora's TLS listeners build a rustls configuration per service, and
//! with a service per worker each has its own session cache: a client
//! coming back to resume a session reaches another worker's cache as often
//! as not and pays a full handshake. Accepting here with one configuration
//! (one session cache, one ticket key, as nginx's workers share theirs)
//! lets any worker resume any session. The handshaken stream then goes to
//! the same Pingora application that serves plain HTTP.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use pingora_core::apps::ServerApp;
use pingora_core::listeners::tls::Acceptor;
use pingora_core::protocols::l4::stream::{Stream as L4Stream, DEFAULT_L4_WRITE_BUFFER_SIZE};
use pingora_core::protocols::raw_connect::ProxyDigest;
use pingora_core::protocols::{
    GetProxyDigest, GetSocketDigest, GetTimingDigest, Peek, Shutdown, SocketDigest, Ssl, Stream,
    TimingDigest, UniqueID, UniqueIDType, ALPN,
};
use pingora_core::server::ShutdownWatch;
use pingora_proxy::HttpProxy;
use rustls::server::ServerSessionMemoryCache;
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter, ReadBuf};

use crate::h1;
use crate::proxy::IngressProxy;
use crate::tls::SniResolver;
use crate::Routes;

/// Sessions kept for resumption by session ID (TLS 1.2 clients); TLS 1.3
/// resumes with stateless tickets and keeps nothing.
const SESSION_CACHE: usize = 16 * 1024;

/// How long a client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(60);

/// The one server configuration: certificates chosen by SNI from the
/// current route table, HTTP/2 and HTTP/1.1 by ALPN, a session cache and a
/// ticket key shared by every connection of the process.
pub(crate) fn server_config(routes: &Arc<Routes>) -> Result<Arc<ServerConfig>, rustls::Error> {
    let mut provider = rustls::crypto::ring::default_provider();
    // AES-128-GCM with SHA-256 first, as ingress-nginx's cipher list puts
    // it (with the server's order preferred): as safe, and SHA-256 runs on
    // the CPU's SHA extensions where SHA-384 does not — a full handshake's
    // key schedule hashed with SHA-384 was a sixth of the proxy's CPU.
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 1,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 2,
        rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | rustls::CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => 3,
        _ => 4,
    });
    let provider = Arc::new(provider);
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SniResolver::new(routes.clone())));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.ignore_client_order = true;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    config.ticketer = rustls::crypto::ring::Ticketer::new()?;
    Ok(Arc::new(config))
}

/// The Pingora application, shared by a worker's plain and TLS listeners
/// (and so is its upstream keep-alive pool), counting the connections it
/// serves so that a drain knows when they are done.
pub(crate) struct SharedApp<A> {
    app: Arc<A>,
    pub(crate) open: Arc<OpenConnections>,
}

// Not derived: that would ask for `A: Clone`.
impl<A> Clone for SharedApp<A> {
    fn clone(&self) -> Self {
        Self {
            app: self.app.clone(),
            open: self.open.clone(),
        }
    }
}

impl<A> SharedApp<A> {
    pub(crate) fn new(app: Arc<A>) -> Self {
        Self {
            app,
            open: Arc::new(OpenConnections::default()),
        }
    }
}

#[async_trait]
impl<A: ServerApp + Send + Sync + 'static> ServerApp for SharedApp<A> {
    async fn process_new(
        self: &Arc<Self>,
        session: Stream,
        shutdown: &ShutdownWatch,
    ) -> Option<Stream> {
        // Pingora calls this once per request of a kept-alive HTTP/1
        // connection, the next call following at once, and once for a
        // whole HTTP/2 connection.
        let _open = self.open.enter();
        self.app.process_new(session, shutdown).await
    }

    async fn cleanup(&self) {
        self.app.cleanup().await
    }
}

/// How many connections a worker is serving (on its own thread, so a plain
/// count behind a watch).
#[derive(Debug)]
pub(crate) struct OpenConnections(tokio::sync::watch::Sender<usize>);

impl Default for OpenConnections {
    fn default() -> Self {
        Self(tokio::sync::watch::channel(0).0)
    }
}

impl OpenConnections {
    /// Count one connection until the guard drops.
    pub(crate) fn enter(self: &Arc<Self>) -> OpenGuard {
        self.0.send_modify(|n| *n += 1);
        OpenGuard(self.clone())
    }

    /// Resolves when no connection is open.
    pub(crate) async fn idle(&self) {
        let _ = self.0.subscribe().wait_for(|n| *n == 0).await;
    }
}

/// One open connection of [`OpenConnections`].
pub(crate) struct OpenGuard(Arc<OpenConnections>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0 .0.send_modify(|n| *n -= 1);
    }
}

/// Accept connections on `listener` until `shutdown` turns true, handing
/// each to `serve` (with TCP_NODELAY set).
pub(crate) async fn accept_loop(
    listener: std::net::TcpListener,
    mut shutdown: ShutdownWatch,
    mut serve: impl FnMut(tokio::net::TcpStream, std::net::SocketAddr),
) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(error = %e, "ingress listener");
            return;
        }
    };
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a connection");
                    // Out of file descriptors: accept() would fail at once
                    // again; give other connections time to close.
                    if e.raw_os_error() == Some(24) {
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                    continue;
                }
            },
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        serve(tcp, peer);
    }
}

/// Accept TLS connections on `listener` until `shutdown` turns true; each
/// is handshaken and served on its own task of the current runtime: by the
/// lean HTTP/1 path when it has one (`lean`) and the client did not choose
/// HTTP/2, by the Pingora application otherwise.
pub(crate) async fn serve(
    listener: std::net::TcpListener,
    acceptor: Arc<Acceptor>,
    app: Arc<SharedApp<HttpProxy<IngressProxy>>>,
    lean: Option<Arc<h1::Worker>>,
    shutdown: ShutdownWatch,
) {
    let port = listener.local_addr().map_or(0, |a| a.port());
    let watch = shutdown.clone();
    accept_loop(listener, watch, |tcp, peer| {
        let mut l4 = L4Stream::from(tcp);
        let digest = SocketDigest::from_raw_fd(std::os::fd::AsRawFd::as_raw_fd(&l4));
        let _ = digest.peer_addr.set(Some(peer.into()));
        l4.set_socket_digest(digest);
        let (acceptor, app, shutdown) = (acceptor.clone(), app.clone(), shutdown.clone());
        let lean = lean.clone();
        // From the accept on, so that a drain also waits for handshakes.
        let open = app.open.enter();
        tokio::spawn(async move {
            let _open = open;
            let io = Coalesced(BufWriter::with_capacity(DEFAULT_L4_WRITE_BUFFER_SIZE, l4));
            let tls =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.tls_handshake(io)).await {
                    Ok(Ok(tls)) => tls,
                    // A client that gives up or speaks something else is not
                    // the server's error (nginx logs these at info).
                    Ok(Err(e)) => return tracing::debug!(%peer, error = %e, "TLS handshake"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                };
            match lean {
                Some(worker) if tls.selected_alpn_proto() != Some(ALPN::H2) => {
                    h1::serve_connection(worker, tls, peer, port, shutdown).await
                }
                _ => h1::handoff(&app, tls, Vec::new(), peer, shutdown).await,
            }
        });
    })
    .await
}

/// A handshaken TLS client connection.
pub(crate) type TlsClient = pingora_core::protocols::tls::TlsStream<Coalesced>;

/// A connection handed from the lean HTTP/1 path to Pingora's, with the
/// bytes the lean path already read put back in front.
#[derive(Debug)]
pub(crate) struct Rewound<S> {
    read: Vec<u8>,
    at: usize,
    inner: S,
}

impl<S> Rewound<S> {
    pub(crate) fn new(read: Vec<u8>, inner: S) -> Self {
        Self { read, at: 0, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewound<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.at < self.read.len() {
            let n = (self.read.len() - self.at).min(buf.remaining());
            let at = self.at;
            buf.put_slice(&self.read[at..at + n]);
            self.at += n;
            if self.at == self.read.len() {
                self.read = Vec::new();
                self.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewound<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[async_trait]
impl<S: Shutdown + Send> Shutdown for Rewound<S> {
    async fn shutdown(&mut self) {
        Shutdown::shutdown(&mut self.inner).await
    }
}

impl<S: UniqueID> UniqueID for Rewound<S> {
    fn id(&self) -> UniqueIDType {
        self.inner.id()
    }
}

/// TLS facts (the digest, the ALPN) are the inner stream's.
impl<S: Ssl> Ssl for Rewound<S> {
    fn get_ssl(&self) -> Option<&pingora_core::protocols::tls::TlsRef> {
        self.inner.get_ssl()
    }

    fn get_ssl_digest(&self) -> Option<Arc<pingora_core::protocols::tls::SslDigest>> {
        self.inner.get_ssl_digest()
    }

    fn selected_alpn_proto(&self) -> Option<pingora_core::protocols::ALPN> {
        self.inner.selected_alpn_proto()
    }
}

#[async_trait]
impl<S: Send> Peek for Rewound<S> {}

impl<S: GetTimingDigest> GetTimingDigest for Rewound<S> {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.inner.get_timing_digest()
    }
}

impl<S> GetProxyDigest for Rewound<S> {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl<S: GetSocketDigest> GetSocketDigest for Rewound<S> {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.inner.get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.inner.set_socket_digest(digest)
    }
}

/// The accepted TCP stream with its writes gathered until a flush, as
/// Pingora's own listeners buffer them: a response's TLS records (head,
/// body) leave in one segment instead of one write each.
#[derive(Debug)]
pub(crate) struct Coalesced(BufWriter<L4Stream>);

impl AsyncRead for Coalesced {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl AsyncWrite for Coalesced {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

#[async_trait]
impl Shutdown for Coalesced {
    async fn shutdown(&mut self) {
        // BufWriter's shutdown flushes what is buffered first.
        if let Err(e) = AsyncWriteExt::shutdown(&mut self.0).await {
            tracing::debug!(error = %e, "closing a connection");
        }
    }
}

impl UniqueID for Coalesced {
    fn id(&self) -> UniqueIDType {
        self.0.get_ref().id()
    }
}

impl Ssl for Coalesced {}

#[async_trait]
impl Peek for Coalesced {}

impl GetTimingDigest for Coalesced {
    fn get_timing_digest(&self) -> Vec<Option<TimingDigest>> {
        self.0.get_ref().get_timing_digest()
    }
}

impl GetProxyDigest for Coalesced {
    fn get_proxy_digest(&self) -> Option<Arc<ProxyDigest>> {
        None
    }
}

impl GetSocketDigest for Coalesced {
    fn get_socket_digest(&self) -> Option<Arc<SocketDigest>> {
        self.0.get_ref().get_socket_digest()
    }

    fn set_socket_digest(&mut self, digest: SocketDigest) {
        self.0.get_mut().set_socket_digest(digest)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::server_config;

    /// A client that lists AES-256 first still gets AES-128 with SHA-256.
    #[test]
    fn the_server_order_of_cipher_suites_wins() {
        let routes = crate::new_routes(Arc::new(crate::tls::TlsCert::fallback()));
        let server = server_config(&routes).unwrap();
        let mut provider = rustls::crypto::ring::default_provider();
        provider
            .cipher_suites
            .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_256_GCM_SHA384);
        let client = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        let name = rustls::pki_types::ServerName::try_from("ingress.local").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let mut server = rustls::ServerConnection::new(server).unwrap();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        server.read_tls(&mut wire.as_slice()).unwrap();
        server.process_new_packets().unwrap();
        wire.clear();
        server.write_tls(&mut wire).unwrap();
        client.read_tls(&mut wire.as_slice()).unwrap();
        // The certificate is not trusted here; the suite is chosen before.
        let _ = client.process_new_packets();
        let suite = client.negotiated_cipher_suite().unwrap().suite();
        assert_eq!(suite, rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    }
}
