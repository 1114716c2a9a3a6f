//! The `kedge` binary: one command per role, wiring the crates together.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use kedge_config::cluster::{parse_ipv4_cidr, parse_port_range, ClusterConfig};
use kedge_control::controllers::nodeipam::cidrset::{self, CidrSet};
use kedge_control::server::{self, ServerOptions};

mod controlplane;
mod demo;
mod drain;
mod join;
mod lb;
mod mesh_top;

use drain::shutdown_signal;

/// mimalloc: the proxies allocate per request, and glibc's malloc was a
/// tenth of the ingress proxy's profile (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Kubernetes-compatible edge platform.
#[derive(Parser)]
#[command(name = "kedge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a single-machine cluster: the control plane and one node whose pods run in Docker.
    Up(Box<UpArgs>),
    /// The first machine of a cluster: the control plane and, as `up`, a
    /// node; prints the command other machines join with.
    Init(Box<UpArgs>),
    /// Join this machine to a cluster as a node (kubeadm's flow: the
    /// token's signature and the CA hash are checked before anything is
    /// trusted, then the node's certificate is asked for).
    Join(Box<JoinArgs>),
    /// Bootstrap tokens for joining machines.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Run the control plane (API server, scheduler, controllers).
    Server(Box<ServerArgs>),
    /// Run node agents against an API server.
    Agent(Box<AgentArgs>),
    /// Run the service proxy alone against any cluster.
    Proxy(ProxyArgs),
    /// Run the cluster DNS alone against any cluster.
    Dns(DnsArgs),
    /// Run the ingress controller against any cluster (in a pod: the
    /// in-cluster configuration).
    Ingress(IngressArgs),
    /// The service mesh of the node proxies.
    #[command(subcommand)]
    Mesh(MeshCommand),
    /// Kubeconfig files for users (kubeadm's `kubeconfig user`).
    #[command(subcommand)]
    Kubeconfig(KubeconfigCommand),
    /// Serve the walkthrough's demo web app (the entrypoint of the
    /// `kedge/echo` images `up` imports): every request answered with JSON
    /// naming the pod, the image version and the request.
    DemoServer(DemoServerArgs),
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Make a token and print it (or the whole join command).
    Create(TokenCreateArgs),
    /// List the tokens.
    List(TokenClientArgs),
    /// Delete a token (by id or whole token).
    Delete(TokenDeleteArgs),
}

#[derive(Args, Clone)]
struct TokenClientArgs {
    /// Kubeconfig of an admin (default: $KUBECONFIG, else ~/.kedge/kubeconfig).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct TokenCreateArgs {
    #[command(flatten)]
    client: TokenClientArgs,
    /// How long the token is valid (`24h`, `30m`, `90s`; `0`: forever).
    #[arg(long, default_value = "24h", value_parser = parse_ttl)]
    ttl: TokenTtl,
    /// Print the whole `kedge join` command.
    #[arg(long)]
    print_join_command: bool,
    /// A description kept with the token.
    #[arg(long, default_value = "")]
    description: String,
}

#[derive(Subcommand)]
enum MeshCommand {
    /// Requests, success rate and latency per workload and Service, and
    /// TCP connections and bytes per workload pair, from node proxies'
    /// metrics.
    Top(mesh_top::MeshTopArgs),
}

#[derive(Args, Clone)]
struct TokenDeleteArgs {
    #[command(flatten)]
    client: TokenClientArgs,
    /// The token or its id.
    token: String,
}

/// A token's lifetime; `None` never expires.
#[derive(Clone, Copy)]
struct TokenTtl(Option<Duration>);

/// A mesh certificate lifetime: `24h`, `30m`, `600s`, at least 10 minutes.
fn parse_certificate_lifetime(s: &str) -> Result<Duration, String> {
    match parse_ttl(s)? {
        TokenTtl(Some(d)) if d >= Duration::from_secs(600) => Ok(d),
        _ => Err(format!(
            "{s:?}: a certificate lasts at least 10m (the Certificates API's shortest)"
        )),
    }
}

/// `24h`, `30m`, `90s` or `0`.
fn parse_ttl(s: &str) -> Result<TokenTtl, String> {
    if s == "0" {
        return Ok(TokenTtl(None));
    }
    let (n, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 24h"))?;
    let secs = match unit {
        "h" => n * 3600,
        "m" => n * 60,
        "s" => n,
        _ => return Err(format!("{s:?} is not a duration like 24h")),
    };
    Ok(TokenTtl(Some(Duration::from_secs(secs))))
}

#[derive(Args, Clone)]
struct JoinArgs {
    /// The API server, `host:port`.
    address: String,
    /// The bootstrap token, `<id>.<secret>`.
    #[arg(long)]
    token: String,
    /// The hash of the cluster CA's public key, `sha256:<hex>`.
    #[arg(long)]
    discovery_token_ca_cert_hash: String,
    /// Where the node keeps its credentials (default: /var/lib/kedge).
    #[arg(long, env = "KEDGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The cluster's pod range: what pods send outside it is masqueraded
    /// (default: as the control plane publishes it).
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// Every API server of the control plane, `host:port` comma-separated
    /// (the node then reaches them through a local load balancer).
    #[arg(long, value_delimiter = ',')]
    api_servers: Vec<SocketAddr>,
    #[command(flatten)]
    node: NodeArgs,
    /// Labels of the node, `key=value`, repeatable.
    #[arg(long = "node-label")]
    labels: Vec<String>,
    #[command(flatten)]
    services: ServiceNetworkArgs,
    /// Run no service proxy and cluster DNS on the node.
    #[arg(long)]
    no_service_network: bool,
    /// Join as another control plane (an API server, scheduler and
    /// controller manager, and a node), with the certificates the first
    /// one uploaded (`kedge init --upload-certs`).
    #[arg(long, requires = "certificate_key")]
    control_plane: bool,
    /// The key that opens the uploaded certificates, printed by
    /// `kedge init --upload-certs`.
    #[arg(long)]
    certificate_key: Option<String>,
    /// With `--control-plane`: more DNS names and IP addresses this API
    /// server's certificate covers, comma-separated.
    #[arg(long, value_delimiter = ',', requires = "control_plane")]
    apiserver_cert_extra_sans: Vec<String>,
    #[command(flatten)]
    etcd: EtcdArgs,
    /// How long the node's service proxy may take to finish the
    /// connections it carries after SIGTERM or SIGINT, in seconds; a
    /// second signal exits at once.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    shutdown_grace_period: Duration,
}

/// What a command line of `up` would hold with no flag: the defaults a
/// joining control plane starts from.
#[derive(Parser)]
struct UpDefaults {
    #[command(flatten)]
    up: UpArgs,
}

#[derive(Subcommand)]
enum KubeconfigCommand {
    /// Print a kubeconfig for a user with a client certificate signed by
    /// the cluster CA (run where the control plane's data dir is).
    User(KubeconfigUserArgs),
}

#[derive(Args, Clone)]
struct KubeconfigUserArgs {
    /// The user name (the certificate's CN).
    #[arg(long)]
    client_name: String,
    /// A group of the user (the certificate's O), repeatable.
    #[arg(long = "org")]
    orgs: Vec<String>,
    /// The control plane's data dir (default: ~/.kedge).
    #[arg(long, env = "KEDGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The API server's URL (default: the admin kubeconfig's).
    #[arg(long)]
    server: Option<String>,
}

#[derive(Args, Clone)]
struct DemoServerArgs {
    /// Where to listen.
    #[arg(long, env = "PORT", default_value = "8002", value_parser = parse_listen)]
    listen: SocketAddr,
}

/// `ip:port`, or a bare port on every address.
fn parse_listen(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
    }
    s.parse().map_err(|e| format!("{s:?}: {e}"))
}

