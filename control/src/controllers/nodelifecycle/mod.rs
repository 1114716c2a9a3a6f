//! The node lifecycle controller (Kubernetes' `pkg/controller/nodelifecycle`):
//! a node whose kubelet stops renewing its Lease in `kube-node-lease` (and
//! stops posting its Ready heartbeat) for longer than the grace period gets
//! its conditions set to Unknown; nodes get the `not-ready` / `unreachable`
//! NoExecute and NoSchedule taints (and the other condition taints) that
//! match their conditions; pods on a node that is not Ready are marked not
//! Ready; and the taint eviction manager (`eviction`) deletes pods that do
//! not tolerate a node's NoExecute taints for long enough.
//!
//! Node health is a periodic pass over reflector caches, as in Kubernetes
//! (`monitorNodeHealth` every `nodeMonitorPeriod`), not a per-object
//! reconcile: staleness comes from the clock, which no watch event reports.

pub mod eviction;
pub mod taints;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::json;

use super::events::{self, EventType, Recorder};
use super::Context;

/// The environment variable that overrides the grace period, in seconds.
pub const GRACE_ENV: &str = "KEDGE_NODE_MONITOR_GRACE_SECONDS";
/// Kubernetes' default `--node-monitor-grace-period`.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(40);
/// Kubernetes' default `--node-monitor-period`.
pub const DEFAULT_PERIOD: Duration = Duration::from_secs(5);
/// Where kubelets keep their heartbeat Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

const REASON_UNKNOWN: &str = "NodeStatusUnknown";
const MESSAGE_UNKNOWN: &str = "Kubelet stopped posting node status.";
const REASON_NEVER: &str = "NodeStatusNeverUpdated";
const MESSAGE_NEVER: &str = "Kubelet never posted node status.";
/// The conditions a silent kubelet can no longer vouch for.
const CONDITIONS: [&str; 4] = ["Ready", "MemoryPressure", "DiskPressure", "PIDPressure"];

/// Timing of the controller.
#[derive(Debug, Clone)]
pub struct NodeLifecycleOptions {
    /// How long a node may go without a heartbeat before it is Unknown.
    pub grace: Duration,
    /// How often node health is checked.
    pub period: Duration,
    /// How often the eviction manager looks for pods past their deadline.
    pub eviction_period: Duration,
}

impl Default for NodeLifecycleOptions {
    fn default() -> Self {
        Self::with_grace(DEFAULT_GRACE)
    }
}

impl NodeLifecycleOptions {
    /// Options for a grace period; the check period scales down with it so
    /// short test graces are still noticed promptly.
    pub fn with_grace(grace: Duration) -> Self {
        let period = (grace / 4).clamp(Duration::from_millis(100), DEFAULT_PERIOD);
        Self {
            grace,
            period,
            eviction_period: period.min(Duration::from_millis(500)),
        }
    }

    /// The defaults, with the grace period from `KEDGE_NODE_MONITOR_GRACE_SECONDS`.
    pub fn from_env() -> Self {
        let grace = std::env::var(GRACE_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_GRACE);
        Self::with_grace(grace)
    }
}

/// What both loops read.
pub struct State {
    /// The API client.
    pub client: Client,
    /// All nodes.
    pub nodes: Store<Node>,
    /// Heartbeat Leases.
    pub leases: Store<Lease>,
    /// All pods.
    pub pods: Store<Pod>,
    /// Events as `node-controller`.
    pub recorder: Recorder,
    /// Events as `taint-eviction-controller`.
    pub eviction_recorder: Recorder,
    /// Timing.
    pub options: NodeLifecycleOptions,
}

/// A reflector cache of `api` and the future that keeps it.
pub fn store<K>(api: Api<K>) -> (Store<K>, impl Future<Output = ()> + Send)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let stream = reflector::reflector(
        writer,
        watcher::watcher(api, watcher::Config::default()).default_backoff(),
    );
    (reader, stream.for_each(|_| async {}))
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    run_with(ctx, NodeLifecycleOptions::from_env()).await
}

/// Run the controller with explicit timing.
pub async fn run_with(ctx: Arc<Context>, options: NodeLifecycleOptions) {
    let client = ctx.client.clone();
    let (leases, leases_cache) = store(Api::<Lease>::namespaced(
        ctx.watch_client.clone(),
        LEASE_NAMESPACE,
    ));
    let state = Arc::new(State {
        client,
        nodes: ctx.informers.get::<Node>().store(),
        leases,
        pods: ctx.informers.get::<Pod>().store(),
        recorder: ctx.recorder("node-controller"),
        eviction_recorder: ctx.recorder("taint-eviction-controller"),
        options,
    });
    tokio::join!(leases_cache, monitor(state.clone()), eviction::run(state),);
}

