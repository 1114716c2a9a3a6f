//! What a pod sync does, decided from plain data, in the manner of
//! Kubernetes' `computePodActions`: the worker observes its sandbox and
//! containers ([`Observed`]), [`compute`] says what to do about them
//! ([`PodActions`]), and the worker executes that. Nothing here does IO,
//! waits or reads the clock, so the rules of restart policies, init
//! containers and back-off are tested on their own (`actions/tests.rs`).
//!
//! Where kedge's rule differs from Kubernetes' it says so beside the rule.

use std::collections::HashMap;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec};

use crate::runtime::{ContainerState, ProbeKind};
use crate::status::phase;

/// How container restarts back off (CrashLoopBackOff), and image pulls
/// after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The wait before the second restart; it doubles per restart after.
    pub initial: Duration,
    /// The longest wait.
    pub max: Duration,
}

impl Backoff {
    /// The wait before try `n` (from 1): the initial wait doubled per
    /// earlier try, capped at the longest.
    pub fn delay(&self, n: u32) -> Duration {
        let factor = 1u32
            .checked_shl(n.saturating_sub(1).min(16))
            .unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// A container that ran this long before it ended starts its back-off
    /// afresh: twice the longest wait, as in Kubernetes.
    fn stable_run(&self) -> SignedDuration {
        SignedDuration::try_from(self.max.saturating_mul(2)).unwrap_or(SignedDuration::MAX)
    }
}

/// The pod's `restartPolicy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Every ended container restarts (the default).
    Always,
    /// Only a container that failed (exit code not 0) restarts.
    OnFailure,
    /// Nothing restarts.
    Never,
}

impl RestartPolicy {
    /// The policy of a pod spec; unset (or unknown) is `Always`.
    pub fn of(spec: &PodSpec) -> Self {
        match spec.restart_policy.as_deref() {
            Some("OnFailure") => Self::OnFailure,
            Some("Never") => Self::Never,
            _ => Self::Always,
        }
    }

    /// Whether an app container that ended with `exit_code` restarts.
    pub fn restarts(self, exit_code: i32) -> bool {
        match self {
            Self::Always => true,
            Self::OnFailure => exit_code != 0,
            Self::Never => false,
        }
    }
}

// === Lifecycle ===

/// Where a pod is in its life, before anything about its containers is
/// decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lifecycle {
    /// The pod is being deleted: stop it within `grace`, post its final
    /// status and delete it for good.
    Terminate {
        /// The pod's `deletionGracePeriodSeconds`.
        grace: Duration,
    },
    /// The API says the pod finished before this worker saw it finish (an
    /// earlier kubelet did): only make sure none of it runs.
    EnsureStopped,
    /// The pod finished on this worker: nothing restarts, only its status
    /// is kept.
    Finished,
    /// The pod runs: observe it and [`compute`] its actions.
    Run,
}

/// Where `pod` is in its life; `terminal` says it finished on this worker.
pub fn lifecycle(pod: &Pod, terminal: bool) -> Lifecycle {
    if pod.metadata.deletion_timestamp.is_some() {
        let grace = pod
            .metadata
            .deletion_grace_period_seconds
            .and_then(|g| u64::try_from(g).ok())
            .map(Duration::from_secs)
            .unwrap_or_default();
        return Lifecycle::Terminate { grace };
    }
    if terminal {
        return Lifecycle::Finished;
    }
    let api_phase = pod
        .status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or_default();
    if phase::is_terminal(api_phase) {
        return Lifecycle::EnsureStopped;
    }
    Lifecycle::Run
}

/// The pod's `terminationGracePeriodSeconds` (default 30).
pub fn grace_period(pod: &Pod) -> Duration {
    let secs = pod
        .spec
        .as_ref()
        .and_then(|s| s.termination_grace_period_seconds)
        .unwrap_or(30);
    Duration::from_secs(u64::try_from(secs).unwrap_or_default())
}

// === Observed ===

/// What the worker knows of its pod in the runtime.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// The sandbox the worker holds.
    pub sandbox: ObservedSandbox,
    /// The sandbox's config (labels, annotations, names) differs from the
    /// one it was last given.
    pub sandbox_outdated: bool,
    /// The pod's containers by name; one that is missing was never made.
    pub containers: HashMap<String, ObservedContainer>,
}

