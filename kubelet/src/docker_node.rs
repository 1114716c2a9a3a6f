//! A real node: the kubelet with the Docker runtime, reporting the
//! machine's own capacity.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use crate::dns::{ClusterDns, HostResolvConf};
use crate::downward::NodeAllocatable;
use crate::node::NodeConfig;
use crate::pod_workers::{PodHost, PodSyncSettings};
use crate::runtime::docker::{DockerOptions, DockerRuntime};
use crate::runtime::RuntimeError;
use crate::Kubelet;

/// How a real node runs.
#[derive(Debug, Clone)]
pub struct DockerNodeOptions {
    /// The Node's name.
    pub name: String,
    /// Labels besides the well-known ones.
    pub labels: BTreeMap<String, String>,
    /// The node's pod CIDR: the subnet of its Docker network.
    pub pod_cidr: String,
    /// The node's InternalIP; default: the node's address on the pod
    /// network (reachable from the machine and from every pod).
    pub internal_ip: Option<IpAddr>,
    /// The Docker network of the pods; default `kedge-<node name>`.
    pub network: Option<String>,
    /// The pods' MTU; default: Docker's.
    pub pod_mtu: Option<u32>,
    /// Whether Docker masquerades the pods' traffic (off when the node's
    /// pod network does it).
    pub docker_masquerade: bool,
    /// The port of the kubelet's HTTPS endpoint.
    pub kubelet_port: u16,
    /// Where pod volumes live on the node.
    pub root_dir: PathBuf,
    /// How pod workers pace themselves.
    pub pod_sync: PodSyncSettings,
    /// The cluster DNS service IPs of `ClusterFirst` pods.
    pub cluster_dns: Vec<String>,
    /// The cluster domain.
    pub cluster_domain: String,
    /// The cluster CA (PEM): the kubelet endpoint accepts only clients
    /// with a certificate it signed (the API server).
    pub client_ca_pem: String,
}

/// Run a real node until the future is dropped: its kubelet endpoint
/// (logs, exec) and its agent.
pub async fn run(client: kube::Client, opts: &DockerNodeOptions) -> Result<(), RuntimeError> {
    let kubelet = kubelet(client, opts).await?;
    let addr = std::net::SocketAddr::from(([0, 0, 0, 0], opts.kubelet_port));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| RuntimeError::Failed(format!("binding the kubelet endpoint {addr}: {e}")))?;
    let ip = kubelet.internal_ip();
    let tls = crate::server::ServerTls::self_signed(&opts.name, &[ip], &opts.client_ca_pem)
        .map_err(|e| RuntimeError::Failed(format!("kubelet endpoint TLS: {e}")))?;
    tracing::info!(node = %opts.name, %addr, "kubelet endpoint serving");
    tokio::join!(
        crate::server::serve(listener, tls, kubelet.pod_workers().clone()),
        kubelet.run()
    );
    Ok(())
}

/// The machine's capacity: CPUs, memory, and Kubernetes' default of 110
/// pods.
pub fn host_capacity() -> BTreeMap<String, String> {
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .unwrap_or(0);
    BTreeMap::from([
        ("cpu".to_string(), cpus.to_string()),
        ("memory".to_string(), format!("{memory_kib}Ki")),
        ("pods".to_string(), "110".to_string()),
    ])
}

