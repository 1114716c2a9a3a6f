//! NodeResourcesFit: the pod's requests (containers, the largest init
//! container, overhead) must fit in the node's allocatable minus what its
//! pods already request, and the node must have room for one more pod.

use crate::scheduler::framework::{Code, CycleState, FilterPlugin, Status};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "NodeResourcesFit";
/// The reason given when the node runs its maximum number of pods.
pub const ERR_REASON_TOO_MANY_PODS: &str = "Too many pods";

/// Rules out nodes without room for the pod's requests.
#[derive(Debug, Default)]
pub struct NodeResourcesFit;

/// Every resource the pod does not fit in on the node, as reasons.
pub fn insufficient_resources(pod: &PodInfo, node: &NodeInfo) -> Vec<String> {
    let mut reasons = Vec::new();
    let alloc = &node.allocatable;
    let used = &node.requested;
    if node.pods.len() as i64 + 1 > alloc.allowed_pod_number {
        reasons.push(ERR_REASON_TOO_MANY_PODS.to_string());
    }
    let req = &pod.requests;
    let mut check = |name: &str, want: i64, have: i64, used: i64| {
        if want > 0 && want > have - used {
            reasons.push(format!("Insufficient {name}"));
        }
    };
    check("cpu", req.milli_cpu, alloc.milli_cpu, used.milli_cpu);
    check("memory", req.memory, alloc.memory, used.memory);
    check(
        "ephemeral-storage",
        req.ephemeral_storage,
        alloc.ephemeral_storage,
        used.ephemeral_storage,
    );
    for (name, want) in &req.scalar {
        let have = alloc.scalar.get(name).copied().unwrap_or(0);
        let in_use = used.scalar.get(name).copied().unwrap_or(0);
        check(name, *want, have, in_use);
    }
    reasons
}

impl FilterPlugin for NodeResourcesFit {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        let reasons = insufficient_resources(pod, node);
        if reasons.is_empty() {
            None
        } else {
            // Freeing other pods could make room, so preemption may help.
            Some(Status::new(Code::Unschedulable, reasons))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::scheduler::plugins::testing::{node, pod, pod_with_meta, run_filter};

    fn requesting(cpu: &str, memory: &str) -> PodInfo {
        pod(json!({"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}))
    }

    #[test]
    fn fits_within_allocatable() {
        assert!(run_filter(
            &NodeResourcesFit,
            &requesting("4", "8Gi"),
            &node("n1", json!({}))
        )
        .is_none());
    }

    #[test]
    fn too_much_cpu_or_memory() {
        let n = node("n1", json!({}));
        let s = run_filter(&NodeResourcesFit, &requesting("5", "1Gi"), &n).expect("rejected");
        assert_eq!(s.code, Code::Unschedulable);
        assert_eq!(s.reasons, vec!["Insufficient cpu"]);
        let s = run_filter(&NodeResourcesFit, &requesting("5", "9Gi"), &n).expect("rejected");
        assert_eq!(s.reasons, vec!["Insufficient cpu", "Insufficient memory"]);
    }

    #[test]
    fn bound_pods_use_up_allocatable() {
        let mut n = node("n1", json!({}));
        let bound = pod_with_meta(
            json!({"name": "b", "uid": "b"}),
            json!({"containers": [
            {"name": "c", "image": "i", "resources": {"requests": {"cpu": "3"}}}]}),
        );
        n.add_pod(Arc::new(bound));
        let s = run_filter(&NodeResourcesFit, &requesting("1500m", "1Gi"), &n).expect("rejected");
        assert_eq!(s.reasons, vec!["Insufficient cpu"]);
        assert!(run_filter(&NodeResourcesFit, &requesting("1", "1Gi"), &n).is_none());
        n.remove_pod("b");
        assert!(run_filter(&NodeResourcesFit, &requesting("1500m", "1Gi"), &n).is_none());
    }

    #[test]
    fn init_containers_count_by_their_maximum_and_overhead_adds() {
        let p = pod(json!({
            "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {"name": "i1", "image": "i", "resources": {"requests": {"cpu": "3"}}},
                {"name": "i2", "image": "i", "resources": {"requests": {"cpu": "2"}}}
            ],
            "overhead": {"cpu": "250m"}
        }));
        assert_eq!(p.requests.milli_cpu, 3250);
        let sidecar = pod(json!({
            "containers": [{"name": "c", "image": "i", "resources": {"requests": {"cpu": "1"}}}],
            "initContainers": [
                {"name": "s", "image": "i", "restartPolicy": "Always",
                 "resources": {"requests": {"cpu": "500m"}}}
            ]
        }));
        assert_eq!(sidecar.requests.milli_cpu, 1500);
    }

    #[test]
    fn pod_count_is_limited() {
        let mut n = node("n1", json!({"status": {"allocatable": {"pods": "1"}}}));
        assert!(run_filter(&NodeResourcesFit, &pod(json!({})), &n).is_none());
        n.add_pod(Arc::new(pod_with_meta(
            json!({"name": "b", "uid": "b"}),
            json!({}),
        )));
        let s = run_filter(&NodeResourcesFit, &pod(json!({})), &n).expect("rejected");
        assert_eq!(s.reasons, vec![ERR_REASON_TOO_MANY_PODS]);
    }

    #[test]
    fn extended_resources() {
        let p = pod(json!({"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"example.com/gpu": "1"}, "limits": {"example.com/gpu": "1"}}}]}));
        let s = run_filter(&NodeResourcesFit, &p, &node("n1", json!({}))).expect("rejected");
        assert_eq!(s.reasons, vec!["Insufficient example.com/gpu"]);
        let n = node(
            "n1",
            json!({"status": {"allocatable": {"example.com/gpu": "2"}}}),
        );
        assert!(run_filter(&NodeResourcesFit, &p, &n).is_none());
    }
}
