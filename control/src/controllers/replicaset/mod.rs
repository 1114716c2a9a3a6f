//! The ReplicaSet controller: keeps `spec.replicas` pods of the template
//! running, owns them by controller ownerReference (adopting orphans its
//! selector matches, releasing pods that stopped matching) and reports
//! their counts in status (Kubernetes' `pkg/controller/replicaset`).
//! ReplicationControllers, the ReplicaSet's predecessor, are kept by the
//! same code as ReplicaSets converted from them (`replication`).
//!
//! The work loop is `kube::runtime::Controller` over ReplicaSets, triggered
//! by pod events too. Pods come from the process's shared pod informer
//! (`informers`): reconcile reads its cache, its observer settles the
//! expectations (creates and deletes issued but not yet seen), and its
//! subscription wakes the owners only once the cache has the change.

pub mod backoff;
pub mod cache;
pub mod claim;
pub mod expectations;
pub mod manage;
pub mod pods;
pub mod replication;
pub mod status;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kedge_config::selector::LabelSelector;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::Controller;
use kube::Client;

use self::backoff::Backoff;
use self::cache::key_of;
use self::claim::{owners_to_sync, Claimer};
use self::expectations::Expectations;
use super::events::Recorder;
use super::Context;

/// How soon to look again when expectations wait on pod events that are
/// already on their way.
const EXPECTATIONS_RECHECK: Duration = Duration::from_millis(200);

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API: {0}")]
    Api(#[source] kube::Error),
    /// Creating or deleting pods failed.
    #[error("managing replicas: {0}")]
    Manage(#[source] kube::Error),
}

/// The workload a controller instance keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Workload {
    /// `apps/v1` ReplicaSets.
    ReplicaSet,
    /// `v1` ReplicationControllers, synced as ReplicaSets.
    ReplicationController,
}

impl Workload {
    /// The apiVersion of its objects (and of its pods' controller refs).
    pub fn api_version(self) -> &'static str {
        match self {
            Self::ReplicaSet => "apps/v1",
            Self::ReplicationController => "v1",
        }
    }

    /// Its kind.
    pub fn kind(self) -> &'static str {
        match self {
            Self::ReplicaSet => "ReplicaSet",
            Self::ReplicationController => "ReplicationController",
        }
    }
}

/// What the reconcile function works with.
pub struct State {
    /// Which workload.
    pub workload: Workload,
    /// The API client.
    pub client: Client,
    /// Events as `replicaset-controller` (or `replication-controller`).
    pub recorder: Recorder,
    /// All pods, from the shared informer.
    pub pods: Store<Pod>,
    /// All ReplicaSets, from the controller's own watch (none for
    /// ReplicationControllers, which have no siblings).
    pub rss: Option<Store<ReplicaSet>>,
    /// Creates and deletes not yet observed, by ReplicaSet key.
    pub expectations: Arc<Expectations>,
    backoff: Backoff,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let informer = ctx.informers.get::<Pod>();
    let expectations = Arc::new(Expectations::default());
    let exp = expectations.clone();
    informer
        .observe(move |ev, before| expectations::observe_pod_event(&exp, "ReplicaSet", before, ev));

    let controller = Controller::new(
        Api::<ReplicaSet>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    );
    let rss = controller.store();
    let for_mapper = rss.clone();
    let controller = controller.watches_shared_stream(informer.subscribe(), move |pod| {
        owners_of(&for_mapper, &pod)
    });
    let state = Arc::new(State {
        workload: Workload::ReplicaSet,
        client,
        recorder: ctx.recorder("replicaset-controller"),
        pods: informer.store(),
        rss: Some(rss),
        expectations,
        backoff: Backoff::default(),
    });
    controller
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
}

/// ReplicaSets to sync for a pod event: its controller, or for an orphan
/// every ReplicaSet whose selector matches it (one may adopt it).
fn owners_of(rss: &Store<ReplicaSet>, pod: &Pod) -> Vec<ObjectRef<ReplicaSet>> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    owners_to_sync(rss, &pod.metadata, "apps/v1", "ReplicaSet", |rs| {
        selector_of(rs).is_some_and(|s| !s.is_empty() && s.matches(&labels))
    })
}

fn selector_of(rs: &ReplicaSet) -> Option<LabelSelector> {
    let sel = rs.spec.as_ref()?.selector.clone();
    LabelSelector::from_label_selector(&sel).ok()
}

async fn reconcile(rs: Arc<ReplicaSet>, state: Arc<State>) -> Result<Action, Error> {
    let key = key_of(&rs.metadata);
    let action = sync(&rs, &state, &key).await?;
    state.backoff.forget(&key);
    Ok(action)
}

fn error_policy(rs: Arc<ReplicaSet>, err: &Error, state: Arc<State>) -> Action {
    state
        .backoff
        .failed(state.workload.kind(), &key_of(&rs.metadata), err)
}

/// One sync: claim pods, create or delete towards the desired count unless
/// earlier work is still unobserved, then write status.
async fn sync(rs: &ReplicaSet, state: &State, key: &str) -> Result<Action, Error> {
    if state.pods.wait_until_ready().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let Some(selector) = selector_of(rs) else {
        // An invalid selector cannot be fixed by retrying.
        tracing::warn!(rs = %key, "invalid selector");
        return Ok(Action::await_change());
    };
    let needs_sync = state.expectations.satisfied(key, |pod_key| {
        let (pns, name) = pod_key.split_once('/').unwrap_or(("", pod_key));
        state
            .pods
            .get(&ObjectRef::new(name).within(pns))
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    });

    let pod_api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let candidates = state.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str()) && pods::is_active(p)
    });
    let owner = manage::controller_ref(state.workload, rs);
    let claimer = Claimer {
        owner: &owner,
        namespace: &ns,
        deleting: rs.metadata.deletion_timestamp.is_some(),
    };
    let uid = rs.metadata.uid.clone();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let mut owned = claimer
        .claim(
            &pod_api,
            candidates,
            |p| {
                !selector.is_empty()
                    && selector.matches(&p.metadata.labels.clone().unwrap_or_default())
            },
            || async {
                let fresh = match state.workload {
                    Workload::ReplicaSet => {
                        Api::<ReplicaSet>::namespaced(state.client.clone(), &ns)
                            .get(&name)
                            .await?
                            .metadata
                    }
                    Workload::ReplicationController => {
                        Api::<ReplicationController>::namespaced(state.client.clone(), &ns)
                            .get(&name)
                            .await?
                            .metadata
                    }
                };
                Ok(fresh.uid == uid && fresh.deletion_timestamp.is_none())
            },
        )
        .await
        .map_err(Error::Api)?;
    owned.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));

    let mut manage_error = None;
    if needs_sync && rs.metadata.deletion_timestamp.is_none() {
        manage_error = manage::manage(state, key, rs, &owned).await.err();
    }
    let message = manage_error.as_ref().map(|e| e.to_string());
    let new_status = status::calculate(rs, &owned, message.as_deref());
    let updated = status::update(state, rs, new_status)
        .await
        .map_err(Error::Api)?;
    if let Some(e) = manage_error {
        return Err(Error::Manage(e));
    }
    let spec = updated.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let st = updated.status.clone().unwrap_or_default();
    if min_ready > 0
        && st.ready_replicas.unwrap_or(0) == desired
        && st.available_replicas.unwrap_or(0) != desired
    {
        // Pods turn available by the clock alone; no event will say so.
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    if !needs_sync {
        return Ok(Action::requeue(EXPECTATIONS_RECHECK));
    }
    Ok(Action::await_change())
}