#[derive(Args, Clone)]
struct IngressArgs {
    /// Kubeconfig of the API server (default: $KUBECONFIG, ~/.kube/config
    /// or the pod's service account).
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Address the listeners bind.
    #[arg(long, default_value = "0.0.0.0")]
    listen_address: std::net::IpAddr,
    /// Plain HTTP port.
    #[arg(long, default_value_t = 80)]
    http_port: u16,
    /// HTTPS port.
    #[arg(long, default_value_t = 443)]
    https_port: u16,
    /// The IngressClass controller value served.
    #[arg(long, default_value = kedge_ingress::CONTROLLER_NAME)]
    controller_class: String,
    /// Also serve Ingresses of this class name whatever its IngressClass
    /// says (e.g. `nginx`), repeatable.
    #[arg(long = "also-class")]
    also_classes: Vec<String>,
    /// Serve Ingresses without a class even when no IngressClass is the default.
    #[arg(long)]
    watch_ingress_without_class: bool,
    /// Addresses written to served Ingresses' status, repeatable.
    #[arg(
        long = "status-address",
        env = "KEDGE_STATUS_ADDRESS",
        value_delimiter = ','
    )]
    status_addresses: Vec<std::net::IpAddr>,
    /// The node this runs on, for events.
    #[arg(long, env = "NODE_NAME")]
    node_name: Option<String>,
    /// Proxy worker threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Do not log one line per request.
    #[arg(long)]
    no_access_log: bool,
    /// The mesh's trust domain (the cluster domain): requests to meshed
    /// pods leave in mutual TLS as the controller's ServiceAccount, named
    /// by `--mesh-service-account`.
    #[arg(long, default_value = "cluster.local")]
    mesh_trust_domain: String,
    /// The controller's own ServiceAccount, `namespace/name`, its identity
    /// in the mesh (the DaemonSet gives its own); without it the ingress
    /// stays out of the mesh.
    #[arg(long, env = "KEDGE_MESH_SERVICE_ACCOUNT")]
    mesh_service_account: Option<String>,
    /// Where Prometheus metrics are served.
    #[arg(long, default_value = "127.0.0.1:10254")]
    metrics_addr: std::net::SocketAddr,
    /// How long open requests may take to finish after SIGTERM or SIGINT,
    /// in seconds; a second signal exits at once.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    shutdown_grace_period: Duration,
}

#[derive(Args, Clone)]
struct ProxyArgs {
    /// Kubeconfig of the API server.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// This node's name (for externalTrafficPolicy: Local).
    #[arg(long)]
    node_name: Option<String>,
    /// The node addresses NodePorts are served on, repeatable.
    #[arg(long = "node-address", required = true)]
    node_addresses: Vec<std::net::IpAddr>,
    /// The interface that holds the Service ClusterIPs.
    #[arg(long, default_value = kedge_proxy::DEFAULT_HOLDER_INTERFACE)]
    proxy_interface: String,
    #[command(flatten)]
    mode: ProxyModeArgs,
    /// Where Prometheus metrics are served.
    #[arg(long, default_value = "127.0.0.1:10249")]
    metrics_addr: std::net::SocketAddr,
    /// How long open connections may take to finish after SIGTERM or SIGINT,
    /// in seconds; a second signal exits at once.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    shutdown_grace_period: Duration,
}

/// The service proxy's data plane.
#[derive(Args, Clone)]
struct ProxyModeArgs {
    /// `userspace` (listeners in this process, reached through an nftables
    /// redirect when `nft` is there) or `nftables` (DNAT in the kernel;
    /// needs root and the `nft` tool).
    #[arg(long, default_value_t = kedge_proxy::ProxyMode::Userspace)]
    proxy_mode: kedge_proxy::ProxyMode,
    /// The proxy's nftables table (family ip): the kernel mode's, or the
    /// userspace mode's redirects; the proxy replaces it and deletes it on
    /// exit.
    #[arg(long, default_value = kedge_proxy::nftables::DEFAULT_TABLE)]
    proxy_nftables_table: String,
}

#[derive(Args, Clone)]
struct DnsArgs {
    /// Kubeconfig of the API server.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Addresses to answer on, repeatable.
    #[arg(long = "listen", default_value = "10.96.0.10:53")]
    listen: Vec<std::net::SocketAddr>,
    /// The cluster domain.
    #[arg(long, default_value = "cluster.local")]
    cluster_domain: String,
    /// Resolvers other names go to, repeatable (default: /etc/resolv.conf's).
    #[arg(long = "dns-upstream")]
    dns_upstreams: Vec<std::net::SocketAddr>,
    /// Where Prometheus metrics are served.
    #[arg(long, default_value = "127.0.0.1:9153")]
    metrics_addr: std::net::SocketAddr,
}

#[derive(Args, Clone)]
struct AgentArgs {
    /// Kubeconfig of the API server to join.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: PathBuf,
    /// Run hollow nodes (a fake container runtime) instead of a real one.
    #[arg(long)]
    hollow: bool,
    #[command(flatten)]
    node: NodeArgs,
    /// How many hollow nodes to run.
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Node names are this prefix plus an index.
    #[arg(long, default_value = "hollow-")]
    name_prefix: String,
    /// The first node index (it also picks the nodes' addresses and pod
    /// CIDRs, so agents sharing a cluster need distinct ranges).
    #[arg(long, default_value_t = 0)]
    first_index: usize,
    /// Labels of the nodes, `key=value`, repeatable.
    #[arg(long = "node-label")]
    labels: Vec<String>,
    /// How often each hollow node renews its Lease (its heartbeat), in
    /// seconds; fractions allowed.
    #[arg(long, value_parser = parse_seconds)]
    heartbeat_interval: Option<Duration>,
    /// The real node's service proxy and cluster DNS (not run for hollow
    /// nodes).
    #[command(flatten)]
    services: ServiceNetworkArgs,
    /// Run no service proxy and cluster DNS on the real node (something
    /// else serves its ClusterIPs, NodePorts and DNS address).
    #[arg(long)]
    no_service_network: bool,
    /// The service proxy's own kubeconfig (default: the agent's).
    #[arg(long)]
    proxy_kubeconfig: Option<PathBuf>,
    /// The cluster DNS's own kubeconfig (default: the agent's).
    #[arg(long)]
    dns_kubeconfig: Option<PathBuf>,
    /// The cluster's pod range: what pods send outside it is masqueraded
    /// (default: as the control plane publishes it in `kubeadm-config`,
    /// else 10.244.0.0/16).
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// Every API server of the control plane, `host:port` comma-separated:
    /// the node reaches them through a local load balancer and keeps
    /// working when one is lost.
    #[arg(long, value_delimiter = ',')]
    api_servers: Vec<SocketAddr>,
    /// How long the node's service proxy may take to finish the
    /// connections it carries after SIGTERM or SIGINT, in seconds; a
    /// second signal exits at once.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    shutdown_grace_period: Duration,
}

/// The real node of `agent` and `up`.
#[derive(Args, Clone)]
struct NodeArgs {
    /// The node's name (default: the machine's hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// The node's pod CIDR, the subnet of its Docker network (default: for
    /// `up`, the first subnet of the cluster CIDR; for a joining node, the
    /// one the control plane allocates it).
    #[arg(long)]
    pod_cidr: Option<String>,
    /// The node's InternalIP (default: its address on the pod network).
    #[arg(long)]
    node_ip: Option<std::net::IpAddr>,
    /// The Docker network of the pods (default: kedge-<node name>).
    #[arg(long)]
    pod_network: Option<String>,
    /// Port of the kubelet's HTTPS endpoint (logs, exec).
    #[arg(long, default_value_t = 10250)]
    kubelet_port: u16,
    /// Where pod volumes live (default: <data dir>/kubelet, or
    /// /var/lib/kedge/kubelet for `agent`).
    #[arg(long)]
    root_dir: Option<PathBuf>,
    /// The cluster DNS IP of pods (default: for `up`, the 10th address of
    /// the Service range; for `agent`, the `kube-dns` Service's address,
    /// else 10.96.0.10).
    #[arg(long)]
    cluster_dns: Option<String>,
    /// The cluster domain of pods' search paths.
    #[arg(long, default_value = "cluster.local")]
    node_cluster_domain: String,
    /// How pod traffic reaches pods on other machines: `vxlan` (a tunnel
    /// between the nodes' addresses), `host-gw` (routes, for machines on
    /// one link) or `none`. Other machines reach this node at its
    /// `--node-ip`.
    #[arg(long, default_value = "vxlan", value_parser = ["vxlan", "host-gw", "none"])]
    pod_network_backend: String,
    /// The VXLAN network identifier of the pod network.
    #[arg(long, default_value_t = 1)]
    vxlan_vni: u32,
    /// The UDP port of the pod network's VXLAN tunnel.
    #[arg(long, default_value_t = 8472)]
    vxlan_port: u16,
}

