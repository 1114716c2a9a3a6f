//! Pod workers: one task per pod bound to the node, keyed by UID. A worker
//! owns its pod's sandbox and containers in the runtime; it syncs whenever
//! the pod changes in the API, a container starts or dies, a restart
//! back-off ends, or the resync period passes. Each sync is idempotent:
//! it starts what is missing, restarts what the restart policy says,
//! and posts the pod's status through the `status` subresource when it
//! differs from what the API holds.
//!
//! Pod updates reach a worker through a `watch` channel, so a burst of
//! updates costs one sync with the newest pod, never a queue of stale ones.
//!
//! A worker that starts while its pod's sandbox is still in the runtime
//! (the kubelet restarted) adopts the sandbox and its containers instead
//! of starting new ones.
//!
//! A sync observes the runtime, lets [`actions::compute`] decide what to
//! do (as Kubernetes' `computePodActions`), and executes that: the
//! methods of `PodWorker` here are the executors, for the sandbox,
//! volumes, images and containers.

pub mod actions;
mod error;
mod hooks;
mod probes;

pub use error::{ConfigError, Error, HookError, ImageError, Result, StartError};

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStatus, HostIP, Pod, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, DeleteParams, Patch, PatchParams, Preconditions};
use kube::Client;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::watch;

use kedge_config::events::{self, EventType, Recorder};

use self::actions::{
    ContainerToKill, ContainerToStart, Init, KillReason, Lifecycle, Observed, ObservedContainer,
    ObservedSandbox, PodActions, SandboxAction,
};
use crate::dns::{self, ClusterDns, HostResolvConf};
use crate::downward::{DownwardInputs, NodeAllocatable};
use crate::is_not_found;
use crate::metrics::KubeletMetrics;
use crate::objects::ObjectSource;
use crate::runtime::{
    self, ContainerConfig, PodSandboxConfig, PodSandboxState, Runtime, RuntimeError,
};
use crate::status::{self, api_time, phase, Conditions};
use crate::volumes::VolumeError;
use crate::{env, resources, volumes};

/// How pod workers pace themselves.
#[derive(Debug, Clone)]
pub struct PodSyncSettings {
    /// A pod is synced at least this often, even with nothing new.
    pub resync_interval: Duration,
    /// The first restart of a container is immediate; later ones wait this
    /// long, doubled per restart (CrashLoopBackOff).
    pub restart_backoff: Duration,
    /// The longest back-off.
    pub max_restart_backoff: Duration,
    /// How long to wait before retrying a failed sync.
    pub retry_interval: Duration,
}

impl Default for PodSyncSettings {
    fn default() -> Self {
        Self {
            resync_interval: Duration::from_secs(30),
            restart_backoff: Duration::from_secs(10),
            max_restart_backoff: Duration::from_secs(300),
            retry_interval: Duration::from_secs(1),
        }
    }
}

impl PodSyncSettings {
    /// How restarts and image pulls back off.
    pub fn backoff_policy(&self) -> actions::Backoff {
        actions::Backoff {
            initial: self.restart_backoff,
            max: self.max_restart_backoff,
        }
    }
}

type PodSender = watch::Sender<Option<Arc<Pod>>>;

/// The pod workers of one node.
pub struct PodWorkers {
    node_name: String,
    host_ip: IpAddr,
    client: Client,
    runtime: Arc<dyn Runtime>,
    settings: PodSyncSettings,
    /// UID -> (generation, channel to the worker). The generation lets an
    /// ending worker remove its own entry and not a successor's.
    workers: Mutex<HashMap<String, (u64, PodSender)>>,
    next_generation: AtomicU64,
    /// UID -> the pod's containers, for logs and exec.
    index: Mutex<HashMap<String, PodContainers>>,
    /// A real node's volumes, environment and DNS; none on hollow nodes.
    host: Option<PodHost>,
    /// The kubelet's events (Pulled, Created, Started, Killing, …).
    recorder: Recorder,
    metrics: KubeletMetrics,
}

/// What a real node resolves for its pods on the node itself.
pub struct PodHost {
    /// Pod volumes live under `<root>/pods/<uid>`.
    pub root_dir: PathBuf,
    /// Where ConfigMaps and Secrets are read.
    pub objects: Arc<dyn ObjectSource>,
    /// The cluster DNS of `ClusterFirst` pods.
    pub cluster_dns: ClusterDns,
    /// The node's resolv.conf (`dnsPolicy: Default`).
    pub host_resolv: Option<HostResolvConf>,
    /// Limits a container leaves unset default to these.
    pub allocatable: NodeAllocatable,
}

/// Where a pod's containers are, as its worker last saw them.
#[derive(Debug, Clone, Default, PartialEq)]
struct PodContainers {
    namespace: String,
    name: String,
    /// The first container of the spec (the one `kubectl logs` means when
    /// a pod has one).
    default_container: Option<String>,
    /// Container name -> (current id, previous id).
    ids: HashMap<String, (Option<String>, Option<String>)>,
    /// The pod's address, once its sandbox runs.
    pod_ip: Option<IpAddr>,
    /// Whether the pod is being deleted: a new pod of the same name (a
    /// StatefulSet member) is the one streams mean.
    terminating: bool,
}

// === impl PodWorkers ===

impl PodWorkers {
    /// The pod workers of node `node_name`, whose pods get `host_ip`.
    pub fn new(
        client: Client,
        node_name: impl Into<String>,
        host_ip: IpAddr,
        runtime: Arc<dyn Runtime>,
        settings: PodSyncSettings,
    ) -> Arc<Self> {
        Self::with_host(client, node_name, host_ip, runtime, settings, None)
    }

    /// The pod workers of a node that resolves volumes, environment and
    /// DNS for its pods (`host`), or not (`None`: hollow nodes).
    pub fn with_host(
        client: Client,
        node_name: impl Into<String>,
        host_ip: IpAddr,
        runtime: Arc<dyn Runtime>,
        settings: PodSyncSettings,
        host: Option<PodHost>,
    ) -> Arc<Self> {
        let node_name: String = node_name.into();
        let recorder = Recorder::new(client.clone(), "kubelet", Some(&node_name));
        Arc::new(Self {
            node_name: node_name.clone(),
            host_ip,
            client,
            runtime,
            settings,
            workers: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(0),
            index: Mutex::new(HashMap::new()),
            host,
            recorder,
            metrics: KubeletMetrics::new(),
        })
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
    }

    /// The node's metrics in Prometheus' text format.
    pub fn encode_metrics(&self) -> String {
        self.metrics.set_pods(self.workers.lock().len());
        self.metrics.encode()
    }

    /// The runtime the pods run in.
    pub fn runtime(&self) -> &Arc<dyn Runtime> {
        &self.runtime
    }

