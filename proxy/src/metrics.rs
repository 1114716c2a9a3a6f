//! Prometheus metrics of the service proxy.

use std::time::Duration;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::table::{Protocol, ServiceKey};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabels {
    namespace: String,
    service: String,
    port: String,
    protocol: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ByteLabels {
    namespace: String,
    service: String,
    port: String,
    protocol: String,
    /// `to_endpoint` (client → endpoint) or `from_endpoint`.
    direction: String,
}

/// The proxy's metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    connections: Family<PortLabels, Counter>,
    active: Family<PortLabels, Gauge>,
    rejected: Family<PortLabels, Counter>,
    bytes: Family<ByteLabels, Counter>,
    sync_duration: Histogram,
    bind_failures: Counter,
    nftables_rules: Gauge,
    nftables_sync_failures: Counter,
}

/// One Service port's metric handles, resolved once per frontend so that
/// the per-connection path does no label lookups.
#[derive(Clone, Debug, Default)]
pub(crate) struct PortMetrics {
    pub connections: Counter,
    pub active: Gauge,
    pub rejected: Counter,
    pub bytes_to_endpoint: Counter,
    pub bytes_from_endpoint: Counter,
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
    /// A registry with the proxy's metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kedge_proxy");
        let connections = Family::<PortLabels, Counter>::default();
        registry.register(
            "connections",
            "TCP connections proxied and UDP flows opened, per Service port",
            connections.clone(),
        );
        let active = Family::<PortLabels, Gauge>::default();
        registry.register(
            "active_connections",
            "Open TCP connections and UDP flows, per Service port",
            active.clone(),
        );
        let rejected = Family::<PortLabels, Counter>::default();
        registry.register(
            "rejected_connections",
            "Connections reset because no endpoint could be reached, per Service port",
            rejected.clone(),
        );
        let bytes = Family::<ByteLabels, Counter>::default();
        registry.register(
            "bytes",
            "Bytes proxied per Service port and direction (TCP counted when a connection ends)",
            bytes.clone(),
        );
        let sync_duration = Histogram::new(exponential_buckets(0.00005, 2.0, 18));
        registry.register(
            "sync_duration_seconds",
            "Time to apply a changed table (holder addresses, and listeners or the nftables table)",
            sync_duration.clone(),
        );
        let bind_failures = Counter::default();
        registry.register(
            "listener_bind_failures",
            "Listeners that could not be bound (retried)",
            bind_failures.clone(),
        );
        let nftables_rules = Gauge::default();
        registry.register(
            "nftables_rules",
            "Rules in the applied nftables table (kernel mode)",
            nftables_rules.clone(),
        );
        let nftables_sync_failures = Counter::default();
        registry.register(
            "nftables_sync_failures",
            "nftables tables that nft refused (retried)",
            nftables_sync_failures.clone(),
        );
        Self {
            registry: Mutex::new(registry),
            connections,
            active,
            rejected,
            bytes,
            sync_duration,
            bind_failures,
            nftables_rules,
            nftables_sync_failures,
        }
    }

    pub(crate) fn port(&self, service: &ServiceKey, port: &str, protocol: Protocol) -> PortMetrics {
        let labels = PortLabels {
            namespace: service.namespace.to_string(),
            service: service.name.to_string(),
            port: port.to_string(),
            protocol: protocol.as_str().to_string(),
        };
        let bytes = |direction: &str| {
            self.bytes
                .get_or_create(&ByteLabels {
                    namespace: labels.namespace.clone(),
                    service: labels.service.clone(),
                    port: labels.port.clone(),
                    protocol: labels.protocol.clone(),
                    direction: direction.to_string(),
                })
                .clone()
        };
        PortMetrics {
            connections: self.connections.get_or_create(&labels).clone(),
            active: self.active.get_or_create(&labels).clone(),
            rejected: self.rejected.get_or_create(&labels).clone(),
            bytes_to_endpoint: bytes("to_endpoint"),
            bytes_from_endpoint: bytes("from_endpoint"),
        }
    }

    pub(crate) fn observe_sync(&self, elapsed: Duration) {
        self.sync_duration.observe(elapsed.as_secs_f64());
    }

    pub(crate) fn set_nftables_rules(&self, rules: usize) {
        self.nftables_rules
            .set(i64::try_from(rules).unwrap_or(i64::MAX));
    }

    pub(crate) fn nftables_sync_failed(&self) {
        self.nftables_sync_failures.inc();
    }

    pub(crate) fn bind_failed(&self) {
        self.bind_failures.inc();
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}
