//! The kernel mode: the whole [`ProxyTable`] as one nftables table
//! ([`render`]), applied with `nft -f -` in one transaction, so packets see
//! either the old table or the new one and never a half-written one.
//!
//! The first sync replaces any table of that name (a leftover of a crashed
//! run); later ones re-render only the Service ports that changed and send
//! the difference ([`Ruleset::update`]) over netlink ([`netlink`]), or
//! through `nft` where a change needs its compiler (affinity sets; a
//! redefinition of the whole table in place, which keeps the ClientIP
//! affinity sets and their entries). A sync that changes nothing sends
//! nothing. Dropping the proxier deletes the table.
//!
//! Routes: DNAT happens in `prerouting` and `output` before the routing
//! decision is final, so pods reach a ClusterIP without it being local.
//! This host's own connections are different: `connect()` needs a route to
//! the ClusterIP before `output` sees a packet, so a host with no default
//! route gets `ENETUNREACH`. The holder bridge, when configured, carries
//! the ClusterIPs as /32s and gives every host that route (and a place for
//! the in-process cluster DNS to bind its ClusterIP); with it, the host's
//! connections take the local route, are DNATed in `output` and rerouted
//! to the endpoint. Measured with `proxy/tests/nftables.rs` run inside a
//! namespace without a default route: ClusterIPs answer with the holder and
//! time out without it; with a default route both work.

use std::collections::BTreeSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use crate::holder::{Holder, HolderError};
use crate::metrics::Metrics;
use crate::table::{Frontend, NodeInfo, ProxyTable};
use crate::ProxyConfig;

pub mod netlink;
pub mod render;

#[cfg(test)]
mod tests;

pub use render::{render, RenderOptions, Ruleset};
use render::{Change, NeedsWhole};

/// The default table name.
pub const DEFAULT_TABLE: &str = "kedge";

