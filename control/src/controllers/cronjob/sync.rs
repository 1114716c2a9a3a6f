//! One sync of a CronJob: reconcile `status.active` with the Jobs it owns,
//! delete finished Jobs beyond the history limits, and create the Job of
//! the most recent scheduled time if it is due and allowed.

use std::time::Duration;

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{CronJob, CronJobStatus, Job};
use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, DeleteParams, PostParams};

use super::schedule::{self, Schedule};
use super::{Error, State, SCHEDULED_TIMESTAMP};
use crate::controllers::events::{self, EventType};
use crate::controllers::omit_empty;
use crate::controllers::replicaset::claim::is_not_found;
use crate::controllers::replicaset::pods::controller_of;

/// Beyond this many missed start times a warning says so.
const TOO_MANY_MISSED: usize = 100;

/// The finished condition of a Job: "Complete" or "Failed".
fn finished(job: &Job) -> Option<&str> {
    job.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| (c.type_ == "Complete" || c.type_ == "Failed") && c.status == "True")
        .map(|c| c.type_.as_str())
}

fn job_ref(job: &Job) -> ObjectReference {
    ObjectReference {
        api_version: Some("batch/v1".into()),
        kind: Some("Job".into()),
        name: job.metadata.name.clone(),
        namespace: job.metadata.namespace.clone(),
        uid: job.metadata.uid.clone(),
        resource_version: job.metadata.resource_version.clone(),
        ..Default::default()
    }
}

fn until(from: Timestamp, to: Timestamp) -> Duration {
    // A little past the scheduled time, so the next sync finds it due.
    Duration::try_from(to - from).unwrap_or_default() + Duration::from_millis(100)
}

/// The Job for the scheduled time `at`.
fn job_for(cj: &CronJob, at: Timestamp, tz: &TimeZone) -> Job {
    let name = cj.metadata.name.clone().unwrap_or_default();
    let template = cj
        .spec
        .as_ref()
        .map(|s| s.job_template.clone())
        .unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    annotations.insert(
        SCHEDULED_TIMESTAMP.into(),
        at.to_zoned(tz.clone())
            .strftime("%Y-%m-%dT%H:%M:%S%:z")
            .to_string()
            .replace("+00:00", "Z"),
    );
    Job {
        metadata: ObjectMeta {
            name: Some(format!("{name}-{}", at.as_second() / 60)),
            namespace: cj.metadata.namespace.clone(),
            labels: tmeta.labels,
            annotations: Some(annotations),
            owner_references: Some(vec![OwnerReference {
                api_version: "batch/v1".into(),
                kind: "CronJob".into(),
                name,
                uid: cj.metadata.uid.clone().unwrap_or_default(),
                controller: Some(true),
                block_owner_deletion: Some(true),
            }]),
            ..Default::default()
        },
        spec: template.spec,
        status: None,
    }
}

