//! Kubernetes' `TriggerTimeTracker`: the value of the
//! `endpoints.kubernetes.io/last-change-trigger-time` annotation, the time of
//! the oldest change to a Service or its pods that the next write of its
//! endpoints reflects (what the network-programming-latency SLI measures).

use std::collections::HashMap;

use k8s_openapi::api::core::v1::{Pod, Service};
use parking_lot::Mutex;

use super::pods;

#[derive(Default)]
struct ServiceState {
    /// Ready-transition time of each pod seen at the last sync, by name.
    pod_times: HashMap<String, jiff::Timestamp>,
    service_time: Option<jiff::Timestamp>,
}

/// Remembers, per Service, which changes the last sync already covered.
#[derive(Default)]
pub(crate) struct TriggerTimeTracker {
    states: Mutex<HashMap<(String, String), ServiceState>>,
}

impl TriggerTimeTracker {
    /// The trigger time for a sync of `svc` over `selected` (every pod its
    /// selector matches): the Service's creation for a Service not seen
    /// before, else the oldest change since the last sync, if any.
    pub(crate) fn compute(&self, svc: &Service, selected: &[&Pod]) -> Option<jiff::Timestamp> {
        let key = key(svc);
        let mut states = self.states.lock();
        let old = states.remove(&key);
        let was_known = old.is_some();
        let old = old.unwrap_or_default();
        let mut new = ServiceState::default();
        let mut changed = Vec::new();
        for pod in selected {
            let Some(t) = pods::trigger_time(pod) else {
                continue;
            };
            let name = pod.metadata.name.clone().unwrap_or_default();
            if old.pod_times.get(&name).is_none_or(|seen| t > *seen) {
                changed.push(t);
            }
            new.pod_times.insert(name, t);
        }
        let created = svc.metadata.creation_timestamp.as_ref().map(|t| t.0);
        if let Some(t) = created {
            if old.service_time.is_none_or(|seen| t > seen) {
                changed.push(t);
            }
        }
        new.service_time = created;
        states.insert(key, new);
        if !was_known {
            return created;
        }
        changed.into_iter().min()
    }

    /// Forget a deleted Service.
    pub(crate) fn forget(&self, namespace: &str, name: &str) {
        self.states
            .lock()
            .remove(&(namespace.to_string(), name.to_string()));
    }
}

fn key(svc: &Service) -> (String, String) {
    (
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    )
}

/// The annotation's value: RFC 3339 in UTC, as Go formats `RFC3339Nano`.
pub(crate) fn format(t: jiff::Timestamp) -> String {
    t.to_string()
}
