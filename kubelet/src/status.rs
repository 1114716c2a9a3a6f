//! Pod status from what the runtime reports: phase, conditions and
//! container statuses, computed the way the kubelet's `getPhase` and
//! `generateAPIPodStatus` do. Pure functions, so they are tested without a
//! runtime or an API server.

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, Pod, PodCondition,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::runtime;

/// Pod phases.
pub mod phase {
    /// Not every container has started.
    pub const PENDING: &str = "Pending";
    /// Every container has started and one runs, or is restarting.
    pub const RUNNING: &str = "Running";
    /// Every container ended with 0 and none will restart.
    pub const SUCCEEDED: &str = "Succeeded";
    /// Every container ended, one with a failure, and none will restart.
    pub const FAILED: &str = "Failed";

    /// Whether a phase is final.
    pub fn is_terminal(p: &str) -> bool {
        p == SUCCEEDED || p == FAILED
    }
}

/// API times have second precision; truncating here keeps a status built
/// twice from the same facts equal to itself.
pub fn api_time(ts: Timestamp) -> Time {
    Time(Timestamp::from_second(ts.as_second()).unwrap_or(ts))
}

/// A runtime container state in the API's form.
pub fn api_state(state: &runtime::ContainerState) -> ContainerState {
    match state {
        runtime::ContainerState::Created => ContainerState {
            waiting: Some(ContainerStateWaiting {
                reason: Some("ContainerCreating".into()),
                message: None,
            }),
            ..Default::default()
        },
        runtime::ContainerState::Running { started_at } => ContainerState {
            running: Some(ContainerStateRunning {
                started_at: Some(api_time(*started_at)),
            }),
            ..Default::default()
        },
        runtime::ContainerState::Exited {
            started_at,
            finished_at,
            exit_code,
            reason,
        } => ContainerState {
            terminated: Some(terminated(*started_at, *finished_at, *exit_code, reason)),
            ..Default::default()
        },
    }
}

fn terminated(
    started_at: Option<Timestamp>,
    finished_at: Timestamp,
    exit_code: i32,
    reason: &str,
) -> ContainerStateTerminated {
    ContainerStateTerminated {
        exit_code,
        reason: Some(reason.to_string()),
        started_at: started_at.map(api_time),
        finished_at: Some(api_time(finished_at)),
        ..Default::default()
    }
}

/// A waiting state with a reason (`ContainerCreating`, `CrashLoopBackOff`).
pub fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..Default::default()
    }
}

fn is_running(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.running.is_some())
}

fn terminated_of(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.state.as_ref().and_then(|st| st.terminated.as_ref())
}

fn last_terminated(s: &ContainerStatus) -> Option<&ContainerStateTerminated> {
    s.last_state.as_ref().and_then(|st| st.terminated.as_ref())
}

fn is_waiting(s: &ContainerStatus) -> bool {
    s.state.as_ref().is_some_and(|st| st.waiting.is_some())
}

