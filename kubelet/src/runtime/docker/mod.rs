//! The Docker runtime: pods as containers in the machine's Docker Engine,
//! through `bollard`.
//!
//! A pod sandbox is an infra container on the node's pod network; it owns
//! the pod's network and IPC namespaces, its hostname and resolv.conf.
//! Every container of the pod joins those namespaces (`container:<infra>`),
//! so the containers of a pod share one IP and localhost, as in Kubernetes.
//!
//! Every container carries labels naming its node, pod and container, so a
//! restarted kubelet finds (and re-adopts or removes) what an earlier run
//! left, and one node never touches another node's containers on a shared
//! engine.

mod events;
mod network;
mod pause;
mod program_image;
mod streams;

pub use network::gateway;
pub use program_image::{ensure_program_image, ProgramImage};

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, ContainerInspectResponse, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use bollard::Docker;
use bytes::Bytes;
use futures::future::{BoxFuture, FutureExt};
use futures::stream::BoxStream;
use futures::TryStreamExt;
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Probe;
use tokio::sync::broadcast;

use super::{
    ContainerConfig, ContainerState, ContainerStats, ContainerStatus, DnsConfig, ExecRequest,
    ExecSession, LogOptions, PodLifecycleEvent, PodSandboxConfig, PodSandboxState,
    PodSandboxStatus, ProbeKind, Result, Runtime, RuntimeError,
};

/// Set on everything kedge creates in Docker, so a crashed run can be swept.
pub const LABEL_MANAGED: &str = "io.kedge.managed";
/// The node a container or network belongs to.
pub const LABEL_NODE: &str = "io.kedge.node";
/// `podsandbox` or `container`.
const LABEL_TYPE: &str = "io.kedge.type";
const LABEL_POD_UID: &str = "io.kubernetes.pod.uid";
const LABEL_POD_NAME: &str = "io.kubernetes.pod.name";
const LABEL_POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
const LABEL_CONTAINER_NAME: &str = "io.kubernetes.container.name";
const LABEL_SANDBOX_ID: &str = "io.kubernetes.sandbox.id";
const LABEL_ATTEMPT: &str = "io.kedge.container.attempt";
/// The image as the pod spec names it (Docker keeps only the resolved one).
const LABEL_IMAGE: &str = "io.kedge.container.image";
const LABEL_INIT: &str = "io.kedge.container.init";

const TYPE_SANDBOX: &str = "podsandbox";
const TYPE_CONTAINER: &str = "container";

/// How the Docker runtime of one node is set up.
#[derive(Debug, Clone)]
pub struct DockerOptions {
    /// The node's name (labels scope every container to it).
    pub node_name: String,
    /// The node's pod CIDR, the subnet of its pod network.
    pub pod_cidr: String,
    /// The Docker network of the pods; default `kedge-<node name>`.
    pub network: Option<String>,
    /// The pods' MTU (the link's less what the pod network's tunnel
    /// takes); default: Docker's.
    pub mtu: Option<u32>,
    /// Whether Docker masquerades what pods send off their bridge; off
    /// when the node's pod network does it (only for traffic leaving the
    /// cluster CIDR, so pods reach each other with their own addresses).
    pub docker_masquerade: bool,
}

/// Pods in Docker.
pub struct DockerRuntime {
    docker: Docker,
    /// The address probes come from, and the pod subnet it serves.
    probe_source: Option<(std::net::Ipv4Addr, network::Subnet)>,
    node: String,
    network: String,
    pause_image: String,
    version: String,
    events: broadcast::Sender<PodLifecycleEvent>,
    /// Dropped with the runtime, which ends its event follower.
    alive: Arc<()>,
}

/// Docker's answer had this HTTP status.
fn is_status(e: &bollard::errors::Error, code: u16) -> bool {
    matches!(e, bollard::errors::Error::DockerResponseServerError { status_code, .. } if *status_code == code)
}

/// A Docker error in the runtime's terms.
fn map_err(what: &str, e: bollard::errors::Error) -> RuntimeError {
    RuntimeError::Failed(format!("{what}: {e}"))
}

