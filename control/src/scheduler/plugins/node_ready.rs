//! NodeReady: a node whose Ready condition is not True takes no new pods.
//! Kubernetes gets the same effect from the `node.kubernetes.io/not-ready`
//! taint; checking the condition as well keeps a node that was never Ready
//! (no lifecycle taint yet) from receiving pods.

use crate::scheduler::framework::{CycleState, FilterPlugin, Status};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "NodeReady";
/// The reason given for a node that is not Ready.
pub const ERR_REASON_NOT_READY: &str = "node(s) were not ready";

/// Rules out nodes that are not Ready.
#[derive(Debug, Default)]
pub struct NodeReady;

impl FilterPlugin for NodeReady {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, _state: &CycleState, _pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        if node.ready {
            None
        } else {
            Some(Status::unresolvable(ERR_REASON_NOT_READY))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::plugins::testing::{node, pod, run_filter};

    #[test]
    fn ready_node_passes() {
        assert!(run_filter(&NodeReady, &pod(json!({})), &node("n1", json!({}))).is_none());
    }

    #[test]
    fn not_ready_or_unknown_node_is_rejected() {
        for status in ["False", "Unknown"] {
            let n = node(
                "n1",
                json!({"status": {"conditions": [{"type": "Ready", "status": status}]}}),
            );
            let s = run_filter(&NodeReady, &pod(json!({})), &n).expect("rejected");
            assert_eq!(s.reasons, vec![ERR_REASON_NOT_READY]);
        }
        let n = node("n1", json!({"status": {"conditions": []}}));
        assert!(run_filter(&NodeReady, &pod(json!({})), &n).is_some());
    }
}
