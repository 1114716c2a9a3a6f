//! Prometheus metrics of the cluster DNS.

use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

// Static label values: no allocation per query.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    r#type: &'static str,
    rcode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ForwardLabels {
    outcome: &'static str,
}

/// Requests by type and response code, forwarding, the cache and request
/// durations.
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    forwarded: Family<ForwardLabels, Counter>,
    cache_hits: Counter,
    cache_misses: Counter,
    duration: Histogram,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with the DNS server's metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kedge_dns");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "DNS requests by query type and response code",
            requests.clone(),
        );
        let forwarded = Family::<ForwardLabels, Counter>::default();
        registry.register(
            "forwarded_requests",
            "Requests sent to upstream resolvers, by outcome",
            forwarded.clone(),
        );
        let cache_hits = Counter::default();
        registry.register(
            "cache_hits",
            "Forwarded names answered from the cache",
            cache_hits.clone(),
        );
        let cache_misses = Counter::default();
        registry.register(
            "cache_misses",
            "Forwarded names not in the cache",
            cache_misses.clone(),
        );
        let duration = Histogram::new(exponential_buckets(0.000_01, 2.0, 20));
        registry.register(
            "request_duration_seconds",
            "Time from a parsed request to its response",
            duration.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            requests,
            forwarded,
            cache_hits,
            cache_misses,
            duration,
        }
    }

    /// Count one answered request.
    pub fn observe_request(&self, qtype: &'static str, rcode: &'static str, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                r#type: qtype,
                rcode,
            })
            .inc();
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// The counter of requests of one type and response code, to keep
    /// beside a cached answer and count with one atomic add.
    pub(crate) fn request_counter(&self, qtype: &'static str, rcode: &'static str) -> Counter {
        self.requests
            .get_or_create(&RequestLabels {
                r#type: qtype,
                rcode,
            })
            .clone()
    }

    /// Record how long one request took.
    pub(crate) fn observe_duration(&self, elapsed: Duration) {
        self.duration.observe(elapsed.as_secs_f64());
    }

    /// Count one exchange with the upstreams: `ok`, `truncated_retry` (a
    /// TCP retry followed), `error`, `stale` (none answered; an expired
    /// answer was served).
    pub fn observe_forward(&self, outcome: &'static str) {
        self.forwarded
            .get_or_create(&ForwardLabels { outcome })
            .inc();
    }

    /// Count a cache lookup.
    pub fn observe_cache(&self, hit: bool) {
        if hit {
            self.cache_hits.inc();
        } else {
            self.cache_misses.inc();
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}
