//! One scheduling cycle for one pod: filter the nodes (stopping once enough
//! feasible ones are found), score the feasible ones, pick the best (ties at
//! random); or, when no node fits, explain why in kube-scheduler's words.

use std::collections::HashMap;

use super::cache::Cache;
use super::framework::{Code, CycleState, Framework, Status};
use super::types::{NodeInfo, PodInfo};

/// The message when the cluster has no nodes at all.
pub const ERR_NO_NODES_AVAILABLE: &str = "no nodes available to schedule pods";
/// Preemption's reason for a node where it cannot help.
pub const PREEMPTION_NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";
/// Preemption's reason for a node with no lower-priority pods.
pub const NO_PREEMPTION_VICTIMS: &str = "No preemption victims found for incoming pod";

/// Nodes below this many are all checked.
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// Never check fewer than this share of a large cluster.
const MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND: usize = 5;

/// Why a pod was not placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleError {
    /// No node fits: the statuses of every node, and preemption's verdict.
    Fit(FitError),
    /// There are no nodes.
    NoNodes,
    /// A plugin failed.
    Internal(String),
}

impl ScheduleError {
    /// The message for the PodScheduled condition and the FailedScheduling event.
    pub fn message(&self) -> String {
        match self {
            ScheduleError::Fit(f) => f.message(),
            ScheduleError::NoNodes => ERR_NO_NODES_AVAILABLE.to_string(),
            ScheduleError::Internal(m) => m.clone(),
        }
    }

    /// The PodScheduled condition's reason.
    pub fn reason(&self) -> &'static str {
        match self {
            ScheduleError::Internal(_) => "SchedulerError",
            _ => "Unschedulable",
        }
    }
}

/// Why no node fits, per node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FitError {
    /// How many nodes there are.
    pub num_all_nodes: usize,
    /// A PreFilter's rejection, when one rejected the pod everywhere.
    pub pre_filter_msg: Option<String>,
    /// The failed filter's status, per node.
    pub statuses: Vec<(String, Status)>,
    /// What preemption said (`preemption: …`), when it ran and failed.
    pub post_filter_msg: Option<String>,
}

/// `0/N nodes are available: <count> <reason>, ….` with the "count reason"
/// strings sorted as strings, as kube-scheduler's FitError formats them.
pub fn nodes_available_message<'a>(
    num_all_nodes: usize,
    reasons: impl IntoIterator<Item = &'a str>,
) -> String {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for r in reasons {
        *counts.entry(r).or_default() += 1;
    }
    let mut parts: Vec<String> = counts.iter().map(|(r, n)| format!("{n} {r}")).collect();
    parts.sort();
    let mut msg = format!("0/{num_all_nodes} nodes are available:");
    if !parts.is_empty() {
        msg.push_str(&format!(" {}.", parts.join(", ")));
    }
    msg
}

impl FitError {
    /// The full message, as kube-scheduler 1.32 words it.
    pub fn message(&self) -> String {
        let mut msg = match &self.pre_filter_msg {
            Some(pre) => format!("0/{} nodes are available: {pre}.", self.num_all_nodes),
            None => nodes_available_message(
                self.num_all_nodes,
                self.statuses
                    .iter()
                    .flat_map(|(_, s)| s.reasons.iter().map(String::as_str)),
            ),
        };
        if let Some(post) = &self.post_filter_msg {
            msg.push(' ');
            msg.push_str(post);
        }
        msg
    }
}

/// How many feasible nodes to look for before stopping: all of a small
/// cluster, an adaptive share (50% minus 1% per 125 nodes, at least 5%)
/// of a large one.
pub fn num_feasible_nodes_to_find(num_all_nodes: usize) -> usize {
    if num_all_nodes < MIN_FEASIBLE_NODES_TO_FIND {
        return num_all_nodes;
    }
    let percentage = 50usize
        .saturating_sub(num_all_nodes / 125)
        .max(MIN_FEASIBLE_NODES_PERCENTAGE_TO_FIND);
    (num_all_nodes * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// Find the node for a pod.
pub fn schedule_pod(
    fw: &Framework,
    cache: &mut Cache,
    pod: &PodInfo,
) -> Result<String, ScheduleError> {
    let names = cache.node_names();
    let n = names.len();
    if n == 0 {
        return Err(ScheduleError::NoNodes);
    }
    let mut state = CycleState::default();
    if let Some(s) = fw.run_pre_filter(&mut state, pod) {
        if s.code == Code::Error {
            return Err(ScheduleError::Internal(s.message()));
        }
        return Err(ScheduleError::Fit(FitError {
            num_all_nodes: n,
            pre_filter_msg: Some(s.message()),
            statuses: Vec::new(),
            post_filter_msg: None,
        }));
    }
    let to_find = num_feasible_nodes_to_find(n);
    let start = cache.next_start_node_index % n;
    let mut feasible: Vec<&NodeInfo> = Vec::new();
    let mut statuses = Vec::new();
    let mut processed = 0;
    for i in 0..n {
        let Some(node) = cache.node(&names[(start + i) % n]) else {
            continue;
        };
        processed += 1;
        match fw.run_filter(&state, pod, node) {
            None => {
                feasible.push(node);
                if feasible.len() >= to_find {
                    break;
                }
            }
            Some(s) if s.code == Code::Error => return Err(ScheduleError::Internal(s.message())),
            Some(s) => statuses.push((node.name.clone(), s)),
        }
    }
    let chosen = match feasible.len() {
        0 => None,
        1 => Some(feasible[0].name.clone()),
        _ => {
            let scores = fw.run_score(&mut state, pod, &feasible);
            Some(select_host(
                scores.iter().map(|s| (s.name.as_str(), s.score)),
            ))
        }
    };
    cache.next_start_node_index = (start + processed) % n;
    match chosen {
        Some(node) => Ok(node),
        None => {
            let post_filter_msg = preemption_message(fw, cache, pod, &statuses);
            Err(ScheduleError::Fit(FitError {
                num_all_nodes: n,
                pre_filter_msg: None,
                statuses,
                post_filter_msg,
            }))
        }
    }
}

/// The highest-scored node; among equals, each is equally likely.
pub fn select_host<'a>(scores: impl IntoIterator<Item = (&'a str, i64)>) -> String {
    let mut best: Option<(&str, i64)> = None;
    let mut ties = 0u64;
    for (name, score) in scores {
        match best {
            Some((_, b)) if score < b => {}
            Some((_, b)) if score == b => {
                ties += 1;
                // Reservoir sampling: the k-th equal replaces with chance 1/k.
                if rand::random_range(0..ties) == 0 {
                    best = Some((name, score));
                }
            }
            _ => {
                best = Some((name, score));
                ties = 1;
            }
        }
    }
    best.map(|(n, _)| n.to_string()).unwrap_or_default()
}

