//! A meshed pod's outbound connection, captured in its namespace (see
//! [`netns`](super::netns)): where it was going is read back, and it goes
//! on from the pod's own namespace — through the tunnel to the
//! destination's node proxy when the destination is in the mesh, as it is
//! otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use super::http::Io;
use super::netns::Netns;
use super::tunnel::{TunnelError, TunnelPool, HBONE_PORT};

/// Where a captured connection goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// To a meshed pod, through the tunnel to its node proxy, which must
    /// present `identity` (a SPIFFE ID).
    Tunnel {
        /// The pod's address and port.
        destination: SocketAddr,
        /// The SPIFFE ID its proxy must present.
        identity: String,
    },
    /// Straight there (a destination outside the mesh).
    Direct(SocketAddr),
}

impl Route {
    /// Where the connection finally arrives.
    pub fn destination(&self) -> SocketAddr {
        match self {
            Self::Tunnel { destination, .. } | Self::Direct(destination) => *destination,
        }
    }
}

/// A stream along `route` from `netns` (the source pod's): tunnels on
/// `pool`, with the TLS configuration `tls` gives for the expected
/// identity.
pub async fn dial(
    netns: &Arc<Netns>,
    route: &Route,
    pool: &TunnelPool,
    tls: impl Fn(&str) -> Result<Arc<rustls::ClientConfig>, TunnelError>,
) -> Result<Box<dyn Io>, TunnelError> {
    match route {
        Route::Tunnel {
            destination,
            identity,
        } => {
            // The destination pod's address, the tunnel's port: its node
            // proxy listens there, inside the pod's namespace.
            let peer = SocketAddr::new(destination.ip(), HBONE_PORT);
            let dial_from = netns.clone();
            let stream = pool
                .open(
                    peer,
                    identity,
                    *destination,
                    move |peer| {
                        let netns = dial_from.clone();
                        Box::pin(async move { netns.connect_marked(peer).await })
                    },
                    || tls(identity),
                )
                .await?;
            Ok(Box::new(stream))
        }
        Route::Direct(destination) => {
            let upstream = netns.connect_marked(*destination).await?;
            let _ = upstream.set_nodelay(true);
            Ok(Box::new(upstream))
        }
    }
}

#[cfg(test)]
mod tests;
