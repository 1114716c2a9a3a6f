//! The watch loop: Services and EndpointSlices from the API into the
//! [`ServiceState`], and each burst of changes into one [`Proxier::sync`].

use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client};
use tokio::sync::mpsc;

use crate::nftables::NftablesProxier;
use crate::proxier::Proxier;
use crate::status::{wanted_ingress, StatusUpdate};
use crate::table::ProxyTable;
use crate::table::{ServiceState, SERVICE_NAME_LABEL};
use crate::{Error, ProxyConfig, ProxyMode, SERVICE_PROXY_NAME_LABEL};

/// How often listeners that could not be bound, or an nftables table that
/// could not be applied, are retried.
const RETRY: Duration = Duration::from_secs(1);

/// Events of either watch, boxed: the objects are large and moved twice.
enum Event {
    Service(Box<Result<watcher::Event<Service>, watcher::Error>>),
    Slice(Box<Result<watcher::Event<EndpointSlice>, watcher::Error>>),
}

/// What the loop keeps besides the state: relist buffers and whether each
/// kind has been listed once.
#[derive(Default)]
struct Sync {
    services_listed: bool,
    slices_listed: bool,
    services_buffer: Vec<Service>,
    slices_buffer: Vec<EndpointSlice>,
}

/// The data plane of [`ProxyConfig::mode`].
enum DataPlane {
    Userspace(Proxier),
    Nftables(NftablesProxier),
}

impl DataPlane {
    async fn new(config: &ProxyConfig) -> Result<Self, Error> {
        Ok(match config.mode {
            ProxyMode::Userspace => Self::Userspace(Proxier::new(config).await?),
            ProxyMode::Nftables => Self::Nftables(NftablesProxier::new(config).await?),
        })
    }

    async fn sync(&mut self, table: &Arc<ProxyTable>) {
        match self {
            Self::Userspace(p) => p.sync(table).await,
            Self::Nftables(p) => p.sync(table).await,
        }
    }

    /// The userspace proxier's drain; the kernel keeps serving the
    /// connections it has tracked until the table goes.
    async fn drain(&mut self) {
        match self {
            Self::Userspace(p) => p.drain().await,
            Self::Nftables(_) => {}
        }
    }

    fn has_pending(&self) -> bool {
        match self {
            Self::Userspace(p) => p.has_pending(),
            Self::Nftables(p) => p.has_pending(),
        }
    }
}

/// Run the proxy until the future is dropped (or the API client is gone):
/// watch Services and EndpointSlices, keep the holder interface and the
/// data plane in step with them, and write load-balancer status. Dropping
/// it closes every listener and connection (userspace) or deletes the
/// nftables table (kernel mode), and removes the holder interface.
pub async fn run(client: Client, config: ProxyConfig) -> Result<(), Error> {
    run_with_drain(client, config, std::future::pending()).await
}

