//! The node's client-side load balancer (k3s's): a TCP proxy on loopback
//! that sends each connection of the node's components to the first of the
//! control plane's API servers that accepts it, starting with the one that
//! answered last. Losing one API server costs a node its open connections
//! (its watches resume) and nothing else. TLS passes through untouched:
//! every API server's certificate names 127.0.0.1.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// How long one API server may take to accept before the next is tried.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Listen on a loopback port and proxy to `servers`; the URL the node's
/// clients use instead of any one server's.
pub async fn start(servers: Vec<SocketAddr>) -> anyhow::Result<String> {
    anyhow::ensure!(!servers.is_empty(), "no API server to balance over");
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let local = listener.local_addr()?;
    tracing::info!(%local, ?servers, "API server load balancer listening");
    let servers = Arc::new(servers);
    let current = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((inbound, _)) = listener.accept().await else {
                continue;
            };
            let servers = servers.clone();
            let current = current.clone();
            tokio::spawn(async move {
                if let Some(outbound) = connect(&servers, &current).await {
                    let (mut a, mut b) = (inbound, outbound);
                    let _ = tokio::io::copy_bidirectional(&mut a, &mut b).await;
                }
            });
        }
    });
    Ok(format!("https://{local}"))
}

/// The first server, from the current one on, that accepts.
async fn connect(servers: &[SocketAddr], current: &AtomicUsize) -> Option<TcpStream> {
    let start = current.load(Ordering::Relaxed);
    for i in 0..servers.len() {
        let index = (start + i) % servers.len();
        let addr = servers[index];
        match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => {
                if index != start {
                    tracing::warn!(server = %addr, "API server load balancer switched");
                    current.store(index, Ordering::Relaxed);
                }
                let _ = stream.set_nodelay(true);
                return Some(stream);
            }
            _ => tracing::debug!(server = %addr, "API server did not accept"),
        }
    }
    tracing::warn!(?servers, "no API server accepts connections");
    None
}
