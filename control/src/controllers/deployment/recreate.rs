//! The Recreate strategy (Kubernetes' `recreate.go`): scale every old
//! ReplicaSet to zero, wait until none of their pods runs, then create or
//! scale up the new one.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams};

use super::sync::{self, scale_and_record};
use super::util;
use super::{progress, Error, State};
use crate::controllers::replicaset::pods::controller_of;

/// How often to look for old pods to be gone: their last steps (a
/// terminating pod leaving) change no ReplicaSet, so no event wakes us.
const OLD_PODS_RECHECK: Duration = Duration::from_secs(1);

/// One step of a Recreate rollout.
pub async fn rollout(
    state: &State,
    d: &mut Deployment,
    rss: &[ReplicaSet],
) -> Result<Option<Duration>, Error> {
    let (new_rs, old) = sync::get_all_and_sync_revision(state, d, rss, false).await?;
    let mut scaled_down = false;
    for rs in util::active(old.iter()) {
        if scale_and_record(state, rs, 0, d).await?.0 {
            scaled_down = true;
        }
    }
    let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
    if scaled_down {
        return progress::sync_rollout_status(state, &all, new_rs.as_ref(), d).await;
    }
    if old_pods_running(state, d, new_rs.as_ref(), &old).await? {
        let after = progress::sync_rollout_status(state, &all, new_rs.as_ref(), d).await?;
        return Ok(Some(
            after.map_or(OLD_PODS_RECHECK, |a| a.min(OLD_PODS_RECHECK)),
        ));
    }
    let (new_rs, old) = match new_rs {
        Some(rs) => (Some(rs), old),
        None => sync::get_all_and_sync_revision(state, d, rss, true).await?,
    };
    let Some(new_rs) = new_rs else {
        return Ok(None);
    };
    let (_, new_rs) = scale_and_record(state, &new_rs, util::d_replicas(d), d).await?;
    if util::deployment_complete(d, &d.status.clone().unwrap_or_default()) {
        sync::cleanup(state, &old, d).await?;
    }
    let all: Vec<&ReplicaSet> = old.iter().chain([&new_rs]).collect();
    progress::sync_rollout_status(state, &all, Some(&new_rs), d).await
}

/// Whether an old ReplicaSet still reports pods, or any pod of one is not
/// in a terminal phase (terminating pods count: they may still run).
async fn old_pods_running(
    state: &State,
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> Result<bool, Error> {
    let old_refs: Vec<&ReplicaSet> = old.iter().collect();
    if util::actual_count(&old_refs) > 0 {
        return Ok(true);
    }
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let selector = d
        .spec
        .as_ref()
        .map(|s| s.selector.clone())
        .and_then(|s| kedge_config::selector::LabelSelector::from_label_selector(&s).ok())
        .map(|s| s.to_string())
        .unwrap_or_default();
    let pods = Api::<Pod>::namespaced(state.client.clone(), &ns)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(Error::Api)?;
    let old_uids: Vec<&String> = old.iter().filter_map(|r| r.metadata.uid.as_ref()).collect();
    let new_uid = new_rs.and_then(|r| r.metadata.uid.as_ref());
    Ok(pods.items.iter().any(|p| {
        let Some(owner) = controller_of(&p.metadata) else {
            return false;
        };
        if Some(&owner.uid) == new_uid || !old_uids.contains(&&owner.uid) {
            return false;
        }
        let phase = p
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .unwrap_or("");
        phase != "Succeeded" && phase != "Failed"
    }))
}
