//! The StatefulSet controller: pods with stable ordinal names
//! `<set>-0 … <set>-(replicas-1)`, created in order and removed in reverse
//! (OrderedReady) or all at once (Parallel), recreated under the same name
//! when deleted or failed, and replaced highest ordinal first when the
//! template changes (RollingUpdate with partition, or OnDelete) —
//! Kubernetes' `pkg/controller/statefulset`.
//!
//! Each template is recorded as a ControllerRevision (`history`), which
//! `kubectl rollout history|undo` read. Each ordinal gets its claims from
//! the `volumeClaimTemplates` (`data-web-0`), created before its pod and
//! kept when the pod goes (the `Retain` retention policy). A rolling update
//! replaces pods at or above `partition`, highest first, up to
//! `maxUnavailable` at a time; a pod below the partition that is recreated
//! gets the current revision's template back. Claims are kept unless the
//! `persistentVolumeClaimRetentionPolicy` says `Delete`: `whenDeleted`
//! makes the set their owner, `whenScaled` makes a condemned pod theirs,
//! and the garbage collector removes them after their owner.
//!
//! The loop mirrors the ReplicaSet controller's (its pod cache, sync point,
//! adoption and backoff are reused). No expectations are needed: pods are
//! created under fixed names and deleted with a uid precondition, so acting
//! twice on a stale cache is a harmless AlreadyExists or NotFound.

pub mod identity;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{ControllerRevision, StatefulSet, StatefulSetStatus};
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod};
use kedge_config::selector::LabelSelector;
use kube::api::{Api, DeleteParams, PostParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::runtime::Controller;
use kube::Client;

use super::events::{self, EventType, Recorder};
use super::history;
use super::replicaset::backoff::Backoff;
use super::replicaset::cache::key_of;
use super::replicaset::claim::{is_not_found, owners_to_sync, Claimer};
use super::replicaset::pods;
use super::{omit_empty, Context};

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
    /// All pods, from the shared informer.
    pods: Store<Pod>,
    /// All ControllerRevisions, from the shared informer.
    revisions: Store<ControllerRevision>,
    backoff: Backoff,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let informer = ctx.informers.get::<Pod>();
    let controller = Controller::new(
        Api::<StatefulSet>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    );
    let sets = controller.store();
    let controller =
        controller.watches_shared_stream(informer.subscribe(), move |pod| owners_of(&sets, &pod));
    let state = Arc::new(State {
        client,
        recorder: ctx.recorder("statefulset-controller"),
        pods: informer.store(),
        revisions: ctx.informers.get::<ControllerRevision>().store(),
        backoff: Backoff::default(),
    });
    controller
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
}

/// StatefulSets to sync for a pod event: its controller, or for an orphan
/// every set that could adopt it.
fn owners_of(sets: &Store<StatefulSet>, pod: &Pod) -> Vec<ObjectRef<StatefulSet>> {
    owners_to_sync(sets, &pod.metadata, "apps/v1", "StatefulSet", |s| {
        claims(s, pod)
    })
}

fn selector_of(set: &StatefulSet) -> Option<LabelSelector> {
    LabelSelector::from_label_selector(&set.spec.as_ref()?.selector).ok()
}

/// A set claims the pods its selector matches that carry one of its
/// ordinal names (Kubernetes' `isMemberOf` on top of the selector).
fn claims(set: &StatefulSet, pod: &Pod) -> bool {
    let name = set.metadata.name.as_deref().unwrap_or("");
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    selector_of(set).is_some_and(|s| !s.is_empty() && s.matches(&labels))
        && identity::ordinal_of(name, pod.metadata.name.as_deref().unwrap_or("")).is_some()
}

async fn reconcile(set: Arc<StatefulSet>, state: Arc<State>) -> Result<Action, Error> {
    let key = key_of(&set.metadata);
    let action = sync(&set, &state, &key).await?;
    state.backoff.forget(&key);
    Ok(action)
}

