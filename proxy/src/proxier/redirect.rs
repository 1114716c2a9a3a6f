//! How traffic reaches the userspace listeners without them binding a
//! Service's address: each frontend gets a listener on the wildcard address
//! and a port the kernel picks, and one nftables table `redirect`s the
//! frontend's `address . port` to that port (kube-proxy's userspace mode did
//! the same with iptables). Binding `10.96.0.1:443` on the host would make
//! every later wildcard bind of port 443 fail — a hostNetwork ingress
//! controller's `0.0.0.0:443` first of all — and the other way round;
//! redirected, both coexist, and the ClusterIP still reaches the proxy
//! because NAT happens before the socket lookup.
//!
//! The table also turns away new connections to a ClusterIP on a port no
//! listener serves (no such port, or no ready endpoint) with a reset or an
//! ICMP port unreachable; otherwise a host process listening on the
//! wildcard address and that port would answer for the Service.
//!
//! Pure rendering here; [`Redirector`] applies it with `nft -f`, replacing
//! the whole table in one transaction, and deletes the table on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::Stdio;

use crate::nftables::{nft, NftablesError};
use crate::table::Protocol;

/// What the redirect table holds.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Redirects {
    /// `(address, protocol, port)` of a frontend → the local port of its listener.
    pub ports: BTreeMap<(Ipv4Addr, Protocol, u16), u16>,
    /// ClusterIPs whose unserved ports are turned away.
    pub cluster_ips: BTreeSet<Ipv4Addr>,
    /// `(address, protocol, port)` a process on this node serves on another
    /// port of the same address → that port (DNAT).
    pub local: BTreeMap<(Ipv4Addr, Protocol, u16), u16>,
}

/// Render `r` as the table `table` (family `ip`).
pub fn render(table: &str, r: &Redirects) -> String {
    let mut text = format!("table ip {table} {{\n");
    for proto in [Protocol::Tcp, Protocol::Udp] {
        let name = nft_proto(proto);
        let elements: Vec<String> = r
            .ports
            .iter()
            .filter(|((_, p, _), _)| *p == proto)
            .map(|((ip, _, port), local)| format!("{ip} . {port} : {local}"))
            .collect();
        let _ = write!(
            text,
            "\tmap redirect-{name} {{\n\t\ttype ipv4_addr . inet_service : inet_service\n"
        );
        if !elements.is_empty() {
            let _ = writeln!(text, "\t\telements = {{ {} }}", elements.join(", "));
        }
        text.push_str("\t}\n");
    }
    text.push_str("\tset cluster-ips {\n\t\ttype ipv4_addr\n");
    if !r.cluster_ips.is_empty() {
        let ips: Vec<String> = r.cluster_ips.iter().map(Ipv4Addr::to_string).collect();
        let _ = writeln!(text, "\t\telements = {{ {} }}", ips.join(", "));
    }
    text.push_str("\t}\n");
    // Pods and other hosts come through prerouting (redirected to the
    // address they arrived on), this host's own connections through output
    // (redirected to 127.0.0.1).
    for (chain, hook) in [("nat-prerouting", "prerouting"), ("nat-output", "output")] {
        let _ = writeln!(
            text,
            "\tchain {chain} {{\n\t\ttype nat hook {hook} priority -100; policy accept;"
        );
        for ((ip, proto, port), local) in &r.local {
            let proto = nft_proto(*proto);
            let _ = writeln!(
                text,
                "\t\tip daddr {ip} {proto} dport {port} dnat to {ip}:{local}"
            );
        }
        for proto in ["tcp", "udp"] {
            let _ = writeln!(
                text,
                "\t\tmeta l4proto {proto} redirect to : ip daddr . {proto} dport map @redirect-{proto}"
            );
        }
        text.push_str("\t}\n");
    }
    // After NAT: a connection still addressed to a ClusterIP was not
    // redirected, so no listener serves that port.
    text.push_str(
        "\tchain filter-input {\n\t\ttype filter hook input priority -110; policy accept;\n\
         \t\tct state new ip daddr @cluster-ips meta l4proto tcp counter reject with tcp reset\n\
         \t\tct state new ip daddr @cluster-ips counter reject\n\t}\n",
    );
    text.push_str("}\n");
    text
}

fn nft_proto(p: Protocol) -> &'static str {
    match p {
        Protocol::Tcp => "tcp",
        Protocol::Udp => "udp",
    }
}

