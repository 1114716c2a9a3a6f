//! The container runtime interface: what the kubelet asks of whatever runs
//! its containers, in the shape of the CRI (pod sandboxes that own the
//! network namespace, containers inside them, their status) plus a stream
//! of pod lifecycle events so pod workers wake up when a container starts
//! or dies instead of polling.
//!
//! The trait is object safe (`Arc<dyn Runtime>`): a node picks its runtime
//! at start (the fake one for hollow nodes, Docker later).

pub mod fake;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Probe;
use tokio::sync::broadcast;

/// Errors of a container runtime.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No sandbox or container has this id.
    #[error("{kind} {id:?} not found")]
    NotFound {
        /// "pod sandbox" or "container".
        kind: &'static str,
        /// The id asked for.
        id: String,
    },
    /// The runtime could not do what was asked.
    #[error("runtime: {0}")]
    Failed(String),
}

/// Result of a runtime call.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;

/// What a pod sandbox is made from: the pod's identity and the metadata a
/// runtime may act on.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodSandboxConfig {
    /// The pod's UID.
    pub pod_uid: String,
    /// The pod's name.
    pub name: String,
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's labels.
    pub labels: BTreeMap<String, String>,
    /// The pod's annotations.
    pub annotations: BTreeMap<String, String>,
    /// The pod uses the node's network namespace.
    pub host_network: bool,
}

/// Whether a sandbox still holds its network namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodSandboxState {
    /// Running, with its IP.
    Ready,
    /// Stopped.
    NotReady,
}

/// The status of one pod sandbox.
#[derive(Debug, Clone, PartialEq)]
pub struct PodSandboxStatus {
    /// The sandbox id.
    pub id: String,
    /// The UID of the pod it belongs to.
    pub pod_uid: String,
    /// Ready or not.
    pub state: PodSandboxState,
    /// The pod IP (none for host-network pods).
    pub ip: Option<IpAddr>,
}

/// What a container is made from.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerConfig {
    /// The container's name in the pod spec.
    pub name: String,
    /// The image reference from the spec.
    pub image: String,
    /// How many times this container was restarted before (CRI "attempt").
    pub attempt: u32,
    /// An init container: it runs to completion before the app containers.
    pub init: bool,
    /// Entrypoint override.
    pub command: Vec<String>,
    /// Arguments.
    pub args: Vec<String>,
    /// Environment, already resolved.
    pub env: Vec<(String, String)>,
}

/// The state of a container as the runtime sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum ContainerState {
    /// Created, not (yet) running.
    Created,
    /// Running since `started_at`.
    Running {
        /// When the process started.
        started_at: jiff::Timestamp,
    },
    /// The process ended.
    Exited {
        /// When the process started, if it ever did.
        started_at: Option<jiff::Timestamp>,
        /// When it ended.
        finished_at: jiff::Timestamp,
        /// Its exit code.
        exit_code: i32,
        /// Why, in Kubernetes' words: Completed, Error, OOMKilled.
        reason: String,
    },
}

/// The status of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStatus {
    /// The container id (without the `<runtime>://` prefix).
    pub id: String,
    /// The sandbox it runs in.
    pub sandbox_id: String,
    /// Its name in the pod spec.
    pub name: String,
    /// The image reference from the spec.
    pub image: String,
    /// The resolved image (digest), reported as `imageID`.
    pub image_ref: String,
    /// The CRI attempt it was created with.
    pub attempt: u32,
    /// Created, running or exited.
    pub state: ContainerState,
}

/// What happened to a container, so its pod worker can sync at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PodLifecycleEventType {
    /// A container began running.
    ContainerStarted,
    /// A container exited.
    ContainerDied,
}

/// A pod lifecycle event (the kubelet's PLEG event).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodLifecycleEvent {
    /// The pod the container belongs to.
    pub pod_uid: String,
    /// The container.
    pub container_id: String,
    /// What happened.
    pub kind: PodLifecycleEventType,
}

/// A container runtime: pod sandboxes and containers.
///
/// Calls are idempotent where the CRI's are: stopping a stopped container
/// or removing a removed one is not an error.
pub trait Runtime: Send + Sync + 'static {
    /// The scheme of container ids in pod status (`docker`, `fake`).
    fn type_name(&self) -> &'static str;

    /// The version reported in the Node's `containerRuntimeVersion`.
    fn version(&self) -> String;

    /// Create and start a pod sandbox; returns its id.
    fn run_pod_sandbox<'a>(&'a self, config: &'a PodSandboxConfig)
        -> BoxFuture<'a, Result<String>>;

    /// The pod's metadata changed (labels, annotations); a runtime may act
    /// on it or ignore it.
    fn update_pod_sandbox<'a>(
        &'a self,
        id: &'a str,
        config: &'a PodSandboxConfig,
    ) -> BoxFuture<'a, Result<()>>;

    /// Stop a sandbox and every container in it.
    fn stop_pod_sandbox<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Remove a sandbox and its containers.
    fn remove_pod_sandbox<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// The status of a sandbox.
    fn pod_sandbox_status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<PodSandboxStatus>>;

    /// Every sandbox this runtime holds (to find the ones no pod wants).
    fn list_pod_sandboxes(&self) -> BoxFuture<'_, Result<Vec<PodSandboxStatus>>>;

    /// Create a container in a sandbox; returns its id.
    fn create_container<'a>(
        &'a self,
        sandbox_id: &'a str,
        config: &'a ContainerConfig,
    ) -> BoxFuture<'a, Result<String>>;

    /// Start a created container.
    fn start_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// Stop a container, killing it after `grace`.
    fn stop_container<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>>;

    /// Remove a container.
    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>>;

    /// The status of a container.
    fn container_status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerStatus>>;

    /// Run a running container's readiness probe; a container without one
    /// is ready while it runs.
    fn probe_readiness<'a>(
        &'a self,
        id: &'a str,
        probe: Option<&'a Probe>,
    ) -> BoxFuture<'a, Result<bool>>;

    /// Pod lifecycle events from now on.
    fn events(&self) -> broadcast::Receiver<PodLifecycleEvent>;
}
