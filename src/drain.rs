//! Draining on shutdown: one trigger, any number of watchers, a deadline.
//!
//! The parts (`kedge_ingress::run_with_drain`, `kedge_proxy::run_with_drain`)
//! take any future as their drain signal, as kube-runtime's
//! `graceful_shutdown_on` does, and return once their in-flight work is done;
//! the binary alone holds the trigger and the grace period. So the crates
//! share no drain type and no crate gains a dependency for it (kedge-config,
//! which they all could share, has no tokio).

use std::future::Future;
use std::time::Duration;

use tokio::sync::watch;

/// A drain trigger and its first watcher.
pub fn channel() -> (Drain, DrainWatcher) {
    let (tx, rx) = watch::channel(false);
    (Drain(tx), DrainWatcher(rx))
}

/// Starts the drain of every [`DrainWatcher`] cloned from its pair.
pub struct Drain(watch::Sender<bool>);

/// Resolves [`signaled`](Self::signaled) once the drain has started.
#[derive(Clone)]
pub struct DrainWatcher(watch::Receiver<bool>);

// === impl Drain ===

impl Drain {
    /// Tell every watcher to stop taking new work and finish what it has.
    pub fn start(&self) {
        self.0.send_replace(true);
    }
}

// === impl DrainWatcher ===

impl DrainWatcher {
    /// Resolves when the drain starts; a dropped [`Drain`] counts as started,
    /// so nothing waits forever on a trigger that is gone.
    pub async fn signaled(mut self) {
        let _ = self.0.wait_for(|draining| *draining).await;
    }
}

/// Run `part` until it ends on its own or the first shutdown signal; on the
/// signal, start `drain` and give `part` `grace` to finish its in-flight
/// work, then drop it (ztunnel's `run_with_drain`, linkerd's
/// `timeout(grace, drain.drain())`). A second signal meanwhile exits the
/// process at once ([`shutdown_signal`]).
pub async fn run_with_drain<T>(
    part: impl Future<Output = anyhow::Result<T>>,
    drain: Drain,
    grace: Duration,
) -> anyhow::Result<()> {
    tokio::pin!(part);
    tokio::select! {
        r = &mut part => return r.map(drop),
        () = shutdown_signal() => {}
    }
    tracing::info!(grace = ?grace, "draining: no new connections, waiting for open ones");
    drain_within(part, drain, grace).await
}

/// Start `drain` and give `part` `grace` to finish its in-flight work, then
/// drop it.
pub async fn drain_within<T>(
    part: impl Future<Output = anyhow::Result<T>>,
    drain: Drain,
    grace: Duration,
) -> anyhow::Result<()> {
    drain.start();
    match tokio::time::timeout(grace, part).await {
        Ok(r) => {
            tracing::info!("drained");
            r.map(drop)
        }
        Err(_) => {
            tracing::warn!(grace = ?grace, "grace period over; closing what is still open");
            Ok(())
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT. A second one ends the process
/// at once with status 1, whatever is still draining: an operator who asks
/// twice (or a kubelet past its grace period) wants it gone.
pub async fn shutdown_signal() {
    let mut signals = Signals::new();
    signals.recv().await;
    tokio::spawn(async move {
        signals.recv().await;
        eprintln!("second signal: exiting at once");
        std::process::exit(1);
    });
}

/// SIGTERM and SIGINT, registered once so that the second one is not lost
/// between the first and a new registration.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            Self {
                term: signal(SignalKind::terminate()).expect("installing the SIGTERM handler"),
                int: signal(SignalKind::interrupt()).expect("installing the SIGINT handler"),
            }
        }
        #[cfg(not(unix))]
        Self {}
    }

    async fn recv(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn watchers_wake_on_start_and_on_a_dropped_trigger() {
        let (drain, watcher) = channel();
        let second = watcher.clone();
        let waiting = tokio::spawn(watcher.signaled());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drain.start();
        waiting.await.unwrap();
        // A watcher that subscribes after the start sees it at once.
        second.clone().signaled().await;

        let (drain, watcher) = channel();
        drop(drain);
        watcher.signaled().await;
    }
}