// === impl Redirector ===

/// The redirect table in the kernel.
pub struct Redirector {
    table: String,
    /// What the kernel has, when the last apply succeeded.
    applied: Option<Redirects>,
    failed: bool,
    /// Whether an apply ever ran `nft`.
    tried: bool,
}

impl Redirector {
    /// A redirector owning the table `table`, if `nft` can run; nothing is
    /// written until the first [`apply`](Self::apply).
    pub async fn new(table: &str) -> Result<Self, NftablesError> {
        if !crate::nftables::render::valid_table_name(table) {
            return Err(NftablesError::InvalidTable(table.to_string()));
        }
        nft(&["--version"], None).await?;
        Ok(Self {
            table: table.to_string(),
            applied: None,
            failed: false,
            tried: false,
        })
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Make the kernel's table `r`, replacing what was there in one
    /// transaction. A failure is logged once and retried by the next call.
    pub async fn apply(&mut self, r: Redirects) {
        if self.applied.as_ref() == Some(&r) {
            self.failed = false;
            return;
        }
        let t = &self.table;
        let script = format!("add table ip {t}\ndelete table ip {t}\n{}", render(t, &r));
        self.tried = true;
        match nft(&["-f", "-"], Some(&script)).await {
            Ok(_) => {
                if self.failed {
                    tracing::info!(table = %t, "redirect table applied after retrying");
                }
                self.applied = Some(r);
                self.failed = false;
            }
            Err(e) => {
                if !self.failed {
                    tracing::warn!(table = %t, error = %e, "applying the redirect table failed; retrying");
                }
                self.failed = true;
            }
        }
    }

    /// Whether the last apply failed and waits for a retry.
    pub fn has_pending(&self) -> bool {
        self.failed
    }
}

impl Drop for Redirector {
    fn drop(&mut self) {
        if !self.tried {
            return;
        }
        // Also when no apply finished: one dropped mid-way (the proxy's task
        // aborted while `nft` ran) may still have created the table.
        // Drop cannot await; one nft run is quick.
        let out = std::process::Command::new("nft")
            .args(["delete", "table", "ip", &self.table])
            .stdin(Stdio::null())
            .output();
        if let Ok(o) = out {
            if !o.status.success() && self.applied.is_some() {
                tracing::warn!(
                    table = %self.table,
                    stderr = %String::from_utf8_lossy(&o.stderr).trim(),
                    "removing the redirect table failed"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_maps_per_protocol_and_the_cluster_ip_catch_all() {
        let r = Redirects {
            ports: BTreeMap::from([
                ((Ipv4Addr::new(10, 96, 0, 1), Protocol::Tcp, 443), 40001),
                ((Ipv4Addr::new(10, 96, 0, 7), Protocol::Udp, 53), 40002),
                ((Ipv4Addr::new(10, 244, 0, 1), Protocol::Tcp, 30080), 40003),
            ]),
            cluster_ips: BTreeSet::from([Ipv4Addr::new(10, 96, 0, 1), Ipv4Addr::new(10, 96, 0, 7)]),
            local: BTreeMap::from([((Ipv4Addr::new(10, 96, 0, 10), Protocol::Udp, 53), 40053)]),
        };
        let text = render("kedge", &r);
        assert!(text.contains(
            "map redirect-tcp {\n\t\ttype ipv4_addr . inet_service : inet_service\n\t\telements = { 10.96.0.1 . 443 : 40001, 10.244.0.1 . 30080 : 40003 }"
        ), "{text}");
        assert!(
            text.contains("elements = { 10.96.0.7 . 53 : 40002 }"),
            "{text}"
        );
        assert!(
            text.contains("elements = { 10.96.0.1, 10.96.0.7 }"),
            "{text}"
        );
        assert!(
            text.contains("meta l4proto udp redirect to : ip daddr . udp dport map @redirect-udp")
        );
        assert_eq!(text.matches("type nat hook").count(), 2);
        // The cluster DNS on another port of its address, from pods and the host.
        assert_eq!(
            text.matches("ip daddr 10.96.0.10 udp dport 53 dnat to 10.96.0.10:40053")
                .count(),
            2
        );
    }

    #[test]
    fn an_empty_table_declares_empty_maps() {
        let text = render("t", &Redirects::default());
        assert!(!text.contains("elements"), "{text}");
        assert!(text.starts_with("table ip t {"));
    }
}
