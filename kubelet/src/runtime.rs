//! The container runtime interface: what the kubelet asks of whatever runs
//! its containers, in the shape of the CRI (pod sandboxes that own the
//! network namespace, containers inside them, their status) plus a stream
//! of pod lifecycle events so pod workers wake up when a container starts
//! or dies instead of polling.
//!
//! The trait is object safe (`Arc<dyn Runtime>`): a node picks its runtime
//! at start (the fake one for hollow nodes, Docker later).

pub mod docker;
pub mod fake;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use k8s_openapi::api::core::v1::Probe;
use tokio::io::AsyncWrite;
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
    /// An image could not be pulled (ErrImagePull).
    #[error("{0}")]
    ImagePull(String),
    /// This runtime does not do that (the fake runtime has no logs).
    #[error("{0} is not supported by this container runtime")]
    Unsupported(&'static str),
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
    /// The hostname inside the pod (`spec.hostname` or the pod's name).
    pub hostname: String,
    /// The domain of a pod with a `spec.subdomain`:
    /// `<subdomain>.<namespace>.svc.<cluster domain>`.
    pub domainname: Option<String>,
    /// The pod's resolv.conf; `None` keeps the runtime's default (the
    /// node's resolver).
    pub dns: Option<DnsConfig>,
    /// Extra /etc/hosts entries (`spec.hostAliases`): IP and names.
    pub host_aliases: Vec<(String, Vec<String>)>,
}

/// The resolv.conf of a pod.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DnsConfig {
    /// `nameserver` lines.
    pub servers: Vec<String>,
    /// The `search` line.
    pub searches: Vec<String>,
    /// The `options` line (`ndots:5`).
    pub options: Vec<String>,
}

/// A bind mount of a node path into a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Mount {
    /// The path on the node (a volume's directory, or a file in it for a
    /// `subPath`).
    pub host_path: PathBuf,
    /// Where it appears in the container.
    pub container_path: String,
    /// Mounted read-only.
    pub read_only: bool,
}

/// What a container may use, already converted from the spec's quantities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContainerResources {
    /// CPU shares from the CPU request (1024 per core, at least 2).
    pub cpu_shares: Option<i64>,
    /// CPU limit in millicores (CFS quota over a 100 ms period).
    pub cpu_limit_millis: Option<i64>,
    /// Memory limit in bytes.
    pub memory_limit_bytes: Option<i64>,
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
    /// `workingDir`.
    pub working_dir: Option<String>,
    /// Volumes, already on the node.
    pub mounts: Vec<Mount>,
    /// Requests and limits.
    pub resources: ContainerResources,
    /// `securityContext.runAsUser`.
    pub run_as_user: Option<i64>,
    /// `securityContext.runAsGroup`.
    pub run_as_group: Option<i64>,
    /// `stdin`: keep stdin open.
    pub stdin: bool,
    /// `stdinOnce`.
    pub stdin_once: bool,
    /// `tty`.
    pub tty: bool,
}

/// What `kubectl logs` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LogOptions {
    /// Keep streaming while the container runs.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// Prefix each line with its RFC 3339 time.
    pub timestamps: bool,
    /// Only lines newer than this many seconds.
    pub since_seconds: Option<i64>,
    /// Stop after this many bytes.
    pub limit_bytes: Option<i64>,
}

/// What `kubectl exec` asks for.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExecRequest {
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Attach stdin.
    pub stdin: bool,
    /// Allocate a TTY (stdout and stderr then come as one stream).
    pub tty: bool,
}

/// One chunk of a running exec's output.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecOutput {
    /// Written to stdout (or the TTY).
    Stdout(Bytes),
    /// Written to stderr.
    Stderr(Bytes),
}

