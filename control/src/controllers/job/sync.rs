//! One sync of a Job: count finished pods, decide whether the Job failed,
//! succeeded or is suspended, create or delete pods towards the wanted
//! number of active ones, and write status.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::batch::v1::{Job, JobCondition, JobStatus, UncountedTerminatedPods};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;

use super::{
    has_tracking_finalizer, indexes, remove_tracking_finalizer, Error, State, MIN_REQUEUE,
    TRACKING_FINALIZER,
};
use crate::controllers::events::{self, EventType};
use crate::controllers::omit_empty;
use crate::controllers::replicaset::cache::key_of;
use crate::controllers::replicaset::claim::is_not_found;
use crate::controllers::replicaset::pods::{self, controller_of, is_ready};

/// Pod-creation backoff after failures: 10s doubling up to 6 minutes.
const BACKOFF_BASE: Duration = Duration::from_secs(10);
const BACKOFF_MAX: Duration = Duration::from_secs(360);

/// How soon to look again when expectations wait on pod events that are
/// already on their way.
const EXPECTATIONS_RECHECK: Duration = Duration::from_millis(200);

fn now() -> Timestamp {
    Timestamp::from_second(Timestamp::now().as_second()).unwrap_or_else(|_| Timestamp::now())
}

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

fn is_terminal(pod: &Pod) -> bool {
    matches!(phase(pod), "Succeeded" | "Failed")
}

fn is_bound(pod: &Pod) -> bool {
    pod.spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty())
}

fn is_active(pod: &Pod) -> bool {
    !is_terminal(pod) && pod.metadata.deletion_timestamp.is_none()
}

fn condition<'a>(status: &'a JobStatus, type_: &str) -> Option<&'a JobCondition> {
    status
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_ && c.status == "True")
}

/// Set a condition; a condition already in that state keeps its times.
fn set_condition(status: &mut JobStatus, type_: &str, value: bool, reason: &str, message: &str) {
    let value = if value { "True" } else { "False" };
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    let t = Some(Time(now()));
    match conditions.iter_mut().find(|c| c.type_ == type_) {
        Some(c) if c.status == value => {}
        Some(c) => {
            c.status = value.into();
            c.reason = Some(reason.into());
            c.message = Some(message.into());
            c.last_probe_time = t.clone();
            c.last_transition_time = t;
        }
        None => conditions.push(JobCondition {
            type_: type_.into(),
            status: value.into(),
            reason: Some(reason.into()),
            message: Some(message.into()),
            last_probe_time: t.clone(),
            last_transition_time: t,
        }),
    }
}

fn controller_ref(job: &Job) -> OwnerReference {
    OwnerReference {
        api_version: "batch/v1".into(),
        kind: "Job".into(),
        name: job.metadata.name.clone().unwrap_or_default(),
        uid: job.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// The pod for the template, with the tracking finalizer and, for Indexed
/// Jobs, the completion index (annotation, label and hostname).
fn pod_for(job: &Job, index: Option<i32>) -> Pod {
    let name = job.metadata.name.clone().unwrap_or_default();
    let spec = job.spec.as_ref();
    let template = spec.map(|s| s.template.clone()).unwrap_or_default();
    let tmeta = template.metadata.unwrap_or_default();
    let mut annotations = tmeta.annotations.unwrap_or_default();
    let mut labels = tmeta.labels.unwrap_or_default();
    let mut finalizers = tmeta.finalizers.unwrap_or_default();
    finalizers.push(TRACKING_FINALIZER.into());
    let mut pod_spec = template.spec.unwrap_or_default();
    let generate_name = match index {
        Some(i) => {
            annotations.insert(indexes::COMPLETION_INDEX.into(), i.to_string());
            labels.insert(indexes::COMPLETION_INDEX.into(), i.to_string());
            pod_spec
                .hostname
                .get_or_insert_with(|| format!("{name}-{i}"));
            format!("{name}-{i}-")
        }
        None => format!("{name}-"),
    };
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(generate_name),
            namespace: job.metadata.namespace.clone(),
            labels: Some(labels),
            annotations: (!annotations.is_empty()).then_some(annotations),
            finalizers: Some(finalizers),
            owner_references: Some(vec![controller_ref(job)]),
            ..Default::default()
        },
        spec: Some(pod_spec),
        status: None,
    }
}

