//! Node registration and heartbeats: the Node object (capacity,
//! allocatable, addresses, labels, nodeInfo, conditions), its status kept
//! fresh, and its Lease in `kube-node-lease` renewed, which is what the node
//! lifecycle controller reads to tell a live node from a dead one.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::api::core::v1::{
    DaemonEndpoint, Node, NodeAddress, NodeCondition, NodeDaemonEndpoints, NodeSpec, NodeStatus,
    NodeSystemInfo,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::Client;
use parking_lot::Mutex;
use serde_json::json;

use crate::status::api_time;
use crate::{is_not_found, Error, Result};

/// The namespace of node Leases.
pub const LEASE_NAMESPACE: &str = "kube-node-lease";

/// The version a kedge kubelet reports.
pub const KUBELET_VERSION: &str = "v1.32.0-kedge";

/// What a node is and how often it reports.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// The Node's name (also its hostname).
    pub name: String,
    /// Labels besides the well-known ones (`kubernetes.io/hostname`, `os`,
    /// `arch`), which are always set.
    pub labels: BTreeMap<String, String>,
    /// Annotations the node sets on its Node (where it keeps local-path
    /// volumes).
    pub annotations: BTreeMap<String, String>,
    /// Capacity; allocatable is the same (nothing is reserved).
    pub capacity: BTreeMap<String, String>,
    /// The InternalIP address, also the pods' hostIP.
    pub internal_ip: IpAddr,
    /// `spec.podCIDR` (set when the Node is created).
    pub pod_cidr: Option<String>,
    /// How often NodeStatus is posted (its lastHeartbeatTime refreshed).
    pub status_update_interval: Duration,
    /// How often the Lease is renewed.
    pub lease_renew_interval: Duration,
    /// The Lease's `leaseDurationSeconds`.
    pub lease_duration_seconds: i32,
    /// `nodeInfo.osImage`.
    pub os_image: String,
    /// `nodeInfo.kernelVersion`.
    pub kernel_version: String,
    /// `nodeInfo.containerRuntimeVersion`.
    pub container_runtime_version: String,
    /// The port of the kubelet's HTTPS endpoint (logs, exec).
    pub kubelet_port: i32,
}

impl NodeConfig {
    /// A node with Kubernetes' default intervals and the given identity.
    pub fn new(name: impl Into<String>, internal_ip: IpAddr) -> Self {
        Self {
            name: name.into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            capacity: [("cpu", "4"), ("memory", "16Gi"), ("pods", "110")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            internal_ip,
            pod_cidr: None,
            status_update_interval: Duration::from_secs(10),
            lease_renew_interval: Duration::from_secs(10),
            lease_duration_seconds: 40,
            os_image: "kedge".to_string(),
            kernel_version: kernel_version(),
            container_runtime_version: "unknown".to_string(),
            kubelet_port: 10250,
        }
    }

    /// Every label of the Node, the well-known ones included.
    pub fn all_labels(&self) -> BTreeMap<String, String> {
        let mut labels = self.labels.clone();
        labels.insert("kubernetes.io/hostname".into(), self.name.clone());
        labels.insert("kubernetes.io/os".into(), "linux".into());
        labels.insert("kubernetes.io/arch".into(), arch().into());
        labels
    }
}

/// The architecture in Go's words, as Kubernetes reports it.
pub fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

fn kernel_version() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

/// The node conditions a healthy kubelet reports, in Kubernetes' order:
/// (type, status, reason, message).
const CONDITIONS: [(&str, &str, &str, &str); 4] = [
    (
        "MemoryPressure",
        "False",
        "KubeletHasSufficientMemory",
        "kubelet has sufficient memory available",
    ),
    (
        "DiskPressure",
        "False",
        "KubeletHasNoDiskPressure",
        "kubelet has no disk pressure",
    ),
    (
        "PIDPressure",
        "False",
        "KubeletHasSufficientPID",
        "kubelet has sufficient PID available",
    ),
    (
        "Ready",
        "True",
        "KubeletReady",
        "kubelet is posting ready status",
    ),
];

/// Registers one Node and keeps its status and Lease fresh.
pub struct NodeStatusManager {
    config: NodeConfig,
    nodes: Api<Node>,
    leases: Api<Lease>,
    /// The Node as last written: its uid (for the Lease's owner) and its
    /// conditions (to keep their transition times).
    last: Mutex<Option<Node>>,
    /// Why the container runtime is not usable, when it is not.
    runtime_down: Mutex<Option<String>>,
}

// === impl NodeStatusManager ===

impl NodeStatusManager {
    /// A manager for the node `config` describes.
    pub fn new(client: Client, config: NodeConfig) -> Self {
        Self {
            config,
            nodes: Api::all(client.clone()),
            leases: Api::namespaced(client, LEASE_NAMESPACE),
            last: Mutex::new(None),
            runtime_down: Mutex::new(None),
        }
    }

