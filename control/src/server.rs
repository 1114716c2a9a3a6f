//! Starting the control plane: data dir, store, credentials, listener,
//! kubeconfig.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kedge_config::cluster::ClusterConfig;

use crate::apiserver::{self, certs, ApiState};
use crate::metrics::Metrics;
use crate::store::{self, EncryptedStore, RedbStore, WatchCache};

/// Errors while starting the control plane.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data dir could not be prepared.
    #[error("data dir {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The store could not be opened.
    #[error("store: {0}")]
    Store(#[from] crate::store::StoreError),
    /// Credentials could not be made or loaded.
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    /// The listen address could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: std::net::SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The encryption configuration could not be made or read.
    #[error(transparent)]
    Encryption(#[from] store::EncryptionConfigError),
    /// The service-account signing key could not be made or loaded.
    #[error(transparent)]
    ServiceAccountKey(#[from] apiserver::tokens::KeyError),
    /// The initial objects could not be created.
    #[error("bootstrap: {0}")]
    Bootstrap(String),
}

/// Options of the control plane beyond the cluster configuration.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// How many past events of each resource the watch cache keeps for
    /// resuming watches.
    pub watch_history: usize,
    /// The address pods reach the API server on (Kubernetes'
    /// `--advertise-address`): the endpoint of the `kubernetes` Service.
    /// When the listen address is another one, the server listens here too.
    /// Unset, it is the listen address unless that is loopback or
    /// unspecified, which pods cannot reach: then the Service has no
    /// endpoints.
    pub advertise_address: Option<IpAddr>,
    /// Static bearer tokens (kube-apiserver's `--token-auth-file`); none
    /// unless given.
    pub token_auth_file: Option<PathBuf>,
    /// How Secrets are encrypted at rest (kube-apiserver's
    /// `--encryption-provider-config`); unset, with a key the server makes
    /// in the data dir.
    pub encryption_provider_config: Option<PathBuf>,
    /// etcd as the store (kube-apiserver's `--etcd-servers`), for several
    /// API servers sharing one state; unset, the embedded redb file.
    pub etcd: Option<store::EtcdConfig>,
    /// The shared address of every control plane of the cluster
    /// (kubeadm's `--control-plane-endpoint`, `host[:port]`: a load
    /// balancer, a virtual IP or a DNS name for them): what `cluster-info`
    /// and join commands carry, and a name the serving certificate covers.
    pub control_plane_endpoint: Option<Endpoint>,
    /// More names and addresses the serving certificate covers (kubeadm's
    /// `--apiserver-cert-extra-sans`).
    pub cert_extra_sans: Vec<String>,
}

/// A control-plane endpoint: a host (DNS name or IP) and maybe a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The DNS name or IP address.
    pub host: String,
    /// The port, when given (else the API server's own).
    pub port: Option<u16>,
}

impl std::str::FromStr for Endpoint {
    type Err = String;

    /// `host`, `host:port`, `[v6]` or `[v6]:port`, as kubeadm accepts.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s
            .trim()
            .trim_start_matches("https://")
            .trim_end_matches('/');
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, tail) = rest
                .split_once(']')
                .ok_or_else(|| format!("{s:?}: an IPv6 address in brackets lacks its ']'"))?;
            (host, tail.strip_prefix(':'))
        } else if s.matches(':').count() > 1 {
            (s, None)
        } else {
            match s.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("{s:?}: the port must be 1-65535"))
            })
            .transpose()?;
        if host.parse::<IpAddr>().is_err() && !is_dns_name(host) {
            return Err(format!(
                "{s:?}: the host must be an IP address or a DNS name (RFC 1123)"
            ));
        }
        Ok(Endpoint {
            host: host.to_string(),
            port,
        })
    }
}

impl Endpoint {
    /// Its `https://` URL, `default_port` where it names none.
    pub fn url(&self, default_port: u16) -> String {
        let port = self.port.unwrap_or(default_port);
        match self.host.parse::<IpAddr>() {
            Ok(ip) => format!("https://{}", std::net::SocketAddr::new(ip, port)),
            Err(_) => format!("https://{}:{port}", self.host),
        }
    }
}

