//! kedge's service proxy (kube-proxy), userspace mode: Services and
//! EndpointSlices watched through the API are compiled into a table
//! ([`table`]), ClusterIPs are put on a holder interface ([`holder`]), and
//! every ClusterIP, NodePort and load-balancer port gets a TCP or UDP
//! listener that balances over the ready endpoints ([`proxier`]).
//!
//! Data flows one way: watch event → [`ServiceState`] → [`ProxyTable`] →
//! [`Proxier::sync`]. Tests can start anywhere along it.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

pub mod balancer;
pub mod holder;
pub mod metrics;
pub mod proxier;
mod status;
pub mod table;
mod watch;

pub use holder::{Holder, HolderError};
pub use metrics::Metrics;
pub use proxier::Proxier;
pub use table::{Backends, Frontend, NodeInfo, Protocol, ProxyTable, ServiceKey, ServiceState};
pub use watch::run;

/// The label by which a Service asks for a different proxy; Services that
/// carry it are left alone unless it names this proxy.
pub const SERVICE_PROXY_NAME_LABEL: &str = "service.kubernetes.io/service-proxy-name";

/// The default holder interface.
pub const DEFAULT_HOLDER_INTERFACE: &str = "kedge0";

/// How the proxy runs on its node.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
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
}

impl Default for ProxyConfig {
    fn default() -> Self {
        Self {
            node_name: String::new(),
            node_addresses: Vec::new(),
            holder_interface: Some(DEFAULT_HOLDER_INTERFACE.into()),
            service_proxy_name: None,
            // Long enough for a request/answer exchange, short enough that
            // clients on fresh ports (DNS) do not pile up sockets.
            udp_idle_timeout: Duration::from_secs(1),
            load_balancer_status: true,
            metrics: Arc::new(Metrics::new()),
        }
    }
}

/// Errors that stop the proxy.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The holder interface could not be set up.
    #[error("holder interface: {0}")]
    Holder(#[from] HolderError),
    /// A watch stream ended (the watcher retries errors itself, so this
    /// means the client is gone).
    #[error("the {0} watch ended")]
    WatchEnded(&'static str),
}
