//! The Pingora service: HTTP and HTTPS listeners on a runtime of their
//! own, so that the proxy's worker threads do only proxying and the
//! watches run elsewhere.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::IntoRawFd;
use std::sync::Arc;

use pingora_core::listeners::tls::TlsSettings;
use pingora_core::server::configuration::ServerConf;
use pingora_core::server::Fds;
use pingora_core::services::Service as _;
use pingora_runtime::Runtime;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::proxy::IngressProxy;
use crate::tls::SniResolver;
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
    /// One work-stealing runtime for all threads, instead of one
    /// single-threaded runtime per thread with connections spread over
    /// them (Pingora's "no steal" flavour, faster here: see
    /// docs/benchmarks.md). Set it when a process starts more than one
    /// proxy over its life: the no-steal runtime finds its pools through a
    /// process-wide thread-local that recycled thread ids can leave stale.
    pub work_stealing: bool,
}

impl Default for ServeOptions {
    fn default() -> Self {
        Self {
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
            access_log: true,
            https_port: None,
            work_stealing: false,
        }
    }
}

/// The running proxy; dropping it stops accepting and ends the runtime.
pub struct ProxyServer {
    shutdown: watch::Sender<bool>,
    thread: Option<std::thread::JoinHandle<()>>,
    /// Where it serves plain HTTP.
    pub http_addrs: Vec<SocketAddr>,
    /// Where it serves HTTPS.
    pub https_addrs: Vec<SocketAddr>,
}

impl Drop for ProxyServer {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Start serving `routes` on `listeners`.
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

    let threads = opts.threads.max(1);
    let conf = Arc::new(ServerConf {
        threads,
        ..Default::default()
    });
    let app = IngressProxy::new(routes.clone(), metrics, https_port, opts.access_log);
    let mut service = pingora_proxy::http_proxy_service_with_name(&conf, app, "kedge ingress");
    // Pingora takes already-bound sockets from its fd table by address.
    let mut fds = Fds::new();
    for l in listeners.http {
        let addr = l.local_addr()?.to_string();
        l.set_nonblocking(true)?;
        fds.add(addr.clone(), l.into_raw_fd());
        service.add_tcp(&addr);
    }
    for l in listeners.https {
        let addr = l.local_addr()?.to_string();
        l.set_nonblocking(true)?;
        fds.add(addr.clone(), l.into_raw_fd());
        // The certificate is chosen per handshake from the current table.
        let mut tls = TlsSettings::intermediate("", "").map_err(std::io::Error::other)?;
        tls.set_cert_resolver(Arc::new(SniResolver::new(routes.clone())));
        tls.enable_h2();
        service.add_tls_with_settings(&addr, None, tls);
    }
    let fds = Arc::new(parking_lot::Mutex::new(fds));

    let (shutdown, shutdown_rx) = watch::channel(false);
    let runtime = if opts.work_stealing {
        Runtime::new_steal(threads, "ingress-proxy")
    } else {
        Runtime::new_no_steal(threads, "ingress-proxy")
    };
    let thread = std::thread::Builder::new()
        .name("ingress-proxy-main".into())
        .spawn(move || {
            let (done_tx, done_rx) = std::sync::mpsc::channel();
            // Accept loops end when the shutdown watch turns true.
            runtime.get_handle().spawn(async move {
                service.start_service(Some(fds), shutdown_rx, 1).await;
                let _ = done_tx.send(());
            });
            let _ = done_rx.recv();
            // Requests still in flight end with the runtime.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
        })?;
    tracing::info!(http = ?http_addrs, https = ?https_addrs, threads, "ingress proxy serving");
    Ok(ProxyServer {
        shutdown,
        thread: Some(thread),
        http_addrs,
        https_addrs,
    })
}
