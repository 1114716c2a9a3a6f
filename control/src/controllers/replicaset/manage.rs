//! Creating and deleting pods towards `spec.replicas` (Kubernetes'
//! `manageReplicas`): creates go out in slow-start batches (1, 2, 4, …) so
//! a failing create (quota, admission) fails fast instead of N times;
//! deletes pick the cheapest pods first.

use std::sync::Arc;

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams};
use kube::Resource;

use super::claim::is_not_found;
use super::pods;
use super::{State, Workload};
use crate::controllers::events::{self, EventType};

/// At most this many creates or deletes per sync, so one huge ReplicaSet
/// cannot monopolize the API server.
pub const BURST_REPLICAS: usize = 500;

/// The controller reference a ReplicaSet (or ReplicationController) puts
/// on its pods.
pub fn controller_ref(workload: Workload, rs: &ReplicaSet) -> OwnerReference {
    OwnerReference {
        api_version: workload.api_version().into(),
        kind: workload.kind().into(),
        name: rs.metadata.name.clone().unwrap_or_default(),
        uid: rs.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Create or delete pods so that `pods` (the active owned pods) matches
/// the desired count. Returns the first error, with the message used for
/// the ReplicaFailure condition.
pub async fn manage(
    state: &State,
    key: &str,
    rs: &ReplicaSet,
    owned: &[Arc<Pod>],
) -> Result<(), kube::Error> {
    let ns = rs.metadata.namespace.clone().unwrap_or_default();
    let name = rs.metadata.name.clone().unwrap_or_default();
    let spec = rs.spec.as_ref();
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1).max(0) as usize;
    let api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let reference = events::reference(
        state.workload.api_version(),
        state.workload.kind(),
        &rs.metadata,
    );
    if owned.len() < desired {
        let diff = (desired - owned.len()).min(BURST_REPLICAS);
        state.expectations.expect_creations(key, diff);
        let template = spec.and_then(|s| s.template.clone()).unwrap_or_default();
        let pod = pods::from_template(&template, &ns, &name, controller_ref(state.workload, rs));
        let mut remaining = diff;
        let mut batch = 1;
        let mut first_error = None;
        while remaining > 0 {
            let size = batch.min(remaining);
            let results = futures::future::join_all((0..size).map(|_| {
                let api = api.clone();
                let pod = pod.clone();
                async move { api.create(&PostParams::default(), &pod).await }
            }))
            .await;
            for r in results {
                match r {
                    Ok(created) => {
                        let pod_name = created.metadata.name.clone().unwrap_or_default();
                        state
                            .recorder
                            .record(
                                &reference,
                                EventType::Normal,
                                "SuccessfulCreate",
                                &format!("Created pod: {pod_name}"),
                            )
                            .await;
                    }
                    Err(e) => {
                        // This create will never be observed.
                        state.expectations.creation_observed(key);
                        state
                            .recorder
                            .record(
                                &reference,
                                EventType::Warning,
                                "FailedCreate",
                                &format!("Error creating: {e}"),
                            )
                            .await;
                        first_error.get_or_insert(e);
                    }
                }
            }
            remaining -= size;
            if first_error.is_some() {
                break;
            }
            batch *= 2;
        }
        // Pods of batches never started will not be observed either.
        for _ in 0..remaining {
            state.expectations.creation_observed(key);
        }
        return first_error.map_or(Ok(()), Err);
    }
    if owned.len() > desired {
        let diff = (owned.len() - desired).min(BURST_REPLICAS);
        let related = related_pods(state, rs);
        let victims = pods::to_delete(owned, &related, diff);
        state
            .expectations
            .expect_deletions(key, victims.iter().map(|p| pods::key(p)));
        let results = futures::future::join_all(victims.iter().map(|p| {
            let api = api.clone();
            let pod_name = p.metadata.name.clone().unwrap_or_default();
            async move {
                let r = api.delete(&pod_name, &DeleteParams::default()).await;
                (pod_name, r)
            }
        }))
        .await;
        let mut first_error = None;
        for (pod_name, r) in results {
            match r {
                Ok(_) => {
                    state
                        .recorder
                        .record(
                            &reference,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &format!("Deleted pod: {pod_name}"),
                        )
                        .await;
                }
                Err(e) => {
                    state
                        .expectations
                        .deletion_observed(key, &format!("{ns}/{pod_name}"));
                    if !is_not_found(&e) {
                        state
                            .recorder
                            .record(
                                &reference,
                                EventType::Warning,
                                "FailedDelete",
                                &format!("Error deleting: {e}"),
                            )
                            .await;
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        return first_error.map_or(Ok(()), Err);
    }
    Ok(())
}

/// Active pods of the other ReplicaSets with the same controller (the
/// Deployment's older and newer sets): a node that already runs many of
/// them is the better place to remove one from.
fn related_pods(state: &State, rs: &ReplicaSet) -> Vec<Arc<Pod>> {
    let (Some(owner), Some(rss)) = (pods::controller_of(rs.meta()), &state.rss) else {
        return Vec::new();
    };
    let ns = rs.metadata.namespace.as_deref();
    let siblings: Vec<String> = rss
        .state()
        .iter()
        .filter(|o| o.metadata.namespace.as_deref() == ns)
        .filter(|o| pods::controller_of(o.meta()).is_some_and(|r| r.uid == owner.uid))
        .filter_map(|o| o.metadata.uid.clone())
        .collect();
    state.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == ns
            && pods::controller_of(&p.metadata).is_some_and(|r| siblings.contains(&r.uid))
    })
}
