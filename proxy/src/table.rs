//! The proxy table: Services and EndpointSlices compiled into what to serve
//! where. Pure data, no IO: the watch feeds [`ServiceState`], which compiles a
//! [`ProxyTable`], which lists the [`Frontend`]s a node serves with their
//! [`Backends`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

#[cfg(test)]
mod tests;

/// The label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// Kubernetes' default `sessionAffinityConfig.clientIP.timeoutSeconds`.
pub const DEFAULT_AFFINITY_TIMEOUT: Duration = Duration::from_secs(10800);

/// A Service's `namespace/name`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// The namespace.
    pub namespace: Arc<str>,
    /// The name.
    pub name: Arc<str>,
}

impl ServiceKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The transport protocols the userspace proxy serves (SCTP is not).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Protocol {
    /// From a Kubernetes `protocol` field; absent means TCP.
    pub fn parse(s: Option<&str>) -> Option<Self> {
        match s.unwrap_or("TCP") {
            "TCP" => Some(Self::Tcp),
            "UDP" => Some(Self::Udp),
            _ => None,
        }
    }

    /// The Kubernetes spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tcp => "TCP",
            Self::Udp => "UDP",
        }
    }
}

/// One ready endpoint of a Service port.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Endpoint {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The node the endpoint runs on, for `trafficPolicy: Local`.
    pub node_name: Option<Arc<str>>,
}

/// One port of a Service with its ready endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct ServicePortEntry {
    /// The Service.
    pub service: ServiceKey,
    /// The port's name ("" when the Service has a single unnamed port).
    pub port_name: Arc<str>,
    /// TCP or UDP.
    pub protocol: Protocol,
    /// `spec.clusterIPs`.
    pub cluster_ips: Vec<IpAddr>,
    /// `port`.
    pub port: u16,
    /// `nodePort`, for NodePort and LoadBalancer Services.
    pub node_port: Option<u16>,
    /// A LoadBalancer Service, whose port is also served on the node addresses.
    pub load_balancer: bool,
    /// `externalTrafficPolicy: Local`: NodePort and load-balancer traffic
    /// goes only to endpoints on this node.
    pub external_local: bool,
    /// `internalTrafficPolicy: Local`: ClusterIP traffic goes only to
    /// endpoints on this node.
    pub internal_local: bool,
    /// `sessionAffinity: ClientIP` and its timeout.
    pub affinity: Option<Duration>,
    /// Whether the port carries HTTP (the mesh balances it request by
    /// request) and how its requests are treated.
    pub http: Option<HttpPort>,
    /// Set for a TCP port that declares no protocol (and is no well-known
    /// port of a protocol whose server speaks first): the mesh looks at
    /// each connection's first bytes, and treats the requests of one that
    /// is HTTP as this says ([`sniffs_http`]).
    pub sniff: Option<HttpPort>,
    /// The Services of its namespace the mesh splits its traffic between,
    /// with their weights ([`TRAFFIC_SPLIT_ANNOTATION`]); empty: none.
    pub traffic_split: Arc<[(Arc<str>, u32)]>,
    /// Ready, non-terminating endpoints, sorted and without duplicates.
    pub endpoints: Vec<Endpoint>,
}

/// The HTTP of a Service port: declared by its `appProtocol` (`http`;
/// `http2`, `h2c`, `kubernetes.io/h2c`, `grpc`) or, as Istio reads it, by
/// its name (`http`, `http-…`; `http2…`, `grpc…`, `h2c…`); its requests'
/// timeout and retries from the Service's annotations
/// [`REQUEST_TIMEOUT_ANNOTATION`] and [`RETRIES_ANNOTATION`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpPort {
    /// HTTP/1.1 or HTTP/2 (cleartext, prior knowledge).
    pub version: HttpVersion,
    /// How long a request may take, retries included; none by default.
    pub timeout: Option<Duration>,
    /// How often a request that may be repeated (no body, an idempotent
    /// method) is tried again after a failed connection or a 502/503/504;
    /// 2 by default, as Istio's.
    pub retries: u32,
}

