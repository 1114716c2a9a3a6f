//! Prometheus metrics of the control plane.

use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    verb: String,
    code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScrapeLabels {
    result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct WatcherLabels {
    group: String,
    version: String,
    kind: String,
}

/// The API server's request metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Histogram,
    watchers: Family<WatcherLabels, Gauge>,
    scrapes: Family<ScrapeLabels, Counter>,
}

/// One open watch, counted until dropped.
pub struct WatcherGuard(Gauge);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.dec();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the API server's metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kedge_apiserver");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "API requests by HTTP verb and code",
            requests.clone(),
        );
        let latency = Histogram::new(exponential_buckets(0.0001, 2.0, 18));
        registry.register(
            "request_duration_seconds",
            "Time to answer an API request (watch streams: time to start)",
            latency.clone(),
        );
        let watchers = Family::<WatcherLabels, Gauge>::default();
        registry.register(
            "registered_watchers",
            "Open watches by the group, version and kind they watch (kube-apiserver's apiserver_registered_watchers)",
            watchers.clone(),
        );
        let scrapes = Family::<ScrapeLabels, Counter>::default();
        registry.register(
            "resource_metrics_scrapes",
            "Scrapes of kubelets' resource metrics by result (success, error)",
            scrapes.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            latency,
            watchers,
            scrapes,
        }
    }

    /// Count a watch of `group/version` `kind` while the guard lives.
    pub fn watcher(&self, group: &str, version: &str, kind: &str) -> WatcherGuard {
        let gauge = self
            .watchers
            .get_or_create(&WatcherLabels {
                group: group.to_string(),
                version: version.to_string(),
                kind: kind.to_string(),
            })
            .clone();
        gauge.inc();
        WatcherGuard(gauge)
    }

    /// Count one request.
    pub fn observe_request(&self, verb: &str, code: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                verb: verb.to_string(),
                code: code.to_string(),
            })
            .inc();
        self.latency.observe(elapsed.as_secs_f64());
    }

    /// Count one scrape of a kubelet's resource metrics.
    pub fn resource_scrape(&self, ok: bool) {
        let result = if ok { "success" } else { "error" };
        self.scrapes
            .get_or_create(&ScrapeLabels {
                result: result.to_string(),
            })
            .inc();
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}
