//! The mesh's data path on one node: for every meshed pod running here, the
//! capture rules in its namespace and the node proxy's three listeners
//! there — outbound (15001), the tunnel (15008) and plaintext inbound
//! (15006) — kept in step with the pods as they come and go.
//!
//! - Outbound: a connection to a ClusterIP is balanced over the Service's
//!   ready endpoints here (as the service proxy would); one to a meshed pod
//!   goes through the tunnel to that pod's proxy, which must present the
//!   pod's ServiceAccount identity; anything else goes as it is.
//! - The tunnel: the caller is known by its certificate; the stream is
//!   connected to the pod from inside its namespace, from the caller's
//!   address (so the application sees who called, as without the mesh).
//! - Plaintext from outside the mesh: passed on (PERMISSIVE) or refused
//!   (STRICT), per the pod's or its namespace's `kedge.io/mesh-mtls`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::http::{
    self, HttpClients, Io, Picked, Prefixed, RequestBalancer, Route as HttpRoute, Sniffed,
};
use super::identity::{spiffe_id, Identities, IdentityConfig, WorkloadCertificate};
use super::metrics::{ConnectionLabels, MeshMetrics, Security};
use super::netns::{
    capture_rules, original_destination, release_rules, Netns, INBOUND_PLAINTEXT_PORT,
    OUTBOUND_PORT,
};
use super::outbound::{self, Route};
use super::policy::{Call, Caller, Policies};
use super::sandbox::{Sandbox, Sandboxes};
use super::tls::{server_config, ClientConfigs};
use super::tunnel::{
    copy_both_ways, serve_connection_with, Connector, Relay, TunnelError, TunnelPool, HBONE_PORT,
};
use super::workloads::{MtlsMode, Workload, Workloads};
use crate::netpol::model::Proto;
use crate::netpol::Policy;
use crate::table::{HttpPort, ProxyTable, ServiceKey, ServicePortEntry};
use crate::Protocol;

/// How often the pods' sandboxes are looked at again (a sandbox replaced
/// under a running pod, a sandbox that was not up yet).
const RESYNC: Duration = Duration::from_secs(5);
/// How long a stream to a pod whose policies read HTTP may stay silent
/// before it is taken for another protocol (one whose server speaks
/// first).
const SNIFF_WAIT: Duration = Duration::from_secs(5);
/// How long a connection to a port that declares no protocol waits for
/// the client's first bytes before it is carried as it is (Istio's
/// former protocol detection timeout): what a client that waits for the
/// server's greeting pays once per connection.
const DETECT_WAIT: Duration = Duration::from_millis(100);
/// How long a connection waits for its pod's certificate (a pod just
/// started: the node is asking for it).
const IDENTITY_WAIT: Duration = Duration::from_secs(10);

/// What every pod's proxy on this node shares.
pub struct NodeMesh {
    /// This node's name.
    pub node_name: String,
    /// The mesh's trust domain (SPIFFE IDs are `spiffe://<it>/ns/…/sa/…`).
    pub trust_domain: String,
    /// The certificates this node holds.
    pub identities: Arc<Identities>,
    /// The cluster's pods by address.
    pub workloads: watch::Receiver<Arc<Workloads>>,
    /// The service proxy's table, for ClusterIPs.
    pub services: watch::Receiver<Arc<ProxyTable>>,
    /// The authorization policies.
    pub policies: watch::Receiver<Arc<Policies>>,
    /// Connections counted per workload pair.
    pub metrics: Arc<MeshMetrics>,
    /// The NetworkPolicies, checked per connection with its own port.
    pub network_policy: Arc<Policy>,
    /// Endpoint choice and health for connections and HTTP requests.
    requests: Arc<RequestBalancer>,
    /// The ClusterIP frontends of the last table seen (held, so its
    /// address is never another's), compiled once per table.
    frontends: Mutex<(Arc<ProxyTable>, Arc<ClusterIps>)>,
}

impl NodeMesh {
    /// The shared part of this node's mesh (the node and trust domain of
    /// `config`).
    pub fn new(
        config: &IdentityConfig,
        identities: Arc<Identities>,
        workloads: watch::Receiver<Arc<Workloads>>,
        services: watch::Receiver<Arc<ProxyTable>>,
        policies: watch::Receiver<Arc<Policies>>,
        metrics: Arc<MeshMetrics>,
        network_policy: Arc<Policy>,
    ) -> Self {
        Self {
            node_name: config.node_name.clone(),
            trust_domain: config.trust_domain.clone(),
            identities,
            workloads,
            services,
            policies,
            metrics,
            network_policy,
            requests: Arc::default(),
            frontends: Mutex::new((Arc::default(), Arc::default())),
        }
    }