/// The HTTP of a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1.
    Http1,
    /// HTTP/2 (gRPC).
    Http2,
}

/// A Service annotation: the timeout of its requests in the mesh (`500ms`,
/// `2s`, `1m`).
pub const REQUEST_TIMEOUT_ANNOTATION: &str = "kedge.io/mesh-request-timeout";
/// A Service annotation: the Services of its namespace that meshed callers'
/// traffic to it goes to instead, with weights (`api-v1=90,api-v2=10`), for
/// canaries (SMI's TrafficSplit): per request for HTTP ports, per
/// connection otherwise.
pub const TRAFFIC_SPLIT_ANNOTATION: &str = "kedge.io/mesh-traffic-split";
/// A Service annotation: how often the mesh retries its idempotent requests.
pub const RETRIES_ANNOTATION: &str = "kedge.io/mesh-retries";
const DEFAULT_RETRIES: u32 = 2;

/// Every Service port this proxy serves, by Service, in each Service's port order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyTable {
    /// The Service ports.
    pub ports: Vec<ServicePortEntry>,
}

/// An address and protocol the proxy listens on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Frontend {
    /// The address and port.
    pub addr: SocketAddr,
    /// TCP or UDP.
    pub protocol: Protocol,
}

impl fmt::Display for Frontend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.protocol.as_str())
    }
}

/// Where a frontend's traffic goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backends {
    /// The Service.
    pub service: ServiceKey,
    /// The Service port's name.
    pub port_name: Arc<str>,
    /// The endpoints to balance over (never empty in a compiled frontend map).
    pub endpoints: Arc<[SocketAddr]>,
    /// ClientIP affinity timeout.
    pub affinity: Option<Duration>,
}

/// The node a table is compiled for.
#[derive(Clone, Debug, Default)]
pub struct NodeInfo {
    /// The node's name, matched against endpoints' `nodeName`.
    pub name: String,
    /// Where NodePorts and load-balancer ports are served.
    pub addresses: Vec<IpAddr>,
}

// === impl ProxyTable ===

impl ProxyTable {
    /// The ClusterIPs to put on the holder interface.
    pub fn cluster_ips(&self) -> BTreeSet<IpAddr> {
        self.ports
            .iter()
            .flat_map(|p| p.cluster_ips.iter().copied())
            .collect()
    }

    /// The frontends `node` serves and their backends. A frontend whose
    /// endpoints (after the traffic policy) are empty is left out, so that
    /// nothing listens there and connections are refused by the kernel.
    pub fn frontends(&self, node: &NodeInfo) -> BTreeMap<Frontend, Backends> {
        let mut out = BTreeMap::new();
        for entry in &self.ports {
            let all: Arc<[SocketAddr]> = entry.endpoints.iter().map(|e| e.addr).collect();
            let local: Arc<[SocketAddr]> = entry
                .endpoints
                .iter()
                .filter(|e| e.node_name.as_deref() == Some(node.name.as_str()))
                .map(|e| e.addr)
                .collect();
            let backends = |local_only: bool| Backends {
                service: entry.service.clone(),
                port_name: entry.port_name.clone(),
                endpoints: if local_only {
                    local.clone()
                } else {
                    all.clone()
                },
                affinity: entry.affinity,
            };
            let mut add = |addr: SocketAddr, local_only: bool| {
                let b = backends(local_only);
                if b.endpoints.is_empty() {
                    return;
                }
                let key = Frontend {
                    addr,
                    protocol: entry.protocol,
                };
                // The first Service to claim an address keeps it; the API
                // server's allocators make clashes rare (load-balancer ports).
                out.entry(key).or_insert(b);
            };
            for ip in &entry.cluster_ips {
                add(SocketAddr::new(*ip, entry.port), entry.internal_local);
            }
            for ip in &node.addresses {
                if let Some(node_port) = entry.node_port {
                    add(SocketAddr::new(*ip, node_port), entry.external_local);
                }
                if entry.load_balancer {
                    add(SocketAddr::new(*ip, entry.port), entry.external_local);
                }
            }
        }
        out
    }
}

