//! NodeUnschedulable: a cordoned node (`spec.unschedulable`) takes no new
//! pods, unless the pod tolerates the `node.kubernetes.io/unschedulable`
//! NoSchedule taint (as DaemonSet pods do).

use k8s_openapi::api::core::v1::Taint;

use super::taint_toleration::tolerates;
use crate::scheduler::framework::{CycleState, FilterPlugin, Status};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "NodeUnschedulable";
/// The reason given for a cordoned node.
pub const ERR_REASON_UNSCHEDULABLE: &str = "node(s) were unschedulable";
/// The taint that stands for `spec.unschedulable`.
pub const TAINT_NODE_UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// Rules out cordoned nodes.
#[derive(Debug, Default)]
pub struct NodeUnschedulable;

impl FilterPlugin for NodeUnschedulable {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        if !node.unschedulable {
            return None;
        }
        let taint = Taint {
            key: TAINT_NODE_UNSCHEDULABLE.to_string(),
            effect: "NoSchedule".to_string(),
            ..Default::default()
        };
        if pod.tolerations().iter().any(|t| tolerates(t, &taint)) {
            return None;
        }
        Some(Status::unresolvable(ERR_REASON_UNSCHEDULABLE))
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::plugins::testing::{node, pod, run_filter};

    #[test]
    fn cordoned_node_is_rejected() {
        let n = node("n1", json!({"spec": {"unschedulable": true}}));
        let s = run_filter(&NodeUnschedulable, &pod(json!({})), &n).expect("rejected");
        assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
        assert_eq!(s.reasons, vec![ERR_REASON_UNSCHEDULABLE]);
    }

    #[test]
    fn schedulable_node_passes() {
        assert!(run_filter(&NodeUnschedulable, &pod(json!({})), &node("n1", json!({}))).is_none());
    }

    #[test]
    fn toleration_of_the_unschedulable_taint_passes() {
        let n = node("n1", json!({"spec": {"unschedulable": true}}));
        let p = pod(json!({"tolerations": [
            {"key": TAINT_NODE_UNSCHEDULABLE, "operator": "Exists", "effect": "NoSchedule"}
        ]}));
        assert!(run_filter(&NodeUnschedulable, &p, &n).is_none());
    }
}