/// The sandbox the worker holds, as the runtime reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ObservedSandbox {
    /// The worker holds none.
    #[default]
    None,
    /// It runs.
    Ready {
        /// Its id.
        id: String,
    },
    /// It stopped or vanished under the pod (its infra container was
    /// killed).
    Lost {
        /// Its id.
        id: String,
    },
}

/// One container of the pod: the current one in the runtime and what the
/// worker remembers of its predecessors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObservedContainer {
    /// The current container's id.
    pub id: Option<String>,
    /// Its state; `None` when there is no container (never made, or gone
    /// from the runtime).
    pub state: Option<ContainerState>,
    /// The image it was made from.
    pub image: String,
    /// Restarts counted so far.
    pub restart_count: i32,
    /// `restart_count` when the back-off last started afresh.
    pub backoff_base: i32,
    /// An attempt to make its successor failed; the next one waits until
    /// then (ImagePullBackOff and friends).
    pub retry_at: Option<Timestamp>,
}

// === PodActions ===

/// What to do about a pod that runs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PodActions {
    /// What becomes of the sandbox; first, before any container.
    pub sandbox: SandboxAction,
    /// How far the init containers are.
    pub init: Init,
    /// Containers whose back-off starts afresh: their last run was long.
    pub backoff_resets: Vec<String>,
    /// Containers to stop, before any is started.
    pub kill: Vec<ContainerToKill>,
    /// Containers to make and start, in the spec's order.
    pub start: Vec<ContainerToStart>,
    /// Ended containers that wait for their restart back-off.
    pub backing_off: Vec<BackingOff>,
    /// Running containers kept as they are; their probes run when due,
    /// and a startup or liveness probe that gives up stops its container
    /// (see [`probe_kill`]).
    pub probe: Vec<Running>,
    /// The pod is done: nothing runs or will run again, so its sandbox
    /// stops (Kubernetes' `KillPod` with nothing to start).
    pub finished: Option<Outcome>,
}

/// What becomes of the pod's sandbox.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum SandboxAction {
    /// It runs as it should.
    #[default]
    Keep,
    /// It runs, with an outdated config: give it the new one.
    Update,
    /// The pod has none yet: make it.
    Create,
    /// It died under the pod: stop every container, remove it and make a
    /// new one; every container that had one counts a restart.
    Recreate {
        /// The sandbox that died.
        old: String,
    },
}

/// How far a pod's init containers are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Init {
    /// Every init container completed (or there are none): the app
    /// containers run.
    Done,
    /// An init container runs, starts or waits to restart; the app
    /// containers wait.
    #[default]
    Pending,
    /// This init container failed and the pod never restarts: the pod
    /// failed.
    Failed(String),
}

/// How a finished pod ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every container ended with exit code 0.
    Succeeded,
    /// An init or app container failed and will not restart.
    Failed,
}

/// A container to make and start.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerToStart {
    /// Its name in the spec.
    pub name: String,
    /// An init container.
    pub init: bool,
    /// The ended (or replaced) container it follows: that one counts a
    /// restart, once, and stays as the previous container for logs.
    pub replaces: Option<String>,
    /// An earlier attempt to make it failed, and the next waits until
    /// then: only the restart is counted now.
    pub retry_at: Option<Timestamp>,
}

/// A container to stop.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerToKill {
    /// Its name in the spec.
    pub name: String,
    /// The container.
    pub id: String,
    /// Why.
    pub reason: KillReason,
    /// How long it has before it is killed.
    pub grace: Duration,
    /// Stopped the graceful way: its preStop hook first and a Killing
    /// event, when it still runs.
    pub graceful: bool,
}

/// Why a container is stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillReason {
    /// The spec asks for another image: it is replaced at once.
    SpecChanged,
    /// A startup or liveness probe gave up on it.
    Probe {
        /// Which probe.
        kind: ProbeKind,
        /// What the Killing event says.
        message: String,
    },
    /// The whole pod stops (deleted, finished, or gone from the API).
    PodStopping,
}

/// A running container, kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Running {
    /// Its name in the spec.
    pub name: String,
    /// The container.
    pub id: String,
    /// When it started (its probes' initial delay counts from then).
    pub started_at: Timestamp,
}

