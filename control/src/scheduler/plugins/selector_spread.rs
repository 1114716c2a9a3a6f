//! SelectorSpread: spread the pods of one controller (the owner with
//! `controller: true`, by uid) across nodes, and across zones when nodes
//! carry zone labels, by preferring nodes that run fewer of its pods.

use std::collections::HashMap;

use crate::scheduler::framework::{CycleState, NodeScore, ScorePlugin, MAX_NODE_SCORE};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "SelectorSpread";

/// How much the zone spread counts against the node spread.
const ZONE_WEIGHTING: f64 = 2.0 / 3.0;

const PRE_SCORE_KEY: &str = "PreScoreSelectorSpread";

/// Zones of the scored nodes, by node name.
type NodeZones = HashMap<String, String>;

/// Scores nodes by how few pods of the pod's controller they run.
#[derive(Debug, Default)]
pub struct SelectorSpread;

impl ScorePlugin for SelectorSpread {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(&self, state: &mut CycleState, _pod: &PodInfo, nodes: &[&NodeInfo]) {
        let zones: NodeZones = nodes
            .iter()
            .filter_map(|n| n.zone.clone().map(|z| (n.name.clone(), z)))
            .collect();
        state.write(PRE_SCORE_KEY, zones);
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        match &pod.owner_uid {
            Some(owner) => i64::from(node.owner_counts.get(owner).copied().unwrap_or(0)),
            None => 0,
        }
    }

    fn normalize_score(&self, state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) {
        let empty = NodeZones::new();
        let zones = state.read::<NodeZones>(PRE_SCORE_KEY).unwrap_or(&empty);
        let max_by_node = scores.iter().map(|s| s.score).max().unwrap_or(0);
        let mut by_zone: HashMap<&str, i64> = HashMap::new();
        for s in scores.iter() {
            if let Some(z) = zones.get(&s.name) {
                *by_zone.entry(z.as_str()).or_default() += s.score;
            }
        }
        let max_by_zone = by_zone.values().copied().max().unwrap_or(0);
        let have_zones = !by_zone.is_empty();
        let max = MAX_NODE_SCORE as f64;
        for s in scores.iter_mut() {
            let mut f = if max_by_node > 0 {
                max * (max_by_node - s.score) as f64 / max_by_node as f64
            } else {
                max
            };
            if have_zones {
                if let Some(z) = zones.get(&s.name) {
                    let zone_score = if max_by_zone > 0 {
                        max * (max_by_zone - by_zone[z.as_str()]) as f64 / max_by_zone as f64
                    } else {
                        max
                    };
                    f = f * (1.0 - ZONE_WEIGHTING) + ZONE_WEIGHTING * zone_score;
                }
            }
            s.score = f as i64;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::scheduler::plugins::testing::{node, pod_with_meta};

    fn owned(uid: &str) -> PodInfo {
        pod_with_meta(
            json!({"name": uid, "uid": uid, "ownerReferences": [{"apiVersion": "apps/v1",
                "kind": "ReplicaSet", "name": "rs", "uid": "rs-1", "controller": true}]}),
            json!({}),
        )
    }

    fn scores(nodes: &[NodeInfo], p: &PodInfo) -> Vec<i64> {
        let mut state = CycleState::default();
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        SelectorSpread.pre_score(&mut state, p, &refs);
        let mut s: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name.clone(),
                score: SelectorSpread.score(&state, p, n),
            })
            .collect();
        SelectorSpread.normalize_score(&state, p, &mut s);
        s.into_iter().map(|s| s.score).collect()
    }

    #[test]
    fn nodes_with_fewer_sibling_pods_score_higher() {
        let mut a = node("a", json!({}));
        let mut b = node("b", json!({}));
        let c = node("c", json!({}));
        a.add_pod(Arc::new(owned("p1")));
        a.add_pod(Arc::new(owned("p2")));
        b.add_pod(Arc::new(owned("p3")));
        assert_eq!(scores(&[a, b, c], &owned("new")), vec![0, 50, 100]);
    }

    #[test]
    fn pods_without_controller_score_equally() {
        let p = pod_with_meta(json!({"name": "x", "uid": "x"}), json!({}));
        let mut a = node("a", json!({}));
        a.add_pod(Arc::new(owned("p1")));
        assert_eq!(scores(&[a, node("b", json!({}))], &p), vec![100, 100]);
    }

    #[test]
    fn zones_weigh_in() {
        let zone = |name: &str, z: &str| {
            node(
                name,
                json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}}),
            )
        };
        let mut a = zone("a", "z1");
        let b = zone("b", "z1");
        let c = zone("c", "z2");
        a.add_pod(Arc::new(owned("p1")));
        let got = scores(&[a, b, c], &owned("new"));
        // b is empty but shares a zone with a; c is empty in an empty zone.
        assert!(got[2] > got[1] && got[1] > got[0], "{got:?}");
        assert_eq!(got, vec![0, 33, 100]);
    }
}