impl NodeArgs {
    /// The node's pod network across machines, once its pod CIDR is known.
    fn pod_network(
        &self,
        name: &str,
        cluster_cidr: &str,
    ) -> anyhow::Result<Option<kedge_proxy::podnet::PodNetworkConfig>> {
        use kedge_proxy::podnet::{parse_cidr, Backend, PodNetworkConfig};
        let backend = match self.pod_network_backend.as_str() {
            "vxlan" => Backend::Vxlan {
                vni: self.vxlan_vni,
                port: self.vxlan_port,
            },
            "host-gw" => Backend::HostGw,
            _ => return Ok(None),
        };
        let pod_cidr = self
            .pod_cidr
            .as_deref()
            .context("the node has no pod CIDR")?;
        let public_ip = match up_node_address(self)? {
            std::net::IpAddr::V4(ip) => ip,
            std::net::IpAddr::V6(_) => anyhow::bail!("the pod network needs an IPv4 --node-ip"),
        };
        Ok(Some(PodNetworkConfig {
            node_name: name.to_string(),
            public_ip,
            pod_cidr: parse_cidr(pod_cidr)
                .with_context(|| format!("pod CIDR {pod_cidr:?} is not an IPv4 subnet"))?,
            cluster_cidr: parse_cidr(cluster_cidr)
                .with_context(|| format!("cluster CIDR {cluster_cidr:?} is not an IPv4 subnet"))?,
            backend,
        }))
    }
}

/// The pods' MTU on a node whose pod network crosses machines from its
/// `--node-ip`: that link's, less the tunnel's overhead.
async fn pod_mtu(
    node: &NodeArgs,
    podnet: Option<&kedge_proxy::podnet::PodNetworkConfig>,
) -> anyhow::Result<Option<u32>> {
    let (Some(std::net::IpAddr::V4(ip)), Some(podnet)) = (node.node_ip, podnet) else {
        return Ok(None);
    };
    let link = kedge_proxy::podnet::underlay_mtu(ip)
        .await
        .context("reading the MTU of the node's link")?;
    Ok(Some(link - podnet.backend.overhead()))
}

/// The node's pod network until dropped (never returns without one).
async fn run_pod_network(
    client: kube::Client,
    podnet: Option<kedge_proxy::podnet::PodNetworkConfig>,
) -> anyhow::Result<()> {
    match podnet {
        Some(cfg) => kedge_proxy::podnet::run(client, cfg)
            .await
            .context("pod network"),
        None => std::future::pending().await,
    }
}

#[derive(Args, Clone)]
struct UpArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(flatten)]
    node: NodeArgs,
    /// Labels of the node, `key=value`, repeatable.
    #[arg(long = "node-label")]
    labels: Vec<String>,
    #[command(flatten)]
    services: ServiceNetworkArgs,
    #[command(flatten)]
    ingress: IngressDeployArgs,
    /// Do not import the walkthrough's demo images (`kedge/echo:v1`, `:v2`).
    #[arg(long)]
    no_demo_images: bool,
    /// Upload the files other control planes need (CA, ServiceAccount
    /// key, encryption configuration), sealed, for two hours, and print
    /// the command that joins another control-plane machine.
    #[arg(long)]
    upload_certs: bool,
}

/// The ingress controller `up` deploys as a DaemonSet.
#[derive(Args, Clone)]
struct IngressDeployArgs {
    /// Do not deploy the ingress controller.
    #[arg(long)]
    no_ingress: bool,
    /// The HTTP port the ingress controller binds on labelled nodes.
    #[arg(long, default_value_t = 80)]
    ingress_http_port: u16,
    /// The HTTPS port the ingress controller binds on labelled nodes.
    #[arg(long, default_value_t = 443)]
    ingress_https_port: u16,
    /// Where the ingress controller serves metrics on its node (127.0.0.1).
    #[arg(long, default_value_t = 10254)]
    ingress_metrics_port: u16,
}

/// The service proxy and cluster DNS of a node.
#[derive(Args, Clone)]
struct ServiceNetworkArgs {
    /// The interface that holds the Service ClusterIPs on the node (a
    /// bridge the proxy makes and removes).
    #[arg(long, default_value = kedge_proxy::DEFAULT_HOLDER_INTERFACE)]
    proxy_interface: String,
    #[command(flatten)]
    proxy_mode: ProxyModeArgs,
    /// Resolvers the cluster DNS forwards other names to, `ip:port`,
    /// repeatable (default: the nameservers of /etc/resolv.conf).
    #[arg(long = "dns-upstream")]
    dns_upstreams: Vec<std::net::SocketAddr>,
    /// Where the service proxy and cluster DNS serve their Prometheus
    /// metrics (plain HTTP, `/metrics`), as kube-proxy does on 10249.
    #[arg(long, default_value = "127.0.0.1:10249")]
    metrics_addr: std::net::SocketAddr,
    /// How long the mesh's workload certificates last (`24h`, `30m`; at
    /// least 10m, the Certificates API's shortest); each is renewed half
    /// way (Istio's `--workload-cert-ttl`).
    #[arg(long, default_value = "24h", value_parser = parse_certificate_lifetime)]
    mesh_certificate_lifetime: Duration,
}

#[derive(Args, Clone)]
struct ServerArgs {
    /// Cluster configuration file (YAML); flags override it.
    #[arg(long, env = "KEDGE_CONFIG")]
    config: Option<PathBuf>,
    /// Directory for the store, credentials and kubeconfig.
    #[arg(long, env = "KEDGE_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Address the API server listens on.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Address pods reach the API server on: the endpoint of the
    /// `kubernetes` Service, listened on as well (default for `up`: the
    /// node's address on its pod network).
    #[arg(long)]
    advertise_address: Option<std::net::IpAddr>,
    /// The shared address of the cluster's control planes, `host[:port]`
    /// (a load balancer, a virtual IP or a DNS name in front of them, as
    /// kubeadm's flag): what joining machines and `cluster-info` use, and a
    /// name the API server's certificate covers. Control planes that join
    /// take it from the cluster.
    #[arg(long)]
    control_plane_endpoint: Option<kedge_control::server::Endpoint>,
    /// More DNS names and IP addresses the API server's certificate
    /// covers, comma-separated (kubeadm's `--apiserver-cert-extra-sans`).
    #[arg(long, value_delimiter = ',')]
    apiserver_cert_extra_sans: Vec<String>,
    /// Service ClusterIP range.
    #[arg(long)]
    service_cidr: Option<String>,
    /// The pods' address range, cut into one subnet per node
    /// (kube-controller-manager's flag; default: the config's podCIDR,
    /// 10.244.0.0/16).
    #[arg(long)]
    cluster_cidr: Option<String>,
    /// Give every node that registers without a pod CIDR a subnet of the
    /// cluster CIDR (`--allocate-node-cidrs=false` to leave it to others).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    allocate_node_cidrs: bool,
    /// The prefix length of each node's subnet.
    #[arg(long, default_value_t = 24)]
    node_cidr_mask_size: u8,
    /// NodePort range, e.g. 30000-32767.
    #[arg(long)]
    node_port_range: Option<String>,
    /// Cluster DNS domain.
    #[arg(long)]
    cluster_domain: Option<String>,
    /// Past events kept, per resource, for watches to resume from.
    #[arg(long, default_value_t = 10_000)]
    watch_history: usize,
    /// How long the certificates the cluster's signer issues are valid at
    /// most (kube-controller-manager's flag; `8760h`, `30m`, `90s`).
    #[arg(long, default_value = "8760h", value_parser = parse_ttl)]
    cluster_signing_duration: TokenTtl,
    /// Static bearer tokens, CSV lines `token,user,uid,"group1,group2"`
    /// (kube-apiserver's flag); none are accepted without it.
    #[arg(long)]
    token_auth_file: Option<PathBuf>,
    /// How Secrets are encrypted in the store (an EncryptionConfiguration,
    /// kube-apiserver's flag; default: a secretbox key made in the data
    /// dir, `encryption-config.yaml`).
    #[arg(long)]
    encryption_provider_config: Option<PathBuf>,
    #[command(flatten)]
    etcd: EtcdArgs,
    /// How long requests in flight may take to finish after SIGTERM or
    /// SIGINT, in seconds (watches end at once, and clients resume them);
    /// a second signal exits at once.
    #[arg(long, default_value = "30", value_parser = parse_seconds)]
    shutdown_grace_period: Duration,
}