fn error_policy(set: Arc<StatefulSet>, err: &Error, state: Arc<State>) -> Action {
    state
        .backoff
        .failed("statefulset", &key_of(&set.metadata), err)
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn terminating(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_some()
}

/// Running, Ready and not going away: what OrderedReady waits for.
fn healthy(pod: &Pod) -> bool {
    phase(pod) == "Running" && pods::is_ready(pod) && !terminating(pod)
}

/// Finished pods are replaced under the same name, as a failed member must
/// come back with its identity.
fn finished(pod: &Pod) -> bool {
    matches!(phase(pod), "Failed" | "Succeeded")
}

/// The rollout strategy: None for OnDelete, else the partition.
fn rolling_partition(set: &StatefulSet) -> Option<i32> {
    let strategy = set
        .spec
        .as_ref()?
        .update_strategy
        .clone()
        .unwrap_or_default();
    if strategy.type_.as_deref() == Some("OnDelete") {
        return None;
    }
    Some(
        strategy
            .rolling_update
            .and_then(|r| r.partition)
            .unwrap_or(0)
            .max(0),
    )
}

/// One sync: claim pods, bring the ordinals to the desired state (at most
/// the step the policy allows), then write status.
async fn sync(set: &StatefulSet, state: &State, key: &str) -> Result<Action, Error> {
    if state.pods.wait_until_ready().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let ns = set.metadata.namespace.clone().unwrap_or_default();
    let name = set.metadata.name.clone().unwrap_or_default();
    if selector_of(set).is_none() {
        // An invalid selector cannot be fixed by retrying.
        tracing::warn!(sts = %key, "invalid selector");
        return Ok(Action::await_change());
    }
    let pod_api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let set_api: Api<StatefulSet> = Api::namespaced(state.client.clone(), &ns);
    let candidates = state
        .pods
        .state_filter(|p| p.metadata.namespace.as_deref() == Some(ns.as_str()));
    let owner = identity::controller_ref(set);
    let claimer = Claimer {
        owner: &owner,
        namespace: &ns,
        deleting: set.metadata.deletion_timestamp.is_some(),
    };
    let uid = set.metadata.uid.clone();
    let owned = claimer
        .claim(
            &pod_api,
            candidates,
            |p| claims(set, p),
            || async {
                let fresh = set_api.get(&name).await?;
                Ok(fresh.metadata.uid == uid && fresh.metadata.deletion_timestamp.is_none())
            },
        )
        .await
        .map_err(Error::Api)?;
    let by_ordinal: BTreeMap<i32, Arc<Pod>> = owned
        .iter()
        .filter_map(|p| {
            let ord = identity::ordinal_of(&name, p.metadata.name.as_deref()?)?;
            Some((ord, p.clone()))
        })
        .collect();

    let update_revision = identity::revision_name(set);
    let mut result = Ok(());
    if set.metadata.deletion_timestamp.is_none() {
        record_history(state, set, &owned, &update_revision)
            .await
            .map_err(Error::Api)?;
        let step = Step {
            state,
            set,
            api: &pod_api,
            revision: &update_revision,
        };
        result = step.run(&by_ordinal).await;
    }
    let status = calculate_status(set, &by_ordinal, &update_revision);
    update_status(&set_api, set, status)
        .await
        .map_err(Error::Api)?;
    result.map_err(Error::Api)?;
    let min_ready = set
        .spec
        .as_ref()
        .and_then(|s| s.min_ready_seconds)
        .unwrap_or(0);
    let waiting_available = by_ordinal
        .values()
        .any(|p| healthy(p) && !pods::is_available(p, min_ready, jiff::Timestamp::now()));
    if min_ready > 0 && waiting_available {
        // Pods turn available by the clock alone; no event will say so.
        return Ok(Action::requeue(Duration::from_secs(min_ready as u64)));
    }
    Ok(Action::await_change())
}

/// Keep the set's ControllerRevisions: one for its template now (named as
/// its pods' `controller-revision-hash`), the ones its pods were made from,
/// and `revisionHistoryLimit` others.
async fn record_history(
    state: &State,
    set: &StatefulSet,
    owned: &[Arc<Pod>],
    revision: &str,
) -> Result<i64, kube::Error> {
    state.revisions.wait_until_ready().await.ok();
    let spec = set.spec.as_ref();
    let owner = history::Owner::of(
        set,
        &set.metadata,
        identity::controller_ref(set),
        spec.map(|s| &s.template),
        revision.to_string(),
        revision.to_string(),
        spec.and_then(|s| s.revision_history_limit),
    );
    let in_use = history::hashes_in_use(owned);
    history::sync(&state.client, &state.revisions, &owner, &in_use).await
}

/// The pod operations of one sync.
struct Step<'a> {
    state: &'a State,
    set: &'a StatefulSet,
    api: &'a Api<Pod>,
    revision: &'a str,
}

