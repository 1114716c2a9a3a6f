//! The fake runtime of hollow nodes: sandboxes and containers are records in
//! memory, nothing runs. Containers "run" as soon as they are started, or
//! after [`FakeRuntimeOptions::start_delay`]; init containers complete with
//! exit code 0 as soon as they run.
//!
//! A pod's annotations steer its containers, so a test with `kubectl` can
//! drive every path of the kubelet and the controllers:
//!
//! - `hollow.kedge.io/ready: "false"`: readiness fails while the annotation
//!   is set (with or without a readiness probe); remove it, or set it to
//!   anything else, and the containers are ready again.
//! - `hollow.kedge.io/exit-code: "N"`: each app container exits with code
//!   `N` once it has run for `hollow.kedge.io/exit-after-seconds` (default
//!   0). A restarted container runs that long again before it exits, so
//!   with `restartPolicy: Always` or `OnFailure` the restart count keeps
//!   growing. Setting the annotation on a running pod makes its containers
//!   exit then (or when their time is up, whichever is later); removing it
//!   before then cancels the exit.
//!
//! - `hollow.kedge.io/cpu-millicores: "N"` and
//!   `hollow.kedge.io/memory-bytes: "N"`: what each app container reports
//!   using (`/metrics/resource`, `kubectl top`, the autoscaler); without
//!   them a small steady use derived from the container id (1–20m CPU,
//!   8–40 MiB), so scale runs exercise the resource metrics.
//!
//! A stopped container reports exit code 0 (`Completed`), as a process that
//! handles SIGTERM does.
//!
//! Tests that assert what the kubelet asked of the runtime turn on
//! [`FakeRuntime::record_calls`] and read [`FakeRuntime::take_calls`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::{BoxFuture, FutureExt};
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::Probe;
use parking_lot::Mutex;
use tokio::sync::broadcast;

use super::{
    ContainerConfig, ContainerState, ContainerStatus, PodLifecycleEvent, PodLifecycleEventType,
    PodSandboxConfig, PodSandboxState, PodSandboxStatus, ProbeKind, Result, Runtime, RuntimeError,
};

/// Readiness fails while this annotation is `"false"`.
pub const READY_ANNOTATION: &str = "hollow.kedge.io/ready";
/// App containers exit with this code.
pub const EXIT_CODE_ANNOTATION: &str = "hollow.kedge.io/exit-code";
/// ... after running this many seconds (default 0).
pub const EXIT_AFTER_ANNOTATION: &str = "hollow.kedge.io/exit-after-seconds";

/// Each app container reports using this much CPU.
pub const CPU_ANNOTATION: &str = "hollow.kedge.io/cpu-millicores";
/// ... and this much memory (its working set).
pub const MEMORY_ANNOTATION: &str = "hollow.kedge.io/memory-bytes";

/// What a hollow node's own processes use besides its pods.
const NODE_BASE_MILLICORES: f64 = 100.0;
const NODE_BASE_MEMORY: u64 = 512 << 20;

/// Ids are unique across every fake runtime of the process, so containers
/// of many hollow nodes never collide in logs.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How a fake runtime behaves.
#[derive(Debug, Clone, Default)]
pub struct FakeRuntimeOptions {
    /// Time between starting a container and it running.
    pub start_delay: Duration,
    /// The node's pod CIDR (IPv4 network and prefix length); pod IPs come
    /// from it. Without one, non-host-network pods get no IP.
    pub pod_cidr: Option<(Ipv4Addr, u8)>,
}

/// A runtime in which nothing runs.
pub struct FakeRuntime {
    options: FakeRuntimeOptions,
    state: Mutex<State>,
    events: broadcast::Sender<PodLifecycleEvent>,
    /// When it was made: the hollow node's boot.
    started: Timestamp,
}

#[derive(Default)]
struct State {
    sandboxes: HashMap<String, Sandbox>,
    containers: HashMap<String, Container>,
    ips_in_use: HashSet<u32>,
    next_ip: u32,
    /// The calls made, once recording is on; off by default, so hollow
    /// nodes keep nothing.
    calls: Option<Vec<RuntimeCall>>,
}

