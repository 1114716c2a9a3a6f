//! kedge's service proxy (kube-proxy). Services and EndpointSlices watched
//! through the API are compiled into a table ([`table`]), ClusterIPs are put
//! on a holder interface ([`holder`]), and the table is served by one of two
//! data planes ([`ProxyMode`]):
//! - userspace: every ClusterIP, NodePort and load-balancer port gets a TCP
//!   or UDP listener that balances over the ready endpoints ([`proxier`]),
//!   reached through an nftables `redirect` so that no Service address is
//!   bound on the host;
//! - nftables: the kernel DNATs to the endpoints, programmed as one
//!   nftables table ([`nftables`]).
//!
//! Data flows one way: watch event → [`ServiceState`] → [`ProxyTable`] →
//! [`Proxier::sync`] or [`NftablesProxier::sync`]. Tests can start anywhere
//! along it.

#![deny(missing_docs)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub mod balancer;
pub mod command;
pub mod holder;
pub mod mesh;
pub mod metrics;
pub mod netpol;
pub mod nftables;
pub mod podnet;
pub mod proxier;
mod status;
pub mod table;
mod watch;

pub use holder::{Holder, HolderError};
pub use metrics::Metrics;
pub use nftables::{NftablesError, NftablesProxier};
pub use proxier::Proxier;
pub use table::{Backends, Frontend, NodeInfo, Protocol, ProxyTable, ServiceKey, ServiceState};
pub use watch::{run, run_with_drain};

/// The label by which a Service asks for a different proxy; Services that
/// carry it are left alone unless it names this proxy.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// The default holder interface.
pub const DEFAULT_HOLDER_INTERFACE: &str = "kedge0";

/// Which data plane serves the table.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ProxyMode {
    /// Listeners in this process ([`Proxier`]).
    #[default]
    Userspace,
    /// DNAT in the kernel, one nftables table ([`NftablesProxier`]); needs
    /// root (CAP_NET_ADMIN) and the `nft` tool.
    Nftables,
}

impl std::str::FromStr for ProxyMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "userspace" => Ok(Self::Userspace),
            "nftables" => Ok(Self::Nftables),
            _ => Err(format!("unknown proxy mode {s:?} (userspace or nftables)")),
        }
    }
}

impl std::fmt::Display for ProxyMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Userspace => "userspace",
            Self::Nftables => "nftables",
        })
    }
}

/// How the proxy runs on its node.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The data plane.
    pub mode: ProxyMode,
    /// The node's name, for `trafficPolicy: Local`.
    pub node_name: String,
    /// Where NodePorts and load-balancer ports are served, and what is added
    /// to LoadBalancer Services' `status.loadBalancer.ingress`. Empty: no
    /// NodePorts or load-balancer ports are served.
    pub node_addresses: Vec<IpAddr>,
    /// The bridge that carries the ClusterIPs; created if absent and removed
    /// when the proxy stops. `None`: ClusterIPs must already be local.
    pub holder_interface: Option<String>,
    /// `None`: serve Services without the
    /// [`SERVICE_PROXY_NAME_LABEL`] label (what kube-proxy does). `Some(name)`:
    /// serve only the Services labelled with that name.
    pub service_proxy_name: Option<String>,
    /// How long a UDP flow lives without datagrams either way.
    pub udp_idle_timeout: Duration,
    /// Whether to write node addresses into LoadBalancer Services' status.
    pub load_balancer_status: bool,
    /// Where the proxy counts; keep a clone to [`Metrics::encode`].
    pub metrics: Arc<Metrics>,
    /// The nftables table of [`ProxyMode::Nftables`], or of the userspace
    /// mode's redirects (family `ip`); created, replaced and deleted by the
    /// proxy, so it must be the proxy's alone.
    pub nftables_table: String,
    /// Userspace mode: listen on the wildcard address and redirect each
    /// frontend there with nftables (when `nft` runs) instead of binding the
    /// frontend's address, so that a host process (a hostNetwork pod) can
    /// bind any port on the wildcard address.
    pub userspace_redirect: bool,
    /// Frontends a process on this node serves itself (the in-process
    /// cluster DNS on its ClusterIP, a Service without endpoints): the
    /// kernel mode neither DNATs nor rejects them.
    pub locally_served: Vec<Frontend>,
    /// Locally served frontends whose process listens on another port of
    /// the same address (a port the kernel picked): traffic to the frontend
    /// is DNATed there, so the frontend's own port stays free for host
    /// processes binding the wildcard address.
    pub local_ports: std::collections::BTreeMap<Frontend, u16>,
    /// The NetworkPolicies as this node enforces them (the userspace
    /// proxy asks before connecting to an endpoint).
    pub network_policy: Arc<netpol::Policy>,
    /// Where each table the proxy syncs is published (the mesh balances
    /// ClusterIPs with it).
    pub table_updates: Option<Arc<tokio::sync::watch::Sender<Arc<ProxyTable>>>>,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            mode: ProxyMode::Userspace,
            node_name: String::new(),
            node_addresses: Vec::new(),
            holder_interface: Some(DEFAULT_HOLDER_INTERFACE.into()),
            service_proxy_name: None,
            // Long enough for a request/answer exchange, short enough that
            // clients on fresh ports (DNS) do not pile up sockets.
            udp_idle_timeout: Duration::from_secs(1),
            load_balancer_status: true,
            metrics: Arc::new(Metrics::new()),
            nftables_table: nftables::DEFAULT_TABLE.into(),
            userspace_redirect: true,
            locally_served: Vec::new(),
            local_ports: Default::default(),
            network_policy: Default::default(),
            table_updates: None,
        }
    }
}

/// Errors that stop the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The holder interface could not be set up.
    #[error("holder interface: {0}")]
    Holder(#[from] HolderError),
    /// The kernel mode could not start.
    #[error("nftables mode: {0}")]
    Nftables(#[from] NftablesError),
    /// A watch stream ended (the watcher retries errors itself, so this
    /// means the client is gone).
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}
