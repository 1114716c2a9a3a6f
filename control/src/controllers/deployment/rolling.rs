//! The RollingUpdate strategy (Kubernetes' `rolling.go`): grow the new
//! ReplicaSet up to replicas + maxSurge pods in total, shrink the old ones
//! while at least replicas − maxUnavailable pods stay available.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};

use super::sync::{self, scale_and_record};
use super::util;
use super::{progress, Error, State};

/// One step of a rolling update; returns when to look again, if the clock
/// matters (progress deadline).
pub async fn rollout(
    state: &State,
    d: &mut Deployment,
    rss: &[ReplicaSet],
) -> Result<Option<Duration>, Error> {
    let (new_rs, mut old) = sync::get_all_and_sync_revision(state, d, rss, true).await?;
    let Some(mut new_rs) = new_rs else {
        return Ok(None);
    };
    let all: Vec<ReplicaSet> = old.iter().cloned().chain([new_rs.clone()]).collect();
    let all_refs: Vec<&ReplicaSet> = all.iter().collect();

    let (scaled_up, written) = reconcile_new(state, &all_refs, &new_rs, d).await?;
    if scaled_up {
        return progress::sync_rollout_status(state, &all_refs, Some(&written), d).await;
    }
    new_rs = written;
    let all: Vec<ReplicaSet> = old.iter().cloned().chain([new_rs.clone()]).collect();
    let all_refs: Vec<&ReplicaSet> = all.iter().collect();
    if reconcile_old(state, &all_refs, &mut old, &new_rs, d).await? {
        return progress::sync_rollout_status(state, &all_refs, Some(&new_rs), d).await;
    }
    if util::deployment_complete(d, &d.status.clone().unwrap_or_default()) {
        sync::cleanup(state, &old, d).await?;
    }
    progress::sync_rollout_status(state, &all_refs, Some(&new_rs), d).await
}

async fn reconcile_new(
    state: &State,
    all: &[&ReplicaSet],
    new_rs: &ReplicaSet,
    d: &Deployment,
) -> Result<(bool, ReplicaSet), Error> {
    let desired = util::d_replicas(d);
    let current = util::replicas(new_rs);
    if current == desired {
        return Ok((false, new_rs.clone()));
    }
    if current > desired {
        return scale_and_record(state, new_rs, desired, d).await;
    }
    let count = util::new_rs_new_replicas(d, all, new_rs);
    scale_and_record(state, new_rs, count, d).await
}

/// Scale down old sets as far as availability allows; true if any moved.
async fn reconcile_old(
    state: &State,
    all: &[&ReplicaSet],
    old: &mut [ReplicaSet],
    new_rs: &ReplicaSet,
    d: &Deployment,
) -> Result<bool, Error> {
    let old_active: Vec<&ReplicaSet> = util::active(old.iter());
    if util::replica_count(&old_active) == 0 {
        return Ok(false);
    }
    let all_pods = util::replica_count(all);
    let min_available = util::d_replicas(d) - util::max_unavailable(d);
    let new_unavailable = util::replicas(new_rs)
        - new_rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
    let max_scaled_down = all_pods - min_available - new_unavailable;
    if max_scaled_down <= 0 {
        return Ok(false);
    }
    // Unhealthy old replicas go first: removing them costs no availability.
    let cleaned = cleanup_unhealthy(state, old, d, max_scaled_down).await?;
    let all: Vec<&ReplicaSet> = old.iter().chain([new_rs]).collect();
    let scaled = scale_down_old(state, &all, old, d).await?;
    Ok(cleaned + scaled > 0)
}

async fn cleanup_unhealthy(
    state: &State,
    old: &mut [ReplicaSet],
    d: &Deployment,
    max_cleanup: i32,
) -> Result<i32, Error> {
    old.sort_by(util::by_creation);
    let mut total = 0;
    for rs in old.iter_mut() {
        if total >= max_cleanup {
            break;
        }
        let replicas = util::replicas(rs);
        let available = rs
            .status
            .as_ref()
            .and_then(|s| s.available_replicas)
            .unwrap_or(0);
        if replicas == 0 || replicas == available {
            continue;
        }
        let down = (max_cleanup - total).min(replicas - available);
        let (_, written) = scale_and_record(state, rs, replicas - down, d).await?;
        *rs = written;
        total += down;
    }
    Ok(total)
}

async fn scale_down_old(
    state: &State,
    all: &[&ReplicaSet],
    old: &[ReplicaSet],
    d: &Deployment,
) -> Result<i32, Error> {
    let min_available = util::d_replicas(d) - util::max_unavailable(d);
    let available = util::available_count(all);
    if available <= min_available {
        return Ok(0);
    }
    let mut sorted: Vec<&ReplicaSet> = old.iter().collect();
    sorted.sort_by(|a, b| util::by_creation(a, b));
    let target = available - min_available;
    let mut total = 0;
    for rs in sorted {
        if total >= target {
            break;
        }
        let replicas = util::replicas(rs);
        if replicas == 0 {
            continue;
        }
        let down = replicas.min(target - total);
        scale_and_record(state, rs, replicas - down, d).await?;
        total += down;
    }
    Ok(total)
}