/// A call that changed the fake runtime's sandboxes or containers, or
/// pulled an image. Sandboxes are named by their pod, containers by their
/// name in the pod spec (`?` when the id is unknown); `Display` gives a
/// short form, `create_container app#1` for attempt 1.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuntimeCall {
    /// `run_pod_sandbox`.
    RunPodSandbox {
        /// The pod's name.
        pod: String,
    },
    /// `update_pod_sandbox`.
    UpdatePodSandbox {
        /// The pod's name.
        pod: String,
    },
    /// `stop_pod_sandbox`.
    StopPodSandbox {
        /// The pod's name.
        pod: String,
    },
    /// `remove_pod_sandbox`.
    RemovePodSandbox {
        /// The pod's name.
        pod: String,
    },
    /// `create_container`.
    CreateContainer {
        /// The container's name.
        name: String,
        /// Its CRI attempt.
        attempt: u32,
    },
    /// `start_container`.
    StartContainer {
        /// The container's name.
        name: String,
    },
    /// `stop_container`.
    StopContainer {
        /// The container's name.
        name: String,
    },
    /// `remove_container`.
    RemoveContainer {
        /// The container's name.
        name: String,
    },
    /// `pull_image`.
    PullImage {
        /// The image.
        image: String,
    },
}

impl std::fmt::Display for RuntimeCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RuntimeCall::RunPodSandbox { pod } => write!(f, "run_pod_sandbox {pod}"),
            RuntimeCall::UpdatePodSandbox { pod } => write!(f, "update_pod_sandbox {pod}"),
            RuntimeCall::StopPodSandbox { pod } => write!(f, "stop_pod_sandbox {pod}"),
            RuntimeCall::RemovePodSandbox { pod } => write!(f, "remove_pod_sandbox {pod}"),
            RuntimeCall::CreateContainer { name, attempt } => {
                write!(f, "create_container {name}#{attempt}")
            }
            RuntimeCall::StartContainer { name } => write!(f, "start_container {name}"),
            RuntimeCall::StopContainer { name } => write!(f, "stop_container {name}"),
            RuntimeCall::RemoveContainer { name } => write!(f, "remove_container {name}"),
            RuntimeCall::PullImage { image } => write!(f, "pull_image {image}"),
        }
    }
}

// === impl State ===

impl State {
    /// Note a call when recording is on; `call` reads names before the
    /// call changes anything.
    fn record(&mut self, call: impl FnOnce(&State) -> RuntimeCall) {
        if self.calls.is_some() {
            let call = call(self);
            if let Some(calls) = &mut self.calls {
                calls.push(call);
            }
        }
    }

    fn pod_name(&self, sandbox_id: &str) -> String {
        self.sandboxes
            .get(sandbox_id)
            .map_or_else(|| "?".to_string(), |s| s.config.name.clone())
    }

    fn container_name(&self, id: &str) -> String {
        self.containers
            .get(id)
            .map_or_else(|| "?".to_string(), |c| c.config.name.clone())
    }
}

struct Sandbox {
    config: PodSandboxConfig,
    ip: Option<Ipv4Addr>,
    ready: bool,
    exit: Option<ExitPlan>,
}

/// What the annotations ask of app containers.
#[derive(Debug, Clone, Copy, PartialEq)]
struct ExitPlan {
    code: i32,
    after: SignedDuration,
}

struct Container {
    sandbox_id: String,
    pod_uid: String,
    config: ContainerConfig,
    /// When the process runs (start call plus the start delay).
    start_at: Option<Timestamp>,
    /// When and how it will exit by itself.
    exit_at: Option<(Timestamp, i32)>,
    /// When and how it was stopped.
    stopped: Option<(Timestamp, i32)>,
}

// === impl Container ===

impl Container {
    fn state(&self, now: Timestamp) -> ContainerState {
        let exited =
            |started_at, (finished_at, exit_code): (Timestamp, i32)| ContainerState::Exited {
                started_at,
                finished_at,
                exit_code,
                reason: if exit_code == 0 { "Completed" } else { "Error" }.to_string(),
            };
        let started = self.start_at.filter(|s| *s <= now);
        match (self.stopped, self.exit_at) {
            (_, Some(exit)) if started.is_some() && exit.0 <= now => {
                // A stop after the process already ended does not change it.
                match self.stopped {
                    Some(stop) if stop.0 < exit.0 => exited(started, stop),
                    _ => exited(started, exit),
                }
            }
            (Some(stop), _) => exited(started, stop),
            _ => match started {
                Some(started_at) => ContainerState::Running { started_at },
                None => ContainerState::Created,
            },
        }
    }

