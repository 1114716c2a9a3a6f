//! UDP: one flow per client address, each with its own socket connected to
//! the chosen endpoint; replies go back from the frontend socket so the
//! client sees them come from the address it sent to. Flows end after being
//! idle for the configured timeout.
//!
//! A redirected frontend's socket is bound to the wildcard address, where
//! the kernel would pick each reply's source by route: for a client on this
//! host that is not the address its datagram was redirected to, so
//! conntrack would not undo the redirect and the client would drop the
//! reply. Such a socket reads each datagram's destination (`IP_PKTINFO`)
//! and sends the reply from it.

use std::collections::HashMap;
use std::io::{IoSlice, IoSliceMut};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use nix::sys::socket::{
    recvmsg, sendmsg, setsockopt, sockopt, ControlMessage, ControlMessageOwned, MsgFlags,
    SockaddrIn,
};
use parking_lot::Mutex;
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Current, Shared};

/// Large enough for any UDP datagram.
const DATAGRAM: usize = 65_536;

type Flows = Mutex<HashMap<SocketAddr, Flow>>;

// === impl Frontend ===

/// A frontend's socket.
pub(super) struct Frontend {
    socket: UdpSocket,
    /// Bound to the wildcard address: destinations come from `IP_PKTINFO`.
    pktinfo: bool,
}

impl Frontend {
    /// Bind `addr`; `wildcard` turns on `IP_PKTINFO` (IPv4 only).
    pub(super) fn bind(addr: SocketAddr, wildcard: bool) -> std::io::Result<Self> {
        let std = std::net::UdpSocket::bind(addr)?;
        std.set_nonblocking(true)?;
        let pktinfo = wildcard && addr.is_ipv4();
        if pktinfo {
            setsockopt(&std, sockopt::Ipv4PacketInfo, &true)?;
        }
        Ok(Self {
            socket: UdpSocket::from_std(std)?,
            pktinfo,
        })
    }

    /// The port bound.
    pub(super) fn local_port(&self) -> std::io::Result<u16> {
        Ok(self.socket.local_addr()?.port())
    }

    /// One datagram: its length, sender, and the local address it was sent
    /// to when the socket is bound to the wildcard address.
    async fn recv_from(
        &self,
        buf: &mut [u8],
    ) -> std::io::Result<(usize, SocketAddr, Option<Ipv4Addr>)> {
        if !self.pktinfo {
            let (n, from) = self.socket.recv_from(buf).await?;
            return Ok((n, from, None));
        }
        let fd = self.socket.as_raw_fd();
        self.socket
            .async_io(Interest::READABLE, || {
                let mut iov = [IoSliceMut::new(buf)];
                let mut space = nix::cmsg_space!(nix::libc::in_pktinfo);
                let msg = recvmsg::<SockaddrIn>(fd, &mut iov, Some(&mut space), MsgFlags::empty())
                    .map_err(std::io::Error::from)?;
                let from = msg
                    .address
                    .map(|a| SocketAddr::V4(SocketAddrV4::new(a.ip(), a.port())))
                    .ok_or_else(|| std::io::Error::other("datagram without a sender"))?;
                let mut to = None;
                for c in msg.cmsgs().map_err(std::io::Error::from)? {
                    if let ControlMessageOwned::Ipv4PacketInfo(info) = c {
                        to = Some(Ipv4Addr::from(u32::from_be(info.ipi_addr.s_addr)));
                    }
                }
                Ok((msg.bytes, from, to))
            })
            .await
    }

    /// Send `data` to `to`, from `from` when given.
    async fn send_to(
        &self,
        data: &[u8],
        to: SocketAddr,
        from: Option<Ipv4Addr>,
    ) -> std::io::Result<usize> {
        let (Some(from), SocketAddr::V4(to4)) = (from, to) else {
            return self.socket.send_to(data, to).await;
        };
        let fd = self.socket.as_raw_fd();
        let info = nix::libc::in_pktinfo {
            ipi_ifindex: 0,
            ipi_spec_dst: nix::libc::in_addr {
                s_addr: u32::from(from).to_be(),
            },
            ipi_addr: nix::libc::in_addr { s_addr: 0 },
        };
        let dest = SockaddrIn::from(to4);
        self.socket
            .async_io(Interest::WRITABLE, || {
                sendmsg(
                    fd,
                    &[IoSlice::new(data)],
                    &[ControlMessage::Ipv4PacketInfo(&info)],
                    MsgFlags::empty(),
                    Some(&dest),
                )
                .map_err(std::io::Error::from)
            })
            .await
    }
}

struct Flow {
    endpoint: SocketAddr,
    socket: Arc<UdpSocket>,
    /// Milliseconds since the listener's epoch of the last datagram either way.
    last: Arc<AtomicU64>,
    task: JoinHandle<()>,
    current: Arc<Current>,
}

impl Drop for Flow {
    fn drop(&mut self) {
        self.task.abort();
        self.current.metrics.active.dec();
    }
}

/// Ends every flow when the listener ends, so nothing keeps its socket alive.
struct ClearOnDrop(Arc<Flows>);

impl Drop for ClearOnDrop {
    fn drop(&mut self) {
        self.0.lock().clear();
    }
}

