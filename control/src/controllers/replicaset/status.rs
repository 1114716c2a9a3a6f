//! ReplicaSet status: counts of the pods it owns and the ReplicaFailure
//! condition (Kubernetes' `replica_set_utils.go`).

use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{ReplicaSet, ReplicaSetCondition, ReplicaSetStatus};
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::Api;

use super::{pods, replication, State, Workload};
use crate::controllers::{omit_empty, replace_status_retrying};

/// The condition type set when pods cannot be created or deleted.
pub const REPLICA_FAILURE: &str = "ReplicaFailure";

/// Now, to the second: the API keeps seconds, so a finer time would make
/// every comparison with a stored condition differ.
pub fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now())
}

/// The status `pods` (the active pods the ReplicaSet owns) call for.
/// `manage_error` is the error of the last create/delete round, if any.
pub fn calculate(
    rs: &ReplicaSet,
    pods: &[Arc<Pod>],
    manage_error: Option<&str>,
) -> ReplicaSetStatus {
    let spec = rs.spec.as_ref();
    let template_labels = spec
        .and_then(|s| s.template.as_ref())
        .and_then(|t| t.metadata.as_ref())
        .and_then(|m| m.labels.clone())
        .unwrap_or_default();
    let min_ready = spec.and_then(|s| s.min_ready_seconds).unwrap_or(0);
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let at = Timestamp::now();
    let (mut fully_labeled, mut ready, mut available) = (0, 0, 0);
    for pod in pods {
        let labels = pod.metadata.labels.clone().unwrap_or_default();
        if template_labels
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            fully_labeled += 1;
        }
        if pods::is_ready(pod) {
            ready += 1;
            if pods::is_available(pod, min_ready, at) {
                available += 1;
            }
        }
    }
    let mut status = rs.status.clone().unwrap_or_default();
    let mut conditions = status.conditions.take().unwrap_or_default();
    let failure = conditions.iter().position(|c| c.type_ == REPLICA_FAILURE);
    match (manage_error, failure) {
        (Some(message), None) => {
            let diff = pods.len() as i64 - i64::from(desired);
            let reason = if diff < 0 {
                "FailedCreate"
            } else if diff > 0 {
                "FailedDelete"
            } else {
                ""
            };
            conditions.push(ReplicaSetCondition {
                type_: REPLICA_FAILURE.into(),
                status: "True".into(),
                reason: Some(reason.into()),
                message: Some(message.into()),
                last_transition_time: Some(Time(now())),
            });
        }
        (None, Some(i)) => {
            conditions.remove(i);
        }
        _ => {}
    }
    status.conditions = (!conditions.is_empty()).then_some(conditions);
    status.replicas = pods.len() as i32;
    status.fully_labeled_replicas = omit_empty(fully_labeled);
    status.ready_replicas = omit_empty(ready);
    status.available_replicas = omit_empty(available);
    status
}

/// Write `status` unless nothing changed; one retry on a conflict with a
/// fresh copy, as the status is recomputed on the next sync anyway. A
/// ReplicationController's is written to it, converted.
pub async fn update(
    state: &State,
    rs: &ReplicaSet,
    mut status: ReplicaSetStatus,
) -> Result<ReplicaSet, kube::Error> {
    let generation = rs.metadata.generation;
    let current = rs.status.clone().unwrap_or_default();
    if same_counts(&current, &status) && current.observed_generation == generation {
        return Ok(rs.clone());
    }
    status.observed_generation = generation;
    let ns = rs.metadata.namespace.as_deref().unwrap_or_default();
    match state.workload {
        Workload::ReplicaSet => {
            let api = Api::<ReplicaSet>::namespaced(state.client.clone(), ns);
            replace_status_retrying(&api, rs, |r| r.status = Some(status.clone())).await
        }
        Workload::ReplicationController => {
            let api = Api::<ReplicationController>::namespaced(state.client.clone(), ns);
            let rc = replication::to_replication_controller(rs);
            let rc_status = replication::to_replication_controller(&ReplicaSet {
                status: Some(status),
                ..Default::default()
            })
            .status;
            let written =
                replace_status_retrying(&api, &rc, |r| r.status = rc_status.clone()).await?;
            Ok(replication::to_replica_set(&written))
        }
    }
}

fn same_counts(a: &ReplicaSetStatus, b: &ReplicaSetStatus) -> bool {
    a.replicas == b.replicas
        && a.fully_labeled_replicas.unwrap_or(0) == b.fully_labeled_replicas.unwrap_or(0)
        && a.ready_replicas.unwrap_or(0) == b.ready_replicas.unwrap_or(0)
        && a.available_replicas.unwrap_or(0) == b.available_replicas.unwrap_or(0)
        && a.conditions == b.conditions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn zero_counts_are_absent_and_replicas_is_not() {
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}}
        }))
        .unwrap();
        let s = calculate(&rs, &[], None);
        assert_eq!(s.replicas, 0);
        assert_eq!(
            (
                s.fully_labeled_replicas,
                s.ready_replicas,
                s.available_replicas
            ),
            (None, None, None)
        );
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-1", "labels": {"app": "web"}},
            "status": {"phase": "Pending"}
        }))
        .unwrap();
        let s = calculate(&rs, &[Arc::new(pod)], None);
        assert_eq!(s.replicas, 1);
        assert_eq!(s.fully_labeled_replicas, Some(1));
        assert_eq!((s.ready_replicas, s.available_replicas), (None, None));
    }
}