/// A DNS subdomain name as RFC 1123 has it (lowercase letters, digits,
/// `-` and `.`, labels of at most 63 characters).
fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// Split names for a serving certificate into DNS names and IP addresses.
fn split_sans<'a>(names: impl IntoIterator<Item = &'a str>) -> (Vec<String>, Vec<IpAddr>) {
    let mut dns = Vec::new();
    let mut ips = Vec::new();
    for name in names {
        match name.parse::<IpAddr>() {
            Ok(ip) => ips.push(ip),
            Err(_) => dns.push(name.to_string()),
        }
    }
    (dns, ips)
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            watch_history: 10_000,
            advertise_address: None,
            token_auth_file: None,
            encryption_provider_config: None,
            etcd: None,
            control_plane_endpoint: None,
            cert_extra_sans: Vec::new(),
        }
    }
}

/// A running API server.
pub struct RunningServer {
    /// The URL it serves on.
    pub url: String,
    /// The URL other machines reach it on: the control-plane endpoint's,
    /// else the advertise address's, else `url` (what `cluster-info` and
    /// join commands carry).
    pub endpoint_url: String,
    /// The admin kubeconfig written to the data dir.
    pub kubeconfig: PathBuf,
    /// Shared state (store, metrics).
    pub state: Arc<ApiState>,
    /// The cluster CA, which signs the components' client certificates.
    pub ca: Arc<certs::ClusterCa>,
    /// The cluster CA certificate (PEM).
    pub ca_pem: String,
    /// The mesh CA, which signs workload certificates only.
    pub mesh_ca: Arc<certs::MeshCa>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// An API client with the admin credentials.
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// Write a kubeconfig for `user` in `groups` with a fresh client
    /// certificate to `file` in the data dir (a component's own identity,
    /// as kubeadm's `scheduler.conf`), and return its path.
    pub fn write_kubeconfig(
        &self,
        file: &str,
        user: &str,
        groups: &[&str],
    ) -> Result<PathBuf, certs::CertError> {
        let dir = self.state.cluster.data_dir.clone();
        self.ca
            .write_kubeconfig(&dir, file, &self.url, &self.ca_pem, (user, groups))
    }

    /// Write a kubeconfig for a node component's `user` in `groups`, with
    /// a certificate valid `seconds` (the cluster signer's duration: the
    /// node renews it as a joined node does), and return its path.
    pub fn write_node_kubeconfig(
        &self,
        file: &str,
        user: &str,
        groups: &[&str],
        seconds: i64,
    ) -> Result<PathBuf, certs::CertError> {
        let (cert, key) = self.ca.sign_client_valid(user, groups, seconds)?;
        let path = self.state.cluster.data_dir.join(file);
        certs::write_private(
            &path,
            &certs::kubeconfig(&self.url, &self.ca_pem, user, &cert, &key),
        )?;
        Ok(path)
    }

    /// An API client as `user` in `groups` (a component's identity),
    /// through a kubeconfig written to `file` in the data dir.
    pub async fn client_as(
        &self,
        file: &str,
        user: &str,
        groups: &[&str],
    ) -> Result<kube::Client, ClientError> {
        let path = self.write_kubeconfig(file, user, groups)?;
        client_from_kubeconfig(&path).await
    }

    /// Stop serving at once.
    pub fn shutdown(self) {
        self.task.abort();
    }

    /// Stop accepting, end watches, and give the requests in flight
    /// `grace` to finish; then stop. Whether everything finished in time.
    pub async fn drain(self, grace: std::time::Duration) -> bool {
        let finished = tokio::time::timeout(grace, self.state.drain())
            .await
            .is_ok();
        self.task.abort();
        finished
    }
}

