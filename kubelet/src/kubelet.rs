//! One node's agent: its Node and Lease, its pod workers and its runtime.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use kube::Client;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::node::{NodeConfig, NodeStatusManager};
use crate::pod_workers::{PodHost, PodSyncSettings, PodWorkers};
use crate::runtime::Runtime;
use crate::source;

/// A node agent.
pub struct Kubelet {
    client: Client,
    status: NodeStatusManager,
    workers: Arc<PodWorkers>,
    runtime: Arc<dyn Runtime>,
}

// === impl Kubelet ===

impl Kubelet {
    /// An agent for the node `config` describes, running pods in `runtime`.
    pub fn new(
        client: Client,
        config: NodeConfig,
        runtime: Arc<dyn Runtime>,
        settings: PodSyncSettings,
    ) -> Self {
        Self::with_host(client, config, runtime, settings, None)
    }

    /// An agent whose pods get volumes, environment and DNS resolved on
    /// the node (`host`), as a real node's do.
    pub fn with_host(
        client: Client,
        mut config: NodeConfig,
        runtime: Arc<dyn Runtime>,
        settings: PodSyncSettings,
        host: Option<PodHost>,
    ) -> Self {
        config.container_runtime_version = runtime.version();
        let workers = PodWorkers::with_host(
            client.clone(),
            config.name.clone(),
            config.internal_ip,
            runtime.clone(),
            settings,
            host,
        );
        Self {
            status: NodeStatusManager::new(client.clone(), config),
            client,
            workers,
            runtime,
        }
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.status.config().name
    }

    /// The node's InternalIP.
    pub fn internal_ip(&self) -> std::net::IpAddr {
        self.status.config().internal_ip
    }

    /// The node's pod workers (to feed them from a shared watch).
    pub fn pod_workers(&self) -> &Arc<PodWorkers> {
        &self.workers
    }

    /// Run the node alone: [`Kubelet::run_node`] plus its own pod watch.
    pub async fn run(&self) {
        let nodes: source::NodeSet =
            HashMap::from([(self.name().to_string(), self.workers.clone())]);
        tokio::join!(
            self.run_node(),
            source::watch_pods(self.client.clone(), Arc::new(nodes))
        );
    }

    /// Register the Node, then keep its status and Lease fresh and wake pod
    /// workers on runtime events, until the future is dropped. Pods come
    /// from a watch run beside it ([`source::watch_pods`]).
    pub async fn run_node(&self) {
        let mut events = self.runtime.events();
        let config = self.status.config();
        let mut retry = Duration::from_millis(200);
        while let Err(e) = self.status.register().await {
            tracing::warn!(node = %config.name, error = %e, "registering node");
            tokio::time::sleep(retry).await;
            retry = (retry * 2).min(Duration::from_secs(10));
        }
        if let Err(e) = self.status.renew_lease().await {
            tracing::warn!(node = %config.name, error = %e, "creating lease");
        }
        // Spread the heartbeats of many nodes over the period instead of
        // sending them all at once.
        let jitter = spread(&config.name);
        let status_every = config.status_update_interval;
        let lease_every = config.lease_renew_interval;
        let mut status_tick = interval_at(
            Instant::now() + status_every.mul_f64(jitter).max(Duration::from_millis(1)),
            status_every,
        );
        let mut lease_tick = interval_at(
            Instant::now() + lease_every.mul_f64(jitter).max(Duration::from_millis(1)),
            lease_every,
        );
        status_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        lease_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = status_tick.tick() => {
                    let down = self.runtime.status().await.err().map(|e| e.to_string());
                    if let Some(why) = &down {
                        tracing::warn!(node = %config.name, "container runtime is down: {why}");
                    }
                    self.status.set_runtime_status(down);
                    if let Err(e) = self.status.update_status().await {
                        tracing::warn!(node = %config.name, error = %e, "updating node status");
                    }
                }
                _ = lease_tick.tick() => {
                    if let Err(e) = self.status.renew_lease().await {
                        tracing::warn!(node = %config.name, error = %e, "renewing lease");
                    }
                }
                event = events.recv() => match event {
                    Ok(event) => self.workers.wake(&event.pod_uid),
                    Err(RecvError::Lagged(_)) => self.workers.wake_all(),
                    Err(RecvError::Closed) => events = self.runtime.events(),
                },
            }
        }
    }
}

/// A fraction in [0, 1) fixed per node name.
fn spread(name: &str) -> f64 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    f64::from(h % 1000) / 1000.0
}
