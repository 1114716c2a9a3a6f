//! Deployment helpers (Kubernetes' `pkg/controller/deployment/util`):
//! annotations, revisions, the pod-template-hash, the surge/unavailable
//! fenceposts, replica counts and conditions.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentCondition, DeploymentStatus, ReplicaSet};
use k8s_openapi::api::core::v1::PodTemplateSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::controllers::replicaset::status::now;

/// Revision of a ReplicaSet and of its Deployment.
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// Earlier revisions a rolled-back-to ReplicaSet had.
pub const REVISION_HISTORY: &str = "deployment.kubernetes.io/revision-history";
/// The Deployment's replicas when the ReplicaSet was last scaled.
pub const DESIRED_REPLICAS: &str = "deployment.kubernetes.io/desired-replicas";
/// replicas + maxSurge when the ReplicaSet was last scaled.
pub const MAX_REPLICAS: &str = "deployment.kubernetes.io/max-replicas";
/// The label that tells ReplicaSets of one Deployment apart.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// extensions/v1beta1's rollbackTo, kept as an annotation on apps/v1.
pub const ROLLBACK_TO: &str = "deprecated.deployment.rollback.to";
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
/// Characters of revision history kept on a ReplicaSet.
const MAX_REV_HISTORY_CHARS: usize = 2000;

/// Progressing reasons and Available reasons, in Kubernetes' words.
pub mod reason {
    /// A new ReplicaSet was created.
    pub const NEW_RS_CREATED: &str = "NewReplicaSetCreated";
    /// An existing new ReplicaSet was found.
    pub const FOUND_NEW_RS: &str = "FoundNewReplicaSet";
    /// The rollout moved.
    pub const RS_UPDATED: &str = "ReplicaSetUpdated";
    /// The rollout finished.
    pub const NEW_RS_AVAILABLE: &str = "NewReplicaSetAvailable";
    /// No progress within progressDeadlineSeconds.
    pub const TIMED_OUT: &str = "ProgressDeadlineExceeded";
    /// Paused by the user.
    pub const PAUSED: &str = "DeploymentPaused";
    /// Resumed by the user.
    pub const RESUMED: &str = "DeploymentResumed";
    /// The new ReplicaSet could not be created.
    pub const FAILED_RS_CREATE: &str = "ReplicaSetCreateError";
    /// Enough pods are available.
    pub const MIN_AVAILABLE: &str = "MinimumReplicasAvailable";
    /// Too few pods are available.
    pub const MIN_UNAVAILABLE: &str = "MinimumReplicasUnavailable";
}

/// spec.replicas of a Deployment (defaulted to 1).
pub fn d_replicas(d: &Deployment) -> i32 {
    d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

/// spec.replicas of a ReplicaSet.
pub fn replicas(rs: &ReplicaSet) -> i32 {
    rs.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1)
}

fn st(rs: &ReplicaSet) -> k8s_openapi::api::apps::v1::ReplicaSetStatus {
    rs.status.clone().unwrap_or_default()
}

/// Sum of spec.replicas.
pub fn replica_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|r| replicas(r)).sum()
}
/// Sum of status.replicas.
pub fn actual_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|r| st(r).replicas).sum()
}
/// Sum of status.readyReplicas.
pub fn ready_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter().map(|r| st(r).ready_replicas.unwrap_or(0)).sum()
}
/// Sum of status.availableReplicas.
pub fn available_count(rss: &[&ReplicaSet]) -> i32 {
    rss.iter()
        .map(|r| st(r).available_replicas.unwrap_or(0))
        .sum()
}

/// ReplicaSets with replicas > 0.
pub fn active<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> Vec<&'a ReplicaSet> {
    rss.into_iter().filter(|r| replicas(r) > 0).collect()
}

fn created(rs: &ReplicaSet) -> Option<Timestamp> {
    rs.metadata.creation_timestamp.as_ref().map(|t| t.0)
}

