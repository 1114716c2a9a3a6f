//! A worker's idle upstream connections. Each worker thread has its own
//! (so a connection and its wake-ups stay on one thread), and an idle
//! connection costs no task: whether the backend closed it is seen when it
//! is taken, from what the runtime already knows of the socket.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::TcpStream;

/// How long a connection may stay idle (ingress-nginx's
/// `upstream-keepalive-timeout`).
pub(crate) const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Idle connections kept per endpoint (ingress-nginx keeps 320 per worker
/// across all endpoints of an upstream).
const MAX_IDLE: usize = 128;

/// Idle connections by endpoint.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<SocketAddr, Vec<(TcpStream, Instant)>>>,
}

impl Pool {
    /// The most recently used idle connection to `addr` that is still open.
    pub(crate) fn take(&self, addr: SocketAddr) -> Option<TcpStream> {
        let mut idle = self.idle.lock();
        let conns = idle.get_mut(&addr)?;
        while let Some((conn, since)) = conns.pop() {
            if since.elapsed() >= IDLE_TIMEOUT {
                continue;
            }
            // A closed or chattering connection reads something; an open,
            // quiet one would block. (This read also clears the socket's
            // readiness, so the response's first read waits for it.)
            let mut probe = [0u8; 1];
            match conn.try_read(&mut probe) {
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Some(conn),
                _ => continue,
            }
        }
        None
    }

    /// Keep `conn` for the next request to `addr`.
    pub(crate) fn put(&self, addr: SocketAddr, conn: TcpStream) {
        let mut idle = self.idle.lock();
        let conns = idle.entry(addr).or_default();
        if conns.len() < MAX_IDLE {
            conns.push((conn, Instant::now()));
        }
    }

    /// Close connections idle for too long (and forget endpoints with none).
    pub(crate) fn sweep(&self) {
        let mut idle = self.idle.lock();
        idle.retain(|_, conns| {
            conns.retain(|(_, since)| since.elapsed() < IDLE_TIMEOUT);
            !conns.is_empty()
        });
    }
}
