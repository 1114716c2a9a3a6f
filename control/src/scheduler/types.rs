//! What the scheduler knows about a pod and a node, computed once when the
//! object arrives from the watch so that a scheduling cycle only compares
//! numbers: `PodInfo` (requests, host ports, owner) and `NodeInfo`
//! (allocatable, what bound pods already requested, used host ports, how
//! many pods of each owner it runs).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Container, Node, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

/// The CPU request the scorers assume for a container that sets none
/// (Kubernetes' `DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
/// The memory request the scorers assume for a container that sets none
/// (Kubernetes' `DefaultMemoryRequest`, 200 MiB).
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// The label that names a node's zone.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
/// The label that names a node's region.
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";

/// Compute resources in the units the scheduler compares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resource {
    /// CPU in millicores.
    pub milli_cpu: i64,
    /// Memory in bytes.
    pub memory: i64,
    /// Ephemeral storage in bytes.
    pub ephemeral_storage: i64,
    /// The `pods` resource (only meaningful for allocatable).
    pub allowed_pod_number: i64,
    /// Extended resources, hugepages and attachable volumes, by name.
    pub scalar: BTreeMap<String, i64>,
}

impl Resource {
    /// Resources from a `ResourceList`; unparsable quantities count as zero.
    pub fn from_list(list: &BTreeMap<String, Quantity>) -> Self {
        let mut r = Resource::default();
        r.add_list(list);
        r
    }

    /// Add a `ResourceList`.
    pub fn add_list(&mut self, list: &BTreeMap<String, Quantity>) {
        for (name, q) in list {
            match name.as_str() {
                "cpu" => self.milli_cpu += milli_value(q),
                "memory" => self.memory += value(q),
                "ephemeral-storage" => self.ephemeral_storage += value(q),
                "pods" => self.allowed_pod_number += value(q),
                other if is_scalar_resource_name(other) => {
                    *self.scalar.entry(other.to_string()).or_default() += value(q)
                }
                _ => {}
            }
        }
    }

    /// Add another resource set.
    pub fn add(&mut self, other: &Resource) {
        self.milli_cpu += other.milli_cpu;
        self.memory += other.memory;
        self.ephemeral_storage += other.ephemeral_storage;
        self.allowed_pod_number += other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() += v;
        }
    }

    /// Subtract another resource set (removing a pod from a node).
    pub fn sub(&mut self, other: &Resource) {
        self.milli_cpu -= other.milli_cpu;
        self.memory -= other.memory;
        self.ephemeral_storage -= other.ephemeral_storage;
        self.allowed_pod_number -= other.allowed_pod_number;
        for (k, v) in &other.scalar {
            *self.scalar.entry(k.clone()).or_default() -= v;
        }
    }

    /// Keep, per resource, the larger of `self` and `other`.
    pub fn set_max(&mut self, other: &Resource) {
        self.milli_cpu = self.milli_cpu.max(other.milli_cpu);
        self.memory = self.memory.max(other.memory);
        self.ephemeral_storage = self.ephemeral_storage.max(other.ephemeral_storage);
        for (k, v) in &other.scalar {
            let e = self.scalar.entry(k.clone()).or_default();
            *e = (*e).max(*v);
        }
    }
}

/// Whether a resource name is one the scheduler accounts as a plain count:
/// extended resources (`example.com/gpu`), `hugepages-*` and
/// `attachable-volumes-*`.
pub fn is_scalar_resource_name(name: &str) -> bool {
    name.starts_with("hugepages-")
        || name.starts_with("attachable-volumes-")
        || (name.contains('/')
            && !name.contains("kubernetes.io/")
            && !name.starts_with("requests."))
}

fn milli_value(q: &Quantity) -> i64 {
    kedge_config::quantity::parse_quantity(&q.0)
        .map(|q| clamp(q.as_milli()))
        .unwrap_or(0)
}

fn value(q: &Quantity) -> i64 {
    kedge_config::quantity::parse_quantity(&q.0)
        .map(|q| clamp(q.value()))
        .unwrap_or(0)
}

fn clamp(v: i128) -> i64 {
    v.clamp(i64::MIN as i128, i64::MAX as i128) as i64
}

/// A host port a pod asks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host IP (`0.0.0.0` when unset).
    pub ip: String,
    /// TCP, UDP or SCTP.
    pub protocol: String,
    /// The port number.
    pub port: i32,
}

/// The address that means "every address of the node".
pub const BIND_ALL_HOST_IP: &str = "0.0.0.0";