/// etcd as the store (kube-apiserver's flags).
#[derive(Args, Clone)]
struct EtcdArgs {
    /// etcd's client URLs, comma-separated: the store of a control plane
    /// on several machines (default: the embedded store in the data dir).
    #[arg(long, value_delimiter = ',')]
    etcd_servers: Vec<String>,
    /// The CA that signed etcd's serving certificates.
    #[arg(long)]
    etcd_cafile: Option<PathBuf>,
    /// The client certificate the API server shows etcd.
    #[arg(long)]
    etcd_certfile: Option<PathBuf>,
    /// The key of `--etcd-certfile`.
    #[arg(long)]
    etcd_keyfile: Option<PathBuf>,
    /// The prefix of every key kedge keeps in etcd.
    #[arg(long, default_value = kedge_control::store::etcd::DEFAULT_PREFIX)]
    etcd_prefix: String,
}

impl EtcdArgs {
    fn config(&self) -> Option<kedge_control::store::EtcdConfig> {
        (!self.etcd_servers.is_empty()).then(|| kedge_control::store::EtcdConfig {
            endpoints: self.etcd_servers.clone(),
            ca_file: self.etcd_cafile.clone(),
            cert_file: self.etcd_certfile.clone(),
            key_file: self.etcd_keyfile.clone(),
            prefix: self.etcd_prefix.clone(),
        })
    }
}

impl ServerArgs {
    /// The node subnets of the cluster CIDR, as the node IPAM controller
    /// hands them out.
    fn node_cidrs(&self, cfg: &ClusterConfig) -> anyhow::Result<CidrSet> {
        CidrSet::new(cfg.pod_cidr_net(), self.node_cidr_mask_size).map_err(anyhow::Error::msg)
    }

    fn cluster_config(&self) -> anyhow::Result<ClusterConfig> {
        let mut cfg = match &self.config {
            Some(p) => {
                ClusterConfig::from_file(p).with_context(|| format!("reading {}", p.display()))?
            }
            None => ClusterConfig::default(),
        };
        if let Some(d) = &self.data_dir {
            cfg.data_dir = d.clone();
        } else if self.config.is_none() {
            let home = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("."));
            cfg.data_dir = home.join(".kedge");
        }
        if let Some(l) = self.listen {
            cfg.listen = l;
        }
        if let Some(c) = &self.service_cidr {
            cfg.service_cidr = c.clone();
        }
        if let Some(c) = &self.cluster_cidr {
            cfg.pod_cidr = c.clone();
        }
        if let Some(r) = &self.node_port_range {
            cfg.node_port_range = parse_port_range(r).map_err(anyhow::Error::msg)?;
        }
        if let Some(d) = &self.cluster_domain {
            cfg.cluster_domain = d.clone();
        }
        cfg.validate()?;
        Ok(cfg)
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new("info,hickory_server=warn,hickory_proto=warn")
            }),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Up(args) | Command::Init(args) => run_up(*args).await,
            Command::Join(args) => run_join(*args).await,
            Command::Token(command) => run_token(command).await,
            Command::Server(args) => run_server(*args, None).await,
            Command::Agent(args) => run_agent(*args).await,
            Command::Proxy(args) => run_proxy(args).await,
            Command::Dns(args) => run_dns(args).await,
            Command::Ingress(args) => run_ingress(args).await,
            Command::DemoServer(args) => demo::serve(args.listen).await,
            Command::Kubeconfig(KubeconfigCommand::User(args)) => kubeconfig_user(args),
            Command::Mesh(MeshCommand::Top(args)) => mesh_top::run(args),
        }
    });
    // Every part has stopped and cleaned up (holder interface, nftables
    // table) inside `block_on`. Dropping the runtime now would wake tasks
    // parked on timers into a time driver that is shutting down, where
    // tokio panics; leave at once instead.
    if let Err(e) = &result {
        eprintln!("Error: {e:?}");
    }
    std::process::exit(i32::from(result.is_err()))
}

async fn run_up(args: UpArgs) -> anyhow::Result<()> {
    run_up_as(args, true).await
}

/// `up` (and `init`) as the cluster's first control plane, or as one that
/// joins it (whose node gets its pod CIDR as any joining node does).
async fn run_up_as(mut args: UpArgs, first: bool) -> anyhow::Result<()> {
    let labels = parse_labels(&args.labels)?;
    // The first control plane's node takes the first subnet of the cluster
    // CIDR (10.244.0.0/24), as a kubeadm cluster's first node does.
    if first && args.node.pod_cidr.is_none() {
        let cfg = args.server.cluster_config()?;
        let first = args
            .server
            .node_cidrs(&cfg)?
            .allocate()
            .context("the cluster CIDR has no node subnet")?;
        args.node.pod_cidr = Some(cidrset::format(first));
    }
    if !args.no_demo_images {
        tokio::spawn(async {
            if let Err(e) = demo::import_images().await {
                tracing::error!("importing the demo images: {e:#}");
            }
        });
    }
    let node = UpNode {
        node: args.node,
        labels,
        services: args.services,
        ingress: args.ingress,
        upload_certs: args.upload_certs,
        joined: !first,
    };
    run_server(args.server, Some(node)).await
}

/// The API clients of a node's components.
struct NodeClients {
    kubelet: kube::Client,
    proxy: kube::Client,
    dns: kube::Client,
}

impl NodeClients {
    /// From the kubeconfigs in `dir` (`kubelet.conf`, `proxy.conf`,
    /// `dns.conf`).
    async fn read(dir: &std::path::Path) -> anyhow::Result<Self> {
        let client = |file: &str| {
            let path = dir.join(file);
            async move {
                server::client_from_kubeconfig(&path)
                    .await
                    .with_context(|| format!("reading {}", path.display()))
            }
        };
        Ok(Self {
            kubelet: client("kubelet.conf").await?,
            proxy: client("proxy.conf").await?,
            dns: client("dns.conf").await?,
        })
    }
}

/// The real node `up` runs beside the control plane.
struct UpNode {
    node: NodeArgs,
    labels: Vec<(String, String)>,
    services: ServiceNetworkArgs,
    ingress: IngressDeployArgs,
    upload_certs: bool,
    /// A control plane that joined: the cluster's published endpoint and
    /// configuration are the first one's, left as they are.
    joined: bool,
}

/// Import kedge's own binary as an image and apply the ingress
/// controller's DaemonSet, which runs it on nodes labelled `ingress=true`.
async fn deploy_ingress(
    client: kube::Client,
    args: IngressDeployArgs,
    mesh_trust_domain: String,
) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("finding kedge's own binary")?;
    let image = kedge_kubelet::runtime::docker::ensure_program_image("kedge/kedge", &exe)
        .await
        .context("importing kedge's image")?;
    kedge_ingress::deploy::apply(
        &client,
        &kedge_ingress::deploy::DeployOptions {
            image,
            http_port: args.ingress_http_port,
            https_port: args.ingress_https_port,
            metrics_port: args.ingress_metrics_port,
            mesh_trust_domain,
        },
    )
    .await
    .context("applying the ingress controller's DaemonSet")?;
    tracing::info!("ingress controller deployed: label a node ingress=true to run it there");
    Ok(())
}

/// The service proxy and the cluster DNS of the node, each with its API
/// client, until dropped; the proxy removes its holder interface when its
/// task ends.
/// The API clients of a node's service network, each its own identity: the
/// service proxy's, the cluster DNS's, and the node's (which alone may ask
/// for its pods' mesh identities).
struct ServiceNetworkClients {
    proxy: kube::Client,
    dns: kube::Client,
    node: kube::Client,
}

