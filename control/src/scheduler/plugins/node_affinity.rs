//! NodeAffinity: `spec.nodeSelector` and the required node affinity decide
//! where a pod may go; the preferred node affinity adds to a node's score.
//! Terms are ORed, expressions within a term ANDed; a term that fails to
//! parse, or is empty, matches no node (Kubernetes' lazy-error selector).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm};
use kedge_config::selector::{Operator, Requirement};

use crate::scheduler::framework::{
    default_normalize_score, CycleState, FilterPlugin, NodeScore, ScorePlugin, Status,
    MAX_NODE_SCORE,
};
use crate::scheduler::types::{NodeInfo, PodInfo};

/// The plugin's name.
pub const NAME: &str = "NodeAffinity";
/// The reason given when the selector or required affinity does not match.
pub const ERR_REASON_POD: &str = "node(s) didn't match Pod's node affinity/selector";

const PRE_FILTER_KEY: &str = "PreFilterNodeAffinity";
const PRE_SCORE_KEY: &str = "PreScoreNodeAffinity";

/// A node selector term, parsed once per pod.
#[derive(Debug, Clone)]
pub struct CompiledTerm {
    labels: Vec<Requirement>,
    /// `matchFields`: only `metadata.name` with In / NotIn exists.
    fields: Vec<(bool, Vec<String>)>,
    valid: bool,
}

impl CompiledTerm {
    /// Parse a term; a term that cannot be parsed never matches.
    pub fn new(term: &NodeSelectorTerm) -> Self {
        let mut valid = true;
        let mut labels = Vec::new();
        for r in term.match_expressions.iter().flatten() {
            match requirement(r) {
                Some(req) => labels.push(req),
                None => valid = false,
            }
        }
        let mut fields = Vec::new();
        for r in term.match_fields.iter().flatten() {
            let values = r.values.clone().unwrap_or_default();
            match (r.key.as_str(), r.operator.as_str()) {
                ("metadata.name", "In") => fields.push((true, values)),
                ("metadata.name", "NotIn") => fields.push((false, values)),
                _ => valid = false,
            }
        }
        if labels.is_empty() && fields.is_empty() {
            valid = false;
        }
        CompiledTerm {
            labels,
            fields,
            valid,
        }
    }

    /// Whether a node matches the term.
    pub fn matches(&self, name: &str, labels: &BTreeMap<String, String>) -> bool {
        self.valid
            && self.labels.iter().all(|r| r.matches(labels))
            && self
                .fields
                .iter()
                .all(|(is_in, values)| values.iter().any(|v| v == name) == *is_in)
    }
}

fn requirement(r: &NodeSelectorRequirement) -> Option<Requirement> {
    let op = match r.operator.as_str() {
        "In" => Operator::In,
        "NotIn" => Operator::NotIn,
        "Exists" => Operator::Exists,
        "DoesNotExist" => Operator::DoesNotExist,
        "Gt" => Operator::GreaterThan,
        "Lt" => Operator::LessThan,
        _ => return None,
    };
    Requirement::new(&r.key, op, r.values.clone().unwrap_or_default()).ok()
}

/// What the filter checks for one pod.
#[derive(Debug, Clone, Default)]
pub struct RequiredNodeAffinity {
    node_selector: BTreeMap<String, String>,
    /// `None` when the pod has no required node affinity.
    terms: Option<Vec<CompiledTerm>>,
}

impl RequiredNodeAffinity {
    /// Compile the pod's nodeSelector and required node affinity.
    pub fn of(pod: &PodInfo) -> Self {
        let spec = pod.pod.spec.as_ref();
        let node_selector = spec
            .and_then(|s| s.node_selector.clone())
            .unwrap_or_default();
        let terms = spec
            .and_then(|s| s.affinity.as_ref())
            .and_then(|a| a.node_affinity.as_ref())
            .and_then(|a| {
                a.required_during_scheduling_ignored_during_execution
                    .as_ref()
            })
            .map(|sel| {
                sel.node_selector_terms
                    .iter()
                    .map(CompiledTerm::new)
                    .collect()
            });
        RequiredNodeAffinity {
            node_selector,
            terms,
        }
    }