/// The pod phase, as the kubelet's `getPhase`: `terminal` says the pod is
/// being shut down for good, so no container will restart.
pub fn pod_phase(
    pod: &Pod,
    init_statuses: &[ContainerStatus],
    statuses: &[ContainerStatus],
    terminal: bool,
) -> &'static str {
    let Some(spec) = pod.spec.as_ref() else {
        return phase::PENDING;
    };
    let restart_policy = spec.restart_policy.as_deref().unwrap_or("Always");
    let (mut pending_init, mut failed_init) = (0, 0);
    for c in spec.init_containers.iter().flatten() {
        match init_statuses.iter().find(|s| s.name == c.name) {
            None => pending_init += 1,
            Some(s) if is_running(s) => pending_init += 1,
            Some(s) => {
                if let Some(t) = terminated_of(s) {
                    if t.exit_code != 0 {
                        failed_init += 1;
                    }
                } else if let Some(t) = last_terminated(s).filter(|_| is_waiting(s)) {
                    if t.exit_code != 0 {
                        failed_init += 1;
                    }
                } else {
                    pending_init += 1;
                }
            }
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in &spec.containers {
        match statuses.iter().find(|s| s.name == c.name) {
            None => unknown += 1,
            Some(s) if is_running(s) => running += 1,
            Some(s) => {
                if let Some(t) = terminated_of(s) {
                    stopped += 1;
                    if t.exit_code == 0 {
                        succeeded += 1;
                    }
                } else if is_waiting(s) {
                    if last_terminated(s).is_some() {
                        stopped += 1;
                    } else {
                        waiting += 1;
                    }
                } else {
                    unknown += 1;
                }
            }
        }
    }
    if failed_init > 0 && restart_policy == "Never" {
        return phase::FAILED;
    }
    let any_started = statuses
        .iter()
        .any(|s| is_running(s) || terminated_of(s).is_some() || last_terminated(s).is_some());
    if (pending_init > 0 && !any_started) || waiting > 0 {
        return phase::PENDING;
    }
    if running > 0 && unknown == 0 {
        return phase::RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if terminal {
            return if stopped == succeeded {
                phase::SUCCEEDED
            } else {
                phase::FAILED
            };
        }
        if restart_policy == "Always" {
            return phase::RUNNING;
        }
        if stopped == succeeded {
            return phase::SUCCEEDED;
        }
        if restart_policy == "Never" {
            return phase::FAILED;
        }
        return phase::RUNNING;
    }
    phase::PENDING
}

/// Builds a pod's conditions, keeping `lastTransitionTime` of those whose
/// status did not change.
pub struct Conditions<'a> {
    old: &'a [PodCondition],
    now: Timestamp,
    out: Vec<PodCondition>,
}

impl<'a> Conditions<'a> {
    /// Conditions replacing `old`.
    pub fn new(old: &'a [PodCondition], now: Timestamp) -> Self {
        Self {
            old,
            now,
            out: Vec::new(),
        }
    }

    /// Set one condition.
    pub fn set(
        &mut self,
        type_: &str,
        status: bool,
        reason: Option<&str>,
        message: Option<String>,
    ) {
        let status = if status { "True" } else { "False" };
        let prev = self.old.iter().find(|c| c.type_ == type_);
        let last_transition_time = match prev {
            Some(p) if p.status == status => p.last_transition_time.clone(),
            _ => None,
        }
        .or_else(|| Some(api_time(self.now)));
        self.out.push(PodCondition {
            type_: type_.to_string(),
            status: status.to_string(),
            reason: reason.map(str::to_string),
            message,
            last_transition_time,
            last_probe_time: None,
            observed_generation: None,
        });
    }

    /// Keep a condition another component owns (PodScheduled, readiness
    /// gates' conditions), or set it if nobody did.
    pub fn keep_or(&mut self, type_: &str, status: bool) {
        match self.old.iter().find(|c| c.type_ == type_) {
            Some(c) => self.out.push(c.clone()),
            None => self.set(type_, status, None, None),
        }
    }

    /// The conditions built.
    pub fn finish(mut self) -> Vec<PodCondition> {
        // Conditions owned by others (readiness gates) stay.
        for c in self.old {
            if !self.out.iter().any(|o| o.type_ == c.type_) {
                self.out.push(c.clone());
            }
        }
        self.out
    }
}

/// "containers with unready status: [a b]".
pub fn names_message(what: &str, names: &[&str]) -> Option<String> {
    (!names.is_empty()).then(|| format!("containers with {what} status: [{}]", names.join(" ")))
}

/// Whether the readiness gates of a pod are all met.
pub fn readiness_gates_met(pod: &Pod) -> bool {
    let conds = pod
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    pod.spec
        .as_ref()
        .and_then(|s| s.readiness_gates.as_deref())
        .unwrap_or_default()
        .iter()
        .all(|g| {
            conds
                .iter()
                .any(|c| c.type_ == g.condition_type && c.status == "True")
        })
}

#[cfg(test)]
mod tests;