async fn run_service_network(
    clients: ServiceNetworkClients,
    node_name: String,
    node_address: std::net::IpAddr,
    dns_ip: std::net::IpAddr,
    cluster_domain: String,
    args: ServiceNetworkArgs,
    drain: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let upstreams = if args.dns_upstreams.is_empty() {
        kedge_dns::host_nameservers()
    } else {
        args.dns_upstreams
    };
    // The cluster DNS listens on its ClusterIP at a port the kernel picks,
    // and the proxy DNATs port 53 there: binding port 53 itself would take
    // it from host processes binding the wildcard address (hostNetwork pods).
    let dns = kedge_dns::ClusterDns::new(kedge_dns::DnsConfig {
        listen: vec![std::net::SocketAddr::new(dns_ip, 0)],
        cluster_domain: cluster_domain.clone(),
        upstreams,
        ..Default::default()
    })?;
    let dns_server = dns.bind().await.context("binding the cluster DNS")?;
    let dns_port = dns_server.local_addrs()[0].port();
    let proxy_metrics = std::sync::Arc::new(kedge_proxy::Metrics::new());
    // The kube-dns Service has no endpoints: the proxy neither balances
    // nor rejects it, it sends it to the DNS's port.
    let dns_frontends = [kedge_proxy::Protocol::Udp, kedge_proxy::Protocol::Tcp].map(|protocol| {
        kedge_proxy::Frontend {
            addr: std::net::SocketAddr::new(dns_ip, 53),
            protocol,
        }
    });
    // The mesh's workload certificates of this node's pods, asked for as
    // the node itself.
    let ServiceNetworkClients {
        proxy: proxy_client,
        dns: dns_client,
        node: node_client,
    } = clients;
    let identities = std::sync::Arc::new(kedge_proxy::mesh::identity::Identities::new());
    let mesh_metrics = std::sync::Arc::new(kedge_proxy::mesh::metrics::MeshMetrics::new());
    let (table_updates, tables) = tokio::sync::watch::channel(std::sync::Arc::default());
    let network_policy = std::sync::Arc::new(kedge_proxy::netpol::Policy::default());
    let mesh = kedge_proxy::mesh::run(
        proxy_client.clone(),
        node_client,
        kedge_proxy::mesh::identity::IdentityConfig {
            node_name: node_name.clone(),
            trust_domain: cluster_domain.clone(),
            lifetime: args.mesh_certificate_lifetime,
        },
        identities.clone(),
        mesh_metrics.clone(),
        tables,
        network_policy.clone(),
    );
    // On `drain` the proxy stops taking connections and returns once those
    // it carries are closed; the rest go with it.
    let proxy = kedge_proxy::run_with_drain(
        proxy_client,
        kedge_proxy::ProxyConfig {
            mode: args.proxy_mode.proxy_mode,
            nftables_table: args.proxy_mode.proxy_nftables_table,
            node_name,
            node_addresses: vec![node_address],
            holder_interface: Some(args.proxy_interface),
            metrics: proxy_metrics.clone(),
            locally_served: dns_frontends.to_vec(),
            local_ports: dns_frontends.iter().map(|f| (*f, dns_port)).collect(),
            table_updates: Some(std::sync::Arc::new(table_updates)),
            network_policy,
            ..Default::default()
        },
        drain,
    );
    let dns_metrics = dns.metrics().clone();
    let metrics = serve_metrics(args.metrics_addr, move || {
        proxy_metrics.encode()
            + &dns_metrics.encode()
            + &identities.encode()
            + &mesh_metrics.encode()
    });
    tokio::select! {
        () = mesh => {}
        r = proxy => r.context("service proxy")?,
        r = dns.serve(dns_server, dns_client) => r.context("cluster DNS")?,
        r = metrics => r?,
    }
    Ok(())
}

async fn run_proxy(args: ProxyArgs) -> anyhow::Result<()> {
    let client = server::client_from_kubeconfig(&args.kubeconfig)
        .await
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let metrics = std::sync::Arc::new(kedge_proxy::Metrics::new());
    let (drain, watcher) = drain::channel();
    let proxy = kedge_proxy::run_with_drain(
        client,
        kedge_proxy::ProxyConfig {
            mode: args.mode.proxy_mode,
            nftables_table: args.mode.proxy_nftables_table,
            node_name: args.node_name.unwrap_or_else(hostname),
            node_addresses: args.node_addresses,
            holder_interface: Some(args.proxy_interface),
            metrics: metrics.clone(),
            ..Default::default()
        },
        watcher.signaled(),
    );
    // The proxy returns once drained, or is dropped when the grace period
    // is over; either way it removes its interface (and its nftables table).
    let part = async {
        tokio::select! {
            r = proxy => r.context("service proxy"),
            r = serve_metrics(args.metrics_addr, move || metrics.encode()) => r,
        }
    };
    drain::run_with_drain(part, drain, args.shutdown_grace_period).await
}

async fn run_ingress(args: IngressArgs) -> anyhow::Result<()> {
    let client = match &args.kubeconfig {
        Some(path) => server::client_from_kubeconfig(path)
            .await
            .with_context(|| format!("reading {}", path.display()))?,
        None => kube::Client::try_default()
            .await
            .context("no kubeconfig and no in-cluster configuration")?,
    };
    let listeners = kedge_ingress::Listeners::bind(
        &[SocketAddr::new(args.listen_address, args.http_port)],
        &[SocketAddr::new(args.listen_address, args.https_port)],
    )?;
    let mesh = match args
        .mesh_service_account
        .as_deref()
        .map(|a| a.split_once('/'))
    {
        Some(Some((namespace, name))) => Some(kedge_ingress::mesh::MeshOrigin::new(
            (namespace.to_string(), name.to_string()),
            args.mesh_trust_domain.clone(),
            std::env::temp_dir().join(format!("kedge-ingress-mesh-{}.sock", std::process::id())),
        )),
        Some(None) => anyhow::bail!("--mesh-service-account is namespace/name"),
        None => None,
    };
    let mut opts = kedge_ingress::ServeOptions {
        access_log: !args.no_access_log,
        mesh,
        ..Default::default()
    };
    if let Some(t) = args.threads {
        opts.threads = t;
    }
    let cfg = kedge_ingress::ControllerConfig {
        classes: kedge_ingress::ClassConfig {
            controller: args.controller_class,
            extra_classes: args.also_classes,
            watch_without_class: args.watch_ingress_without_class,
        },
        status_addresses: args.status_addresses,
        host: args.node_name,
    };
    let metrics = std::sync::Arc::new(kedge_ingress::Metrics::new());
    let encode = metrics.clone();
    let (drain, watcher) = drain::channel();
    let ingress =
        kedge_ingress::run_with_drain(client, cfg, listeners, opts, metrics, watcher.signaled());
    let part = async {
        tokio::select! {
            r = ingress => r.context("ingress controller"),
            r = serve_metrics(args.metrics_addr, move || encode.encode()) => r,
        }
    };
    drain::run_with_drain(part, drain, args.shutdown_grace_period).await
}

async fn run_dns(args: DnsArgs) -> anyhow::Result<()> {
    let client = server::client_from_kubeconfig(&args.kubeconfig)
        .await
        .with_context(|| format!("reading {}", args.kubeconfig.display()))?;
    let upstreams = if args.dns_upstreams.is_empty() {
        kedge_dns::host_nameservers()
    } else {
        args.dns_upstreams
    };
    let dns = kedge_dns::ClusterDns::new(kedge_dns::DnsConfig {
        listen: args.listen,
        cluster_domain: args.cluster_domain,
        upstreams,
        ..Default::default()
    })?;
    let metrics = dns.metrics().clone();
    tokio::select! {
        r = dns.run(client) => r.context("cluster DNS")?,
        r = serve_metrics(args.metrics_addr, move || metrics.encode()) => r?,
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}

/// A minimal HTTP endpoint answering every request with `encode()`'s
/// text: Prometheus scrapes GET /metrics and needs nothing more.
async fn serve_metrics(
    addr: std::net::SocketAddr,
    encode: impl Fn() -> String + Send + Sync + 'static,
) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the metrics endpoint {addr}"))?;
    tracing::info!(%addr, "metrics endpoint serving");
    let encode = std::sync::Arc::new(encode);
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let encode = encode.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            // One request per connection; its head is all that is read.
            let Ok(Ok(_)) =
                tokio::time::timeout(std::time::Duration::from_secs(5), conn.read(&mut buf)).await
            else {
                return;
            };
            let body = encode();
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes()).await;
            let _ = conn.write_all(body.as_bytes()).await;
        });
    }
}

