//! What the ReplicaSet controller asks of a pod: is it active, ready,
//! available; the pod a template makes; and which pods go first when
//! scaling down (Kubernetes' `ActivePodsWithRanks`).

use std::cmp::Ordering;
use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

/// The annotation that lets users order scale-down by cost.
pub const POD_DELETION_COST: &str = "controller.kubernetes.io/pod-deletion-cost";

fn phase(pod: &Pod) -> &str {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.as_deref())
        .unwrap_or("")
}

/// Not finished and not being deleted: the pods a controller counts.
pub fn is_active(pod: &Pod) -> bool {
    let p = phase(pod);
    p != "Succeeded" && p != "Failed" && pod.metadata.deletion_timestamp.is_none()
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// The Ready condition is True.
pub fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

/// Since when the pod has been ready, if it is.
pub fn ready_since(pod: &Pod) -> Option<Timestamp> {
    ready_condition(pod)
        .filter(|c| c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0)
}

/// Ready for at least `min_ready_seconds` at `now`.
pub fn is_available(pod: &Pod, min_ready_seconds: i32, now: Timestamp) -> bool {
    if !is_ready(pod) {
        return false;
    }
    if min_ready_seconds <= 0 {
        return true;
    }
    match ready_since(pod) {
        Some(t) => t + jiff::SignedDuration::from_secs(min_ready_seconds.into()) < now,
        None => false,
    }
}

/// `ns/name` of a pod, the key expectations use.
pub fn key(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or(""),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// The controller ownerReference of an object, if any.
pub fn controller_of(meta: &ObjectMeta) -> Option<&OwnerReference> {
    meta.owner_references
        .as_ref()?
        .iter()
        .find(|r| r.controller == Some(true))
}

/// The pod a controller creates from its template: labels, annotations and
/// finalizers of the template, `generateName` `<owner>-`, and the owner as
/// controller.
pub fn from_template(
    template: &PodTemplateSpec,
    namespace: &str,
    owner_name: &str,
    owner: OwnerReference,
) -> Pod {
    let tmeta = template.metadata.clone().unwrap_or_default();
    Pod {
        metadata: ObjectMeta {
            generate_name: Some(format!("{owner_name}-")),
            namespace: Some(namespace.to_string()),
            labels: tmeta.labels,
            annotations: tmeta.annotations,
            finalizers: tmeta.finalizers,
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: template.spec.clone(),
        status: None,
    }
}

fn phase_ordinal(pod: &Pod) -> u8 {
    match phase(pod) {
        "Pending" => 0,
        "Unknown" => 1,
        "Running" => 2,
        _ => 0,
    }
}

fn deletion_cost(pod: &Pod) -> i32 {
    pod.metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(POD_DELETION_COST))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn max_restarts(pod: &Pod) -> i32 {
    pod.status
        .as_ref()
        .and_then(|s| s.container_statuses.as_ref())
        .map(|cs| cs.iter().map(|c| c.restart_count).max().unwrap_or(0))
        .unwrap_or(0)
}

/// Ages compared on a log2 scale of nanoseconds, so pods created within the
/// same power-of-two window count as equally old and scale-down does not
/// always hit the very newest (Kubernetes' LogarithmicScaleDown).
fn log_rank_diff(t1: Timestamp, t2: Timestamp, now: Timestamp) -> i64 {
    let rank = |t: Timestamp| {
        let d = now.as_nanosecond() - t.as_nanosecond();
        if d > 0 {
            (d as f64).log2() as i64
        } else {
            -1
        }
    };
    rank(t1) - rank(t2)
}

/// Newer first; log-scaled, ties broken by uid.
fn newer_first(
    a: &Pod,
    b: &Pod,
    ta: Option<Timestamp>,
    tb: Option<Timestamp>,
    now: Timestamp,
) -> Ordering {
    match (ta, tb) {
        (None, None) => Ordering::Equal,
        // An unknown time sorts first, as Go's zero time does.
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(x), Some(y)) if x == y => Ordering::Equal,
        (Some(x), Some(y)) => match log_rank_diff(x, y, now) {
            0 => a.metadata.uid.cmp(&b.metadata.uid),
            d if d < 0 => Ordering::Less,
            _ => Ordering::Greater,
        },
    }
}

/// Order of deletion: unscheduled before scheduled, Pending before Unknown
/// before Running, not ready before ready, lower deletion cost first, more
/// pods of the same owner on the node first, ready for less time first,
/// more restarts first, newer before older.
fn deletion_order(a: &Pod, ra: usize, b: &Pod, rb: usize, now: Timestamp) -> Ordering {
    let node = |p: &Pod| {
        p.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default()
    };
    let (na, nb) = (node(a), node(b));
    if na != nb && (na.is_empty() || nb.is_empty()) {
        return if na.is_empty() {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let o = phase_ordinal(a).cmp(&phase_ordinal(b));
    if o != Ordering::Equal {
        return o;
    }
    if is_ready(a) != is_ready(b) {
        return if is_ready(a) {
            Ordering::Greater
        } else {
            Ordering::Less
        };
    }
    let o = deletion_cost(a).cmp(&deletion_cost(b));
    if o != Ordering::Equal {
        return o;
    }
    if ra != rb {
        return rb.cmp(&ra);
    }
    if is_ready(a) && is_ready(b) {
        let o = newer_first(a, b, ready_since(a), ready_since(b), now);
        if o != Ordering::Equal {
            return o;
        }
    }
    let o = max_restarts(b).cmp(&max_restarts(a));
    if o != Ordering::Equal {
        return o;
    }
    let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    newer_first(a, b, created(a), created(b), now)
}

/// The `n` pods to delete out of `pods`; `related` are the active pods of
/// the same owner's other ReplicaSets, which make a node "doubled up".
pub fn to_delete(pods: &[Arc<Pod>], related: &[Arc<Pod>], n: usize) -> Vec<Arc<Pod>> {
    if n >= pods.len() {
        return pods.to_vec();
    }
    let mut on_node: HashMap<String, usize> = HashMap::new();
    for p in related.iter().filter(|p| is_active(p)) {
        let node = p
            .spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default();
        *on_node.entry(node).or_default() += 1;
    }
    let mut ranked: Vec<(Arc<Pod>, usize)> = pods
        .iter()
        .map(|p| {
            let node = p
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .unwrap_or_default();
            (p.clone(), on_node.get(&node).copied().unwrap_or(0))
        })
        .collect();
    let now = Timestamp::now();
    ranked.sort_by(|(a, ra), (b, rb)| deletion_order(a, *ra, b, *rb, now));
    ranked.into_iter().take(n).map(|(p, _)| p).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodSpec, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn pod(name: &str, node: &str, phase: &str, ready: bool, age_s: i64) -> Arc<Pod> {
        let created = Timestamp::now() - jiff::SignedDuration::from_secs(age_s);
        Arc::new(Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                uid: Some(name.into()),
                creation_timestamp: Some(Time(created)),
                ..Default::default()
            },
            spec: Some(PodSpec {
                node_name: (!node.is_empty()).then(|| node.to_string()),
                ..Default::default()
            }),
            status: Some(PodStatus {
                phase: Some(phase.into()),
                conditions: Some(vec![PodCondition {
                    type_: "Ready".into(),
                    status: if ready { "True" } else { "False" }.into(),
                    last_transition_time: Some(Time(created)),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        })
    }

    #[test]
    fn unscheduled_then_pending_then_not_ready_then_newest() {
        let pods = vec![
            pod("old-ready", "n1", "Running", true, 100_000),
            pod("new-ready", "n1", "Running", true, 10),
            pod("not-ready", "n1", "Running", false, 100_000),
            pod("pending", "n1", "Pending", false, 100_000),
            pod("unscheduled", "", "Pending", false, 100_000),
        ];
        let order: Vec<_> = to_delete(&pods, &[], 4)
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect();
        assert_eq!(order, ["unscheduled", "pending", "not-ready", "new-ready"]);
    }

    #[test]
    fn active_excludes_terminating_and_finished() {
        let mut p = (*pod("a", "n1", "Running", true, 1)).clone();
        assert!(is_active(&p));
        p.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
        assert!(!is_active(&p));
        let done = pod("b", "n1", "Succeeded", false, 1);
        assert!(!is_active(&done));
    }

    #[test]
    fn available_after_min_ready_seconds() {
        let p = pod("a", "n1", "Running", true, 5);
        assert!(is_available(&p, 0, Timestamp::now()));
        assert!(is_available(&p, 2, Timestamp::now()));
        assert!(!is_available(&p, 60, Timestamp::now()));
    }
}