    /// Record whether the container runtime answers: while it does not,
    /// the node is NotReady with the reason.
    pub fn set_runtime_status(&self, down: Option<String>) {
        *self.runtime_down.lock() = down;
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.config
    }

    fn quantities(&self) -> BTreeMap<String, Quantity> {
        self.config
            .capacity
            .iter()
            .map(|(k, v)| (k.clone(), Quantity(v.clone())))
            .collect()
    }

    fn conditions(&self, now: Timestamp) -> Vec<NodeCondition> {
        let last = self.last.lock();
        let old = last
            .as_ref()
            .and_then(|n| n.status.as_ref())
            .and_then(|s| s.conditions.as_deref())
            .unwrap_or_default();
        let down = self.runtime_down.lock().clone();
        CONDITIONS
            .iter()
            .map(|&(type_, status, reason, message)| match (&down, type_) {
                (Some(why), "Ready") => (
                    type_,
                    "False",
                    "KubeletNotReady",
                    format!("container runtime is down: {why}"),
                ),
                _ => (type_, status, reason, message.to_string()),
            })
            .map(|(type_, status, reason, message)| {
                let since = old
                    .iter()
                    .find(|c| c.type_ == type_ && c.status == status)
                    .and_then(|c| c.last_transition_time.clone())
                    .unwrap_or_else(|| api_time(now));
                NodeCondition {
                    type_: type_.to_string(),
                    status: status.to_string(),
                    reason: Some(reason.to_string()),
                    message: Some(message),
                    last_heartbeat_time: Some(api_time(now)),
                    last_transition_time: Some(since),
                }
            })
            .collect()
    }