impl Step<'_> {
    /// Create missing and replace finished members, remove condemned ones
    /// (ordinal ≥ replicas) highest first, then roll out the template.
    /// OrderedReady stops at the first pod that is not yet healthy; Parallel
    /// acts on every ordinal at once.
    async fn run(&self, pods: &BTreeMap<i32, Arc<Pod>>) -> Result<(), kube::Error> {
        let spec = self.set.spec.clone().unwrap_or_default();
        let replicas = spec.replicas.unwrap_or(1).max(0);
        let parallel = spec.pod_management_policy.as_deref() == Some("Parallel");

        for ord in 0..replicas {
            match pods.get(&ord) {
                None => self.create(ord).await?,
                Some(p) if finished(p) && !terminating(p) => self.delete(p).await?,
                Some(p) if healthy(p) => continue,
                Some(_) => {}
            }
            if !parallel {
                return Ok(());
            }
        }

        let condemned = pods.range(replicas..).rev();
        for (ord, p) in condemned {
            if !terminating(p) {
                if identity::deletes_claims(self.set, "whenScaled") {
                    self.hand_claims_to(*ord, p).await?;
                }
                self.delete(p).await?;
            }
            if !parallel {
                // One at a time: the next waits until this one is gone.
                return Ok(());
            }
        }

        let Some(partition) = rolling_partition(self.set) else {
            return Ok(());
        };
        // Outdated pods at or above the partition are replaced highest
        // first, while fewer than maxUnavailable (default 1) of them are
        // not healthy.
        let max_unavailable = spec
            .update_strategy
            .as_ref()
            .and_then(|s| s.rolling_update.as_ref())
            .and_then(|r| r.max_unavailable.as_ref())
            .map_or(1, |v| {
                crate::controllers::deployment::util::scaled_value(v, replicas, false)
            })
            .max(1);
        let mut unavailable = (partition..replicas)
            .filter(|ord| pods.get(ord).is_none_or(|p| !healthy(p)))
            .count() as i32;
        for ord in (partition..replicas).rev() {
            let Some(p) = pods.get(&ord) else {
                continue;
            };
            if identity::revision_of(p) == Some(self.revision) || terminating(p) {
                continue;
            }
            if unavailable >= max_unavailable {
                break;
            }
            self.delete(p).await?;
            if healthy(p) {
                unavailable += 1;
            }
        }
        Ok(())
    }

    /// The set as revision `name` had it (its template), when that is the
    /// set's current revision and a ControllerRevision records it: pods
    /// below the partition are recreated from it, not from the update.
    fn at_revision(&self, name: &str) -> Option<StatefulSet> {
        let ns = self.set.metadata.namespace.as_deref().unwrap_or_default();
        let revision = self.state.revisions.get(&ObjectRef::new(name).within(ns))?;
        let mut template = revision.data.as_ref()?.0.pointer("/spec/template")?.clone();
        template.as_object_mut()?.remove("$patch");
        let mut set = self.set.clone();
        set.spec.as_mut()?.template = serde_json::from_value(template).ok()?;
        Some(set)
    }

    fn reference(&self) -> k8s_openapi::api::core::v1::ObjectReference {
        events::reference("apps/v1", "StatefulSet", &self.set.metadata)
    }

    async fn create(&self, ord: i32) -> Result<(), kube::Error> {
        let set_name = self.set.metadata.name.as_deref().unwrap_or("");
        self.create_claims(ord).await?;
        // Below the partition a pod keeps the set's current revision.
        let current = self
            .set
            .status
            .as_ref()
            .and_then(|s| s.current_revision.clone())
            .filter(|c| c != self.revision);
        let old = match (rolling_partition(self.set), &current) {
            (Some(partition), Some(c)) if ord < partition => {
                self.at_revision(c).map(|set| (set, c.clone()))
            }
            _ => None,
        };
        let pod = match &old {
            Some((set, revision)) => identity::new_pod(set, ord, revision),
            None => identity::new_pod(self.set, ord, self.revision),
        };
        let pod_name = identity::pod_name(set_name, ord);
        match self.api.create(&PostParams::default(), &pod).await {
            Ok(_) => {
                let msg = format!("create Pod {pod_name} in StatefulSet {set_name} successful");
                self.record(EventType::Normal, "SuccessfulCreate", &msg)
                    .await;
                Ok(())
            }
            // The cache lags a create of ours; the pod is there.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => {
                let msg =
                    format!("create Pod {pod_name} in StatefulSet {set_name} failed error: {e}");
                self.record(EventType::Warning, "FailedCreate", &msg).await;
                Err(e)
            }
        }
    }

    /// The ordinal's claims from the volumeClaimTemplates, unless they
    /// exist: they outlive the pod (kept through restarts and scale-down,
    /// the `Retain` retention policy), so a new pod gets the old data.
    async fn create_claims(&self, ord: i32) -> Result<(), kube::Error> {
        let set_name = self.set.metadata.name.as_deref().unwrap_or("");
        let ns = self.set.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.state.client.clone(), ns);
        for claim in identity::claims_for(self.set, ord) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            match api.create(&PostParams::default(), &claim).await {
                Ok(_) => {
                    let msg = format!(
                        "create Claim {name} Pod {} in StatefulSet {set_name} success",
                        identity::pod_name(set_name, ord)
                    );
                    self.record(EventType::Normal, "SuccessfulCreate", &msg)
                        .await;
                }
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => {
                    let msg = format!(
                        "create Claim {name} for Pod {} in StatefulSet {set_name} failed error: {e}",
                        identity::pod_name(set_name, ord)
                    );
                    self.record(EventType::Warning, "FailedCreate", &msg).await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Scaling down under `whenScaled: Delete`: the ordinal's claims get
    /// the pod as their owner (in place of the set), so they go once it
    /// has.
    async fn hand_claims_to(&self, ord: i32, pod: &Pod) -> Result<(), kube::Error> {
        let ns = self.set.metadata.namespace.as_deref().unwrap_or_default();
        let api: Api<PersistentVolumeClaim> = Api::namespaced(self.state.client.clone(), ns);
        let owner = identity::claim_owner("v1", "Pod", &pod.metadata);
        for claim in identity::claims_for(self.set, ord) {
            let name = claim.metadata.name.clone().unwrap_or_default();
            let Some(mut current) = api.get_opt(&name).await? else {
                continue;
            };
            let refs = current
                .metadata
                .owner_references
                .get_or_insert_with(Vec::new);
            if refs.iter().any(|r| r.uid == owner.uid) {
                continue;
            }
            // The pod alone owns it now: with the set as an owner too the
            // garbage collector would only drop the pod's reference.
            refs.retain(|r| Some(&r.uid) != self.set.metadata.uid.as_ref());
            refs.push(owner.clone());
            api.replace(&name, &PostParams::default(), &current).await?;
        }
        Ok(())
    }

    /// Delete exactly this pod: the uid precondition keeps a stale cache
    /// from deleting a newer pod of the same name.
    async fn delete(&self, pod: &Pod) -> Result<(), kube::Error> {
        let set_name = self.set.metadata.name.as_deref().unwrap_or("");
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid: pod.metadata.uid.clone(),
                resource_version: None,
            }),
            ..Default::default()
        };
        match self.api.delete(&pod_name, &dp).await {
            Ok(_) => {
                let msg = format!("delete Pod {pod_name} in StatefulSet {set_name} successful");
                self.record(EventType::Normal, "SuccessfulDelete", &msg)
                    .await;
                Ok(())
            }
            Err(e) if is_not_found(&e) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
            Err(e) => {
                let msg =
                    format!("delete Pod {pod_name} in StatefulSet {set_name} failed error: {e}");
                self.record(EventType::Warning, "FailedDelete", &msg).await;
                Err(e)
            }
        }
    }

    async fn record(&self, t: EventType, reason: &str, msg: &str) {
        self.state
            .recorder
            .record(&self.reference(), t, reason, msg)
            .await;
    }
}