/// Connect to Docker and make the node's kubelet.
pub async fn kubelet(
    client: kube::Client,
    opts: &DockerNodeOptions,
) -> Result<Kubelet, RuntimeError> {
    let runtime = DockerRuntime::connect(DockerOptions {
        node_name: opts.name.clone(),
        pod_cidr: opts.pod_cidr.clone(),
        network: opts.network.clone(),
        mtu: opts.pod_mtu,
        docker_masquerade: opts.docker_masquerade,
    })
    .await?;
    let gateway = crate::runtime::docker::gateway(&opts.pod_cidr)
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| {
            RuntimeError::Failed(format!("pod CIDR {} is not an IPv4 subnet", opts.pod_cidr))
        })?;
    let mut config = NodeConfig::new(opts.name.clone(), opts.internal_ip.unwrap_or(gateway));
    config.labels = opts.labels.clone();
    // Local-path volumes provisioned for this node live under its root.
    config.annotations.insert(
        kedge_config::storage::LOCAL_PATH_DIR_ANNOTATION.into(),
        std::path::absolute(opts.root_dir.join("storage"))
            .unwrap_or_else(|_| opts.root_dir.join("storage"))
            .display()
            .to_string(),
    );
    config.capacity = host_capacity();
    config.pod_cidr = Some(opts.pod_cidr.clone());
    config.kubelet_port = i32::from(opts.kubelet_port);
    config.os_image = os_image();
    let runtime: Arc<dyn crate::runtime::Runtime> = runtime;
    let host = PodHost {
        root_dir: opts.root_dir.clone(),
        objects: Arc::new(crate::token_manager::TokenManager::new(Arc::new(
            client.clone(),
        ))),
        cluster_dns: ClusterDns {
            servers: opts.cluster_dns.clone(),
            domain: opts.cluster_domain.clone(),
        },
        host_resolv: host_resolv_conf().await,
        allocatable: NodeAllocatable::from_quantities(&config.capacity),
    };
    Ok(Kubelet::with_host(
        client,
        config,
        runtime,
        opts.pod_sync.clone(),
        Some(host),
    ))
}

/// The node's resolv.conf for `dnsPolicy: Default` pods: systemd-resolved's
/// upstream list when there is one, since a pod cannot reach its
/// 127.0.0.53 stub.
async fn host_resolv_conf() -> Option<HostResolvConf> {
    for path in ["/run/systemd/resolve/resolv.conf", "/etc/resolv.conf"] {
        if let Ok(conf) = HostResolvConf::read(std::path::Path::new(path)).await {
            return Some(conf);
        }
    }
    None
}

/// `PRETTY_NAME` of /etc/os-release.
fn os_image() -> String {
    std::fs::read_to_string("/etc/os-release")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("PRETTY_NAME="))
                .map(|v| v.trim_matches('"').to_string())
        })
        .unwrap_or_else(|| "Linux".to_string())
}

/// The pod CIDR the control plane allocates the node (kube-controller-
/// manager's node IPAM), registering the Node with its labels first if it
/// is not there (the kubelet fills in the rest when it starts). Waits
/// until the Node carries one.
pub async fn await_pod_cidr(
    client: &kube::Client,
    name: &str,
    labels: &[(String, String)],
) -> Result<String, kube::Error> {
    use k8s_openapi::api::core::v1::Node;
    let nodes: kube::Api<Node> = kube::Api::all(client.clone());
    let mut waited = 0u32;
    loop {
        match nodes.get_opt(name).await? {
            Some(node) => {
                let spec = node.spec.unwrap_or_default();
                if let Some(cidr) = spec
                    .pod_cidrs
                    .and_then(|c| c.into_iter().next())
                    .or(spec.pod_cidr)
                {
                    tracing::info!(node = %name, %cidr, "the node's pod CIDR");
                    return Ok(cidr);
                }
            }
            None => {
                let node = Node {
                    metadata: kube::api::ObjectMeta {
                        name: Some(name.to_string()),
                        labels: Some(labels.iter().cloned().collect()),
                        ..Default::default()
                    },
                    ..Default::default()
                };
                match nodes.create(&Default::default(), &node).await {
                    Ok(_) => tracing::info!(node = %name, "registered the node"),
                    Err(kube::Error::Api(e)) if e.code == 409 => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
        }
        waited += 1;
        if waited.is_multiple_of(30) {
            tracing::warn!(node = %name, seconds = waited / 2, "still no pod CIDR for the node: does the control plane allocate node CIDRs (--allocate-node-cidrs)?");
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}