    fn full_status(&self, now: Timestamp) -> NodeStatus {
        let c = &self.config;
        NodeStatus {
            capacity: Some(self.quantities()),
            allocatable: Some(self.quantities()),
            addresses: Some(vec![
                NodeAddress {
                    type_: "InternalIP".into(),
                    address: c.internal_ip.to_string(),
                },
                NodeAddress {
                    type_: "Hostname".into(),
                    address: c.name.clone(),
                },
            ]),
            conditions: Some(self.conditions(now)),
            daemon_endpoints: Some(NodeDaemonEndpoints {
                kubelet_endpoint: Some(DaemonEndpoint {
                    port: c.kubelet_port,
                }),
            }),
            node_info: Some(NodeSystemInfo {
                architecture: arch().into(),
                operating_system: "linux".into(),
                os_image: c.os_image.clone(),
                kernel_version: c.kernel_version.clone(),
                container_runtime_version: c.container_runtime_version.clone(),
                kubelet_version: KUBELET_VERSION.into(),
                kube_proxy_version: KUBELET_VERSION.into(),
                machine_id: machine_id(&c.name),
                system_uuid: machine_id(&c.name),
                boot_id: machine_id(&format!("{}/boot", c.name)),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Create the Node, or take over the existing one (its labels and
    /// podCIDR are reconciled), and post its full status.
    pub async fn register(&self) -> Result<()> {
        let c = &self.config;
        let now = Timestamp::now();
        let node = Node {
            metadata: ObjectMeta {
                name: Some(c.name.clone()),
                labels: Some(c.all_labels()),
                annotations: (!c.annotations.is_empty()).then(|| c.annotations.clone()),
                ..Default::default()
            },
            spec: Some(NodeSpec {
                pod_cidr: c.pod_cidr.clone(),
                pod_cidrs: c.pod_cidr.clone().map(|p| vec![p]),
                ..Default::default()
            }),
            status: Some(self.full_status(now)),
        };
        match self.nodes.create(&PostParams::default(), &node).await {
            Ok(_) => tracing::info!(node = %c.name, "registered node"),
            Err(e) if is_conflict(&e) => {
                let existing = self.nodes.get(&c.name).await?;
                let mut patch = json!({"metadata": {"labels": c.all_labels()}});
                if !c.annotations.is_empty() {
                    patch["metadata"]["annotations"] = json!(c.annotations);
                }
                let has_cidr = existing.spec.as_ref().is_some_and(|s| s.pod_cidr.is_some());
                if let (Some(cidr), false) = (&c.pod_cidr, has_cidr) {
                    patch["spec"] = json!({"podCIDR": cidr, "podCIDRs": [cidr]});
                }
                self.nodes
                    .patch(&c.name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                *self.last.lock() = Some(existing);
                tracing::info!(node = %c.name, "node was registered before");
            }
            Err(e) => return Err(e.into()),
        }
        let status = json!({"status": self.full_status(Timestamp::now())});
        let node = self
            .nodes
            .patch_status(&c.name, &PatchParams::default(), &Patch::Merge(&status))
            .await?;
        *self.last.lock() = Some(node);
        Ok(())
    }

    /// Refresh the conditions' heartbeat; re-register if the Node is gone.
    pub async fn update_status(&self) -> Result<()> {
        let status = json!({"status": {"conditions": self.conditions(Timestamp::now())}});
        match self
            .nodes
            .patch_status(
                &self.config.name,
                &PatchParams::default(),
                &Patch::Merge(&status),
            )
            .await
        {
            Ok(node) => {
                *self.last.lock() = Some(node);
                Ok(())
            }
            Err(e) if is_not_found(&e) => {
                tracing::info!(node = %self.config.name, "node was deleted; registering again");
                *self.last.lock() = None;
                self.register().await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Renew the Lease, creating it if missing.
    pub async fn renew_lease(&self) -> Result<()> {
        let name = &self.config.name;
        let now = MicroTime(Timestamp::now());
        let patch = json!({"spec": {
            "holderIdentity": name,
            "leaseDurationSeconds": self.config.lease_duration_seconds,
            "renewTime": now,
        }});
        match self
            .leases
            .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if is_not_found(&e) => {
                let owner = self
                    .last
                    .lock()
                    .as_ref()
                    .and_then(|n| n.metadata.uid.clone())
                    .map(|uid| OwnerReference {
                        api_version: "v1".into(),
                        kind: "Node".into(),
                        name: name.clone(),
                        uid,
                        ..Default::default()
                    });
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        namespace: Some(LEASE_NAMESPACE.into()),
                        owner_references: owner.map(|o| vec![o]),
                        ..Default::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(name.clone()),
                        lease_duration_seconds: Some(self.config.lease_duration_seconds),
                        renew_time: Some(now),
                        ..Default::default()
                    }),
                };
                match self.leases.create(&PostParams::default(), &lease).await {
                    Ok(_) => Ok(()),
                    // Another writer created it between the two calls.
                    Err(e) if is_conflict(&e) => Ok(()),
                    Err(e) => Err(Error::Api(e)),
                }
            }
            Err(e) => Err(e.into()),
        }
    }
}

fn is_conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

/// A stable, unique-looking id from a name (hollow nodes have no machine).
fn machine_id(name: &str) -> String {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in name.bytes() {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    format!("{h:032x}")
}
