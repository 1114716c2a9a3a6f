//! The Pingora services: HTTP and HTTPS listeners on worker threads of
//! their own, so that the proxy's threads do only proxying and the watches
//! run elsewhere.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use pingora_core::apps::ServerApp;
use pingora_core::listeners::tls::Acceptor;
use pingora_core::server::configuration::ServerConf;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::sync::watch;

use crate::accept::{self, SharedApp};
use crate::h1;
use crate::metrics::Metrics;
use crate::proxy::IngressProxy;
use crate::Routes;

/// Sockets the proxy serves on, bound by the caller (so that port 0 works
/// and binding errors surface before anything starts).
#[derive(Debug, Default)]
pub struct Listeners {
    /// Plain HTTP.
    pub http: Vec<TcpListener>,
    /// HTTPS (HTTP/2 and HTTP/1.1 by ALPN).
    pub https: Vec<TcpListener>,
}

impl Listeners {
    /// Bind the given addresses.
    pub fn bind(http: &[SocketAddr], https: &[SocketAddr]) -> std::io::Result<Self> {
        let bind = |a: &SocketAddr| {
            TcpListener::bind(a)
                .map_err(|e| std::io::Error::new(e.kind(), format!("binding {a}: {e}")))
        };
        Ok(Self {
            http: http.iter().map(bind).collect::<Result<_, _>>()?,
            https: https.iter().map(bind).collect::<Result<_, _>>()?,
        })
    }
}

/// How the proxy runs.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Worker threads.
    pub threads: usize,
    /// One log line per request.
    pub access_log: bool,
    /// The port HTTP→HTTPS redirects name (the first HTTPS listener's if
    /// not set).
    pub https_port: Option<u16>,
    /// The way into the mesh, for requests to meshed pods (none: they are
    /// sent in plaintext, as to any pod).
    pub mesh: Option<Arc<crate::mesh::MeshOrigin>>,
    /// Serve plain HTTP/1.1 on kedge's lean path (the default), handing
    /// Pingora only what that path does not take; off, Pingora serves
    /// every plain connection (the reference the lean path is tested
    /// against).
    pub lean_http1: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            access_log: true,
            https_port: None,
            mesh: None,
            lean_http1: true,
        }
    }
}

/// The running proxy; [`drain`](Self::drain) ends it gracefully, and
/// dropping it stops accepting and ends the workers with whatever is still
/// open.
pub struct ProxyServer {
    /// Turns true to close the listeners (Pingora's shutdown watch).
    shutdown: watch::Sender<bool>,
    /// Turns true to stop waiting for open connections.
    force: watch::Sender<bool>,
    /// Every worker holds a receiver until its open connections are done.
    running: watch::Sender<()>,
    workers: Vec<std::thread::JoinHandle<()>>,
    /// Where it serves plain HTTP.
    pub http_addrs: Vec<SocketAddr>,
    /// Where it serves HTTPS.
    pub https_addrs: Vec<SocketAddr>,
}

// === impl ProxyServer ===