    /// When this container exits by itself under `plan`, counted from its
    /// start but never in the past.
    fn plan_exit(&mut self, plan: Option<ExitPlan>, now: Timestamp) {
        let Some(start) = self.start_at else { return };
        if self.stopped.is_some() {
            return;
        }
        if matches!(self.exit_at, Some((at, _)) if at <= now) {
            return; // already exited
        }
        self.exit_at = if self.config.init {
            Some((start, 0))
        } else {
            plan.map(|p| ((start + p.after).max(now.max(start)), p.code))
        };
    }
}

/// What a container reports using: (millicores, bytes), from the pod's
/// annotations or derived from its id.
fn synthetic_usage(id: &str, annotations: &BTreeMap<String, String>) -> (f64, u64) {
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let millicores = annotations
        .get(CPU_ANNOTATION)
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(1.0 + (hash % 20) as f64);
    let memory = annotations
        .get(MEMORY_ANNOTATION)
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or((8 << 20) + (hash >> 8) % (32 << 20));
    (millicores, memory)
}

fn exit_plan(annotations: &BTreeMap<String, String>) -> Option<ExitPlan> {
    let code = annotations.get(EXIT_CODE_ANNOTATION)?.trim().parse().ok()?;
    let after = annotations
        .get(EXIT_AFTER_ANNOTATION)
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .unwrap_or(0.0);
    Some(ExitPlan {
        code,
        after: SignedDuration::from_secs_f64(after),
    })
}

fn new_id() -> String {
    format!("{:064x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// A stable digest-like image id, so `imageID` looks like a real one.
fn image_ref(image: &str) -> String {
    let mut digest = String::with_capacity(64);
    for seed in 0..4u64 {
        // FNV-1a, seeded per word.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for b in image.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        digest.push_str(&format!("{h:016x}"));
    }
    let repo = image.split('@').next().unwrap_or(image);
    let repo = match repo.rsplit_once(':') {
        Some((r, tag)) if !tag.contains('/') => r,
        _ => repo,
    };
    format!("{repo}@sha256:{digest}")
}

// === impl FakeRuntime ===

impl FakeRuntime {
    /// A fake runtime.
    pub fn new(options: FakeRuntimeOptions) -> Arc<Self> {
        let (events, _) = broadcast::channel(1024);
        Arc::new(Self {
            options,
            state: Mutex::new(State::default()),
            events,
            started: Timestamp::now(),
        })
    }

    /// Record every call that changes sandboxes or containers from now
    /// on (earlier ones are forgotten).
    pub fn record_calls(&self) {
        self.state.lock().calls = Some(Vec::new());
    }

    /// The calls recorded since the last take.
    pub fn take_calls(&self) -> Vec<RuntimeCall> {
        let mut state = self.state.lock();
        state.calls.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The pod CIDR as (network, size).
    fn cidr(&self) -> Option<(u32, u32)> {
        let (net, prefix) = self.options.pod_cidr?;
        // At least /30, so there is an address besides network, gateway
        // and broadcast.
        let size = 1u32.checked_shl(32 - u32::from(prefix.clamp(1, 30)))?;
        Some((u32::from(net) & !(size - 1), size))
    }

    fn allocate_ip(&self, state: &mut State) -> Option<Ipv4Addr> {
        let (base, size) = self.cidr()?;
        // .0 is the network, .1 the gateway, the last the broadcast.
        let usable = size - 3;
        for _ in 0..usable {
            let offset = 2 + state.next_ip % usable;
            state.next_ip = state.next_ip.wrapping_add(1);
            if state.ips_in_use.insert(offset) {
                return Some(Ipv4Addr::from(base + offset));
            }
        }
        None
    }

    fn release_ip(&self, state: &mut State, ip: Option<Ipv4Addr>) {
        if let (Some(ip), Some((base, _))) = (ip, self.cidr()) {
            state.ips_in_use.remove(&u32::from(ip).wrapping_sub(base));
        }
    }

    /// Wake the pod worker when a container reaches a planned time.
    fn notify_at(&self, at: Timestamp, event: PodLifecycleEvent) {
        // A millisecond late, so the state read on waking has changed.
        let wait = Timestamp::now().duration_until(at) + SignedDuration::from_millis(1);
        let tx = self.events.clone();
        if wait.is_positive() {
            let wait = Duration::try_from(wait).unwrap_or_default();
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = tx.send(event);
            });
        } else {
            let _ = tx.send(event);
        }
    }

    fn schedule_events(&self, id: &str, c: &Container) {
        if let Some(start) = c.start_at {
            if !self.options.start_delay.is_zero() {
                self.notify_at(
                    start,
                    PodLifecycleEvent {
                        pod_uid: c.pod_uid.clone(),
                        container_id: id.to_string(),
                        kind: PodLifecycleEventType::ContainerStarted,
                    },
                );
            }
        }
        if let Some((at, _)) = c.exit_at {
            self.notify_at(
                at,
                PodLifecycleEvent {
                    pod_uid: c.pod_uid.clone(),
                    container_id: id.to_string(),
                    kind: PodLifecycleEventType::ContainerDied,
                },
            );
        }
    }

    fn sync_update(&self, id: &str, config: &PodSandboxConfig) -> Result<()> {
        let now = Timestamp::now();
        let mut state = self.state.lock();
        state.record(|s| RuntimeCall::UpdatePodSandbox {
            pod: s.pod_name(id),
        });
        let sandbox = state
            .sandboxes
            .get_mut(id)
            .ok_or_else(|| not_found("pod sandbox", id))?;
        let plan = exit_plan(&config.annotations);
        let changed = sandbox.exit != plan;
        sandbox.config = config.clone();
        sandbox.exit = plan;
        if !changed {
            return Ok(());
        }
        let mut wake = Vec::new();
        for (cid, c) in state.containers.iter_mut() {
            if c.sandbox_id == id && !c.config.init {
                let before = c.exit_at;
                c.plan_exit(plan, now);
                if c.exit_at != before && c.exit_at.is_some() {
                    wake.push(cid.clone());
                }
            }
        }
        for cid in wake {
            if let Some(c) = state.containers.get(&cid) {
                self.schedule_events(&cid, c);
            }
        }
        Ok(())
    }
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.to_string(),
    }
}

