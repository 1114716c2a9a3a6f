//! Controller expectations: the creates and deletes a controller has issued
//! but not yet seen come back through its watch. While any are outstanding
//! the controller does not act again, so a reconcile that runs before the
//! cache shows its new pods cannot create them a second time
//! (Kubernetes' `ControllerExpectations`, `pkg/controller/controller_utils.go`).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// After this long an expectation is given up on: a watch event can be lost
/// (a relist that skips a short-lived pod), and waiting forever would stall
/// the controller.
pub const EXPECTATIONS_TTL: Duration = Duration::from_secs(5 * 60);

#[derive(Debug)]
struct Record {
    /// Creations still to be observed.
    add: i64,
    /// Keys (`ns/name`) of pods whose deletion is still to be observed.
    del: HashSet<String>,
    set_at: Instant,
}

/// Outstanding creations and deletions per controller key (`ns/name`).
#[derive(Debug, Default)]
pub struct Expectations {
    records: Mutex<HashMap<String, Record>>,
}

impl Expectations {
    /// Whether the controller may act: nothing outstanding, no record at all,
    /// or the record expired. `gone` tells whether a pod awaited for deletion
    /// has already left the cache (its event may have been folded into a
    /// relist), so that one lost event does not hold the controller for the
    /// whole TTL.
    pub fn satisfied(&self, key: &str, gone: impl Fn(&str) -> bool) -> bool {
        let mut records = self.records.lock();
        let Some(r) = records.get_mut(key) else {
            return true;
        };
        r.del.retain(|pod| !gone(pod));
        r.add <= 0 && r.del.is_empty() || r.set_at.elapsed() > EXPECTATIONS_TTL
    }

    /// Expect `n` pods to be created.
    pub fn expect_creations(&self, key: &str, n: usize) {
        self.records.lock().insert(
            key.to_string(),
            Record {
                add: n as i64,
                del: HashSet::new(),
                set_at: Instant::now(),
            },
        );
    }

    /// Expect these pods to be deleted.
    pub fn expect_deletions(&self, key: &str, pods: impl IntoIterator<Item = String>) {
        self.records.lock().insert(
            key.to_string(),
            Record {
                add: 0,
                del: pods.into_iter().collect(),
                set_at: Instant::now(),
            },
        );
    }

    /// One expected pod was seen (or its create failed and will never be).
    pub fn creation_observed(&self, key: &str) {
        if let Some(r) = self.records.lock().get_mut(key) {
            r.add -= 1;
        }
    }

    /// A pod's deletion was seen (or its delete failed and will never be).
    pub fn deletion_observed(&self, key: &str, pod: &str) {
        if let Some(r) = self.records.lock().get_mut(key) {
            r.del.remove(pod);
        }
    }

    /// The controller is gone: drop its record.
    pub fn forget(&self, key: &str) {
        self.records.lock().remove(key);
    }
}

/// The expectation bookkeeping for one pod event of a controller whose pods
/// are owned by a `kind` object: a pod the cache has not held before is an
/// observed creation; a delete or a deletionTimestamp is an observed
/// deletion.
pub fn observe_pod_event(
    exp: &Expectations,
    kind: &str,
    before: Option<&k8s_openapi::api::core::v1::Pod>,
    ev: &kube::runtime::watcher::Event<k8s_openapi::api::core::v1::Pod>,
) {
    use kube::runtime::watcher::Event;
    let (pod, deleted) = match ev {
        Event::Apply(p) | Event::InitApply(p) => (p, p.metadata.deletion_timestamp.is_some()),
        Event::Delete(p) => (p, true),
        Event::Init | Event::InitDone => return,
    };
    let Some(owner) = super::pods::controller_of(&pod.metadata).filter(|r| r.kind == kind) else {
        return;
    };
    let ns = pod.metadata.namespace.as_deref().unwrap_or("");
    let key = format!("{ns}/{}", owner.name);
    let known = before.is_some_and(|c| c.metadata.uid == pod.metadata.uid);
    if !known {
        exp.creation_observed(&key);
    }
    if deleted {
        exp.deletion_observed(&key, &super::pods::key(pod));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creations_hold_until_observed() {
        let e = Expectations::default();
        assert!(e.satisfied("ns/a", |_| false));
        e.expect_creations("ns/a", 2);
        assert!(!e.satisfied("ns/a", |_| false));
        e.creation_observed("ns/a");
        assert!(!e.satisfied("ns/a", |_| false));
        e.creation_observed("ns/a");
        assert!(e.satisfied("ns/a", |_| false));
    }

    #[test]
    fn deletions_clear_when_the_pod_left_the_cache() {
        let e = Expectations::default();
        e.expect_deletions("ns/a", ["ns/p1".to_string(), "ns/p2".to_string()]);
        e.deletion_observed("ns/a", "ns/p1");
        assert!(!e.satisfied("ns/a", |_| false));
        assert!(e.satisfied("ns/a", |p| p == "ns/p2"));
    }
}