    /// Where a connection to `destination` goes: a ClusterIP (its Service
    /// port, looked up by the caller, in `frontend`) is balanced over its
    /// endpoints first (the one with fewer open connections of two,
    /// ejected ones left out; the pick counts the connection open until
    /// dropped); a meshed pod is reached through the tunnel.
    fn route(
        &self,
        destination: SocketAddr,
        frontend: Option<&ClusterIpPort>,
    ) -> (Route, Option<Arc<Workload>>, Option<Picked>) {
        let picked = frontend.and_then(|f| self.requests.pick(&self.endpoints(f), &[]));
        let (route, peer) = self.route_to(picked.as_ref().map_or(destination, |p| p.endpoint));
        (route, peer, picked)
    }

    /// How `target` (a pod's address and port, or anything else) is
    /// reached, and the pod there.
    pub fn route_to(&self, target: SocketAddr) -> (Route, Option<Arc<Workload>>) {
        let workloads = self.workloads.borrow().clone();
        match workloads.get(target.ip()).filter(|w| w.meshed) {
            Some(peer) => (
                Route::Tunnel {
                    destination: target,
                    identity: spiffe_id(&self.trust_domain, &peer.namespace, &peer.service_account),
                },
                Some(peer.clone()),
            ),
            None => (Route::Direct(target), workloads.get(target.ip()).cloned()),
        }
    }

    /// The endpoints a connection or request to `port` goes to: its own,
    /// or, when its traffic is split, those of a backend Service picked by
    /// weight (backends without endpoints left out).
    fn endpoints(&self, port: &ClusterIpPort) -> Arc<[SocketAddr]> {
        let ready = port.split.iter().filter(|(e, _)| !e.is_empty());
        let total: u64 = ready.clone().map(|(_, w)| u64::from(*w)).sum();
        if total == 0 {
            return port.endpoints.clone();
        }
        let mut ticket = self.requests.random() % total;
        for (endpoints, weight) in ready {
            if ticket < u64::from(*weight) {
                return endpoints.clone();
            }
            ticket -= u64::from(*weight);
        }
        port.endpoints.clone()
    }

    /// The Service port at `frontend`, if it is a ClusterIP's.
    fn frontend(&self, frontend: SocketAddr) -> Option<ClusterIpPort> {
        self.frontends().get(&frontend).cloned()
    }

    fn frontends(&self) -> Arc<ClusterIps> {
        let table = self.services.borrow().clone();
        let mut cached = self.frontends.lock();
        if !Arc::ptr_eq(&cached.0, &table) {
            let compiled = Arc::new(cluster_ip_frontends(&table, &self.node_name));
            *cached = (table, compiled);
        }
        cached.1.clone()
    }

    /// Whether `caller` may make `call` to `port` of `workload`; a refusal
    /// is logged and counted.
    fn authorize(
        &self,
        workload: &Workload,
        caller: Caller<'_>,
        port: u16,
        call: Call<'_>,
    ) -> bool {
        let policies = self.policies.borrow().clone();
        match policies.check(&workload.namespace, &workload.labels, caller, port, call) {
            Ok(()) => true,
            Err(denial) => {
                let caller = caller.spiffe_id.unwrap_or("plaintext");
                let (method, path) = match call {
                    Call::Connection => ("", ""),
                    Call::Request { method, path } => (method, path),
                };
                tracing::info!(pod = %workload.name, namespace = %workload.namespace, %caller, port, method, path, policy = %denial.policy, "connection denied by authorization policy");
                self.metrics.denied(workload, &denial.policy);
                false
            }
        }
    }

