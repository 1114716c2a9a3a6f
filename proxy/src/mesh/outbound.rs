//! A meshed pod's outbound connection, captured in its namespace (see
//! [`netns`](super::netns)): where it was going is read back, and it goes
//! on from the pod's own namespace — through the tunnel to the
//! destination's node proxy when the destination is in the mesh, as it is
//! otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::TcpStream;

use super::netns::{original_destination, Netns};
use super::tunnel::{TunnelClient, TunnelError, HBONE_PORT};

/// Carry one captured connection to its destination. `tunnel_for` gives the
/// TLS configuration (this pod's identity, the destination's expected one)
/// when the destination is a meshed pod, `None` otherwise. The bytes sent
/// each way.
pub async fn forward(
    mut app: TcpStream,
    netns: &Netns,
    tunnel_for: impl Fn(SocketAddr) -> Option<Arc<rustls::ClientConfig>>,
) -> Result<(u64, u64), TunnelError> {
    let destination = original_destination(&app)?;
    match tunnel_for(destination) {
        Some(config) => {
            // The destination pod's address, the tunnel's port: its node
            // proxy takes it there.
            let peer = SocketAddr::new(destination.ip(), HBONE_PORT);
            let tcp = netns.connect_marked(peer).await?;
            let (mut client, session) = TunnelClient::over(tcp, config).await?;
            tokio::spawn(session);
            let mut stream = client.open(destination).await?;
            Ok(copy_bidirectional(&mut app, &mut stream).await?)
        }
        None => {
            let mut upstream = netns.connect_marked(destination).await?;
            Ok(copy_bidirectional(&mut app, &mut upstream).await?)
        }
    }
}

#[cfg(test)]
mod tests;