async fn run_server(args: ServerArgs, node: Option<UpNode>) -> anyhow::Result<()> {
    let cfg = args.cluster_config()?;
    let cluster_config = cfg.clone();
    let data_dir = cfg.data_dir.clone();
    let node_cidrs = if args.allocate_node_cidrs {
        args.node_cidrs(&cfg)?;
        let own = node.as_ref().and_then(|n| n.node.pod_cidr.as_deref());
        Some(kedge_control::controllers::nodeipam::NodeCidrs {
            cluster: cfg.pod_cidr_net(),
            node_prefix: args.node_cidr_mask_size,
            reserved: own
                .and_then(|c| parse_ipv4_cidr(c).ok())
                .into_iter()
                .collect(),
        })
    } else {
        None
    };
    let cfg_dns = cfg.dns_service_ip();
    let cfg_domain = cfg.cluster_domain.clone();
    let cluster_cidr = cfg.pod_cidr.clone();
    // Pods reach the API server through the `kubernetes` Service, whose
    // endpoint is this address. The listen address is often loopback,
    // which pods cannot reach; the node's address on the pod network (the
    // bridge's gateway) is reachable from every pod, so `up` advertises it
    // and the server listens there as well.
    let advertise_address = match (&args.advertise_address, &node) {
        (Some(ip), _) => Some(*ip),
        (None, Some(up)) => Some(up_node_address(&up.node)?),
        (None, None) => None,
    };
    let opts = ServerOptions {
        watch_history: args.watch_history,
        advertise_address,
        token_auth_file: args.token_auth_file.clone(),
        encryption_provider_config: args.encryption_provider_config.clone(),
        etcd: args.etcd.config(),
        control_plane_endpoint: args.control_plane_endpoint.clone(),
        cert_extra_sans: args.apiserver_cert_extra_sans.clone(),
    };
    let grace = args.shutdown_grace_period;
    let cluster_signing_seconds = args.cluster_signing_duration.0.map_or(
        kedge_control::controllers::certificates::DEFAULT_SIGNING_SECONDS,
        |d| d.as_secs() as i64,
    );
    let running = server::start(cfg, opts).await?;
    // The admins' client, for what `kubeadm init` would apply (the cluster
    // DNS Service, the ingress controller's manifests).
    let client = running.client().await.context("API client of the admin")?;
    kedge_dns::ensure_kube_dns_service(client.clone(), std::net::IpAddr::V4(cfg_dns))
        .await
        .context("creating the kube-dns Service")?;
    let ca = running.ca_pem.clone();
    // The scheduler and controllers are API clients like any other, each
    // with its own identity (kubeadm's scheduler.conf and
    // controller-manager.conf; every controller then as its own
    // ServiceAccount).
    let scheduler_client = running
        .client_as("scheduler.conf", "system:kube-scheduler", &[])
        .await
        .context("API client of the scheduler")?;
    let manager_kubeconfig = running
        .write_kubeconfig(
            "controller-manager.conf",
            "system:kube-controller-manager",
            &[],
        )
        .context("credentials of the controller manager")?;
    let manager = server::client_from_kubeconfig(&manager_kubeconfig)
        .await
        .context("API client of the controller manager")?;
    let manager_config = server::config_from_kubeconfig(&manager_kubeconfig)
        .await
        .context("API client of the controller manager")?;
    // One pod and one node watch for every controller.
    let ctx = kedge_control::controllers::Context::with_root_ca(manager.clone(), ca.clone())
        .with_credentials(
            kedge_control::controllers::credentials::ServiceAccountCredentials::new(
                manager,
                manager_config,
                data_dir.join("controllers"),
            ),
        )
        .with_signing_ca(running.ca.clone(), cluster_signing_seconds)
        .with_mesh_ca(running.mesh_ca.clone(), &cfg_domain);
    let ctx = match node_cidrs {
        Some(cidrs) => ctx.with_node_cidrs(cidrs),
        None => ctx,
    };
    // Every control plane runs the scheduler and the controllers; the
    // holder of each one's Lease acts (one, with several API servers).
    let identity = kedge_control::leaderelection::identity(&data_dir);
    let elect =
        |name: &str| kedge_control::leaderelection::LeaderElectionConfig::new(name, &identity);
    let scheduler = tokio::spawn(kedge_control::leaderelection::run(
        scheduler_client.clone(),
        elect("kube-scheduler"),
        move || kedge_control::scheduler::run(scheduler_client.clone()),
    ));
    let controllers = tokio::spawn(kedge_control::leaderelection::run(
        ctx.client.clone(),
        elect("kube-controller-manager"),
        move || kedge_control::controllers::run_all(ctx.clone()),
    ));
    let mut certificate_key = None;
    let joined = node.as_ref().is_some_and(|n| n.joined);
    let kubelet = match node {
        Some(UpNode {
            node,
            labels,
            services,
            ingress,
            upload_certs,
            joined: _,
        }) => {
            if upload_certs {
                let key = controlplane::upload(&client, &data_dir)
                    .await
                    .context("uploading the control plane's certificates")?;
                certificate_key = Some(key);
            }
            if !ingress.no_ingress {
                let client = client.clone();
                let domain = cfg_domain.clone();
                tokio::spawn(async move {
                    if let Err(e) = deploy_ingress(client, ingress, domain).await {
                        tracing::error!("deploying the ingress controller: {e:#}");
                    }
                });
            }
            let mut node = node;
            if node.pod_cidr.is_none() {
                let name = node.node_name.clone().unwrap_or_else(hostname);
                node.pod_cidr = Some(
                    kedge_kubelet::docker_node::await_pod_cidr(&client, &name, &labels)
                        .await
                        .context("registering the node for its pod CIDR")?,
                );
            }
            node.cluster_dns.get_or_insert_with(|| cfg_dns.to_string());
            node.node_cluster_domain = cfg_domain.clone();
            let name = node.node_name.clone().unwrap_or_else(hostname);
            let podnet = node.pod_network(&name, &cluster_cidr)?;
            let opts = node_options(
                &node,
                labels,
                data_dir.join("kubelet"),
                ca.clone(),
                podnet.as_ref(),
            )
            .await?;
            // The node's kubelet, service proxy and cluster DNS, each as
            // itself, with certificates of the cluster signer's duration
            // that the node renews (as a joined node does).
            let node_user = format!("system:node:{}", opts.name);
            for (file, user, groups) in [
                ("kubelet.conf", node_user.as_str(), &["system:nodes"][..]),
                ("proxy.conf", "system:kube-proxy", &[]),
                ("dns.conf", "system:kedge-dns", &[]),
            ] {
                running
                    .write_node_kubeconfig(file, user, groups, cluster_signing_seconds)
                    .with_context(|| format!("credentials of {user}"))?;
            }
            Some((opts, services, podnet))
        }
        None => None,
    };
    // What joining machines read (kubeadm's bootstrap-token phase), and a
    // token for them.
    let endpoint = if joined {
        join::cluster_info_server(&client)
            .await
            .unwrap_or_else(|| running.endpoint_url.clone())
    } else {
        join::publish_cluster_info(&client, &running.endpoint_url, &ca).await?;
        join::publish_cluster_config(&client, &cluster_config, &running.endpoint_url).await?;
        running.endpoint_url.clone()
    };
    let token = join::create_token(
        &client,
        Some(Duration::from_secs(24 * 3600)),
        "made by kedge at start",
    )
    .await?;
    println!("kedge is serving on {}", running.url);
    println!("export KUBECONFIG={}", running.kubeconfig.display());
    let join_command = join::join_command(&endpoint, &token, &ca)?;
    println!(
        "Other machines join with (the token is valid 24 hours; `kedge token create --print-join-command` makes more):\n  {join_command}"
    );
    if let Some(key) = &certificate_key {
        println!(
            "Other control-plane machines join with (the certificate key reads the uploaded certificates for two hours; add the same --etcd-servers):\n  {join_command} --control-plane --certificate-key {key}"
        );
    }
    let mut draining_network = None;
    match kubelet {
        Some((opts, services, podnet)) => {
            let node_address = match opts.internal_ip {
                Some(ip) => ip,
                None => pod_network_gateway(&opts.pod_cidr)?,
            };
            // The node runs until its certificates are renewed, then again
            // with the new ones (its containers are adopted).
            loop {
                let clients = NodeClients::read(&data_dir).await?;
                let (network_drain, network_watcher) = drain::channel();
                let mut network = Box::pin(run_service_network(
                    ServiceNetworkClients {
                        proxy: clients.proxy,
                        dns: clients.dns,
                        node: clients.kubelet.clone(),
                    },
                    opts.name.clone(),
                    node_address,
                    std::net::IpAddr::V4(cfg_dns),
                    cfg_domain.clone(),
                    services.clone(),
                    network_watcher.signaled(),
                ));
                // Dropping the futures removes the proxy's holder
                // interface; on shutdown the proxy drains first.
                tokio::select! {
                    r = kedge_kubelet::docker_node::run(clients.kubelet.clone(), &opts) => {
                        r.context("running the node (is Docker running?)")?;
                        break;
                    }
                    r = &mut network => {
                        r?;
                        break;
                    }
                    r = run_pod_network(clients.kubelet.clone(), podnet.clone()) => {
                        r?;
                        break;
                    }
                    r = join::renew_when_due(&data_dir) => {
                        r.context("renewing the node's certificates")?;
                        tracing::info!("restarting the node with its renewed certificates");
                    }
                    _ = shutdown_signal() => {
                        draining_network = Some((network_drain, network));
                        break;
                    }
                }
            }
        }
        None => shutdown_signal().await,
    }
    // The control loops are clients of this server: they stop first (each
    // write of theirs is one API call, and they pick up again from the
    // state they find), so none of them retries against a closed listener.
    scheduler.abort();
    controllers.abort();
    tracing::info!(grace = ?grace, "draining: no new connections, waiting for requests in flight");
    // The node's service proxy finishes the connections it carries
    // meanwhile.
    let network = async {
        match draining_network {
            Some((drain, network)) => drain::drain_within(network, drain, grace).await,
            None => Ok(()),
        }
    };
    let (network, drained) = tokio::join!(network, running.drain(grace));
    if drained {
        tracing::info!("drained");
    } else {
        tracing::warn!(grace = ?grace, "grace period over; closing what is still open");
    }
    network.context("draining the node's service proxy")
}