/// Resizes the TTY of a running exec: (width, height).
pub type ResizeFn = Box<dyn Fn(u16, u16) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// A running exec: its output, its stdin, and its exit code once the output
/// has ended.
pub struct ExecSession {
    /// stdout and stderr, until the process ends.
    pub output: BoxStream<'static, Result<ExecOutput>>,
    /// The process's stdin, when asked for; shutting it down closes it.
    pub stdin: Option<Pin<Box<dyn AsyncWrite + Send>>>,
    /// Resizes the TTY, when there is one.
    pub resize: Option<ResizeFn>,
    /// The exit code; ask once `output` has ended.
    pub exit_code: BoxFuture<'static, Result<i32>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession").finish_non_exhaustive()
    }
}

/// Which probe is run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// `startupProbe`.
    Startup,
    /// `livenessProbe`.
    Liveness,
    /// `readinessProbe`.
    Readiness,
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

/// What a running container has used, sampled at one instant (CRI's
/// `ContainerStats`).
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerStats {
    /// The container id.
    pub id: String,
    /// Its name in the pod spec.
    pub name: String,
    /// The pod's UID, name and namespace.
    pub pod_uid: String,
    /// The pod's name.
    pub pod_name: String,
    /// The pod's namespace.
    pub pod_namespace: String,
    /// When the container started.
    pub started_at: Option<jiff::Timestamp>,
    /// When the sample was taken.
    pub timestamp: jiff::Timestamp,
    /// CPU time used since it started, in core-seconds.
    pub cpu_seconds: f64,
    /// Memory in use, page cache included.
    pub memory_usage_bytes: u64,
    /// The working set, as the kubelet defines it: usage less the
    /// inactive file pages the kernel can reclaim at once.
    pub memory_working_set_bytes: u64,
    /// Anonymous memory and swap cache, when the runtime tells.
    pub memory_rss_bytes: Option<u64>,
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

    /// Every container of this node's sandboxes (a restarted kubelet
    /// adopts them).
    fn list_containers(&self) -> BoxFuture<'_, Result<Vec<ContainerStatus>>>;

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

    /// The address probes to `target` (a pod's address) are sent from, if
    /// the runtime gave the pod network one of its own.
    fn probe_source(&self, _target: std::net::IpAddr) -> Option<std::net::IpAddr> {
        None
    }

    /// Pod lifecycle events from now on.
    fn events(&self) -> broadcast::Receiver<PodLifecycleEvent>;

    /// Whether the runtime answers; the error makes the node NotReady.
    fn status(&self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Whether the image is on the node; returns its id (`imageID`).
    fn image_status<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<String>>>;

    /// Pull an image; returns its id. A failure is [`RuntimeError::ImagePull`].
    fn pull_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<String>>;

    /// Run one probe of a running container once: httpGet and tcpSocket to
    /// the pod's IP, exec inside the container. Success is `true`.
    fn run_probe<'a>(
        &'a self,
        id: &'a str,
        kind: ProbeKind,
        probe: &'a Probe,
        pod_ip: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<bool>>;

    /// What every running container of the node has used so far (CRI's
    /// `ListContainerStats`): the source of `/metrics/resource`.
    fn list_container_stats(&self) -> BoxFuture<'_, Result<Vec<ContainerStats>>> {
        Box::pin(async { Ok(Vec::new()) })
    }

    /// What the node as a whole uses (the root cgroup's view): the
    /// machine's `/proc`, unless the runtime stands in for a machine.
    fn node_stats(&self) -> Option<crate::stats::NodeStats> {
        crate::stats::NodeStats::read()
    }

    /// The container's output (`kubectl logs`).
    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<Bytes>>>> {
        let _ = (id, options);
        Box::pin(async { Err(RuntimeError::Unsupported("logs")) })
    }

    /// Run a command in a running container (`kubectl exec`, exec probes
    /// and hooks).
    fn exec<'a>(
        &'a self,
        id: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecSession>> {
        let _ = (id, request);
        Box::pin(async { Err(RuntimeError::Unsupported("exec")) })
    }
}
