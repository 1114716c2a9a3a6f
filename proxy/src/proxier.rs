//! The userspace data plane: one listener per [`Frontend`], each balancing
//! over the endpoints it is given. Applying a table swaps endpoint lists in
//! place, so established connections are untouched and new ones see the
//! change at once; listeners come and go with their frontends.
//!
//! With `nft` at hand, listeners sit on the wildcard address and ports the
//! kernel picks, and the frontends are redirected to them ([`redirect`]):
//! no Service address is bound on the host, so host processes keep every
//! wildcard port. Without it, each frontend's own address is bound.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::balancer::Balancer;
use crate::holder::{Holder, HolderError};
use crate::metrics::{Metrics, PortMetrics};
use crate::table::{Backends, Frontend, NodeInfo, Protocol, ProxyTable};
use crate::ProxyConfig;

pub mod redirect;
mod relay;
mod tcp;
mod udp;

use redirect::{Redirector, Redirects};

/// The userspace proxy's listeners and holder interface. Dropping it closes
/// every listener and connection and removes the holder interface.
pub struct Proxier {
    node: NodeInfo,
    listeners: HashMap<Frontend, Listener>,
    /// Frontends whose listener could not be bound yet, with the error logged once.
    pending: BTreeMap<Frontend, String>,
    metrics: Arc<Metrics>,
    udp_idle_timeout: Duration,
    /// Never sent on: dropping it tells every connection task to end, and
    /// every listener and connection holds a receiver, so it is closed once
    /// they are all gone ([`drain`](Proxier::drain)).
    shutdown: watch::Sender<()>,
    /// The redirect table, when frontends are reached through it.
    redirector: Option<Redirector>,
    /// ClusterIPs of the last synced table whose unserved ports the
    /// redirect table turns away (those a local process serves left out).
    cluster_ips: BTreeSet<Ipv4Addr>,
    /// Addresses a process on this node serves itself (the cluster DNS).
    locally_served: BTreeSet<IpAddr>,
    /// Those served on another port of their address, DNATed there.
    local_ports: BTreeMap<(Ipv4Addr, Protocol, u16), u16>,
    // Last, so that listeners close before their addresses go.
    holder: Option<Holder>,
    /// NetworkPolicies, checked before a connection to an endpoint.
    policy: Arc<crate::netpol::Policy>,
}

/// What a listener's connections read when they start.
pub(crate) struct Current {
    pub backends: Backends,
    pub metrics: PortMetrics,
}

/// State shared by a listener and its connections.
pub(crate) struct Shared {
    pub current: RwLock<Arc<Current>>,
    pub balancer: Balancer,
    /// Which clients may reach which endpoints.
    pub policy: Arc<crate::netpol::Policy>,
}

impl Shared {
    /// The endpoints the NetworkPolicies let `client` reach over `proto`
    /// (all of them, borrowed, in the common case where none is closed).
    pub fn allowed_endpoints<'a>(
        &self,
        endpoints: &'a [SocketAddr],
        client: std::net::IpAddr,
        proto: crate::netpol::model::Proto,
    ) -> std::borrow::Cow<'a, [SocketAddr]> {
        let allows = |ep: &SocketAddr| self.policy.allows(client, ep.ip(), proto, ep.port());
        if endpoints.iter().all(allows) {
            std::borrow::Cow::Borrowed(endpoints)
        } else {
            std::borrow::Cow::Owned(endpoints.iter().copied().filter(allows).collect())
        }
    }
}

struct Listener {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    /// The wildcard port the frontend is redirected to, if it is.
    redirected_to: Option<u16>,
}

impl Drop for Proxier {
    fn drop(&mut self) {
        for l in self.listeners.values() {
            l.task.abort();
        }
    }
}

