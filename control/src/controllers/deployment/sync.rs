//! Syncing ReplicaSets with their Deployment outside a rollout: finding or
//! creating the new ReplicaSet with its revision, proportional scaling,
//! history cleanup and status (Kubernetes' `sync.go`).

use std::collections::HashMap;

use k8s_openapi::api::apps::v1::{Deployment, DeploymentStatus, ReplicaSet, ReplicaSetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, PostParams};

use super::util::{self, reason};
use super::{Error, State};
use crate::controllers::events::{self, EventType};
use crate::controllers::omit_empty;
use crate::controllers::replicaset::claim::is_not_found;

/// The controller reference a Deployment puts on its ReplicaSets.
pub fn controller_ref(d: &Deployment) -> OwnerReference {
    OwnerReference {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        name: d.metadata.name.clone().unwrap_or_default(),
        uid: d.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

fn rs_api(state: &State, d: &Deployment) -> Api<ReplicaSet> {
    Api::namespaced(
        state.client.clone(),
        d.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

fn d_api(state: &State, d: &Deployment) -> Api<Deployment> {
    Api::namespaced(
        state.client.clone(),
        d.metadata.namespace.as_deref().unwrap_or("default"),
    )
}

/// Write the Deployment's status (and, as Kubernetes' status strategy
/// allows, its annotations); the written object replaces `d`.
pub async fn update_status(state: &State, d: &mut Deployment) -> Result<(), Error> {
    let name = d.metadata.name.clone().unwrap_or_default();
    *d = d_api(state, d)
        .replace_status(&name, &PostParams::default(), d)
        .await
        .map_err(Error::Api)?;
    Ok(())
}

/// Record an event on the Deployment.
pub async fn event(state: &State, d: &Deployment, kind: EventType, reason: &str, message: &str) {
    let r = events::reference("apps/v1", "Deployment", &d.metadata);
    state.recorder.record(&r, kind, reason, message).await;
}

/// The new ReplicaSet (created if `create` and missing) and the old ones;
/// the new one's revision is brought to max(old)+1 and mirrored on the
/// Deployment.
pub async fn get_all_and_sync_revision(
    state: &State,
    d: &mut Deployment,
    rss: &[ReplicaSet],
    create: bool,
) -> Result<(Option<ReplicaSet>, Vec<ReplicaSet>), Error> {
    let existing = util::find_new(d, rss);
    let new_uid = existing.as_ref().and_then(|r| r.metadata.uid.clone());
    let old: Vec<ReplicaSet> = rss
        .iter()
        .filter(|r| new_uid.is_none() || r.metadata.uid != new_uid)
        .cloned()
        .collect();
    let new = get_new(state, d, existing, &old, create).await?;
    Ok((new, old))
}

async fn get_new(
    state: &State,
    d: &mut Deployment,
    existing: Option<ReplicaSet>,
    old: &[ReplicaSet],
    create: bool,
) -> Result<Option<ReplicaSet>, Error> {
    let new_revision = util::max_revision(old) + 1;
    let min_ready = d.spec.as_ref().and_then(|s| s.min_ready_seconds);
    if let Some(existing) = existing {
        let mut rs = existing.clone();
        let annotations_changed = util::set_new_rs_annotations(d, &mut rs, new_revision, true);
        let spec = rs.spec.get_or_insert_with(Default::default);
        let min_ready_changed = spec.min_ready_seconds.unwrap_or(0) != min_ready.unwrap_or(0);
        if annotations_changed || min_ready_changed {
            spec.min_ready_seconds = min_ready;
            let name = rs.metadata.name.clone().unwrap_or_default();
            let rs = rs_api(state, d)
                .replace(&name, &PostParams::default(), &rs)
                .await
                .map_err(Error::Api)?;
            return Ok(Some(rs));
        }
        let rev = rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(util::REVISION))
            .cloned()
            .unwrap_or_default();
        let mut needs_update = util::set_deployment_revision(d, &rev);
        let has_deadline = util::has_progress_deadline(d);
        let status = d.status.get_or_insert_with(Default::default);
        if has_deadline && util::condition(status, "Progressing").is_none() {
            let msg = format!(
                "Found new replica set {:?}",
                rs.metadata.name.as_deref().unwrap_or("")
            );
            let c = util::new_condition("Progressing", "True", reason::FOUND_NEW_RS, &msg);
            util::set_condition(d.status.get_or_insert_with(Default::default), c);
            needs_update = true;
        }
        if needs_update {
            update_status(state, d).await?;
        }
        return Ok(Some(rs));
    }
    if !create {
        return Ok(None);
    }

    let spec = d.spec.clone().unwrap_or_default();
    let collision_count = d.status.as_ref().and_then(|s| s.collision_count);
    let hash = util::compute_hash(&spec.template, collision_count);
    let mut template = spec.template.clone();
    let tmeta = template.metadata.get_or_insert_with(Default::default);
    tmeta
        .labels
        .get_or_insert_with(Default::default)
        .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
    let labels = tmeta.labels.clone();
    let mut selector: LabelSelector = spec.selector.clone();
    selector
        .match_labels
        .get_or_insert_with(Default::default)
        .insert(util::POD_TEMPLATE_HASH.into(), hash.clone());
    let d_name = d.metadata.name.clone().unwrap_or_default();
    let mut new_rs = ReplicaSet {
        metadata: ObjectMeta {
            // Deterministic, so a retried create finds its earlier attempt.
            name: Some(format!("{d_name}-{hash}")),
            namespace: d.metadata.namespace.clone(),
            owner_references: Some(vec![controller_ref(d)]),
            labels,
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(0),
            min_ready_seconds: min_ready,
            selector,
            template: Some(template),
        }),
        status: None,
    };
    let mut all: Vec<&ReplicaSet> = old.iter().collect();
    all.push(&new_rs);
    let count = util::new_rs_new_replicas(d, &all, &new_rs);
    new_rs.spec.as_mut().expect("set above").replicas = Some(count);
    util::set_new_rs_annotations(d, &mut new_rs, new_revision, false);

    let api = rs_api(state, d);
    let mut already_exists = false;
    let created = match api.create(&PostParams::default(), &new_rs).await {
        Ok(rs) => rs,
        Err(kube::Error::Api(s)) if s.code == 409 => {
            already_exists = true;
            let name = new_rs.metadata.name.clone().unwrap_or_default();
            let found = api.get(&name).await.map_err(Error::Api)?;
            let ours = crate::controllers::replicaset::pods::controller_of(&found.metadata)
                .is_some_and(|r| Some(&r.uid) == d.metadata.uid.as_ref());
            let same = util::equal_ignore_hash(
                &spec.template,
                &found
                    .spec
                    .as_ref()
                    .and_then(|s| s.template.clone())
                    .unwrap_or_default(),
            );
            if !(ours && same) {
                // A hash collision: a new count gives a new name next time.
                let status = d.status.get_or_insert_with(Default::default);
                status.collision_count = Some(status.collision_count.unwrap_or(0) + 1);
                update_status(state, d).await?;
                return Err(Error::Collision(name));
            }
            found
        }
        Err(e) => {
            let msg = format!(
                "Failed to create new replica set {:?}: {e}",
                new_rs.metadata.name.as_deref().unwrap_or("")
            );
            if util::has_progress_deadline(d) {
                let c = util::new_condition("Progressing", "False", reason::FAILED_RS_CREATE, &msg);
                util::set_condition(d.status.get_or_insert_with(Default::default), c);
                let _ = update_status(state, d).await;
            }
            event(state, d, EventType::Warning, reason::FAILED_RS_CREATE, &msg).await;
            return Err(Error::Api(e));
        }
    };
    let created_name = created.metadata.name.clone().unwrap_or_default();
    if !already_exists && count > 0 {
        let msg = format!("Scaled up replica set {created_name} from 0 to {count}");
        event(state, d, EventType::Normal, "ScalingReplicaSet", &msg).await;
    }
    let mut needs_update = util::set_deployment_revision(d, &new_revision.to_string());
    if !already_exists && util::has_progress_deadline(d) {
        let msg = format!("Created new replica set {created_name:?}");
        let c = util::new_condition("Progressing", "True", reason::NEW_RS_CREATED, &msg);
        util::set_condition(d.status.get_or_insert_with(Default::default), c);
        needs_update = true;
    }
    if needs_update {
        update_status(state, d).await?;
    }
    Ok(Some(created))
}

/// Scale `rs` to `to`, with a ScalingReplicaSet event; returns whether it
/// was scaled and the written ReplicaSet.
pub async fn scale_and_record(
    state: &State,
    rs: &ReplicaSet,
    to: i32,
    d: &Deployment,
) -> Result<(bool, ReplicaSet), Error> {
    let from = util::replicas(rs);
    if from == to {
        return Ok((false, rs.clone()));
    }
    let op = if from < to { "up" } else { "down" };
    scale(state, rs, to, d, op).await
}

/// Scale `rs` to `to` and refresh its replica annotations.
pub async fn scale(
    state: &State,
    rs: &ReplicaSet,
    to: i32,
    d: &Deployment,
    op: &str,
) -> Result<(bool, ReplicaSet), Error> {
    let from = util::replicas(rs);
    let desired = util::d_replicas(d);
    let max = desired + util::max_surge(d);
    let size_changes = from != to;
    if !size_changes && !util::replicas_annotations_need_update(rs, desired, max) {
        return Ok((false, rs.clone()));
    }
    let mut copy = rs.clone();
    copy.spec.get_or_insert_with(Default::default).replicas = Some(to);
    util::set_replicas_annotations(&mut copy, desired, max);
    let name = copy.metadata.name.clone().unwrap_or_default();
    let written = rs_api(state, d)
        .replace(&name, &PostParams::default(), &copy)
        .await
        .map_err(Error::Api)?;
    if size_changes {
        let msg = format!("Scaled {op} replica set {name} from {from} to {to}");
        event(state, d, EventType::Normal, "ScalingReplicaSet", &msg).await;
    }
    Ok((size_changes, written))
}

/// Resize the ReplicaSets to a new spec.replicas: the one active set takes
/// it all; otherwise (mid-rollout) every active set grows or shrinks in
/// proportion to its size, leftovers to the largest.
pub async fn scale_deployment(
    state: &State,
    d: &Deployment,
    new_rs: Option<&ReplicaSet>,
    old: &[ReplicaSet],
) -> Result<(), Error> {
    let desired = util::d_replicas(d);
    if let Some(rs) = util::find_active_or_latest(new_rs, old) {
        if util::replicas(rs) != desired {
            scale_and_record(state, rs, desired, d).await?;
        }
        return Ok(());
    }
    if util::is_saturated(d, new_rs) {
        for rs in util::active(old) {
            scale_and_record(state, rs, 0, d).await?;
        }
        return Ok(());
    }
    if !util::is_rolling(d) {
        return Ok(());
    }
    let mut all: Vec<&ReplicaSet> = util::active(old.iter().chain(new_rs));
    let current = util::replica_count(&all);
    let allowed = if desired > 0 {
        desired + util::max_surge(d)
    } else {
        0
    };
    let to_add = allowed - current;
    let op = match to_add {
        n if n > 0 => {
            // Larger first; among equals, newer first when growing.
            all.sort_by(|a, b| {
                util::replicas(b)
                    .cmp(&util::replicas(a))
                    .then_with(|| util::by_creation(b, a))
            });
            "up"
        }
        n if n < 0 => {
            // Larger first; among equals, older first when shrinking.
            all.sort_by(|a, b| {
                util::replicas(b)
                    .cmp(&util::replicas(a))
                    .then_with(|| util::by_creation(a, b))
            });
            "down"
        }
        _ => "",
    };
    let mut added = 0;
    let mut sizes: HashMap<String, i32> = HashMap::new();
    for rs in &all {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let p = if to_add != 0 {
            util::proportion(rs, d, to_add, added)
        } else {
            0
        };
        added += p;
        sizes.insert(name, util::replicas(rs) + p);
    }
    for (i, rs) in all.iter().enumerate() {
        let name = rs.metadata.name.clone().unwrap_or_default();
        let mut size = sizes[&name];
        if i == 0 && to_add != 0 {
            size = (size + to_add - added).max(0);
        }
        scale(state, rs, size, d, op).await?;
    }
    Ok(())
}

/// Delete the oldest zero-size ReplicaSets beyond revisionHistoryLimit.
pub async fn cleanup(state: &State, old: &[ReplicaSet], d: &Deployment) -> Result<(), Error> {
    let Some(limit) = d.spec.as_ref().and_then(|s| s.revision_history_limit) else {
        return Ok(());
    };
    let mut cleanable: Vec<&ReplicaSet> = old
        .iter()
        .filter(|r| r.metadata.deletion_timestamp.is_none())
        .collect();
    let diff = cleanable.len() as i64 - i64::from(limit);
    if diff <= 0 {
        return Ok(());
    }
    cleanable.sort_by(|a, b| {
        util::revision(a)
            .cmp(&util::revision(b))
            .then_with(|| util::by_creation(a, b))
    });
    let api = rs_api(state, d);
    for rs in cleanable.into_iter().take(diff as usize) {
        let st = rs.status.clone().unwrap_or_default();
        if st.replicas != 0
            || util::replicas(rs) != 0
            || rs.metadata.generation.unwrap_or(0) > st.observed_generation.unwrap_or(0)
        {
            continue;
        }
        let name = rs.metadata.name.clone().unwrap_or_default();
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(Error::Api(e)),
        }
    }
    Ok(())
}

/// The status the ReplicaSets call for, with the Available condition.
pub fn calculate_status(
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &Deployment,
) -> DeploymentStatus {
    let available = util::available_count(all);
    let total = util::replica_count(all);
    let current = d.status.clone().unwrap_or_default();
    let mut s = DeploymentStatus {
        observed_generation: d.metadata.generation,
        replicas: omit_empty(util::actual_count(all)),
        updated_replicas: omit_empty(new_rs.map(|r| util::actual_count(&[r])).unwrap_or(0)),
        ready_replicas: omit_empty(util::ready_count(all)),
        available_replicas: omit_empty(available),
        unavailable_replicas: omit_empty((total - available).max(0)),
        collision_count: current.collision_count,
        conditions: current.conditions.clone(),
        terminating_replicas: current.terminating_replicas,
    };
    if available >= util::d_replicas(d) - util::max_unavailable(d) {
        let c = util::new_condition(
            "Available",
            "True",
            reason::MIN_AVAILABLE,
            "Deployment has minimum availability.",
        );
        util::set_condition(&mut s, c);
    } else {
        let c = util::new_condition(
            "Available",
            "False",
            reason::MIN_UNAVAILABLE,
            "Deployment does not have minimum availability.",
        );
        util::set_condition(&mut s, c);
    }
    s
}

/// Write the status the ReplicaSets call for, if it changed.
pub async fn sync_status(
    state: &State,
    all: &[&ReplicaSet],
    new_rs: Option<&ReplicaSet>,
    d: &mut Deployment,
) -> Result<(), Error> {
    let s = calculate_status(all, new_rs, d);
    if d.status.as_ref() == Some(&s) {
        return Ok(());
    }
    d.status = Some(s);
    update_status(state, d).await
}

/// Whether spec.replicas changed since the active sets were last scaled.
pub async fn is_scaling_event(
    state: &State,
    d: &mut Deployment,
    rss: &[ReplicaSet],
) -> Result<bool, Error> {
    let (new_rs, old) = get_all_and_sync_revision(state, d, rss, false).await?;
    let want = util::d_replicas(d);
    Ok(util::active(old.iter().chain(new_rs.as_ref()))
        .iter()
        .filter_map(|rs| util::int_annotation(rs, util::DESIRED_REPLICAS))
        .any(|desired| desired != want))
}

/// Mark pausing and resuming in the Progressing condition (Unknown), so a
/// paused time never counts against the progress deadline.
pub async fn check_paused_conditions(state: &State, d: &mut Deployment) -> Result<(), Error> {
    if !util::has_progress_deadline(d) {
        return Ok(());
    }
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let status = d.status.get_or_insert_with(Default::default);
    let cond = util::condition(status, "Progressing");
    if cond.is_some_and(|c| c.reason.as_deref() == Some(reason::TIMED_OUT)) {
        return Ok(());
    }
    let paused_cond = cond.is_some_and(|c| c.reason.as_deref() == Some(reason::PAUSED));
    let c = if paused && !paused_cond {
        util::new_condition(
            "Progressing",
            "Unknown",
            reason::PAUSED,
            "Deployment is paused",
        )
    } else if !paused && paused_cond {
        util::new_condition(
            "Progressing",
            "Unknown",
            reason::RESUMED,
            "Deployment is resumed",
        )
    } else {
        return Ok(());
    };
    util::set_condition(status, c);
    update_status(state, d).await
}

/// Scale and report without rolling (paused, or only replicas changed).
pub async fn sync(state: &State, d: &mut Deployment, rss: &[ReplicaSet]) -> Result<(), Error> {
    let (new_rs, old) = get_all_and_sync_revision(state, d, rss, false).await?;
    scale_deployment(state, d, new_rs.as_ref(), &old).await?;
    let paused = d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false);
    let rollback = d
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(util::ROLLBACK_TO));
    if paused && !rollback {
        cleanup(state, &old, d).await?;
    }
    // Status from the sets as they were: the scale writes come back as
    // events and resync with fresh counts.
    let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
    sync_status(state, &all, new_rs.as_ref(), d).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_leaves_out_zero_counts() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "generation": 1},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}}}}
        }))
        .unwrap();
        let rs: ReplicaSet = serde_json::from_value(json!({
            "metadata": {"name": "web-1"},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}}},
            "status": {"replicas": 2}
        }))
        .unwrap();
        let s = calculate_status(&[&rs], Some(&rs), &d);
        assert_eq!((s.replicas, s.updated_replicas), (Some(2), Some(2)));
        assert_eq!((s.ready_replicas, s.available_replicas), (None, None));
        assert_eq!(s.unavailable_replicas, Some(2));
        let s = calculate_status(&[], None, &d);
        assert_eq!((s.replicas, s.updated_replicas), (None, None));
    }
}
