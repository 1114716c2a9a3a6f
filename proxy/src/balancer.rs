//! Choosing an endpoint: round-robin, or the client's previous endpoint under
//! `sessionAffinity: ClientIP`. The clock is a parameter so tests drive it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// Affinity records are pruned of expired ones once the map reaches this size.
const PRUNE_AT: usize = 1024;

/// Balancing state of one frontend; kept across endpoint changes so
/// affinity survives updates that keep the client's endpoint.
#[derive(Debug, Default)]
pub struct Balancer {
    next: AtomicUsize,
    affinity: Mutex<Affinity>,
}

#[derive(Debug, Default)]
struct Affinity {
    clients: HashMap<IpAddr, (SocketAddr, Instant)>,
    prune_at: usize,
}

impl Balancer {
    /// A balancer starting at the first endpoint.
    pub fn new() -> Self {
        Self::default()
    }

    /// The next round-robin endpoint, or `None` when there are none.
    pub fn round_robin(&self, endpoints: &[SocketAddr]) -> Option<SocketAddr> {
        if endpoints.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(endpoints[i % endpoints.len()])
    }

    /// The endpoint for a connection from `client` at `now`.
    pub fn pick(
        &self,
        endpoints: &[SocketAddr],
        affinity: Option<Duration>,
        client: IpAddr,
        now: Instant,
    ) -> Option<SocketAddr> {
        let Some(timeout) = affinity else {
            return self.round_robin(endpoints);
        };
        let mut state = self.affinity.lock();
        if let Some((ep, last)) = state.clients.get_mut(&client) {
            if now.saturating_duration_since(*last) < timeout && endpoints.contains(ep) {
                *last = now;
                return Some(*ep);
            }
        }
        let ep = self.round_robin(endpoints)?;
        state.record(client, ep, now, timeout);
        Some(ep)
    }

    /// Remember that `client` now uses `ep` (after a failover from the
    /// endpoint it was given).
    pub fn stick(&self, affinity: Option<Duration>, client: IpAddr, ep: SocketAddr, now: Instant) {
        if let Some(timeout) = affinity {
            self.affinity.lock().record(client, ep, now, timeout);
        }
    }
}

impl Affinity {
    fn record(&mut self, client: IpAddr, ep: SocketAddr, now: Instant, timeout: Duration) {
        if self.clients.len() >= self.prune_at.max(PRUNE_AT) {
            self.clients
                .retain(|_, (_, last)| now.saturating_duration_since(*last) < timeout);
            self.prune_at = self.clients.len() * 2;
        }
        self.clients.insert(client, (ep, now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eps(ports: &[u16]) -> Vec<SocketAddr> {
        ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect()
    }

    #[test]
    fn round_robin_cycles_and_handles_empty() {
        let b = Balancer::new();
        let e = eps(&[1, 2, 3]);
        let picks: Vec<u16> = (0..6).map(|_| b.round_robin(&e).unwrap().port()).collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);
        assert_eq!(b.round_robin(&[]), None);
    }

    #[test]
    fn client_ip_affinity_sticks_until_timeout() {
        let b = Balancer::new();
        let e = eps(&[1, 2]);
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let c: IpAddr = [10, 0, 0, 2].into();
        let timeout = Some(Duration::from_secs(10));
        let first = b.pick(&e, timeout, a, t0).unwrap();
        for s in 1..5 {
            assert_eq!(
                b.pick(&e, timeout, a, t0 + Duration::from_secs(s)),
                Some(first)
            );
        }
        // Another client gets the next endpoint.
        assert_ne!(b.pick(&e, timeout, c, t0).unwrap(), first);
        // Idle past the timeout (counted from the last use): a fresh pick.
        let late = t0 + Duration::from_secs(4 + 10);
        let again = b.pick(&e, timeout, a, late).unwrap();
        assert_eq!(b.pick(&e, timeout, a, late), Some(again));
    }

    #[test]
    fn affinity_moves_when_the_endpoint_goes() {
        let b = Balancer::new();
        let t0 = Instant::now();
        let a: IpAddr = [10, 0, 0, 1].into();
        let timeout = Some(Duration::from_secs(100));
        let first = b.pick(&eps(&[1, 2]), timeout, a, t0).unwrap();
        let remaining: Vec<SocketAddr> = eps(&[1, 2]).into_iter().filter(|e| *e != first).collect();
        assert_eq!(b.pick(&remaining, timeout, a, t0), Some(remaining[0]));
        // And it sticks to the new one.
        assert_eq!(b.pick(&eps(&[1, 2]), timeout, a, t0), Some(remaining[0]));
    }

    #[test]
    fn expired_affinity_records_are_pruned() {
        let b = Balancer::new();
        let e = eps(&[1]);
        let t0 = Instant::now();
        let timeout = Some(Duration::from_secs(1));
        for i in 0..PRUNE_AT as u32 {
            b.pick(&e, timeout, IpAddr::from(i.to_be_bytes()), t0);
        }
        b.pick(
            &e,
            timeout,
            [1, 2, 3, 4].into(),
            t0 + Duration::from_secs(5),
        );
        assert_eq!(b.affinity.lock().clients.len(), 1);
    }
}
