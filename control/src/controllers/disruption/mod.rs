//! The disruption controller (kube-controller-manager's `disruption`):
//! keeps each PodDisruptionBudget's status — the pods it expects, how many
//! are healthy (Ready), how many must be, and so how many disruptions are
//! allowed now — which the eviction subresource reads and spends.
//!
//! As Kubernetes computes it: an integer `minAvailable` needs that many
//! healthy pods out of the pods selected; a percentage, or `maxUnavailable`,
//! is taken of the replicas the pods' controllers ask for (their `scale`).
//! Pods the eviction subresource disrupted count as unhealthy until they
//! are gone or two minutes pass.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DynamicObject};
use kube::core::{ApiResource, GroupVersionKind};
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::Client;

use kedge_config::selector::LabelSelector;

use super::replicaset::backoff::Backoff;
use super::replicaset::cache::key_of;
use super::Context;

/// How long an eviction's pod counts as disrupted before it is gone.
const DELETION_TIMEOUT_SECONDS: i64 = 120;

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API: {0}")]
    Api(#[from] kube::Error),
}

struct State {
    client: Client,
    pods: Store<Pod>,
    backoff: Backoff,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let pods = ctx.informers.get::<Pod>();
    let controller = Controller::new(
        Api::<PodDisruptionBudget>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    );
    let budgets = controller.store();
    let controller =
        controller.watches_shared_stream(pods.subscribe(), move |pod| budgets_of(&budgets, &pod));
    let state = Arc::new(State {
        client: ctx.client.clone(),
        pods: pods.store(),
        backoff: Backoff::default(),
    });
    controller
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
}

/// The budgets that select `pod`.
fn budgets_of(
    budgets: &Store<PodDisruptionBudget>,
    pod: &Pod,
) -> Vec<ObjectRef<PodDisruptionBudget>> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    budgets
        .state()
        .iter()
        .filter(|b| b.metadata.namespace == pod.metadata.namespace && selects(b, &labels))
        .map(|b| ObjectRef::from_obj(&**b))
        .collect()
}

fn selects(pdb: &PodDisruptionBudget, labels: &BTreeMap<String, String>) -> bool {
    pdb.spec
        .as_ref()
        .and_then(|s| s.selector.as_ref())
        .and_then(|s| LabelSelector::from_label_selector(s).ok())
        .is_some_and(|s| s.matches(labels))
}

fn error_policy(pdb: Arc<PodDisruptionBudget>, err: &Error, state: Arc<State>) -> Action {
    state
        .backoff
        .failed("disruption", &key_of(&pdb.metadata), err)
}

