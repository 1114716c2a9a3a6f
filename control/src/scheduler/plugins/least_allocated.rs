//! NodeResourcesLeastAllocated: prefer the node with the most CPU and
//! memory left after placing the pod (Kubernetes' NodeResourcesFit scoring
//! with the LeastAllocated strategy, cpu and memory weighted 1 each).

use crate::scheduler::framework::{CycleState, ScorePlugin, MAX_NODE_SCORE};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "NodeResourcesLeastAllocated";

/// Scores nodes by the share of CPU and memory left free.
#[derive(Debug, Default)]
pub struct NodeResourcesLeastAllocated;

/// `(capacity - requested) * 100 / capacity`, 0 when full or overfull.
pub fn least_requested_score(requested: i64, capacity: i64) -> i64 {
    if capacity == 0 || requested > capacity {
        return 0;
    }
    (capacity - requested) * MAX_NODE_SCORE / capacity
}

impl ScorePlugin for NodeResourcesLeastAllocated {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let cpu = least_requested_score(
            node.non_zero_requested.milli_cpu + pod.non_zero_milli_cpu,
            node.allocatable.milli_cpu,
        );
        let memory = least_requested_score(
            node.non_zero_requested.memory + pod.non_zero_memory,
            node.allocatable.memory,
        );
        (cpu + memory) / 2
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::scheduler::plugins::testing::{node, pod, pod_with_meta};

    #[test]
    fn emptier_node_scores_higher() {
        let p = pod(json!({"containers": [{"name": "c", "image": "i",
            "resources": {"requests": {"cpu": "1", "memory": "2Gi"}}}]}));
        let empty = node("n1", json!({}));
        let mut busy = node("n2", json!({}));
        busy.add_pod(Arc::new(pod_with_meta(json!({"name": "b", "uid": "b"}), json!({"containers": [
            {"name": "c", "image": "i", "resources": {"requests": {"cpu": "2", "memory": "4Gi"}}}]}))));
        let state = CycleState::default();
        // 4 CPUs, 8Gi: 3/4 and 6/8 free → 75; 1/4 and 2/8 free → 25.
        assert_eq!(NodeResourcesLeastAllocated.score(&state, &p, &empty), 75);
        assert_eq!(NodeResourcesLeastAllocated.score(&state, &p, &busy), 25);
    }

    #[test]
    fn best_effort_pods_count_with_default_requests() {
        let p = pod(json!({}));
        assert_eq!(p.non_zero_milli_cpu, 100);
        assert_eq!(p.non_zero_memory, 200 * 1024 * 1024);
        assert_eq!(p.requests.milli_cpu, 0);
        assert_eq!(least_requested_score(5, 4), 0);
        assert_eq!(least_requested_score(1, 0), 0);
    }
}