/// [`run`], and when `drain` resolves, stop following the API, close the
/// listeners and return once the open connections are done
/// ([`Proxier::drain`]); returning cleans up as dropping does. The caller
/// bounds the wait with its grace period: dropping the future closes what
/// is left.
pub async fn run_with_drain(
    client: Client,
    config: ProxyConfig,
    drain: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    tokio::pin!(drain);
    let mut proxier = DataPlane::new(&config).await?;
    let selector = match &config.service_proxy_name {
        Some(name) => format!("{SERVICE_PROXY_NAME_LABEL}={name}"),
        None => format!("!{SERVICE_PROXY_NAME_LABEL}"),
    };
    let services = watcher(
        Api::<Service>::all(client.clone()),
        watcher::Config::default().labels(&selector),
    )
    .default_backoff()
    .map(|e| Event::Service(Box::new(e)))
    .boxed();
    let slices = watcher(
        Api::<EndpointSlice>::all(client.clone()),
        watcher::Config::default().labels(SERVICE_NAME_LABEL),
    )
    .default_backoff()
    .map(|e| Event::Slice(Box::new(e)))
    .boxed();
    let mut events = futures::stream::select(services, slices);

    // Aborted with the proxy; its table is deleted then (below when
    // draining, else when the aborted task is dropped).
    let netpol_table = format!("{}-netpol", config.nftables_table);
    let mut network_policy = AbortOnDrop(tokio::spawn(crate::netpol::run(
        client.clone(),
        config.node_name.clone(),
        netpol_table.clone(),
        config.network_policy.clone(),
    )));

    let (status_tx, status_rx) = mpsc::unbounded_channel();
    // Aborted with the proxy: it holds nothing the proxy must clean up.
    let status_task = AbortOnDrop(tokio::spawn(crate::status::write_statuses(
        client, status_rx,
    )));

    let mut state = ServiceState::new();
    let mut sync = Sync::default();
    let mut dirty = false;
    loop {
        tokio::select! {
            // A drain wins over whatever else is ready (a watch the API
            // server ends as it drains too, say).
            biased;
            () = &mut drain => break,
            event = events.next() => {
                let Some(event) = event else {
                    return Err(Error::WatchEnded("Service or EndpointSlice"));
                };
                dirty |= handle(event, &mut state, &mut sync, &config, &status_tx);
                // Take whatever else has already arrived, so a burst of
                // changes is one sync.
                while let Some(Some(event)) = events.next().now_or_never() {
                    dirty |= handle(event, &mut state, &mut sync, &config, &status_tx);
                }
            }
            _ = tokio::time::sleep(RETRY), if proxier.has_pending() => dirty = true,
        }
        // Until both kinds are listed a partial table would refuse
        // connections that have endpoints.
        if dirty && sync.services_listed && sync.slices_listed {
            let table = Arc::new(state.table());
            proxier.sync(&table).await;
            if let Some(updates) = &config.table_updates {
                updates.send_replace(table);
            }
            dirty = false;
        }
        if status_task.0.is_finished() {
            return Err(Error::WatchEnded("status"));
        }
    }
    tracing::info!("draining the service proxy");
    network_policy.0.abort();
    let _ = (&mut network_policy.0).await;
    crate::netpol::delete_table(&netpol_table).await;
    proxier.drain().await;
    Ok(())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Apply one event; returns whether the table may have changed.
fn handle(
    event: Event,
    state: &mut ServiceState,
    sync: &mut Sync,
    config: &ProxyConfig,
    status: &mpsc::UnboundedSender<StatusUpdate>,
) -> bool {
    let lb_status = |svc: &Service| {
        if !config.load_balancer_status {
            return;
        }
        if let (Some(ingress), Some(ns), Some(name)) = (
            wanted_ingress(svc, &config.node_addresses),
            svc.metadata.namespace.clone(),
            svc.metadata.name.clone(),
        ) {
            let _ = status.send(StatusUpdate {
                namespace: ns,
                name,
                ingress,
            });
        }
    };
    match event {
        Event::Service(e) => match *e {
            Ok(watcher::Event::Apply(svc)) => {
                lb_status(&svc);
                state.apply_service(&svc)
            }
            Ok(watcher::Event::Delete(svc)) => state.delete_service(&svc),
            Ok(watcher::Event::Init) => {
                sync.services_buffer.clear();
                false
            }
            Ok(watcher::Event::InitApply(svc)) => {
                lb_status(&svc);
                sync.services_buffer.push(svc);
                false
            }
            Ok(watcher::Event::InitDone) => {
                state.replace_services(&std::mem::take(&mut sync.services_buffer));
                sync.services_listed = true;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "Service watch failed; retrying");
                false
            }
        },
        Event::Slice(e) => match *e {
            Ok(watcher::Event::Apply(slice)) => state.apply_slice(&slice),
            Ok(watcher::Event::Delete(slice)) => state.delete_slice(&slice),
            Ok(watcher::Event::Init) => {
                sync.slices_buffer.clear();
                false
            }
            Ok(watcher::Event::InitApply(slice)) => {
                sync.slices_buffer.push(slice);
                false
            }
            Ok(watcher::Event::InitDone) => {
                state.replace_slices(&std::mem::take(&mut sync.slices_buffer));
                sync.slices_listed = true;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "EndpointSlice watch failed; retrying");
                false
            }
        },
    }
}
