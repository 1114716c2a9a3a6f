//! kedge's cluster DNS: the records of the Kubernetes DNS-based service
//! discovery specification for a cluster domain, answered from an index
//! the API's Service and EndpointSlice watches keep current, and every
//! other name forwarded to upstream resolvers through a cache.
//!
//! - [`records`]: Service and EndpointSlice objects to records, no IO.
//! - [`index`]: the names and records answered, updated per event.
//! - [`handler`]: the hickory `RequestHandler` answering from the index or
//!   forwarding.
//! - [`forward`]: upstream resolvers over UDP with TCP retry, and the cache.
//! - [`server`]: UDP and TCP listeners; [`wire`]: the UDP fast path's
//!   query parser and answer encoder.
//! - [`watch`]: the kube-rs watchers feeding the index.
//! - [`metrics`]: Prometheus metrics.
#![deny(missing_docs)]

pub mod forward;
pub mod handler;
pub mod index;
pub mod metrics;
pub mod records;
pub mod server;
mod udp;
pub mod watch;
pub mod wire;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

pub use forward::Forwarder;
pub use handler::ClusterDnsHandler;
pub use index::{ClusterIndex, Lookup};
pub use metrics::Metrics;
pub use server::DnsServer;

/// The cluster DNS Service's address in the default Service CIDR
/// (10.96.0.0/12): its 10th address.
pub const DEFAULT_CLUSTER_DNS_IP: Ipv4Addr = Ipv4Addr::new(10, 96, 0, 10);

/// Errors of the cluster DNS.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster domain is not a valid DNS name.
    #[error("cluster domain {domain:?} is not a DNS name")]
    ClusterDomain {
        /// The domain given.
        domain: String,
        /// Why it was rejected.
        #[source]
        source: hickory_server::proto::ProtoError,
    },
    /// A listen address could not be bound (in use, or not on this host:
    /// the ClusterIP holder interface may not exist yet).
    #[error("binding {addr} for DNS")]
    Bind {
        /// The listen address.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: std::io::Error,
    },
    /// A listener stopped with an error.
    #[error("serving DNS")]
    Serve(#[source] hickory_server::net::NetError),
    /// A UDP listener stopped with an error.
    #[error("serving DNS over UDP")]
    Udp(#[source] std::io::Error),
}

/// How the cluster DNS is set up.
#[derive(Clone, Debug)]
pub struct DnsConfig {
    /// Addresses to serve on, UDP and TCP each.
    pub listen: Vec<SocketAddr>,
    /// The cluster domain (`cluster.local`).
    pub cluster_domain: String,
    /// Resolvers for names outside the cluster domain, asked in order.
    pub upstreams: Vec<SocketAddr>,
    /// TTL of cluster records, in seconds.
    pub ttl: u32,
    /// Forwarded answers kept at most (0: no cache).
    pub cache_size: usize,
    /// How long one upstream is waited for.
    pub upstream_timeout: Duration,
}

impl Default for DnsConfig {
    /// `10.96.0.10:53`, `cluster.local`, TTL 5 s, and the host's
    /// nameservers from `/etc/resolv.conf` as upstreams.
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::new(IpAddr::V4(DEFAULT_CLUSTER_DNS_IP), 53)],
            cluster_domain: "cluster.local".to_string(),
            upstreams: host_nameservers(),
            ttl: 5,
            cache_size: 10_000,
            upstream_timeout: Duration::from_secs(2),
        }
    }
}

/// The nameservers of the host's `/etc/resolv.conf` (none if unreadable).
pub fn host_nameservers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|text| resolv_conf_nameservers(&text))
        .unwrap_or_default()
}

