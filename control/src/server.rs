//! Starting the control plane: data dir, store, credentials, listener,
//! kubeconfig.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use kedge_config::cluster::ClusterConfig;

use crate::apiserver::{self, certs, ApiState};
use crate::metrics::Metrics;
use crate::store::{RedbStore, WatchCache};

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
    /// How many past events the watch cache keeps for resuming watches.
    pub watch_history: usize,
}

impl Default for ServerOptions {
    fn default() -> Self {
        Self {
            watch_history: 10_000,
        }
    }
}

/// A running API server.
pub struct RunningServer {
    /// The URL it serves on.
    pub url: String,
    /// The admin kubeconfig written to the data dir.
    pub kubeconfig: PathBuf,
    /// Shared state (store, metrics).
    pub state: Arc<ApiState>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// An API client with the admin credentials, for in-process components.
    pub async fn client(&self) -> Result<kube::Client, ClientError> {
        client_from_kubeconfig(&self.kubeconfig).await
    }

    /// Stop serving.
    pub fn shutdown(self) {
        self.task.abort();
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
    let store = tokio::task::block_in_place(|| RedbStore::open(&dir.join("state.redb")))?;
    let cache = Arc::new(tokio::task::block_in_place(|| {
        WatchCache::open(Box::new(store), opts.watch_history)
    })?);

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
    if !local.ip().is_unspecified() && !ips.contains(&local.ip()) {
        ips.push(local.ip());
    }
    let (creds, ca) = certs::ensure(&dir, &ips)?;
    let host = if local.ip().is_unspecified() {
        IpAddr::from([127, 0, 0, 1])
    } else {
        local.ip()
    };
    let url = format!("https://{}", std::net::SocketAddr::new(host, local.port()));
    let kubeconfig = certs::write_kubeconfig(&dir, &url, &creds)?;
    let tls = certs::server_config(&creds)?;

    let issuer = apiserver::tokens::TokenIssuer::ensure(
        &dir,
        apiserver::tokens::TokenIssuer::issuer_url(&cluster.cluster_domain),
    )?;
    let metrics = Arc::new(Metrics::new());
    let kubelet_client = apiserver::KubeletClient::new(&ca)?;
    let state = Arc::new(
        ApiState::new(
            cache,
            creds.admin_token.clone(),
            Arc::new(issuer),
            cluster,
            url.clone(),
            metrics,
        )
        .with_kubelet_client(kubelet_client),
    );
    tokio::task::block_in_place(|| apiserver::bootstrap(&state))
        .map_err(|e| StartError::Bootstrap(e.message))?;
    let task = tokio::spawn(apiserver::serve(state.clone(), listener, tls));
    tracing::info!(%url, data_dir = %dir.display(), "API server serving");
    Ok(RunningServer {
        url,
        kubeconfig,
        state,
        task,
    })
}

/// An API client from a kubeconfig file.
pub async fn client_from_kubeconfig(path: &std::path::Path) -> Result<kube::Client, ClientError> {
    let kc = kube::config::Kubeconfig::read_from(path)?;
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
    Ok(kube::Client::try_from(cfg)?)
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
}
