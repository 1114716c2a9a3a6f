//! The scheduling framework: the plugin interfaces (`FilterPlugin`,
//! `ScorePlugin`), their `Status`, the per-cycle `CycleState`, and the
//! `Framework` that runs a profile's plugins in order.

use std::any::Any;
use std::collections::HashMap;

use super::types::{NodeInfo, PodInfo};

/// The highest score a plugin gives a node.
pub const MAX_NODE_SCORE: i64 = 100;
/// The lowest score a plugin gives a node.
pub const MIN_NODE_SCORE: i64 = 0;

/// Why a plugin did not succeed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    /// Something went wrong inside the plugin.
    Error,
    /// The pod does not fit now; preempting other pods might change that.
    Unschedulable,
    /// The pod does not fit and preemption cannot help (labels, taints, …).
    UnschedulableAndUnresolvable,
}

/// The result of a plugin that did not succeed. Plugins return
/// `Option<Status>`: `None` is success, as a nil `*Status` is in Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The kind of failure.
    pub code: Code,
    /// The reasons, in the words that end up in `FailedScheduling`.
    pub reasons: Vec<String>,
    /// The plugin that failed (set by the framework).
    pub plugin: &'static str,
}

impl Status {
    /// A status with a code and reasons.
    pub fn new(code: Code, reasons: Vec<String>) -> Self {
        Status {
            code,
            reasons,
            plugin: "",
        }
    }

    /// `Unschedulable` with one reason.
    pub fn unschedulable(reason: impl Into<String>) -> Self {
        Self::new(Code::Unschedulable, vec![reason.into()])
    }

    /// `UnschedulableAndUnresolvable` with one reason.
    pub fn unresolvable(reason: impl Into<String>) -> Self {
        Self::new(Code::UnschedulableAndUnresolvable, vec![reason.into()])
    }

    /// `Error` with a message.
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Code::Error, vec![message.into()])
    }

    /// The reasons joined as one message.
    pub fn message(&self) -> String {
        self.reasons.join(", ")
    }

    /// Whether the pod was rejected (as opposed to an internal error).
    pub fn is_rejected(&self) -> bool {
        matches!(
            self.code,
            Code::Unschedulable | Code::UnschedulableAndUnresolvable
        )
    }
}

/// Data plugins compute once per pod in PreFilter / PreScore and read for
/// every node, stored under `"PreFilter" + Name` like Kubernetes' CycleState.
#[derive(Default)]
pub struct CycleState {
    data: HashMap<String, Box<dyn Any + Send + Sync>>,
}

impl CycleState {
    /// Store a value under a key.
    pub fn write<T: Any + Send + Sync>(&mut self, key: impl Into<String>, value: T) {
        self.data.insert(key.into(), Box::new(value));
    }

    /// Read a value stored under a key.
    pub fn read<T: Any + Send + Sync>(&self, key: &str) -> Option<&T> {
        self.data.get(key).and_then(|v| v.downcast_ref())
    }
}

/// A plugin that rules nodes out.
pub trait FilterPlugin: Send + Sync {
    /// The plugin's name, as in a scheduler profile.
    fn name(&self) -> &'static str;

    /// Work done once per pod before any node is filtered.
    fn pre_filter(&self, _state: &mut CycleState, _pod: &PodInfo) -> Option<Status> {
        None
    }

    /// Whether the pod may run on the node; `None` means it may.
    fn filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Option<Status>;
}

/// A node and the score it was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeScore {
    /// The node's name.
    pub name: String,
    /// Its score.
    pub score: i64,
}

/// A plugin that ranks the nodes that passed filtering.
pub trait ScorePlugin: Send + Sync {
    /// The plugin's name, as in a scheduler profile.
    fn name(&self) -> &'static str;

    /// Work done once per pod before any node is scored.
    fn pre_score(&self, _state: &mut CycleState, _pod: &PodInfo, _nodes: &[&NodeInfo]) {}

    /// The node's raw score.
    fn score(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> i64;

    /// Bring raw scores into `MIN_NODE_SCORE..=MAX_NODE_SCORE`; the default
    /// leaves them as they are (for plugins that already score in range).
    fn normalize_score(&self, _state: &CycleState, _pod: &PodInfo, _scores: &mut [NodeScore]) {}
}

/// Scale scores so the highest becomes `max_priority`; with `reverse`, the
/// highest raw score becomes the lowest (Kubernetes' `DefaultNormalizeScore`).
pub fn default_normalize_score(max_priority: i64, reverse: bool, scores: &mut [NodeScore]) {
    let max_count = scores.iter().map(|s| s.score).max().unwrap_or(0);
    if max_count == 0 {
        if reverse {
            for s in scores.iter_mut() {
                s.score = max_priority;
            }
        }
        return;
    }
    for s in scores.iter_mut() {
        let mut score = max_priority * s.score / max_count;
        if reverse {
            score = max_priority - score;
        }
        s.score = score;
    }
}

/// A profile's plugins, instantiated and in order.
pub struct Framework {
    /// Filters, run in order; the first failure decides a node.
    pub filters: Vec<Box<dyn FilterPlugin>>,
    /// Scorers with their weights.
    pub scorers: Vec<(Box<dyn ScorePlugin>, i64)>,
}

impl Framework {
    /// Run every PreFilter; the first failure rejects the pod on all nodes.
    pub fn run_pre_filter(&self, state: &mut CycleState, pod: &PodInfo) -> Option<Status> {
        for p in &self.filters {
            if let Some(mut s) = p.pre_filter(state, pod) {
                s.plugin = p.name();
                return Some(s);
            }
        }
        None
    }

    /// Run the filters on one node; `None` when it passes them all.
    pub fn run_filter(&self, state: &CycleState, pod: &PodInfo, node: &NodeInfo) -> Option<Status> {
        for p in &self.filters {
            if let Some(mut s) = p.filter(state, pod, node) {
                s.plugin = p.name();
                return Some(s);
            }
        }
        None
    }

    /// Score the feasible nodes: each plugin's normalized score times its
    /// weight, summed per node.
    pub fn run_score(
        &self,
        state: &mut CycleState,
        pod: &PodInfo,
        nodes: &[&NodeInfo],
    ) -> Vec<NodeScore> {
        let mut total: Vec<NodeScore> = nodes
            .iter()
            .map(|n| NodeScore {
                name: n.name.clone(),
                score: 0,
            })
            .collect();
        for (p, _) in &self.scorers {
            p.pre_score(state, pod, nodes);
        }
        let mut scores = total.clone();
        for (p, weight) in &self.scorers {
            for (s, n) in scores.iter_mut().zip(nodes) {
                s.score = p.score(state, pod, n);
            }
            p.normalize_score(state, pod, &mut scores);
            for (t, s) in total.iter_mut().zip(&scores) {
                t.score += s.score.clamp(MIN_NODE_SCORE, MAX_NODE_SCORE) * weight;
            }
        }
        total
    }
}