/// A pod, with what every scheduling cycle needs already computed.
#[derive(Debug, Clone)]
pub struct PodInfo {
    /// The pod as last seen.
    pub pod: Arc<Pod>,
    /// `metadata.uid`, the key everywhere in the scheduler.
    pub uid: String,
    /// `metadata.namespace`.
    pub namespace: String,
    /// `metadata.name`.
    pub name: String,
    /// What NodeResourcesFit checks: containers' requests, the largest init
    /// container, plus overhead.
    pub requests: Resource,
    /// CPU and memory requests with the scorers' defaults for containers
    /// that set none, so that best-effort pods still spread.
    pub non_zero_milli_cpu: i64,
    /// See `non_zero_milli_cpu`.
    pub non_zero_memory: i64,
    /// Host ports of its containers.
    pub host_ports: Vec<HostPort>,
    /// The uid of its controller (ownerReference with `controller: true`).
    pub owner_uid: Option<String>,
    /// `spec.priority` (0 when unset).
    pub priority: i32,
}

impl PodInfo {
    /// Compute the scheduling view of a pod.
    pub fn new(pod: Arc<Pod>) -> Self {
        let meta = &pod.metadata;
        let spec = pod.spec.clone().unwrap_or_default();
        let (requests, non_zero) = pod_requests(&spec);
        let mut host_ports = Vec::new();
        for c in &spec.containers {
            for p in c.ports.iter().flatten() {
                let host_port = match p.host_port {
                    Some(hp) if hp > 0 => hp,
                    // hostNetwork pods expose their container ports on the node.
                    _ if spec.host_network == Some(true) && p.container_port > 0 => {
                        p.container_port
                    }
                    _ => continue,
                };
                host_ports.push(HostPort {
                    ip: p
                        .host_ip
                        .clone()
                        .filter(|ip| !ip.is_empty())
                        .unwrap_or_else(|| BIND_ALL_HOST_IP.to_string()),
                    protocol: p
                        .protocol
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "TCP".into()),
                    port: host_port,
                });
            }
        }
        let owner_uid = meta
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true))
            .map(|o| o.uid.clone());
        PodInfo {
            uid: meta.uid.clone().unwrap_or_default(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: meta.name.clone().unwrap_or_default(),
            requests,
            non_zero_milli_cpu: non_zero.milli_cpu,
            non_zero_memory: non_zero.memory,
            host_ports,
            owner_uid,
            priority: spec.priority.unwrap_or(0),
            pod,
        }
    }

    /// `spec.nodeName`, empty when unscheduled.
    pub fn node_name(&self) -> &str {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .unwrap_or("")
    }

    /// `spec.tolerations`.
    pub fn tolerations(&self) -> &[Toleration] {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.tolerations.as_deref())
            .unwrap_or(&[])
    }

    /// `namespace/name`, as Kubernetes names a pod in messages.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn container_requests(c: &Container, non_zero: bool) -> Resource {
    let res = c.resources.as_ref();
    let requests = res.and_then(|r| r.requests.as_ref());
    let limits = res.and_then(|r| r.limits.as_ref());
    let mut list = BTreeMap::new();
    // A limit without a request is the request (the API server's defaulting).
    for (k, v) in limits.into_iter().flatten() {
        list.insert(k.clone(), v.clone());
    }
    for (k, v) in requests.into_iter().flatten() {
        list.insert(k.clone(), v.clone());
    }
    let mut r = Resource::from_list(&list);
    if non_zero {
        if !list.contains_key("cpu") {
            r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
        }
        if !list.contains_key("memory") {
            r.memory = DEFAULT_MEMORY_REQUEST;
        }
    }
    r
}

fn requests_with(spec: &k8s_openapi::api::core::v1::PodSpec, non_zero: bool) -> Resource {
    let mut reqs = Resource::default();
    for c in &spec.containers {
        reqs.add(&container_requests(c, non_zero));
    }
    // Sidecars (restartable init containers) run beside the containers; a
    // plain init container runs alone, next to the sidecars started before it.
    let mut sidecars = Resource::default();
    let mut init_max = Resource::default();
    for c in spec.init_containers.iter().flatten() {
        let mut r = container_requests(c, non_zero);
        if c.restart_policy.as_deref() == Some("Always") {
            reqs.add(&r);
            sidecars.add(&r);
            r = sidecars.clone();
        } else {
            r.add(&sidecars);
        }
        init_max.set_max(&r);
    }
    reqs.set_max(&init_max);
    if let Some(overhead) = &spec.overhead {
        reqs.add_list(overhead);
    }
    reqs
}

/// The pod's requests as NodeResourcesFit counts them, and the same with the
/// scorers' non-zero defaults.
pub fn pod_requests(spec: &k8s_openapi::api::core::v1::PodSpec) -> (Resource, Resource) {
    (requests_with(spec, false), requests_with(spec, true))
}

