//! Hollow nodes: node agents whose containers "run" in the fake runtime
//! ([`crate::runtime::fake`], whose annotations steer readiness and exits),
//! many of them in one process against one API server, as Kubernetes'
//! kubemark does for scale tests.
//!
//! Hollow node `i` is named `<prefix><i>`, has InternalIP `127.0.0.(10+i)`
//! (a loopback address, where it serves its kubelet endpoint on a port the
//! kernel picks, given the cluster CA: the API server scrapes its
//! synthetic resource use there) and podCIDR
//! `10.244.<i>.0/24` (past 255 nodes the second octet grows: 10.245.0.0/24
//! is node 256). All of them share one API client and one pod watch; each
//! costs a few tasks, never a thread.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use crate::node::NodeConfig;
use crate::pod_workers::PodSyncSettings;
use crate::runtime::fake::{FakeRuntime, FakeRuntimeOptions};
use crate::{source, Kubelet};

/// Options of a group of hollow nodes.
#[derive(Debug, Clone)]
pub struct HollowOptions {
    /// How many nodes to run.
    pub count: usize,
    /// Node names are `<prefix><index>`.
    pub name_prefix: String,
    /// Labels every node gets.
    pub labels: Vec<(String, String)>,
    /// The index of the first node (so several processes can run disjoint
    /// groups).
    pub first_index: usize,
    /// Capacity (and allocatable) CPU.
    pub cpu: String,
    /// Capacity (and allocatable) memory.
    pub memory: String,
    /// Capacity (and allocatable) pods.
    pub pods: String,
    /// How often each node posts its status.
    pub status_update_interval: Duration,
    /// How often each node renews its Lease.
    pub lease_renew_interval: Duration,
    /// How pod workers pace themselves (resync, restart back-off).
    pub pod_sync: PodSyncSettings,
    /// Time between starting a container and it running.
    pub container_start_delay: Duration,
    /// The cluster CA (PEM): with it each node serves its kubelet
    /// endpoint to clients it signed (the API server).
    pub client_ca_pem: Option<String>,
}

impl Default for HollowOptions {
    fn default() -> Self {
        Self {
            count: 1,
            name_prefix: "hollow-".to_string(),
            labels: Vec::new(),
            first_index: 0,
            cpu: "4".to_string(),
            memory: "16Gi".to_string(),
            pods: "110".to_string(),
            status_update_interval: Duration::from_secs(10),
            lease_renew_interval: Duration::from_secs(10),
            pod_sync: PodSyncSettings::default(),
            container_start_delay: Duration::ZERO,
            client_ca_pem: None,
        }
    }
}

/// The InternalIP of hollow node `index`: 127.0.0.10 onwards.
pub fn internal_ip(index: usize) -> Ipv4Addr {
    let base = u32::from(Ipv4Addr::new(127, 0, 0, 10));
    Ipv4Addr::from(base.wrapping_add(index as u32))
}

/// The podCIDR of hollow node `index` (a /24 from 10.244.0.0 on), if the
/// 10.0.0.0/8 space still has one.
pub fn pod_cidr(index: usize) -> Option<(Ipv4Addr, u8)> {
    let second = 244 + index / 256;
    let second = u8::try_from(second).ok()?;
    Some((Ipv4Addr::new(10, second, (index % 256) as u8, 0), 24))
}

/// The agent of hollow node `index`, built from `opts`, its endpoint on
/// `kubelet_port` when it serves one.
pub fn kubelet(
    client: kube::Client,
    opts: &HollowOptions,
    index: usize,
    kubelet_port: Option<u16>,
) -> Kubelet {
    let name = format!("{}{index}", opts.name_prefix);
    let cidr = pod_cidr(index);
    let mut config = NodeConfig::new(name, IpAddr::V4(internal_ip(index)));
    config.labels = opts.labels.iter().cloned().collect::<BTreeMap<_, _>>();
    config.capacity = [
        ("cpu", &opts.cpu),
        ("memory", &opts.memory),
        ("pods", &opts.pods),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.clone()))
    .collect();
    config.pod_cidr = cidr.map(|(net, len)| format!("{net}/{len}"));
    config.status_update_interval = opts.status_update_interval;
    config.lease_renew_interval = opts.lease_renew_interval;
    config.os_image = "kedge hollow node".to_string();
    if let Some(port) = kubelet_port {
        config.kubelet_port = i32::from(port);
    }
    let runtime = FakeRuntime::new(FakeRuntimeOptions {
        start_delay: opts.container_start_delay,
        pod_cidr: cidr,
    });
    Kubelet::new(client, config, runtime, opts.pod_sync.clone())
}

/// The kubelet endpoint of hollow node `index`: a listener on its
/// loopback address and a certificate for it.
async fn endpoint(
    opts: &HollowOptions,
    index: usize,
) -> Option<(tokio::net::TcpListener, crate::server::ServerTls)> {
    let ca = opts.client_ca_pem.as_ref()?;
    let ip = internal_ip(index);
    let name = format!("{}{index}", opts.name_prefix);
    let served = async {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .map_err(|e| e.to_string())?;
        let tls = crate::server::ServerTls::self_signed(&name, &[IpAddr::V4(ip)], ca)
            .map_err(|e| e.to_string())?;
        Ok::<_, String>((listener, tls))
    };
    match served.await {
        Ok(found) => Some(found),
        Err(e) => {
            tracing::warn!(node = %name, error = %e, "the hollow node serves no kubelet endpoint");
            None
        }
    }
}

/// Run the hollow nodes until the future is dropped.
pub async fn run(client: kube::Client, opts: HollowOptions) {
    let mut kubelets = Vec::new();
    let mut endpoints = Vec::new();
    for i in opts.first_index..opts.first_index + opts.count {
        let served = endpoint(&opts, i).await;
        let port = served
            .as_ref()
            .and_then(|(l, _)| l.local_addr().ok())
            .map(|a| a.port());
        let k = kubelet(client.clone(), &opts, i, port);
        if let Some((listener, tls)) = served {
            endpoints.push(crate::server::serve(listener, tls, k.pod_workers().clone()));
        }
        kubelets.push(k);
    }
    let nodes: source::NodeSet = kubelets
        .iter()
        .map(|k| (k.name().to_string(), k.pod_workers().clone()))
        .collect::<HashMap<_, _>>();
    tracing::info!(count = kubelets.len(), prefix = %opts.name_prefix, "starting hollow nodes");
    tokio::join!(
        join_all(kubelets.iter().map(Kubelet::run_node)),
        join_all(endpoints),
        source::watch_pods(client, Arc::new(nodes)),
    );
}