/// One sync; returns how long until the next scheduled time, if any.
pub async fn sync(woke: &CronJob, state: &State) -> Result<Option<Duration>, Error> {
    let ns = woke.metadata.namespace.clone().unwrap_or_default();
    let name = woke.metadata.name.clone().unwrap_or_default();
    let cjs: Api<CronJob> = Api::namespaced(state.client.clone(), &ns);
    let jobs_api: Api<Job> = Api::namespaced(state.client.clone(), &ns);
    let Some(cj) = cjs.get_opt(&name).await? else {
        return Ok(None);
    };
    let uid = cj.metadata.uid.clone().unwrap_or_default();
    let jobs: Vec<Job> = state
        .jobs
        .state()
        .into_iter()
        .filter(|j| j.metadata.namespace.as_deref() == Some(ns.as_str()))
        .filter(|j| controller_of(&j.metadata).is_some_and(|o| o.uid == uid))
        .map(|j| Job::clone(&j))
        .collect();
    let reference = events::reference("batch/v1", "CronJob", &cj.metadata);
    let now = state.clock.now();
    let spec = cj.spec.clone().unwrap_or_default();
    let mut status = cj.status.clone().unwrap_or_default();

    // Active: the owned Jobs still running; finished ones are reported once.
    let before = status.active.take().unwrap_or_default();
    let mut active = Vec::new();
    for job in &jobs {
        let was_active = before.iter().any(|r| r.uid == job.metadata.uid);
        match finished(job) {
            None if job.metadata.deletion_timestamp.is_none() => active.push(job_ref(job)),
            None => {}
            Some(cond) => {
                if was_active {
                    let jname = job.metadata.name.clone().unwrap_or_default();
                    let message = format!("Saw completed job: {jname}, condition: {cond}");
                    event(
                        state,
                        &reference,
                        EventType::Normal,
                        "SawCompletedJob",
                        &message,
                    )
                    .await;
                }
                let done = job.status.as_ref().and_then(|s| s.completion_time.clone());
                if cond == "Complete"
                    && done.as_ref().map(|t| t.0)
                        > status.last_successful_time.as_ref().map(|t| t.0)
                {
                    status.last_successful_time = done;
                }
            }
        }
    }
    active.sort_by(|a, b| a.name.cmp(&b.name));
    status.active = Some(active);

    let next = if cj.metadata.deletion_timestamp.is_some() || spec.suspend == Some(true) {
        None
    } else {
        cleanup(state, &jobs_api, &reference, &cj, &jobs).await?;
        schedule_next(state, &jobs_api, &reference, &cj, &jobs, &mut status, now).await?
    };
    // Scheduling may leave `active` empty, which the API omits.
    status.active = status.active.and_then(omit_empty);
    if cj.status.as_ref() != Some(&status) {
        let mut target = cj.clone();
        target.status = Some(status);
        cjs.replace_status(&name, &PostParams::default(), &target)
            .await?;
    }
    Ok(next)
}