/// Older first, then by name.
pub fn by_creation(a: &ReplicaSet, b: &ReplicaSet) -> Ordering {
    created(a)
        .cmp(&created(b))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// The revision annotation as a number (0 if absent or not a number).
pub fn revision(rs: &ReplicaSet) -> i64 {
    rs.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The highest revision among `rss`.
pub fn max_revision<'a>(rss: impl IntoIterator<Item = &'a ReplicaSet>) -> i64 {
    rss.into_iter().map(revision).max().unwrap_or(0)
}

/// Whether the strategy is RollingUpdate (the default).
pub fn is_rolling(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.type_.as_deref())
        .is_none_or(|t| t == "RollingUpdate")
}

/// An int, or a percentage of `total` rounded up or down.
pub fn scaled_value(v: &IntOrString, total: i32, round_up: bool) -> i32 {
    match v {
        IntOrString::Int(i) => *i,
        IntOrString::String(s) => {
            let Some(p) = s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()) else {
                return s.parse().unwrap_or(0);
            };
            let scaled = p * i64::from(total);
            (if round_up {
                (scaled + 99).div_euclid(100)
            } else {
                scaled.div_euclid(100)
            }) as i32
        }
    }
}

fn rolling_params(d: &Deployment) -> (IntOrString, IntOrString) {
    let ru = d
        .spec
        .as_ref()
        .and_then(|s| s.strategy.as_ref())
        .and_then(|s| s.rolling_update.as_ref());
    let pct = || IntOrString::String("25%".into());
    (
        ru.and_then(|r| r.max_surge.clone()).unwrap_or_else(pct),
        ru.and_then(|r| r.max_unavailable.clone())
            .unwrap_or_else(pct),
    )
}

/// Surge rounded up, unavailable rounded down; if both come to 0 (only by
/// rounding, validation forbids literal zeros) unavailable becomes 1 so the
/// rollout can move at all.
pub fn resolve_fenceposts(
    surge: &IntOrString,
    unavailable: &IntOrString,
    desired: i32,
) -> (i32, i32) {
    let s = scaled_value(surge, desired, true);
    let mut u = scaled_value(unavailable, desired, false);
    if s == 0 && u == 0 {
        u = 1;
    }
    (s, u)
}

/// Resolved maxUnavailable, at most replicas.
pub fn max_unavailable(d: &Deployment) -> i32 {
    let desired = d_replicas(d);
    if !is_rolling(d) || desired == 0 {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(&s, &u, desired).1.min(desired)
}

/// Resolved maxSurge.
pub fn max_surge(d: &Deployment) -> i32 {
    if !is_rolling(d) {
        return 0;
    }
    let (s, u) = rolling_params(d);
    resolve_fenceposts(&s, &u, d_replicas(d)).0
}

/// How many replicas the new ReplicaSet may have now.
pub fn new_rs_new_replicas(d: &Deployment, all: &[&ReplicaSet], new_rs: &ReplicaSet) -> i32 {
    let desired = d_replicas(d);
    if !is_rolling(d) {
        return desired;
    }
    let surge = scaled_value(&rolling_params(d).0, desired, true);
    let current = replica_count(all);
    let max_total = desired + surge;
    if current >= max_total {
        return replicas(new_rs);
    }
    let up = (max_total - current).min(desired - replicas(new_rs));
    replicas(new_rs) + up
}

fn without_hash(t: &PodTemplateSpec) -> PodTemplateSpec {
    let mut t = t.clone();
    let meta = t.metadata.get_or_insert_with(Default::default);
    if let Some(labels) = meta.labels.as_mut() {
        labels.remove(POD_TEMPLATE_HASH);
        if labels.is_empty() {
            meta.labels = None;
        }
    }
    t
}

/// Templates equal apart from the pod-template-hash label.
pub fn equal_ignore_hash(a: &PodTemplateSpec, b: &PodTemplateSpec) -> bool {
    without_hash(a) == without_hash(b)
}

/// A short stable hash of the template (and the collision count, so a
/// collision yields a new name): FNV-1a over its canonical JSON, the
/// decimal digits mapped onto the no-vowel alphabet as Kubernetes does.
pub fn compute_hash(t: &PodTemplateSpec, collision_count: Option<i32>) -> String {
    let mut h: u32 = 0x811c_9dc5;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    };
    feed(&serde_json::to_vec(t).unwrap_or_default());
    if let Some(c) = collision_count {
        feed(&(c as u32).to_le_bytes());
    }
    const ALPHANUMS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    h.to_string()
        .bytes()
        .map(|c| ALPHANUMS[usize::from(c) % ALPHANUMS.len()] as char)
        .collect()
}

