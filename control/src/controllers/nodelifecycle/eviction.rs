//! The taint eviction manager (Kubernetes' `pkg/controller/tainteviction`):
//! a pod on a node with NoExecute taints is deleted at once if it does not
//! tolerate them all, after the shortest applicable tolerationSeconds
//! counted from the taint's timeAdded if it does, and never if it tolerates
//! them without a time limit.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use kube::api::{Api, DeleteParams, Preconditions};

use super::taints::{self, NO_EXECUTE};
use super::State;
use crate::controllers::events::{self, EventType};

/// Look for pods past their deadline every `eviction_period`.
pub async fn run(state: Arc<State>) {
    let _ = state.nodes.wait_until_ready().await;
    let _ = state.pods.wait_until_ready().await;
    // Pods already deleted by uid, so each is deleted and reported once.
    let mut evicted: HashSet<String> = HashSet::new();
    let mut ticker = tokio::time::interval(state.options.eviction_period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        pass(&state, &mut evicted).await;
    }
}

fn no_execute(node: &Node) -> Vec<Taint> {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_ref())
        .map(|ts| {
            ts.iter()
                .filter(|t| t.effect == NO_EXECUTE)
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// When a pod on a node with `taints` is due for eviction (`None`: never).
pub fn deadline(pod: &Pod, taints: &[Taint], now: Timestamp) -> Option<Timestamp> {
    let refs: Vec<&Taint> = taints.iter().collect();
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.clone())
        .unwrap_or_default();
    match taints::toleration_time(&tolerations, &refs) {
        None => Some(now),
        Some(None) => None,
        Some(Some(secs)) => {
            // Counted from the latest taint: a new taint restarts the clock,
            // as Kubernetes reschedules on every taint change.
            let since = taints
                .iter()
                .filter_map(|t| t.time_added.as_ref().map(|t| t.0))
                .max()
                .unwrap_or(now);
            Some(since + SignedDuration::from_secs(secs))
        }
    }
}

async fn pass(state: &State, evicted: &mut HashSet<String>) {
    let tainted: HashMap<String, Vec<Taint>> = state
        .nodes
        .state()
        .iter()
        .filter_map(|n| {
            let ts = no_execute(n);
            (!ts.is_empty()).then(|| (n.metadata.name.clone().unwrap_or_default(), ts))
        })
        .collect();
    if tainted.is_empty() {
        evicted.clear();
        return;
    }
    let now = Timestamp::now();
    let pods = state.pods.state_filter(|p| {
        p.metadata.deletion_timestamp.is_none()
            && p.spec
                .as_ref()
                .and_then(|s| s.node_name.as_ref())
                .is_some_and(|n| tainted.contains_key(n))
    });
    let live: HashSet<String> = pods.iter().filter_map(|p| p.metadata.uid.clone()).collect();
    evicted.retain(|uid| live.contains(uid));
    for pod in pods {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if evicted.contains(&uid) {
            continue;
        }
        let node = pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        let Some(due) = deadline(&pod, &tainted[&node], now) else {
            continue;
        };
        if due > now {
            continue;
        }
        evict(state, &pod).await;
        evicted.insert(uid);
    }
}

async fn evict(state: &State, pod: &Pod) {
    let ns = pod.metadata.namespace.clone().unwrap_or_default();
    let name = pod.metadata.name.clone().unwrap_or_default();
    let reference = events::reference("v1", "Pod", &pod.metadata);
    state
        .eviction_recorder
        .record(
            &reference,
            EventType::Normal,
            "TaintManagerEviction",
            &format!("Marking for deletion Pod {ns}/{name}"),
        )
        .await;
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    // Graceful, and only the pod we judged (not a new one of the same name).
    let params = DeleteParams {
        preconditions: Some(Preconditions {
            uid: pod.metadata.uid.clone(),
            resource_version: None,
        }),
        ..Default::default()
    };
    if let Err(e) = api.delete(&name, &params).await {
        tracing::debug!(pod = %name, error = %e, "evicting a pod failed");
    }
}
