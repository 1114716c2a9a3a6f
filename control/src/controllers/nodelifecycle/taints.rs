//! Taints the controller manages and toleration matching (Kubernetes'
//! `TaintNodesByCondition` and `v1helper.TolerationsTolerateTaint`).

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Node, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

/// The node's Ready condition is False.
pub const NOT_READY: &str = "node.kubernetes.io/not-ready";
/// The node's Ready condition is Unknown.
pub const UNREACHABLE: &str = "node.kubernetes.io/unreachable";
/// MemoryPressure is True.
pub const MEMORY_PRESSURE: &str = "node.kubernetes.io/memory-pressure";
/// DiskPressure is True.
pub const DISK_PRESSURE: &str = "node.kubernetes.io/disk-pressure";
/// PIDPressure is True.
pub const PID_PRESSURE: &str = "node.kubernetes.io/pid-pressure";
/// NetworkUnavailable is True.
pub const NETWORK_UNAVAILABLE: &str = "node.kubernetes.io/network-unavailable";
/// `spec.unschedulable` is set.
pub const UNSCHEDULABLE: &str = "node.kubernetes.io/unschedulable";

/// NoExecute effect.
pub const NO_EXECUTE: &str = "NoExecute";
/// NoSchedule effect.
pub const NO_SCHEDULE: &str = "NoSchedule";

const MANAGED: [&str; 7] = [
    NOT_READY,
    UNREACHABLE,
    MEMORY_PRESSURE,
    DISK_PRESSURE,
    PID_PRESSURE,
    NETWORK_UNAVAILABLE,
    UNSCHEDULABLE,
];

/// The status of a node condition, if reported.
pub fn condition<'a>(node: &'a Node, type_: &str) -> Option<&'a str> {
    node.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == type_)
        .map(|c| c.status.as_str())
}

/// The (key, effect) pairs the node's conditions call for.
pub fn wanted(node: &Node) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    match condition(node, "Ready") {
        Some("False") => {
            out.push((NOT_READY, NO_EXECUTE));
            out.push((NOT_READY, NO_SCHEDULE));
        }
        Some("Unknown") => {
            out.push((UNREACHABLE, NO_EXECUTE));
            out.push((UNREACHABLE, NO_SCHEDULE));
        }
        _ => {}
    }
    for (cond, key) in [
        ("MemoryPressure", MEMORY_PRESSURE),
        ("DiskPressure", DISK_PRESSURE),
        ("PIDPressure", PID_PRESSURE),
        ("NetworkUnavailable", NETWORK_UNAVAILABLE),
    ] {
        if condition(node, cond) == Some("True") {
            out.push((key, NO_SCHEDULE));
        }
    }
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        out.push((UNSCHEDULABLE, NO_SCHEDULE));
    }
    out
}

/// The node's taints with the managed ones made to match its conditions:
/// unmanaged taints are kept, managed taints that stay keep their
/// timeAdded (eviction deadlines count from it). `None` if nothing changes.
pub fn reconcile(node: &Node, now: Timestamp) -> Option<Vec<Taint>> {
    let current = node
        .spec
        .as_ref()
        .and_then(|s| s.taints.clone())
        .unwrap_or_default();
    let wanted = wanted(node);
    let mut out: Vec<Taint> = current
        .iter()
        .filter(|t| {
            !MANAGED.contains(&t.key.as_str())
                || wanted.contains(&(t.key.as_str(), t.effect.as_str()))
        })
        .cloned()
        .collect();
    for (key, effect) in wanted {
        if !out.iter().any(|t| t.key == key && t.effect == effect) {
            out.push(Taint {
                key: key.to_string(),
                effect: effect.to_string(),
                value: None,
                time_added: (effect == NO_EXECUTE).then_some(Time(now)),
            });
        }
    }
    (out != current).then_some(out)
}

/// Whether `toleration` tolerates `taint`.
pub fn tolerates(toleration: &Toleration, taint: &Taint) -> bool {
    if let Some(effect) = toleration.effect.as_deref().filter(|e| !e.is_empty()) {
        if effect != taint.effect {
            return false;
        }
    }
    let key = toleration.key.as_deref().unwrap_or("");
    let exists = toleration.operator.as_deref() == Some("Exists");
    if key.is_empty() {
        // An empty key with Exists tolerates everything.
        return exists;
    }
    if key != taint.key {
        return false;
    }
    exists || toleration.value.as_deref().unwrap_or("") == taint.value.as_deref().unwrap_or("")
}

/// How long a pod may stay on a node with `taints` (all NoExecute): `None`
/// for "evict now" (a taint is not tolerated), `Some(None)` for "forever",
/// `Some(Some(s))` for the shortest tolerationSeconds that applies.
pub fn toleration_time(tolerations: &[Toleration], taints: &[&Taint]) -> Option<Option<i64>> {
    let mut min: Option<i64> = None;
    for taint in taints {
        let matching: Vec<&Toleration> =
            tolerations.iter().filter(|t| tolerates(t, taint)).collect();
        if matching.is_empty() {
            return None;
        }
        // The most lenient toleration of a taint applies to it.
        let mut forever = false;
        let mut longest = i64::MIN;
        for t in matching {
            match t.toleration_seconds {
                None => forever = true,
                Some(s) => longest = longest.max(s.max(0)),
            }
        }
        if !forever {
            min = Some(min.map_or(longest, |m| m.min(longest)));
        }
    }
    Some(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taint(key: &str) -> Taint {
        Taint {
            key: key.into(),
            effect: NO_EXECUTE.into(),
            ..Default::default()
        }
    }

    fn tol(key: &str, secs: Option<i64>) -> Toleration {
        Toleration {
            key: Some(key.into()),
            operator: Some("Exists".into()),
            effect: Some(NO_EXECUTE.into()),
            toleration_seconds: secs,
            ..Default::default()
        }
    }

    #[test]
    fn toleration_times() {
        let t = taint(UNREACHABLE);
        assert_eq!(toleration_time(&[], &[&t]), None);
        assert_eq!(
            toleration_time(&[tol(UNREACHABLE, None)], &[&t]),
            Some(None)
        );
        assert_eq!(
            toleration_time(&[tol(UNREACHABLE, Some(2))], &[&t]),
            Some(Some(2))
        );
        assert_eq!(toleration_time(&[tol(NOT_READY, Some(2))], &[&t]), None);
        let any = Toleration {
            operator: Some("Exists".into()),
            ..Default::default()
        };
        assert_eq!(toleration_time(&[any], &[&t]), Some(None));
    }
}