fn template(rs: &ReplicaSet) -> PodTemplateSpec {
    rs.spec
        .as_ref()
        .and_then(|s| s.template.clone())
        .unwrap_or_default()
}

/// The Deployment's template.
pub fn d_template(d: &Deployment) -> PodTemplateSpec {
    d.spec
        .as_ref()
        .map(|s| s.template.clone())
        .unwrap_or_default()
}

/// The oldest ReplicaSet whose template is the Deployment's.
pub fn find_new(d: &Deployment, rss: &[ReplicaSet]) -> Option<ReplicaSet> {
    let t = d_template(d);
    let mut sorted: Vec<&ReplicaSet> = rss.iter().collect();
    sorted.sort_by(|a, b| by_creation(a, b));
    sorted
        .into_iter()
        .find(|rs| equal_ignore_hash(&template(rs), &t))
        .cloned()
}

fn annotations(rs: &mut ReplicaSet) -> &mut BTreeMap<String, String> {
    rs.metadata.annotations.get_or_insert_with(Default::default)
}

fn skip_copy(key: &str) -> bool {
    matches!(
        key,
        LAST_APPLIED | REVISION | REVISION_HISTORY | DESIRED_REPLICAS | MAX_REPLICAS | ROLLBACK_TO
    )
}

/// Copy the Deployment's annotations (change-cause among them) onto the
/// ReplicaSet, set its revision (keeping the earlier ones in the history
/// when it is rolled back to) and, for a new set, the replica annotations.
/// True if anything changed.
pub fn set_new_rs_annotations(
    d: &Deployment,
    rs: &mut ReplicaSet,
    new_revision: i64,
    exists: bool,
) -> bool {
    let mut changed = false;
    for (k, v) in d.metadata.annotations.iter().flatten() {
        if skip_copy(k) || annotations(rs).get(k) == Some(v) {
            continue;
        }
        annotations(rs).insert(k.clone(), v.clone());
        changed = true;
    }
    let old = annotations(rs).get(REVISION).cloned();
    let old_n = match old.as_deref() {
        None | Some("") => 0,
        Some(v) => match v.parse::<i64>() {
            Ok(n) => n,
            Err(_) => return false,
        },
    };
    if old_n < new_revision {
        annotations(rs).insert(REVISION.into(), new_revision.to_string());
        changed = true;
        if let Some(old) = old.filter(|o| !o.is_empty()) {
            let history = annotations(rs)
                .get(REVISION_HISTORY)
                .cloned()
                .unwrap_or_default();
            let mut list: Vec<String> = if history.is_empty() {
                Vec::new()
            } else {
                history.split(',').map(str::to_string).collect()
            };
            let mut total = history.len() + old.len() + 1;
            let mut start = 0;
            while total > MAX_REV_HISTORY_CHARS && start < list.len() {
                total -= list[start].len() + 1;
                start += 1;
            }
            if total <= MAX_REV_HISTORY_CHARS {
                list.drain(..start);
                list.push(old);
                annotations(rs).insert(REVISION_HISTORY.into(), list.join(","));
            }
        }
    }
    if !exists && set_replicas_annotations(rs, d_replicas(d), d_replicas(d) + max_surge(d)) {
        changed = true;
    }
    changed
}

/// Set desired-replicas and max-replicas; true if they changed.
pub fn set_replicas_annotations(rs: &mut ReplicaSet, desired: i32, max: i32) -> bool {
    let a = annotations(rs);
    let mut changed = false;
    for (k, v) in [(DESIRED_REPLICAS, desired), (MAX_REPLICAS, max)] {
        let v = v.to_string();
        if a.get(k) != Some(&v) {
            a.insert(k.into(), v);
            changed = true;
        }
    }
    changed
}