/// Open the store in the data dir and start serving.
pub async fn start(
    cluster: ClusterConfig,
    opts: ServerOptions,
) -> Result<RunningServer, StartError> {
    let dir = cluster.data_dir.clone();
    std::fs::create_dir_all(&dir).map_err(|source| StartError::DataDir {
        path: dir.clone(),
        source,
    })?;
    // Secrets are encrypted at rest: with the user's configuration, or a
    // key made in the data dir on first start.
    let encryption = match &opts.encryption_provider_config {
        Some(path) => store::load_config(path)?,
        None => store::ensure_config(&dir)?,
    };
    if let Some(etcd) = &opts.etcd {
        let cache = tokio::task::block_in_place(|| {
            let store = store::EtcdStore::connect(etcd, encryption)?;
            WatchCache::open_etcd(store, opts.watch_history)
        })?;
        tracing::info!(endpoints = ?etcd.endpoints, revision = cache.revision(), "state loaded from etcd");
        return serve(cluster, opts, Arc::new(cache)).await;
    }
    let store = tokio::task::block_in_place(|| -> Result<_, StartError> {
        let store = EncryptedStore::new(RedbStore::open(&dir.join("state.redb"))?, encryption);
        // After a key rotation, values under an older key are written
        // again under the first one.
        let rewritten = store.reencrypt_stale()?;
        if rewritten > 0 {
            tracing::info!(rewritten, "re-encrypted stored values with the current key");
        }
        Ok(store)
    })?;
    let cache = Arc::new(tokio::task::block_in_place(|| {
        WatchCache::open(Box::new(store), opts.watch_history)
    })?);
    serve(cluster, opts, cache).await
}

/// Serve the API over `cache`.
async fn serve(
    cluster: ClusterConfig,
    opts: ServerOptions,
    cache: Arc<WatchCache>,
) -> Result<RunningServer, StartError> {
    let dir = cluster.data_dir.clone();

    let listener = apiserver::bind(cluster.listen)
        .await
        .map_err(|source| StartError::Listen {
            addr: cluster.listen,
            source,
        })?;
    let local = listener.local_addr().map_err(|source| StartError::Listen {
        addr: cluster.listen,
        source,
    })?;
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(cluster.kubernetes_service_ip()),
    ];
    let advertise = opts.advertise_address.or_else(|| {
        let ip = local.ip();
        (!ip.is_unspecified() && !ip.is_loopback()).then_some(ip)
    });
    for ip in [Some(local.ip()), advertise].into_iter().flatten() {
        if !ip.is_unspecified() && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let (dns, extra_ips) = split_sans(
        opts.control_plane_endpoint
            .iter()
            .map(|e| e.host.as_str())
            .chain(opts.cert_extra_sans.iter().map(String::as_str)),
    );
    for ip in extra_ips {
        if !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let (creds, ca) = certs::ensure(&dir, &dns, &ips)?;
    let mesh_ca = certs::MeshCa::ensure(&dir)?;
    let mesh_ca_pem = mesh_ca.pem().to_string();
    let host = if local.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        local.ip()
    };
    let url = format!("https://{}", std::net::SocketAddr::new(host, local.port()));
    // The admins' kubeconfig (kubeadm's admin.conf), and the superuser's
    // for when RBAC bindings are broken (super-admin.conf).
    let kubeconfig = ca.write_kubeconfig(&dir, "kubeconfig", &url, &creds.ca_pem, certs::ADMIN)?;
    ca.write_kubeconfig(
        &dir,
        "super-admin.conf",
        &url,
        &creds.ca_pem,
        certs::SUPER_ADMIN,
    )?;
    let tls = certs::server_config(&creds)?;
    let static_tokens = match &opts.token_auth_file {
        Some(path) => apiserver::authn::read_token_file(path).map_err(StartError::Bootstrap)?,
        None => Vec::new(),
    };

    let issuer = apiserver::tokens::TokenIssuer::ensure(
        &dir,
        apiserver::tokens::TokenIssuer::issuer_url(&cluster.cluster_domain),
    )?;
    let metrics = Arc::new(Metrics::new());
    let kubelet_client = apiserver::KubeletClient::new(&ca)?;
    let state = Arc::new(
        ApiState::new(
            cache,
            static_tokens,
            Arc::new(issuer),
            cluster,
            url.clone(),
            metrics,
        )
        .with_kubelet_client(kubelet_client),
    );
    // Bootstrapping is idempotent: a store hiccup (an etcd connection
    // reset) or another server creating the same object first is tried
    // again, a few times.
    let mut attempt = 0u32;
    loop {
        match tokio::task::block_in_place(|| apiserver::bootstrap(&state)) {
            Ok(()) => break,
            Err(e) if attempt < 5 && (e.code >= 500 || e.code == 409) => {
                attempt += 1;
                tracing::warn!(error = %e.message, attempt, "bootstrapping the store failed; trying again");
                tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
            }
            Err(e) => return Err(StartError::Bootstrap(e.message)),
        }
    }
    // Pods reach the server on the advertise address: listen there too
    // unless the listener already covers it. Likewise the control-plane
    // endpoint when it is an address of this port: a virtual IP that
    // moves between control planes is served wherever it lands.
    let also_listen = |ip: Option<IpAddr>| {
        ip.filter(|ip| !local.ip().is_unspecified() && *ip != local.ip())
            .map(|ip| std::net::SocketAddr::new(ip, local.port()))
    };
    let also_advertise = also_listen(advertise);
    let also_endpoint = also_listen(
        opts.control_plane_endpoint
            .as_ref()
            .filter(|e| e.port.is_none_or(|p| p == local.port()))
            .and_then(|e| e.host.parse().ok())
            .filter(|ip| Some(*ip) != advertise),
    );
    let task = tokio::spawn({
        let state = state.clone();
        async move {
            tokio::join!(
                apiserver::serve(state.clone(), listener, tls.clone()),
                listen_also(
                    state.clone(),
                    also_advertise,
                    tls.clone(),
                    "advertise address"
                ),
                listen_also(state.clone(), also_endpoint, tls, "control-plane endpoint"),
                apiserver::kubernetes_service::run(state.clone(), advertise, local.port()),
                apiserver::mesh_trust::run(state.clone(), mesh_ca_pem),
                apiserver::resource_metrics::run(state),
            );
        }
    });
    tracing::info!(%url, data_dir = %dir.display(), "API server serving");
    let endpoint_url = match (&opts.control_plane_endpoint, advertise) {
        (Some(endpoint), _) => endpoint.url(local.port()),
        (None, Some(ip)) => format!("https://{}", std::net::SocketAddr::new(ip, local.port())),
        (None, None) => url.clone(),
    };
    Ok(RunningServer {
        url,
        endpoint_url,
        kubeconfig,
        state,
        ca: Arc::new(ca),
        ca_pem: creds.ca_pem,
        mesh_ca: Arc::new(mesh_ca),
        task,
    })
}

