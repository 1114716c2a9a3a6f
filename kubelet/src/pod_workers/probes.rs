//! When a pod's probes run and what their results mean, per container:
//! the startup probe gates the others; liveness failing `failureThreshold`
//! times in a row kills the container; readiness passes after
//! `successThreshold` successes and fails after `failureThreshold`
//! failures. A new container (a restart) starts every probe afresh.
//!
//! Probes run inside the pod worker's sync when they are due; the worker
//! wakes at [`ContainerProbes::next_due`].

use std::collections::HashMap;
use std::net::IpAddr;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::metrics::KubeletMetrics;
use crate::runtime::{ProbeKind, Result, Runtime};

#[derive(Debug)]
struct ProbeState {
    container_id: String,
    next_at: Timestamp,
    successes: i32,
    failures: i32,
    /// `None` until the probe has decided once.
    passed: Option<bool>,
}

/// A probe gave up on a container: it must be killed.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Failed {
    /// The probe.
    pub kind: ProbeKind,
    /// What the event says.
    pub message: String,
}

/// The probe states of one pod's containers.
#[derive(Debug, Default)]
pub(super) struct ContainerProbes {
    states: HashMap<(String, ProbeKind), ProbeState>,
}

fn kind_name(kind: ProbeKind) -> &'static str {
    match kind {
        ProbeKind::Startup => "Startup",
        ProbeKind::Liveness => "Liveness",
        ProbeKind::Readiness => "Readiness",
    }
}

fn spec_of(c: &Container, kind: ProbeKind) -> Option<&Probe> {
    match kind {
        ProbeKind::Startup => c.startup_probe.as_ref(),
        ProbeKind::Liveness => c.liveness_probe.as_ref(),
        ProbeKind::Readiness => c.readiness_probe.as_ref(),
    }
}

fn secs(v: Option<i32>, default: i64) -> SignedDuration {
    SignedDuration::from_secs(v.map(i64::from).filter(|s| *s >= 0).unwrap_or(default))
}

/// The probe with a named port replaced by the container's port number.
pub(super) fn resolve_ports_of(c: &Container, probe: &Probe) -> Probe {
    let named = |port: &IntOrString| -> IntOrString {
        match port {
            IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| IntOrString::Int(p.container_port))
                .unwrap_or_else(|| port.clone()),
            other => other.clone(),
        }
    };
    let mut p = probe.clone();
    if let Some(h) = p.http_get.as_mut() {
        h.port = named(&h.port);
    }
    if let Some(t) = p.tcp_socket.as_mut() {
        t.port = named(&t.port);
    }
    p
}

// === impl ContainerProbes ===

impl ContainerProbes {
    /// Whether the startup probe of the container has passed (or it has
    /// none): the container counts as `started`.
    pub fn started(&self, c: &Container, id: &str) -> bool {
        c.startup_probe.is_none() || self.passed(&c.name, id, ProbeKind::Startup) == Some(true)
    }

    /// Whether the container is ready as far as its probes go.
    pub fn ready(&self, c: &Container, id: &str) -> bool {
        self.started(c, id)
            && (c.readiness_probe.is_none()
                || self.passed(&c.name, id, ProbeKind::Readiness) == Some(true))
    }

    fn passed(&self, name: &str, id: &str, kind: ProbeKind) -> Option<bool> {
        self.states
            .get(&(name.to_string(), kind))
            .filter(|s| s.container_id == id)
            .and_then(|s| s.passed)
    }

    /// The earliest time a probe is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.states.values().map(|s| s.next_at).min()
    }

    /// Run the probes of a running container that are due; a startup or
    /// liveness probe that gave up is returned.
    pub async fn run_due(
        &mut self,
        runtime: &dyn Runtime,
        metrics: &KubeletMetrics,
        c: &Container,
        id: &str,
        started_at: Timestamp,
        pod_ip: Option<IpAddr>,
    ) -> Result<Option<Failed>> {
        for kind in [
            ProbeKind::Startup,
            ProbeKind::Liveness,
            ProbeKind::Readiness,
        ] {
            let Some(spec) = spec_of(c, kind) else {
                self.states.remove(&(c.name.clone(), kind));
                continue;
            };
            // Liveness and readiness wait for the startup probe.
            if kind != ProbeKind::Startup && !self.started(c, id) {
                continue;
            }
            let key = (c.name.clone(), kind);
            let state = self.states.entry(key).or_insert_with(|| ProbeState {
                container_id: String::new(),
                next_at: started_at,
                successes: 0,
                failures: 0,
                passed: None,
            });
            if state.container_id != id {
                *state = ProbeState {
                    container_id: id.to_string(),
                    next_at: started_at + secs(spec.initial_delay_seconds, 0),
                    successes: 0,
                    failures: 0,
                    passed: None,
                };
            }
            // A startup probe that passed is done for this container.
            if kind == ProbeKind::Startup && state.passed == Some(true) {
                state.next_at = Timestamp::MAX;
                continue;
            }
            let now = Timestamp::now();
            if now < state.next_at {
                continue;
            }
            // A probe that cannot run at all fails, as in Kubernetes.
            let ok = match runtime
                .run_probe(id, kind, &resolve_ports_of(c, spec), pod_ip)
                .await
            {
                Ok(ok) => ok,
                Err(e) => {
                    tracing::debug!(container = %c.name, probe = ?kind, error = %e, "probe errored");
                    false
                }
            };
            metrics.probe(kind, ok);
            state.next_at = now + secs(spec.period_seconds, 10).max(SignedDuration::from_secs(1));
            let success_threshold = spec.success_threshold.unwrap_or(1).max(1);
            let failure_threshold = spec.failure_threshold.unwrap_or(3).max(1);
            if ok {
                state.failures = 0;
                state.successes += 1;
                if state.successes >= success_threshold {
                    state.passed = Some(true);
                }
            } else {
                state.successes = 0;
                state.failures += 1;
                if state.failures >= failure_threshold {
                    state.passed = Some(false);
                    if kind != ProbeKind::Readiness {
                        let message = format!(
                            "Container {} failed {} probe, will be restarted",
                            c.name,
                            kind_name(kind).to_lowercase()
                        );
                        // The next container starts counting afresh.
                        state.failures = 0;
                        return Ok(Some(Failed { kind, message }));
                    }
                }
            }
        }
        Ok(None)
    }
}
