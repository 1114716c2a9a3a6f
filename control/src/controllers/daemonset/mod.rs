//! The DaemonSet controller (Kubernetes' `pkg/controller/daemon`): one pod
//! per node that the template's nodeSelector and required node affinity
//! select and whose taints the pod tolerates; pods on other nodes are
//! deleted; a changed template rolls out node by node within
//! maxUnavailable; status counts the nodes.
//!
//! The work loop is `kube::runtime::Controller` over DaemonSets, triggered
//! by their pods and by every node change (a node's labels or taints may
//! change where any DaemonSet runs). Pods and nodes come from the
//! process's shared informers, whose subscriptions wake a DaemonSet only
//! once the cache its sync reads has the change (a sync that still saw a
//! node's old labels would find nothing to do and wait for a change that
//! has already happened); the pod informer's observer settles
//! expectations, as in the ReplicaSet controller.

pub mod util;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, DaemonSetStatus};
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::Controller;
use kube::Client;

use super::events::{self, EventType, Recorder};
use super::history;
use super::replicaset::backoff::Backoff;
use super::replicaset::cache::key_of;
use super::replicaset::expectations::{self, Expectations};
use super::replicaset::pods;
use super::{omit_empty, Context};

/// How soon to look again while creates or deletes are unobserved.
const EXPECTATIONS_RECHECK: Duration = Duration::from_millis(200);

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API: {0}")]
    Api(#[source] kube::Error),
}

/// What the reconcile function works with.
pub struct State {
    client: Client,
    recorder: Recorder,
    pods: Store<Pod>,
    nodes: Store<Node>,
    revisions: Store<ControllerRevision>,
    expectations: Arc<Expectations>,
    backoff: Backoff,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let pod_informer = ctx.informers.get::<Pod>();
    let node_informer = ctx.informers.get::<Node>();
    let expectations = Arc::new(Expectations::default());
    let exp = expectations.clone();
    pod_informer
        .observe(move |ev, before| expectations::observe_pod_event(&exp, "DaemonSet", before, ev));

    let controller = Controller::new(
        Api::<DaemonSet>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    );
    let dss = controller.store();
    let controller = controller
        .watches_shared_stream(pod_informer.subscribe(), |pod| {
            let owner = pods::controller_of(&pod.metadata)
                .filter(|r| r.kind == "DaemonSet" && r.api_version.starts_with("apps/"))?;
            let ns = pod.metadata.namespace.clone().unwrap_or_default();
            Some(ObjectRef::<DaemonSet>::new(&owner.name).within(&ns))
        })
        .watches_shared_stream(node_informer.subscribe(), move |_node| {
            dss.state()
                .iter()
                .map(|ds| ObjectRef::from_obj(ds.as_ref()))
                .collect::<Vec<_>>()
        });
    let state = Arc::new(State {
        client,
        recorder: ctx.recorder("daemonset-controller"),
        pods: pod_informer.store(),
        nodes: node_informer.store(),
        revisions: ctx.informers.get::<ControllerRevision>().store(),
        expectations,
        backoff: Backoff::default(),
    });
    controller
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
}

async fn reconcile(ds: Arc<DaemonSet>, state: Arc<State>) -> Result<Action, Error> {
    let key = key_of(&ds.metadata);
    let action = sync(&ds, &state, &key).await?;
    state.backoff.forget(&key);
    Ok(action)
}

fn error_policy(ds: Arc<DaemonSet>, err: &Error, state: Arc<State>) -> Action {
    state
        .backoff
        .failed("daemonset", &key_of(&ds.metadata), err)
}

/// What one sync decided, and the counts for status.
#[derive(Default)]
struct Plan {
    create: Vec<String>,
    delete: Vec<Arc<Pod>>,
    status: DaemonSetStatus,
    /// Some kept pod is ready but not yet available.
    waiting_available: bool,
}