fn not_found(kind: &'static str, id: &str) -> RuntimeError {
    RuntimeError::NotFound {
        kind,
        id: id.to_string(),
    }
}

/// Docker's zero time means "never".
fn parse_time(s: Option<&str>) -> Option<Timestamp> {
    let s = s?;
    if s.starts_with("0001-") {
        return None;
    }
    s.parse().ok()
}

/// A name Docker accepts for a part of a container name.
fn name_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

// === impl DockerRuntime ===

impl DockerRuntime {
    /// Connect to the local engine, make the pod network and the infra
    /// image, and start following container events.
    pub async fn connect(options: DockerOptions) -> Result<Arc<Self>> {
        let docker = Docker::connect_with_local_defaults()
            .map_err(|e| map_err("connecting to docker", e))?
            // Stops wait out grace periods inside one request.
            .with_timeout(Duration::from_secs(3600));
        let version = docker
            .version()
            .await
            .map_err(|e| map_err("asking docker its version", e))?
            .version
            .unwrap_or_default();
        let network = options
            .network
            .clone()
            .unwrap_or_else(|| format!("kedge-{}", name_part(&options.node_name)));
        network::ensure(&docker, &network, &options).await?;
        let probe_source = network::add_probe_source(&docker, &network, &options.pod_cidr).await;
        let pause_image = pause::ensure_image(&docker).await?;
        let (events, _) = broadcast::channel(1024);
        let runtime = Arc::new(Self {
            docker,
            probe_source,
            node: options.node_name,
            network,
            pause_image,
            version,
            events,
            alive: Arc::new(()),
        });
        tokio::spawn(events::follow(
            runtime.docker.clone(),
            runtime.node.clone(),
            runtime.events.clone(),
            Arc::downgrade(&runtime.alive),
        ));
        Ok(runtime)
    }

    /// The engine client (logs and exec streams use it).
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// The Docker network the pods are on.
    pub fn network(&self) -> &str {
        &self.network
    }

    fn labels(&self, kind: &str, sandbox: &PodSandboxConfig) -> HashMap<String, String> {
        HashMap::from([
            (LABEL_MANAGED.to_string(), "true".to_string()),
            (LABEL_NODE.to_string(), self.node.clone()),
            (LABEL_TYPE.to_string(), kind.to_string()),
            (LABEL_POD_UID.to_string(), sandbox.pod_uid.clone()),
            (LABEL_POD_NAME.to_string(), sandbox.name.clone()),
            (LABEL_POD_NAMESPACE.to_string(), sandbox.namespace.clone()),
        ])
    }

    /// Create a container, taking the next free attempt suffix when the
    /// name is held by a container an earlier run left behind.
    async fn create_named(
        &self,
        base: &str,
        attempt: u32,
        body: ContainerCreateBody,
    ) -> Result<String> {
        let mut attempt = attempt;
        loop {
            let name = format!("{base}_{attempt}");
            let options = CreateContainerOptionsBuilder::default().name(&name).build();
            match self
                .docker
                .create_container(Some(options), body.clone())
                .await
            {
                Ok(r) => return Ok(r.id),
                Err(e) if is_status(&e, 409) && attempt < 1000 => attempt += 1,
                Err(e) if is_status(&e, 404) => {
                    return Err(RuntimeError::Failed(format!("creating {name}: {e}")))
                }
                Err(e) => return Err(map_err(&format!("creating {name}"), e)),
            }
        }
    }

    async fn inspect(&self, kind: &'static str, id: &str) -> Result<ContainerInspectResponse> {
        match self.docker.inspect_container(id, None).await {
            Ok(c) => Ok(c),
            Err(e) if is_status(&e, 404) => Err(not_found(kind, id)),
            Err(e) => Err(map_err("inspecting a container", e)),
        }
    }