impl Runtime for FakeRuntime {
    fn type_name(&self) -> &'static str {
        "fake"
    }

    fn version(&self) -> String {
        "fake://1.0".to_string()
    }

    fn run_pod_sandbox<'a>(
        &'a self,
        config: &'a PodSandboxConfig,
    ) -> BoxFuture<'a, Result<String>> {
        let mut state = self.state.lock();
        state.record(|_| RuntimeCall::RunPodSandbox {
            pod: config.name.clone(),
        });
        let ip = if config.host_network {
            None
        } else {
            self.allocate_ip(&mut state)
        };
        let id = new_id();
        state.sandboxes.insert(
            id.clone(),
            Sandbox {
                config: config.clone(),
                ip,
                ready: true,
                exit: exit_plan(&config.annotations),
            },
        );
        futures::future::ready(Ok(id)).boxed()
    }

    fn update_pod_sandbox<'a>(
        &'a self,
        id: &'a str,
        config: &'a PodSandboxConfig,
    ) -> BoxFuture<'a, Result<()>> {
        futures::future::ready(self.sync_update(id, config)).boxed()
    }

    fn stop_pod_sandbox<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        let now = Timestamp::now();
        let mut state = self.state.lock();
        state.record(|s| RuntimeCall::StopPodSandbox {
            pod: s.pod_name(id),
        });
        let result = match state.sandboxes.get_mut(id) {
            Some(s) => {
                s.ready = false;
                let ip = s.ip.take();
                self.release_ip(&mut state, ip);
                for c in state.containers.values_mut() {
                    if c.sandbox_id == id && c.stopped.is_none() {
                        c.stopped = Some((now, 0));
                    }
                }
                Ok(())
            }
            None => Ok(()),
        };
        futures::future::ready(result).boxed()
    }

    fn remove_pod_sandbox<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state.lock();
        state.record(|s| RuntimeCall::RemovePodSandbox {
            pod: s.pod_name(id),
        });
        if let Some(s) = state.sandboxes.remove(id) {
            self.release_ip(&mut state, s.ip);
            state.containers.retain(|_, c| c.sandbox_id != id);
        }
        futures::future::ready(Ok(())).boxed()
    }

    fn pod_sandbox_status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<PodSandboxStatus>> {
        let state = self.state.lock();
        let result = state
            .sandboxes
            .get(id)
            .map(|s| PodSandboxStatus {
                id: id.to_string(),
                pod_uid: s.config.pod_uid.clone(),
                state: if s.ready {
                    PodSandboxState::Ready
                } else {
                    PodSandboxState::NotReady
                },
                ip: s.ip.map(IpAddr::V4),
            })
            .ok_or_else(|| not_found("pod sandbox", id));
        futures::future::ready(result).boxed()
    }

    fn list_pod_sandboxes(&self) -> BoxFuture<'_, Result<Vec<PodSandboxStatus>>> {
        let state = self.state.lock();
        let list = state
            .sandboxes
            .iter()
            .map(|(id, s)| PodSandboxStatus {
                id: id.clone(),
                pod_uid: s.config.pod_uid.clone(),
                state: if s.ready {
                    PodSandboxState::Ready
                } else {
                    PodSandboxState::NotReady
                },
                ip: s.ip.map(IpAddr::V4),
            })
            .collect();
        futures::future::ready(Ok(list)).boxed()
    }

    fn list_containers(&self) -> BoxFuture<'_, Result<Vec<ContainerStatus>>> {
        let now = Timestamp::now();
        let state = self.state.lock();
        let list = state
            .containers
            .iter()
            .map(|(id, c)| ContainerStatus {
                id: id.clone(),
                sandbox_id: c.sandbox_id.clone(),
                name: c.config.name.clone(),
                image: c.config.image.clone(),
                image_ref: image_ref(&c.config.image),
                attempt: c.config.attempt,
                state: c.state(now),
            })
            .collect();
        futures::future::ready(Ok(list)).boxed()
    }

    fn list_container_stats(&self) -> BoxFuture<'_, Result<Vec<super::ContainerStats>>> {
        let now = Timestamp::now();
        let state = self.state.lock();
        let stats = state
            .containers
            .iter()
            .filter_map(|(id, c)| {
                let ContainerState::Running { started_at } = c.state(now) else {
                    return None;
                };
                let sandbox = state.sandboxes.get(&c.sandbox_id)?;
                let (millicores, memory) = synthetic_usage(id, &sandbox.config.annotations);
                let seconds = now.duration_since(started_at).as_secs_f64().max(0.0);
                Some(super::ContainerStats {
                    id: id.clone(),
                    name: c.config.name.clone(),
                    pod_uid: c.pod_uid.clone(),
                    pod_name: sandbox.config.name.clone(),
                    pod_namespace: sandbox.config.namespace.clone(),
                    started_at: Some(started_at),
                    timestamp: now,
                    cpu_seconds: seconds * millicores / 1000.0,
                    memory_usage_bytes: memory,
                    memory_working_set_bytes: memory,
                    memory_rss_bytes: Some(memory),
                })
            })
            .collect();
        futures::future::ready(Ok(stats)).boxed()
    }

    fn node_stats(&self) -> Option<crate::stats::NodeStats> {
        // The node "booted" with the runtime; it uses a base load and what
        // its containers use.
        let now = Timestamp::now();
        let state = self.state.lock();
        let mut millicores = NODE_BASE_MILLICORES;
        let mut memory = NODE_BASE_MEMORY;
        for (id, c) in &state.containers {
            if let (ContainerState::Running { .. }, Some(sandbox)) =
                (c.state(now), state.sandboxes.get(&c.sandbox_id))
            {
                let (m, bytes) = synthetic_usage(id, &sandbox.config.annotations);
                millicores += m;
                memory += bytes;
            }
        }
        let up = now.duration_since(self.started).as_secs_f64().max(0.0);
        Some(crate::stats::NodeStats {
            timestamp: now,
            start_time: Some(self.started),
            // A steady rate of the current load since boot: rates between
            // samples come out as the current load.
            cpu_seconds: up * millicores / 1000.0,
            memory_total_bytes: 16 << 30,
            memory_usage_bytes: memory,
            memory_working_set_bytes: memory,
        })
    }

    fn create_container<'a>(
        &'a self,
        sandbox_id: &'a str,
        config: &'a ContainerConfig,
    ) -> BoxFuture<'a, Result<String>> {
        let mut state = self.state.lock();
        state.record(|_| RuntimeCall::CreateContainer {
            name: config.name.clone(),
            attempt: config.attempt,
        });
        let result = match state.sandboxes.get(sandbox_id) {
            Some(s) if s.ready => {
                let id = new_id();
                let pod_uid = s.config.pod_uid.clone();
                state.containers.insert(
                    id.clone(),
                    Container {
                        sandbox_id: sandbox_id.to_string(),
                        pod_uid,
                        config: config.clone(),
                        start_at: None,
                        exit_at: None,
                        stopped: None,
                    },
                );
                Ok(id)
            }
            Some(_) => Err(RuntimeError::Failed(format!(
                "pod sandbox {sandbox_id} is not ready"
            ))),
            None => Err(not_found("pod sandbox", sandbox_id)),
        };
        futures::future::ready(result).boxed()
    }

    fn start_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        let now = Timestamp::now();
        let mut state = self.state.lock();
        state.record(|s| RuntimeCall::StartContainer {
            name: s.container_name(id),
        });
        let State {
            sandboxes,
            containers,
            ..
        } = &mut *state;
        let result = match containers.get_mut(id) {
            Some(c) if c.start_at.is_none() => {
                let delay = SignedDuration::try_from(self.options.start_delay).unwrap_or_default();
                c.start_at = Some(now + delay);
                let plan = sandboxes.get(&c.sandbox_id).and_then(|s| s.exit);
                c.plan_exit(plan, now);
                self.schedule_events(id, c);
                Ok(())
            }
            Some(_) => Err(RuntimeError::Failed(format!(
                "container {id} was already started"
            ))),
            None => Err(not_found("container", id)),
        };
        futures::future::ready(result).boxed()
    }

    fn stop_container<'a>(&'a self, id: &'a str, _grace: Duration) -> BoxFuture<'a, Result<()>> {
        // Nothing runs, so nothing needs its grace period: stop at once.
        let now = Timestamp::now();
        let mut state = self.state.lock();
        state.record(|s| RuntimeCall::StopContainer {
            name: s.container_name(id),
        });
        if let Some(c) = state.containers.get_mut(id) {
            if c.stopped.is_none() {
                c.stopped = Some((now, 0));
            }
        }
        futures::future::ready(Ok(())).boxed()
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        let mut state = self.state.lock();
        state.record(|s| RuntimeCall::RemoveContainer {
            name: s.container_name(id),
        });
        state.containers.remove(id);
        futures::future::ready(Ok(())).boxed()
    }

    fn container_status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerStatus>> {
        let now = Timestamp::now();
        let state = self.state.lock();
        let result = state
            .containers
            .get(id)
            .map(|c| ContainerStatus {
                id: id.to_string(),
                sandbox_id: c.sandbox_id.clone(),
                name: c.config.name.clone(),
                image: c.config.image.clone(),
                image_ref: image_ref(&c.config.image),
                attempt: c.config.attempt,
                state: c.state(now),
            })
            .ok_or_else(|| not_found("container", id));
        futures::future::ready(result).boxed()
    }

    fn probe_readiness<'a>(
        &'a self,
        id: &'a str,
        _probe: Option<&'a Probe>,
    ) -> BoxFuture<'a, Result<bool>> {
        let now = Timestamp::now();
        let state = self.state.lock();
        let result = match state.containers.get(id) {
            Some(c) => {
                let running = matches!(c.state(now), ContainerState::Running { .. });
                let failing = state
                    .sandboxes
                    .get(&c.sandbox_id)
                    .and_then(|s| s.config.annotations.get(READY_ANNOTATION))
                    .is_some_and(|v| v.trim() == "false");
                Ok(running && !failing)
            }
            None => Err(not_found("container", id)),
        };
        futures::future::ready(result).boxed()
    }

    fn events(&self) -> broadcast::Receiver<PodLifecycleEvent> {
        self.events.subscribe()
    }

    fn image_status<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        // Every image is "present": hollow nodes pull nothing.
        futures::future::ready(Ok(Some(image_ref(image)))).boxed()
    }

    fn pull_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<String>> {
        self.state.lock().record(|_| RuntimeCall::PullImage {
            image: image.to_string(),
        });
        futures::future::ready(Ok(image_ref(image))).boxed()
    }

    fn run_probe<'a>(
        &'a self,
        id: &'a str,
        kind: ProbeKind,
        probe: &'a Probe,
        _pod_ip: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<bool>> {
        // Probes pass: readiness follows the annotation through
        // `probe_readiness`, which is asked on every sync.
        let _ = (id, kind, probe);
        futures::future::ready(Ok(true)).boxed()
    }
}

#[cfg(test)]
mod tests;
