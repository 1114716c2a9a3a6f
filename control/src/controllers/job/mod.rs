//! The Job controller: runs pods from a Job's template until enough of them
//! succeed, retrying failures up to `backoffLimit`, honouring
//! `parallelism`, `activeDeadlineSeconds`, `suspend` and the Indexed
//! completion mode, and writing the status `kubectl get jobs` shows
//! (Kubernetes' `pkg/controller/job`).
//!
//! Finished pods are counted with the `batch.kubernetes.io/job-tracking`
//! finalizer, as Kubernetes does: a pod keeps the finalizer until the Job's
//! status has counted it, so a pod deleted right after it finished is never
//! lost. A finished pod's uid goes into `status.uncountedTerminatedPods`
//! first, then the finalizer comes off, then the uid moves to the counters;
//! every status write is conditional on the Job's resourceVersion.
//!
//! Each sync reads the Job fresh from the API and its pods from the shared
//! pod informer's cache, which may lag the sync's own writes. So, as
//! Kubernetes does, the controller keeps expectations: the creates and
//! deletes it issued (pods are created and deleted only once those are
//! seen) and the finalizer removals it issued (a pod the cache still shows
//! with the finalizer is not counted a second time).

pub mod expectations;
pub mod indexes;
mod sync;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::Client;
use parking_lot::Mutex;

use self::expectations::FinalizerExpectations;
use super::events::Recorder;
use super::replicaset::backoff::Backoff;
use super::replicaset::cache::key_of;
use super::replicaset::claim::is_not_found;
use super::replicaset::expectations::{self as rs_expectations, Expectations};
use super::replicaset::pods::controller_of;
use super::Context;

/// The finalizer that holds a finished pod until its Job counted it.
pub const TRACKING_FINALIZER: &str = "batch.kubernetes.io/job-tracking";

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API: {0}")]
    Api(#[from] kube::Error),
}

/// What the reconcile function works with.
pub struct State {
    /// The API client.
    pub client: Client,
    /// Events as `job-controller`.
    pub recorder: Recorder,
    /// All pods, from the shared informer.
    pub pods: Store<Pod>,
    /// Pod creates and deletes not yet observed, by Job key.
    pub expectations: Arc<Expectations>,
    /// Tracking-finalizer removals not yet observed, by Job key.
    pub finalizers: Arc<FinalizerExpectations>,
    /// When each Job (by uid) last counted a failed pod: the start of its
    /// pod-creation backoff.
    last_failure: Mutex<HashMap<String, Timestamp>>,
    backoff: Backoff,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let informer = ctx.informers.get::<Pod>();
    let expectations = Arc::new(Expectations::default());
    let finalizers = Arc::new(FinalizerExpectations::default());
    let exp = expectations.clone();
    informer.observe(move |ev, before| rs_expectations::observe_pod_event(&exp, "Job", before, ev));
    // Jobs come from the shared informer too, whose observer sees a Job's
    // deletion (a deleted Job gets no reconcile of its own).
    let job_informer = ctx.informers.get::<Job>();
    let (exp, fin) = (expectations.clone(), finalizers.clone());
    job_informer.observe(move |ev, _| {
        if let watcher::Event::Delete(job) = ev {
            let key = key_of(&job.metadata);
            exp.forget(&key);
            fin.forget(&key);
        }
    });
    let jobs = job_informer.store();
    let controller = Controller::for_shared_stream(job_informer.subscribe(), jobs.clone())
        .owns_shared_stream(informer.subscribe());
    let state = Arc::new(State {
        client: client.clone(),
        recorder: ctx.recorder("job-controller"),
        pods: informer.store(),
        expectations,
        finalizers: finalizers.clone(),
        last_failure: Mutex::new(HashMap::new()),
        backoff: Backoff::default(),
    });
    let work = controller
        .run(reconcile, error_policy, state)
        .for_each(|_| async {});
    let settle = informer.subscribe_events().for_each(move |ev| {
        if let Ok(ev) = ev {
            finalizers.observe_cached(&ev);
        }
        async {}
    });
    tokio::join!(
        work,
        settle,
        release_orphans(client, informer.subscribe(), jobs)
    );
}

async fn reconcile(job: Arc<Job>, state: Arc<State>) -> Result<Action, Error> {
    let key = key_of(&job.metadata);
    let action = sync::sync(&job, &state).await?;
    state.backoff.forget(&key);
    Ok(action)
}

fn error_policy(job: Arc<Job>, err: &Error, state: Arc<State>) -> Action {
    state.backoff.failed("job", &key_of(&job.metadata), err)
}

/// Whether a pod still carries the tracking finalizer.
pub fn has_tracking_finalizer(pod: &Pod) -> bool {
    pod.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == TRACKING_FINALIZER))
}

/// Take the tracking finalizer off a pod; a pod already gone is fine.
pub async fn remove_tracking_finalizer(client: &Client, pod: &Pod) -> Result<(), kube::Error> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let name = pod.metadata.name.as_deref().unwrap_or("");
    let api: Api<Pod> = Api::namespaced(client.clone(), ns);
    let rest: Vec<String> = pod
        .metadata
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != TRACKING_FINALIZER)
        .cloned()
        .collect();
    let patch = serde_json::json!({"metadata": {"finalizers": rest}});
    match api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Pods whose Job is gone never get a sync of their own: release their
/// finalizer once they finish or are deleted, so they can go away (the
/// garbage collector deletes a deleted Job's pods).
async fn release_orphans(
    client: Client,
    pods: impl futures::Stream<Item = Arc<Pod>> + Send,
    jobs: Store<Job>,
) {
    if jobs.wait_until_ready().await.is_err() {
        return;
    }
    let mut pods = std::pin::pin!(pods);
    while let Some(pod) = pods.next().await {
        if !has_tracking_finalizer(&pod) {
            continue;
        }
        let Some(owner) = controller_of(&pod.metadata).filter(|o| o.kind == "Job") else {
            continue;
        };
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let exists = jobs
            .get(&ObjectRef::new(&owner.name).within(&ns))
            .is_some_and(|j| j.metadata.uid.as_deref() == Some(owner.uid.as_str()));
        if exists {
            continue;
        }
        // The store may lag a Job that was just created: ask the API.
        let api: Api<Job> = Api::namespaced(client.clone(), &ns);
        if let Ok(Some(j)) = api.get_opt(&owner.name).await {
            if j.metadata.uid.as_deref() == Some(owner.uid.as_str()) {
                continue;
            }
        }
        if let Err(e) = remove_tracking_finalizer(&client, &pod).await {
            tracing::debug!(error = %e, "releasing an orphan job pod failed");
        }
    }
}

/// Wait at least this long before looking again at a Job whose clock
/// (deadline, backoff) runs.
const MIN_REQUEUE: Duration = Duration::from_millis(100);