/// Serve on `addr` as well. The address may not exist yet (a node's pod
/// bridge appears once its kubelet has made the Docker network), so binding
/// is retried until it works.
async fn listen_also(
    state: Arc<ApiState>,
    addr: Option<std::net::SocketAddr>,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
    what: &'static str,
) {
    let Some(addr) = addr else {
        return;
    };
    let mut attempts = 0u32;
    let listener = loop {
        match apiserver::bind(addr).await {
            Ok(l) => break l,
            Err(e) => {
                attempts += 1;
                if attempts == 30 {
                    tracing::warn!(%addr, error = %e, "cannot listen on the {what} yet; serving there once this machine has the address");
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(%addr, "API server serving on the {what}");
    apiserver::accept(state, listener, tls).await;
}

/// An API client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &std::path::Path) -> Result<kube::Client, ClientError> {
    Ok(kube::Client::try_from(config_from_kubeconfig(path).await?)?)
}

/// The client configuration of a kubeconfig file.
pub async fn config_from_kubeconfig(path: &std::path::Path) -> Result<kube::Config, ClientError> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    Ok(kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?)
}

/// Errors while making an API client from a kubeconfig.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The kubeconfig could not be read or used.
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[from] kube::config::KubeconfigError),
    /// The client could not be built.
    #[error("API client: {0}")]
    Client(#[from] kube::Error),
    /// The client's certificate could not be made.
    #[error(transparent)]
    Certificate(#[from] certs::CertError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_plane_endpoints_parse_as_kubeadm_accepts_them() {
        let e: Endpoint = "10.0.0.100:6443".parse().unwrap();
        assert_eq!(e.host, "10.0.0.100");
        assert_eq!(e.url(1), "https://10.0.0.100:6443");
        let e: Endpoint = "api.cluster.test".parse().unwrap();
        assert_eq!(e.url(6443), "https://api.cluster.test:6443");
        let e: Endpoint = "[fd00::1]:7443".parse().unwrap();
        assert_eq!(e.url(6443), "https://[fd00::1]:7443");
        let e: Endpoint = "fd00::1".parse().unwrap();
        assert_eq!(e.url(6443), "https://[fd00::1]:6443");
        for bad in [
            "",
            "Api.Test",
            "a_b:6443",
            "host:0",
            "host:port",
            "[fd00::1",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad:?} accepted");
        }
    }
}