/// Create the Job of the most recent due time, if allowed; returns the wait
/// until the next scheduled time.
async fn schedule_next(
    state: &State,
    jobs_api: &Api<Job>,
    reference: &ObjectReference,
    cj: &CronJob,
    jobs: &[Job],
    status: &mut CronJobStatus,
    now: Timestamp,
) -> Result<Option<Duration>, Error> {
    let spec = cj.spec.clone().unwrap_or_default();
    let tz = match spec.time_zone.as_deref() {
        None => TimeZone::UTC,
        Some(name) => match TimeZone::get(name) {
            Ok(tz) => tz,
            Err(e) => {
                let message = format!("invalid timeZone: {name:?}: {e}");
                event(
                    state,
                    reference,
                    EventType::Warning,
                    "UnknownTimeZone",
                    &message,
                )
                .await;
                return Ok(None);
            }
        },
    };
    let sched: Schedule = match schedule::parse(&spec.schedule) {
        Ok(s) => s,
        Err(e) => {
            let message = format!("invalid schedule: {}: {e}", spec.schedule);
            event(
                state,
                reference,
                EventType::Warning,
                "InvalidSchedule",
                &message,
            )
            .await;
            return Ok(None);
        }
    };
    let created = cj.metadata.creation_timestamp.as_ref().map(|t| t.0);
    let mut earliest = status
        .last_schedule_time
        .as_ref()
        .map(|t| t.0)
        .or(created)
        .unwrap_or(now);
    if let Some(sds) = spec.starting_deadline_seconds {
        earliest = earliest.max(now - SignedDuration::from_secs(sds));
    }
    let Some(mut scheduled) = sched.next_after(earliest, &tz) else {
        return Ok(None);
    };
    let next = sched.next_after(now, &tz);
    let wait = next.map(|n| until(now, n));
    if scheduled > now {
        return Ok(Some(until(now, scheduled)));
    }
    // Only the most recent missed time runs.
    let mut missed = 0;
    while let Some(n) = sched.next_after(scheduled, &tz).filter(|n| *n <= now) {
        scheduled = n;
        missed += 1;
        if missed > 100_000 {
            break;
        }
    }
    if missed > TOO_MANY_MISSED {
        let message = "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew";
        event(
            state,
            reference,
            EventType::Warning,
            "TooManyMissedTimes",
            message,
        )
        .await;
    }
    if let Some(sds) = spec.starting_deadline_seconds {
        if scheduled + SignedDuration::from_secs(sds) < now {
            let message = format!("Missed scheduled time to start a job: {scheduled}");
            event(
                state,
                reference,
                EventType::Warning,
                "MissSchedule",
                &message,
            )
            .await;
            return Ok(wait);
        }
    }
    let job = job_for(cj, scheduled, &tz);
    let job_name = job.metadata.name.clone().unwrap_or_default();
    if jobs
        .iter()
        .any(|j| j.metadata.name.as_deref() == Some(job_name.as_str()))
    {
        // Already made, maybe by a sync whose status write was lost.
        if status.last_schedule_time.as_ref().map(|t| t.0) < Some(scheduled) {
            status.last_schedule_time = Some(Time(scheduled));
        }
        return Ok(wait);
    }
    let active = status.active.get_or_insert_with(Vec::new);
    match spec.concurrency_policy.as_deref() {
        Some("Forbid") if !active.is_empty() => {
            let message =
                "Not starting job because prior execution is running and concurrency policy is Forbid";
            event(
                state,
                reference,
                EventType::Normal,
                "JobAlreadyActive",
                message,
            )
            .await;
            return Ok(wait);
        }
        Some("Replace") => {
            for r in std::mem::take(active) {
                let jname = r.name.clone().unwrap_or_default();
                match jobs_api.delete(&jname, &DeleteParams::background()).await {
                    Ok(_) => {
                        let message = format!("Deleted job {jname}");
                        event(
                            state,
                            reference,
                            EventType::Normal,
                            "SuccessfulDelete",
                            &message,
                        )
                        .await;
                    }
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        _ => {}
    }
    match jobs_api.create(&PostParams::default(), &job).await {
        Ok(created) => {
            let message = format!("Created job {job_name}");
            event(
                state,
                reference,
                EventType::Normal,
                "SuccessfulCreate",
                &message,
            )
            .await;
            active.push(job_ref(&created));
        }
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => {
            let message = format!("Error creating job: {e}");
            event(
                state,
                reference,
                EventType::Warning,
                "FailedCreate",
                &message,
            )
            .await;
            return Err(e.into());
        }
    }
    status.last_schedule_time = Some(Time(scheduled));
    Ok(wait)
}

/// Delete the oldest finished Jobs beyond the history limits.
async fn cleanup(
    state: &State,
    jobs_api: &Api<Job>,
    reference: &ObjectReference,
    cj: &CronJob,
    jobs: &[Job],
) -> Result<(), Error> {
    let spec = cj.spec.clone().unwrap_or_default();
    for (cond, limit) in [
        ("Complete", spec.successful_jobs_history_limit),
        ("Failed", spec.failed_jobs_history_limit),
    ] {
        let Some(limit) = limit else { continue };
        let mut done: Vec<&Job> = jobs
            .iter()
            .filter(|j| finished(j) == Some(cond) && j.metadata.deletion_timestamp.is_none())
            .collect();
        let started = |j: &Job| {
            j.status
                .as_ref()
                .and_then(|s| s.start_time.as_ref())
                .or(j.metadata.creation_timestamp.as_ref())
                .map(|t| t.0)
        };
        done.sort_by_key(|j| (started(j), j.metadata.name.clone()));
        let excess = done.len().saturating_sub(limit.max(0) as usize);
        for job in done.into_iter().take(excess) {
            let jname = job.metadata.name.clone().unwrap_or_default();
            match jobs_api.delete(&jname, &DeleteParams::background()).await {
                Ok(_) => {
                    let message = format!("Deleted job {jname}");
                    event(
                        state,
                        reference,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &message,
                    )
                    .await;
                }
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

async fn event(state: &State, reference: &ObjectReference, t: EventType, reason: &str, msg: &str) {
    state.recorder.record(reference, t, reason, msg).await;
}
