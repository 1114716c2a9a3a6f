//! The scheduler: places unscheduled pods on nodes (filter, then score) and
//! binds them through the `binding` subresource.
//!
//! * [`types`]: the scheduling view of pods and nodes, computed once per
//!   watch event;
//! * [`cache`]: nodes and the pods counted on them, including pods bound but
//!   not yet seen bound ("assumed");
//! * [`queue`]: active, backoff and unschedulable pods;
//! * [`framework`], [`plugins`], [`registry`]: the plugin interfaces, the
//!   in-tree plugins and the name → factory registry;
//! * [`schedule_one`]: one scheduling cycle and the FailedScheduling message;
//! * [`eventhandlers`]: the watches that feed the cache and the queue.
//!
//! Like kube-scheduler, it schedules one pod at a time against its cache and
//! binds in the background, so the next pod's cycle does not wait on the API.

pub mod cache;
pub mod eventhandlers;
pub mod framework;
pub mod plugins;
pub mod queue;
pub mod registry;
pub mod schedule_one;
pub mod types;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, PersistentVolume, PersistentVolumeClaim, Pod};
use k8s_openapi::api::storage::v1::StorageClass;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Notify;

use crate::controllers::events::{self, EventType, Recorder};
use crate::controllers::informers::{Informer, Informers};
use cache::Cache;
use framework::Framework;
use plugins::volume_binding::VolumeBinding;
use queue::{QueuedPod, SchedulingQueue};
use registry::{Profile, Registry};
use schedule_one::ScheduleError;
use types::PodInfo;

/// The component name on events.
pub const COMPONENT: &str = "default-scheduler";

/// How often pods whose backoff ended move back to active.
const BACKOFF_FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// How often pods parked as unschedulable for too long are retried.
const UNSCHEDULABLE_FLUSH_INTERVAL: Duration = Duration::from_secs(30);

/// The cache and the queue, changed together under one lock.
#[derive(Default)]
pub struct State {
    /// Nodes and counted pods.
    pub cache: Cache,
    /// Pods waiting for a node.
    pub queue: SchedulingQueue,
}

/// What the scheduler's tasks share.
pub struct Scheduler {
    client: Client,
    recorder: Recorder,
    framework: Framework,
    /// Reads the claims of pods (also a filter in `framework`).
    volumes: VolumeBinding,
    profile: Profile,
    state: Mutex<State>,
    /// Wakes the scheduling loop when a pod becomes active.
    wake: Notify,
    /// Counts the watches that have listed everything once.
    synced: tokio::sync::watch::Sender<u8>,
}

/// Run the scheduler until the future is dropped.
pub async fn run(client: Client) {
    let informers = Arc::new(Informers::new(client.clone()));
    run_with_informers(client, informers).await
}

/// Run the scheduler reading pods and nodes through `informers`, the
/// process's shared informers (as kube-scheduler and the controllers each
/// share theirs), until the future is dropped.
pub async fn run_with_informers(client: Client, informers: Arc<Informers>) {
    let mut framework = match Registry::in_tree().framework(&Profile::default()) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "scheduler profile is invalid");
            return;
        }
    };
    let claims = informers.get::<PersistentVolumeClaim>();
    let volumes = VolumeBinding {
        claims: claims.store(),
        volumes: informers.get::<PersistentVolume>().store(),
        classes: informers.get::<StorageClass>().store(),
    };
    // kube-scheduler runs it right after NodeAffinity; it needs the
    // caches, so it is added here rather than by the registry.
    framework.filters.push(Box::new(volumes.clone()));
    let sched = Arc::new(Scheduler {
        recorder: Recorder::new(client.clone(), COMPONENT, None),
        client,
        framework,
        volumes,
        profile: Profile::default(),
        state: Mutex::new(State::default()),
        wake: Notify::new(),
        synced: tokio::sync::watch::channel(0).0,
    });
    let _ = tokio::join!(
        eventhandlers::watch_nodes(sched.clone(), informers.get::<Node>()),
        eventhandlers::watch_pods(sched.clone(), informers.get::<Pod>()),
        sched.clone().flush_loop(),
        sched.clone().schedule_loop(),
        sched.clone().claims_changed(claims),
    );
}

impl Scheduler {
    /// Whether this scheduler is responsible for a pod's `schedulerName`.
    fn responsible_for(&self, pod: &Pod) -> bool {
        let name = pod
            .spec
            .as_ref()
            .and_then(|s| s.scheduler_name.as_deref())
            .unwrap_or("");
        name.is_empty() || name == self.profile.scheduler_name
    }

    /// Periodic queue maintenance: finished backoffs, long-parked pods.
    async fn flush_loop(self: Arc<Self>) {
        let mut backoff = tokio::time::interval(BACKOFF_FLUSH_INTERVAL);
        let mut leftover = tokio::time::interval(UNSCHEDULABLE_FLUSH_INTERVAL);
        loop {
            let moved = tokio::select! {
                _ = backoff.tick() => self.state.lock().queue.flush_backoff_completed(Instant::now()),
                _ = leftover.tick() => self.state.lock().queue.flush_unschedulable_leftover(Instant::now()),
            };
            if moved {
                self.wake.notify_one();
            }
        }
    }

    async fn next_pod(&self) -> QueuedPod {
        loop {
            if let Some(p) = self.state.lock().queue.pop() {
                return p;
            }
            // A permit stored by notify_one while we were not waiting makes
            // this return at once, so no wakeup is lost.
            self.wake.notified().await;
        }
    }