/// The `nameserver` lines of a resolv.conf, on port 53. Link-local IPv6
/// addresses with a zone (`fe80::1%eth0`) are skipped.
pub fn resolv_conf_nameservers(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// The cluster DNS, assembled: index, forwarder, metrics and handler.
pub struct ClusterDns {
    config: DnsConfig,
    index: Arc<ClusterIndex>,
    metrics: Arc<Metrics>,
    forwarder: Arc<Forwarder>,
    handler: ClusterDnsHandler,
}

// === impl ClusterDns ===

impl ClusterDns {
    /// Assemble from a configuration. Upstreams that are listen addresses
    /// are dropped: a host whose resolv.conf names the cluster DNS itself
    /// would otherwise forward in a loop.
    pub fn new(config: DnsConfig) -> Result<Self, Error> {
        let index = Arc::new(ClusterIndex::new(&config.cluster_domain, config.ttl)?);
        let metrics = Arc::new(Metrics::new());
        let upstreams = config
            .upstreams
            .iter()
            .filter(|u| !config.listen.contains(u))
            .copied()
            .collect();
        let forwarder = Arc::new(Forwarder::new(
            upstreams,
            config.upstream_timeout,
            config.cache_size,
            metrics.clone(),
        ));
        let handler = ClusterDnsHandler::new(index.clone(), forwarder.clone(), metrics.clone());
        Ok(Self {
            config,
            index,
            metrics,
            forwarder,
            handler,
        })
    }

    /// The index, to feed directly (tests, or a caller with its own
    /// informers).
    pub fn index(&self) -> &Arc<ClusterIndex> {
        &self.index
    }

    /// The metrics; [`Metrics::encode`] gives the OpenMetrics text.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The upstream resolvers forwarded to, in order.
    pub fn upstreams(&self) -> &[SocketAddr] {
        self.forwarder.upstreams()
    }

    /// Bind the configured listen addresses and start serving.
    pub async fn bind(&self) -> Result<DnsServer, Error> {
        DnsServer::bind(self.handler.clone(), &self.config.listen).await
    }

    /// Serve, with the index fed from the API, until dropped or a listener
    /// fails.
    ///
    /// The listen address is the cluster DNS ClusterIP, which appears on
    /// the node only once the service proxy has put it on its holder
    /// interface: binding is retried while the address is not there yet,
    /// or while another process (the DNS of another node on this machine)
    /// holds it.
    pub async fn run(self, client: kube::Client) -> Result<(), Error> {
        let watch = watch::watch(client, self.index.clone());
        tokio::pin!(watch);
        let mut logged = false;
        let server = loop {
            match self.bind().await {
                Ok(server) => break server,
                Err(Error::Bind { addr, source })
                    if matches!(
                        source.kind(),
                        std::io::ErrorKind::AddrNotAvailable | std::io::ErrorKind::AddrInUse
                    ) =>
                {
                    // In use: another node on this machine (nodes share
                    // the host's network namespace) serves the cluster DNS
                    // on that address already; this one takes over if it
                    // goes.
                    if !logged {
                        tracing::info!(%addr, error = %source, "waiting for the cluster DNS address to be free on the node");
                        logged = true;
                    }
                    tokio::select! {
                        () = &mut watch => return Ok(()),
                        () = tokio::time::sleep(std::time::Duration::from_millis(100)) => {}
                    }
                }
                Err(e) => return Err(e),
            }
        };
        tracing::info!(listen = ?server.local_addrs(), "cluster DNS serving");
        tokio::select! {
            result = server.serve() => result,
            () = watch => Ok(()),
        }
    }

    /// Serve on `server` (from [`bind`](Self::bind)), with the index fed
    /// from the API, until dropped or a listener fails.
    pub async fn serve(self, server: DnsServer, client: kube::Client) -> Result<(), Error> {
        let watch = watch::watch(client, self.index.clone());
        tracing::info!(listen = ?server.local_addrs(), "cluster DNS serving");
        tokio::select! {
            result = server.serve() => result,
            () = watch => Ok(()),
        }
    }
}

/// Make sure the `kube-dns` Service exists in `kube-system` with the
/// cluster DNS ClusterIP, as kubeadm sets it up. It has no selector, so no
/// proxy forwards its port: the DNS server answers on the address itself.
pub async fn ensure_kube_dns_service(
    client: kube::Client,
    cluster_ip: std::net::IpAddr,
) -> Result<(), kube::Error> {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::{Api, PostParams};
    let api: Api<Service> = Api::namespaced(client, "kube-system");
    if api.get_opt("kube-dns").await?.is_some() {
        return Ok(());
    }
    let svc: Service = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "kube-dns",
            "namespace": "kube-system",
            "labels": {"k8s-app": "kube-dns", "kubernetes.io/name": "CoreDNS"}
        },
        "spec": {
            "clusterIP": cluster_ip.to_string(),
            "ports": [
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "dns-tcp", "port": 53, "protocol": "TCP"}
            ]
        }
    }))
    .expect("a valid Service");
    match api.create(&PostParams::default(), &svc).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// The ClusterIP of the `kube-dns` Service in `kube-system`, if it exists:
/// the cluster DNS address a joining node gives its pods, as kubeadm writes
/// it into each kubelet's configuration.
pub async fn kube_dns_service_ip(
    client: kube::Client,
) -> Result<Option<std::net::IpAddr>, kube::Error> {
    use k8s_openapi::api::core::v1::Service;
    use kube::api::Api;
    let api: Api<Service> = Api::namespaced(client, "kube-system");
    Ok(api
        .get_opt("kube-dns")
        .await?
        .and_then(|svc| svc.spec?.cluster_ip)
        .and_then(|ip| ip.parse().ok()))
}

/// Serve the cluster DNS for `config`, fed from the API through `client`,
/// until dropped or a listener fails.
pub async fn run(client: kube::Client, config: DnsConfig) -> Result<(), Error> {
    ClusterDns::new(config)?.run(client).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_nameservers_on_port_53() {
        let text = "# generated\nsearch example\nnameserver 127.0.0.53\nnameserver ::1\n\
                    nameserver fe80::1%eth0\noptions edns0\n";
        assert_eq!(
            resolv_conf_nameservers(text),
            vec![
                "127.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn listen_addresses_are_not_upstreams() {
        let listen: SocketAddr = "127.0.0.1:5353".parse().unwrap();
        let dns = ClusterDns::new(DnsConfig {
            listen: vec![listen],
            upstreams: vec![listen],
            ..DnsConfig::default()
        })
        .unwrap();
        assert!(dns.upstreams().is_empty());
        assert_eq!(dns.index().domain().to_string(), "cluster.local.");
    }

    #[test]
    fn bad_cluster_domain_is_an_error() {
        let domain = format!("{}.local", "a".repeat(64));
        assert!(ClusterDns::new(DnsConfig {
            cluster_domain: domain,
            upstreams: vec![],
            ..DnsConfig::default()
        })
        .is_err());
    }
}
