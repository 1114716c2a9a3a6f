//! Prometheus metrics of a kubelet, served at `/metrics` on its endpoint:
//! how many pods it runs, how long pod syncs and pod starts take, container
//! starts and their failures, probe results.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::runtime::ProbeKind;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    probe_type: String,
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ErrorLabels {
    code: String,
}

/// One kubelet's metrics.
pub struct KubeletMetrics {
    registry: Registry,
    pods: Gauge,
    sync: Histogram,
    pod_start: Histogram,
    started: Counter,
    start_errors: Family<ErrorLabels, Counter>,
    probes: Family<ProbeLabels, Counter>,
}

impl Default for KubeletMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl KubeletMetrics {
    /// A registry with the kubelet's metrics, named as Kubernetes names
    /// them.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let pods = Gauge::default();
        registry.register(
            "kubelet_running_pods",
            "Pods with a worker on this node",
            pods.clone(),
        );
        let sync = Histogram::new(exponential_buckets(0.0005, 2.0, 16));
        registry.register(
            "kubelet_pod_worker_duration_seconds",
            "Time of one pod sync",
            sync.clone(),
        );
        let pod_start = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register(
            "kubelet_pod_start_duration_seconds",
            "Time from a pod's creation to all its containers running",
            pod_start.clone(),
        );
        let started = Counter::default();
        registry.register(
            "kubelet_started_containers",
            "Containers started",
            started.clone(),
        );
        let start_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "kubelet_started_containers_errors",
            "Containers that could not be made or started, by reason",
            start_errors.clone(),
        );
        let probes = Family::<ProbeLabels, Counter>::default();
        registry.register(
            "prober_probe",
            "Probe runs by type and result",
            probes.clone(),
        );
        Self {
            registry,
            pods,
            sync,
            pod_start,
            started,
            start_errors,
            probes,
        }
    }

    /// The number of pod workers.
    pub fn set_pods(&self, n: usize) {
        self.pods.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// One pod sync took `d`.
    pub fn observe_sync(&self, d: Duration) {
        self.sync.observe(d.as_secs_f64());
    }

    /// A pod had every container running `d` after its creation.
    pub fn observe_pod_start(&self, d: Duration) {
        self.pod_start.observe(d.as_secs_f64());
    }

    /// A container started.
    pub fn container_started(&self) {
        self.started.inc();
    }

    /// A container could not be made or started (`reason`:
    /// ErrImagePull, CreateContainerConfigError, …).
    pub fn container_start_failed(&self, reason: &str) {
        self.start_errors
            .get_or_create(&ErrorLabels {
                code: reason.to_string(),
            })
            .inc();
    }

    /// A probe ran.
    pub fn probe(&self, kind: ProbeKind, success: bool) {
        let probe_type = match kind {
            ProbeKind::Startup => "Startup",
            ProbeKind::Liveness => "Liveness",
            ProbeKind::Readiness => "Readiness",
        };
        self.probes
            .get_or_create(&ProbeLabels {
                probe_type: probe_type.into(),
                result: if success { "successful" } else { "failed" }.into(),
            })
            .inc();
    }

    /// The text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_what_kubernetes_names() {
        let m = KubeletMetrics::new();
        m.set_pods(2);
        m.container_started();
        m.container_start_failed("ErrImagePull");
        m.probe(ProbeKind::Readiness, false);
        m.observe_sync(Duration::from_millis(3));
        let text = m.encode();
        for want in [
            "kubelet_running_pods 2",
            "kubelet_started_containers_total 1",
            "kubelet_started_containers_errors_total{code=\"ErrImagePull\"} 1",
            "prober_probe_total{probe_type=\"Readiness\",result=\"failed\"} 1",
            "kubelet_pod_worker_duration_seconds_count 1",
        ] {
            assert!(text.contains(want), "{want} in\n{text}");
        }
    }
}