    async fn schedule_loop(self: Arc<Self>) {
        // Scheduling against a half-listed cache would overcommit nodes.
        let mut synced = self.synced.subscribe();
        if synced.wait_for(|n| *n >= 2).await.is_err() {
            return;
        }
        loop {
            let qp = self.next_pod().await;
            self.schedule_one(qp);
            // One cycle is pure computation; let the watches and bindings in.
            tokio::task::yield_now().await;
        }
    }

    fn schedule_one(self: &Arc<Self>, qp: QueuedPod) {
        let pod = qp.info.clone();
        let mut st = self.state.lock();
        let State { cache, queue } = &mut *st;
        match schedule_one::schedule_pod(&self.framework, cache, &pod) {
            Ok(node) => {
                cache.assume(pod.clone(), &node);
                queue.done(&pod.uid);
                drop(st);
                tracing::debug!(pod = %pod.key(), %node, "binding");
                tokio::spawn(self.clone().bind(pod, node, qp.attempts));
            }
            Err(err) => {
                queue.add_unschedulable(&pod.uid, qp.cycle, Instant::now());
                drop(st);
                tracing::debug!(pod = %pod.key(), message = %err.message(), "unschedulable");
                tokio::spawn(self.clone().report_failure(pod, err));
            }
        }
    }

    /// A claim bound or created may let parked pods through.
    async fn claims_changed(self: Arc<Self>, claims: Arc<Informer<PersistentVolumeClaim>>) {
        let mut changes = claims.subscribe();
        while changes.next().await.is_some() {
            self.state
                .lock()
                .queue
                .move_all_to_active_or_backoff(Instant::now());
            self.wake.notify_one();
        }
    }

    /// Name the chosen node on the pod's WaitForFirstConsumer claims, so
    /// the provisioner makes their volumes there.
    async fn select_node_for_claims(&self, pod: &PodInfo, node: &str) -> Result<(), kube::Error> {
        for pvc in self.volumes.selected_nodes(&pod.pod) {
            let api: Api<PersistentVolumeClaim> =
                Api::namespaced(self.client.clone(), &pod.namespace);
            let patch = json!({"metadata": {"annotations": {
                crate::controllers::volume::SELECTED_NODE: node,
            }}});
            api.patch(
                pvc.metadata.name.as_deref().unwrap_or_default(),
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await?;
        }
        Ok(())
    }

    async fn bind(self: Arc<Self>, pod: Arc<PodInfo>, node: String, attempts: u32) {
        if let Err(e) = self.select_node_for_claims(&pod, &node).await {
            tracing::warn!(pod = %pod.key(), %node, error = %e, "naming the node on its claims failed");
        }
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let binding = json!({
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": pod.name, "namespace": pod.namespace, "uid": pod.uid},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node},
        });
        let result = api
            .create_subresource::<_, serde_json::Value>(
                "binding",
                &pod.name,
                &PostParams::default(),
                &binding,
            )
            .await;
        let reference = events::reference("v1", "Pod", &pod.pod.metadata);
        match result {
            Ok(_) => {
                let message = format!("Successfully assigned {} to {node}", pod.key());
                self.recorder
                    .record(&reference, EventType::Normal, "Scheduled", &message)
                    .await;
            }
            Err(e) => {
                let gone_or_bound =
                    matches!(&e, kube::Error::Api(s) if s.code == 404 || s.code == 409);
                {
                    let mut st = self.state.lock();
                    st.cache.forget(&pod.uid);
                    // The resources it held are free again.
                    st.queue.move_all_to_active_or_backoff(Instant::now());
                    if !gone_or_bound {
                        st.queue
                            .add_backoff(pod.clone(), attempts + 1, Instant::now());
                    }
                }
                self.wake.notify_one();
                if gone_or_bound {
                    tracing::debug!(pod = %pod.key(), error = %e, "binding not needed");
                    return;
                }
                tracing::warn!(pod = %pod.key(), %node, error = %e, "binding failed");
                let message = format!("Binding rejected: {e}");
                self.recorder
                    .record(&reference, EventType::Warning, "FailedScheduling", &message)
                    .await;
            }
        }
    }

    /// Tell the user why the pod waits: the PodScheduled condition (only
    /// when it changes) and a FailedScheduling event.
    async fn report_failure(self: Arc<Self>, pod: Arc<PodInfo>, err: ScheduleError) {
        let message = err.message();
        let reason = err.reason();
        let reference = events::reference("v1", "Pod", &pod.pod.metadata);
        self.recorder
            .record(&reference, EventType::Warning, "FailedScheduling", &message)
            .await;
        let current = pod
            .pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .and_then(|c| c.iter().find(|c| c.type_ == "PodScheduled"));
        let unchanged = current.is_some_and(|c| {
            c.status == "False"
                && c.reason.as_deref() == Some(reason)
                && c.message.as_deref() == Some(message.as_str())
        });
        if unchanged {
            return;
        }
        let transition = match current {
            Some(c) if c.status == "False" => c.last_transition_time.clone(),
            _ => None,
        }
        .map(|t| json!(t))
        .unwrap_or_else(|| {
            json!(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                jiff::Timestamp::now()
            ))
        });
        let patch = json!({"status": {"conditions": [{
            "type": "PodScheduled",
            "status": "False",
            "reason": reason,
            "message": message,
            "lastProbeTime": null,
            "lastTransitionTime": transition,
        }]}});
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        if let Err(e) = api
            .patch_status(
                &pod.name,
                &PatchParams::default(),
                &Patch::Strategic(&patch),
            )
            .await
        {
            tracing::debug!(pod = %pod.key(), error = %e, "updating PodScheduled failed");
        }
    }
}
