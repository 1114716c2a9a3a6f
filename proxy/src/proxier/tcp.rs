//! TCP: accept, pick an endpoint, connect, relay both ways.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::Shared;

/// How many endpoints a connection tries before it is reset.
const MAX_TRIES: usize = 3;

/// How long one connect to an endpoint may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

pub(super) async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: watch::Receiver<()>,
) {
    loop {
        let (client, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Out of descriptors or a connection aborted in the queue:
                // back off a little instead of spinning.
                tracing::debug!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        tokio::spawn(proxy(client, peer, shared.clone(), shutdown.clone()));
    }
}

async fn proxy(
    client: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    let current = shared.current.read().clone();
    let backends = &current.backends;
    let Some(server) = connect(&shared, backends, peer).await else {
        current.metrics.rejected.inc();
        // A reset, not an orderly close: the client learns at once that
        // nothing is there instead of seeing an empty answer.
        let _ = client.set_zero_linger();
        return;
    };
    // The proxy forwards what it reads as it reads it; Nagle would only add delay.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let metrics = &current.metrics;
    metrics.connections.inc();
    metrics.active.inc();
    tokio::select! {
        copied = super::relay::relay(&client, &server) => {
            match copied {
                Ok((to_endpoint, from_endpoint)) => {
                    metrics.bytes_to_endpoint.inc_by(to_endpoint);
                    metrics.bytes_from_endpoint.inc_by(from_endpoint);
                }
                Err(e) => tracing::trace!(%peer, error = %e, "connection ended with an error"),
            }
        }
        _ = shutdown.changed() => {}
    }
    metrics.active.dec();
}

/// Connect to the picked endpoint, failing over to the next ones. Only
/// endpoints the NetworkPolicies let the client reach are picked.
async fn connect(
    shared: &Shared,
    backends: &crate::table::Backends,
    peer: SocketAddr,
) -> Option<TcpStream> {
    let endpoints = &*shared.allowed_endpoints(
        &backends.endpoints,
        peer.ip(),
        crate::netpol::model::Proto::Tcp,
    );
    let now = Instant::now();
    let mut ep = shared
        .balancer
        .pick(endpoints, backends.affinity, peer.ip(), now)?;
    for attempt in 0..endpoints.len().min(MAX_TRIES) {
        if attempt > 0 {
            ep = shared.balancer.round_robin(endpoints)?;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(ep)).await {
            Ok(Ok(s)) => {
                if attempt > 0 {
                    shared.balancer.stick(backends.affinity, peer.ip(), ep, now);
                }
                return Some(s);
            }
            Ok(Err(e)) => {
                tracing::debug!(service = %backends.service, endpoint = %ep, error = %e, "connect failed")
            }
            Err(_) => {
                tracing::debug!(service = %backends.service, endpoint = %ep, "connect timed out")
            }
        }
    }
    None
}
