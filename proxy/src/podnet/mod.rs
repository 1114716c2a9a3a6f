//! The pod network across machines, as flannel's `vxlan` and `host-gw`
//! backends do it: every node publishes on its Node how to reach its pods
//! (its public address, and for VXLAN its tunnel endpoint's MAC), and
//! every node routes each other node's pod CIDR there — through one VXLAN
//! device with static neighbour and forwarding entries (no learning, no
//! multicast), or through plain routes where nodes share a link. Pod
//! traffic keeps its source address inside the cluster CIDR and is
//! masqueraded when it leaves it.
//!
//! Nodes of the same machine (several agents on one host) reach each
//! other's bridges directly: a peer whose public address is one of this
//! machine's own is not routed, and a machine with no remote peer gets no
//! VXLAN device at all.

mod kernel;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher;
use kube::runtime::WatchStreamExt;
use serde_json::json;

use crate::command::CommandError;

pub use kernel::{underlay_mtu, Kernel};

/// The backend of a node (`backend-type`).
pub const ANNOTATION_BACKEND_TYPE: &str = "network.kedge.io/backend-type";
/// The backend's data: for VXLAN, `{"VNI":1,"VtepMAC":"…"}`.
pub const ANNOTATION_BACKEND_DATA: &str = "network.kedge.io/backend-data";
/// The node's address on the network between machines.
pub const ANNOTATION_PUBLIC_IP: &str = "network.kedge.io/public-ip";

/// What VXLAN adds to every packet (outer IPv4, UDP, VXLAN and Ethernet
/// headers): the pods' MTU is the link's less this.
pub const VXLAN_OVERHEAD: u32 = 50;

/// An IPv4 subnet: its network address and prefix length.
pub type Cidr = (Ipv4Addr, u8);

/// How pod traffic crosses machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Encapsulated in VXLAN (flannel's default: VNI 1, UDP port 8472).
    Vxlan {
        /// The VXLAN network identifier.
        vni: u32,
        /// The UDP port of the tunnel.
        port: u16,
    },
    /// Plain routes to the other nodes' addresses (they share a link).
    HostGw,
}

impl Backend {
    fn type_name(self) -> &'static str {
        match self {
            Backend::Vxlan { .. } => "vxlan",
            Backend::HostGw => "host-gw",
        }
    }

    /// How much the backend takes off the link's MTU.
    pub fn overhead(self) -> u32 {
        match self {
            Backend::Vxlan { .. } => VXLAN_OVERHEAD,
            Backend::HostGw => 0,
        }
    }
}

/// The pod network of one node.
#[derive(Debug, Clone)]
pub struct PodNetworkConfig {
    /// The node's name.
    pub node_name: String,
    /// The node's address other machines reach it on (the VTEP).
    pub public_ip: Ipv4Addr,
    /// The node's own pod CIDR.
    pub pod_cidr: Cidr,
    /// The cluster's pod range: traffic leaving it is masqueraded.
    pub cluster_cidr: Cidr,
    /// How traffic crosses machines.
    pub backend: Backend,
}

/// What stopped the pod network.
#[derive(Debug, thiserror::Error)]
pub enum PodNetworkError {
    /// A kernel tool failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// The VXLAN device's name is taken by something not ours.
    #[error(
        "interface {0} exists and is not this node's VXLAN device; remove it or pick another VNI"
    )]
    NotOurs(String),
    /// The API refused what the node publishes.
    #[error("publishing the node's pod network on its Node: {0}")]
    Publish(#[source] kube::Error),
}

/// A node this one routes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its pod CIDR.
    pub cidr: Cidr,
    /// Its public address.
    pub public_ip: Ipv4Addr,
    /// Its VTEP's MAC (VXLAN only).
    pub vtep_mac: Option<String>,
}

/// The MAC of a node's VTEP, made from its public address so that it is
/// known before the device exists and stays the same across restarts (a
/// locally administered unicast address).
pub fn vtep_mac(public_ip: Ipv4Addr) -> String {
    let [a, b, c, d] = public_ip.octets();
    format!("0e:6b:{a:02x}:{b:02x}:{c:02x}:{d:02x}")
}

/// The annotations a node publishes.
pub fn annotations(cfg: &PodNetworkConfig) -> BTreeMap<String, String> {
    let mut out = BTreeMap::from([
        (
            ANNOTATION_BACKEND_TYPE.to_string(),
            cfg.backend.type_name().to_string(),
        ),
        (ANNOTATION_PUBLIC_IP.to_string(), cfg.public_ip.to_string()),
    ]);
    if let Backend::Vxlan { vni, .. } = cfg.backend {
        out.insert(
            ANNOTATION_BACKEND_DATA.to_string(),
            json!({"VNI": vni, "VtepMAC": vtep_mac(cfg.public_ip)}).to_string(),
        );
    }
    out
}