    /// Containers of this node with these labels (`key=value`).
    async fn list(&self, labels: &[String]) -> Result<Vec<bollard::models::ContainerSummary>> {
        let mut wanted = vec![format!("{LABEL_NODE}={}", self.node)];
        wanted.extend_from_slice(labels);
        let filters = HashMap::from([("label".to_string(), wanted)]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        self.docker
            .list_containers(Some(options))
            .await
            .map_err(|e| map_err("listing containers", e))
    }

    async fn kill(&self, id: &str) -> Result<()> {
        let options = KillContainerOptionsBuilder::default()
            .signal("SIGKILL")
            .build();
        match self.docker.kill_container(id, Some(options)).await {
            // 409: not running; 404: gone. Either way it is stopped.
            Ok(()) => Ok(()),
            Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(()),
            Err(e) => Err(map_err("killing a container", e)),
        }
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let options = RemoveContainerOptionsBuilder::default()
            .force(true)
            .v(true)
            .build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(()),
            // Gone already, or being removed by another call.
            Err(e) if is_status(&e, 404) || is_status(&e, 409) => Ok(()),
            Err(e) => Err(map_err("removing a container", e)),
        }
    }

    /// On its own networks Docker points every container at its embedded
    /// resolver (127.0.0.11), which would hide the cluster DNS from pods.
    /// The sandbox's resolv.conf, which the pod's containers share, is
    /// rewritten to the pod's own, as Kubernetes' Docker integration did.
    async fn write_resolv_conf(&self, id: &str, dns: &DnsConfig) -> Result<()> {
        let path = self
            .inspect("pod sandbox", id)
            .await?
            .resolv_conf_path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| RuntimeError::Failed("the pod sandbox has no resolv.conf".into()))?;
        tokio::fs::write(&path, resolv_conf(dns))
            .await
            .map_err(|e| RuntimeError::Failed(format!("writing the pod's resolv.conf {path}: {e}")))
    }

    fn sandbox_status(&self, id: &str, c: &ContainerInspectResponse) -> PodSandboxStatus {
        let labels = c.config.as_ref().and_then(|c| c.labels.as_ref());
        let running = c.state.as_ref().and_then(|s| s.running).unwrap_or(false);
        let ip = c
            .network_settings
            .as_ref()
            .and_then(|n| n.networks.as_ref())
            .and_then(|n| n.get(&self.network))
            .and_then(|e| e.ip_address.as_deref())
            .and_then(|ip| ip.parse::<IpAddr>().ok());
        PodSandboxStatus {
            id: id.to_string(),
            pod_uid: labels
                .and_then(|l| l.get(LABEL_POD_UID))
                .cloned()
                .unwrap_or_default(),
            state: if running {
                PodSandboxState::Ready
            } else {
                PodSandboxState::NotReady
            },
            ip: if running { ip } else { None },
        }
    }
}

/// The runtime's view of a container from Docker's.
fn container_status(id: &str, c: &ContainerInspectResponse) -> ContainerStatus {
    let labels = c
        .config
        .as_ref()
        .and_then(|c| c.labels.clone())
        .unwrap_or_default();
    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let st = c.state.clone().unwrap_or_default();
    let started = parse_time(st.started_at.as_deref());
    let status = st.status.map(|s| s.to_string()).unwrap_or_default();
    let state = match status.as_str() {
        "created" => ContainerState::Created,
        "running" | "paused" | "restarting" => ContainerState::Running {
            started_at: started.unwrap_or_else(Timestamp::now),
        },
        _ => {
            let exit_code = i32::try_from(st.exit_code.unwrap_or_default()).unwrap_or(-1);
            let reason = if st.oom_killed == Some(true) {
                "OOMKilled"
            } else if exit_code == 0 {
                "Completed"
            } else {
                "Error"
            };
            ContainerState::Exited {
                started_at: started,
                finished_at: parse_time(st.finished_at.as_deref())
                    .or(started)
                    .unwrap_or_else(Timestamp::now),
                exit_code,
                reason: reason.to_string(),
            }
        }
    };
    ContainerStatus {
        id: id.to_string(),
        sandbox_id: label(LABEL_SANDBOX_ID),
        name: label(LABEL_CONTAINER_NAME),
        image: label(LABEL_IMAGE),
        image_ref: c
            .image
            .as_deref()
            .map(|i| format!("docker://{i}"))
            .unwrap_or_default(),
        attempt: label(LABEL_ATTEMPT).parse().unwrap_or_default(),
        state,
    }
}

