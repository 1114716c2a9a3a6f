//! Rollout progress (Kubernetes' `progress.go`): the Progressing condition
//! against progressDeadlineSeconds, ReplicaFailure carried up from the
//! ReplicaSets, and when to look again if nothing else will wake us.

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, ReplicaSet};

use super::sync::{calculate_status, update_status};
use super::util::{self, reason};
use super::{Error, State};

/// Write status with the Progressing condition brought up to date; returns
/// when to check the deadline again if the rollout is stuck.
pub async fn sync_rollout_status(
    state: &State,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &mut Deployment,
) -> Result<Option<Duration>, Error> {
    let mut s = calculate_status(all, new_rs, d);
    if !util::has_progress_deadline(d) {
        util::remove_condition(&mut s, "Progressing");
    }
    let old_status = d.status.clone().unwrap_or_default();
    let current = util::condition(&old_status, "Progressing").cloned();
    let complete_already = s.replicas == s.updated_replicas
        && current
            .as_ref()
            .is_some_and(|c| c.reason.as_deref() == Some(reason::NEW_RS_AVAILABLE));
    let d_name = d.metadata.name.clone().unwrap_or_default();
    let subject = |what: &str| match new_rs {
        Some(rs) => format!(
            "ReplicaSet {:?} {what}",
            rs.metadata.name.as_deref().unwrap_or("")
        ),
        None => format!("Deployment {d_name:?} {what}"),
    };
    if util::has_progress_deadline(d) && !complete_already {
        if util::deployment_complete(d, &s) {
            let c = util::new_condition(
                "Progressing",
                "True",
                reason::NEW_RS_AVAILABLE,
                &subject("has successfully progressed."),
            );
            util::set_condition(&mut s, c);
        } else if util::deployment_progressing(d, &s) {
            let mut c = util::new_condition(
                "Progressing",
                "True",
                reason::RS_UPDATED,
                &subject("is progressing."),
            );
            // Progress refreshes lastUpdateTime even with the same reason;
            // the transition time stays while the status stays True.
            if let Some(cur) = &current {
                if cur.status == "True" {
                    c.last_transition_time = cur.last_transition_time.clone();
                }
                util::remove_condition(&mut s, "Progressing");
            }
            util::set_condition(&mut s, c);
        } else if util::deployment_timed_out(d, &s) {
            let c = util::new_condition(
                "Progressing",
                "False",
                reason::TIMED_OUT,
                &subject("has timed out progressing."),
            );
            util::set_condition(&mut s, c);
        }
    }
    match replica_failure(all, new_rs) {
        Some(c) => util::set_condition(&mut s, c),
        None => util::remove_condition(&mut s, "ReplicaFailure"),
    }
    if d.status.as_ref() == Some(&s) {
        return Ok(requeue_stuck(d, &s));
    }
    d.status = Some(s);
    update_status(state, d).await?;
    let s = d.status.clone().unwrap_or_default();
    Ok(requeue_stuck(d, &s))
}

/// The ReplicaFailure of the new set, else of any set.
fn replica_failure(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
) -> Option<DeploymentCondition> {
    let failure = |rs: &ReplicaSet| {
        rs.status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .find(|c| c.type_ == "ReplicaFailure")
            .map(|c| DeploymentCondition {
                type_: c.type_.clone(),
                status: c.status.clone(),
                reason: c.reason.clone(),
                message: c.message.clone(),
                last_update_time: c.last_transition_time.clone(),
                last_transition_time: c.last_transition_time.clone(),
            })
    };
    new_rs
        .and_then(failure)
        .or_else(|| all.iter().find_map(|rs| failure(rs)))
}

/// A rollout with a deadline, not complete and not yet timed out, gets no
/// event when its deadline passes: look again just after it.
fn requeue_stuck(
    d: &Deployment,
    s: &k8s_openapi::api::apps::v1::DeploymentStatus,
) -> Option<Duration> {
    let cur = util::condition(s, "Progressing")?;
    if !util::has_progress_deadline(d)
        || util::deployment_complete(d, s)
        || cur.reason.as_deref() == Some(reason::TIMED_OUT)
    {
        return None;
    }
    let deadline = d.spec.as_ref()?.progress_deadline_seconds?;
    let from = cur.last_update_time.as_ref()?.0;
    let due = from + jiff::SignedDuration::from_secs(deadline.into());
    let after = due.duration_since(Timestamp::now());
    if after < jiff::SignedDuration::from_secs(1) {
        return Some(Duration::from_secs(1));
    }
    // A second of slack so the check lands past the deadline.
    Some(Duration::try_from(after).unwrap_or_default() + Duration::from_secs(1))
}