impl Proxier {
    /// A proxier for `config`, creating the holder interface if one is named.
    pub async fn new(config: &ProxyConfig) -> Result<Self, HolderError> {
        let holder = match &config.holder_interface {
            Some(name) => Some(Holder::ensure(name).await?),
            None => None,
        };
        let redirector = if config.userspace_redirect {
            match Redirector::new(&config.nftables_table).await {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot redirect Service traffic with nftables; binding each Service address and port instead, which a host process binding the same port on the wildcard address (a hostNetwork pod) will collide with");
                    None
                }
            }
        } else {
            None
        };
        Ok(Self {
            node: NodeInfo {
                name: config.node_name.clone(),
                addresses: config.node_addresses.clone(),
            },
            listeners: HashMap::new(),
            pending: BTreeMap::new(),
            metrics: config.metrics.clone(),
            udp_idle_timeout: config.udp_idle_timeout,
            shutdown: watch::channel(()).0,
            redirector,
            cluster_ips: BTreeSet::new(),
            locally_served: config.locally_served.iter().map(|f| f.addr.ip()).collect(),
            local_ports: config
                .local_ports
                .iter()
                .filter_map(|(f, port)| match f.addr {
                    SocketAddr::V4(a) => Some(((*a.ip(), f.protocol, a.port()), *port)),
                    SocketAddr::V6(_) => None,
                })
                .collect(),
            holder,
            policy: config.network_policy.clone(),
        })
    }

    /// Serve `table`: ClusterIPs on the holder interface, listeners for
    /// every frontend of this node. Listeners that cannot be bound yet are
    /// kept [`pending`](Self::has_pending); calling again retries them.
    pub async fn sync(&mut self, table: &ProxyTable) {
        let start = Instant::now();
        let desired = table.frontends(&self.node);
        self.close_removed(&desired).await;
        if let Some(holder) = &mut self.holder {
            if let Err(e) = holder.sync(&table.cluster_ips()).await {
                tracing::warn!(interface = holder.name(), error = %e, "updating ClusterIPs on the holder interface failed");
            }
        }
        self.cluster_ips = table
            .cluster_ips()
            .into_iter()
            .filter(|ip| !self.locally_served.contains(ip))
            .filter_map(|ip| match ip {
                IpAddr::V4(v4) => Some(v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        self.open_and_update(desired).await;
        self.redirect().await;
        self.metrics.observe_sync(start.elapsed());
    }

    /// Serve exactly `desired`, without touching the holder interface.
    pub async fn apply(&mut self, desired: BTreeMap<Frontend, Backends>) {
        self.close_removed(&desired).await;
        self.open_and_update(desired).await;
        self.redirect().await;
    }

    /// Whether some listeners could not be bound, or the redirect table
    /// applied, and wait for a retry.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty() || self.redirector.as_ref().is_some_and(|r| r.has_pending())
    }

    /// The redirect table's name, when frontends are redirected.
    pub fn redirect_table(&self) -> Option<&str> {
        self.redirector.as_ref().map(|r| r.table())
    }

    /// Point the redirect table at the listeners as they are now.
    async fn redirect(&mut self) {
        let Some(redirector) = &mut self.redirector else {
            return;
        };
        let ports = self
            .listeners
            .iter()
            .filter_map(|(f, l)| match (f.addr, l.redirected_to) {
                (SocketAddr::V4(a), Some(local)) => Some(((*a.ip(), f.protocol, a.port()), local)),
                _ => None,
            })
            .collect();
        redirector
            .apply(Redirects {
                ports,
                cluster_ips: self.cluster_ips.clone(),
                local: self.local_ports.clone(),
            })
            .await;
    }

    /// Close every listener and wait until the connections they accepted
    /// are done (TCP: closed by either side; UDP: idle past the flow
    /// timeout). New connections to a frontend are refused from the start.
    /// The redirect table and the holder interface stay until the proxier
    /// is dropped, so open connections keep their path. Unbounded: the
    /// caller bounds it with its grace period and drops the proxier after
    /// it to close what is left.
    pub async fn drain(&mut self) {
        let closing: Vec<_> = self
            .listeners
            .drain()
            .map(|(_, l)| {
                l.task.abort();
                l.task
            })
            .collect();
        for task in closing {
            let _ = task.await;
        }
        self.pending.clear();
        self.shutdown.closed().await;
    }

    /// The frontends being listened on.
    pub fn frontends(&self) -> BTreeSet<Frontend> {
        self.listeners.keys().copied().collect()
    }

    async fn close_removed(&mut self, desired: &BTreeMap<Frontend, Backends>) {
        self.pending.retain(|f, _| desired.contains_key(f));
        let gone: Vec<Frontend> = self
            .listeners
            .keys()
            .filter(|f| !desired.contains_key(f))
            .copied()
            .collect();
        let mut closing = Vec::with_capacity(gone.len());
        for f in gone {
            if let Some(l) = self.listeners.remove(&f) {
                tracing::debug!(frontend = %f, "closing listener");
                l.task.abort();
                closing.push(l.task);
            }
        }
        // An aborted task has dropped its socket once awaited: a frontend
        // that comes back in this same sync can bind again.
        for task in closing {
            let _ = task.await;
        }
    }

    async fn open_and_update(&mut self, desired: BTreeMap<Frontend, Backends>) {
        for (frontend, backends) in desired {
            if let Some(l) = self.listeners.get(&frontend) {
                let mut current = l.shared.current.write();
                if current.backends != backends {
                    let metrics = if current.backends.service == backends.service
                        && current.backends.port_name == backends.port_name
                    {
                        current.metrics.clone()
                    } else {
                        self.port_metrics(&frontend, &backends)
                    };
                    tracing::debug!(%frontend, endpoints = ?backends.endpoints, "endpoints changed");
                    *current = Arc::new(Current { backends, metrics });
                }
                continue;
            }
            let shared = Arc::new(Shared {
                current: RwLock::new(Arc::new(Current {
                    metrics: self.port_metrics(&frontend, &backends),
                    backends,
                })),
                balancer: Balancer::new(),
                policy: self.policy.clone(),
            });
            match self.bind(frontend, shared.clone()).await {
                Ok((task, redirected_to)) => {
                    tracing::debug!(%frontend, ?redirected_to, "listening");
                    if self.pending.remove(&frontend).is_some() {
                        tracing::info!(%frontend, "listener bound after retrying");
                    }
                    self.listeners.insert(
                        frontend,
                        Listener {
                            shared,
                            task,
                            redirected_to,
                        },
                    );
                }
                Err(e) => {
                    let e = e.to_string();
                    if self.pending.get(&frontend) != Some(&e) {
                        self.metrics.bind_failed();
                        tracing::warn!(%frontend, error = %e, "cannot listen; retrying");
                    }
                    self.pending.insert(frontend, e);
                }
            }
        }
    }

    fn port_metrics(&self, frontend: &Frontend, backends: &Backends) -> PortMetrics {
        self.metrics
            .port(&backends.service, &backends.port_name, frontend.protocol)
    }

    /// Listen for `frontend`: on its own address, or, redirected, on the
    /// wildcard address and a port the kernel picks (returned).
    async fn bind(
        &self,
        frontend: Frontend,
        shared: Arc<Shared>,
    ) -> std::io::Result<(JoinHandle<()>, Option<u16>)> {
        let shutdown = self.shutdown.subscribe();
        let redirected = self.redirector.is_some() && frontend.addr.is_ipv4();
        let addr = if redirected {
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0))
        } else {
            frontend.addr
        };
        Ok(match frontend.protocol {
            Protocol::Tcp => {
                let listener = TcpListener::bind(addr).await?;
                let port = redirected.then(|| listener.local_addr().map(|a| a.port()));
                let port = port.transpose()?;
                (tokio::spawn(tcp::serve(listener, shared, shutdown)), port)
            }
            Protocol::Udp => {
                let socket = udp::Frontend::bind(addr, redirected)?;
                let port = redirected.then(|| socket.local_port()).transpose()?;
                let task =
                    tokio::spawn(udp::serve(socket, shared, self.udp_idle_timeout, shutdown));
                (task, port)
            }
        })
    }
}
