//! TaintToleration: a pod goes only where it tolerates every NoSchedule and
//! NoExecute taint, and prefers nodes with fewer PreferNoSchedule taints it
//! does not tolerate.

use k8s_openapi::api::core::v1::{Taint, Toleration};

use crate::scheduler::framework::{
    default_normalize_score, CycleState, FilterPlugin, NodeScore, ScorePlugin, Status,
    MAX_NODE_SCORE,
};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "TaintToleration";

/// Whether a toleration tolerates a taint: the effect matches (or the
/// toleration names none), the key matches (or is empty with `Exists`), and
/// for `Equal` the value matches.
pub fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = t.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    if let Some(key) = t.key.as_deref().filter(|k| !k.is_empty()) {
        if key != taint.key {
            return false;
        }
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" | "" => t.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or(""),
        _ => false,
    }
}

/// The first taint with one of `effects` that no toleration tolerates.
pub fn find_untolerated<'a>(
    taints: &'a [Taint],
    tolerations: &[Toleration],
    effects: &[&str],
) -> Option<&'a Taint> {
    taints
        .iter()
        .filter(|t| effects.contains(&t.effect.as_str()))
        .find(|taint| !tolerations.iter().any(|t| tolerates(t, taint)))
}

/// Filters on NoSchedule / NoExecute taints; scores on PreferNoSchedule.
#[derive(Debug, Default)]
pub struct TaintToleration;

impl FilterPlugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn filter(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        let taint = find_untolerated(
            node.taints(),
            pod.tolerations(),
            &["NoSchedule", "NoExecute"],
        )?;
        Some(Status::unresolvable(format!(
            "node(s) had untolerated taint {{{}: {}}}",
            taint.key,
            taint.value.as_deref().unwrap_or("")
        )))
    }
}

impl ScorePlugin for TaintToleration {
    fn name(&self) -> &'static str {
        NAME
    }

    fn score(&self, _state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        // A toleration's effect must match the taint's, so only tolerations
        // of PreferNoSchedule (or of every effect) can apply here.
        node.taints()
            .iter()
            .filter(|taint| taint.effect == "PreferNoSchedule")
            .filter(|taint| !pod.tolerations().iter().any(|t| tolerates(t, taint)))
            .count() as i64
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) {
        default_normalize_score(MAX_NODE_SCORE, true, scores);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::framework::Code;
    use crate::scheduler::plugins::testing::{node, pod, run_filter};

    fn tainted(effect: &str) -> NodeInfo {
        node(
            "n1",
            json!({"spec": {"taints": [{"key": "dedicated", "value": "db", "effect": effect}]}}),
        )
    }

    #[test]
    fn no_schedule_and_no_execute_taints_reject_untolerating_pods() {
        for effect in ["NoSchedule", "NoExecute"] {
            let s =
                run_filter(&TaintToleration, &pod(json!({})), &tainted(effect)).expect("rejected");
            assert_eq!(s.code, Code::UnschedulableAndUnresolvable);
            assert_eq!(
                s.reasons,
                vec!["node(s) had untolerated taint {dedicated: db}"]
            );
        }
        assert!(run_filter(
            &TaintToleration,
            &pod(json!({})),
            &tainted("PreferNoSchedule")
        )
        .is_none());
    }

    #[test]
    fn tolerations_match_by_key_value_operator_and_effect() {
        let cases = [
            (
                json!({"key": "dedicated", "value": "db", "effect": "NoSchedule"}),
                true,
            ),
            (
                json!({"key": "dedicated", "operator": "Equal", "value": "db"}),
                true,
            ),
            (json!({"key": "dedicated", "operator": "Exists"}), true),
            (json!({"operator": "Exists"}), true),
            (json!({"key": "dedicated", "value": "web"}), false),
            (
                json!({"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}),
                false,
            ),
            (json!({"key": "other", "operator": "Exists"}), false),
        ];
        for (toleration, ok) in cases {
            let p = pod(json!({"tolerations": [toleration.clone()]}));
            let got = run_filter(&TaintToleration, &p, &tainted("NoSchedule")).is_none();
            assert_eq!(got, ok, "{toleration}");
        }
    }

    #[test]
    fn prefer_no_schedule_scores_lower() {
        let p = pod(json!({}));
        let state = CycleState::default();
        let a = tainted("PreferNoSchedule");
        let b = node("n2", json!({}));
        let mut scores = vec![
            NodeScore {
                name: "n1".into(),
                score: TaintToleration.score(&state, &p, &a),
            },
            NodeScore {
                name: "n2".into(),
                score: TaintToleration.score(&state, &p, &b),
            },
        ];
        TaintToleration.normalize_score(&state, &p, &mut scores);
        assert_eq!(scores[0].score, 0);
        assert_eq!(scores[1].score, MAX_NODE_SCORE);
    }
}
