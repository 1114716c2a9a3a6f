//! The scheduler cache: every node with the pods counted on it, kept up to
//! date from the watch, plus the pods this scheduler has bound but the watch
//! has not shown yet ("assumed"), so that two pods never both take the last
//! slot on a node.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::core::v1::Node;

use super::types::{NodeInfo, PodInfo};

#[derive(Debug, Clone)]
struct PodState {
    node: String,
    assumed: bool,
}

/// Nodes and the pods counted on them.
#[derive(Default)]
pub struct Cache {
    nodes: HashMap<String, NodeInfo>,
    /// Names of nodes that have a Node object, in the order cycles walk them.
    order: Vec<String>,
    pods: HashMap<String, PodState>,
    /// Where the next cycle starts walking `order`, so that successive pods
    /// are not always checked against the same first nodes.
    pub next_start_node_index: usize,
}

impl Cache {
    /// Node names in walking order.
    pub fn node_names(&self) -> &[String] {
        &self.order
    }

    /// A node by name.
    pub fn node(&self, name: &str) -> Option<&NodeInfo> {
        self.nodes.get(name)
    }

    /// Add or replace a node; true when something the filters or scorers
    /// look at changed (so pods waiting as unschedulable deserve a retry),
    /// false for heartbeat-only updates.
    pub fn add_or_update_node(&mut self, node: Node) -> bool {
        let name = node.metadata.name.clone().unwrap_or_default();
        let info = self
            .nodes
            .entry(name.clone())
            .or_insert_with(|| NodeInfo::named(&name));
        let before = info.node.as_ref().map(|_| {
            (
                info.labels().clone(),
                info.taints().to_vec(),
                info.unschedulable,
                info.ready,
                info.allocatable.clone(),
            )
        });
        info.set_node(Arc::new(node));
        let after = (
            info.labels().clone(),
            info.taints().to_vec(),
            info.unschedulable,
            info.ready,
            info.allocatable.clone(),
        );
        if before.is_none() {
            self.order.push(name);
            return true;
        }
        before.as_ref() != Some(&after)
    }

    /// Forget a node. Its pods stay counted under its name until they go.
    pub fn remove_node(&mut self, name: &str) {
        self.order.retain(|n| n != name);
        if let Some(info) = self.nodes.get_mut(name) {
            info.node = None;
            if info.pods.is_empty() {
                self.nodes.remove(name);
            }
        }
    }

    /// Keep only the named nodes (after a relist).
    pub fn retain_nodes(&mut self, keep: &HashSet<String>) {
        let gone: Vec<String> = self
            .order
            .iter()
            .filter(|n| !keep.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            self.remove_node(&name);
        }
    }

    /// Count a bound pod the watch reported (confirming it when assumed).
    pub fn add_or_update_pod(&mut self, pod: Arc<PodInfo>) {
        let node = pod.node_name().to_string();
        if let Some(old) = self.pods.get(&pod.uid) {
            if old.node != node {
                self.remove_pod(&pod.uid.clone());
            }
        }
        self.nodes
            .entry(node.clone())
            .or_insert_with(|| NodeInfo::named(&node))
            .add_pod(pod.clone());
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                node,
                assumed: false,
            },
        );
    }

    /// Stop counting a pod; true when it was counted (its resources freed).
    pub fn remove_pod(&mut self, uid: &str) -> bool {
        let Some(state) = self.pods.remove(uid) else {
            return false;
        };
        if let Some(info) = self.nodes.get_mut(&state.node) {
            info.remove_pod(uid);
            if info.node.is_none() && info.pods.is_empty() {
                self.nodes.remove(&state.node);
            }
        }
        true
    }

    /// Keep only the listed pods (after a relist); assumed pods stay, their
    /// binding may just not be listed yet. True when a pod was dropped.
    pub fn retain_pods(&mut self, keep: &HashSet<String>) -> bool {
        let gone: Vec<String> = self
            .pods
            .iter()
            .filter(|(uid, s)| !s.assumed && !keep.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &gone {
            self.remove_pod(uid);
        }
        !gone.is_empty()
    }

    /// Count a pod on the node it is being bound to, before the API has
    /// confirmed it.
    pub fn assume(&mut self, pod: Arc<PodInfo>, node: &str) {
        self.nodes
            .entry(node.to_string())
            .or_insert_with(|| NodeInfo::named(node))
            .add_pod(pod.clone());
        self.pods.insert(
            pod.uid.clone(),
            PodState {
                node: node.to_string(),
                assumed: true,
            },
        );
    }

    /// Undo `assume` after a failed binding (unless the watch already
    /// confirmed the pod).
    pub fn forget(&mut self, uid: &str) {
        if self.is_assumed(uid) {
            self.remove_pod(uid);
        }
    }

    /// Whether the pod is bound by this scheduler but not yet seen bound.
    pub fn is_assumed(&self, uid: &str) -> bool {
        self.pods.get(uid).is_some_and(|s| s.assumed)
    }

    /// The node a pod is counted on.
    pub fn pod_node(&self, uid: &str) -> Option<&str> {
        self.pods.get(uid).map(|s| s.node.as_str())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::plugins::testing::pod_with_meta;

    fn node(name: &str, labels: serde_json::Value) -> Node {
        serde_json::from_value(json!({"metadata": {"name": name, "labels": labels},
            "status": {"allocatable": {"cpu": "1", "pods": "10"},
                "conditions": [{"type": "Ready", "status": "True"}]}}))
        .expect("node")
    }

    fn bound(uid: &str, node: &str) -> Arc<PodInfo> {
        Arc::new(pod_with_meta(
            json!({"name": uid, "uid": uid}),
            json!({"nodeName": node, "containers": [{"name": "c", "image": "i",
                "resources": {"requests": {"cpu": "500m"}}}]}),
        ))
    }

    #[test]
    fn only_relevant_node_changes_count() {
        let mut c = Cache::default();
        assert!(c.add_or_update_node(node("n1", json!({}))));
        assert!(!c.add_or_update_node(node("n1", json!({}))));
        assert!(c.add_or_update_node(node("n1", json!({"mysql": "true"}))));
        assert_eq!(c.node_names(), ["n1"]);
    }

    #[test]
    fn assumed_pods_count_until_confirmed_or_forgotten() {
        let mut c = Cache::default();
        c.add_or_update_node(node("n1", json!({})));
        let unbound = Arc::new(pod_with_meta(
            json!({"name": "a", "uid": "a"}),
            json!({"containers": [
            {"name": "c", "image": "i", "resources": {"requests": {"cpu": "500m"}}}]}),
        ));
        c.assume(unbound, "n1");
        assert!(c.is_assumed("a"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500);
        // The watch shows the binding: same pod, counted once.
        c.add_or_update_pod(bound("a", "n1"));
        assert!(!c.is_assumed("a"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 500);
        c.forget("a");
        assert_eq!(
            c.node("n1").unwrap().requested.milli_cpu,
            500,
            "confirmed pods stay"
        );
        assert!(c.remove_pod("a"));
        assert_eq!(c.node("n1").unwrap().requested.milli_cpu, 0);
    }

    #[test]
    fn pods_of_unknown_nodes_are_kept_until_the_node_arrives() {
        let mut c = Cache::default();
        c.add_or_update_pod(bound("a", "n1"));
        assert!(c.node_names().is_empty());
        c.add_or_update_node(node("n1", json!({})));
        assert_eq!(c.node("n1").unwrap().pods.len(), 1);
        c.remove_node("n1");
        assert!(c.node_names().is_empty());
        assert_eq!(c.pod_node("a"), Some("n1"));
    }
}