    /// The pod changed in the API (or was listed): hand it to its worker,
    /// starting one if needed.
    pub fn update(self: &Arc<Self>, pod: Arc<Pod>) {
        let Some(uid) = pod.metadata.uid.clone() else {
            return;
        };
        let mut workers = self.workers.lock();
        if let Some((_, tx)) = workers.get(&uid) {
            // A closed channel means the worker ended; a new one takes over.
            if tx.send(Some(pod.clone())).is_ok() {
                return;
            }
        }
        let generation = self.next_generation.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = watch::channel(Some(pod));
        workers.insert(uid.clone(), (generation, tx));
        let this = self.clone();
        tokio::spawn(async move { this.run_worker(uid, generation, rx).await });
    }

    /// The pod is gone from the API: its worker removes it from the
    /// runtime and ends.
    pub fn forget(&self, uid: &str) {
        if let Some((_, tx)) = self.workers.lock().remove(uid) {
            let _ = tx.send(None);
        }
    }

    /// Sync a pod now (a container changed).
    pub fn wake(&self, uid: &str) {
        if let Some((_, tx)) = self.workers.lock().get(uid) {
            tx.send_modify(|_| {});
        }
    }

    /// Sync every pod now (runtime events were lost).
    pub fn wake_all(&self) {
        for (_, tx) in self.workers.lock().values() {
            tx.send_modify(|_| {});
        }
    }

    /// The runtime id of a container of a pod on this node, for logs and
    /// exec: the current one, or with `previous` the one that ended before
    /// it. `container` may be `None` when the pod has one container.
    pub fn find_container(
        &self,
        namespace: &str,
        pod: &str,
        container: Option<&str>,
        previous: bool,
    ) -> Option<String> {
        let index = self.index.lock();
        let pc = index
            .values()
            .filter(|p| p.namespace == namespace && p.name == pod)
            .min_by_key(|p| p.terminating)?;
        let name = container.or(pc.default_container.as_deref())?;
        let (current, prev) = pc.ids.get(name)?;
        if previous {
            prev.clone()
        } else {
            current.clone()
        }
    }

    /// Remove the directory of a deleted local-path volume, `name` being
    /// the volume's directory under the node's storage directory
    /// (`pvc-<uid>_<namespace>_<claim>`). Absent is fine.
    pub async fn remove_local_path(&self, name: &str) -> Result<(), String> {
        let Some(host) = &self.host else {
            return Err("this node keeps no volumes".into());
        };
        if !name.starts_with("pvc-") || name.contains('/') || name.contains("..") {
            return Err(format!("{name:?} is not a local-path volume directory"));
        }
        let dir = host.root_dir.join("storage").join(name);
        tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
            Ok(()) => {
                tracing::info!(dir = %dir.display(), "removed a deleted volume's directory");
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(format!("removing {}: {e}", dir.display())),
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// The address of a pod of this node, for port forwarding.
    pub fn pod_ip(&self, namespace: &str, pod: &str) -> Option<IpAddr> {
        let index = self.index.lock();
        index
            .values()
            .filter(|p| p.namespace == namespace && p.name == pod)
            .min_by_key(|p| p.terminating)?
            .pod_ip
    }

    /// UIDs of the pods that have workers.
    pub fn pod_uids(&self) -> Vec<String> {
        self.workers.lock().keys().cloned().collect()
    }

    /// Forget pods not in `wanted` (after a relist) and remove sandboxes
    /// that belong to no pod (left by an earlier run).
    pub async fn remove_orphans(&self, wanted: &HashSet<String>) {
        for uid in self.pod_uids() {
            if !wanted.contains(&uid) {
                self.forget(&uid);
            }
        }
        let sandboxes = match self.runtime.list_pod_sandboxes().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(node = %self.node_name, error = %e, "listing pod sandboxes");
                return;
            }
        };
        let known: HashSet<String> = self.pod_uids().into_iter().collect();
        if let Some(host) = &self.host {
            let keep: HashSet<String> = wanted.union(&known).cloned().collect();
            if let Err(e) = volumes::remove_orphaned_pod_dirs(&host.root_dir, &keep).await {
                tracing::warn!(node = %self.node_name, error = %e, "removing orphaned pod volumes");
            }
        }
        for sb in sandboxes {
            if !wanted.contains(&sb.pod_uid) && !known.contains(&sb.pod_uid) {
                tracing::info!(node = %self.node_name, pod_uid = %sb.pod_uid, "removing orphaned pod sandbox");
                let _ = self.runtime.stop_pod_sandbox(&sb.id).await;
                let _ = self.runtime.remove_pod_sandbox(&sb.id).await;
            }
        }
    }

    async fn run_worker(
        self: Arc<Self>,
        uid: String,
        generation: u64,
        mut rx: watch::Receiver<Option<Arc<Pod>>>,
    ) {
        let mut worker = PodWorker::new(self.clone(), uid.clone());
        loop {
            let pod = rx.borrow_and_update().clone();
            let started = std::time::Instant::now();
            let result = worker.sync(pod.as_ref()).await;
            self.metrics.observe_sync(started.elapsed());
            let wait = match result {
                Ok(Next::Done) => break,
                Ok(Next::After(d)) => Some(d),
                Ok(Next::Idle) => None,
                Err(e) => {
                    let name = pod.as_ref().and_then(|p| p.metadata.name.as_deref());
                    tracing::warn!(node = %self.node_name, pod = ?name, error = %e, "pod sync failed");
                    Some(self.settings.retry_interval)
                }
            };
            let changed = match wait {
                Some(d) => tokio::select! {
                    r = rx.changed() => r,
                    _ = tokio::time::sleep(d) => Ok(()),
                },
                None => rx.changed().await,
            };
            if changed.is_err() {
                // Nobody will tell this worker about its pod any more.
                let _ = worker.sync(None).await;
                break;
            }
        }
        let mut workers = self.workers.lock();
        if workers.get(&uid).is_some_and(|(g, _)| *g == generation) {
            workers.remove(&uid);
            self.index.lock().remove(&uid);
        }
    }
}

/// The pod conditions the kubelet owns.
const KUBELET_CONDITIONS: [&str; 4] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
];

/// What a worker does after a sync.
enum Next {
    /// The pod is finished with; the worker ends.
    Done,
    /// Sync again after this long at the latest.
    After(Duration),
    /// Sync again only when something changes.
    Idle,
}

/// One container of the pod as the worker tracks it across restarts.
#[derive(Debug, Default)]
struct Record {
    /// The current container in the runtime.
    id: Option<String>,
    /// The container before it, kept for `kubectl logs --previous`.
    previous: Option<String>,
    /// Why no container could be made (ErrImagePull,
    /// CreateContainerConfigError, …) and the message.
    waiting: Option<(String, String)>,
    /// Making the container is not tried again before then.
    retry_at: Option<Timestamp>,
    /// Failed attempts in a row to make or start the container (image
    /// pulls back off on these).
    failures: u32,
    /// The ended container already counted in `restart_count`.
    counted: Option<String>,
    /// `restart_count` when the back-off last started afresh.
    backoff_base: i32,
    /// The image it was created from.
    image: String,
    restart_count: i32,
    /// The previous container's end (`lastState`).
    last_termination: Option<ContainerState>,
    /// The exited container waits for a restart until then.
    backoff_until: Option<Timestamp>,
}