/// One sync of `job` (the copy that woke us; re-read fresh).
pub async fn sync(woke: &Job, state: &State) -> Result<Action, Error> {
    let ns = woke.metadata.namespace.clone().unwrap_or_default();
    let name = woke.metadata.name.clone().unwrap_or_default();
    let jobs: Api<Job> = Api::namespaced(state.client.clone(), &ns);
    let pod_api: Api<Pod> = Api::namespaced(state.client.clone(), &ns);
    let key = key_of(&woke.metadata);
    let Some(mut job) = jobs.get_opt(&name).await? else {
        state.expectations.forget(&key);
        state.finalizers.forget(&key);
        return Ok(Action::await_change());
    };
    if state.pods.wait_until_ready().await.is_err() {
        return Ok(Action::requeue(Duration::from_secs(1)));
    }
    let uid = job.metadata.uid.clone().unwrap_or_default();
    // Expectations are read before the cache: an expectation that ended
    // before this point ended with the cache already showing its pod.
    let removing = state.finalizers.pending(&key);
    let needs_sync = state.expectations.satisfied(&key, |pod_key| {
        let (pns, pname) = pod_key.split_once('/').unwrap_or(("", pod_key));
        state
            .pods
            .get(&ObjectRef::new(pname).within(pns))
            .is_none_or(|p| p.metadata.deletion_timestamp.is_some())
    });
    let pods: Vec<Arc<Pod>> = state.pods.state_filter(|p| {
        p.metadata.namespace.as_deref() == Some(ns.as_str())
            && controller_of(&p.metadata).is_some_and(|o| o.uid == uid)
    });

    if job.metadata.deletion_timestamp.is_some() {
        for p in pods.iter().filter(|p| has_tracking_finalizer(p)) {
            remove_tracking_finalizer(&state.client, p).await?;
        }
        state.last_failure.lock().remove(&uid);
        state.expectations.forget(&key);
        state.finalizers.forget(&key);
        return Ok(Action::await_change());
    }

    let spec = job.spec.clone().unwrap_or_default();
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions;
    let mut status = job.status.clone().unwrap_or_default();
    let finished =
        condition(&status, "Complete").is_some() || condition(&status, "Failed").is_some();
    let ending = finished
        || condition(&status, "FailureTarget").is_some()
        || condition(&status, "SuccessCriteriaMet").is_some();
    let suspended = spec.suspend == Some(true);

    // 1. Record newly finished pods as uncounted before their finalizers go.
    let Finished {
        succeeded: unc_succeeded,
        failed: unc_failed,
        completed,
        release,
        recorded,
    } = record_finished(&pods, &removing, &status, &spec, ending || suspended);
    if recorded {
        status.uncounted_terminated_pods = Some(UncountedTerminatedPods {
            succeeded: omit_empty(unc_succeeded.clone()),
            failed: omit_empty(unc_failed.clone()),
        });
        if indexed {
            status.completed_indexes = omit_empty(indexes::format(&completed));
        }
        job = write_status(&jobs, &job, status.clone()).await?;
    }

    // 2. Take the finalizers off counted and released pods (not again off
    // those whose removal is already on its way).
    let counted = pods.iter().filter(|p| {
        let pod_uid = p.metadata.uid.as_deref().unwrap_or("");
        has_tracking_finalizer(p)
            && !removing.contains(pod_uid)
            && (unc_succeeded.iter().any(|u| u == pod_uid)
                || unc_failed.iter().any(|u| u == pod_uid))
    });
    for pod in counted.chain(&release) {
        let pod_uid = pod.metadata.uid.as_deref().unwrap_or("");
        state.finalizers.expect_removal(&key, pod_uid);
        if let Err(e) = remove_tracking_finalizer(&state.client, pod).await {
            // This removal will never be observed.
            state.finalizers.removal_observed(&key, pod_uid);
            return Err(e.into());
        }
    }

    // 3. Move the uncounted pods to the counters.
    let new_failures = unc_failed.len() as i32;
    if indexed {
        status.succeeded = omit_empty(completed.len() as i32);
    } else {
        status.succeeded = omit_empty(status.succeeded.unwrap_or(0) + unc_succeeded.len() as i32);
    }
    status.failed = omit_empty(status.failed.unwrap_or(0) + new_failures);
    status.uncounted_terminated_pods = Some(UncountedTerminatedPods::default());
    let now = now();
    if new_failures > 0 {
        state.last_failure.lock().insert(uid.clone(), now);
    }
    let succeeded = status.succeeded.unwrap_or(0);
    let failed = status.failed.unwrap_or(0);

    let mut active: Vec<&Pod> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| is_active(p))
        .collect();
    let terminating = pods
        .iter()
        .filter(|p| !is_terminal(p) && p.metadata.deletion_timestamp.is_some())
        .count() as i32;
    let reference = events::reference("batch/v1", "Job", &job.metadata);
    let mut requeue: Option<Duration> = None;

    if !finished {
        // Resumed: the deadline counts from now.
        if !suspended && condition(&status, "Suspended").is_some() {
            set_condition(&mut status, "Suspended", false, "JobResumed", "Job resumed");
            status.start_time = Some(Time(now));
            event(
                state,
                &reference,
                EventType::Normal,
                "Resumed",
                "Job resumed",
            )
            .await;
        }
        if !suspended && status.start_time.is_none() {
            status.start_time = Some(Time(now));
        }
        let started = status.start_time.as_ref().map(|t| t.0);
        if !ending {
            let backoff_limit = spec.backoff_limit.unwrap_or(6);
            let deadline = spec
                .active_deadline_seconds
                .zip(started)
                .filter(|_| !suspended)
                .map(|(s, t)| t + SignedDuration::from_secs(s));
            let done = match completions {
                Some(c) => succeeded >= c,
                // Pods created but not yet cached are active too.
                None => succeeded > 0 && active.is_empty() && needs_sync,
            };
            if done {
                set_condition(
                    &mut status,
                    "SuccessCriteriaMet",
                    true,
                    "CompletionsReached",
                    "Reached expected number of succeeded pods",
                );
            } else if failed > backoff_limit {
                set_condition(
                    &mut status,
                    "FailureTarget",
                    true,
                    "BackoffLimitExceeded",
                    "Job has reached the specified backoff limit",
                );
            } else if let Some(d) = deadline {
                if d <= now {
                    set_condition(
                        &mut status,
                        "FailureTarget",
                        true,
                        "DeadlineExceeded",
                        "Job was active longer than specified deadline",
                    );
                } else {
                    requeue = Some(Duration::try_from(d - now).unwrap_or(MIN_REQUEUE));
                }
            }
        }
        let target = condition(&status, "FailureTarget").cloned();
        let success = condition(&status, "SuccessCriteriaMet").is_some();
        if target.is_some() || success || suspended {
            delete_pods(state, &pod_api, &reference, &active, None).await?;
            let removed = active.len() as i32;
            active.clear();
            if suspended && target.is_none() && !success {
                if condition(&status, "Suspended").is_none() {
                    set_condition(
                        &mut status,
                        "Suspended",
                        true,
                        "JobSuspended",
                        "Job suspended",
                    );
                    event(
                        state,
                        &reference,
                        EventType::Normal,
                        "Suspended",
                        "Job suspended",
                    )
                    .await;
                }
            } else if terminating + removed == 0 && !needs_sync {
                // Pods created but not yet cached must go first.
                requeue = Some(EXPECTATIONS_RECHECK);
            } else if terminating + removed == 0 {
                // The terminal condition waits for the pods to be gone, as
                // Kubernetes 1.31+ does.
                if let Some(t) = target {
                    let reason = t.reason.unwrap_or_default();
                    let message = t.message.unwrap_or_default();
                    set_condition(&mut status, "Failed", true, &reason, &message);
                    event(state, &reference, EventType::Warning, &reason, &message).await;
                } else {
                    set_condition(
                        &mut status,
                        "Complete",
                        true,
                        "CompletionsReached",
                        "Reached expected number of succeeded pods",
                    );
                    status.completion_time = Some(Time(now));
                    event(
                        state,
                        &reference,
                        EventType::Normal,
                        "Completed",
                        "Job completed",
                    )
                    .await;
                }
                state.last_failure.lock().remove(&uid);
                requeue = None;
            } else {
                requeue = Some(Duration::from_secs(1));
            }
        } else {
            let wait = backoff_wait(state, &uid, failed, now);
            if wait.is_some() {
                requeue = requeue.min(wait).or(wait);
            } else if !needs_sync {
                // The cache does not show our last creates or deletes yet:
                // acting on it would create or delete again.
                let wait = Some(EXPECTATIONS_RECHECK);
                requeue = requeue.min(wait).or(wait);
            } else {
                let counts = (succeeded, &completed);
                manage(state, &key, &job, &pod_api, &reference, &mut active, counts).await?;
            }
        }
    } else {
        // Finished: nothing may keep running.
        delete_pods(state, &pod_api, &reference, &active, None).await?;
        active.clear();
    }

    status.active = omit_empty(active.len() as i32);
    // `ready` and `terminating` are pointers in the Go type: an explicit 0.
    status.ready = Some(active.iter().filter(|p| is_ready(p)).count() as i32);
    status.terminating = Some(terminating);
    if indexed {
        status.completed_indexes = omit_empty(indexes::format(&completed));
    }
    if job.status.as_ref() != Some(&status) {
        write_status(&jobs, &job, status).await?;
    }
    Ok(match requeue {
        Some(d) => Action::requeue(d.max(MIN_REQUEUE)),
        None => Action::await_change(),
    })
}

