//! NetworkPolicy enforcement on this node, in both proxy modes: the
//! policies are compiled against every pod and namespace
//! ([`model::compile`]); the pods of this node get an nftables table that
//! filters their traffic in the forward path ([`render`]), which covers
//! pod-to-pod traffic (and Service traffic the nftables mode DNATs); the
//! userspace proxy asks [`Policy::allows`] before it connects a client to
//! an endpoint, since its connections to endpoints come from the node.

pub mod model;
pub mod render;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Node, Pod};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use parking_lot::RwLock;

use self::model::{Compiled, PodView, Proto};
use crate::mesh::is_meshed;

/// Events coming close together make one compile.
const DEBOUNCE: Duration = Duration::from_millis(20);

/// The compiled policies, shared with the userspace proxy and the mesh.
#[derive(Debug, Default)]
pub struct Policy {
    compiled: RwLock<(Arc<Compiled>, Arc<[IpAddr]>)>,
}

impl Policy {
    /// Whether a new connection from `src` to `dst:port` is allowed. The
    /// nodes' own addresses are let through, as the kernel's table lets
    /// them (a node reaches its pods without the forward path).
    pub fn allows(&self, src: IpAddr, dst: IpAddr, proto: Proto, port: u16) -> bool {
        let (c, nodes) = self.compiled.read().clone();
        c.is_open() || nodes.contains(&src) || c.allows(src, dst, proto, port)
    }

    fn set(&self, c: Compiled, nodes: Vec<IpAddr>) {
        *self.compiled.write() = (Arc::new(c), nodes.into());
    }
}

/// The addresses traffic of the nodes themselves comes from: their
/// InternalIPs, and the first two addresses of their pod ranges (the VXLAN
/// device's and the bridge's).
fn node_sources(nodes: &[Arc<Node>]) -> Vec<IpAddr> {
    let mut out = BTreeSet::new();
    for n in nodes {
        for a in n.status.iter().flat_map(|s| s.addresses.iter().flatten()) {
            if a.type_ == "InternalIP" {
                if let Ok(ip) = a.address.parse() {
                    out.insert(ip);
                }
            }
        }
        if let Some(cidr) = n.spec.as_ref().and_then(|s| s.pod_cidr.as_deref()) {
            if let Some(std::net::IpAddr::V4(net)) =
                cidr.split_once('/').and_then(|(a, _)| a.parse().ok())
            {
                out.insert(IpAddr::V4(net));
                out.insert(IpAddr::V4((u32::from(net) + 1).into()));
            }
        }
    }
    out.into_iter().collect()
}

fn store<K>(client: &Client) -> (Store<K>, futures::stream::BoxStream<'static, ()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (reader, writer) = reflector::store();
    let events = reflector::reflector(
        writer,
        watcher(Api::<K>::all(client.clone()), watcher::Config::default()).default_backoff(),
    )
    .map(|r| {
        if let Err(e) = r {
            tracing::debug!(error = %e, "NetworkPolicy enforcer: watch error");
        }
    })
    .boxed();
    (reader, events)
}

/// Keep `policy` and this node's table `table` in step with the cluster
/// until dropped (the table is deleted then). Without `nft` (or the right
/// to use it) only the userspace check is made.
pub async fn run(client: Client, node_name: String, table: String, policy: Arc<Policy>) {
    let (pods, a) = store::<Pod>(&client);
    let (namespaces, b) = store::<Namespace>(&client);
    let (policies, c) = store::<NetworkPolicy>(&client);
    let (nodes, d) = store::<Node>(&client);
    let mut events = futures::stream::select_all([a, b, c, d]);
    let _cleanup = TableGuard(table.clone());
    let mut applied = String::new();
    let mut kernel = true;
    while events.next().await.is_some() {
        tokio::time::sleep(DEBOUNCE).await;
        while let Some(Some(())) = futures::FutureExt::now_or_never(events.next()) {}
        let all_policies: Vec<NetworkPolicy> =
            policies.state().iter().map(|p| (**p).clone()).collect();
        // Without policies nobody is isolated: the pods need not be looked
        // at (a pod event on a large cluster then costs nothing here).
        let all_namespaces: Vec<Namespace> =
            namespaces.state().iter().map(|n| (**n).clone()).collect();
        let views: Vec<PodView> = if all_policies.is_empty() {
            Vec::new()
        } else {
            let labels: HashMap<&str, &BTreeMap<String, String>> = all_namespaces
                .iter()
                .filter_map(|n| Some((n.metadata.name.as_deref()?, n.metadata.labels.as_ref()?)))
                .collect();
            pods.state()
                .iter()
                .filter_map(|p| {
                    let mut view = PodView::of(p)?;
                    view.meshed = is_meshed(p, labels.get(view.namespace.as_str()).copied());
                    Some(view)
                })
                .collect()
        };
        let compiled = model::compile(&all_policies, &views, &all_namespaces);
        let local: Vec<(IpAddr, bool)> = views
            .iter()
            .filter(|p| p.node == node_name)
            .map(|p| (p.ip, p.meshed))
            .collect();
        let sources = node_sources(&nodes.state());
        let script = render::render(&table, &compiled, &local, &sources);
        policy.set(compiled, sources);
        if !kernel || script == applied {
            continue;
        }
        match crate::nftables::nft(&["-f", "-"], Some(&script)).await {
            Ok(_) => applied = script,
            Err(e) => {
                tracing::warn!(error = %e, "NetworkPolicies are not enforced in the kernel on this node (pod-to-pod traffic is not filtered)");
                kernel = false;
            }
        }
    }
}

/// Delete the enforcer's table (absent is fine).
pub async fn delete_table(table: &str) {
    let exists = crate::nftables::nft(&["list", "table", "inet", table], None)
        .await
        .is_ok();
    if exists {
        if let Err(e) = crate::nftables::nft(&["delete", "table", "inet", table], None).await {
            tracing::warn!(error = %e, table, "deleting the NetworkPolicy table failed");
        }
    }
}

/// Deletes the table when the enforcer stops.
struct TableGuard(String);

impl Drop for TableGuard {
    fn drop(&mut self) {
        crate::command::run_blocking(
            "nft",
            &["delete", "table", "inet", &self.0],
            "deleting the NetworkPolicy table",
        );
    }
}
