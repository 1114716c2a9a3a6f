//! The ingress as a member of the mesh: requests to meshed pods leave it
//! in mutual TLS, as the ingress's own workload (its ServiceAccount's
//! SPIFFE ID), so pods that take mutual TLS only (STRICT) still take the
//! ingress's traffic, and their policies can name it.
//!
//! Pingora reaches such a pod through a CONNECT proxy on a Unix socket
//! (its `HttpPeer` proxy support); this module serves that socket: each
//! `CONNECT <pod IP>:<port>` becomes a stream of the mesh's tunnel to the
//! pod's node proxy on port 15008, which must present the pod's
//! ServiceAccount's identity. The ingress's certificate is asked of the
//! Certificates API with its own credentials and renewed half way.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kedge_proxy::mesh::identity::{self, spiffe_id, Account, Identities, IdentityConfig};
use kedge_proxy::mesh::tls::ClientConfigs;
use kedge_proxy::mesh::tunnel::{copy_both_ways, TunnelError, TunnelPool, HBONE_PORT};
use kedge_proxy::mesh::workloads::Workloads;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};

/// The longest CONNECT request head taken.
const MAX_HEAD: usize = 4096;

/// The ingress's way into the mesh.
pub struct MeshOrigin {
    account: Account,
    trust_domain: String,
    identities: Arc<Identities>,
    workloads: ArcSwap<Workloads>,
    pool: TunnelPool,
    socket: PathBuf,
    /// Client TLS configurations by expected peer identity, for the
    /// certificate they were made with.
    tls: Mutex<ClientConfigs>,
}