    /// Whether the node satisfies both the nodeSelector and the affinity.
    pub fn matches(&self, node: &NodeInfo) -> bool {
        let labels = node.labels();
        if !self
            .node_selector
            .iter()
            .all(|(k, v)| labels.get(k) == Some(v))
        {
            return false;
        }
        match &self.terms {
            None => true,
            Some(terms) => terms.iter().any(|t| t.matches(&node.name, labels)),
        }
    }
}

/// Filters on nodeSelector and required affinity; scores preferred affinity.
#[derive(Debug, Default)]
pub struct NodeAffinity;

impl FilterPlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_filter(&self, state: &mut CycleState, pod: &PodInfo) -> Option<Status> {
        state.write(PRE_FILTER_KEY, RequiredNodeAffinity::of(pod));
        None
    }

    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        let owned;
        let required = match state.read::<RequiredNodeAffinity>(PRE_FILTER_KEY) {
            Some(r) => r,
            None => {
                owned = RequiredNodeAffinity::of(pod);
                &owned
            }
        };
        if required.matches(node) {
            None
        } else {
            Some(Status::unresolvable(ERR_REASON_POD))
        }
    }
}

type PreferredTerms = Vec<(i64, CompiledTerm)>;

fn preferred_terms(pod: &PodInfo) -> PreferredTerms {
    pod.pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_ref()
        })
        .into_iter()
        .flatten()
        .filter(|t| t.weight != 0)
        .map(|t| (i64::from(t.weight), CompiledTerm::new(&t.preference)))
        .collect()
}