struct PodWorker {
    workers: Arc<PodWorkers>,
    uid: String,
    sandbox: Option<String>,
    sandbox_config: Option<PodSandboxConfig>,
    pod_ip: Option<IpAddr>,
    start_time: Option<Time>,
    containers: HashMap<String, Record>,
    /// The pod reached Succeeded or Failed here: nothing restarts.
    terminal: bool,
    /// The last status posted and the resourceVersion it made, so a watch
    /// that lags does not cause the same patch twice.
    last_sent: Option<(Value, u64)>,
    /// The conditions last posted: their transition times count, not those
    /// of a pod from a watch that has not caught up yet.
    last_conditions: Vec<PodCondition>,
    probes: probes::ContainerProbes,
    /// The runtime was searched for this pod's sandbox from an earlier run.
    adoption_checked: bool,
    /// The pod's volumes on the node.
    volumes: volumes::PodVolumes,
    /// Its start (every container running) was measured.
    start_observed: bool,
}

// === impl PodWorker ===

impl PodWorker {
    fn new(workers: Arc<PodWorkers>, uid: String) -> Self {
        Self {
            workers,
            uid,
            sandbox: None,
            sandbox_config: None,
            pod_ip: None,
            start_time: None,
            containers: HashMap::new(),
            terminal: false,
            last_sent: None,
            last_conditions: Vec::new(),
            probes: probes::ContainerProbes::default(),
            adoption_checked: false,
            volumes: volumes::PodVolumes::new(),
            start_observed: false,
        }
    }

    fn runtime(&self) -> &dyn Runtime {
        &*self.workers.runtime
    }

    /// Record an event about the pod, or one of its containers; in the
    /// background, so a slow API never holds up the pod.
    fn event(
        &self,
        pod: &Pod,
        c: Option<&Container>,
        kind: EventType,
        reason: &str,
        message: String,
    ) {
        let mut reference = events::reference("v1", "Pod", &pod.metadata);
        if let Some(c) = c {
            let init = pod
                .spec
                .as_ref()
                .and_then(|s| s.init_containers.as_ref())
                .is_some_and(|i| i.iter().any(|i| i.name == c.name));
            let list = if init { "initContainers" } else { "containers" };
            reference.field_path = Some(format!("spec.{list}{{{}}}", c.name));
        }
        let recorder = self.workers.recorder.clone();
        let reason = reason.to_string();
        tokio::spawn(async move { recorder.record(&reference, kind, &reason, &message).await });
    }

    async fn sync(&mut self, pod: Option<&Arc<Pod>>) -> Result<Next> {
        let Some(pod) = pod else {
            self.kill(None, Duration::ZERO).await?;
            self.remove().await?;
            return Ok(Next::Done);
        };
        // Before anything else: a pod being deleted must stop what an
        // earlier kubelet started for it too.
        if !self.adoption_checked {
            self.adopt(pod).await?;
            self.adoption_checked = true;
        }
        let lifecycle = actions::lifecycle(pod, self.terminal);
        match lifecycle {
            Lifecycle::Terminate { grace } => {
                // Streams to a pod of this name now mean its successor.
                self.publish(pod);
                return self.terminate(pod, grace).await;
            }
            Lifecycle::EnsureStopped => {
                self.kill(None, Duration::ZERO).await?;
                return Ok(Next::Idle);
            }
            Lifecycle::Finished | Lifecycle::Run => {}
        }
        let mut wake: Option<Timestamp> = None;
        let mut initialized = true;
        let mut finished = false;
        if lifecycle == Lifecycle::Run {
            let config = self.desired_sandbox_config(pod)?;
            let observed = self.observe(pod, &config).await?;
            let backoff = self.workers.settings.backoff_policy();
            let actions = actions::compute(pod, &observed, &backoff, Timestamp::now());
            tracing::trace!(node = %self.workers.node_name, pod = ?pod.metadata.name, ?actions, "pod actions");
            self.apply_sandbox(pod, &actions.sandbox, config).await?;
            initialized = match self.mount_volumes(pod).await {
                Ok(()) => {
                    self.apply_containers(pod, &actions, &mut wake).await?;
                    actions.init == Init::Done
                }
                Err(e) => {
                    // Containers wait (ContainerCreating) until it works.
                    tracing::warn!(node = %self.workers.node_name, pod = ?pod.metadata.name, "FailedMount: {e}");
                    let at = Timestamp::now() + SignedDuration::from_secs(2);
                    wake = Some(wake.map_or(at, |w| w.min(at)));
                    false
                }
            };
            finished = actions.finished.is_some();
        }
        self.publish(pod);
        for at in self
            .containers
            .values()
            .filter_map(|r| r.retry_at)
            .chain(self.probes.next_due())
        {
            wake = Some(wake.map_or(at, |w| w.min(at)));
        }
        let st = self.build_status(pod, initialized, false).await?;
        if !self.start_observed && all_running(&st) {
            self.start_observed = true;
            if let Some(created) = &pod.metadata.creation_timestamp {
                let d = Timestamp::now().duration_since(created.0);
                self.workers
                    .metrics
                    .observe_pod_start(Duration::try_from(d).unwrap_or_default());
            }
        }
        // The actions say nothing runs or will run again; the phase can
        // also end between observing and reporting (a container exited
        // meanwhile), as Kubernetes' pod worker goes by the phase. Either
        // way the pod is finished here: nothing restarts, and a finished
        // pod keeps no sandbox (its status keeps the podIP).
        let ended = phase::is_terminal(st.phase.as_deref().unwrap_or_default());
        if (finished || ended) && !self.terminal {
            self.terminal = true;
            if let Some(id) = &self.sandbox {
                self.workers.runtime.stop_pod_sandbox(id).await?;
            }
        }
        self.post_status(pod, st).await?;
        if self.terminal {
            return Ok(Next::Idle);
        }
        let resync = self.workers.settings.resync_interval;
        let next = wake
            .map(|at| {
                let d = Timestamp::now().duration_until(at) + SignedDuration::from_millis(1);
                Duration::try_from(d).unwrap_or_default().min(resync)
            })
            .unwrap_or(resync);
        Ok(Next::After(next))
    }