/// Whether desired-replicas or max-replicas differ from these values.
pub fn replicas_annotations_need_update(rs: &ReplicaSet, desired: i32, max: i32) -> bool {
    let a = rs.metadata.annotations.clone().unwrap_or_default();
    a.get(DESIRED_REPLICAS) != Some(&desired.to_string())
        || a.get(MAX_REPLICAS) != Some(&max.to_string())
}

/// An annotation as an i32.
pub fn int_annotation(rs: &ReplicaSet, key: &str) -> Option<i32> {
    rs.metadata.annotations.as_ref()?.get(key)?.parse().ok()
}

/// Set the Deployment's revision annotation; true if it changed.
pub fn set_deployment_revision(d: &mut Deployment, revision: &str) -> bool {
    let a = d.metadata.annotations.get_or_insert_with(Default::default);
    if a.get(REVISION).map(String::as_str) == Some(revision) {
        return false;
    }
    a.insert(REVISION.into(), revision.into());
    true
}

/// The single active ReplicaSet, or the newest if none is active; None if
/// several are active.
pub fn find_active_or_latest<'a>(
    new_rs: Option<&'a ReplicaSet>,
    old: &'a [ReplicaSet],
) -> Option<&'a ReplicaSet> {
    if new_rs.is_none() && old.is_empty() {
        return None;
    }
    let mut olds: Vec<&ReplicaSet> = old.iter().collect();
    olds.sort_by(|a, b| by_creation(b, a));
    let mut all = olds.clone();
    all.extend(new_rs);
    let act = active(all);
    match act.len() {
        0 => new_rs.or_else(|| olds.first().copied()),
        1 => Some(act[0]),
        _ => None,
    }
}

/// The new set runs all replicas, all available, for the current size.
pub fn is_saturated(d: &Deployment, rs: Option<&ReplicaSet>) -> bool {
    let Some(rs) = rs else { return false };
    let Some(desired) = int_annotation(rs, DESIRED_REPLICAS) else {
        return false;
    };
    let want = d_replicas(d);
    replicas(rs) == want && desired == want && st(rs).available_replicas.unwrap_or(0) == want
}

/// This set's share of a proportional scale.
pub fn proportion(rs: &ReplicaSet, d: &Deployment, to_add: i32, added: i32) -> i32 {
    if replicas(rs) == 0 || to_add == 0 || to_add == added {
        return 0;
    }
    let fraction = fraction(rs, d);
    let allowed = to_add - added;
    if to_add > 0 {
        fraction.min(allowed)
    } else {
        fraction.max(allowed)
    }
}

fn fraction(rs: &ReplicaSet, d: &Deployment) -> i32 {
    if d_replicas(d) == 0 {
        return -replicas(rs);
    }
    let max = d_replicas(d) + max_surge(d);
    let annotated = int_annotation(rs, MAX_REPLICAS)
        .unwrap_or_else(|| d.status.as_ref().and_then(|s| s.replicas).unwrap_or(0));
    if annotated == 0 {
        return 0;
    }
    let size = f64::from(replicas(rs)) * f64::from(max) / f64::from(annotated);
    size.round() as i32 - replicas(rs)
}

/// progressDeadlineSeconds is set (and not "forever").
pub fn has_progress_deadline(d: &Deployment) -> bool {
    d.spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .is_some_and(|s| s != i32::MAX)
}

/// A condition of this type.
pub fn condition<'a>(s: &'a DeploymentStatus, type_: &str) -> Option<&'a DeploymentCondition> {
    s.conditions.as_ref()?.iter().find(|c| c.type_ == type_)
}

/// A fresh condition stamped now.
pub fn new_condition(
    type_: &str,
    status: &str,
    reason: &str,
    message: &str,
) -> DeploymentCondition {
    let t = Time(now());
    DeploymentCondition {
        type_: type_.into(),
        status: status.into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_update_time: Some(t.clone()),
        last_transition_time: Some(t),
    }
}