fn plan(ds: &DaemonSet, nodes: &[Arc<Node>], owned: Vec<Arc<Pod>>, hash: &str) -> Plan {
    let min_ready = ds
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let now = Timestamp::now();
    let mut by_node: HashMap<String, Vec<Arc<Pod>>> = HashMap::new();
    let mut p = Plan::default();
    for pod in owned {
        if pods::is_active(&pod) || pod.metadata.deletion_timestamp.is_some() {
            let node = util::node_of(&pod).unwrap_or_default();
            by_node.entry(node).or_default().push(pod);
        } else {
            // A failed or succeeded daemon pod is replaced.
            p.delete.push(pod);
        }
    }
    let (mut desired, mut current, mut mis, mut ready, mut available, mut updated) =
        (0, 0, 0, 0, 0, 0);
    let mut old_available = Vec::new();
    let mut unavailable = 0;
    for node in nodes {
        let name = node.metadata.name.clone().unwrap_or_default();
        let mut here = by_node.remove(&name).unwrap_or_default();
        // Pods already going away count for nothing but block a new one.
        let terminating = here.iter().any(|p| p.metadata.deletion_timestamp.is_some());
        here.retain(|p| p.metadata.deletion_timestamp.is_none());
        if !util::should_run(ds, node) {
            if !here.is_empty() {
                mis += 1;
            }
            p.delete.extend(here);
            continue;
        }
        desired += 1;
        if here.is_empty() {
            unavailable += 1;
            if !terminating {
                p.create.push(name);
            }
            continue;
        }
        current += 1;
        // Keep the oldest pod; extra ones go.
        here.sort_by(|a, b| {
            let t = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
            t(a).cmp(&t(b)).then(a.metadata.name.cmp(&b.metadata.name))
        });
        let kept = here.remove(0);
        p.delete.extend(here);
        let is_new = kept
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(util::REVISION_LABEL))
            .map(String::as_str)
            == Some(hash);
        if is_new {
            updated += 1;
        }
        if pods::is_ready(&kept) {
            ready += 1;
        }
        let avail = pods::is_available(&kept, min_ready, now);
        if avail {
            available += 1;
        } else {
            unavailable += 1;
            p.waiting_available |= pods::is_ready(&kept);
        }
        if !is_new && !util::on_delete(ds) {
            if avail {
                old_available.push(kept);
            } else {
                // An old pod that is not available costs nothing to replace.
                p.delete.push(kept);
            }
        }
    }
    // Pods pinned to nodes that no longer exist.
    for (_, rest) in by_node {
        p.delete.extend(
            rest.into_iter()
                .filter(|p| p.metadata.deletion_timestamp.is_none()),
        );
    }
    let budget = util::max_unavailable(ds, desired);
    for pod in old_available {
        if unavailable >= budget {
            break;
        }
        unavailable += 1;
        p.delete.push(pod);
    }
    p.status = DaemonSetStatus {
        desired_number_scheduled: desired,
        current_number_scheduled: current,
        number_misscheduled: mis,
        number_ready: ready,
        number_available: omit_empty(available),
        number_unavailable: omit_empty(desired - available),
        updated_number_scheduled: omit_empty(updated),
        observed_generation: ds.metadata.generation,
        ..ds.status.clone().unwrap_or_default()
    };
    p
}

async fn sync(ds: &DaemonSet, state: &State, key: &str) -> Result<Action, Error> {
    if state.pods.wait_until_ready().await.is_err() || state.nodes.wait_until_ready().await.is_err()
    {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let uid = ds.metadata.uid.clone().unwrap_or_default();
    let needs_sync = state.expectations.satisfied(key, |pod_key| {
        let (pns, name) = pod_key.split_once('/').unwrap_or(("", pod_key));
        state
            .pods
            .get(&ObjectRef::new(name).within(pns))
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    });
    let owned = state.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str())
            && pods::controller_of(&p.metadata).is_some_and(|r| r.uid == uid)
    });
    let hash = util::template_hash(ds);
    if ds.metadata.deletion_timestamp.is_none() {
        record_history(state, ds, &owned, &hash)
            .await
            .map_err(Error::Api)?;
    }
    let plan = plan(ds, &state.nodes.state(), owned, &hash);
    let mut first_error = None;
    if needs_sync && ds.metadata.deletion_timestamp.is_none() {
        first_error = manage(state, key, ds, &plan, &hash).await.err();
    }
    let ds_api: Api<DaemonSet> = Api::namespaced(state.client.clone(), &ns);
    update_status(&ds_api, ds, plan.status.clone())
        .await
        .map_err(Error::Api)?;
    if let Some(e) = first_error {
        return Err(Error::Api(e));
    }
    if !needs_sync {
        return Ok(Action::requeue(EXPECTATIONS_RECHECK));
    }
    if plan.waiting_available {
        // Pods turn available by the clock alone; no event will say so.
        let secs = ds
            .spec
            .as_ref()
            .and_then(|s| s.min_ready_seconds)
            .unwrap_or(0);
        return Ok(Action::requeue(Duration::from_secs(secs.max(1) as u64)));
    }
    Ok(Action::await_change())
}