fn is_healthy(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// `value` of `total`: a count, or a percentage rounded up.
fn scaled(value: &IntOrString, total: i32) -> i32 {
    match value {
        IntOrString::Int(n) => *n,
        IntOrString::String(s) => {
            let percent: f64 = s.trim_end_matches('%').parse().unwrap_or(0.0);
            (f64::from(total) * percent / 100.0).ceil() as i32
        }
    }
}

/// The replicas the pods' controllers ask for, through their `scale`
/// (each controller once).
async fn expected_from_controllers(
    client: &Client,
    namespace: &str,
    pods: &[Arc<Pod>],
) -> Result<i32, String> {
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for pod in pods {
        let Some(owner) = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
        else {
            return Err(format!(
                "found no controller ref for pod {:?}",
                pod.metadata.name.as_deref().unwrap_or("")
            ));
        };
        if !seen.insert(owner.uid.clone()) {
            continue;
        }
        // A ReplicaSet of a Deployment: the Deployment's scale decides.
        let (api_version, kind, name) = if owner.kind == "ReplicaSet" {
            let rs: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
                Api::namespaced(client.clone(), namespace);
            match rs.get(&owner.name).await.ok().and_then(|rs| {
                rs.metadata
                    .owner_references
                    .unwrap_or_default()
                    .into_iter()
                    .find(|o| o.controller == Some(true) && o.kind == "Deployment")
            }) {
                Some(d) => (d.api_version, d.kind, d.name),
                None => (
                    owner.api_version.clone(),
                    owner.kind.clone(),
                    owner.name.clone(),
                ),
            }
        } else {
            (
                owner.api_version.clone(),
                owner.kind.clone(),
                owner.name.clone(),
            )
        };
        if !seen.insert(format!("{kind}/{name}")) {
            continue;
        }
        let (group, version) = api_version.split_once('/').unwrap_or(("", &api_version));
        let gvk = GroupVersionKind::gvk(group, version, &kind);
        let (ar, _): (ApiResource, _) = kube::discovery::pinned_kind(client, &gvk)
            .await
            .map_err(|e| e.to_string())?;
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
        let scale = api.get_scale(&name).await.map_err(|e| e.to_string())?;
        total += scale.spec.and_then(|s| s.replicas).unwrap_or(0);
    }
    Ok(total)
}

async fn reconcile(pdb: Arc<PodDisruptionBudget>, state: Arc<State>) -> Result<Action, Error> {
    let namespace = pdb.metadata.namespace.clone().unwrap_or_default();
    let spec = pdb.spec.clone().unwrap_or_default();
    let now = jiff::Timestamp::now();
    let pods: Vec<Arc<Pod>> = state
        .pods
        .state()
        .into_iter()
        .filter(|p| {
            p.metadata.namespace.as_deref() == Some(namespace.as_str())
                && selects(&pdb, &p.metadata.labels.clone().unwrap_or_default())
        })
        .collect();
    let previous = pdb.status.clone().unwrap_or_default();

    // Disrupted pods stay counted until they are gone or time out.
    let mut disrupted = BTreeMap::new();
    for (name, at) in previous.disrupted_pods.clone().unwrap_or_default() {
        let fresh = now.as_second() - at.0.as_second() < DELETION_TIMEOUT_SECONDS;
        let still_there = pods.iter().any(|p| {
            p.metadata.name.as_deref() == Some(name.as_str())
                && p.metadata.deletion_timestamp.is_none()
        });
        if fresh && still_there {
            disrupted.insert(name, at);
        }
    }
    let healthy = pods
        .iter()
        .filter(|p| {
            is_healthy(p) && !disrupted.contains_key(p.metadata.name.as_deref().unwrap_or(""))
        })
        .count() as i32;

    let computed = match (&spec.max_unavailable, &spec.min_available) {
        (Some(max), _) => expected_from_controllers(&state.client, &namespace, &pods)
            .await
            .map(|expected| (expected, (expected - scaled(max, expected)).max(0))),
        (None, Some(IntOrString::Int(min))) => Ok((pods.len() as i32, *min)),
        (None, Some(min)) => expected_from_controllers(&state.client, &namespace, &pods)
            .await
            .map(|expected| (expected, scaled(min, expected))),
        (None, None) => Ok((pods.len() as i32, 0)),
    };
    let (expected, desired, error) = match computed {
        Ok((e, d)) => (e, d, None),
        Err(e) => (0, 0, Some(e)),
    };
    let allowed = if error.is_some() {
        0
    } else {
        (healthy - desired).max(0)
    };
    let (cond_status, reason, message) = match (&error, allowed > 0) {
        (Some(e), _) => ("False", "SyncFailed", e.clone()),
        (None, true) => ("True", "SufficientPods", String::new()),
        (None, false) => ("False", "InsufficientPods", String::new()),
    };
    let transition = previous
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "DisruptionAllowed" && c.status == cond_status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    let status = PodDisruptionBudgetStatus {
        current_healthy: healthy,
        desired_healthy: desired,
        expected_pods: expected,
        disruptions_allowed: allowed,
        disrupted_pods: (!disrupted.is_empty()).then_some(disrupted),
        observed_generation: pdb.metadata.generation,
        conditions: Some(vec![Condition {
            type_: "DisruptionAllowed".into(),
            status: cond_status.into(),
            reason: reason.into(),
            message,
            last_transition_time: transition,
            observed_generation: pdb.metadata.generation,
        }]),
    };
    if status != previous {
        let api: Api<PodDisruptionBudget> = Api::namespaced(state.client.clone(), &namespace);
        super::replace_status_retrying(&api, &pdb, |p| p.status = Some(status.clone())).await?;
    }
    state.backoff.forget(&key_of(&pdb.metadata));
    // Disrupted pods time out without an event to wake on.
    Ok(Action::requeue(Duration::from_secs(30)))
}