    /// Take over the sandbox and containers an earlier kubelet left for
    /// this pod; remove sandboxes of it that no longer run.
    async fn adopt(&mut self, pod: &Pod) -> Result<()> {
        let sandboxes: Vec<_> = self
            .runtime()
            .list_pod_sandboxes()
            .await?
            .into_iter()
            .filter(|s| s.pod_uid == self.uid)
            .collect();
        for sb in &sandboxes {
            if sb.state == PodSandboxState::Ready && self.sandbox.is_none() {
                self.sandbox = Some(sb.id.clone());
                self.pod_ip = if sandbox_config(pod, &self.uid).host_network {
                    Some(self.workers.host_ip)
                } else {
                    sb.ip
                };
                self.start_time = pod.status.as_ref().and_then(|s| s.start_time.clone());
            } else {
                self.runtime().stop_pod_sandbox(&sb.id).await?;
                self.runtime().remove_pod_sandbox(&sb.id).await?;
            }
        }
        let Some(sandbox) = self.sandbox.clone() else {
            return Ok(());
        };
        let mut containers: Vec<_> = self
            .runtime()
            .list_containers()
            .await?
            .into_iter()
            .filter(|c| c.sandbox_id == sandbox)
            .collect();
        // Newest attempt first: it is the current container, the one before
        // it the previous; older ones are not kept.
        containers.sort_by_key(|c| std::cmp::Reverse(c.attempt));
        for c in containers {
            let record = self.containers.entry(c.name.clone()).or_default();
            if record.id.is_none() {
                record.id = Some(c.id);
                record.image = c.image;
                record.restart_count = i32::try_from(c.attempt).unwrap_or(i32::MAX);
            } else if record.previous.is_none() {
                record.last_termination = Some(status::api_state(&c.state));
                record.previous = Some(c.id);
            } else {
                self.workers.runtime.remove_container(&c.id).await?;
            }
        }
        tracing::info!(node = %self.workers.node_name, pod = ?pod.metadata.name, containers = self.containers.len(), "adopted running pod sandbox");
        Ok(())
    }

    /// Set up (or refresh) the pod's volumes on a real node.
    async fn mount_volumes(&mut self, pod: &Pod) -> Result<(), VolumeError> {
        let Some(host) = &self.workers.host else {
            return Ok(());
        };
        let inputs = self.downward_inputs(host);
        self.volumes =
            volumes::setup_pod_volumes(&host.root_dir, pod, &inputs, &*host.objects).await?;
        Ok(())
    }

    /// Tell `find_container` where this pod's containers are.
    fn publish(&self, pod: &Pod) {
        let entry = PodContainers {
            namespace: pod.metadata.namespace.clone().unwrap_or_default(),
            name: pod.metadata.name.clone().unwrap_or_default(),
            default_container: pod
                .spec
                .as_ref()
                .and_then(|s| s.containers.first())
                .map(|c| c.name.clone()),
            ids: self
                .containers
                .iter()
                .map(|(n, r)| (n.clone(), (r.id.clone(), r.previous.clone())))
                .collect(),
            pod_ip: self.pod_ip,
            terminating: pod.metadata.deletion_timestamp.is_some(),
        };
        let mut index = self.workers.index.lock();
        if index.get(&self.uid) != Some(&entry) {
            index.insert(self.uid.clone(), entry);
        }
    }

    /// The sandbox the pod asks for, with its names and resolv.conf on a
    /// real node.
    fn desired_sandbox_config(&self, pod: &Pod) -> Result<PodSandboxConfig> {
        let mut config = sandbox_config(pod, &self.uid);
        if let Some(host) = &self.workers.host {
            let names = dns::sandbox_dns(pod, &host.cluster_dns, host.host_resolv.as_ref())?;
            config.hostname = names.hostname;
            config.domainname = names.domainname;
            config.dns = names.dns;
            config.host_aliases = names.host_aliases;
        }
        Ok(config)
    }