impl ProxyServer {
    /// Stop accepting (every listening socket closes) and wait until the
    /// connections still open are done: each finishes the request it is
    /// on, answered with `Connection: close` (or a GOAWAY on HTTP/2), and
    /// idle keep-alive connections close at once, as nginx's graceful
    /// shutdown does. Unbounded: the caller bounds it with its grace period
    /// and drops the server after it to end what is left.
    pub async fn drain(&self) {
        self.shutdown.send_replace(true);
        self.running.closed().await;
    }
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        self.shutdown.send_replace(true);
        self.force.send_replace(true);
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// One worker's copy of every listening socket.
struct WorkerListeners {
    http: Vec<(String, TcpListener)>,
    https: Vec<(String, TcpListener)>,
}

/// Start serving `routes` on `listeners`.
///
/// Each worker thread runs a single-threaded runtime with a Pingora
/// service of its own: it accepts on its own listening socket for every
/// address and keeps its own upstream keep-alive pool, so a connection, its
/// upstream connections and every wake-up they cause stay on one thread.
/// (With connections accepted on one thread and served on another, or
/// upstream connections shared between threads, each readiness event
/// crossed threads: two to three eventfd writes and a context switch a
/// request; docs/benchmarks.md.) The kernel spreads new connections over
/// the workers' sockets (`SO_REUSEPORT`), as nginx's `reuseport` does.
pub fn start(
    routes: Arc<Routes>,
    metrics: Arc<Metrics>,
    listeners: Listeners,
    opts: ServeOptions,
) -> std::io::Result<ProxyServer> {
    let local = |ls: &[TcpListener]| {
        ls.iter()
            .map(|l| l.local_addr())
            .collect::<Result<Vec<_>, _>>()
    };
    let http_addrs = local(&listeners.http)?;
    let https_addrs = local(&listeners.https)?;
    let https_port = opts
        .https_port
        .or_else(|| https_addrs.first().map(|a| a.port()))
        .unwrap_or(443);
    // Every worker after the first binds a sibling socket in the
    // original's SO_REUSEPORT group (`worker_socket`).
    for l in listeners.http.iter().chain(&listeners.https) {
        l.set_nonblocking(true)?;
        socket2::SockRef::from(l).set_reuse_port(true)?;
    }

    // One TLS configuration for all workers, so that any of them resumes
    // any session (accept.rs).
    let tls = accept::server_config(&routes).map_err(std::io::Error::other)?;
    let acceptor = Arc::new(Acceptor::from_server_config(tls));

    let threads = opts.threads.max(1);
    let conf = Arc::new(ServerConf {
        threads: 1,
        ..Default::default()
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let (force, force_rx) = watch::channel(false);
    let (running, running_rx) = watch::channel(());
    let mut workers = Vec::with_capacity(threads);
    for i in 0..threads {
        let copies = |ls: &[TcpListener]| {
            ls.iter()
                .map(|l| Ok((l.local_addr()?.to_string(), worker_socket(l, i == 0)?)))
                .collect::<std::io::Result<Vec<_>>>()
        };
        let own = WorkerListeners {
            http: copies(&listeners.http)?,
            https: copies(&listeners.https)?,
        };
        let mut app =
            IngressProxy::new(routes.clone(), metrics.clone(), https_port, opts.access_log);
        app.mesh = opts.mesh.clone();
        let (routes, metrics, mesh) = (routes.clone(), metrics.clone(), opts.mesh.clone());
        let (access_log, lean_http1) = (opts.access_log, opts.lean_http1);
        let (conf, acceptor, shutdown_rx) = (conf.clone(), acceptor.clone(), shutdown_rx.clone());
        let (mut force_rx, running_rx) = (force_rx.clone(), running_rx.clone());
        let worker = std::thread::Builder::new()
            .name(format!("ingress-proxy-{i}"))
            .spawn(move || {
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::error!(error = %e, "ingress worker runtime");
                        return;
                    }
                };
                let app = SharedApp::new(Arc::new(pingora_proxy::http_proxy(&conf, app)));
                let open = app.open.clone();
                let lean = Arc::new(h1::Worker {
                    routes,
                    metrics,
                    https_port,
                    access_log,
                    mesh,
                    pool: h1::Pool::default(),
                    fallback: Arc::new(app.clone()),
                });
                // Accept loops end, and their sockets close, when the
                // shutdown watch turns true; idle keep-alive connections
                // then close, those in a request once it is answered.
                runtime.block_on(async {
                    let tls = own.https.into_iter().map(|(_, l)| {
                        let app = Arc::new(app.clone());
                        let lean = lean_http1.then(|| lean.clone());
                        accept::serve(l, acceptor.clone(), app, lean, shutdown_rx.clone())
                    });
                    let plain = own.http.into_iter().map(|(_, l)| {
                        let port = l.local_addr().map_or(0, |a| a.port());
                        let (lean, open, shutdown) =
                            (lean.clone(), open.clone(), shutdown_rx.clone());
                        accept::accept_loop(l, shutdown_rx.clone(), move |tcp, peer| {
                            let guard = open.enter();
                            let (lean, shutdown) = (lean.clone(), shutdown.clone());
                            tokio::spawn(async move {
                                let _open = guard;
                                if lean_http1 {
                                    h1::serve_connection(lean, tcp, peer, port, shutdown).await;
                                } else {
                                    h1::handoff(&lean.fallback, tcp, Vec::new(), peer, shutdown)
                                        .await;
                                }
                            });
                        })
                    });
                    let accepting = futures::future::join(
                        futures::future::join_all(plain),
                        futures::future::join_all(tls),
                    );
                    tokio::select! {
                        _ = accepting => {}
                        () = sweep(&lean.pool) => {}
                    }
                    // Pingora's connections waiting for their next request.
                    app.cleanup().await;
                    tokio::select! {
                        () = open.idle() => {}
                        _ = force_rx.wait_for(|forced| *forced) => {}
                    }
                });
                drop(running_rx);
                // Whatever is still open after a forced stop ends with the
                // runtime.
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
        workers.push(worker);
    }
    tracing::info!(http = ?http_addrs, https = ?https_addrs, threads, "ingress proxy serving");
    Ok(ProxyServer {
        shutdown,
        force,
        running,
        workers,
        http_addrs,
        https_addrs,
    })
}

/// A worker's own listening socket for `l`: `l` itself for the first
/// worker, for the others a new socket on the same address in the same
/// `SO_REUSEPORT` group, so that the kernel hands each new connection to
/// one worker instead of waking them all to race for it.
fn worker_socket(l: &TcpListener, first: bool) -> std::io::Result<TcpListener> {
    if first {
        return l.try_clone();
    }
    let addr = l.local_addr()?;
    let original = socket2::SockRef::from(l);
    let sibling = || -> std::io::Result<TcpListener> {
        let s = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        s.set_reuse_address(true)?;
        s.set_reuse_port(true)?;
        if addr.is_ipv6() {
            s.set_only_v6(original.only_v6()?)?;
        }
        s.bind(&addr.into())?;
        s.listen(1024)?;
        s.set_nonblocking(true)?;
        Ok(s.into())
    };
    sibling().or_else(|e| {
        // Sharing the one socket still works; every worker's poller is
        // then woken for each connection.
        tracing::warn!(%addr, error = %e, "no SO_REUSEPORT sibling socket; sharing the listener");
        l.try_clone()
    })
}

/// Close the pool's connections idle past their time, every few seconds,
/// until dropped.
async fn sweep(pool: &h1::Pool) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(10)).await;
        pool.sweep();
    }
}
