//! What the DaemonSet controller asks of nodes and templates (Kubernetes'
//! `pkg/controller/daemon/util`): whether a daemon pod should run on a
//! node, the tolerations every daemon pod gets, the pod pinned to a node,
//! and the template hash that tells old pods from new.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{
    Affinity, Node, NodeAffinity, NodeSelector, NodeSelectorRequirement, NodeSelectorTerm, Pod,
    PodSpec, Toleration,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use crate::controllers::replicaset::pods;
use crate::scheduler::plugins::node_affinity::CompiledTerm;
use crate::scheduler::plugins::taint_toleration::find_untolerated;

/// The label carrying the template hash.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The controller reference a DaemonSet puts on its pods.
pub fn controller_ref(ds: &DaemonSet) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "DaemonSet".into(),
        name: ds.metadata.name.clone().unwrap_or_default(),
        uid: ds.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// A stable hash of the pod template (FNV-1a over its JSON), standing in
/// for the ControllerRevision hash.
pub fn template_hash(ds: &DaemonSet) -> String {
    let template = ds.spec.as_ref().map(|s| &s.template);
    let text = serde_json::to_string(&template).unwrap_or_default();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    // Kubernetes' revision hashes are short lowercase strings.
    format!("{:x}", h & 0xff_ffff_ffff)
}

fn toleration(key: &str, effect: &str) -> Toleration {
    Toleration {
        key: Some(key.into()),
        operator: Some("Exists".into()),
        effect: Some(effect.into()),
        ..Default::default()
    }
}

/// Kubernetes' `AddOrUpdateDaemonPodTolerations`: daemons run on nodes
/// that are not ready, unreachable, under pressure or cordoned.
pub fn add_daemon_tolerations(spec: &mut PodSpec) {
    let mut add = vec![
        toleration("node.kubernetes.io/not-ready", "NoExecute"),
        toleration("node.kubernetes.io/unreachable", "NoExecute"),
        toleration("node.kubernetes.io/disk-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/memory-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/pid-pressure", "NoSchedule"),
        toleration("node.kubernetes.io/unschedulable", "NoSchedule"),
    ];
    if spec.host_network == Some(true) {
        add.push(toleration(
            "node.kubernetes.io/network-unavailable",
            "NoSchedule",
        ));
    }
    let list = spec.tolerations.get_or_insert_with(Vec::new);
    for t in add {
        if !list
            .iter()
            .any(|x| x.key == t.key && x.effect == t.effect && x.operator == t.operator)
        {
            list.push(t);
        }
    }
}

/// Whether the daemon pod should run on `node`: nodeSelector, required
/// node affinity, and the node's NoSchedule / NoExecute taints.
pub fn should_run(ds: &DaemonSet, node: &Node) -> bool {
    let Some(mut spec) = ds.spec.as_ref().and_then(|s| s.template.spec.clone()) else {
        return false;
    };
    add_daemon_tolerations(&mut spec);
    let labels = node.metadata.labels.clone().unwrap_or_default();
    let name = node.metadata.name.clone().unwrap_or_default();
    if let Some(sel) = &spec.node_selector {
        if !sel.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            return false;
        }
    }
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    if let Some(req) = required {
        let any = req
            .node_selector_terms
            .iter()
            .any(|t| CompiledTerm::new(t).matches(&name, &labels));
        if !any {
            return false;
        }
    }
    let taints = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let tolerations = spec.tolerations.clone().unwrap_or_default();
    find_untolerated(&taints, &tolerations, &["NoSchedule", "NoExecute"]).is_none()
}

/// The node a daemon pod is for: its nodeName, else the node its
/// `matchFields metadata.name` affinity pins it to.
pub fn node_of(pod: &Pod) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if let Some(n) = &spec.node_name {
        return Some(n.clone());
    }
    spec.affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .iter()
        .flat_map(|t| t.match_fields.iter().flatten())
        .find(|r| r.key == "metadata.name" && r.operator == "In")
        .and_then(|r| r.values.as_ref()?.first().cloned())
}

/// The daemon pod for `node`: the template with the revision label, the
/// daemon tolerations, and the required node affinity replaced by one term
/// naming the node (Kubernetes' `ReplaceDaemonSetPodNodeNameNodeAffinity`),
/// which the scheduler then honours.
pub fn new_pod(ds: &DaemonSet, node: &str, hash: &str) -> Pod {
    let ns = ds.metadata.namespace.clone().unwrap_or_default();
    let name = ds.metadata.name.clone().unwrap_or_default();
    let template = ds
        .spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default();
    let mut pod = pods::from_template(&template, &ns, &name, controller_ref(ds));
    pod.metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_LABEL.into(), hash.into());
    let spec = pod.spec.get_or_insert_with(Default::default);
    add_daemon_tolerations(spec);
    let term = NodeSelectorTerm {
        match_fields: Some(vec![NodeSelectorRequirement {
            key: "metadata.name".into(),
            operator: "In".into(),
            values: Some(vec![node.to_string()]),
        }]),
        ..Default::default()
    };
    let affinity = spec.affinity.get_or_insert_with(Affinity::default);
    let node_affinity = affinity
        .node_affinity
        .get_or_insert_with(NodeAffinity::default);
    node_affinity.required_during_scheduling_ignored_during_execution = Some(NodeSelector {
        node_selector_terms: vec![term],
    });
    pod
}

/// maxUnavailable as a count of `desired` (percentages round up, as
/// Kubernetes rounds them for DaemonSets); at least 1.
pub fn max_unavailable(ds: &DaemonSet, desired: i32) -> i32 {
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    let value = ds
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.max_unavailable.clone());
    let n = match value {
        None => 1,
        Some(IntOrString::Int(i)) => i,
        Some(IntOrString::String(s)) => {
            match s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) {
                Some(p) => ((p * i64::from(desired) + 99) / 100) as i32,
                None => 1,
            }
        }
    };
    n.max(1)
}

/// Whether the DaemonSet updates with OnDelete (old pods stay until deleted).
pub fn on_delete(ds: &DaemonSet) -> bool {
    ds.spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref())
        == Some("OnDelete")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selector_taints_and_pinning() {
        let ds: DaemonSet = serde_json::from_value(json!({
            "metadata": {"name": "d", "namespace": "default", "uid": "u"},
            "spec": {"selector": {"matchLabels": {"a": "b"}}, "template": {
                "metadata": {"labels": {"a": "b"}},
                "spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c"}]}}}
        }))
        .unwrap();
        let mut node: Node = serde_json::from_value(json!({
            "metadata": {"name": "n1", "labels": {"disk": "ssd"}},
            "spec": {"taints": [{"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}]}
        }))
        .unwrap();
        assert!(should_run(&ds, &node));
        node.spec.as_mut().unwrap().taints.as_mut().unwrap()[0].key = "other".into();
        assert!(!should_run(&ds, &node));
        node.spec = None;
        node.metadata.labels = None;
        assert!(!should_run(&ds, &node));
        let pod = new_pod(&ds, "n1", &template_hash(&ds));
        assert_eq!(node_of(&pod).as_deref(), Some("n1"));
        assert_eq!(pod.metadata.generate_name.as_deref(), Some("d-"));
    }
}
