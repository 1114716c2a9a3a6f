//! NodePorts: a pod's host ports must be free on the node; `0.0.0.0`
//! conflicts with every address.

use crate::scheduler::framework::{CycleState, FilterPlugin, Status};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "NodePorts";
/// The reason given when a host port is taken.
pub const ERR_REASON: &str = "node(s) didn't have free ports for the requested pod ports";

/// Rules out nodes where a wanted host port is in use.
#[derive(Debug, Default)]
pub struct NodePorts;

impl FilterPlugin for NodePorts {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        if pod.host_ports.iter().any(|p| node.port_conflicts(p)) {
            Some(Status::unschedulable(ERR_REASON))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{json, Value};

    use super::*;
    use crate::scheduler::plugins::testing::{node, pod_with_meta, run_filter};

    fn with_port(uid: &str, port: Value) -> PodInfo {
        pod_with_meta(
            json!({"name": uid, "uid": uid}),
            json!({"containers": [{"name": "c", "image": "i", "ports": [port]}]}),
        )
    }

    #[test]
    fn conflicts() {
        let mut n = node("n1", json!({}));
        n.add_pod(Arc::new(with_port(
            "a",
            json!({"containerPort": 80, "hostPort": 8080}),
        )));
        let cases = [
            (json!({"containerPort": 80, "hostPort": 8080}), false),
            (
                json!({"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.2"}),
                false,
            ),
            (
                json!({"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}),
                true,
            ),
            (json!({"containerPort": 80, "hostPort": 8081}), true),
            (json!({"containerPort": 8080}), true),
        ];
        for (port, fits) in cases {
            let got = run_filter(&NodePorts, &with_port("b", port.clone()), &n);
            assert_eq!(got.is_none(), fits, "{port}");
            if let Some(s) = got {
                assert_eq!(s.reasons, vec![ERR_REASON]);
            }
        }
    }

    #[test]
    fn distinct_host_ips_do_not_conflict() {
        let mut n = node("n1", json!({}));
        n.add_pod(Arc::new(with_port(
            "a",
            json!({"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.2"}),
        )));
        let other = with_port(
            "b",
            json!({"containerPort": 80, "hostPort": 8080, "hostIP": "127.0.0.3"}),
        );
        assert!(run_filter(&NodePorts, &other, &n).is_none());
        let any = with_port("c", json!({"containerPort": 80, "hostPort": 8080}));
        assert!(run_filter(&NodePorts, &any, &n).is_some());
        n.remove_pod("a");
        assert!(run_filter(&NodePorts, &any, &n).is_none());
    }
}