// === impl ServiceState ===

/// A Service as the proxy needs it, converted when its event arrives.
#[derive(Clone, Debug, PartialEq)]
struct ServiceInfo {
    cluster_ips: Vec<IpAddr>,
    ports: Vec<PortInfo>,
    load_balancer: bool,
    external_local: bool,
    internal_local: bool,
    affinity: Option<Duration>,
    /// The mesh's timeout and retries of its HTTP ports' requests.
    timeout: Option<Duration>,
    retries: u32,
    traffic_split: Arc<[(Arc<str>, u32)]>,
}

#[derive(Clone, Debug, PartialEq)]
struct PortInfo {
    name: Arc<str>,
    protocol: Protocol,
    port: u16,
    node_port: Option<u16>,
    http: Option<HttpVersion>,
    sniff: bool,
}

/// An EndpointSlice as the proxy needs it.
#[derive(Clone, Debug, PartialEq)]
struct SliceInfo {
    ports: Vec<(Arc<str>, Protocol, u16)>,
    /// Ready, non-terminating endpoints' first address and node.
    endpoints: Vec<(IpAddr, Option<Arc<str>>)>,
}

/// The Services and EndpointSlices seen so far, converted to what the proxy
/// needs; compiled into a [`ProxyTable`] on demand.
#[derive(Clone, Debug, Default)]
pub struct ServiceState {
    services: HashMap<ServiceKey, ServiceInfo>,
    /// Slices by owning Service, then by slice name.
    slices: HashMap<ServiceKey, BTreeMap<String, SliceInfo>>,
}

impl ServiceState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add or update a Service. Returns whether the table may have changed.
    pub fn apply_service(&mut self, svc: &Service) -> bool {
        let Some(key) = service_key(svc) else {
            return false;
        };
        match service_info(svc) {
            Some(info) => self.services.insert(key, info.clone()) != Some(info),
            None => self.services.remove(&key).is_some(),
        }
    }

    /// Forget a Service.
    pub fn delete_service(&mut self, svc: &Service) -> bool {
        service_key(svc).is_some_and(|k| self.services.remove(&k).is_some())
    }

    /// Replace every Service (after a relist).
    pub fn replace_services<'a>(&mut self, services: impl IntoIterator<Item = &'a Service>) {
        self.services = services
            .into_iter()
            .filter_map(|s| Some((service_key(s)?, service_info(s)?)))
            .collect();
    }

    /// Add or update an EndpointSlice. Returns whether the table may have changed.
    pub fn apply_slice(&mut self, slice: &EndpointSlice) -> bool {
        let Some((key, name)) = slice_key(slice) else {
            return false;
        };
        let info = slice_info(slice);
        let slices = self.slices.entry(key.clone()).or_default();
        let changed = slices.insert(name, info.clone()) != Some(info);
        changed && self.services.contains_key(&key)
    }

    /// Forget an EndpointSlice.
    pub fn delete_slice(&mut self, slice: &EndpointSlice) -> bool {
        let Some((key, name)) = slice_key(slice) else {
            return false;
        };
        let Some(slices) = self.slices.get_mut(&key) else {
            return false;
        };
        let removed = slices.remove(&name).is_some();
        if slices.is_empty() {
            self.slices.remove(&key);
        }
        removed && self.services.contains_key(&key)
    }

    /// Replace every EndpointSlice (after a relist).
    pub fn replace_slices<'a>(&mut self, slices: impl IntoIterator<Item = &'a EndpointSlice>) {
        self.slices.clear();
        for slice in slices {
            if let Some((key, name)) = slice_key(slice) {
                self.slices
                    .entry(key)
                    .or_default()
                    .insert(name, slice_info(slice));
            }
        }
    }

    /// Compile the table.
    pub fn table(&self) -> ProxyTable {
        let mut keys: Vec<&ServiceKey> = self.services.keys().collect();
        keys.sort();
        let mut ports = Vec::new();
        for key in keys {
            let svc = &self.services[key];
            let slices = self.slices.get(key);
            for p in &svc.ports {
                let mut endpoints = BTreeSet::new();
                for slice in slices.into_iter().flat_map(|s| s.values()) {
                    let Some(target) = slice
                        .ports
                        .iter()
                        .find(|(name, proto, _)| *name == p.name && *proto == p.protocol)
                        .map(|(_, _, port)| *port)
                    else {
                        continue;
                    };
                    for (ip, node) in &slice.endpoints {
                        endpoints.insert(Endpoint {
                            addr: SocketAddr::new(*ip, target),
                            node_name: node.clone(),
                        });
                    }
                }
                ports.push(ServicePortEntry {
                    service: key.clone(),
                    port_name: p.name.clone(),
                    protocol: p.protocol,
                    cluster_ips: svc.cluster_ips.clone(),
                    port: p.port,
                    node_port: p.node_port,
                    load_balancer: svc.load_balancer,
                    external_local: svc.external_local,
                    internal_local: svc.internal_local,
                    affinity: svc.affinity,
                    http: p.http.map(|version| HttpPort {
                        version,
                        timeout: svc.timeout,
                        retries: svc.retries,
                    }),
                    sniff: p.sniff.then_some(HttpPort {
                        version: HttpVersion::Http1,
                        timeout: svc.timeout,
                        retries: svc.retries,
                    }),
                    traffic_split: svc.traffic_split.clone(),
                    endpoints: endpoints.into_iter().collect(),
                });
            }
        }
        ProxyTable { ports }
    }
}