impl ScorePlugin for NodeAffinity {
    fn name(&self) -> &'static str {
        NAME
    }

    fn pre_score(&self, state: &mut CycleState, pod: &PodInfo, _nodes: &[&NodeInfo]) {
        state.write(PRE_SCORE_KEY, preferred_terms(pod));
    }

    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64 {
        let owned;
        let terms = match state.read::<PreferredTerms>(PRE_SCORE_KEY) {
            Some(t) => t,
            None => {
                owned = preferred_terms(pod);
                &owned
            }
        };
        let labels = node.labels();
        terms
            .iter()
            .filter(|(_, t)| t.matches(&node.name, labels))
            .map(|(w, _)| w)
            .sum()
    }

    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, scores: &mut [NodeScore]) {
        default_normalize_score(MAX_NODE_SCORE, false, scores);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{json, Value};

    use super::*;
    use crate::scheduler::plugins::testing::{node, pod, run_filter};

    fn labelled(labels: Value) -> NodeInfo {
        node("n1", json!({"metadata": {"labels": labels}}))
    }

    fn required(terms: Value) -> PodInfo {
        pod(json!({"affinity": {"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}
        }}}))
    }

    fn fits(p: &PodInfo, n: &NodeInfo) -> bool {
        run_filter(&NodeAffinity, p, n).is_none()
    }

    #[test]
    fn node_selector_must_match_every_label() {
        let p = pod(json!({"nodeSelector": {"mysql": "true", "disk": "ssd"}}));
        assert!(fits(
            &p,
            &labelled(json!({"mysql": "true", "disk": "ssd", "x": "y"}))
        ));
        let s =
            run_filter(&NodeAffinity, &p, &labelled(json!({"mysql": "true"}))).expect("rejected");
        assert_eq!(s.reasons, vec![ERR_REASON_POD]);
        assert!(!fits(
            &p,
            &labelled(json!({"mysql": "false", "disk": "ssd"}))
        ));
    }

    #[test]
    fn expression_operators() {
        let n = labelled(json!({"zone": "a", "cores": "8"}));
        let cases = [
            (
                json!({"key": "zone", "operator": "In", "values": ["a", "b"]}),
                true,
            ),
            (
                json!({"key": "zone", "operator": "In", "values": ["b"]}),
                false,
            ),
            (
                json!({"key": "zone", "operator": "NotIn", "values": ["b"]}),
                true,
            ),
            (
                json!({"key": "missing", "operator": "NotIn", "values": ["b"]}),
                true,
            ),
            (
                json!({"key": "zone", "operator": "NotIn", "values": ["a"]}),
                false,
            ),
            (json!({"key": "zone", "operator": "Exists"}), true),
            (json!({"key": "missing", "operator": "Exists"}), false),
            (json!({"key": "missing", "operator": "DoesNotExist"}), true),
            (json!({"key": "zone", "operator": "DoesNotExist"}), false),
            (
                json!({"key": "cores", "operator": "Gt", "values": ["4"]}),
                true,
            ),
            (
                json!({"key": "cores", "operator": "Gt", "values": ["8"]}),
                false,
            ),
            (
                json!({"key": "cores", "operator": "Lt", "values": ["16"]}),
                true,
            ),
            (
                json!({"key": "zone", "operator": "Lt", "values": ["16"]}),
                false,
            ),
            (
                json!({"key": "cores", "operator": "Gt", "values": ["x"]}),
                false,
            ),
            (
                json!({"key": "zone", "operator": "Bogus", "values": ["a"]}),
                false,
            ),
        ];
        for (expr, want) in cases {
            let p = required(json!([{"matchExpressions": [expr.clone()]}]));
            assert_eq!(fits(&p, &n), want, "{expr}");
        }
    }

    #[test]
    fn terms_are_ored_and_expressions_anded() {
        let n = labelled(json!({"zone": "a", "disk": "hdd"}));
        let both = json!([{"matchExpressions": [
            {"key": "zone", "operator": "In", "values": ["a"]},
            {"key": "disk", "operator": "In", "values": ["ssd"]}
        ]}]);
        assert!(!fits(&required(both), &n));
        let either = json!([
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]},
            {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
        ]);
        assert!(fits(&required(either), &n));
        assert!(
            !fits(&required(json!([{}])), &n),
            "an empty term matches nothing"
        );
    }

    #[test]
    fn match_fields_on_node_name() {
        let n = node("n1", json!({}));
        let p = required(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "In", "values": ["n1"]}
        ]}]));
        assert!(fits(&p, &n));
        assert!(!fits(&p, &node("n2", json!({}))));
        let p = required(json!([{"matchFields": [
            {"key": "metadata.name", "operator": "NotIn", "values": ["n1"]}
        ]}]));
        assert!(!fits(&p, &n));
        let p = required(json!([{"matchFields": [
            {"key": "metadata.uid", "operator": "In", "values": ["n1"]}
        ]}]));
        assert!(!fits(&p, &n));
    }

    #[test]
    fn preferred_affinity_scores_matching_nodes_higher() {
        let p = pod(json!({"affinity": {"nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 10, "preference": {"matchExpressions": [
                    {"key": "disk", "operator": "In", "values": ["ssd"]}]}},
                {"weight": 5, "preference": {"matchExpressions": [
                    {"key": "zone", "operator": "In", "values": ["a"]}]}}
            ]
        }}}));
        let nodes = [
            labelled(json!({"disk": "ssd", "zone": "a"})),
            labelled(json!({"zone": "a"})),
            labelled(json!({})),
        ];
        let mut state = CycleState::default();
        let refs: Vec<&NodeInfo> = nodes.iter().collect();
        NodeAffinity.pre_score(&mut state, &p, &refs);
        let mut scores: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name.clone(),
                score: NodeAffinity.score(&state, &p, n),
            })
            .collect();
        NodeAffinity.normalize_score(&state, &p, &mut scores);
        let got: Vec<i64> = scores.iter().map(|s| s.score).collect();
        assert_eq!(got, vec![100, 33, 0]);
    }
}
