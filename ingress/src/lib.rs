//! kedge's ingress controller on Pingora. Ingresses of kedge's classes,
//! with the Services, EndpointSlices and Secrets they name, are compiled
//! into a route table ([`table`]); the proxy ([`proxy`]) matches each
//! request against whatever table is current and sends it straight to a
//! ready endpoint. A change compiles a new table and swaps it in
//! ([`watch`]): no reload, no dropped connection.

#![deny(missing_docs)]

use std::sync::Arc;

mod accept;
pub mod annotations;
pub mod deploy;
mod h1;
pub mod mesh;
pub mod metrics;
pub mod path;
pub mod proxy;
mod request;
pub mod server;
pub mod table;
pub mod tls;
pub mod watch;

pub use metrics::Metrics;
pub use server::{Listeners, ProxyServer, ServeOptions};
pub use table::{ClassConfig, RouteTable};
pub use watch::ControllerConfig;

/// The `spec.controller` of kedge's IngressClasses.
pub const CONTROLLER_NAME: &str = "kedge.io/ingress";

/// The current route table, swapped whole on every change.
pub type Routes = arc_swap::ArcSwap<RouteTable>;

/// A fresh table store holding the empty table.
pub fn new_routes(fallback: Arc<tls::TlsCert>) -> Arc<Routes> {
    Arc::new(arc_swap::ArcSwap::from_pointee(RouteTable::empty(fallback)))
}

/// Errors that stop the controller.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The proxy could not start.
    #[error("starting the proxy: {0}")]
    Serve(#[from] std::io::Error),
    /// The watches ended.
    #[error(transparent)]
    Watch(#[from] watch::Error),
}

/// Serve on `listeners` and follow the API until the client goes away or
/// the future is dropped (which stops the proxy).
pub async fn run(
    client: kube::Client,
    cfg: ControllerConfig,
    listeners: Listeners,
    opts: ServeOptions,
    metrics: Arc<Metrics>,
) -> Result<(), Error> {
    run_with_drain(
        client,
        cfg,
        listeners,
        opts,
        metrics,
        std::future::pending(),
    )
    .await
}

/// [`run`], and when `drain` resolves, stop accepting and return once the
/// open connections are done ([`ProxyServer::drain`]). The caller bounds
/// that with its grace period: dropping the future ends what is left.
pub async fn run_with_drain(
    client: kube::Client,
    cfg: ControllerConfig,
    listeners: Listeners,
    opts: ServeOptions,
    metrics: Arc<Metrics>,
    drain: impl std::future::Future<Output = ()>,
) -> Result<(), Error> {
    let fallback = Arc::new(tls::TlsCert::fallback());
    let routes = new_routes(fallback.clone());
    if let Some(mesh) = opts.mesh.clone() {
        let client = client.clone();
        tokio::spawn(async move {
            if let Err(error) = mesh.run(client).await {
                tracing::warn!(%error, "the ingress stays out of the mesh");
            }
        });
    }
    let server = server::start(routes.clone(), metrics.clone(), listeners, opts)?;
    let watch = watch::run(client, cfg, routes, metrics, fallback);
    tokio::pin!(watch);
    tokio::select! {
        r = &mut watch => return Ok(r?),
        () = drain => {}
    }
    tracing::info!("draining the ingress proxy");
    // The routes keep following the API while open requests finish.
    tokio::select! {
        () = server.drain() => {}
        r = watch => {
            r?;
            server.drain().await;
        }
    }
    Ok(())
}