    /// What the runtime holds of the pod: its sandbox, and each container
    /// of the spec with what this worker remembers of its restarts.
    async fn observe(&self, pod: &Pod, config: &PodSandboxConfig) -> Result<Observed> {
        let sandbox = match &self.sandbox {
            None => ObservedSandbox::None,
            Some(id) => match self.runtime().pod_sandbox_status(id).await {
                Ok(st) if st.state == PodSandboxState::Ready => {
                    ObservedSandbox::Ready { id: id.clone() }
                }
                Ok(_) | Err(RuntimeError::NotFound { .. }) => {
                    ObservedSandbox::Lost { id: id.clone() }
                }
                Err(e) => return Err(e.into()),
            },
        };
        let mut names: Vec<&str> = Vec::new();
        if let Some(spec) = &pod.spec {
            for c in spec
                .init_containers
                .iter()
                .flatten()
                .chain(&spec.containers)
            {
                names.push(&c.name);
            }
        }
        let mut containers = HashMap::new();
        for name in names {
            let Some(r) = self.containers.get(name) else {
                continue;
            };
            let state = match r.id.as_deref() {
                Some(id) => match self.runtime().container_status(id).await {
                    Ok(s) => Some(s.state),
                    Err(RuntimeError::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                },
                None => None,
            };
            let observed = ObservedContainer {
                id: r.id.clone(),
                state,
                image: r.image.clone(),
                restart_count: r.restart_count,
                backoff_base: r.backoff_base,
                retry_at: r.retry_at,
            };
            containers.insert(name.to_string(), observed);
        }
        Ok(Observed {
            sandbox,
            sandbox_outdated: self.sandbox_config.as_ref() != Some(config),
            containers,
        })
    }

    async fn apply_sandbox(
        &mut self,
        pod: &Pod,
        action: &SandboxAction,
        config: PodSandboxConfig,
    ) -> Result<()> {
        match action {
            SandboxAction::Keep => {}
            SandboxAction::Update => {
                if let Some(id) = &self.sandbox {
                    self.workers.runtime.update_pod_sandbox(id, &config).await?;
                }
            }
            SandboxAction::Create => self.create_sandbox(pod, &config).await?,
            SandboxAction::Recreate { old } => {
                self.replace_sandbox(pod, old).await?;
                self.create_sandbox(pod, &config).await?;
            }
        }
        self.sandbox_config = Some(config);
        Ok(())
    }

    async fn create_sandbox(&mut self, pod: &Pod, config: &PodSandboxConfig) -> Result<()> {
        let id = self.workers.runtime.run_pod_sandbox(config).await?;
        let st = self.workers.runtime.pod_sandbox_status(&id).await?;
        self.pod_ip = if config.host_network {
            Some(self.workers.host_ip)
        } else {
            st.ip
        };
        self.sandbox = Some(id);
        self.start_time = pod
            .status
            .as_ref()
            .and_then(|s| s.start_time.clone())
            .or_else(|| Some(api_time(Timestamp::now())));
        tracing::debug!(node = %self.workers.node_name, pod = ?pod.metadata.name, ip = ?self.pod_ip, "pod sandbox running");
        Ok(())
    }

    /// The sandbox died under the pod (its infra container was killed):
    /// every container goes with it, and all are made again in a new one,
    /// each counting a restart, as Kubernetes does.
    async fn replace_sandbox(&mut self, pod: &Pod, id: &str) -> Result<()> {
        tracing::info!(node = %self.workers.node_name, pod = ?pod.metadata.name, "pod sandbox changed, it will be killed and re-created");
        self.event(
            pod,
            None,
            EventType::Normal,
            "SandboxChanged",
            "Pod sandbox changed, it will be killed and re-created.".into(),
        );
        for record in self.containers.values_mut() {
            let Some(cid) = record.id.take() else {
                continue;
            };
            self.workers
                .runtime
                .stop_container(&cid, Duration::ZERO)
                .await?;
            if let Ok(st) = self.workers.runtime.container_status(&cid).await {
                record.last_termination = Some(status::api_state(&st.state));
            }
            record.restart_count += 1;
            record.previous = None;
            record.counted = None;
        }
        self.workers.runtime.remove_pod_sandbox(id).await?;
        self.sandbox = None;
        self.sandbox_config = None;
        Ok(())
    }

    /// Execute the container actions: back-offs that start afresh, probes
    /// of the running containers, kills, starts, then the back-offs that
    /// wait (the worker wakes when they end).
    async fn apply_containers(
        &mut self,
        pod: &Pod,
        actions: &PodActions,
        wake: &mut Option<Timestamp>,
    ) -> Result<()> {
        for name in &actions.backoff_resets {
            if let Some(r) = self.containers.get_mut(name) {
                r.backoff_base = r.restart_count;
            }
        }
        let mut kill = actions.kill.clone();
        for running in &actions.probe {
            let Some(c) = spec_container(pod, &running.name) else {
                continue;
            };
            let failed = self
                .probes
                .run_due(
                    &*self.workers.runtime,
                    &self.workers.metrics,
                    c,
                    &running.id,
                    running.started_at,
                    self.pod_ip,
                )
                .await?;
            if let Some(failed) = failed {
                // Its death wakes the worker, which restarts it.
                kill.push(actions::probe_kill(
                    pod,
                    &c.name,
                    &running.id,
                    failed.kind,
                    failed.message,
                ));
            }
        }
        for k in &kill {
            self.kill_container(Some(pod), k).await?;
        }
        for s in &actions.start {
            if let Some(c) = spec_container(pod, &s.name) {
                self.start(pod, c, s).await?;
            }
        }
        for b in &actions.backing_off {
            if let Some(c) = spec_container(pod, &b.name) {
                self.back_off(pod, c, b.until);
            }
            *wake = Some(wake.map_or(b.until, |w| w.min(b.until)));
        }
        Ok(())
    }

    /// Stop one container as `k` says; a graceful stop runs its preStop
    /// hook first and only logs what fails.
    async fn kill_container(&self, pod: Option<&Pod>, k: &ContainerToKill) -> Result<()> {
        let spec = pod.and_then(|p| spec_container(p, &k.name));
        if let (KillReason::Probe { kind, message }, Some(pod)) = (&k.reason, pod) {
            tracing::info!(node = %self.workers.node_name, pod = ?pod.metadata.name, container = %k.name, probe = ?kind, "{message}");
            self.event(pod, spec, EventType::Normal, "Killing", message.clone());
        }
        match (pod, spec) {
            (Some(pod), Some(c)) if k.graceful => {
                self.stop_one(pod, c, &k.id, k.grace).await;
                Ok(())
            }
            _ => Ok(self.runtime().stop_container(&k.id, k.grace).await?),
        }
    }

    /// Make and start a container as `s` says: count the restart of the
    /// one it follows, then make it, unless an earlier failure still backs
    /// off.
    async fn start(&mut self, pod: &Pod, c: &Container, s: &ContainerToStart) -> Result<()> {
        if let Some(old) = &s.replaces {
            self.count_restart(c, old).await;
        }
        if self.sandbox.is_none() {
            return Ok(());
        }
        if s.retry_at.is_some() {
            self.wait_for_retry(pod, c);
            return Ok(());
        }
        self.make(pod, c, s.init).await
    }

    /// The ended container `old` counts a restart, once: a restart that
    /// could not make its container is tried again. The ended container
    /// stays (as `previous`, for logs) until its successor exists; `make`
    /// swaps them.
    async fn count_restart(&mut self, c: &Container, old: &str) {
        let counted = self
            .containers
            .get(&c.name)
            .is_some_and(|r| r.counted.as_deref() == Some(old));
        if counted {
            return;
        }
        let status = self.runtime().container_status(old).await.ok();
        if let Some(r) = self.containers.get_mut(&c.name) {
            r.last_termination = status.map(|s| status::api_state(&s.state));
            r.restart_count += 1;
            r.counted = Some(old.to_string());
        }
    }

    /// The container waits to retry after a failure; a failed pull shows
    /// as ImagePullBackOff meanwhile.
    fn wait_for_retry(&mut self, pod: &Pod, c: &Container) {
        let record = self.containers.entry(c.name.clone()).or_default();
        if let Some((reason, message)) = &mut record.waiting {
            if reason == "ErrImagePull" {
                *reason = "ImagePullBackOff".into();
                *message = format!(
                    "Back-off pulling image \"{}\"",
                    c.image.as_deref().unwrap_or_default()
                );
                let message = message.clone();
                self.event(pod, Some(c), EventType::Normal, "BackOff", message);
                self.event(
                    pod,
                    Some(c),
                    EventType::Warning,
                    "Failed",
                    "Error: ImagePullBackOff".into(),
                );
            }
        }
    }

    /// Pull the image if needed, make the container and start it, running
    /// its postStart hook; a failure shows as the container's waiting
    /// reason and is retried later.
    async fn make(&mut self, pod: &Pod, c: &Container, init: bool) -> Result<()> {
        let Some(sandbox) = self.sandbox.clone() else {
            return Ok(());
        };
        let image = c.image.clone().unwrap_or_default();
        if let Err(e) = self.ensure_image(pod, c, &image).await {
            self.event(pod, Some(c), EventType::Warning, "Failed", e.to_string());
            self.event(
                pod,
                Some(c),
                EventType::Warning,
                "Failed",
                "Error: ErrImagePull".into(),
            );
            self.fail_start(c, e.into());
            return Ok(());
        }
        let mut config = match self.container_config(pod, c).await {
            Ok(config) => config,
            Err(e) => {
                self.event(
                    pod,
                    Some(c),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {e}"),
                );
                self.fail_start(c, e.into());
                return Ok(());
            }
        };
        let record = self.containers.entry(c.name.clone()).or_default();
        config.image = image.clone();
        config.attempt = u32::try_from(record.restart_count).unwrap_or_default();
        config.init = init;
        record.image = image;
        record.backoff_until = None;
        let id = match self
            .workers
            .runtime
            .create_container(&sandbox, &config)
            .await
        {
            Ok(id) => id,
            Err(e) => {
                self.event(
                    pod,
                    Some(c),
                    EventType::Warning,
                    "Failed",
                    format!("Error: {e}"),
                );
                self.fail_start(c, StartError::Create(e));
                return Ok(());
            }
        };
        self.event(
            pod,
            Some(c),
            EventType::Normal,
            "Created",
            format!("Created container: {}", c.name),
        );
        // Recorded before starting, so a failed start is retried on the
        // same container's status rather than leaking it.
        if let Some(r) = self.containers.get_mut(&c.name) {
            if let Some(old) = r.id.replace(id.clone()) {
                if let Some(older) = r.previous.replace(old) {
                    self.workers.runtime.remove_container(&older).await?;
                }
            }
        }
        if let Err(e) = self.workers.runtime.start_container(&id).await {
            let _ = self.workers.runtime.remove_container(&id).await;
            if let Some(r) = self.containers.get_mut(&c.name) {
                r.id = r.previous.take();
            }
            self.event(
                pod,
                Some(c),
                EventType::Warning,
                "Failed",
                format!("Error: {e}"),
            );
            self.fail_start(c, StartError::Start(e));
            return Ok(());
        }
        self.event(
            pod,
            Some(c),
            EventType::Normal,
            "Started",
            format!("Started container {}", c.name),
        );
        self.workers.metrics.container_started();
        if let Some(r) = self.containers.get_mut(&c.name) {
            r.waiting = None;
            r.retry_at = None;
            r.failures = 0;
        }
        if let Some(handler) = c.lifecycle.as_ref().and_then(|l| l.post_start.as_ref()) {
            let runtime = &*self.workers.runtime;
            if let Err(e) = hooks::run(runtime, c, &id, handler, self.pod_ip).await {
                // The container is killed; the restart policy decides what
                // comes next.
                tracing::warn!(node = %self.workers.node_name, container = %c.name, "FailedPostStartHook: {e}");
                self.event(
                    pod,
                    Some(c),
                    EventType::Warning,
                    "FailedPostStartHook",
                    e.to_string(),
                );
                runtime.stop_container(&id, Duration::ZERO).await?;
            }
        }
        Ok(())
    }

    /// What the runtime needs to make container `c`: on a real node, the
    /// environment resolved (ConfigMaps, Secrets, the downward API), the
    /// volumes mounted and `$(VAR)` expanded in command and args; on a
    /// hollow node, only the literal values.
    async fn container_config(
        &self,
        pod: &Pod,
        c: &Container,
    ) -> Result<ContainerConfig, ConfigError> {
        let mut config = ContainerConfig {
            name: c.name.clone(),
            command: c.command.clone().unwrap_or_default(),
            args: c.args.clone().unwrap_or_default(),
            working_dir: c.working_dir.clone(),
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            tty: c.tty.unwrap_or(false),
            run_as_user: run_as(pod, c, |s| s.run_as_user, |s| s.run_as_user),
            run_as_group: run_as(pod, c, |s| s.run_as_group, |s| s.run_as_group),
            ..Default::default()
        };
        let Some(host) = &self.workers.host else {
            config.env = c
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
                .collect();
            return Ok(config);
        };
        let inputs = self.downward_inputs(host);
        let env = env::make_environment_variables(pod, c, &inputs, &*host.objects).await?;
        config.mounts = volumes::make_mounts(c, &self.volumes, &env)?;
        let (command, args) = env::expand_command_and_args(c, &env);
        config.command = command;
        config.args = args;
        config.env = env;
        config.resources = resources::container_resources(c);
        Ok(config)
    }

    fn downward_inputs(&self, host: &PodHost) -> DownwardInputs {
        DownwardInputs {
            host_ips: vec![self.workers.host_ip.to_string()],
            pod_ips: self.pod_ip.iter().map(|ip| ip.to_string()).collect(),
            allocatable: host.allocatable.clone(),
        }
    }

    /// Make sure the image is on the node as `imagePullPolicy` says.
    async fn ensure_image(&self, pod: &Pod, c: &Container, image: &str) -> Result<(), ImageError> {
        let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        let present = self
            .runtime()
            .image_status(image)
            .await
            .map_err(ImageError::Status)?
            .is_some();
        match policy {
            "Never" if !present => Err(ImageError::NotPresent {
                image: image.to_string(),
            }),
            "Never" | "IfNotPresent" if present => {
                self.event(
                    pod,
                    Some(c),
                    EventType::Normal,
                    "Pulled",
                    format!("Container image \"{image}\" already present on machine"),
                );
                Ok(())
            }
            _ => {
                self.event(
                    pod,
                    Some(c),
                    EventType::Normal,
                    "Pulling",
                    format!("Pulling image \"{image}\""),
                );
                let started = std::time::Instant::now();
                self.runtime()
                    .pull_image(image)
                    .await
                    .map_err(|source| ImageError::Pull {
                        image: image.to_string(),
                        source,
                    })?;
                self.event(
                    pod,
                    Some(c),
                    EventType::Normal,
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {:.3}s",
                        started.elapsed().as_secs_f64()
                    ),
                );
                Ok(())
            }
        }
    }