/// How to reach `node`'s pods from the node of `cfg`, if it is another
/// node of the same backend that published its way in.
pub fn peer_of(cfg: &PodNetworkConfig, node: &Node) -> Option<Peer> {
    if node.metadata.name.as_deref() == Some(cfg.node_name.as_str()) {
        return None;
    }
    let annotations = node.metadata.annotations.as_ref()?;
    if annotations.get(ANNOTATION_BACKEND_TYPE)? != cfg.backend.type_name() {
        return None;
    }
    let public_ip: Ipv4Addr = annotations.get(ANNOTATION_PUBLIC_IP)?.parse().ok()?;
    let spec = node.spec.as_ref()?;
    let cidr = spec
        .pod_cidrs
        .as_ref()
        .and_then(|c| c.first())
        .or(spec.pod_cidr.as_ref())?;
    let cidr = parse_cidr(cidr)?;
    if overlaps(cidr, cfg.pod_cidr) {
        return None;
    }
    let vtep_mac = match cfg.backend {
        Backend::Vxlan { vni, .. } => {
            let data: serde_json::Value =
                serde_json::from_str(annotations.get(ANNOTATION_BACKEND_DATA)?).ok()?;
            if data.get("VNI")?.as_u64()? != u64::from(vni) {
                return None;
            }
            let mac = data.get("VtepMAC")?.as_str()?;
            valid_mac(mac).then(|| mac.to_ascii_lowercase())
        }
        Backend::HostGw => None,
    };
    if matches!(cfg.backend, Backend::Vxlan { .. }) && vtep_mac.is_none() {
        return None;
    }
    Some(Peer {
        cidr,
        public_ip,
        vtep_mac,
    })
}

fn valid_mac(s: &str) -> bool {
    let parts: Vec<&str> = s.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// `a.b.c.d/n`, its address masked.
pub fn parse_cidr(s: &str) -> Option<Cidr> {
    let (ip, len) = s.split_once('/')?;
    let ip: Ipv4Addr = ip.parse().ok()?;
    let len: u8 = len.parse().ok().filter(|l| *l <= 32)?;
    Some((Ipv4Addr::from(u32::from(ip) & mask(len)), len))
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

pub(crate) fn overlaps(a: Cidr, b: Cidr) -> bool {
    let len = a.1.min(b.1);
    u32::from(a.0) & mask(len) == u32::from(b.0) & mask(len)
}

/// `a.b.c.d/n`.
pub fn format_cidr(c: Cidr) -> String {
    format!("{}/{}", c.0, c.1)
}

/// Run the node's pod network until the future is dropped, which takes
/// down what it made (the VXLAN device and its routes, the masquerade
/// table). `client` is the node's own: it patches its own Node and
/// watches the others.
pub async fn run(client: kube::Client, cfg: PodNetworkConfig) -> Result<(), PodNetworkError> {
    let mut kernel = Kernel::new(&cfg);
    kernel.masquerade().await?;
    let nodes: Api<Node> = Api::all(client);
    publish(&nodes, &cfg).await?;
    tracing::info!(
        node = %cfg.node_name,
        backend = cfg.backend.type_name(),
        public_ip = %cfg.public_ip,
        pod_cidr = %format_cidr(cfg.pod_cidr),
        "pod network published"
    );
    let mut known: BTreeMap<String, Node> = BTreeMap::new();
    let nodes_api = nodes.clone();
    let mut events = watcher::watcher(nodes, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut listing: Option<BTreeMap<String, Node>> = None;
    while let Some(event) = events.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::debug!(error = %e, "node watch");
                continue;
            }
        };
        match event {
            watcher::Event::Init => {
                listing = Some(BTreeMap::new());
                continue;
            }
            watcher::Event::InitApply(node) => {
                if let Some(l) = listing.as_mut() {
                    l.insert(node.metadata.name.clone().unwrap_or_default(), node);
                }
                continue;
            }
            watcher::Event::InitDone => {
                known = listing.take().unwrap_or_default();
            }
            watcher::Event::Apply(node) => {
                known.insert(node.metadata.name.clone().unwrap_or_default(), node);
            }
            watcher::Event::Delete(node) => {
                known.remove(node.metadata.name.as_deref().unwrap_or_default());
            }
        }
        // A Node registered anew (deleted, then its kubelet came back) has
        // lost what this node published.
        if let Some(own) = known.get(&cfg.node_name) {
            let theirs = own.metadata.annotations.clone().unwrap_or_default();
            if annotations(&cfg)
                .iter()
                .any(|(k, v)| theirs.get(k) != Some(v))
            {
                publish(&nodes_api, &cfg).await?;
            }
        }
        let peers: BTreeMap<String, Peer> = known
            .iter()
            .filter_map(|(name, node)| Some((name.clone(), peer_of(&cfg, node)?)))
            .collect();
        if let Err(e) = kernel.sync(&peers).await {
            // The next event retries what is still missing.
            tracing::warn!(error = %e, "programming routes to other nodes' pods");
            if matches!(e, PodNetworkError::NotOurs(_)) {
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Put the node's annotations on its Node, retrying while the API is not
/// there yet.
async fn publish(nodes: &Api<Node>, cfg: &PodNetworkConfig) -> Result<(), PodNetworkError> {
    let patch = json!({"metadata": {"annotations": annotations(cfg)}});
    let mut attempts = 0;
    loop {
        match nodes
            .patch(
                &cfg.node_name,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => return Ok(()),
            Err(e) if attempts < 60 => {
                tracing::debug!(error = %e, "publishing the pod network; retrying");
                attempts += 1;
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
            Err(e) => return Err(PodNetworkError::Publish(e)),
        }
    }
}

#[cfg(test)]
mod tests;
