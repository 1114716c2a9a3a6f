//! Per-object retry backoff for `error_policy`, as Kubernetes' controller
//! work queues rate-limit a failing key: 5ms doubling up to 1000s, and the
//! key is dropped after `MAX_RETRIES` failures in a row (the next change to
//! the object brings it back).

use std::collections::HashMap;
use std::time::Duration;

use kube::runtime::controller::Action;
use parking_lot::Mutex;

/// Failures in a row after which a key waits for the next change.
pub const MAX_RETRIES: u32 = 15;

const BASE: Duration = Duration::from_millis(5);
const CAP: Duration = Duration::from_secs(1000);

/// Failure counts by object key.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    /// A reconcile of `key` succeeded: start over.
    pub fn forget(&self, key: &str) {
        self.failures.lock().remove(key);
    }

    /// A reconcile of `key` by `controller` failed with `err`: say so and
    /// tell when to try again.
    pub fn failed(&self, controller: &str, key: &str, err: &dyn std::fmt::Display) -> Action {
        tracing::debug!(controller, key, error = %err, "sync failed");
        self.next(key)
    }

    /// A reconcile of `key` failed: when to try again.
    pub fn next(&self, key: &str) -> Action {
        let mut failures = self.failures.lock();
        let n = failures.entry(key.to_string()).or_default();
        *n += 1;
        if *n > MAX_RETRIES {
            failures.remove(key);
            return Action::await_change();
        }
        let delay = BASE.saturating_mul(1u32 << (*n - 1).min(31)).min(CAP);
        Action::requeue(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_then_gives_up() {
        let b = Backoff::default();
        assert_eq!(b.next("k"), Action::requeue(Duration::from_millis(5)));
        assert_eq!(b.next("k"), Action::requeue(Duration::from_millis(10)));
        for _ in 2..MAX_RETRIES {
            b.next("k");
        }
        assert_eq!(b.next("k"), Action::await_change());
        b.forget("k");
        assert_eq!(b.next("k"), Action::requeue(Duration::from_millis(5)));
    }
}
