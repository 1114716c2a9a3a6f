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
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            watch_history: 10_000,
            advertise_address: None,
            token_auth_file: None,
            encryption_provider_config: None,
            etcd: None,
        }
    }
}

/// A running API server.
pub struct RunningServer {
    /// The URL it serves on.
    pub url: String,
    /// The URL other machines reach it on: the advertise address's, else
    /// `url` (what `cluster-info` and join commands carry).
    pub endpoint_url: String,
    /// The admin kubeconfig written to the data dir.
    pub kubeconfig: PathBuf,
    /// Shared state (store, metrics).
    pub state: Arc<ApiState>,
    /// The cluster CA, which signs the components' client certificates.
    pub ca: Arc<certs::ClusterCa>,
    /// The cluster CA certificate (PEM).
    pub ca_pem: String,
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
    let (creds, ca) = certs::ensure(&dir, &ips)?;
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
    tokio::task::block_in_place(|| apiserver::bootstrap(&state))
        .map_err(|e| StartError::Bootstrap(e.message))?;
    // Pods reach the server on the advertise address: listen there too
    // unless the listener already covers it.
    let also_listen = advertise.filter(|ip| !local.ip().is_unspecified() && *ip != local.ip());
    let task = tokio::spawn({
        let state = state.clone();
        async move {
            tokio::join!(
                apiserver::serve(state.clone(), listener, tls.clone()),
                listen_on_advertise_address(
                    state.clone(),
                    also_listen.map(|ip| std::net::SocketAddr::new(ip, local.port())),
                    tls
                ),
                apiserver::kubernetes_service::run(state, advertise, local.port()),
            );
        }
    });
    tracing::info!(%url, data_dir = %dir.display(), "API server serving");
    let endpoint_url = match advertise {
        Some(ip) => format!("https://{}", std::net::SocketAddr::new(ip, local.port())),
        None => url.clone(),
    };
    Ok(RunningServer {
        url,
        endpoint_url,
        kubeconfig,
        state,
        ca: Arc::new(ca),
        ca_pem: creds.ca_pem,
        task,
    })
}

/// Serve on `addr` as well. The address may not exist yet (a node's pod
/// bridge appears once its kubelet has made the Docker network), so binding
/// is retried until it works.
async fn listen_on_advertise_address(
    state: Arc<ApiState>,
    addr: Option<std::net::SocketAddr>,
    tls: Arc<tokio_rustls::rustls::ServerConfig>,
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
                    tracing::warn!(%addr, error = %e, "cannot listen on the advertise address yet; pods cannot reach the API server");
                }
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
            }
        }
    };
    tracing::info!(%addr, "API server serving pods on the advertise address");
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