/// Errors of the kernel mode.
#[derive(Debug, thiserror::Error)]
pub enum NftablesError {
    /// `nft` could not be run (not installed, or not in `PATH`).
    #[error("running nft: {0}")]
    Spawn(#[source] std::io::Error),
    /// `nft` rejected the script.
    #[error("nft -f -: {0}")]
    Failed(String),
    /// The kernel refused a partial update sent over netlink.
    #[error("netlink: {0}")]
    Netlink(#[source] std::io::Error),
    /// The table name is not one nft accepts unquoted.
    #[error(
        "invalid nftables table name {0:?}: a letter or '_', then letters, digits, '_' or '-'"
    )]
    InvalidTable(String),
    /// The holder interface could not be set up.
    #[error("holder interface: {0}")]
    Holder(#[from] HolderError),
}

/// The kernel-mode data plane of one node.
pub struct NftablesProxier {
    table: String,
    node: NodeInfo,
    locally_served: BTreeSet<Frontend>,
    local_ports: std::collections::BTreeMap<Frontend, u16>,
    metrics: Arc<Metrics>,
    /// What the kernel has, when the last sync succeeded.
    applied: Option<Ruleset>,
    /// Whether the last sync failed and should be retried.
    failed: bool,
    /// Partial updates go here; opened at the first.
    netlink: Option<netlink::Socket>,
    holder: Option<Holder>,
}

impl NftablesProxier {
    /// A proxier for `config`; nothing is written to the kernel until the
    /// first [`sync`](Self::sync) but the holder interface, if one is named.
    pub async fn new(config: &ProxyConfig) -> Result<Self, NftablesError> {
        if !render::valid_table_name(&config.nftables_table) {
            return Err(NftablesError::InvalidTable(config.nftables_table.clone()));
        }
        // Fail early, with the reason, when nft cannot run at all.
        nft(&["--version"], None).await?;
        warn_without_bridge_netfilter();
        let holder = match &config.holder_interface {
            Some(name) => Some(Holder::ensure(name).await?),
            None => None,
        };
        Ok(Self {
            table: config.nftables_table.clone(),
            node: NodeInfo {
                name: config.node_name.clone(),
                addresses: config.node_addresses.clone(),
            },
            locally_served: config.locally_served.iter().copied().collect(),
            local_ports: config.local_ports.clone(),
            metrics: config.metrics.clone(),
            applied: None,
            failed: false,
            netlink: None,
            holder,
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Program `table`. A failure is logged and retried by the next call
    /// (see [`has_pending`](Self::has_pending)), which then replaces the
    /// whole table.
    pub async fn sync(&mut self, table: &Arc<ProxyTable>) {
        let start = Instant::now();
        if let Some(holder) = &mut self.holder {
            if let Err(e) = holder.sync(&table.cluster_ips()).await {
                tracing::warn!(interface = holder.name(), error = %e, "updating ClusterIPs on the holder interface failed");
            }
        }
        let opts = RenderOptions {
            table: &self.table,
            node: &self.node,
            locally_served: &self.locally_served,
            local_ports: &self.local_ports,
        };
        let failed = self.failed;
        let (result, ruleset) = match self.applied.take() {
            Some(mut applied) if !failed => match applied.update(table, &opts) {
                Ok(changes) if changes.is_empty() => {
                    self.applied = Some(applied);
                    return;
                }
                Ok(changes) => (
                    apply_changes(&mut self.netlink, &applied, &changes).await,
                    applied,
                ),
                // Compared as a whole: redefined in place, affinity sets kept.
                Err(NeedsWhole) => {
                    let next = render::render_shared(table.clone(), &opts);
                    let script = next.whole_update_script(&applied);
                    (replace_on_failure(&next, &script).await, next)
                }
            },
            _ => {
                let next = render::render_shared(table.clone(), &opts);
                let script = next.replace_script();
                (nft(&["-f", "-"], Some(&script)).await.map(|_| ()), next)
            }
        };
        match result {
            Ok(()) => {
                tracing::debug!(table = %self.table, rules = ruleset.rules, elapsed = ?start.elapsed(), "nftables table applied");
                if failed {
                    tracing::info!(table = %self.table, "nftables table applied after retrying");
                }
                self.metrics.set_nftables_rules(ruleset.rules);
                self.applied = Some(ruleset);
                self.failed = false;
                self.metrics.observe_sync(start.elapsed());
            }
            Err(e) => {
                if !failed {
                    tracing::warn!(table = %self.table, error = %e, "applying the nftables table failed; retrying");
                }
                self.metrics.nftables_sync_failed();
                // What the kernel holds is not known: replace it next time.
                self.failed = true;
            }
        }
    }

    /// Whether the last sync failed and waits for a retry.
    pub fn has_pending(&self) -> bool {
        self.failed
    }
}

impl Drop for NftablesProxier {
    fn drop(&mut self) {
        // Drop cannot await; one nft run is quick.
        let out = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .stdin(Stdio::null())
            .output();
        match out {
            Ok(o) if o.status.success() => {
                tracing::debug!(table = %self.table, "nftables table removed")
            }
            // Never applied (or already gone): nothing to remove.
            Ok(_) if self.applied.is_none() => {}
            Ok(o) => tracing::warn!(
                table = %self.table,
                stderr = %String::from_utf8_lossy(&o.stderr).trim(),
                "removing the nftables table failed"
            ),
            Err(e) => {
                tracing::warn!(table = %self.table, error = %e, "removing the nftables table failed")
            }
        }
    }
}

/// Pods on one bridge (a node's Docker network) answer each other at layer
/// 2, so the reply of an endpoint to a client pod that reached it through
/// a ClusterIP is only un-DNATed when bridged IPv4 traffic goes through
/// netfilter (`br_netfilter`, which Docker loads for its bridge networks):
/// without it the client would see the endpoint's address and reset (not
/// tried here: turning it off changes the machine's Docker networking).
/// kube-proxy's iptables and nftables modes need it for the same reason.
fn warn_without_bridge_netfilter() {
    let path = "/proc/sys/net/bridge/bridge-nf-call-iptables";
    let on = std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1");
    if !on {
        tracing::warn!(
            "{path} is not 1 (br_netfilter): pods reaching a Service whose endpoint is on their own bridge will get no answer in nftables mode"
        );
    }
}

/// Send a partial update: over netlink where every change can be encoded
/// there, else as an `nft` script; if the kernel refuses it (someone
/// changed the table under us), replace the whole table with `next`.
async fn apply_changes(
    socket: &mut Option<netlink::Socket>,
    next: &Ruleset,
    changes: &[Change],
) -> Result<(), NftablesError> {
    if socket.is_none() {
        match netlink::Socket::open() {
            Ok(s) => *socket = Some(s),
            Err(e) => {
                tracing::warn!(error = %e, "opening a netlink socket failed; updating through nft")
            }
        }
    }
    let sent = match socket.as_mut().and_then(|s| s.send(&next.table, changes)) {
        Some(Ok(())) => Ok(()),
        Some(Err(e)) => {
            // A fresh socket next time: this one may hold late answers.
            *socket = None;
            Err(NftablesError::Netlink(e))
        }
        None => nft(&["-f", "-"], Some(&render::script(&next.table, changes)))
            .await
            .map(|_| ()),
    };
    match sent {
        Ok(()) => Ok(()),
        Err(e) => {
            tracing::info!(table = %next.table, error = %e, "updating the nftables table in place failed; replacing it");
            nft(&["-f", "-"], Some(&next.replace_script()))
                .await
                .map(|_| ())
        }
    }
}

/// Run `script`; if it fails, replace the whole table with `next`.
async fn replace_on_failure(next: &Ruleset, script: &str) -> Result<(), NftablesError> {
    match nft(&["-f", "-"], Some(script)).await {
        Ok(_) => Ok(()),
        Err(e) => {
            tracing::info!(table = %next.table, error = %e, "updating the nftables table in place failed; replacing it");
            nft(&["-f", "-"], Some(&next.replace_script()))
                .await
                .map(|_| ())
        }
    }
}

/// Run `nft args`, with `script` on its standard input.
pub(crate) async fn nft(args: &[&str], script: Option<&str>) -> Result<String, NftablesError> {
    let mut child = Command::new("nft")
        .args(args)
        .stdin(if script.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(NftablesError::Spawn)?;
    if let (Some(script), Some(mut stdin)) = (script, child.stdin.take()) {
        stdin
            .write_all(script.as_bytes())
            .await
            .map_err(NftablesError::Spawn)?;
        // Closing stdin ends the script.
        drop(stdin);
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(NftablesError::Spawn)?;
    if !out.status.success() {
        // nft quotes the offending line of a script that may be megabytes.
        let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        if stderr.len() > 2000 {
            let mut cut = 2000;
            while !stderr.is_char_boundary(cut) {
                cut -= 1;
            }
            stderr.truncate(cut);
            stderr.push_str(" …");
        }
        return Err(NftablesError::Failed(stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Check `script` with `nft -c -f -` (parsed and validated by the kernel,
/// nothing committed).
pub async fn check(script: &str) -> Result<(), NftablesError> {
    nft(&["-c", "-f", "-"], Some(script)).await.map(|_| ())
}