    /// The certificate held for `workload`, waiting a little for one being
    /// asked for.
    async fn certificate(&self, workload: &Workload) -> Option<(Arc<WorkloadCertificate>, String)> {
        let deadline = tokio::time::Instant::now() + IDENTITY_WAIT;
        loop {
            let held = self
                .identities
                .get(&workload.namespace, &workload.service_account);
            if let (Some(cert), Some(bundle)) = (held, self.identities.trust_bundle()) {
                return Some((cert, bundle));
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A ClusterIP's Service port as the mesh needs it.
#[derive(Clone, Debug)]
struct ClusterIpPort {
    service: ServiceKey,
    /// Its ready endpoints (`internalTrafficPolicy` applied).
    endpoints: Arc<[SocketAddr]>,
    /// Set when the port carries HTTP.
    http: Option<HttpPort>,
    /// Set when the port declares no protocol: HTTP is looked for.
    sniff: Option<HttpPort>,
    /// Its traffic split: the backends' endpoints and weights.
    split: Vec<(Arc<[SocketAddr]>, u32)>,
}

/// ClusterIP:port → its Service port.
type ClusterIps = HashMap<SocketAddr, ClusterIpPort>;

/// The TCP ClusterIP ports of `table`, as this node's service proxy
/// serves them, with their traffic splits resolved: a backend's port is
/// the one of the same name, or its only one.
fn cluster_ip_frontends(table: &ProxyTable, node: &str) -> ClusterIps {
    let tcp: Vec<_> = table
        .ports
        .iter()
        .filter(|p| p.protocol == Protocol::Tcp)
        .collect();
    let ready = |entry: &ServicePortEntry| -> Arc<[SocketAddr]> {
        entry
            .endpoints
            .iter()
            .filter(|e| !entry.internal_local || e.node_name.as_deref() == Some(node))
            .map(|e| e.addr)
            .collect()
    };
    let backend = |namespace: &str, name: &str, port_name: &str| {
        let ports: Vec<&&ServicePortEntry> = tcp
            .iter()
            .filter(|p| &*p.service.namespace == namespace && &*p.service.name == name)
            .collect();
        ports
            .iter()
            .find(|p| &*p.port_name == port_name)
            .or_else(|| (ports.len() == 1).then(|| &ports[0]))
            .map(|p| ready(p))
            .unwrap_or_else(|| Arc::from(Vec::new()))
    };
    let mut out = HashMap::new();
    for entry in &tcp {
        let endpoints = ready(entry);
        let split: Vec<(Arc<[SocketAddr]>, u32)> = entry
            .traffic_split
            .iter()
            .map(|(name, weight)| {
                (
                    backend(&entry.service.namespace, name, &entry.port_name),
                    *weight,
                )
            })
            .collect();
        for ip in &entry.cluster_ips {
            out.entry(SocketAddr::new(*ip, entry.port))
                .or_insert_with(|| ClusterIpPort {
                    service: entry.service.clone(),
                    endpoints: endpoints.clone(),
                    http: entry.http,
                    sniff: entry.sniff,
                    split: split.clone(),
                });
        }
    }
    out
}

/// One meshed pod's proxy: its namespace, its listeners' tasks (aborted on
/// drop), its tunnel sessions.
struct PodProxy {
    context: Arc<PodContext>,
    sandbox: Sandbox,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl PodProxy {
    /// Whether this proxy still serves `workload` as it is now: the same
    /// pod at the same address in the same sandbox. Anything else (its
    /// mTLS mode) is taken in place.
    fn serves(&self, workload: &Workload, sandbox: Option<&Sandbox>) -> bool {
        let current = self.context.workload();
        current.uid == workload.uid
            && current.ip == workload.ip
            && current.service_account == workload.service_account
            && sandbox == Some(&self.sandbox)
    }
}

impl Drop for PodProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Keep a [`PodProxy`] for every meshed pod on this node, finding pods'
/// namespaces with `sandboxes`, until dropped.
pub async fn run(mesh: Arc<NodeMesh>, sandboxes: Box<dyn Sandboxes>) {
    let mut workloads = mesh.workloads.clone();
    let mut proxies: HashMap<String, PodProxy> = HashMap::new();
    loop {
        let current = workloads.borrow_and_update().clone();
        let wanted: HashMap<&str, &Arc<Workload>> = current
            .meshed_on(&mesh.node_name)
            .map(|w| (w.uid.as_str(), w))
            .collect();
        let running = if wanted.is_empty() {
            HashMap::new()
        } else {
            match sandboxes.running().await {
                Ok(running) => running,
                Err(error) => {
                    tracing::warn!(%error, "listing the pods' sandboxes");
                    // Keep what runs; look again at the next resync.
                    let _ = tokio::time::timeout(RESYNC, workloads.changed()).await;
                    continue;
                }
            }
        };
        // Pods gone, out of the mesh, or with a new sandbox or address.
        let stale: Vec<String> = proxies
            .iter()
            .filter(|(uid, proxy)| {
                !wanted
                    .get(uid.as_str())
                    .is_some_and(|w| proxy.serves(w, running.get(uid.as_str())))
            })
            .map(|(uid, _)| uid.clone())
            .collect();
        for uid in stale {
            let Some(proxy) = proxies.remove(&uid) else {
                continue;
            };
            let workload = proxy.context.workload();
            tracing::info!(pod = %workload.name, namespace = %workload.namespace, "pod no longer carried by the mesh");
            if running.get(&uid) == Some(&proxy.sandbox) {
                // Still running, out of the mesh: its traffic flows as before.
                let netns = &proxy.context.netns;
                let released = netns
                    .apply_nft(&release_rules())
                    .and_then(|()| netns.stop_routing_answers_to_proxy());
                if let Err(error) = released {
                    tracing::warn!(pod = %workload.name, %error, "removing the capture rules");
                }
            }
        }
        for (uid, workload) in wanted {
            if let Some(proxy) = proxies.get(uid) {
                *proxy.context.workload.write() = workload.clone();
                continue;
            }
            let Some(sandbox) = running.get(uid) else {
                continue;
            };
            match start(&mesh, workload.clone(), sandbox.clone()) {
                Ok(proxy) => {
                    tracing::info!(pod = %workload.name, namespace = %workload.namespace, ip = %workload.ip, "pod's traffic captured by the mesh");
                    proxies.insert(uid.to_string(), proxy);
                }
                Err(error) => {
                    tracing::warn!(pod = %workload.name, namespace = %workload.namespace, %error, "capturing the pod's traffic")
                }
            }
        }
        if tokio::time::timeout(RESYNC, workloads.changed())
            .await
            .is_ok_and(|r| r.is_err())
        {
            return;
        }
    }
}

/// Open the pod's listeners and load its capture rules (in that order, so
/// nothing is steered to a port with no listener).
fn start(
    mesh: &Arc<NodeMesh>,
    workload: Arc<Workload>,
    sandbox: Sandbox,
) -> std::io::Result<PodProxy> {
    let netns = Arc::new(Netns::open(&sandbox.netns)?);
    let any = |port| SocketAddr::from(([0, 0, 0, 0], port));
    let outbound = TcpListener::from_std(netns.listen(any(OUTBOUND_PORT))?)?;
    let tunnel = TcpListener::from_std(netns.listen(any(HBONE_PORT))?)?;
    let plaintext = TcpListener::from_std(netns.listen(any(INBOUND_PLAINTEXT_PORT))?)?;
    netns.route_answers_to_proxy()?;
    netns.apply_nft(&capture_rules(
        HBONE_PORT,
        Some(kedge_config::cluster::KUBELET_PROBE_SOURCE),
    ))?;
    let context = Arc::new(PodContext {
        mesh: mesh.clone(),
        workload: RwLock::new(workload),
        netns,
        pool: TunnelPool::default(),
        tls: Mutex::new(TlsCache::default()),
        http: std::sync::OnceLock::new(),
    });
    let tasks = vec![
        tokio::spawn(accept(outbound, context.clone(), PodContext::outbound)),
        tokio::spawn(accept(tunnel, context.clone(), PodContext::tunnel)),
        tokio::spawn(accept(plaintext, context.clone(), PodContext::plaintext)),
    ];
    Ok(PodProxy {
        context,
        sandbox,
        tasks,
    })
}

async fn accept<F, Fut>(listener: TcpListener, pod: Arc<PodContext>, handle: F)
where
    F: Fn(Arc<PodContext>, TcpStream, SocketAddr) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                tokio::spawn(handle(pod.clone(), stream, peer));
            }
            Err(error) => {
                // Out of descriptors, say: wait rather than spin.
                tracing::warn!(pod = %pod.workload().name, %error, "accepting a mesh connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// TLS configurations made from the pod's current certificate, made again
/// when it is renewed.
#[derive(Default)]
struct TlsCache {
    /// The server's, with the certificate it was made from.
    server: Option<(Arc<WorkloadCertificate>, Arc<rustls::ServerConfig>)>,
    clients: ClientConfigs,
}

/// What one meshed pod's connections share.
struct PodContext {
    mesh: Arc<NodeMesh>,
    /// The pod as last seen (its mTLS mode may change).
    workload: RwLock<Arc<Workload>>,
    netns: Arc<Netns>,
    pool: TunnelPool,
    tls: Mutex<TlsCache>,
    /// Its HTTP connections to endpoints, made on first use.
    http: std::sync::OnceLock<HttpClients>,
}

impl PodContext {
    fn workload(&self) -> Arc<Workload> {
        self.workload.read().clone()
    }

    /// The TLS client configuration expecting `expected`, from the pod's
    /// current certificate.
    fn client_tls(
        &self,
        certificate: &Arc<WorkloadCertificate>,
        bundle: &str,
        expected: &str,
    ) -> Result<Arc<rustls::ClientConfig>, TunnelError> {
        self.tls
            .lock()
            .clients
            .get(certificate, bundle, expected)
            .map_err(|e| TunnelError::Identity(e.to_string()))
    }

    /// A stream along `route` from the pod.
    async fn dial(&self, route: &Route) -> Result<Box<dyn Io>, TunnelError> {
        // NetworkPolicies, as without the mesh: the connection's own
        // destination and port (the tunnel's port is let through).
        let source = self.workload().ip;
        let destination = route.destination();
        if !self.mesh.network_policy.allows(
            source,
            destination.ip(),
            Proto::Tcp,
            destination.port(),
        ) {
            tracing::info!(pod = %self.workload().name, %destination, "mesh connection denied by a NetworkPolicy");
            return Err(TunnelError::NetworkPolicy);
        }
        match route {
            Route::Tunnel { .. } => {
                let workload = self.workload();
                let (certificate, bundle) =
                    self.mesh.certificate(&workload).await.ok_or_else(|| {
                        TunnelError::Identity(format!(
                            "no certificate for {} yet",
                            workload.identity()
                        ))
                    })?;
                outbound::dial(&self.netns, route, &self.pool, |expected| {
                    self.client_tls(&certificate, &bundle, expected)
                })
                .await
            }
            Route::Direct(_) => {
                outbound::dial(&self.netns, route, &self.pool, |_| {
                    Err(TunnelError::Identity("not meshed".into()))
                })
                .await
            }
        }
    }

    /// The pod's HTTP clients; their connections are made by [`dial`]
    /// (held weakly: the clients live in the pod's context).
    fn http_clients(self: &Arc<Self>) -> HttpClients {
        self.http
            .get_or_init(|| {
                let pod = Arc::downgrade(self);
                HttpClients::new(Arc::new(move |endpoint| {
                    let pod = pod.clone();
                    Box::pin(async move {
                        let pod = pod
                            .upgrade()
                            .ok_or_else(|| TunnelError::Identity("the pod is gone".into()))?;
                        let (route, _) = pod.mesh.route_to(endpoint);
                        pod.dial(&route).await
                    })
                }))
            })
            .clone()
    }

    /// Serve the application's connection to an HTTP Service port as HTTP.
    async fn http<S: Io + 'static>(
        self: Arc<Self>,
        app: S,
        frontend: SocketAddr,
        port: HttpPort,
        service: ServiceKey,
    ) {
        let source = self.workload().identity();
        let destination_service = format!("{}/{}", service.namespace, service.name);
        let mesh = self.mesh.clone();
        let endpoints_of = mesh.clone();
        let done_mesh = mesh.clone();
        let route = Arc::new(HttpRoute {
            endpoints: Box::new(move || {
                endpoints_of
                    .frontend(frontend)
                    .map(|f| endpoints_of.endpoints(&f))
                    .unwrap_or_else(|| Arc::from(Vec::new()))
            }),
            port,
            balancer: mesh.requests.clone(),
            clients: self.http_clients(),
            done: Box::new(move |outcome, elapsed| {
                let destination = outcome
                    .endpoint
                    .and_then(|e| pod_at(&done_mesh.workloads, e))
                    .map_or_else(|| "unknown".to_string(), |w| w.identity());
                for endpoint in &outcome.ejected {
                    tracing::info!(%endpoint, service = %destination_service, "endpoint ejected after failing requests");
                }
                done_mesh.metrics.request(
                    &source,
                    &destination_service,
                    &destination,
                    outcome,
                    elapsed,
                );
            }),
        });
        if let Err(error) = http::serve(app, route).await {
            tracing::debug!(%error, "mesh HTTP connection ended");
        }
    }

    /// A connection the pod's application made.
    async fn outbound(self: Arc<Self>, app: TcpStream, _peer: SocketAddr) {
        let workload = self.workload();
        let destination = match original_destination(&app) {
            Ok(d) => d,
            Err(error) => {
                tracing::debug!(%error, "a captured connection without its destination");
                return;
            }
        };
        let _ = app.set_nodelay(true);
        let frontend = self.mesh.frontend(destination);
        let app = match &frontend {
            Some(ClusterIpPort {
                service,
                http: Some(port),
                ..
            }) => return self.http(app, destination, *port, service.clone()).await,
            // A port that declares no protocol: HTTP when the client's
            // first bytes say so (a client that waits for the server is
            // carried as it is after DETECT_WAIT).
            Some(ClusterIpPort {
                service,
                sniff: Some(port),
                ..
            }) => match http::sniff_stream(app, DETECT_WAIT).await {
                Ok((app, Sniffed::Http1 | Sniffed::Http2)) => {
                    return self.http(app, destination, *port, service.clone()).await
                }
                Ok((app, Sniffed::Other)) => app,
                Err(_) => return,
            },
            _ => Prefixed::new(bytes::Bytes::new(), app),
        };
        let (route, peer, picked) = self.mesh.route(destination, frontend.as_ref());
        let labels = ConnectionLabels::outbound(&workload, peer.as_deref(), &route);
        self.mesh.metrics.opened(&labels);
        let mut app = app;
        let dialled = self.dial(&route).await;
        if let Some(picked) = &picked {
            // Endpoints that cannot be reached are ejected, as for
            // requests; a policy's refusal says nothing of their health.
            if !dialled.as_ref().is_err_and(TunnelError::is_verdict) {
                self.mesh.requests.record(picked, dialled.is_ok());
            }
        }
        let result = match dialled {
            Ok(mut upstream) => copy_both_ways(&mut app, &mut upstream)
                .await
                .map_err(TunnelError::from),
            Err(error) => {
                // The application sees a reset, as from a closed port.
                let _ = app.get_ref().set_zero_linger();
                Err(error)
            }
        };
        match result {
            Ok((sent, received)) => self.mesh.metrics.closed(&labels, sent, received),
            Err(error) => {
                self.mesh.metrics.failed(&labels);
                tracing::debug!(pod = %workload.name, destination = %route.destination(), %error, "mesh connection failed");
            }
        }
    }

    /// A tunnel from another pod's proxy.
    async fn tunnel(self: Arc<Self>, tcp: TcpStream, peer: SocketAddr) {
        let workload = self.workload();
        let Some((certificate, bundle)) = self.mesh.certificate(&workload).await else {
            tracing::warn!(pod = %workload.name, %peer, "a tunnel before the pod's certificate was issued");
            return;
        };
        let config = {
            let mut cache = self.tls.lock();
            match &cache.server {
                Some((made_from, config)) if Arc::ptr_eq(made_from, &certificate) => config.clone(),
                _ => match server_config(&certificate, &bundle) {
                    Ok(config) => {
                        cache.server = Some((certificate.clone(), config.clone()));
                        config
                    }
                    Err(error) => {
                        tracing::warn!(pod = %workload.name, %error, "the pod's certificate is unusable");
                        return;
                    }
                },
            }
        };
        let own_ip = workload.ip;
        let pod = self.clone();
        // Only this pod, never the proxy's own ports, and what the
        // NetworkPolicies let the calling pod reach.
        let allow = move |caller: &str, destination: SocketAddr| {
            let allowed = destination.ip() == own_ip
                && ![OUTBOUND_PORT, HBONE_PORT, INBOUND_PLAINTEXT_PORT]
                    .contains(&destination.port());
            if allowed
                && !pod.mesh.network_policy.allows(
                    peer.ip(),
                    destination.ip(),
                    Proto::Tcp,
                    destination.port(),
                )
            {
                tracing::info!(pod = %pod.workload().name, namespace = %pod.workload().namespace, %caller, %destination, "mesh connection denied by a NetworkPolicy");
                return false;
            }
            if allowed {
                tracing::info!(pod = %pod.workload().name, namespace = %pod.workload().namespace, %caller, %destination, "mesh connection accepted");
            }
            allowed
        };
        let netns = self.netns.clone();
        let metrics = self.mesh.metrics.clone();
        let callee = workload.clone();
        let workloads = self.mesh.workloads.clone();
        let connect: Connector = Arc::new(move |destination| {
            let (netns, metrics, workload) = (netns.clone(), metrics.clone(), callee.clone());
            let workloads = workloads.clone();
            Box::pin(async move {
                // The pod sees the caller's pod address, as without the mesh.
                let stream = netns.connect_as(peer.ip(), destination).await;
                let source = pod_at(&workloads, peer);
                metrics.inbound(
                    source.as_deref(),
                    &workload,
                    Security::MutualTls,
                    stream.is_ok(),
                );
                stream
            })
        });
        let relay = self.clone().relay();
        if let Err(error) = serve_connection_with(tcp, config, allow, connect, relay).await {
            tracing::debug!(pod = %workload.name, %peer, %error, "tunnel session ended");
        }
    }

    /// How a tunnelled stream reaches the pod: bytes copied, or, when a
    /// policy selecting the pod names methods or paths and the stream is
    /// HTTP, request by request as the policies say.
    fn relay(self: Arc<Self>) -> Relay {
        Arc::new(move |caller, destination, stream, upstream| {
            let pod = self.clone();
            Box::pin(async move {
                let workload = pod.workload();
                let per_request = pod
                    .mesh
                    .policies
                    .borrow()
                    .reads_http(&workload.namespace, &workload.labels);
                let (mut stream, mut upstream) = (stream, upstream);
                if !per_request {
                    let _ = copy_both_ways(&mut stream, &mut upstream).await;
                    return;
                }
                let Ok((mut stream, kind)) = http::sniff_stream(stream, SNIFF_WAIT).await else {
                    return;
                };
                let caller_id = Caller {
                    spiffe_id: Some(&caller),
                };
                let port = destination.port();
                if kind == Sniffed::Other {
                    if pod
                        .mesh
                        .authorize(&workload, caller_id, port, Call::Connection)
                    {
                        let _ = copy_both_ways(&mut stream, &mut upstream).await;
                    }
                    return;
                }
                let allow = move |method: &hyper::Method, path: &str| {
                    let call = Call::Request {
                        method: method.as_str(),
                        path,
                    };
                    let caller = Caller {
                        spiffe_id: Some(&caller),
                    };
                    pod.mesh.authorize(&pod.workload(), caller, port, call)
                };
                if let Err(error) = http::serve_inbound(stream, kind, upstream, allow).await {
                    tracing::debug!(%error, "mesh HTTP stream ended");
                }
            })
        })
    }

    /// Plaintext to the pod from outside the mesh.
    async fn plaintext(self: Arc<Self>, mut caller: TcpStream, peer: SocketAddr) {
        let workload = self.workload();
        let destination = match original_destination(&caller) {
            Ok(d) => d,
            Err(_) => return,
        };
        if workload.mtls == MtlsMode::Strict {
            tracing::info!(pod = %workload.name, namespace = %workload.namespace, %peer, %destination, "plaintext refused: the pod takes mutual TLS only");
            let source = pod_at(&self.mesh.workloads, peer);
            self.mesh.metrics.refused(source.as_deref(), &workload);
            // A reset, not a clean close: the caller sees a refusal.
            let _ = caller.set_zero_linger();
            return;
        }
        if !self.mesh.authorize(
            &workload,
            Caller { spiffe_id: None },
            destination.port(),
            Call::Connection,
        ) {
            let _ = caller.set_zero_linger();
            return;
        }
        let upstream = self.netns.connect_as(peer.ip(), destination).await;
        let source = pod_at(&self.mesh.workloads, peer);
        self.mesh.metrics.inbound(
            source.as_deref(),
            &workload,
            Security::None,
            upstream.is_ok(),
        );
        if let Ok(mut upstream) = upstream {
            let _ = copy_both_ways(&mut caller, &mut upstream).await;
        }
    }
}

/// The pod a connection came from, by its address.
fn pod_at(workloads: &watch::Receiver<Arc<Workloads>>, peer: SocketAddr) -> Option<Arc<Workload>> {
    workloads.borrow().get(peer.ip()).cloned()
}
