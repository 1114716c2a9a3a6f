//! The scheduling queue: pods waiting to be scheduled (activeQ, highest
//! priority first, then first come), pods backing off after a failed
//! attempt (1 s doubling up to 10 s), and pods parked as unschedulable until
//! a node or pod change might let them fit (or a periodic flush).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;

use super::types::PodInfo;

/// Backoff after the first failed attempt.
pub const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// Backoff never grows past this.
pub const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How long a pod stays parked as unschedulable with no event before the
/// periodic flush retries it.
pub const MAX_IN_UNSCHEDULABLE: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Location {
    Active,
    Backoff,
    Unschedulable,
    InFlight,
}

#[derive(Debug)]
struct Entry {
    info: Arc<PodInfo>,
    attempts: u32,
    location: Location,
    /// Matches the heap item that stands for this entry; older items are stale.
    seq: u64,
    backoff_until: Instant,
    unschedulable_since: Instant,
}

/// A pod handed out for one scheduling attempt.
#[derive(Debug, Clone)]
pub struct QueuedPod {
    /// The pod as last seen.
    pub info: Arc<PodInfo>,
    /// Failed attempts so far.
    pub attempts: u32,
    /// The scheduling cycle this attempt belongs to.
    pub cycle: u64,
}

/// The queue of pods waiting for a node.
#[derive(Default)]
pub struct SchedulingQueue {
    entries: HashMap<String, Entry>,
    active: BinaryHeap<(i32, Reverse<u64>, String)>,
    backoff: BinaryHeap<Reverse<(Instant, u64, String)>>,
    seq: u64,
    scheduling_cycle: u64,
    /// The cycle during which the last "something changed" event came; pods
    /// that fail in or before it are retried rather than parked.
    move_request_cycle: u64,
}

/// The backoff after `attempts` failed attempts.
pub fn backoff_duration(attempts: u32) -> Duration {
    if attempts == 0 {
        return Duration::ZERO;
    }
    let shift = (attempts - 1).min(16);
    (INITIAL_BACKOFF * (1u32 << shift)).min(MAX_BACKOFF)
}

/// Whether an update could change where the pod fits: status-only writes
/// (the scheduler's own PodScheduled condition among them) do not count, or
/// every failure would retry itself.
fn pod_updated(old: &Pod, new: &Pod) -> bool {
    old.spec != new.spec
        || old.metadata.labels != new.metadata.labels
        || old.metadata.annotations != new.metadata.annotations
        || old.metadata.owner_references != new.metadata.owner_references
}

impl SchedulingQueue {
    fn next_seq(&mut self) -> u64 {
        self.seq += 1;
        self.seq
    }

    fn push_active(&mut self, uid: &str) {
        let seq = self.next_seq();
        if let Some(e) = self.entries.get_mut(uid) {
            e.location = Location::Active;
            e.seq = seq;
            self.active
                .push((e.info.priority, Reverse(seq), uid.to_string()));
        }
    }

    fn push_backoff(&mut self, uid: &str) {
        let seq = self.next_seq();
        if let Some(e) = self.entries.get_mut(uid) {
            e.location = Location::Backoff;
            e.seq = seq;
            self.backoff
                .push(Reverse((e.backoff_until, seq, uid.to_string())));
        }
    }

    /// Retry a parked pod: straight away if its backoff is over, else after it.
    fn requeue(&mut self, uid: &str, now: Instant) {
        let Some(e) = self.entries.get(uid) else {
            return;
        };
        if e.backoff_until > now {
            self.push_backoff(uid);
        } else {
            self.push_active(uid);
        }
    }

    /// Add a pod to schedule, or update one already queued. An update to a
    /// parked pod retries it, since what changed may make it fit.
    pub fn add_or_update(&mut self, info: Arc<PodInfo>, now: Instant) {
        let uid = info.uid.clone();
        match self.entries.get_mut(&uid) {
            Some(e) => {
                let changed = pod_updated(&e.info.pod, &info.pod);
                e.info = info;
                if changed && e.location == Location::Unschedulable {
                    self.requeue(&uid, now);
                }
            }
            None => {
                self.entries.insert(
                    uid.clone(),
                    Entry {
                        info,
                        attempts: 0,
                        location: Location::Active,
                        seq: 0,
                        backoff_until: now,
                        unschedulable_since: now,
                    },
                );
                self.push_active(&uid);
            }
        }
    }

    /// Put back a pod whose binding failed, to retry after its backoff.
    pub fn add_backoff(&mut self, info: Arc<PodInfo>, attempts: u32, now: Instant) {
        let uid = info.uid.clone();
        self.entries.insert(
            uid.clone(),
            Entry {
                info,
                attempts,
                location: Location::Backoff,
                seq: 0,
                backoff_until: now + backoff_duration(attempts),
                unschedulable_since: now,
            },
        );
        self.push_backoff(&uid);
    }

    /// Stop tracking a pod (deleted, bound, or no longer ours).
    pub fn delete(&mut self, uid: &str) {
        self.entries.remove(uid);
    }

    /// The next pod to schedule, if any is active.
    pub fn pop(&mut self) -> Option<QueuedPod> {
        while let Some((_, Reverse(seq), uid)) = self.active.pop() {
            let Some(e) = self.entries.get_mut(&uid) else {
                continue;
            };
            if e.location != Location::Active || e.seq != seq {
                continue;
            }
            e.location = Location::InFlight;
            self.scheduling_cycle += 1;
            return Some(QueuedPod {
                info: e.info.clone(),
                attempts: e.attempts,
                cycle: self.scheduling_cycle,
            });
        }
        None
    }