/// Status from the pods as this sync found them. The current revision
/// moves to the update revision once every replica runs it and is Ready.
fn calculate_status(
    set: &StatefulSet,
    pods: &BTreeMap<i32, Arc<Pod>>,
    update_revision: &str,
) -> StatefulSetStatus {
    let spec = set.spec.clone().unwrap_or_default();
    let desired = spec.replicas.unwrap_or(1).max(0);
    let min_ready = spec.min_ready_seconds.unwrap_or(0);
    let old = set.status.clone().unwrap_or_default();
    let mut current_revision = old
        .current_revision
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| update_revision.to_string());
    let now = jiff::Timestamp::now();
    let live: Vec<&Arc<Pod>> = pods.values().filter(|p| !terminating(p)).collect();
    let count = |f: &dyn Fn(&Pod) -> bool| live.iter().filter(|p| f(p)).count() as i32;
    let replicas = live.len() as i32;
    let ready = count(&healthy);
    let available = count(&|p| healthy(p) && pods::is_available(p, min_ready, now));
    let updated = count(&|p| identity::revision_of(p) == Some(update_revision));
    let mut current = count(&|p| identity::revision_of(p) == Some(current_revision.as_str()));
    if updated == desired && ready == desired && replicas == desired {
        current_revision = update_revision.to_string();
        current = updated;
    }
    StatefulSetStatus {
        replicas,
        ready_replicas: omit_empty(ready),
        // Not `omitempty` in the Go type: present even when 0.
        available_replicas: Some(available),
        current_replicas: omit_empty(current),
        updated_replicas: omit_empty(updated),
        current_revision: Some(current_revision),
        update_revision: Some(update_revision.to_string()),
        observed_generation: set.metadata.generation,
        collision_count: old.collision_count,
        conditions: old.conditions,
    }
}

/// Write `status` unless nothing changed; one retry on a conflict with a
/// fresh copy, as the status is recomputed on the next sync anyway.
async fn update_status(
    api: &Api<StatefulSet>,
    set: &StatefulSet,
    status: StatefulSetStatus,
) -> Result<(), kube::Error> {
    if set.status.as_ref() == Some(&status) {
        return Ok(());
    }
    super::replace_status_retrying(api, set, |s| s.status = Some(status.clone())).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_omits_zero_counts_but_keeps_available_replicas() {
        let set: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 1, "serviceName": "web",
                     "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}}
        }))
        .unwrap();
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-0", "labels": {"controller-revision-hash": "r1"}},
            "status": {"phase": "Pending"}
        }))
        .unwrap();
        let s = calculate_status(&set, &BTreeMap::from([(0, Arc::new(pod))]), "r1");
        assert_eq!(s.replicas, 1);
        assert_eq!(s.ready_replicas, None);
        assert_eq!(s.available_replicas, Some(0));
        assert_eq!((s.current_replicas, s.updated_replicas), (Some(1), Some(1)));
        let s = calculate_status(&set, &BTreeMap::new(), "r1");
        assert_eq!((s.current_replicas, s.updated_replicas), (None, None));
    }
}