/// An ended container waiting for its restart back-off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackingOff {
    /// Its name in the spec.
    pub name: String,
    /// It restarts then.
    pub until: Timestamp,
}

/// What to do about `pod` given what the runtime holds of it: the
/// sandbox first; then the init containers one at a time, in order; once
/// they are done, the app containers as the restart policy says.
pub fn compute(pod: &Pod, observed: &Observed, backoff: &Backoff, now: Timestamp) -> PodActions {
    let mut actions = PodActions {
        sandbox: match &observed.sandbox {
            ObservedSandbox::None => SandboxAction::Create,
            ObservedSandbox::Lost { id } => SandboxAction::Recreate { old: id.clone() },
            ObservedSandbox::Ready { .. } if observed.sandbox_outdated => SandboxAction::Update,
            ObservedSandbox::Ready { .. } => SandboxAction::Keep,
        },
        ..Default::default()
    };
    let Some(spec) = pod.spec.as_ref() else {
        return actions;
    };
    // A new sandbox starts every container afresh, whatever the restart
    // policy. Kubernetes instead leaves a Never pod whose containers ran
    // without a sandbox, and does not restart an OnFailure pod's
    // containers that succeeded; kedge keeps its own rule until that is
    // changed on purpose.
    let recreate = matches!(actions.sandbox, SandboxAction::Recreate { .. });
    let view = |name: &str| -> ObservedContainer {
        let o = observed.containers.get(name).cloned().unwrap_or_default();
        if recreate {
            ObservedContainer {
                id: None,
                state: None,
                ..o
            }
        } else {
            o
        }
    };
    let policy = RestartPolicy::of(spec);
    let mut decide = Decide {
        actions: &mut actions,
        backoff,
        now,
    };

    for c in spec.init_containers.iter().flatten() {
        let o = view(&c.name);
        match &o.state {
            None => {
                decide.start(c, true, &o, None);
                return actions;
            }
            Some(ContainerState::Exited { exit_code: 0, .. }) => continue,
            Some(ContainerState::Exited {
                started_at,
                finished_at,
                ..
            }) => {
                // A failed init container runs again unless the pod never
                // restarts; then the pod failed.
                if policy == RestartPolicy::Never {
                    decide.actions.init = Init::Failed(c.name.clone());
                    decide.actions.finished = Some(Outcome::Failed);
                } else {
                    decide.restart_or_wait(c, true, &o, *started_at, *finished_at);
                }
                return actions;
            }
            Some(ContainerState::Running { .. } | ContainerState::Created) => return actions,
        }
    }
    decide.actions.init = Init::Done;

    let mut ended = Vec::new();
    for c in &spec.containers {
        let o = view(&c.name);
        let image_changed = o.image != c.image.as_deref().unwrap_or_default();
        match &o.state {
            None => decide.start(c, false, &o, None),
            Some(ContainerState::Exited {
                exit_code,
                started_at,
                finished_at,
                ..
            }) => {
                if policy.restarts(*exit_code) {
                    decide.restart_or_wait(c, false, &o, *started_at, *finished_at);
                } else {
                    ended.push((*exit_code, o.retry_at.is_some()));
                }
            }
            Some(ContainerState::Running { started_at }) if !image_changed => {
                if let Some(id) = &o.id {
                    decide.actions.probe.push(Running {
                        name: c.name.clone(),
                        id: id.clone(),
                        started_at: *started_at,
                    });
                }
            }
            Some(ContainerState::Running { .. } | ContainerState::Created) => {
                // A new image in the spec replaces the container, whatever
                // the restart policy, as in Kubernetes.
                if let (true, Some(id)) = (image_changed, &o.id) {
                    decide.actions.kill.push(ContainerToKill {
                        name: c.name.clone(),
                        id: id.clone(),
                        reason: KillReason::SpecChanged,
                        grace: Duration::ZERO,
                        graceful: false,
                    });
                    decide.start(c, false, &o, Some(id.clone()));
                }
            }
        }
    }

    // Done when every app container ended for good. One whose successor
    // could not be made is not: its status shows why it waits, so the
    // pod's phase does not end either.
    let all_ended = !spec.containers.is_empty()
        && ended.len() == spec.containers.len()
        && ended.iter().all(|(_, waiting)| !waiting);
    if all_ended {
        actions.finished = Some(if ended.iter().all(|(code, _)| *code == 0) {
            Outcome::Succeeded
        } else {
            Outcome::Failed
        });
    }
    actions
}