/// Finished pods of a Job not yet in its counters: the uids to hold in
/// `status.uncountedTerminatedPods`, and the pods whose finalizer just goes.
#[derive(Debug, Default, PartialEq)]
struct Finished {
    succeeded: Vec<String>,
    failed: Vec<String>,
    /// Completed indexes (Indexed Jobs), those of the status included.
    completed: BTreeSet<i32>,
    /// Pods let go without counting (removed while the Job ends or is
    /// suspended).
    release: Vec<Arc<Pod>>,
    /// Whether any pod was added to the uncounted ones.
    recorded: bool,
}

/// Step 1 of a sync: add the finished pods that still carry the tracking
/// finalizer to the uncounted ones of `status`. A pod in `removing` had its
/// finalizer taken off by an earlier sync, so it is counted already even if
/// the cache still shows the finalizer. `letting_go`: the Job ends or is
/// suspended, so a removed pod is not a failure.
fn record_finished(
    pods: &[Arc<Pod>],
    removing: &HashSet<String>,
    status: &JobStatus,
    spec: &k8s_openapi::api::batch::v1::JobSpec,
    letting_go: bool,
) -> Finished {
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let completions = spec.completions.unwrap_or(0);
    let uncounted = status.uncounted_terminated_pods.clone().unwrap_or_default();
    let mut found = Finished {
        succeeded: uncounted.succeeded.unwrap_or_default(),
        failed: uncounted.failed.unwrap_or_default(),
        completed: indexes::parse(
            status.completed_indexes.as_deref().unwrap_or(""),
            completions,
        ),
        ..Default::default()
    };
    for pod in pods.iter().filter(|p| has_tracking_finalizer(p)) {
        let pod_uid = pod.metadata.uid.clone().unwrap_or_default();
        if removing.contains(&pod_uid)
            || found.succeeded.contains(&pod_uid)
            || found.failed.contains(&pod_uid)
        {
            continue;
        }
        match phase(pod) {
            "Succeeded" => {
                if indexed {
                    if let Some(i) = indexes::of_pod(pod).filter(|i| *i < completions) {
                        found.completed.insert(i);
                    }
                }
                found.succeeded.push(pod_uid);
                found.recorded = true;
            }
            "Failed" => {
                found.failed.push(pod_uid);
                found.recorded = true;
            }
            // A deleted pod no kubelet runs never reaches a phase of its own
            // (pod GC would fail it): it failed, unless we removed it.
            _ if pod.metadata.deletion_timestamp.is_some() && !is_bound(pod) => {
                if letting_go {
                    found.release.push(pod.clone());
                } else {
                    found.failed.push(pod_uid);
                    found.recorded = true;
                }
            }
            _ => {}
        }
    }
    found
}

