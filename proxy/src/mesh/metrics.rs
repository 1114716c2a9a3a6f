//! The mesh's connection metrics per workload pair, as Istio names them
//! (`reporter`, `source_workload`, `destination_workload`,
//! `connection_security_policy`): connections opened and closed, bytes
//! each way (counted where the connection starts), failures, and plaintext
//! refused by STRICT pods. A workload is `namespace/serviceaccount`;
//! `unknown` is an address that is no pod.

use parking_lot::Mutex;
use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use super::http::Outcome;
use super::outbound::Route;
use super::workloads::Workload;

/// Which side counted.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Reporter {
    /// The caller's node proxy.
    Source,
    /// The callee's node proxy.
    Destination,
}

/// Whether the connection crossed the mesh in mutual TLS.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Security {
    /// Through the tunnel.
    MutualTls,
    /// In plaintext (a peer outside the mesh).
    None,
}

impl EncodeLabelValue for Reporter {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let value = match self {
            Self::Source => "source",
            Self::Destination => "destination",
        };
        EncodeLabelValue::encode(&value, encoder)
    }
}

impl EncodeLabelValue for Security {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        let value = match self {
            Self::MutualTls => "mutual_tls",
            Self::None => "none",
        };
        EncodeLabelValue::encode(&value, encoder)
    }
}

/// The labels of one connection's series.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectionLabels {
    reporter: Reporter,
    source_workload: String,
    destination_workload: String,
    connection_security_policy: Security,
}

fn name(workload: Option<&Workload>) -> String {
    workload.map_or_else(|| "unknown".to_string(), Workload::identity)
}

impl ConnectionLabels {
    /// A connection `source` makes, along `route` to `destination`.
    pub fn outbound(source: &Workload, destination: Option<&Workload>, route: &Route) -> Self {
        Self {
            reporter: Reporter::Source,
            source_workload: source.identity(),
            destination_workload: name(destination),
            connection_security_policy: match route {
                Route::Tunnel { .. } => Security::MutualTls,
                Route::Direct(_) => Security::None,
            },
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DestinationLabels {
    source_workload: String,
    destination_workload: String,
}

/// The mesh's connection counters.
pub struct MeshMetrics {
    registry: Mutex<Registry>,
    opened: Family<ConnectionLabels, Counter>,
    closed: Family<ConnectionLabels, Counter>,
    failed: Family<ConnectionLabels, Counter>,
    sent: Family<ConnectionLabels, Counter>,
    received: Family<ConnectionLabels, Counter>,
    refused: Family<DestinationLabels, Counter>,
    denied: Family<PolicyLabels, Counter>,
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    retries: Family<RouteLabels, Counter>,
    ejections: Family<RouteLabels, Counter>,
}

/// One HTTP request's series (Istio's `istio_requests_total` labels).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    reporter: Reporter,
    source_workload: String,
    destination_service: String,
    destination_workload: String,
    response_code: u16,
}

/// A source workload and a Service.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    source_workload: String,
    destination_service: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    destination_workload: String,
    policy: String,
}

impl Default for MeshMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl MeshMetrics {
    /// All at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("kedge_mesh");
        let opened = Family::default();
        registry.register(
            "tcp_connections_opened",
            "Connections opened, per workload pair",
            opened.clone(),
        );
        let closed = Family::default();
        registry.register(
            "tcp_connections_closed",
            "Connections ended cleanly, per workload pair",
            closed.clone(),
        );
        let failed = Family::default();
        registry.register(
            "tcp_connections_failed",
            "Connections that could not be made or ended in an error",
            failed.clone(),
        );
        let sent = Family::default();
        registry.register(
            "tcp_sent_bytes",
            "Bytes the source workload sent, counted as the connection ends",
            sent.clone(),
        );
        let received = Family::default();
        registry.register(
            "tcp_received_bytes",
            "Bytes the source workload received, counted as the connection ends",
            received.clone(),
        );
        let refused = Family::default();
        registry.register(
            "plaintext_refused",
            "Plaintext connections refused by a STRICT pod",
            refused.clone(),
        );
        let denied = Family::default();
        registry.register(
            "authorization_denied",
            "Connections refused by an authorization policy",
            denied.clone(),
        );
        let requests = Family::default();
        registry.register(
            "requests",
            "HTTP requests, per source workload, Service, answering workload and status",
            requests.clone(),
        );
        let durations = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "request_duration_seconds",
            "How long HTTP requests took, retries included, per source workload and Service",
            durations.clone(),
        );
        let retries = Family::default();
        registry.register(
            "request_retries",
            "HTTP requests tried again on another endpoint",
            retries.clone(),
        );
        let ejections = Family::default();
        registry.register(
            "endpoint_ejections",
            "Endpoints left out after failing requests in a row",
            ejections.clone(),
        );
        Self {
            requests,
            durations,
            retries,
            ejections,
            denied,
            registry: Mutex::new(registry),
            opened,
            closed,
            failed,
            sent,
            received,
            refused,
        }
    }

    /// A connection started.
    pub fn opened(&self, labels: &ConnectionLabels) {
        self.opened.get_or_create(labels).inc();
    }

    /// A connection ended cleanly after `sent` and `received` bytes.
    pub fn closed(&self, labels: &ConnectionLabels, sent: u64, received: u64) {
        self.closed.get_or_create(labels).inc();
        self.sent.get_or_create(labels).inc_by(sent);
        self.received.get_or_create(labels).inc_by(received);
    }

    /// A connection failed.
    pub fn failed(&self, labels: &ConnectionLabels) {
        self.failed.get_or_create(labels).inc();
    }

    /// A connection arrived at `destination` from `source`, in mutual TLS
    /// or not, and reached the pod (`ok`) or not.
    pub fn inbound(
        &self,
        source: Option<&Workload>,
        destination: &Workload,
        security: Security,
        ok: bool,
    ) {
        let labels = ConnectionLabels {
            reporter: Reporter::Destination,
            source_workload: name(source),
            destination_workload: destination.identity(),
            connection_security_policy: security,
        };
        self.opened(&labels);
        if !ok {
            self.failed(&labels);
        }
    }

    /// Plaintext from `source` refused by `destination`.
    pub fn refused(&self, source: Option<&Workload>, destination: &Workload) {
        self.refused
            .get_or_create(&DestinationLabels {
                source_workload: name(source),
                destination_workload: destination.identity(),
            })
            .inc();
    }

    /// A connection to `destination` refused by `policy`.
    pub fn denied(&self, destination: &Workload, policy: &str) {
        self.denied
            .get_or_create(&PolicyLabels {
                destination_workload: destination.identity(),
                policy: policy.to_string(),
            })
            .inc();
    }

    /// An HTTP request from `source` to `service`, answered by
    /// `destination`.
    pub fn request(
        &self,
        source: &str,
        service: &str,
        destination: &str,
        outcome: &Outcome,
        elapsed: std::time::Duration,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                reporter: Reporter::Source,
                source_workload: source.to_string(),
                destination_service: service.to_string(),
                destination_workload: destination.to_string(),
                response_code: outcome.status.as_u16(),
            })
            .inc();
        let route = RouteLabels {
            source_workload: source.to_string(),
            destination_service: service.to_string(),
        };
        self.durations
            .get_or_create(&route)
            .observe(elapsed.as_secs_f64());
        if outcome.retries > 0 {
            self.retries
                .get_or_create(&route)
                .inc_by(u64::from(outcome.retries));
        }
        if !outcome.ejected.is_empty() {
            self.ejections
                .get_or_create(&route)
                .inc_by(outcome.ejected.len() as u64);
        }
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry.lock());
        out
    }
}
