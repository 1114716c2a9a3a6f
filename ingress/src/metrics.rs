//! Prometheus metrics of the ingress controller.

use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Where a request went: the Ingress, its host and path as written.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LocationLabels {
    /// The Ingress's namespace (`""` for the default backend).
    pub namespace: String,
    /// The Ingress (`""` for the default backend).
    pub ingress: String,
    /// The rule's host (`""` for rules without one).
    pub host: String,
    /// The path as written in the Ingress.
    pub path: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    namespace: String,
    ingress: String,
    host: String,
    path: String,
    status: u16,
}

/// A location's metric handles, filled on first use.
#[derive(Debug, Default)]
pub struct LocationStats {
    duration: std::sync::OnceLock<Histogram>,
    statuses: parking_lot::RwLock<Vec<(u16, Counter)>>,
}

/// The ingress controller's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    duration: Family<LocationLabels, Histogram>,
    upstream_connect_failures: Counter,
    compile_duration: Histogram,
    table_swaps: Counter,
    ingresses: Gauge,
    /// The request label sets made so far, so that those of locations that
    /// no longer exist can be removed.
    made: Mutex<std::collections::HashSet<RequestLabels>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the controller's metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kedge_ingress");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests answered, per Ingress, host, path and status",
            requests.clone(),
        );
        let duration = Family::<LocationLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "Time from the request's arrival to the end of the response, per Ingress, host and path",
            duration.clone(),
        );
        let upstream_connect_failures = Counter::default();
        registry.register(
            "upstream_connect_failures",
            "Connections to endpoints that failed (each may be retried on another endpoint)",
            upstream_connect_failures.clone(),
        );
        let compile_duration = Histogram::new(exponential_buckets(0.0001, 2.0, 16));
        registry.register(
            "table_compile_duration_seconds",
            "Time to compile the route table from the watched objects",
            compile_duration.clone(),
        );
        let table_swaps = Counter::default();
        registry.register(
            "table_swaps",
            "Route tables swapped in after a change",
            table_swaps.clone(),
        );
        let ingresses = Gauge::default();
        registry.register("ingresses", "Ingresses served", ingresses.clone());
        Self {
            registry: Mutex::new(registry),
            requests,
            duration,
            upstream_connect_failures,
            compile_duration,
            table_swaps,
            ingresses,
            made: Mutex::default(),
        }
    }

    /// Count one answered request. The location keeps the metric handles
    /// it used, so that a request looks up no labels once its location has
    /// answered with that status before.
    pub fn request(
        &self,
        labels: &LocationLabels,
        cache: &LocationStats,
        status: u16,
        took: Duration,
    ) {
        cache
            .duration
            .get_or_init(|| self.duration.get_or_create(labels).clone())
            .observe(took.as_secs_f64());
        if let Some((_, c)) = cache.statuses.read().iter().find(|(s, _)| *s == status) {
            c.inc();
            return;
        }
        let request_labels = RequestLabels {
            namespace: labels.namespace.clone(),
            ingress: labels.ingress.clone(),
            host: labels.host.clone(),
            path: labels.path.clone(),
            status,
        };
        let counter = self.requests.get_or_create(&request_labels).clone();
        self.made.lock().insert(request_labels);
        counter.inc();
        cache.statuses.write().push((status, counter));
    }

    /// Count a failed connection to an endpoint.
    pub fn connect_failure(&self) {
        self.upstream_connect_failures.inc();
    }

    /// Record a table compiled and swapped in, and drop the metrics of
    /// locations not in `live` (an Ingress deleted or a path removed).
    pub fn swapped(
        &self,
        compile: Duration,
        ingresses: usize,
        live: &std::collections::HashSet<LocationLabels>,
    ) {
        self.compile_duration.observe(compile.as_secs_f64());
        self.table_swaps.inc();
        self.ingresses.set(ingresses as i64);
        let mut made = self.made.lock();
        made.retain(|r| {
            let location = LocationLabels {
                namespace: r.namespace.clone(),
                ingress: r.ingress.clone(),
                host: r.host.clone(),
                path: r.path.clone(),
            };
            if live.contains(&location) {
                return true;
            }
            self.requests.remove(r);
            self.duration.remove(&location);
            false
        });
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(ingress: &str) -> LocationLabels {
        LocationLabels {
            namespace: "default".into(),
            ingress: ingress.into(),
            host: "a.example".into(),
            path: "/".into(),
        }
    }

    #[test]
    fn metrics_of_gone_locations_are_dropped() {
        let m = Metrics::new();
        let (kept, gone) = (labels("kept"), labels("gone"));
        m.request(
            &kept,
            &LocationStats::default(),
            200,
            Duration::from_millis(1),
        );
        m.request(
            &gone,
            &LocationStats::default(),
            404,
            Duration::from_millis(1),
        );
        let text = m.encode();
        assert!(text.contains("ingress=\"gone\"") && text.contains("ingress=\"kept\""));
        m.swapped(Duration::ZERO, 1, &[kept].into_iter().collect());
        let text = m.encode();
        assert!(!text.contains("ingress=\"gone\""), "{text}");
        assert!(text.contains("ingress=\"kept\""), "{text}");
    }
}
