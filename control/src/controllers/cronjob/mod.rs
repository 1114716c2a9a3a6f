//! The CronJob controller: creates a Job from `jobTemplate` at each time
//! the cron schedule names, honouring `startingDeadlineSeconds`,
//! `concurrencyPolicy` (Allow, Forbid, Replace), `suspend` and the history
//! limits, and tracks `status.active`, `lastScheduleTime` and
//! `lastSuccessfulTime` (Kubernetes' `pkg/controller/cronjob`, v2).
//!
//! Time comes from a [`Clock`] so tests can move it; production uses the
//! system clock. `spec.timeZone` is resolved with the system's tz database
//! (jiff); an unknown zone is reported as an `UnknownTimeZone` event and
//! the CronJob is not scheduled.

pub mod schedule;
mod sync;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use jiff::Timestamp;
use k8s_openapi::api::batch::v1::{CronJob, Job};
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::Store;
use kube::runtime::{watcher, Controller};
use kube::Client;
use parking_lot::Mutex;

use super::events::Recorder;
use super::replicaset::backoff::Backoff;
use super::replicaset::cache::key_of;
use super::Context;

/// The annotation with the scheduled time a Job was created for.
pub const SCHEDULED_TIMESTAMP: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";

/// Where the controller reads the time.
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;
    /// The longest real wait before looking again: a clock that can jump
    /// must be polled, since a requeue runs on real time.
    fn max_wait(&self) -> Option<Duration> {
        None
    }
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to, for tests.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    /// A clock showing `t`.
    pub fn new(t: Timestamp) -> Self {
        Self(Mutex::new(t))
    }

    /// Set the time.
    pub fn set(&self, t: Timestamp) {
        *self.0.lock() = t;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock()
    }

    fn max_wait(&self) -> Option<Duration> {
        Some(Duration::from_millis(100))
    }
}

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API: {0}")]
    Api(#[from] kube::Error),
}

/// What the reconcile function works with.
pub struct State {
    /// The API client.
    pub client: Client,
    /// Events as `cronjob-controller`.
    pub recorder: Recorder,
    /// The time source.
    pub clock: Arc<dyn Clock>,
    /// Every Job, from the process's shared Job informer.
    pub jobs: Store<Job>,
    backoff: Backoff,
}

/// Run the controller on the system clock until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    run_with_clock(ctx, Arc::new(SystemClock)).await
}

/// Run the controller on `clock` until the future is dropped.
pub async fn run_with_clock(ctx: Arc<Context>, clock: Arc<dyn Clock>) {
    let client = ctx.client.clone();
    // The Jobs come from the informer the Job controller reads too: one
    // watch, and no list of the API per sync.
    let jobs = ctx.informers.get::<Job>();
    let state = Arc::new(State {
        client: client.clone(),
        recorder: ctx.recorder("cronjob-controller"),
        clock,
        jobs: jobs.store(),
        backoff: Backoff::default(),
    });
    Controller::new(
        Api::<CronJob>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    )
    .owns_shared_stream(jobs.subscribe())
    .run(reconcile, error_policy, state)
    .for_each(|_| async {})
    .await;
}

async fn reconcile(cj: Arc<CronJob>, state: Arc<State>) -> Result<Action, Error> {
    let key = key_of(&cj.metadata);
    let next = sync::sync(&cj, &state).await?;
    state.backoff.forget(&key);
    let wait = match (next, state.clock.max_wait()) {
        (Some(d), Some(max)) => Some(d.min(max)),
        (Some(d), None) => Some(d),
        (None, max) => max,
    };
    Ok(wait.map_or_else(Action::await_change, Action::requeue))
}

fn error_policy(cj: Arc<CronJob>, err: &Error, state: Arc<State>) -> Action {
    state.backoff.failed("cronjob", &key_of(&cj.metadata), err)
}