fn service_key(svc: &Service) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        svc.metadata.namespace.as_deref()?,
        svc.metadata.name.as_deref()?,
    ))
}

/// What the proxy serves for a Service; `None` for Services it has nothing
/// to do with (ExternalName, headless).
fn service_info(svc: &Service) -> Option<ServiceInfo> {
    let spec = svc.spec.as_ref()?;
    let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
    if type_ == "ExternalName" {
        return None;
    }
    let mut cluster_ips: Vec<IpAddr> = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .filter_map(|ip| ip.parse().ok())
        .collect();
    cluster_ips.sort();
    cluster_ips.dedup();
    if cluster_ips.is_empty() {
        return None;
    }
    let node_ports = type_ == "NodePort" || type_ == "LoadBalancer";
    let ports = spec
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some(PortInfo {
                name: p.name.as_deref().unwrap_or("").into(),
                http: http_version(p.app_protocol.as_deref(), p.name.as_deref()),
                sniff: sniffs_http(p.app_protocol.as_deref(), p.name.as_deref(), p.port)
                    && Protocol::parse(p.protocol.as_deref()) == Some(Protocol::Tcp),
                protocol: Protocol::parse(p.protocol.as_deref())?,
                port: u16::try_from(p.port).ok()?,
                node_port: p
                    .node_port
                    .filter(|_| node_ports)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n != 0),
            })
        })
        .collect();
    let affinity = (spec.session_affinity.as_deref() == Some("ClientIP")).then(|| {
        spec.session_affinity_config
            .as_ref()
            .and_then(|c| c.client_ip.as_ref())
            .and_then(|c| c.timeout_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map_or(DEFAULT_AFFINITY_TIMEOUT, Duration::from_secs)
    });
    Some(ServiceInfo {
        cluster_ips,
        ports,
        load_balancer: type_ == "LoadBalancer",
        external_local: node_ports && spec.external_traffic_policy.as_deref() == Some("Local"),
        internal_local: spec.internal_traffic_policy.as_deref() == Some("Local"),
        affinity,
        timeout: annotation(svc, REQUEST_TIMEOUT_ANNOTATION).and_then(parse_duration),
        retries: annotation(svc, RETRIES_ANNOTATION)
            .and_then(|r| r.trim().parse().ok())
            .unwrap_or(DEFAULT_RETRIES),
        traffic_split: annotation(svc, TRAFFIC_SPLIT_ANNOTATION)
            .map(parse_split)
            .unwrap_or_default(),
    })
}