/// The container to stop when its startup or liveness probe gave up: it
/// stops within the pod's grace period, and the sync its death wakes
/// restarts it as the restart policy says, counting the restart and
/// backing off (Kubernetes starts it again in the same sync).
pub fn probe_kill(
    pod: &Pod,
    name: &str,
    id: &str,
    kind: ProbeKind,
    message: String,
) -> ContainerToKill {
    ContainerToKill {
        name: name.to_string(),
        id: id.to_string(),
        reason: KillReason::Probe { kind, message },
        grace: grace_period(pod),
        graceful: true,
    }
}

/// Stopping a whole pod: every container at once (those in the spec
/// through their preStop hook when there is a grace period), then the
/// sandbox, as Kubernetes' `killPodWithSyncResult`. `containers` are
/// (name, id) of the containers the worker holds; without a pod (it is
/// gone from the API) nothing is graceful.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StopPod {
    /// The containers, stopped together.
    pub containers: Vec<ContainerToKill>,
    /// The sandbox, stopped once every container has.
    pub sandbox: Option<String>,
}

/// How to stop `pod` (or what is left of it) within `grace`.
pub fn stop_pod<'a>(
    pod: Option<&Pod>,
    containers: impl IntoIterator<Item = (&'a str, &'a str)>,
    sandbox: Option<&str>,
    grace: Duration,
) -> StopPod {
    let specs: Vec<&Container> = pod
        .and_then(|p| p.spec.as_ref())
        .map(|s| {
            s.init_containers
                .iter()
                .flatten()
                .chain(&s.containers)
                .collect()
        })
        .unwrap_or_default();
    let mut kill: Vec<ContainerToKill> = containers
        .into_iter()
        .map(|(name, id)| ContainerToKill {
            name: name.to_string(),
            id: id.to_string(),
            reason: KillReason::PodStopping,
            grace,
            graceful: !grace.is_zero() && specs.iter().any(|c| c.name == name),
        })
        .collect();
    // The spec's order, then the rest by name: they stop together, but a
    // stable order keeps logs and tests readable.
    let rank = |name: &str| {
        specs
            .iter()
            .position(|c| c.name == name)
            .unwrap_or(usize::MAX)
    };
    kill.sort_by(|a, b| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
    StopPod {
        containers: kill,
        sandbox: sandbox.map(str::to_string),
    }
}

/// The per-container rules of [`compute`], writing into its actions.
struct Decide<'a> {
    actions: &'a mut PodActions,
    backoff: &'a Backoff,
    now: Timestamp,
}

impl Decide<'_> {
    fn start(
        &mut self,
        c: &Container,
        init: bool,
        o: &ObservedContainer,
        replaces: Option<String>,
    ) {
        self.actions.start.push(ContainerToStart {
            name: c.name.clone(),
            init,
            replaces,
            retry_at: o.retry_at.filter(|at| self.now < *at),
        });
    }

    /// An ended container restarts once its back-off is over: none for the
    /// first restart, then the initial wait doubled per restart since the
    /// back-off last started afresh.
    fn restart_or_wait(
        &mut self,
        c: &Container,
        init: bool,
        o: &ObservedContainer,
        started_at: Option<Timestamp>,
        finished_at: Timestamp,
    ) {
        let mut base = o.backoff_base;
        if started_at.is_some_and(|st| finished_at.duration_since(st) >= self.backoff.stable_run())
        {
            base = o.restart_count;
            self.actions.backoff_resets.push(c.name.clone());
        }
        let restarts = o.restart_count - base;
        let wait = if restarts == 0 {
            Duration::ZERO
        } else {
            self.backoff
                .delay(u32::try_from(restarts).unwrap_or(u32::MAX))
        };
        let until = finished_at + SignedDuration::try_from(wait).unwrap_or_default();
        if self.now >= until {
            self.start(c, init, o, o.id.clone());
        } else {
            self.actions.backing_off.push(BackingOff {
                name: c.name.clone(),
                until,
            });
        }
    }
}

#[cfg(test)]
mod tests;