/// The gateway of a node's pod network, its address there.
fn pod_network_gateway(pod_cidr: &str) -> anyhow::Result<std::net::IpAddr> {
    kedge_kubelet::runtime::docker::gateway(pod_cidr)
        .and_then(|g| g.parse().ok())
        .context("the pod CIDR is not an IPv4 subnet")
}

/// The address of `up`'s node: its InternalIP, else its address on its
/// pod network.
fn up_node_address(node: &NodeArgs) -> anyhow::Result<std::net::IpAddr> {
    match (node.node_ip, &node.pod_cidr) {
        (Some(ip), _) => Ok(ip),
        (None, Some(cidr)) => pod_network_gateway(cidr),
        (None, None) => anyhow::bail!("the node has neither an address nor a pod CIDR"),
    }
}

/// The cluster CA (PEM) of a kubeconfig's current cluster.
fn cluster_ca(kubeconfig: &std::path::Path) -> anyhow::Result<String> {
    use base64::Engine;
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let current = kc.current_context.clone().unwrap_or_default();
    let cluster_name = kc
        .contexts
        .iter()
        .find(|c| c.name == current)
        .and_then(|c| c.context.as_ref())
        .map(|c| c.cluster.clone());
    let cluster = kc
        .clusters
        .iter()
        .find(|c| Some(&c.name) == cluster_name.as_ref())
        .or_else(|| kc.clusters.first())
        .and_then(|c| c.cluster.as_ref())
        .context("the kubeconfig names no cluster")?;
    if let Some(data) = &cluster.certificate_authority_data {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(data.trim())
            .context("decoding certificate-authority-data")?;
        return String::from_utf8(pem).context("certificate-authority-data is not PEM");
    }
    let path = cluster
        .certificate_authority
        .as_ref()
        .context("the kubeconfig has no certificate authority")?;
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}

/// An admin's client for the token commands.
async fn token_client(args: &TokenClientArgs) -> anyhow::Result<(kube::Client, PathBuf)> {
    let path = args.kubeconfig.clone().unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".kedge/kubeconfig")
    });
    let client = server::client_from_kubeconfig(&path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    Ok((client, path))
}

async fn run_token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let (client, path) = token_client(&args.client).await?;
            let token = join::create_token(&client, args.ttl.0, &args.description).await?;
            if args.print_join_command {
                let ca = cluster_ca(&path)?;
                // Where joining machines reach the control plane, as it
                // published it; else the admin's own address for it.
                let server = match join::cluster_info_server(&client).await {
                    Some(s) => s,
                    None => kubeconfig_server(&path)?,
                };
                println!("{}", join::join_command(&server, &token, &ca)?);
            } else {
                println!("{token}");
            }
        }
        TokenCommand::List(args) => {
            let (client, _) = token_client(&args).await?;
            print!("{}", join::list_tokens(&client).await?);
        }
        TokenCommand::Delete(args) => {
            let (client, _) = token_client(&args.client).await?;
            join::delete_token(&client, &args.token).await?;
            println!("bootstrap token {:?} deleted", args.token);
        }
    }
    Ok(())
}

/// The server of a kubeconfig's first cluster.
fn kubeconfig_server(path: &std::path::Path) -> anyhow::Result<String> {
    let kc = kube::config::Kubeconfig::read_from(path)
        .with_context(|| format!("reading {}", path.display()))?;
    kc.clusters
        .first()
        .and_then(|c| c.cluster.as_ref())
        .and_then(|c| c.server.clone())
        .context("the kubeconfig names no server")
}

/// `kedge join`: the node's credentials through the token, then the node.
async fn run_join(args: JoinArgs) -> anyhow::Result<()> {
    let node_name = args.node.node_name.clone().unwrap_or_else(hostname);
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("/var/lib/kedge"));
    if args.control_plane {
        return join_control_plane(args, node_name, data_dir).await;
    }
    let joined = join::join(
        &args.address,
        &args.token,
        &args.discovery_token_ca_cert_hash,
        &node_name,
        &data_dir,
    )
    .await?;
    println!(
        "This node has joined the cluster as {node_name}; its credentials are in {}.",
        joined.kubeconfig.display()
    );
    let mut node = args.node;
    node.node_name = Some(node_name);
    if node.root_dir.is_none() {
        node.root_dir = Some(data_dir.join("kubelet"));
    }
    let agent = AgentArgs {
        kubeconfig: joined.kubeconfig,
        hollow: false,
        node,
        count: 1,
        name_prefix: String::new(),
        first_index: 0,
        labels: args.labels,
        heartbeat_interval: None,
        services: args.services,
        no_service_network: args.no_service_network,
        proxy_kubeconfig: Some(joined.proxy_kubeconfig),
        dns_kubeconfig: Some(joined.dns_kubeconfig),
        cluster_cidr: args.cluster_cidr,
        api_servers: args.api_servers,
        shutdown_grace_period: args.shutdown_grace_period,
    };
    // The node runs until its certificates are renewed, then again with
    // the new ones (its containers are adopted).
    loop {
        tokio::select! {
            r = run_agent(agent.clone()) => return r,
            r = join::renew_when_due(&data_dir) => {
                r.context("renewing the node's certificates")?;
                tracing::info!("restarting the node with its renewed certificates");
            }
        }
    }
}

/// `kedge join --control-plane`: trust the cluster as a node does, fetch
/// the shared certificates with the token, then run as `init` does with
/// them (the same etcd, so the same cluster).
async fn join_control_plane(
    args: JoinArgs,
    node_name: String,
    data_dir: PathBuf,
) -> anyhow::Result<()> {
    if args.etcd.etcd_servers.is_empty() {
        anyhow::bail!(
            "a control plane that joins shares the first one's etcd: give its --etcd-servers"
        );
    }
    if args.node.node_ip.is_none() {
        anyhow::bail!("a control plane that joins needs its --node-ip: the address other machines reach it on");
    }
    let found = join::discover(
        &args.address,
        &args.token,
        &args.discovery_token_ca_cert_hash,
    )
    .await?;
    let key = args.certificate_key.as_deref().unwrap_or_default();
    let bootstrap = found.bootstrap_client(&args.token)?;
    controlplane::download(bootstrap.clone(), &data_dir, key).await?;
    // The cluster's shared address, which this server's certificate must
    // cover too.
    let endpoint = join::cluster_control_plane_endpoint(&bootstrap).await;
    println!(
        "The cluster's certificates are in {}; starting this machine's control plane as {node_name}.",
        data_dir.display()
    );
    let mut up = UpDefaults::parse_from(["kedge"]).up;
    up.server.data_dir = Some(data_dir);
    up.server.etcd = args.etcd;
    up.server.control_plane_endpoint = endpoint;
    up.server.apiserver_cert_extra_sans = args.apiserver_cert_extra_sans;
    up.node = args.node;
    up.node.node_name = Some(node_name);
    up.labels = args.labels;
    up.services = args.services;
    // The first control plane deployed the cluster's ingress controller
    // and demo images.
    up.no_demo_images = true;
    up.ingress.no_ingress = true;
    run_up_as(up, false).await
}