/// How long pod creation must still wait after the last failure.
fn backoff_wait(state: &State, uid: &str, failed: i32, now: Timestamp) -> Option<Duration> {
    if failed <= 0 {
        return None;
    }
    let last = *state.last_failure.lock().get(uid)?;
    let delay = BACKOFF_BASE
        .saturating_mul(1u32 << (failed - 1).min(16))
        .min(BACKOFF_MAX);
    let until = last + SignedDuration::try_from(delay).ok()?;
    (until > now).then(|| Duration::try_from(until - now).unwrap_or(MIN_REQUEUE))
}

/// Create or delete pods towards the wanted number of active ones.
async fn manage(
    state: &State,
    key: &str,
    job: &Job,
    api: &Api<Pod>,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    active: &mut Vec<&Pod>,
    (succeeded, completed): (i32, &BTreeSet<i32>),
) -> Result<(), Error> {
    let spec = job.spec.clone().unwrap_or_default();
    let parallelism = spec.parallelism.unwrap_or(1).max(0);
    let indexed = spec.completion_mode.as_deref() == Some("Indexed");
    let want = match spec.completions {
        Some(c) if indexed => parallelism.min(c - completed.len() as i32),
        Some(c) => parallelism.min(c - succeeded),
        None => parallelism,
    }
    .max(0) as usize;
    if active.len() > want {
        // Newest first go.
        active.sort_by(|a, b| {
            b.metadata
                .creation_timestamp
                .as_ref()
                .map(|t| t.0)
                .cmp(&a.metadata.creation_timestamp.as_ref().map(|t| t.0))
        });
        let extra: Vec<&Pod> = active.drain(..active.len() - want).collect();
        return delete_pods(state, api, reference, &extra, Some(key)).await;
    }
    let missing = want - active.len();
    let targets: Vec<Option<i32>> = if indexed {
        let running: BTreeSet<i32> = active.iter().filter_map(|p| indexes::of_pod(p)).collect();
        (0..spec.completions.unwrap_or(0))
            .filter(|i| !completed.contains(i) && !running.contains(i))
            .take(missing)
            .map(Some)
            .collect()
    } else {
        vec![None; missing]
    };
    state.expectations.expect_creations(key, targets.len());
    let results = futures::future::join_all(targets.into_iter().map(|index| {
        let pod = pod_for(job, index);
        async move { api.create(&PostParams::default(), &pod).await }
    }))
    .await;
    let mut first_error = None;
    for r in results {
        match r {
            Ok(p) => {
                let pod_name = p.metadata.name.unwrap_or_default();
                let message = format!("Created pod: {pod_name}");
                event(
                    state,
                    reference,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &message,
                )
                .await;
            }
            Err(e) => {
                // This create will never be observed.
                state.expectations.creation_observed(key);
                let message = format!("Error creating: {e}");
                event(
                    state,
                    reference,
                    EventType::Warning,
                    "FailedCreate",
                    &message,
                )
                .await;
                first_error.get_or_insert(e);
            }
        }
    }
    first_error.map_or(Ok(()), |e| Err(Error::Api(e)))
}