/// Set a condition unless one with the same status and reason exists;
/// the transition time is kept when the status did not change.
pub fn set_condition(s: &mut DeploymentStatus, mut c: DeploymentCondition) {
    if let Some(cur) = condition(s, &c.type_) {
        if cur.status == c.status && cur.reason == c.reason {
            return;
        }
        if cur.status == c.status {
            c.last_transition_time = cur.last_transition_time.clone();
        }
    }
    remove_condition(s, &c.type_);
    s.conditions.get_or_insert_with(Vec::new).push(c);
}

/// Remove conditions of this type.
pub fn remove_condition(s: &mut DeploymentStatus, type_: &str) {
    if let Some(cs) = s.conditions.as_mut() {
        cs.retain(|c| c.type_ != type_);
        if cs.is_empty() {
            s.conditions = None;
        }
    }
}

/// Every replica updated, present and available for the current spec.
pub fn deployment_complete(d: &Deployment, s: &DeploymentStatus) -> bool {
    let want = d_replicas(d);
    s.updated_replicas.unwrap_or(0) == want
        && s.replicas.unwrap_or(0) == want
        && s.available_replicas.unwrap_or(0) == want
        && s.observed_generation.unwrap_or(0) >= d.metadata.generation.unwrap_or(0)
}

/// Something moved since the last status.
pub fn deployment_progressing(d: &Deployment, new: &DeploymentStatus) -> bool {
    let old = d.status.clone().unwrap_or_default();
    let g = |v: Option<i32>| v.unwrap_or(0);
    let old_old = g(old.replicas) - g(old.updated_replicas);
    let new_old = g(new.replicas) - g(new.updated_replicas);
    g(new.updated_replicas) > g(old.updated_replicas)
        || new_old < old_old
        || g(new.ready_replicas) > g(old.ready_replicas)
        || g(new.available_replicas) > g(old.available_replicas)
}

/// No progress within progressDeadlineSeconds of the last update of the
/// Progressing condition.
pub fn deployment_timed_out(d: &Deployment, s: &DeploymentStatus) -> bool {
    if !has_progress_deadline(d) {
        return false;
    }
    let Some(c) = condition(s, "Progressing") else {
        return false;
    };
    match c.reason.as_deref() {
        Some(reason::NEW_RS_AVAILABLE) => return false,
        Some(reason::TIMED_OUT) => return true,
        _ => {}
    }
    let Some(from) = c.last_update_time.as_ref() else {
        return false;
    };
    let deadline = d
        .spec
        .as_ref()
        .and_then(|s| s.progress_deadline_seconds)
        .unwrap_or(600);
    from.0 + jiff::SignedDuration::from_secs(deadline.into()) < Timestamp::now()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_kubernetes() {
        let p = |s: &str| IntOrString::String(s.into());
        assert_eq!(scaled_value(&p("25%"), 10, true), 3);
        assert_eq!(scaled_value(&p("25%"), 10, false), 2);
        assert_eq!(resolve_fenceposts(&p("25%"), &p("25%"), 1), (1, 0));
        assert_eq!(
            resolve_fenceposts(&IntOrString::Int(0), &p("10%"), 3),
            (0, 1)
        );
        assert_eq!(
            resolve_fenceposts(&IntOrString::Int(2), &IntOrString::Int(1), 3),
            (2, 1)
        );
    }

    #[test]
    fn hash_is_stable_and_ignores_itself() {
        let t = PodTemplateSpec::default();
        assert_eq!(compute_hash(&t, None), compute_hash(&t, None));
        assert_ne!(compute_hash(&t, None), compute_hash(&t, Some(1)));
        let mut labelled = t.clone();
        labelled.metadata = Some(Default::default());
        labelled.metadata.as_mut().unwrap().labels =
            Some([(POD_TEMPLATE_HASH.to_string(), "x".to_string())].into());
        assert!(equal_ignore_hash(&t, &labelled));
    }
}