/// `a=90,b=10`: Services and weights; malformed entries and zero weights
/// are left out.
fn parse_split(text: &str) -> Arc<[(Arc<str>, u32)]> {
    text.split(',')
        .filter_map(|entry| {
            let (name, weight) = entry.split_once('=')?;
            let weight: u32 = weight.trim().parse().ok()?;
            let name = name.trim();
            (!name.is_empty() && weight > 0).then(|| (Arc::from(name), weight))
        })
        .collect()
}

fn annotation<'a>(svc: &'a Service, key: &str) -> Option<&'a str> {
    svc.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// `500ms`, `2s`, `1m`, `1.5s`.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let number: f64 = number.parse().ok()?;
    let seconds = match unit {
        "ms" => number / 1000.0,
        "s" => number,
        "m" => number * 60.0,
        _ => return None,
    };
    (seconds.is_finite() && seconds > 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// The HTTP a port declares, by `appProtocol`, else by name.
/// Ports of protocols whose server speaks first (SMTP, SSH, MySQL, …) or
/// that the mesh leaves alone by default, as Linkerd's default opaque
/// ports: no connection to them waits to be looked at.
const SERVER_FIRST_PORTS: [i32; 12] = [
    21, 22, 25, 110, 143, 587, 3306, 4444, 5432, 6379, 9300, 11211,
];

/// Port-name prefixes that declare a protocol other than HTTP (Istio's
/// names).
const OTHER_PROTOCOLS: [&str; 7] = ["https", "mongo", "mysql", "redis", "tcp", "tls", "udp"];

/// Whether the mesh looks for HTTP in a port's connections: the port
/// declares no protocol (no `appProtocol`, no name that says one) and is
/// not one of [`SERVER_FIRST_PORTS`].
pub(crate) fn sniffs_http(app_protocol: Option<&str>, name: Option<&str>, port: i32) -> bool {
    if app_protocol.is_some() || SERVER_FIRST_PORTS.contains(&port) {
        return false;
    }
    let prefix = name
        .unwrap_or_default()
        .split('-')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    http_version(None, name).is_none() && !OTHER_PROTOCOLS.contains(&prefix.as_str())
}

fn http_version(app_protocol: Option<&str>, name: Option<&str>) -> Option<HttpVersion> {
    if let Some(app) = app_protocol {
        return match app.to_ascii_lowercase().as_str() {
            "http" => Some(HttpVersion::Http1),
            "http2" | "h2c" | "kubernetes.io/h2c" | "grpc" => Some(HttpVersion::Http2),
            _ => None,
        };
    }
    let name = name?.to_ascii_lowercase();
    let prefix = name.split('-').next().unwrap_or_default();
    match prefix {
        "http" => Some(HttpVersion::Http1),
        "http2" | "grpc" | "h2c" => Some(HttpVersion::Http2),
        _ => None,
    }
}

fn slice_key(slice: &EndpointSlice) -> Option<(ServiceKey, String)> {
    let ns = slice.metadata.namespace.as_deref()?;
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some((
        ServiceKey::new(ns, service),
        slice.metadata.name.clone().unwrap_or_default(),
    ))
}

fn slice_info(slice: &EndpointSlice) -> SliceInfo {
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            Some((
                Arc::from(p.name.as_deref().unwrap_or("")),
                Protocol::parse(p.protocol.as_deref())?,
                u16::try_from(p.port?).ok()?,
            ))
        })
        .collect();
    // FQDN slices name hosts, not addresses: nothing to connect to.
    let endpoints = if slice.address_type == "FQDN" {
        Vec::new()
    } else {
        slice
            .endpoints
            .iter()
            .filter(|e| {
                let c = e.conditions.as_ref();
                // An absent `ready` means ready; terminating endpoints get no
                // new connections even if they still report ready.
                c.and_then(|c| c.ready) != Some(false)
                    && c.and_then(|c| c.terminating) != Some(true)
            })
            .filter_map(|e| {
                let ip = e.addresses.first()?.parse().ok()?;
                Some((ip, e.node_name.as_deref().map(Arc::from)))
            })
            .collect()
    };
    SliceInfo { ports, endpoints }
}
