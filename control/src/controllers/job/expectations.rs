//! Finalizer-removal expectations (Kubernetes' `finalizerExpectations` in
//! `pkg/controller/job`): the pods whose tracking finalizer a Job's sync
//! took off but whose update the shared cache does not show yet. Such a
//! pod, still showing the finalizer, was counted already and must not be
//! counted again.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::Event;
use parking_lot::Mutex;

use super::has_tracking_finalizer;
use crate::controllers::replicaset::expectations::EXPECTATIONS_TTL;
use crate::controllers::replicaset::pods::controller_of;

/// Pod uids with a finalizer removal in flight, per Job key (`ns/name`).
#[derive(Debug, Default)]
pub struct FinalizerExpectations {
    by_job: Mutex<HashMap<String, HashMap<String, Instant>>>,
}

impl FinalizerExpectations {
    /// The removal of `pod_uid`'s finalizer is about to be issued.
    pub fn expect_removal(&self, job: &str, pod_uid: &str) {
        self.by_job
            .lock()
            .entry(job.to_string())
            .or_default()
            .insert(pod_uid.to_string(), Instant::now());
    }

    /// The cache shows the pod without the finalizer, or gone (or the
    /// removal failed and will never show).
    pub fn removal_observed(&self, job: &str, pod_uid: &str) {
        let mut by_job = self.by_job.lock();
        if let Some(pods) = by_job.get_mut(job) {
            pods.remove(pod_uid);
            if pods.is_empty() {
                by_job.remove(job);
            }
        }
    }

    /// The uids still expected for `job`. Entries older than the TTL are
    /// given up on: a lost event must not hide a pod for ever.
    pub fn pending(&self, job: &str) -> HashSet<String> {
        let mut by_job = self.by_job.lock();
        let Some(pods) = by_job.get_mut(job) else {
            return HashSet::new();
        };
        pods.retain(|_, at| at.elapsed() <= EXPECTATIONS_TTL);
        let uids = pods.keys().cloned().collect();
        if pods.is_empty() {
            by_job.remove(job);
        }
        uids
    }

    /// The Job is gone: drop what it expected.
    pub fn forget(&self, job: &str) {
        self.by_job.lock().remove(job);
    }

    /// Settle the expectation a pod change ends. Called with the changes
    /// the shared informer hands its subscribers, which the cache already
    /// holds: ending an entry earlier (from an observer, before the cache
    /// applies the event) would let a sync read the old pod with the
    /// finalizer and no entry, and count it twice.
    pub fn observe_cached(&self, ev: &Event<Pod>) {
        let (pod, gone) = match ev {
            Event::Apply(p) | Event::InitApply(p) => (p, false),
            Event::Delete(p) => (p, true),
            Event::Init | Event::InitDone => return,
        };
        if !gone && has_tracking_finalizer(pod) {
            return;
        }
        let Some(owner) = controller_of(&pod.metadata).filter(|o| o.kind == "Job") else {
            return;
        };
        let ns = pod.metadata.namespace.as_deref().unwrap_or("");
        let uid = pod.metadata.uid.as_deref().unwrap_or("");
        self.removal_observed(&format!("{ns}/{}", owner.name), uid);
    }
}
