//! The node IPAM controller (kube-controller-manager's `--allocate-node-cidrs`
//! with its range allocator): every Node without `spec.podCIDR` gets the
//! next free subnet of the cluster CIDR when it registers, and its subnet
//! goes back to the pool when it is deleted. Nodes that bring their own
//! pod CIDR (`--pod-cidr`) keep it; it is only marked taken.

pub mod cidrset;

use std::collections::HashMap;
use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::watcher::Event;
use serde_json::json;

use self::cidrset::{Cidr, CidrSet};
use super::events::{self, EventType, Recorder};
use super::Context;

/// What the controller hands out.
#[derive(Debug, Clone)]
pub struct NodeCidrs {
    /// The cluster's pod range (`--cluster-cidr`).
    pub cluster: Cidr,
    /// The prefix length of each node's subnet (`--node-cidr-mask-size`).
    pub node_prefix: u8,
    /// Subnets never handed out: the control plane's own node's, which it
    /// sets itself and may register after a joining node.
    pub reserved: Vec<Cidr>,
}

/// The pod CIDR a Node already carries.
fn node_cidr(node: &Node) -> Option<Cidr> {
    let spec = node.spec.as_ref()?;
    let cidr = spec
        .pod_cidrs
        .as_ref()
        .and_then(|c| c.first())
        .or(spec.pod_cidr.as_ref())?;
    kedge_config::cluster::parse_ipv4_cidr(cidr).ok()
}

/// Run the controller until the future is dropped (at once when the
/// context allocates no node CIDRs).
pub async fn run(ctx: Arc<Context>) {
    let Some(cfg) = ctx.node_cidrs.clone() else {
        return;
    };
    let mut pool = match CidrSet::new(cfg.cluster, cfg.node_prefix) {
        Ok(p) => p,
        Err(e) => {
            tracing::error!("node IPAM: {e}; no node gets a pod CIDR");
            return;
        }
    };
    for r in &cfg.reserved {
        pool.occupy(*r);
    }
    let mut allocator = Allocator {
        api: Api::all(ctx.client.clone()),
        recorder: ctx.recorder("node-ipam-controller"),
        pool,
        held: HashMap::new(),
        listed: false,
        waiting: Vec::new(),
    };
    let mut events = ctx.informers.get::<Node>().subscribe_with_lists().boxed();
    while let Some(event) = events.next().await {
        match event {
            Event::Apply(node) | Event::InitApply(node) => allocator.applied(node).await,
            Event::Delete(node) => allocator.deleted(&node),
            Event::Init => {}
            Event::InitDone => allocator.listed().await,
        }
    }
}

struct Allocator {
    api: Api<Node>,
    recorder: Recorder,
    pool: CidrSet,
    /// The subnet of each node as last known (set by the node, or given
    /// here and maybe not yet seen back in a watch event).
    held: HashMap<String, Cidr>,
    /// Whether the first list is in: until then every node's own subnet
    /// may still be unknown, so none is handed out.
    listed: bool,
    /// Nodes seen without a subnet before the first list was complete.
    waiting: Vec<Node>,
}

impl Allocator {
    async fn applied(&mut self, node: Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(cidr) = node_cidr(&node) {
            if let Some(old) = self.held.insert(name.clone(), cidr) {
                if old != cidr {
                    self.pool.release(old);
                }
            }
            if !self.pool.occupy(cidr) {
                tracing::debug!(node = %name, cidr = %cidrset::format(cidr), "the node's pod CIDR is outside the cluster CIDR");
            }
            return;
        }
        if self.held.contains_key(&name) || node.metadata.deletion_timestamp.is_some() {
            // Given already; the watch has not shown it yet.
            return;
        }
        if !self.listed {
            self.waiting.push(node);
            return;
        }
        self.allocate(&node).await;
    }

    async fn listed(&mut self) {
        self.listed = true;
        for node in std::mem::take(&mut self.waiting) {
            let name = node.metadata.name.clone().unwrap_or_default();
            if !self.held.contains_key(&name) {
                self.allocate(&node).await;
            }
        }
    }

    fn deleted(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        if let Some(cidr) = self.held.remove(&name) {
            self.pool.release(cidr);
            tracing::info!(node = %name, cidr = %cidrset::format(cidr), "released the pod CIDR of a deleted node");
        }
    }

    async fn allocate(&mut self, node: &Node) {
        let name = node.metadata.name.clone().unwrap_or_default();
        let reference = events::reference("v1", "Node", &node.metadata);
        let Some(cidr) = self.pool.allocate() else {
            self.recorder
                .record(
                    &reference,
                    EventType::Normal,
                    "CIDRNotAvailable",
                    &format!("Node {name} status is now: CIDRNotAvailable"),
                )
                .await;
            return;
        };
        let text = cidrset::format(cidr);
        let patch = json!({"spec": {"podCIDR": text, "podCIDRs": [text]}});
        match self
            .api
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => {
                tracing::info!(node = %name, cidr = %text, "allocated the node's pod CIDR");
                self.held.insert(name, cidr);
            }
            Err(e) => {
                self.pool.release(cidr);
                tracing::warn!(node = %name, error = %e, "setting the node's pod CIDR failed");
                self.recorder
                    .record(
                        &reference,
                        EventType::Normal,
                        "CIDRAssignmentFailed",
                        &format!("Node {name} status is now: CIDRAssignmentFailed"),
                    )
                    .await;
            }
        }
    }
}