impl Runtime for DockerRuntime {
    fn type_name(&self) -> &'static str {
        "docker"
    }

    fn version(&self) -> String {
        format!("docker://{}", self.version)
    }

    fn run_pod_sandbox<'a>(
        &'a self,
        config: &'a PodSandboxConfig,
    ) -> BoxFuture<'a, Result<String>> {
        async move {
            let mut labels = self.labels(TYPE_SANDBOX, config);
            labels.insert(LABEL_CONTAINER_NAME.to_string(), "POD".to_string());
            let mut host = HostConfig {
                // The app containers join its IPC namespace.
                ipc_mode: Some("shareable".into()),
                ..Default::default()
            };
            let mut body = ContainerCreateBody {
                image: Some(self.pause_image.clone()),
                labels: Some(labels),
                ..Default::default()
            };
            if config.host_network {
                host.network_mode = Some("host".into());
            } else {
                host.network_mode = Some(self.network.clone());
                body.hostname = Some(config.hostname.clone()).filter(|h| !h.is_empty());
                body.domainname = config.domainname.clone();
                if let Some(dns) = &config.dns {
                    host.dns = Some(dns.servers.clone());
                    host.dns_search = Some(dns.searches.clone());
                    host.dns_options = Some(dns.options.clone());
                }
                host.extra_hosts = Some(
                    config
                        .host_aliases
                        .iter()
                        .flat_map(|(ip, names)| names.iter().map(move |n| format!("{n}:{ip}")))
                        .collect(),
                );
            }
            body.host_config = Some(host);
            let base = format!(
                "k8s_POD_{}_{}_{}",
                name_part(&config.name),
                name_part(&config.namespace),
                name_part(&config.pod_uid)
            );
            let id = self.create_named(&base, 0, body).await?;
            if let Err(e) = self.docker.start_container(&id, None).await {
                let _ = self.remove(&id).await;
                return Err(map_err("starting the pod sandbox", e));
            }
            if let (Some(dns), false) = (&config.dns, config.host_network) {
                if let Err(e) = self.write_resolv_conf(&id, dns).await {
                    let _ = self.remove(&id).await;
                    return Err(e);
                }
            }
            Ok(id)
        }
        .boxed()
    }

    fn update_pod_sandbox<'a>(
        &'a self,
        _id: &'a str,
        _config: &'a PodSandboxConfig,
    ) -> BoxFuture<'a, Result<()>> {
        // Labels of a Docker container are fixed; nothing here reads the
        // pod's changing metadata.
        futures::future::ready(Ok(())).boxed()
    }

    fn stop_pod_sandbox<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            for c in self.list(&[format!("{LABEL_SANDBOX_ID}={id}")]).await? {
                if let Some(cid) = c.id {
                    self.kill(&cid).await?;
                }
            }
            self.kill(id).await
        }
        .boxed()
    }

    fn remove_pod_sandbox<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            for c in self.list(&[format!("{LABEL_SANDBOX_ID}={id}")]).await? {
                if let Some(cid) = c.id {
                    self.remove(&cid).await?;
                }
            }
            self.remove(id).await
        }
        .boxed()
    }

    fn pod_sandbox_status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<PodSandboxStatus>> {
        async move {
            let c = self.inspect("pod sandbox", id).await?;
            Ok(self.sandbox_status(id, &c))
        }
        .boxed()
    }

    fn list_pod_sandboxes(&self) -> BoxFuture<'_, Result<Vec<PodSandboxStatus>>> {
        async move {
            let mut out = Vec::new();
            for c in self.list(&[format!("{LABEL_TYPE}={TYPE_SANDBOX}")]).await? {
                let Some(id) = c.id else { continue };
                match self.inspect("pod sandbox", &id).await {
                    Ok(full) => out.push(self.sandbox_status(&id, &full)),
                    Err(RuntimeError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
        .boxed()
    }

    fn list_containers(&self) -> BoxFuture<'_, Result<Vec<ContainerStatus>>> {
        async move {
            let mut out = Vec::new();
            for c in self
                .list(&[format!("{LABEL_TYPE}={TYPE_CONTAINER}")])
                .await?
            {
                let Some(id) = c.id else { continue };
                match self.inspect("container", &id).await {
                    Ok(full) => out.push(container_status(&id, &full)),
                    Err(RuntimeError::NotFound { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(out)
        }
        .boxed()
    }

    fn list_container_stats(&self) -> BoxFuture<'_, Result<Vec<ContainerStats>>> {
        async move {
            let running: Vec<_> = self
                .list(&[format!("{LABEL_TYPE}={TYPE_CONTAINER}")])
                .await?
                .into_iter()
                .filter(|c| c.state == Some(bollard::models::ContainerSummaryStateEnum::RUNNING))
                .collect();
            // One sample per container, all at once: each is one request
            // to the engine, answered from the container's cgroup.
            let samples = running.iter().map(|c| async move {
                let id = c.id.clone()?;
                let labels = c.labels.clone().unwrap_or_default();
                let options = bollard::query_parameters::StatsOptionsBuilder::default()
                    .stream(false)
                    .one_shot(true)
                    .build();
                let stats = self
                    .docker
                    .stats(&id, Some(options))
                    .try_next()
                    .await
                    .ok()??;
                let started_at = c.created.and_then(|s| Timestamp::from_second(s).ok());
                Some(container_stats(id, &labels, started_at, &stats))
            });
            Ok(futures::future::join_all(samples)
                .await
                .into_iter()
                .flatten()
                .collect())
        }
        .boxed()
    }

    fn create_container<'a>(
        &'a self,
        sandbox_id: &'a str,
        config: &'a ContainerConfig,
    ) -> BoxFuture<'a, Result<String>> {
        async move {
            let sandbox = self.inspect("pod sandbox", sandbox_id).await?;
            let sandbox_labels = sandbox
                .config
                .as_ref()
                .and_then(|c| c.labels.clone())
                .unwrap_or_default();
            let label = |k: &str| sandbox_labels.get(k).cloned().unwrap_or_default();
            let mut labels: HashMap<String, String> = [
                LABEL_MANAGED,
                LABEL_NODE,
                LABEL_POD_UID,
                LABEL_POD_NAME,
                LABEL_POD_NAMESPACE,
            ]
            .into_iter()
            .map(|k| (k.to_string(), label(k)))
            .collect();
            labels.insert(LABEL_TYPE.into(), TYPE_CONTAINER.into());
            labels.insert(LABEL_CONTAINER_NAME.into(), config.name.clone());
            labels.insert(LABEL_SANDBOX_ID.into(), sandbox_id.to_string());
            labels.insert(LABEL_ATTEMPT.into(), config.attempt.to_string());
            labels.insert(LABEL_IMAGE.into(), config.image.clone());
            labels.insert(LABEL_INIT.into(), config.init.to_string());

            let r = &config.resources;
            let host = HostConfig {
                network_mode: Some(format!("container:{sandbox_id}")),
                ipc_mode: Some(format!("container:{sandbox_id}")),
                binds: Some(
                    config
                        .mounts
                        .iter()
                        .map(|m| {
                            let ro = if m.read_only { ":ro" } else { "" };
                            format!("{}:{}{ro}", m.host_path.display(), m.container_path)
                        })
                        .collect(),
                ),
                cpu_shares: r.cpu_shares,
                cpu_period: r.cpu_limit_millis.map(|_| 100_000),
                cpu_quota: r.cpu_limit_millis.map(|m| (m * 100).max(1000)),
                memory: r.memory_limit_bytes,
                // No swap beyond the limit: a pod over its memory limit is
                // OOMKilled, as in Kubernetes.
                memory_swap: r.memory_limit_bytes,
                ..Default::default()
            };
            let user = match (config.run_as_user, config.run_as_group) {
                (Some(u), Some(g)) => Some(format!("{u}:{g}")),
                (Some(u), None) => Some(u.to_string()),
                (None, Some(g)) => Some(format!("0:{g}")),
                (None, None) => None,
            };
            let body = ContainerCreateBody {
                image: Some(config.image.clone()),
                // `command` replaces the image's entrypoint (and with it its
                // CMD); `args` replaces CMD.
                entrypoint: (!config.command.is_empty()).then(|| config.command.clone()),
                cmd: (!config.args.is_empty()).then(|| config.args.clone()),
                env: Some(config.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
                working_dir: config.working_dir.clone().filter(|w| !w.is_empty()),
                user,
                tty: Some(config.tty),
                open_stdin: Some(config.stdin),
                stdin_once: Some(config.stdin_once),
                attach_stdin: Some(config.stdin),
                labels: Some(labels),
                host_config: Some(host),
                ..Default::default()
            };
            let base = format!(
                "k8s_{}_{}_{}_{}",
                name_part(&config.name),
                name_part(&label(LABEL_POD_NAME)),
                name_part(&label(LABEL_POD_NAMESPACE)),
                name_part(&label(LABEL_POD_UID))
            );
            self.create_named(&base, config.attempt, body).await
        }
        .boxed()
    }

    fn start_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        async move {
            match self.docker.start_container(id, None).await {
                Ok(()) => Ok(()),
                Err(e) if is_status(&e, 404) => Err(not_found("container", id)),
                // The process could not be run (no such executable, …):
                // the container stays Created with Docker's reason.
                Err(e) => Err(map_err("starting a container", e)),
            }
        }
        .boxed()
    }

    fn stop_container<'a>(&'a self, id: &'a str, grace: Duration) -> BoxFuture<'a, Result<()>> {
        async move {
            if grace.is_zero() {
                return self.kill(id).await;
            }
            let secs = i32::try_from(grace.as_secs() + u64::from(grace.subsec_nanos() > 0))
                .unwrap_or(i32::MAX);
            let options = StopContainerOptionsBuilder::default().t(secs).build();
            match self.docker.stop_container(id, Some(options)).await {
                Ok(()) => Ok(()),
                Err(e) if is_status(&e, 304) || is_status(&e, 404) => Ok(()),
                Err(e) => Err(map_err("stopping a container", e)),
            }
        }
        .boxed()
    }

    fn remove_container<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<()>> {
        self.remove(id).boxed()
    }

    fn container_status<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<ContainerStatus>> {
        async move {
            let c = self.inspect("container", id).await?;
            Ok(container_status(id, &c))
        }
        .boxed()
    }

    fn probe_readiness<'a>(
        &'a self,
        _id: &'a str,
        _probe: Option<&'a Probe>,
    ) -> BoxFuture<'a, Result<bool>> {
        // Readiness probes run in the prober; the engine adds nothing.
        futures::future::ready(Ok(true)).boxed()
    }

    fn probe_source(&self, target: std::net::IpAddr) -> Option<std::net::IpAddr> {
        let (source, subnet) = self.probe_source.as_ref()?;
        match target {
            std::net::IpAddr::V4(ip) if subnet.contains(ip) => Some(std::net::IpAddr::V4(*source)),
            _ => None,
        }
    }

    fn events(&self) -> broadcast::Receiver<PodLifecycleEvent> {
        self.events.subscribe()
    }

    fn status(&self) -> BoxFuture<'_, Result<()>> {
        async move {
            self.docker
                .ping()
                .await
                .map(|_| ())
                .map_err(|e| RuntimeError::Failed(format!("docker does not answer: {e}")))
        }
        .boxed()
    }

    fn image_status<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<Option<String>>> {
        async move {
            match self.docker.inspect_image(image).await {
                Ok(i) => Ok(Some(format!("docker://{}", i.id.unwrap_or_default()))),
                Err(e) if is_status(&e, 404) => Ok(None),
                Err(e) => Err(map_err("inspecting an image", e)),
            }
        }
        .boxed()
    }

    fn pull_image<'a>(&'a self, image: &'a str) -> BoxFuture<'a, Result<String>> {
        async move {
            let options = CreateImageOptionsBuilder::default()
                .from_image(image)
                .build();
            self.docker
                .create_image(Some(options), None, None)
                .try_collect::<Vec<_>>()
                .await
                .map_err(|e| RuntimeError::ImagePull(pull_message(image, &e)))?;
            match self.image_status(image).await? {
                Some(id) => Ok(id),
                None => Err(RuntimeError::ImagePull(format!(
                    "failed to pull image \"{image}\": not present after the pull"
                ))),
            }
        }
        .boxed()
    }

    fn container_logs<'a>(
        &'a self,
        id: &'a str,
        options: &'a LogOptions,
    ) -> BoxFuture<'a, Result<BoxStream<'static, Result<Bytes>>>> {
        streams::logs(&self.docker, id, options).boxed()
    }

    fn exec<'a>(
        &'a self,
        id: &'a str,
        request: &'a ExecRequest,
    ) -> BoxFuture<'a, Result<ExecSession>> {
        streams::exec(&self.docker, id, request).boxed()
    }

    fn run_probe<'a>(
        &'a self,
        id: &'a str,
        _kind: ProbeKind,
        probe: &'a Probe,
        pod_ip: Option<IpAddr>,
    ) -> BoxFuture<'a, Result<bool>> {
        crate::prober::run(self, id, probe, pod_ip).boxed()
    }
}