/// Print a kubeconfig for a user, signed by the data dir's CA.
fn kubeconfig_user(args: KubeconfigUserArgs) -> anyhow::Result<()> {
    use kedge_control::apiserver::certs;
    let dir = args.data_dir.unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."))
            .join(".kedge")
    });
    let (ca, ca_pem) = certs::ClusterCa::load(&dir)
        .with_context(|| format!("reading the cluster CA in {}", dir.display()))?;
    let server = match args.server {
        Some(s) => s,
        None => {
            let admin = dir.join("kubeconfig");
            let kc = kube::config::Kubeconfig::read_from(&admin)
                .with_context(|| format!("reading {}", admin.display()))?;
            kc.clusters
                .first()
                .and_then(|c| c.cluster.as_ref())
                .and_then(|c| c.server.clone())
                .context("the admin kubeconfig names no server")?
        }
    };
    let orgs: Vec<&str> = args.orgs.iter().map(String::as_str).collect();
    let (cert, key) = ca.sign_client(&args.client_name, &orgs)?;
    print!(
        "{}",
        certs::kubeconfig(&server, &ca_pem, &args.client_name, &cert, &key)
    );
    Ok(())
}

/// A positive number of seconds, fractions allowed.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a positive number of seconds"))
}

/// `key=value` pairs.
fn parse_labels(args: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    args.iter()
        .map(|l| {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("node label {l:?} is not key=value"))?;
            Ok((k.to_string(), v.to_string()))
        })
        .collect()
}

/// The machine's hostname, lowercased as Kubernetes node names are.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_lowercase())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "kedge".to_string())
}

async fn node_options(
    node: &NodeArgs,
    labels: Vec<(String, String)>,
    default_root: PathBuf,
    client_ca_pem: String,
    podnet: Option<&kedge_proxy::podnet::PodNetworkConfig>,
) -> anyhow::Result<kedge_kubelet::docker_node::DockerNodeOptions> {
    Ok(kedge_kubelet::docker_node::DockerNodeOptions {
        pod_mtu: pod_mtu(node, podnet).await?,
        docker_masquerade: podnet.is_none(),
        name: node.node_name.clone().unwrap_or_else(hostname),
        labels: labels.into_iter().collect(),
        pod_cidr: node
            .pod_cidr
            .clone()
            .context("the node's pod CIDR is not known yet")?,
        internal_ip: node.node_ip,
        network: node.pod_network.clone(),
        kubelet_port: node.kubelet_port,
        root_dir: node.root_dir.clone().unwrap_or(default_root),
        pod_sync: Default::default(),
        cluster_dns: vec![node
            .cluster_dns
            .clone()
            .unwrap_or_else(|| "10.96.0.10".to_string())],
        cluster_domain: node.node_cluster_domain.clone(),
        client_ca_pem,
    })
}

/// An API client from a kubeconfig, through the node's load balancer when
/// it has one.
async fn agent_client(
    path: &std::path::Path,
    balancer: Option<&str>,
) -> anyhow::Result<kube::Client> {
    let mut config = server::config_from_kubeconfig(path)
        .await
        .with_context(|| format!("reading {}", path.display()))?;
    if let Some(url) = balancer {
        config.cluster_url = url.parse().context("the load balancer's URL")?;
    }
    Ok(kube::Client::try_from(config)?)
}

async fn run_agent(args: AgentArgs) -> anyhow::Result<()> {
    let balancer = match args.api_servers.is_empty() {
        true => None,
        false => Some(lb::start(args.api_servers.clone()).await?),
    };
    let balancer = balancer.as_deref();
    let client = agent_client(&args.kubeconfig, balancer).await?;
    let labels = parse_labels(&args.labels)?;
    if !args.hollow {
        let ca = cluster_ca(&args.kubeconfig)?;
        let mut node = args.node;
        // A joining node gives its pods the cluster's DNS address, as
        // kubeadm's kubelet configuration does.
        if node.cluster_dns.is_none() {
            node.cluster_dns = kedge_dns::kube_dns_service_ip(client.clone())
                .await
                .context("reading the kube-dns Service")?
                .map(|ip| ip.to_string());
        }
        if node.pod_cidr.is_none() {
            let name = node.node_name.clone().unwrap_or_else(hostname);
            tracing::info!(node = %name, "waiting for the control plane to allocate the node's pod CIDR");
            node.pod_cidr = Some(
                kedge_kubelet::docker_node::await_pod_cidr(&client, &name, &labels)
                    .await
                    .context("registering the node for its pod CIDR")?,
            );
        }
        let name = node.node_name.clone().unwrap_or_else(hostname);
        let cluster_cidr = match &args.cluster_cidr {
            Some(c) => c.clone(),
            None => match join::cluster_pod_cidr(&client).await {
                Some(c) => {
                    tracing::info!(cluster_cidr = %c, "the cluster's pod range, from kubeadm-config");
                    c
                }
                None => "10.244.0.0/16".to_string(),
            },
        };
        let podnet = node.pod_network(&name, &cluster_cidr)?;
        let opts = node_options(
            &node,
            labels,
            PathBuf::from("/var/lib/kedge/kubelet"),
            ca,
            podnet.as_ref(),
        )
        .await?;
        // The node's kube-proxy and DNS, which kubeadm's DaemonSets would
        // give it.
        let (network_drain, network_watcher) = drain::channel();
        let network = async {
            if args.no_service_network {
                return std::future::pending().await;
            }
            let node_address = match opts.internal_ip {
                Some(ip) => ip,
                None => pod_network_gateway(&opts.pod_cidr)?,
            };
            let dns_ip = opts.cluster_dns[0]
                .parse()
                .with_context(|| format!("cluster DNS address {:?}", opts.cluster_dns[0]))?;
            let own = |path: &Option<PathBuf>| {
                let path = path.clone();
                let client = client.clone();
                async move {
                    match path {
                        Some(p) => agent_client(&p, balancer).await,
                        None => Ok(client),
                    }
                }
            };
            run_service_network(
                ServiceNetworkClients {
                    proxy: own(&args.proxy_kubeconfig).await?,
                    dns: own(&args.dns_kubeconfig).await?,
                    node: client.clone(),
                },
                opts.name.clone(),
                node_address,
                dns_ip,
                opts.cluster_domain.clone(),
                args.services,
                network_watcher.signaled(),
            )
            .await
        };
        tokio::pin!(network);
        // Dropping the futures removes the proxy's holder interface (and
        // its nftables table); on shutdown the proxy drains first.
        tokio::select! {
            r = kedge_kubelet::docker_node::run(client.clone(), &opts) => {
                r.context("running the node (is Docker running?)")?;
            }
            r = &mut network => r?,
            r = run_pod_network(client.clone(), podnet) => r?,
            _ = shutdown_signal() => {
                tracing::info!(grace = ?args.shutdown_grace_period, "shutting down: the service proxy finishes the connections it carries");
                drain::drain_within(network, network_drain, args.shutdown_grace_period).await?;
            }
        }
        return Ok(());
    }
    let mut opts = kedge_kubelet::hollow::HollowOptions {
        count: args.count,
        name_prefix: args.name_prefix.clone(),
        labels,
        first_index: args.first_index,
        // Each serves its kubelet endpoint (resource metrics) to the API
        // server, which shows a certificate of this CA.
        client_ca_pem: cluster_ca(&args.kubeconfig).ok(),
        ..Default::default()
    };
    if let Some(every) = args.heartbeat_interval {
        opts.lease_renew_interval = every;
    }
    tokio::select! {
        _ = kedge_kubelet::hollow::run(client, opts) => {}
        _ = shutdown_signal() => tracing::info!("shutting down"),
    }
    Ok(())
}