    /// The pod was scheduled (assumed): the queue is done with it.
    pub fn done(&mut self, uid: &str) {
        if self
            .entries
            .get(uid)
            .is_some_and(|e| e.location == Location::InFlight)
        {
            self.entries.remove(uid);
        }
    }

    /// The attempt found no node. Park the pod as unschedulable, unless
    /// something changed during the attempt, in which case retry after the
    /// backoff.
    pub fn add_unschedulable(&mut self, uid: &str, cycle: u64, now: Instant) {
        let moved = self.move_request_cycle >= cycle;
        let Some(e) = self.entries.get_mut(uid) else {
            return;
        };
        if e.location != Location::InFlight {
            return;
        }
        e.attempts += 1;
        e.backoff_until = now + backoff_duration(e.attempts);
        if moved {
            self.push_backoff(uid);
        } else {
            e.location = Location::Unschedulable;
            e.unschedulable_since = now;
        }
    }

    /// Something changed that may let parked pods fit: retry them all.
    pub fn move_all_to_active_or_backoff(&mut self, now: Instant) {
        self.move_request_cycle = self.scheduling_cycle;
        let parked: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| e.location == Location::Unschedulable)
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in parked {
            self.requeue(&uid, now);
        }
    }

    /// Move pods whose backoff is over to active; true when any moved.
    pub fn flush_backoff_completed(&mut self, now: Instant) -> bool {
        let mut moved = false;
        while let Some(Reverse((until, seq, uid))) = self.backoff.peek().cloned() {
            if until > now {
                break;
            }
            self.backoff.pop();
            let valid = self
                .entries
                .get(&uid)
                .is_some_and(|e| e.location == Location::Backoff && e.seq == seq);
            if valid {
                self.push_active(&uid);
                moved = true;
            }
        }
        moved
    }

    /// Retry pods parked for longer than `MAX_IN_UNSCHEDULABLE`; true when
    /// any moved.
    pub fn flush_unschedulable_leftover(&mut self, now: Instant) -> bool {
        let stale: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| {
                e.location == Location::Unschedulable
                    && now.duration_since(e.unschedulable_since) >= MAX_IN_UNSCHEDULABLE
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in &stale {
            self.requeue(uid, now);
        }
        !stale.is_empty()
    }

    /// Uids of every pod the queue tracks.
    pub fn uids(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// Whether the pod is tracked.
    pub fn contains(&self, uid: &str) -> bool {
        self.entries.contains_key(uid)
    }

    /// How many pods are tracked (active, backing off, parked, in flight).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no pod is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::scheduler::plugins::testing::pod_with_meta;

    fn pod(uid: &str, priority: i32) -> Arc<PodInfo> {
        Arc::new(pod_with_meta(
            json!({"name": uid, "uid": uid}),
            json!({"priority": priority}),
        ))
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let secs: Vec<u64> = (1..=6).map(|a| backoff_duration(a).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 10, 10]);
    }

    #[test]
    fn higher_priority_first_then_first_come() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(pod("a", 0), now);
        q.add_or_update(pod("b", 10), now);
        q.add_or_update(pod("c", 0), now);
        let order: Vec<String> = std::iter::from_fn(|| q.pop())
            .map(|p| p.info.uid.clone())
            .collect();
        assert_eq!(order, vec!["b", "a", "c"]);
    }

    #[test]
    fn parked_pods_wait_for_a_move_then_their_backoff() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(pod("a", 0), now);
        let p = q.pop().unwrap();
        q.add_unschedulable("a", p.cycle, now);
        assert!(q.pop().is_none());
        assert!(
            !q.flush_backoff_completed(now + Duration::from_secs(5)),
            "parked, not backing off"
        );
        q.move_all_to_active_or_backoff(now);
        assert!(q.pop().is_none(), "still within the 1 s backoff");
        assert!(q.flush_backoff_completed(now + Duration::from_secs(1)));
        let p = q.pop().unwrap();
        assert_eq!(p.attempts, 1);
        q.add_unschedulable("a", p.cycle, now);
        assert!(!q.flush_unschedulable_leftover(now + Duration::from_secs(1)));
        assert!(q.flush_unschedulable_leftover(now + MAX_IN_UNSCHEDULABLE));
    }

    #[test]
    fn a_move_during_the_attempt_retries_instead_of_parking() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(pod("a", 0), now);
        let p = q.pop().unwrap();
        q.move_all_to_active_or_backoff(now);
        q.add_unschedulable("a", p.cycle, now);
        assert!(q.flush_backoff_completed(now + Duration::from_secs(1)));
        assert!(q.pop().is_some());
    }

    #[test]
    fn status_only_updates_do_not_retry_parked_pods() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(pod("a", 0), now);
        let p = q.pop().unwrap();
        q.add_unschedulable("a", p.cycle, now);
        let mut status_only = (*p.info.pod).clone();
        status_only.status = Some(Default::default());
        let later = now + Duration::from_secs(5);
        q.add_or_update(Arc::new(PodInfo::new(Arc::new(status_only.clone()))), later);
        assert!(q.pop().is_none());
        let mut relabelled = status_only;
        relabelled.metadata.labels = Some([("x".to_string(), "y".to_string())].into());
        q.add_or_update(Arc::new(PodInfo::new(Arc::new(relabelled))), later);
        assert!(q.pop().is_some());
    }

    #[test]
    fn deleted_and_done_pods_leave() {
        let now = Instant::now();
        let mut q = SchedulingQueue::default();
        q.add_or_update(pod("a", 0), now);
        q.add_or_update(pod("b", 0), now);
        q.delete("a");
        let p = q.pop().unwrap();
        assert_eq!(p.info.uid, "b");
        q.done("b");
        assert!(q.is_empty());
    }
}