    /// No container could be made: show why, and try again after a
    /// back-off (doubling from the restart back-off, as image pulls do)
    /// or the retry interval.
    fn fail_start(&mut self, c: &Container, e: StartError) {
        let s = &self.workers.settings;
        let record = self.containers.entry(c.name.clone()).or_default();
        record.failures += 1;
        let backoff = e.backs_off();
        let delay = if backoff {
            s.backoff_policy().delay(record.failures)
        } else {
            s.retry_interval
        };
        let reason = e.reason();
        let message = e.to_string();
        tracing::info!(node = %self.workers.node_name, container = %c.name, %reason, "{message}");
        self.workers.metrics.container_start_failed(reason);
        record.waiting = Some((reason.to_string(), message));
        let now = Timestamp::now();
        record.retry_at = Some(now + SignedDuration::try_from(delay).unwrap_or_default());
        if backoff {
            // Sync again soon, to show ImagePullBackOff while waiting.
            let soon = now + SignedDuration::from_secs(1);
            record.retry_at = record.retry_at.map(|at| at.max(soon));
        }
    }

    /// An ended container waits for its restart until `until`; the
    /// BackOff event is recorded once per wait.
    fn back_off(&mut self, pod: &Pod, c: &Container, until: Timestamp) {
        let first = self
            .containers
            .get_mut(&c.name)
            .map(|r| r.backoff_until.replace(until) != Some(until))
            .unwrap_or(false);
        if first {
            let name = pod.metadata.name.as_deref().unwrap_or_default();
            let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
            self.event(
                pod,
                Some(c),
                EventType::Warning,
                "BackOff",
                format!(
                    "Back-off restarting failed container {} in pod {name}_{ns}({})",
                    c.name, self.uid
                ),
            );
        }
    }