/// A node and the pods the scheduler counts on it (bound and assumed).
#[derive(Debug, Clone, Default)]
pub struct NodeInfo {
    /// The node object; `None` while only pods name it.
    pub node: Option<Arc<Node>>,
    /// `metadata.name`.
    pub name: String,
    /// `status.allocatable`.
    pub allocatable: Resource,
    /// Sum of the requests of its pods.
    pub requested: Resource,
    /// CPU and memory requested, with the scorers' defaults.
    pub non_zero_requested: Resource,
    /// Its pods by uid.
    pub pods: HashMap<String, Arc<PodInfo>>,
    /// Host ports in use: (protocol, port) → IP → how many pods.
    pub used_ports: HashMap<(String, i32), HashMap<String, u32>>,
    /// How many of its pods each controller (by uid) owns.
    pub owner_counts: HashMap<String, u32>,
    /// Region and zone, when the node is labelled with them.
    pub zone: Option<String>,
    /// `spec.unschedulable`.
    pub unschedulable: bool,
    /// Whether the Ready condition is True.
    pub ready: bool,
}

impl NodeInfo {
    /// An empty entry for a node name.
    pub fn named(name: &str) -> Self {
        NodeInfo {
            name: name.to_string(),
            ..Default::default()
        }
    }

    /// Set (or replace) the node object.
    pub fn set_node(&mut self, node: Arc<Node>) {
        let status = node.status.as_ref();
        self.allocatable = status
            .and_then(|s| s.allocatable.as_ref())
            .map(Resource::from_list)
            .unwrap_or_default();
        self.ready = status
            .and_then(|s| s.conditions.as_ref())
            .into_iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        self.unschedulable = node
            .spec
            .as_ref()
            .and_then(|s| s.unschedulable)
            .unwrap_or(false);
        self.zone = zone_key(node.metadata.labels.as_ref());
        self.node = Some(node);
    }

    /// The node's labels.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        static EMPTY: BTreeMap<String, String> = BTreeMap::new();
        self.node
            .as_ref()
            .and_then(|n| n.metadata.labels.as_ref())
            .unwrap_or(&EMPTY)
    }

    /// The node's taints.
    pub fn taints(&self) -> &[Taint] {
        self.node
            .as_ref()
            .and_then(|n| n.spec.as_ref())
            .and_then(|s| s.taints.as_deref())
            .unwrap_or(&[])
    }

    /// Count a pod on this node.
    pub fn add_pod(&mut self, pod: Arc<PodInfo>) {
        if self.pods.contains_key(&pod.uid) {
            self.remove_pod(&pod.uid.clone());
        }
        self.update(&pod, true);
        self.pods.insert(pod.uid.clone(), pod);
    }

    /// Stop counting a pod; returns it when it was counted.
    pub fn remove_pod(&mut self, uid: &str) -> Option<Arc<PodInfo>> {
        let pod = self.pods.remove(uid)?;
        self.update(&pod, false);
        Some(pod)
    }

    fn update(&mut self, pod: &PodInfo, add: bool) {
        let non_zero = Resource {
            milli_cpu: pod.non_zero_milli_cpu,
            memory: pod.non_zero_memory,
            ..Default::default()
        };
        if add {
            self.requested.add(&pod.requests);
            self.non_zero_requested.add(&non_zero);
        } else {
            self.requested.sub(&pod.requests);
            self.non_zero_requested.sub(&non_zero);
        }
        for hp in &pod.host_ports {
            let ips = self
                .used_ports
                .entry((hp.protocol.clone(), hp.port))
                .or_default();
            if add {
                *ips.entry(hp.ip.clone()).or_default() += 1;
            } else if let Some(n) = ips.get_mut(&hp.ip) {
                *n -= 1;
                if *n == 0 {
                    ips.remove(&hp.ip);
                }
            }
            if ips.is_empty() {
                self.used_ports.remove(&(hp.protocol.clone(), hp.port));
            }
        }
        if let Some(owner) = &pod.owner_uid {
            if add {
                *self.owner_counts.entry(owner.clone()).or_default() += 1;
            } else if let Some(n) = self.owner_counts.get_mut(owner) {
                *n -= 1;
                if *n == 0 {
                    self.owner_counts.remove(owner);
                }
            }
        }
    }

    /// Whether a wanted host port collides with one in use: `0.0.0.0`
    /// collides with every IP, and every IP with `0.0.0.0`.
    pub fn port_conflicts(&self, want: &HostPort) -> bool {
        let Some(ips) = self.used_ports.get(&(want.protocol.clone(), want.port)) else {
            return false;
        };
        if want.ip == BIND_ALL_HOST_IP {
            return !ips.is_empty();
        }
        ips.contains_key(BIND_ALL_HOST_IP) || ips.contains_key(&want.ip)
    }
}

/// The key that identifies a node's failure domain from its region and zone
/// labels (`None` when it has neither).
pub fn zone_key(labels: Option<&BTreeMap<String, String>>) -> Option<String> {
    let labels = labels?;
    let region = labels.get(REGION_LABEL).map(String::as_str).unwrap_or("");
    let zone = labels.get(ZONE_LABEL).map(String::as_str).unwrap_or("");
    if region.is_empty() && zone.is_empty() {
        return None;
    }
    Some(format!("{region}:\x00:{zone}"))
}