async fn delete_pods(
    state: &State,
    api: &Api<Pod>,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    pods: &[&Pod],
    expected_by: Option<&str>,
) -> Result<(), Error> {
    if let Some(key) = expected_by {
        let keys = pods.iter().map(|p| pods::key(p));
        state.expectations.expect_deletions(key, keys);
    }
    for (i, pod) in pods.iter().enumerate() {
        let pod_name = pod.metadata.name.clone().unwrap_or_default();
        let result = api.delete(&pod_name, &DeleteParams::default()).await;
        if let (Err(e), Some(key)) = (&result, expected_by) {
            // This deletion will never be seen, nor, after a real error,
            // those not attempted.
            let last = if is_not_found(e) { i + 1 } else { pods.len() };
            for p in &pods[i..last] {
                state.expectations.deletion_observed(key, &pods::key(p));
            }
        }
        match result {
            Ok(_) => {
                let message = format!("Deleted pod: {pod_name}");
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
            Err(e) => return Err(Error::Api(e)),
        }
    }
    Ok(())
}

async fn event(
    state: &State,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: EventType,
    reason: &str,
    message: &str,
) {
    state
        .recorder
        .record(reference, type_, reason, message)
        .await;
}

/// Replace the status, conditional on the resourceVersion we read.
async fn write_status(api: &Api<Job>, job: &Job, status: JobStatus) -> Result<Job, Error> {
    let mut target = job.clone();
    target.status = Some(status);
    let name = job.metadata.name.clone().unwrap_or_default();
    Ok(api
        .replace_status(&name, &PostParams::default(), &target)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::job::expectations::FinalizerExpectations;
    use crate::controllers::replicaset::expectations::{observe_pod_event, Expectations};
    use kube::runtime::watcher::Event;

    fn pod(name: &str, phase: &str, finalizer: bool) -> Pod {
        let finalizers: Vec<&str> = if finalizer {
            vec![TRACKING_FINALIZER]
        } else {
            vec![]
        };
        serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": name, "namespace": "ns", "uid": name,
                "finalizers": finalizers,
                "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job",
                    "name": "j", "uid": "job-uid", "controller": true}],
            },
            "status": {"phase": phase},
        }))
        .unwrap()
    }

    /// An earlier sync counted p1 (succeeded = 1, nothing uncounted) and
    /// took its finalizer off; the cache still shows the finalizer.
    #[test]
    fn a_pod_whose_finalizer_removal_is_in_flight_is_not_counted_twice() {
        let status = JobStatus {
            succeeded: Some(1),
            ..Default::default()
        };
        let spec = Default::default();
        let stale = [Arc::new(pod("p1", "Succeeded", true))];
        // Without the expectation the stale pod looks newly finished.
        let naive = record_finished(&stale, &HashSet::new(), &status, &spec, false);
        assert_eq!(naive.succeeded, ["p1"]);

        let removing = FinalizerExpectations::default();
        removing.expect_removal("ns/j", "p1");
        let found = record_finished(&stale, &removing.pending("ns/j"), &status, &spec, false);
        assert_eq!(found, Finished::default());

        // The entry ends only with a cached pod without the finalizer.
        removing.observe_cached(&Event::Apply(pod("p1", "Succeeded", true)));
        assert_eq!(removing.pending("ns/j").len(), 1);
        removing.observe_cached(&Event::Apply(pod("p1", "Succeeded", false)));
        assert!(removing.pending("ns/j").is_empty());
        removing.expect_removal("ns/j", "p2");
        removing.observe_cached(&Event::Delete(pod("p2", "Failed", true)));
        assert!(removing.pending("ns/j").is_empty());
    }

    /// A create the cache does not show yet holds the next manage; only a
    /// pod the cache did not hold counts as the created one.
    #[test]
    fn creations_hold_manage_until_the_pod_event_is_observed() {
        let exp = Expectations::default();
        let old = pod("old", "Running", true);
        exp.expect_creations("ns/j", 1);
        assert!(!exp.satisfied("ns/j", |_| false));
        // An update of a pod already cached is not the new one.
        observe_pod_event(&exp, "Job", Some(&old), &Event::Apply(old.clone()));
        assert!(!exp.satisfied("ns/j", |_| false));
        observe_pod_event(&exp, "Job", None, &Event::Apply(pod("new", "", true)));
        assert!(exp.satisfied("ns/j", |_| false));
    }
}
