//! kedge's node agent (kubelet): registers a Node, keeps its Lease and
//! status fresh, runs the pods bound to it through a container runtime, and
//! reports their status.
//!
//! - [`node`]: the Node object, its status heartbeat and its Lease.
//! - [`runtime`]: the [`runtime::Runtime`] trait containers run behind, and
//!   the fake runtime of hollow nodes.
//! - [`pod_workers`]: one worker per pod, syncing it into the runtime and
//!   its status into the API.
//! - [`source`]: the pod watch that feeds the workers of one or many nodes.
//! - [`status`]: pod phase and conditions from container states.
//! - [`env`], [`volumes`], [`resources`], [`dns`]: what a pod's spec asks
//!   of the runtime, resolved on the node: container environments, volumes
//!   and mounts, runtime resources, sandbox names and resolv.conf.
//! - [`downward`]: pod fields and container resources (the downward API).
//! - [`objects`]: where ConfigMaps, Secrets, Services and ServiceAccount
//!   tokens are read from.
//! - [`token_manager`]: ServiceAccount tokens of projected volumes, cached
//!   and refreshed before they expire.
//! - [`prober`]: one probe run against a container.
//! - [`metrics`]: the kubelet's Prometheus metrics.
//! - [`docker_node`]: a real node, pods in Docker.
//! - [`hollow`]: many hollow nodes in one process.
//! - [`server`]: the HTTPS endpoint the API server proxies logs and exec
//!   to.

pub mod dns;
pub mod docker_node;
pub mod downward;
pub mod env;
pub mod hollow;
mod kubelet;
pub mod metrics;
pub mod node;
pub mod objects;
pub mod pod_workers;
pub mod prober;
pub mod resources;
pub mod runtime;
pub mod server;
pub mod source;
pub mod stats;
pub mod status;
pub mod token_manager;
pub mod volumes;

pub use kubelet::Kubelet;

/// Errors of the kubelet.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A call to the API server failed.
    #[error("API: {0}")]
    Api(#[source] kube::Error),
    /// The container runtime failed.
    #[error(transparent)]
    Runtime(#[from] runtime::RuntimeError),
}

impl From<kube::Error> for Error {
    fn from(e: kube::Error) -> Self {
        Error::Api(e)
    }
}

/// Result of the kubelet's operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Whether an API error says the object does not exist.
pub(crate) fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}