/// What kube-scheduler's DefaultPreemption would report for a pod no node
/// fits: `None` when evicting lower-priority pods would make room somewhere
/// (preemption would then go ahead, and its message is empty).
fn preemption_message(
    fw: &Framework,
    cache: &Cache,
    pod: &PodInfo,
    statuses: &[(String, Status)],
) -> Option<String> {
    let spec = pod.pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Some("preemption: not eligible due to preemptionPolicy=Never.".to_string());
    }
    let mut reasons: Vec<Vec<String>> = Vec::with_capacity(statuses.len());
    let mut state = CycleState::default();
    fw.run_pre_filter(&mut state, pod);
    for (name, status) in statuses {
        if status.code == Code::UnschedulableAndUnresolvable {
            reasons.push(vec![PREEMPTION_NOT_HELPFUL.to_string()]);
            continue;
        }
        let Some(node) = cache.node(name) else {
            reasons.push(vec![PREEMPTION_NOT_HELPFUL.to_string()]);
            continue;
        };
        let victims: Vec<String> = node
            .pods
            .values()
            .filter(|p| p.priority < pod.priority)
            .map(|p| p.uid.clone())
            .collect();
        if victims.is_empty() {
            reasons.push(vec![NO_PREEMPTION_VICTIMS.to_string()]);
            continue;
        }
        let mut without = node.clone();
        for uid in &victims {
            without.remove_pod(uid);
        }
        match fw.run_filter(&state, pod, &without) {
            None => return None,
            Some(s) => reasons.push(s.reasons),
        }
    }
    Some(format!(
        "preemption: {}",
        nodes_available_message(statuses.len(), reasons.iter().flatten().map(String::as_str))
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(code: Code, reasons: &[&str]) -> Status {
        Status::new(code, reasons.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn fit_error_message_counts_sorts_and_appends_preemption() {
        let affinity = "node(s) didn't match Pod's node affinity/selector";
        let f = FitError {
            num_all_nodes: 3,
            pre_filter_msg: None,
            statuses: vec![
                (
                    "a".into(),
                    st(Code::UnschedulableAndUnresolvable, &[affinity]),
                ),
                (
                    "b".into(),
                    st(Code::UnschedulableAndUnresolvable, &[affinity]),
                ),
                (
                    "c".into(),
                    st(Code::UnschedulableAndUnresolvable, &[affinity]),
                ),
            ],
            post_filter_msg: Some(format!(
                "preemption: {}",
                nodes_available_message(3, [PREEMPTION_NOT_HELPFUL; 3])
            )),
        };
        assert_eq!(
            f.message(),
            "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. \
             preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling."
        );
        let mixed = nodes_available_message(
            5,
            [
                "Insufficient memory",
                "Insufficient memory",
                "Insufficient memory",
                "node(s) had untolerated taint {dedicated: gpu}",
                "node(s) were unschedulable",
            ],
        );
        assert_eq!(
            mixed,
            "0/5 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
             1 node(s) were unschedulable, 3 Insufficient memory."
        );
    }

    #[test]
    fn feasible_nodes_to_find() {
        assert_eq!(num_feasible_nodes_to_find(3), 3);
        assert_eq!(num_feasible_nodes_to_find(100), 100);
        assert_eq!(num_feasible_nodes_to_find(1000), 420);
        assert_eq!(num_feasible_nodes_to_find(5000), 500);
        assert_eq!(num_feasible_nodes_to_find(200), 100);
    }

    #[test]
    fn select_host_picks_the_best_and_breaks_ties_at_random() {
        assert_eq!(select_host([("a", 1), ("b", 5), ("c", 3)]), "b");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..200 {
            seen.insert(select_host([("a", 5), ("b", 5), ("c", 1)]));
        }
        assert_eq!(seen.len(), 2);
        assert!(!seen.contains("c"));
    }
}
