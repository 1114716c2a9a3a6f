//! The ReplicationController controller. A ReplicationController is a
//! ReplicaSet with an equality-only selector (a plain label map), so, as in
//! Kubernetes' `pkg/controller/replication`, each one is converted to a
//! ReplicaSet and kept by the ReplicaSet controller's sync; only the pods'
//! controller reference, the events and the status write name the
//! ReplicationController.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::core::v1::{Pod, ReplicationController};
use kube::api::Api;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use serde_json::{json, Value};

use super::backoff::Backoff;
use super::claim::owners_to_sync;
use super::expectations::{self, Expectations};
use super::{error_policy, reconcile, State, Workload};
use crate::controllers::Context;

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let informer = ctx.informers.get::<Pod>();
    let expectations = Arc::new(Expectations::default());
    let exp = expectations.clone();
    informer.observe(move |ev, before| {
        expectations::observe_pod_event(&exp, "ReplicationController", before, ev)
    });
    let controller = Controller::new(
        Api::<ReplicationController>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    );
    let rcs = controller.store();
    let controller =
        controller.watches_shared_stream(informer.subscribe(), move |pod| owners_of(&rcs, &pod));
    let state = Arc::new(State {
        workload: Workload::ReplicationController,
        client: ctx.client.clone(),
        recorder: ctx.recorder("replication-controller"),
        pods: informer.store(),
        rss: None,
        expectations,
        backoff: Backoff::default(),
    });
    controller
        .run(
            |rc, state| reconcile(Arc::new(to_replica_set(&rc)), state),
            |rc, err, state| error_policy(Arc::new(to_replica_set(&rc)), err, state),
            state,
        )
        .for_each(|_| async {})
        .await;
}

/// ReplicationControllers to sync for a pod event: its controller, or for
/// an orphan every one whose selector it carries.
fn owners_of(
    rcs: &Store<ReplicationController>,
    pod: &Pod,
) -> Vec<ObjectRef<ReplicationController>> {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    owners_to_sync(rcs, &pod.metadata, "v1", "ReplicationController", |rc| {
        let selector = rc.spec.as_ref().and_then(|s| s.selector.as_ref());
        selector.is_some_and(|s| !s.is_empty() && s.iter().all(|(k, v)| labels.get(k) == Some(v)))
    })
}

/// The ReplicaSet a ReplicationController is: the same object with its
/// label map as `selector.matchLabels`. Status fields share their names.
pub fn to_replica_set(rc: &ReplicationController) -> ReplicaSet {
    let mut v = serde_json::to_value(rc).unwrap_or_default();
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        let labels = spec.remove("selector").unwrap_or(Value::Null);
        spec.insert("selector".into(), json!({ "matchLabels": labels }));
    }
    v["apiVersion"] = json!("apps/v1");
    v["kind"] = json!("ReplicaSet");
    serde_json::from_value(v).unwrap_or_default()
}

/// The ReplicationController a converted ReplicaSet came from.
pub fn to_replication_controller(rs: &ReplicaSet) -> ReplicationController {
    let mut v = serde_json::to_value(rs).unwrap_or_default();
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        let labels = spec
            .remove("selector")
            .and_then(|mut s| s.get_mut("matchLabels").map(Value::take))
            .unwrap_or(Value::Null);
        spec.insert("selector".into(), labels);
    }
    v["apiVersion"] = json!("v1");
    v["kind"] = json!("ReplicationController");
    serde_json::from_value(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replication_controller_round_trips_through_a_replica_set() {
        let rc: ReplicationController = serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "ReplicationController",
            "metadata": {"name": "nginx", "namespace": "default", "uid": "u1",
                         "resourceVersion": "7", "generation": 2},
            "spec": {"replicas": 3, "minReadySeconds": 5, "selector": {"app": "nginx"},
                     "template": {"metadata": {"labels": {"app": "nginx"}},
                                  "spec": {"containers": [{"name": "nginx", "image": "nginx"}]}}},
            "status": {"replicas": 2, "readyReplicas": 1, "observedGeneration": 2,
                       "conditions": [{"type": "ReplicaFailure", "status": "True"}]}
        }))
        .unwrap();
        let rs = to_replica_set(&rc);
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(3));
        assert_eq!(spec.min_ready_seconds, Some(5));
        assert_eq!(spec.selector.match_labels.as_ref().unwrap()["app"], "nginx");
        assert_eq!(rs.metadata.resource_version.as_deref(), Some("7"));
        assert_eq!(rs.status.as_ref().unwrap().ready_replicas, Some(1));
        assert_eq!(to_replication_controller(&rs), rc);
    }
}