async fn monitor(state: Arc<State>) {
    let _ = state.nodes.wait_until_ready().await;
    let _ = state.leases.wait_until_ready().await;
    let _ = state.pods.wait_until_ready().await;
    // First sight of each node by this controller: a node is not judged
    // silent for longer than we have been watching it (as Kubernetes
    // counts from its own observation time, not the kubelet's clock).
    let mut first_seen: HashMap<String, Timestamp> = HashMap::new();
    let mut ticker = tokio::time::interval(state.options.period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let nodes = state.nodes.state();
        let now = Timestamp::now();
        first_seen.retain(|name, _| nodes.iter().any(|n| n.metadata.name.as_ref() == Some(name)));
        for node in nodes {
            let name = node.metadata.name.clone().unwrap_or_default();
            let seen = *first_seen.entry(name.clone()).or_insert(now);
            if let Err(e) = check_node(&state, &node, seen, now).await {
                tracing::debug!(node = %name, error = %e, "node health update failed");
            }
        }
    }
}

/// The latest sign of life: Lease renewTime or Ready lastHeartbeatTime.
fn last_heartbeat(node: &Node, lease: Option<&Lease>) -> Option<Timestamp> {
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let posted = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .map(|t| t.0);
    renew.max(posted)
}

async fn check_node(
    state: &State,
    node: &Node,
    first_seen: Timestamp,
    now: Timestamp,
) -> Result<(), kube::Error> {
    let name = node.metadata.name.clone().unwrap_or_default();
    let lease = state
        .leases
        .get(&ObjectRef::new(&name).within(LEASE_NAMESPACE));
    let last = last_heartbeat(node, lease.as_deref()).map_or(first_seen, |t| t.max(first_seen));
    let grace = SignedDuration::try_from(state.options.grace).unwrap_or(SignedDuration::MAX);
    let api: Api<Node> = Api::all(state.client.clone());
    let mut node = node.clone();
    if now.duration_since(last) > grace {
        if let Some(conditions) = unknown_conditions(&node, now) {
            let was_ready = taints::condition(&node, "Ready") == Some("True");
            let patch = json!({"status": {"conditions": conditions}});
            node = api
                .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            if was_ready {
                let reference = events::reference("v1", "Node", &node.metadata);
                let message = format!("Node {name} status is now: NodeNotReady");
                state
                    .recorder
                    .record(&reference, EventType::Normal, "NodeNotReady", &message)
                    .await;
            }
        }
    }
    if taints::reconcile(&node, now).is_some() {
        update_taints(&api, &name, now).await?;
    }
    if taints::condition(&node, "Ready") != Some("True") && node_reported(&node) {
        mark_pods_not_ready(state, &name).await;
    }
    Ok(())
}

/// Whether the node has a Ready condition at all: a node that never
/// reported has no pods running that could have been Ready.
fn node_reported(node: &Node) -> bool {
    taints::condition(node, "Ready").is_some()
}

/// The node's conditions with those a silent kubelet vouched for set to
/// Unknown; `None` if they already are.
fn unknown_conditions(node: &Node, now: Timestamp) -> Option<Vec<NodeCondition>> {
    let mut conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.clone())
        .unwrap_or_default();
    let mut changed = false;
    for type_ in CONDITIONS {
        match conditions.iter_mut().find(|c| c.type_ == type_) {
            Some(c) if c.status == "Unknown" => {}
            Some(c) => {
                c.status = "Unknown".into();
                c.reason = Some(REASON_UNKNOWN.into());
                c.message = Some(MESSAGE_UNKNOWN.into());
                c.last_transition_time = Some(Time(now));
                changed = true;
            }
            None => {
                conditions.push(NodeCondition {
                    type_: type_.into(),
                    status: "Unknown".into(),
                    reason: Some(REASON_NEVER.into()),
                    message: Some(MESSAGE_NEVER.into()),
                    last_heartbeat_time: Some(Time(now)),
                    last_transition_time: Some(Time(now)),
                });
                changed = true;
            }
        }
    }
    changed.then_some(conditions)
}

/// Write the taints a fresh copy of the node calls for; PUT with its
/// resourceVersion, so a concurrent change makes this pass fail and the
/// next one recompute.
async fn update_taints(api: &Api<Node>, name: &str, now: Timestamp) -> Result<(), kube::Error> {
    let mut fresh = api.get(name).await?;
    let Some(wanted) = taints::reconcile(&fresh, now) else {
        return Ok(());
    };
    fresh.spec.get_or_insert_with(Default::default).taints = (!wanted.is_empty()).then_some(wanted);
    api.replace(name, &PostParams::default(), &fresh).await?;
    Ok(())
}

/// Set Ready False on the pods of a node that is not Ready (Kubernetes'
/// `MarkPodsNotReady`), so Services stop sending them traffic.
async fn mark_pods_not_ready(state: &State, node: &str) {
    let pods = state.pods.state_filter(|p| {
        p.spec.as_ref().and_then(|s| s.node_name.as_deref()) == Some(node)
            && p.metadata.deletion_timestamp.is_none()
    });
    for pod in pods {
        let Some(mut conditions) = pod.status.as_ref().and_then(|s| s.conditions.clone()) else {
            continue;
        };
        let Some(ready) = conditions
            .iter_mut()
            .find(|c| c.type_ == "Ready" && c.status == "True")
        else {
            continue;
        };
        ready.status = "False".into();
        ready.last_transition_time = Some(Time(Timestamp::now()));
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        let api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
        let patch = json!({"status": {"conditions": conditions}});
        if let Err(e) = api
            .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            tracing::debug!(pod = %name, error = %e, "marking a pod not ready failed");
        }
    }
}