/// Keep the DaemonSet's ControllerRevisions: one for its template now,
/// the ones its pods were made from, and `revisionHistoryLimit` others.
async fn record_history(
    state: &State,
    ds: &DaemonSet,
    owned: &[Arc<Pod>],
    hash: &str,
) -> Result<i64, kube::Error> {
    state.revisions.wait_until_ready().await.ok();
    let spec = ds.spec.as_ref();
    let owner = history::Owner::of(
        ds,
        &ds.metadata,
        util::controller_ref(ds),
        spec.map(|s| &s.template),
        format!("{}-{hash}", ds.metadata.name.as_deref().unwrap_or("")),
        hash.to_string(),
        spec.and_then(|s| s.revision_history_limit),
    );
    let in_use = history::hashes_in_use(owned);
    history::sync(&state.client, &state.revisions, &owner, &in_use).await
}

/// Issue the plan's deletes, then its creates, under expectations.
async fn manage(
    state: &State,
    key: &str,
    ds: &DaemonSet,
    plan: &Plan,
    hash: &str,
) -> Result<(), kube::Error> {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let reference = events::reference("apps/v1", "DaemonSet", &ds.metadata);
    let mut first_error = None;
    if !plan.delete.is_empty() {
        state
            .expectations
            .expect_deletions(key, plan.delete.iter().map(|p| pods::key(p)));
    }
    for pod in &plan.delete {
        let name = pod.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {
                let msg = format!("Deleted pod: {name}");
                state
                    .recorder
                    .record(&reference, EventType::Normal, "SuccessfulDelete", &msg)
                    .await;
            }
            Err(e) => {
                state.expectations.deletion_observed(key, &pods::key(pod));
                if !matches!(&e, kube::Error::Api(s) if s.code == 404) {
                    first_error.get_or_insert(e);
                }
            }
        }
    }
    if !plan.create.is_empty() {
        state.expectations.expect_creations(key, plan.create.len());
    }
    for node in &plan.create {
        let pod = util::new_pod(ds, node, hash);
        match api.create(&PostParams::default(), &pod).await {
            Ok(created) => {
                let name = created.metadata.name.unwrap_or_default();
                let msg = format!("Created pod: {name}");
                state
                    .recorder
                    .record(&reference, EventType::Normal, "SuccessfulCreate", &msg)
                    .await;
            }
            Err(e) => {
                state.expectations.creation_observed(key);
                let msg = format!("Error creating: {e}");
                state
                    .recorder
                    .record(&reference, EventType::Warning, "FailedCreate", &msg)
                    .await;
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// Write `status` unless it is what the object already says.
async fn update_status(
    api: &Api<DaemonSet>,
    ds: &DaemonSet,
    status: DaemonSetStatus,
) -> Result<(), kube::Error> {
    if ds.status.as_ref() == Some(&status) {
        return Ok(());
    }
    super::replace_status_retrying(api, ds, |d| d.status = Some(status.clone())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn no_nodes_means_zero_counts_left_out() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "agent", "generation": 1},
            "spec": {"selector": {"matchLabels": {"app": "agent"}},
                     "template": {"metadata": {"labels": {"app": "agent"}}}}
        }))
        .unwrap();
        let s = plan(&ds, &[], Vec::new(), "h").status;
        assert_eq!((s.desired_number_scheduled, s.number_ready), (0, 0));
        assert_eq!(
            (
                s.number_available,
                s.number_unavailable,
                s.updated_number_scheduled
            ),
            (None, None, None)
        );
    }
}