pub(super) async fn serve(
    socket: Frontend,
    shared: Arc<Shared>,
    idle: Duration,
    shutdown: watch::Receiver<()>,
) {
    let frontend = Arc::new(socket);
    let flows: Arc<Flows> = Arc::default();
    let _clear = ClearOnDrop(flows.clone());
    let epoch = Instant::now();
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        let (n, client, local) = match frontend.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(error = %e, "UDP receive failed");
                continue;
            }
        };
        let current = shared.current.read().clone();
        let now_ms = epoch.elapsed().as_millis() as u64;
        // A flow whose endpoint left the Service starts over with a new one.
        let existing = flows
            .lock()
            .get(&client)
            .filter(|f| current.backends.endpoints.contains(&f.endpoint))
            .map(|f| (f.socket.clone(), f.last.clone()));
        let (upstream, last) = match existing {
            Some(found) => found,
            None => {
                let Some(flow) = open(
                    &shared, &current, &frontend, &flows, client, local, epoch, idle, &shutdown,
                )
                .await
                else {
                    current.metrics.rejected.inc();
                    continue;
                };
                let found = (flow.socket.clone(), flow.last.clone());
                flows.lock().insert(client, flow);
                found
            }
        };
        last.store(now_ms, Ordering::Relaxed);
        match upstream.send(&buf[..n]).await {
            Ok(sent) => {
                current.metrics.bytes_to_endpoint.inc_by(sent as u64);
            }
            Err(e) => {
                tracing::debug!(%client, error = %e, "UDP send to endpoint failed");
                remove_if_same(&flows, client, &upstream);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn open(
    shared: &Shared,
    current: &Arc<Current>,
    frontend: &Arc<Frontend>,
    flows: &Arc<Flows>,
    client: SocketAddr,
    local: Option<Ipv4Addr>,
    epoch: Instant,
    idle: Duration,
    shutdown: &watch::Receiver<()>,
) -> Option<Flow> {
    let backends = &current.backends;
    let endpoints = shared.allowed_endpoints(
        &backends.endpoints,
        client.ip(),
        crate::netpol::model::Proto::Udp,
    );
    let endpoint =
        shared
            .balancer
            .pick(&endpoints, backends.affinity, client.ip(), Instant::now())?;
    let any: IpAddr = if endpoint.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = match UdpSocket::bind((any, 0)).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "UDP flow socket failed");
            return None;
        }
    };
    if let Err(e) = socket.connect(endpoint).await {
        tracing::debug!(%endpoint, error = %e, "UDP connect failed");
        return None;
    }
    let socket = Arc::new(socket);
    let last = Arc::new(AtomicU64::new(epoch.elapsed().as_millis() as u64));
    let task = tokio::spawn(replies(Replies {
        upstream: socket.clone(),
        frontend: Arc::downgrade(frontend),
        flows: Arc::downgrade(flows),
        client,
        local,
        last: last.clone(),
        epoch,
        idle,
        current: current.clone(),
        shutdown: shutdown.clone(),
    }));
    current.metrics.connections.inc();
    current.metrics.active.inc();
    Some(Flow {
        endpoint,
        socket,
        last,
        task,
        current: current.clone(),
    })
}

struct Replies {
    upstream: Arc<UdpSocket>,
    // Weak: the listener alone owns the frontend socket and the flow table,
    // so closing it closes them.
    frontend: Weak<Frontend>,
    flows: Weak<Flows>,
    client: SocketAddr,
    /// Where the client's datagrams arrived, for replies of a wildcard socket.
    local: Option<Ipv4Addr>,
    last: Arc<AtomicU64>,
    epoch: Instant,
    idle: Duration,
    current: Arc<Current>,
    shutdown: watch::Receiver<()>,
}

/// Relay the endpoint's datagrams to the client until the flow is idle.
async fn replies(mut r: Replies) {
    let mut buf = vec![0u8; DATAGRAM];
    loop {
        let received = tokio::select! {
            res = tokio::time::timeout(r.idle, r.upstream.recv(&mut buf)) => res,
            _ = r.shutdown.changed() => break,
        };
        match received {
            Ok(Ok(n)) => {
                let Some(frontend) = r.frontend.upgrade() else {
                    break;
                };
                r.last
                    .store(r.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
                if frontend.send_to(&buf[..n], r.client, r.local).await.is_ok() {
                    r.current.metrics.bytes_from_endpoint.inc_by(n as u64);
                }
            }
            // The endpoint refused (ICMP port unreachable): end the flow so
            // the client's next datagram picks again.
            Ok(Err(_)) => break,
            Err(_) => {
                let idle_ms = (r.epoch.elapsed().as_millis() as u64)
                    .saturating_sub(r.last.load(Ordering::Relaxed));
                if idle_ms >= r.idle.as_millis() as u64 {
                    break;
                }
            }
        }
    }
    if let Some(flows) = r.flows.upgrade() {
        remove_if_same(&flows, r.client, &r.upstream);
    }
}

fn remove_if_same(flows: &Flows, client: SocketAddr, upstream: &Arc<UdpSocket>) {
    let removed = {
        let mut flows = flows.lock();
        match flows.get(&client) {
            Some(f) if Arc::ptr_eq(&f.socket, upstream) => flows.remove(&client),
            _ => None,
        }
    };
    // Dropped outside the lock: it aborts the flow's task.
    drop(removed);
}
