//! The UDP and TCP listeners: UDP by kedge's own loop ([`udp`](crate::udp)),
//! TCP by hickory's `Server`.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use hickory_server::Server;
use nix::sys::socket::{
    bind, listen, setsockopt, socket, sockopt, AddressFamily, Backlog, SockFlag, SockType,
    SockaddrIn, SockaddrIn6,
};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::handler::ClusterDnsHandler;
use crate::Error;

/// How long an idle TCP connection is kept.
const TCP_IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// Responses queued per TCP connection.
const TCP_RESPONSE_BUFFER: usize = 32;
/// Tries to find a port free for both UDP and TCP when asked for port 0.
const EPHEMERAL_TRIES: usize = 32;

/// A running DNS server: UDP and TCP on each listen address. Dropping it
/// stops it.
pub struct DnsServer {
    server: Server<ClusterDnsHandler>,
    udp: JoinSet<std::io::Result<()>>,
    stop_udp: watch::Sender<bool>,
    local_addrs: Vec<SocketAddr>,
}

// === impl DnsServer ===

impl DnsServer {
    /// Bind UDP and TCP on every address (port 0 picks one port free for
    /// both) and start serving on the current runtime.
    pub async fn bind(handler: ClusterDnsHandler, listen: &[SocketAddr]) -> Result<Self, Error> {
        let mut server = Server::new(handler.clone());
        let (stop_udp, stopped) = watch::channel(false);
        let mut udp_loops = JoinSet::new();
        let mut local_addrs = Vec::with_capacity(listen.len());
        // One UDP loop per runtime worker, so answering uses every core.
        let loops = tokio::runtime::Handle::current().metrics().num_workers();
        for addr in listen {
            let (udp, tcp, local) = bind_pair(*addr).await?;
            let udp = std::sync::Arc::new(udp);
            for _ in 0..loops {
                udp_loops.spawn(crate::udp::serve(
                    udp.clone(),
                    handler.clone(),
                    stopped.clone(),
                ));
            }
            server.register_listener(tcp, TCP_IDLE_TIMEOUT, TCP_RESPONSE_BUFFER);
            tracing::info!(%local, "cluster DNS listening on UDP and TCP");
            local_addrs.push(local);
        }
        Ok(Self {
            server,
            udp: udp_loops,
            stop_udp,
            local_addrs,
        })
    }

    /// The bound addresses, one per listen address (UDP and TCP share it).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Serve until a listener fails.
    pub async fn serve(mut self) -> Result<(), Error> {
        let udp = async {
            while let Some(stopped) = self.udp.join_next().await {
                match stopped {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => return Error::Udp(error),
                    Err(panicked) => return Error::Udp(std::io::Error::other(panicked)),
                }
            }
            std::future::pending().await
        };
        tokio::select! {
            result = self.server.block_until_done() => result.map_err(Error::Serve),
            error = udp => Err(error),
        }
    }

    /// Stop accepting, finish requests in flight.
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let _ = self.stop_udp.send(true);
        while let Some(stopped) = self.udp.join_next().await {
            if let Ok(Err(error)) = stopped {
                tracing::debug!(%error, "a DNS UDP listener had failed");
            }
        }
        self.server
            .shutdown_gracefully()
            .await
            .map_err(Error::Serve)
    }
}

async fn bind_pair(addr: SocketAddr) -> Result<(UdpSocket, TcpListener, SocketAddr), Error> {
    let bind_error = |source| Error::Bind { addr, source };
    let tries = if addr.port() == 0 { EPHEMERAL_TRIES } else { 1 };
    let mut last = None;
    for _ in 0..tries {
        let udp = free_socket(addr, SockType::Datagram)
            .and_then(|fd| UdpSocket::from_std(std::net::UdpSocket::from(fd)))
            .map_err(bind_error)?;
        let local = udp.local_addr().map_err(bind_error)?;
        match free_socket(local, SockType::Stream)
            .and_then(|fd| TcpListener::from_std(std::net::TcpListener::from(fd)))
        {
            Ok(tcp) => return Ok((udp, tcp, local)),
            Err(error) => last = Some(error),
        }
    }
    Err(bind_error(last.unwrap_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "no port free for UDP and TCP",
        )
    })))
}

/// A non-blocking socket bound to `addr` (listening, for TCP), with
/// `IP_FREEBIND`: the cluster DNS address appears on the node only once
/// the service proxy holds it, and the proxy is told the port the DNS got
/// before it starts.
fn free_socket(addr: SocketAddr, ty: SockType) -> std::io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = socket(
        family,
        ty,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    setsockopt(&fd, sockopt::IpFreebind, &true)?;
    if ty == SockType::Stream {
        setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    }
    match addr {
        SocketAddr::V4(a) => bind(fd.as_raw_fd(), &SockaddrIn::from(a))?,
        SocketAddr::V6(a) => bind(fd.as_raw_fd(), &SockaddrIn6::from(a))?,
    }
    if ty == SockType::Stream {
        listen(&fd, Backlog::new(1024)?)?;
    }
    Ok(fd)
}