/// A resolv.conf in the kubelet's layout.
fn resolv_conf(dns: &DnsConfig) -> String {
    let mut out = String::new();
    for server in &dns.servers {
        out.push_str(&format!("nameserver {server}\n"));
    }
    if !dns.searches.is_empty() {
        out.push_str(&format!("search {}\n", dns.searches.join(" ")));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

/// Kubernetes' wording of a failed pull, with the engine's reason.
fn pull_message(image: &str, e: &bollard::errors::Error) -> String {
    let reason = match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => other.to_string(),
    };
    format!("failed to pull and unpack image \"{image}\": {reason}")
}

/// A container's sample from the engine's stats: cumulative CPU time and
/// the working set, as the kubelet computes it from the cgroup (usage
/// less `inactive_file`, `total_inactive_file` on cgroup v1).
fn container_stats(
    id: String,
    labels: &HashMap<String, String>,
    started_at: Option<Timestamp>,
    stats: &bollard::models::ContainerStatsResponse,
) -> ContainerStats {
    let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
    let cpu_ns = stats
        .cpu_stats
        .as_ref()
        .and_then(|c| c.cpu_usage.as_ref())
        .and_then(|u| u.total_usage)
        .unwrap_or(0);
    let memory = stats.memory_stats.as_ref();
    let usage = memory.and_then(|m| m.usage).unwrap_or(0);
    let counters = memory.and_then(|m| m.stats.as_ref());
    let counter =
        |names: &[&str]| counters.and_then(|c| names.iter().find_map(|n| c.get(*n).copied()));
    let inactive_file = counter(&["inactive_file", "total_inactive_file"]).unwrap_or(0);
    let timestamp = stats
        .read
        .as_ref()
        .and_then(|r| r.to_string().parse::<Timestamp>().ok())
        .unwrap_or_else(Timestamp::now);
    ContainerStats {
        id,
        name: label(LABEL_CONTAINER_NAME),
        pod_uid: label(LABEL_POD_UID),
        pod_name: label(LABEL_POD_NAME),
        pod_namespace: label(LABEL_POD_NAMESPACE),
        started_at,
        timestamp,
        cpu_seconds: cpu_ns as f64 / 1e9,
        memory_usage_bytes: usage,
        memory_working_set_bytes: usage.saturating_sub(inactive_file),
        memory_rss_bytes: counter(&["anon", "total_rss", "rss"]),
    }
}