impl std::fmt::Debug for MeshOrigin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MeshOrigin")
            .field("account", &self.account)
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl MeshOrigin {
    /// The mesh as ServiceAccount `account` (namespace, name) of trust
    /// domain `trust_domain`, its CONNECT socket at `socket`.
    pub fn new(account: Account, trust_domain: String, socket: PathBuf) -> Arc<Self> {
        Arc::new(Self {
            account,
            trust_domain,
            identities: Arc::new(Identities::new()),
            workloads: ArcSwap::default(),
            pool: TunnelPool::default(),
            socket,
            tls: Mutex::default(),
        })
    }

    /// The CONNECT socket to reach `endpoint` through, when it is a meshed
    /// pod and the ingress holds its own identity (until then, meshed pods
    /// are reached as before, in plaintext).
    pub fn proxy_for(&self, endpoint: SocketAddr) -> Option<&Path> {
        let meshed = self
            .workloads
            .load()
            .get(endpoint.ip())
            .is_some_and(|w| w.meshed);
        let ready = self
            .identities
            .get(&self.account.0, &self.account.1)
            .is_some();
        (meshed && ready).then_some(self.socket.as_path())
    }

    /// The identity, the cluster's meshed pods and the CONNECT socket,
    /// until dropped.
    pub async fn run(self: Arc<Self>, client: Client) -> std::io::Result<()> {
        if let Some(dir) = self.socket.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let _ = std::fs::remove_file(&self.socket);
        let listener = UnixListener::bind(&self.socket)?;
        let _cleanup = RemoveOnDrop(self.socket.clone());
        let own = identity::run_own(
            client.clone(),
            IdentityConfig {
                node_name: "ingress".into(),
                trust_domain: self.trust_domain.clone(),
                lifetime: std::time::Duration::from_secs(24 * 3600),
            },
            self.account.clone(),
            self.identities.clone(),
        );
        let index = self.clone().follow_workloads(client);
        let serve = async {
            loop {
                match listener.accept().await {
                    Ok((stream, _)) => {
                        tokio::spawn(self.clone().connect(stream));
                    }
                    Err(error) => tracing::warn!(%error, "mesh CONNECT socket"),
                }
            }
        };
        tokio::join!(own, index, serve);
        Ok(())
    }

    /// Keep the index of pods by address in step with the cluster.
    async fn follow_workloads(self: Arc<Self>, client: Client) {
        let (pods, pods_events) = follow::<Pod>(Api::all(client.clone()));
        let (namespaces, namespaces_events) = follow::<Namespace>(Api::all(client));
        let mut events = futures::stream::select(pods_events, namespaces_events);
        while events.next().await.is_some() {
            // Events coming together make one index.
            while let Some(Some(())) = futures::FutureExt::now_or_never(events.next()) {}
            self.workloads.store(Arc::new(Workloads::index(
                pods.state().iter().map(|p| &**p),
                namespaces.state().iter().map(|n| &**n),
            )));
        }
    }

    /// One CONNECT from Pingora: the tunnel stream to the pod, then bytes
    /// both ways.
    async fn connect(self: Arc<Self>, mut stream: UnixStream) {
        let (head, rest) = match read_head(&mut stream).await {
            Some(read) => read,
            None => return,
        };
        match self.open(&head).await {
            Ok(mut tunnel) => {
                if stream.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.is_err() {
                    return;
                }
                if !rest.is_empty() && tunnel.write_all(&rest).await.is_err() {
                    return;
                }
                let _ = copy_both_ways(&mut stream, &mut tunnel).await;
            }
            Err(error) => {
                tracing::warn!(request = %head.lines().next().unwrap_or_default(), %error, "no mesh tunnel to the endpoint");
                let status = if error.is_verdict() {
                    "403 Forbidden"
                } else {
                    "502 Bad Gateway"
                };
                let _ = stream
                    .write_all(format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        }
    }

    /// The tunnel stream a CONNECT request head asks for.
    async fn open(
        &self,
        head: &str,
    ) -> Result<kedge_proxy::mesh::tunnel::TunnelStream, TunnelError> {
        let bad = |why: &str| {
            TunnelError::Io(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                why.to_string(),
            ))
        };
        let destination: SocketAddr = head
            .lines()
            .next()
            .and_then(|line| line.strip_prefix("CONNECT "))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|authority| authority.parse().ok())
            .ok_or_else(|| bad("not a CONNECT to an address"))?;
        let peer = self
            .workloads
            .load()
            .get(destination.ip())
            .filter(|w| w.meshed)
            .cloned()
            .ok_or_else(|| bad("not a meshed pod"))?;
        let expected = spiffe_id(&self.trust_domain, &peer.namespace, &peer.service_account);
        let config = self.client_tls(&expected)?;
        self.pool
            .open(
                SocketAddr::new(destination.ip(), HBONE_PORT),
                &expected,
                destination,
                |addr| Box::pin(TcpStream::connect(addr)),
                || Ok(config.clone()),
            )
            .await
    }

    fn client_tls(&self, expected: &str) -> Result<Arc<rustls::ClientConfig>, TunnelError> {
        let identity =
            || TunnelError::Identity("the ingress holds no workload certificate yet".into());
        let certificate = self
            .identities
            .get(&self.account.0, &self.account.1)
            .ok_or_else(identity)?;
        let bundle = self.identities.trust_bundle().ok_or_else(identity)?;
        self.tls
            .lock()
            .get(&certificate, &bundle, expected)
            .map_err(|e| TunnelError::Identity(e.to_string()))
    }
}

/// The request head (up to the blank line) and whatever came after it.
async fn read_head(stream: &mut UnixStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = buf.split_off(end + 4);
            return Some((String::from_utf8_lossy(&buf).into_owned(), rest));
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

/// A reflector of all of `api`'s objects and its events.
fn follow<K>(api: Api<K>) -> (Store<K>, futures::stream::BoxStream<'static, ()>)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let events = reflector::reflector(writer, watcher(api, watcher::Config::default()))
        .default_backoff()
        .map(|event| {
            if let Err(error) = event {
                tracing::debug!(%error, "ingress mesh watch");
            }
        })
        .boxed();
    (store, events)
}

struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