    /// The container statuses of `specs`, as the API shows them.
    async fn container_statuses(
        &self,
        pod: &Pod,
        specs: &[Container],
        waiting_reason: &str,
    ) -> Result<Vec<ContainerStatus>> {
        let scheme = self.runtime().type_name();
        let mut out = Vec::with_capacity(specs.len());
        for c in specs {
            let record = self.containers.get(&c.name);
            let current = match record.and_then(|r| r.id.as_deref()) {
                Some(id) => match self.runtime().container_status(id).await {
                    Ok(s) => Some(s),
                    Err(runtime::RuntimeError::NotFound { .. }) => None,
                    Err(e) => return Err(e.into()),
                },
                None => None,
            };
            let mut status = ContainerStatus {
                name: c.name.clone(),
                image: c.image.clone().unwrap_or_default(),
                image_id: String::new(),
                restart_count: record.map(|r| r.restart_count).unwrap_or_default(),
                last_state: Some(
                    record
                        .and_then(|r| r.last_termination.clone())
                        .unwrap_or_default(),
                ),
                ready: false,
                started: Some(false),
                state: Some(status::waiting(waiting_reason, None)),
                ..Default::default()
            };
            if let Some((reason, message)) = record.and_then(|r| r.waiting.as_ref()) {
                // Nothing new could be made: say why, whatever ran before.
                status.state = Some(status::waiting(reason, Some(message.clone())));
                out.push(status);
                continue;
            }
            if let Some(cur) = current {
                status.container_id = Some(format!("{scheme}://{}", cur.id));
                status.image_id = cur.image_ref.clone();
                let running = matches!(cur.state, runtime::ContainerState::Running { .. });
                status.started = Some(running && self.probes.started(c, &cur.id));
                let backoff = record.and_then(|r| r.backoff_until);
                match (&cur.state, backoff) {
                    (runtime::ContainerState::Exited { .. }, Some(_)) if !self.terminal => {
                        // Waiting to restart: the ended run is the last state.
                        status.last_state = Some(status::api_state(&cur.state));
                        let pod_name = pod.metadata.name.as_deref().unwrap_or_default();
                        let ns = pod.metadata.namespace.as_deref().unwrap_or_default();
                        status.state = Some(status::waiting(
                            "CrashLoopBackOff",
                            Some(format!(
                                "back-off restarting failed container={} pod={pod_name}_{ns}({})",
                                c.name, self.uid
                            )),
                        ));
                    }
                    _ => status.state = Some(status::api_state(&cur.state)),
                }
                if running && self.probes.ready(c, &cur.id) {
                    status.ready = self
                        .runtime()
                        .probe_readiness(&cur.id, c.readiness_probe.as_ref())
                        .await?;
                }
            }
            out.push(status);
        }
        Ok(out)
    }

    async fn build_status(
        &self,
        pod: &Pod,
        initialized: bool,
        terminal: bool,
    ) -> Result<PodStatus> {
        let empty = Vec::new();
        let spec = pod.spec.as_ref();
        let init_specs = spec
            .and_then(|s| s.init_containers.as_ref())
            .unwrap_or(&empty);
        let specs = spec.map(|s| &s.containers).unwrap_or(&empty);
        let init_statuses = self
            .container_statuses(pod, init_specs, "PodInitializing")
            .await?;
        let app_waiting = if initialized {
            "ContainerCreating"
        } else {
            "PodInitializing"
        };
        let statuses = self.container_statuses(pod, specs, app_waiting).await?;
        let phase = status::pod_phase(pod, &init_statuses, &statuses, terminal);
        let completed = phase == phase::SUCCEEDED || (terminal && phase::is_terminal(phase));

        let mut old: Vec<PodCondition> = pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.clone())
            .unwrap_or_default();
        for c in &self.last_conditions {
            match old.iter_mut().find(|o| o.type_ == c.type_) {
                Some(o) => *o = c.clone(),
                None => old.push(c.clone()),
            }
        }
        let now = Timestamp::now();
        let mut conds = Conditions::new(&old, now);
        let sandbox_ready = self.sandbox.is_some() && !phase::is_terminal(phase);
        conds.set("PodReadyToStartContainers", sandbox_ready, None, None);
        let incomplete: Vec<&str> = init_statuses
            .iter()
            .filter(|s| {
                let done = s.state.as_ref().and_then(|st| st.terminated.as_ref());
                done.is_none_or(|t| t.exit_code != 0)
            })
            .map(|s| s.name.as_str())
            .collect();
        let init_done = initialized && incomplete.is_empty();
        conds.set(
            "Initialized",
            init_done,
            (!init_done).then_some("ContainersNotInitialized"),
            (!init_done)
                .then(|| status::names_message("incomplete", &incomplete))
                .flatten(),
        );
        let unready: Vec<&str> = statuses
            .iter()
            .filter(|s| !s.ready)
            .map(|s| s.name.as_str())
            .collect();
        let containers_ready = unready.is_empty() && !phase::is_terminal(phase);
        let (reason, message) = if completed {
            (Some("PodCompleted"), None)
        } else if !containers_ready {
            (
                Some("ContainersNotReady"),
                status::names_message("unready", &unready),
            )
        } else {
            (None, None)
        };
        let gates = status::readiness_gates_met(pod);
        if containers_ready && !gates {
            conds.set(
                "Ready",
                false,
                Some("ReadinessGatesNotReady"),
                Some("the status of pod readiness gates is not \"True\"".into()),
            );
        } else {
            conds.set("Ready", containers_ready, reason, message.clone());
        }
        conds.set("ContainersReady", containers_ready, reason, message);
        conds.keep_or("PodScheduled", true);

