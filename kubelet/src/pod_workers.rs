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

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
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

use crate::runtime::{self, ContainerConfig, PodSandboxConfig, Runtime};
use crate::status::{self, api_time, phase, Conditions};
use crate::{is_not_found, Result};

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
        Arc::new(Self {
            node_name: node_name.into(),
            host_ip,
            client,
            runtime,
            settings,
            workers: Mutex::new(HashMap::new()),
            next_generation: AtomicU64::new(0),
        })
    }

    /// The node's name.
    pub fn node_name(&self) -> &str {
        &self.node_name
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
        let _ = (namespace, pod, container, previous);
        None
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
            let wait = match worker.sync(pod.as_ref()).await {
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
    /// The last status posted, so a watch that lags does not cause the same
    /// patch twice.
    last_sent: Option<Value>,
    /// The conditions last posted: their transition times count, not those
    /// of a pod from a watch that has not caught up yet.
    last_conditions: Vec<PodCondition>,
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
        }
    }

    fn runtime(&self) -> &dyn Runtime {
        &*self.workers.runtime
    }

    async fn sync(&mut self, pod: Option<&Arc<Pod>>) -> Result<Next> {
        let Some(pod) = pod else {
            self.kill(Duration::ZERO).await?;
            self.remove().await?;
            return Ok(Next::Done);
        };
        if pod.metadata.deletion_timestamp.is_some() {
            return self.terminate(pod).await;
        }
        let api_phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or_default();
        if phase::is_terminal(api_phase) && !self.terminal {
            // Finished before this worker knew it (an earlier kubelet):
            // only make sure nothing runs.
            self.kill(Duration::ZERO).await?;
            return Ok(Next::Idle);
        }
        let mut wake: Option<Timestamp> = None;
        let mut initialized = true;
        if !self.terminal {
            self.ensure_sandbox(pod).await?;
            initialized = self.sync_containers(pod, &mut wake).await?;
        }
        let st = self.build_status(pod, initialized, false).await?;
        if phase::is_terminal(st.phase.as_deref().unwrap_or_default()) && !self.terminal {
            self.terminal = true;
            // A finished pod keeps no sandbox; its status keeps the podIP.
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

    async fn ensure_sandbox(&mut self, pod: &Pod) -> Result<()> {
        let config = sandbox_config(pod, &self.uid);
        match &self.sandbox {
            None => {
                let id = self.workers.runtime.run_pod_sandbox(&config).await?;
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
            }
            Some(id) if self.sandbox_config.as_ref() != Some(&config) => {
                self.workers.runtime.update_pod_sandbox(id, &config).await?;
            }
            Some(_) => {}
        }
        self.sandbox_config = Some(config);
        Ok(())
    }

    /// Start, restart or keep each container; returns whether the init
    /// containers are done.
    async fn sync_containers(&mut self, pod: &Pod, wake: &mut Option<Timestamp>) -> Result<bool> {
        let Some(spec) = pod.spec.as_ref() else {
            return Ok(false);
        };
        let policy = spec.restart_policy.as_deref().unwrap_or("Always");
        for c in spec.init_containers.iter().flatten() {
            match self.current_state(&c.name).await? {
                None => {
                    self.start(c, true).await?;
                    return Ok(false);
                }
                Some(runtime::ContainerState::Exited { exit_code: 0, .. }) => continue,
                Some(runtime::ContainerState::Exited { finished_at, .. }) => {
                    // An init container that failed runs again unless the
                    // pod never restarts; the pod is Failed then.
                    if policy != "Never" {
                        self.restart_after_backoff(c, true, finished_at, wake)
                            .await?;
                    }
                    return Ok(false);
                }
                Some(_) => return Ok(false),
            }
        }
        for c in &spec.containers {
            match self.current_state(&c.name).await? {
                None => self.start(c, false).await?,
                Some(runtime::ContainerState::Exited {
                    exit_code,
                    finished_at,
                    ..
                }) => {
                    let restart = match policy {
                        "Never" => false,
                        "OnFailure" => exit_code != 0,
                        _ => true,
                    };
                    if restart {
                        self.restart_after_backoff(c, false, finished_at, wake)
                            .await?;
                    }
                }
                Some(_) => {
                    // A new image in the spec replaces the container.
                    let image = c.image.as_deref().unwrap_or_default();
                    if self
                        .containers
                        .get(&c.name)
                        .is_some_and(|r| r.image != image)
                    {
                        if let Some(id) = self.containers.get(&c.name).and_then(|r| r.id.clone()) {
                            self.workers
                                .runtime
                                .stop_container(&id, Duration::ZERO)
                                .await?;
                        }
                        self.restart(c, false).await?;
                    }
                }
            }
        }
        Ok(true)
    }

    async fn current_state(&self, name: &str) -> Result<Option<runtime::ContainerState>> {
        let Some(id) = self.containers.get(name).and_then(|r| r.id.as_deref()) else {
            return Ok(None);
        };
        match self.runtime().container_status(id).await {
            Ok(s) => Ok(Some(s.state)),
            Err(runtime::RuntimeError::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn start(&mut self, c: &Container, init: bool) -> Result<()> {
        let Some(sandbox) = self.sandbox.clone() else {
            return Ok(());
        };
        let record = self.containers.entry(c.name.clone()).or_default();
        let config = ContainerConfig {
            name: c.name.clone(),
            image: c.image.clone().unwrap_or_default(),
            attempt: u32::try_from(record.restart_count).unwrap_or_default(),
            init,
            command: c.command.clone().unwrap_or_default(),
            args: c.args.clone().unwrap_or_default(),
            env: c
                .env
                .iter()
                .flatten()
                .filter_map(|e| e.value.clone().map(|v| (e.name.clone(), v)))
                .collect(),
            ..Default::default()
        };
        record.image = config.image.clone();
        record.backoff_until = None;
        let id = self
            .workers
            .runtime
            .create_container(&sandbox, &config)
            .await?;
        // Recorded before starting, so a failed start is retried on the
        // same container's status rather than leaking it.
        if let Some(r) = self.containers.get_mut(&c.name) {
            r.id = Some(id.clone());
        }
        self.workers.runtime.start_container(&id).await?;
        Ok(())
    }

    /// Replace an ended container, remembering how it ended.
    async fn restart(&mut self, c: &Container, init: bool) -> Result<()> {
        let old = self.containers.get(&c.name).and_then(|r| r.id.clone());
        if let Some(old) = old {
            let status = self.runtime().container_status(&old).await.ok();
            if let Some(r) = self.containers.get_mut(&c.name) {
                r.last_termination = status.map(|s| status::api_state(&s.state));
                r.restart_count += 1;
                r.id = None;
            }
            // Only the newest ended container is kept in Kubernetes; here
            // its state lives in the record, so the runtime keeps none.
            self.workers.runtime.remove_container(&old).await?;
        }
        self.start(c, init).await
    }

    async fn restart_after_backoff(
        &mut self,
        c: &Container,
        init: bool,
        finished_at: Timestamp,
        wake: &mut Option<Timestamp>,
    ) -> Result<()> {
        let restarts = self
            .containers
            .get(&c.name)
            .map(|r| r.restart_count)
            .unwrap_or_default();
        let s = &self.workers.settings;
        let backoff = if restarts == 0 {
            Duration::ZERO
        } else {
            let factor = 1u32
                .checked_shl((restarts - 1).min(16) as u32)
                .unwrap_or(u32::MAX);
            s.restart_backoff
                .saturating_mul(factor)
                .min(s.max_restart_backoff)
        };
        let until = finished_at + SignedDuration::try_from(backoff).unwrap_or_default();
        if Timestamp::now() >= until {
            return self.restart(c, init).await;
        }
        if let Some(r) = self.containers.get_mut(&c.name) {
            r.backoff_until = Some(until);
        }
        *wake = Some(wake.map_or(until, |w| w.min(until)));
        Ok(())
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
            if let Some(cur) = current {
                status.container_id = Some(format!("{scheme}://{}", cur.id));
                status.image_id = cur.image_ref.clone();
                let running = matches!(cur.state, runtime::ContainerState::Running { .. });
                status.started = Some(running);
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
                if running {
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
        if desired == owned(&current) || self.last_sent.as_ref() == Some(&desired) {
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
            Ok(_) => {
                tracing::debug!(node = %self.workers.node_name, pod = %name, phase = ?st.phase, "pod status posted");
                self.last_sent = Some(desired);
                self.last_conditions = conditions;
                Ok(())
            }
            // The pod is gone; its Delete event ends this worker.
            Err(e) if is_not_found(&e) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Stop every container and the sandbox.
    async fn kill(&mut self, grace: Duration) -> Result<()> {
        for r in self.containers.values() {
            if let Some(id) = &r.id {
                self.workers.runtime.stop_container(id, grace).await?;
            }
        }
        if let Some(id) = &self.sandbox {
            self.workers.runtime.stop_pod_sandbox(id).await?;
        }
        Ok(())
    }

    /// Remove the sandbox and its containers from the runtime.
    async fn remove(&mut self) -> Result<()> {
        if let Some(id) = self.sandbox.take() {
            self.workers.runtime.remove_pod_sandbox(&id).await?;
        }
        self.containers.clear();
        Ok(())
    }

    /// A pod being deleted: stop it, post its final status, and delete it
    /// for good (the API server waits for the kubelet to do that).
    async fn terminate(&mut self, pod: &Pod) -> Result<Next> {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .and_then(|g| u64::try_from(g).ok())
            .map(Duration::from_secs)
            .unwrap_or_default();
        self.kill(grace).await?;
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
