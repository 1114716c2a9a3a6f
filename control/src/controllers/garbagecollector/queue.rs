//! A work queue with client-go's guarantees: a key queued many times is
//! processed once, never by two workers at once, and a key added while it
//! is being processed is processed again afterwards. Failed keys come back
//! after a per-key exponential backoff.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

#[derive(Default)]
struct Inner {
    queue: VecDeque<String>,
    dirty: HashSet<String>,
    processing: HashSet<String>,
    failures: HashMap<String, u32>,
}

/// A queue of object uids.
#[derive(Default)]
pub(crate) struct WorkQueue {
    inner: Mutex<Inner>,
    notify: Notify,
}

impl WorkQueue {
    /// Queue a key unless it is already waiting.
    pub(crate) fn add(&self, key: &str) {
        let mut inner = self.inner.lock();
        if !inner.dirty.insert(key.to_string()) {
            return;
        }
        if !inner.processing.contains(key) {
            inner.queue.push_back(key.to_string());
            drop(inner);
            self.notify.notify_one();
        }
    }

    /// The next key; the caller must call `done` (or `retry`) with it.
    pub(crate) async fn get(&self) -> String {
        loop {
            {
                let mut inner = self.inner.lock();
                if let Some(key) = inner.queue.pop_front() {
                    inner.dirty.remove(&key);
                    inner.processing.insert(key.clone());
                    if !inner.queue.is_empty() {
                        // Wake another worker for the rest.
                        self.notify.notify_one();
                    }
                    return key;
                }
            }
            self.notify.notified().await;
        }
    }

    /// Processing of a key succeeded.
    pub(crate) fn done(&self, key: &str) {
        let mut inner = self.inner.lock();
        inner.failures.remove(key);
        self.finish(inner, key);
    }

    /// Processing of a key failed: queue it again after a backoff.
    pub(crate) fn retry(self: &Arc<Self>, key: &str) {
        let mut inner = self.inner.lock();
        let n = inner.failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let delay = Duration::from_millis(50u64.saturating_mul(1 << (*n).min(10)))
            .min(Duration::from_secs(30));
        self.finish(inner, key);
        let queue = Arc::clone(self);
        let key = key.to_string();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            queue.add(&key);
        });
    }

    fn finish(&self, mut inner: parking_lot::MutexGuard<'_, Inner>, key: &str) {
        inner.processing.remove(key);
        if inner.dirty.contains(key) {
            inner.queue.push_back(key.to_string());
            drop(inner);
            self.notify.notify_one();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_key_is_queued_once_and_requeued_after_processing() {
        let q = WorkQueue::default();
        q.add("a");
        q.add("a");
        q.add("b");
        let first = q.get().await;
        assert_eq!(first, "a");
        q.add("a");
        assert_eq!(q.get().await, "b");
        q.done("b");
        q.done("a");
        assert_eq!(q.get().await, "a");
    }
}