        let host_ip = self.workers.host_ip.to_string();
        let pod_ip = self.pod_ip.map(|ip| ip.to_string());
        Ok(PodStatus {
            phase: Some(phase.to_string()),
            conditions: Some(conds.finish()),
            host_ip: Some(host_ip.clone()),
            host_ips: Some(vec![HostIP { ip: host_ip }]),
            pod_ip: pod_ip.clone(),
            pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
            start_time: self.start_time.clone(),
            container_statuses: Some(statuses),
            init_container_statuses: (!init_specs.is_empty()).then_some(init_statuses),
            ..Default::default()
        })
    }

    /// Patch the status if it differs from the API's.
    async fn post_status(&mut self, pod: &Pod, st: PodStatus) -> Result<()> {
        const OWNED: [&str; 10] = [
            "phase",
            "conditions",
            "hostIP",
            "hostIPs",
            "podIP",
            "podIPs",
            "startTime",
            "containerStatuses",
            "initContainerStatuses",
            "qosClass",
        ];
        // Only the kubelet's own conditions; others' (PodScheduled,
        // readiness gates) are always taken fresh from the pod.
        let conditions: Vec<PodCondition> = st
            .conditions
            .iter()
            .flatten()
            .filter(|c| KUBELET_CONDITIONS.contains(&c.type_.as_str()))
            .cloned()
            .collect();
        let mut desired = serde_json::to_value(&st).unwrap_or_default();
        let current =
            serde_json::to_value(pod.status.clone().unwrap_or_default()).unwrap_or_default();
        let owned = |v: &Value| -> Value {
            let mut out = serde_json::Map::new();
            for k in OWNED {
                if let Some(x) = v.get(k) {
                    out.insert(k.to_string(), x.clone());
                }
            }
            Value::Object(out)
        };
        // qosClass is the API server's; keep whatever it set.
        if let (Some(q), Some(obj)) = (current.get("qosClass"), desired.as_object_mut()) {
            obj.insert("qosClass".into(), q.clone());
        }
        let desired = owned(&desired);
        // What this worker last wrote, seen again on a copy of the pod no
        // newer than that write, is a watch event still on its way; on a
        // newer copy someone else changed it (the node lifecycle controller
        // marking the pod not Ready while the node was unreachable), and
        // the kubelet's view is put back, as its status manager reconciles.
        let stale_copy = match (&self.last_sent, rv(pod)) {
            (Some((sent, written)), Some(seen)) => *sent == desired && seen <= *written,
            (Some((sent, _)), None) => *sent == desired,
            (None, _) => false,
        };
        if desired == owned(&current) || stale_copy {
            self.last_conditions = conditions;
            return Ok(());
        }
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Pod> = Api::namespaced(self.workers.client.clone(), ns);
        let patch = json!({"status": desired});
        match api
            .patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(written) => {
                tracing::debug!(node = %self.workers.node_name, pod = %name, phase = ?st.phase, "pod status posted");
                self.last_sent = Some((desired, rv(&written).unwrap_or(u64::MAX)));
                self.last_conditions = conditions;
                Ok(())
            }
            // The pod is gone; its Delete event ends this worker.
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stop every container and the sandbox; with a grace period, each
    /// running container's preStop hook runs first, all at once.
    async fn kill(&self, pod: Option<&Pod>, grace: Duration) -> Result<()> {
        let held = self
            .containers
            .iter()
            .filter_map(|(name, r)| Some((name.as_str(), r.id.as_deref()?)));
        let plan = actions::stop_pod(pod, held, self.sandbox.as_deref(), grace);
        let stops = plan.containers.iter().map(|k| self.kill_container(pod, k));
        for r in futures::future::join_all(stops).await {
            r?;
        }
        if let Some(id) = &plan.sandbox {
            self.workers.runtime.stop_pod_sandbox(id).await?;
        }
        Ok(())
    }

    /// Stop one container within `grace`: its preStop hook, then SIGTERM,
    /// then SIGKILL when the rest of the grace period is up.
    async fn stop_one(&self, pod: &Pod, c: &Container, id: &str, grace: Duration) {
        let runtime = &*self.workers.runtime;
        let running = matches!(
            runtime.container_status(id).await.map(|s| s.state),
            Ok(runtime::ContainerState::Running { .. })
        );
        let started = std::time::Instant::now();
        if let (true, Some(handler)) = (
            running && !grace.is_zero(),
            c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref()),
        ) {
            match tokio::time::timeout(grace, hooks::run(runtime, c, id, handler, self.pod_ip))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(node = %self.workers.node_name, pod = ?pod.metadata.name, container = %c.name, "FailedPreStopHook: {e}");
                    self.event(
                        pod,
                        Some(c),
                        EventType::Warning,
                        "FailedPreStopHook",
                        e.to_string(),
                    );
                }
                Err(_) => {
                    tracing::warn!(node = %self.workers.node_name, pod = ?pod.metadata.name, container = %c.name, "preStop hook did not finish within the grace period")
                }
            }
        }
        if running {
            self.event(
                pod,
                Some(c),
                EventType::Normal,
                "Killing",
                format!("Stopping container {}", c.name),
            );
        }
        let rest = grace.saturating_sub(started.elapsed());
        if let Err(e) = runtime.stop_container(id, rest).await {
            tracing::warn!(node = %self.workers.node_name, container = %c.name, error = %e, "stopping container");
        }
    }

    /// Remove the sandbox and its containers from the runtime.
    async fn remove(&mut self) -> Result<()> {
        if let Some(id) = self.sandbox.take() {
            self.workers.runtime.remove_pod_sandbox(&id).await?;
        }
        self.containers.clear();
        if let Some(host) = &self.workers.host {
            if let Err(e) = volumes::remove_pod_dir(&host.root_dir, &self.uid).await {
                tracing::warn!(node = %self.workers.node_name, pod_uid = %self.uid, error = %e, "removing pod volumes");
            }
        }
        Ok(())
    }
    /// A pod being deleted: stop it within `grace`, post its final status,
    /// and delete it for good (the API server waits for the kubelet to do
    /// that).
    async fn terminate(&mut self, pod: &Pod, grace: Duration) -> Result<Next> {
        self.kill(Some(pod), grace).await?;
        self.terminal = true;
        if self.sandbox.is_some() {
            let st = self.build_status(pod, true, true).await?;
            self.post_status(pod, st).await?;
        }
        let name = pod.metadata.name.as_deref().unwrap_or_default();
        let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
        let api: Api<Pod> = Api::namespaced(self.workers.client.clone(), ns);
        let params = DeleteParams {
            grace_period_seconds: Some(0),
            preconditions: Some(Preconditions {
                uid: Some(self.uid.clone()),
                resource_version: None,
            }),
            ..Default::default()
        };
        match api.delete(name, &params).await {
            Ok(_) => {
                tracing::debug!(node = %self.workers.node_name, pod = %name, "pod deleted");
            }
            // Already gone, or a new pod of the same name took its place.
            Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
            Err(e) => return Err(e.into()),
        }
        self.remove().await?;
        Ok(Next::Done)
    }
}

/// Every app container of the status runs.
fn all_running(st: &PodStatus) -> bool {
    st.container_statuses.as_ref().is_some_and(|cs| {
        !cs.is_empty()
            && cs
                .iter()
                .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
    })
}

/// The init or app container of the pod's spec named `name`.
fn spec_container<'a>(pod: &'a Pod, name: &str) -> Option<&'a Container> {
    let s = pod.spec.as_ref()?;
    s.init_containers
        .iter()
        .flatten()
        .chain(&s.containers)
        .find(|c| c.name == name)
}

/// A container's security context setting, or the pod's.
fn run_as(
    pod: &Pod,
    c: &Container,
    container: impl Fn(&k8s_openapi::api::core::v1::SecurityContext) -> Option<i64>,
    pod_level: impl Fn(&k8s_openapi::api::core::v1::PodSecurityContext) -> Option<i64>,
) -> Option<i64> {
    c.security_context.as_ref().and_then(container).or_else(|| {
        pod.spec
            .as_ref()?
            .security_context
            .as_ref()
            .and_then(pod_level)
    })
}

/// The sandbox a pod asks for.
fn sandbox_config(pod: &Pod, uid: &str) -> PodSandboxConfig {
    PodSandboxConfig {
        pod_uid: uid.to_string(),
        name: pod.metadata.name.clone().unwrap_or_default(),
        namespace: pod.metadata.namespace.clone().unwrap_or_default(),
        labels: pod.metadata.labels.clone().unwrap_or_default(),
        annotations: pod.metadata.annotations.clone().unwrap_or_default(),
        host_network: pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;

/// A pod's resourceVersion as a number (the store's revision).
fn rv(pod: &Pod) -> Option<u64> {
    pod.metadata.resource_version.as_deref()?.parse().ok()
}
