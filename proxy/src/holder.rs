//! The holder interface: a bridge without ports that carries every ClusterIP
//! as a host address, so that listeners can bind them (the role of IPVS
//! mode's `kube-ipvs0`; these kernels have no dummy device). Driven through
//! `ip` from iproute2, batched so that one sync is one process.

use std::collections::BTreeSet;
use std::net::IpAddr;

use crate::command::{self, run_blocking, CommandError};

/// The alias that marks a bridge as a holder, so that a restart adopts its
/// own leftover and never someone else's bridge.
const ALIAS: &str = "kedge-proxy-holder";

/// Errors of the holder interface.
#[derive(Debug, thiserror::Error)]
pub enum HolderError {
    /// `ip` could not be run, or failed.
    #[error(transparent)]
    Command(#[from] CommandError),
    /// An interface of that name exists and was not made by a proxy, so
    /// it is not ours to take addresses from.
    #[error(
        "interface {0} exists and is not a proxy's holder bridge (its alias is not {ALIAS:?})"
    )]
    NotOurs(String),
    /// The name is not a valid interface name.
    #[error("invalid interface name {0:?}: 1 to 15 characters, no '/', ':' or whitespace")]
    InvalidName(String),
}

/// The holder bridge and the addresses put on it. Dropping it deletes the
/// interface (with its addresses).
#[derive(Debug)]
pub struct Holder {
    name: String,
    addresses: BTreeSet<IpAddr>,
    keep: bool,
}

impl Holder {
    /// Create the bridge `name` and bring it up, or adopt it if it is a
    /// holder left over from an earlier run (its addresses are then
    /// reconciled by the first [`sync`](Self::sync)).
    pub async fn ensure(name: &str) -> Result<Self, HolderError> {
        if name.is_empty()
            || name.len() > 15
            || name.contains(|c: char| c == '/' || c == ':' || c.is_whitespace())
        {
            return Err(HolderError::InvalidName(name.into()));
        }
        let created = match ip(&["-d", "-o", "link", "show", "dev", name]).await {
            Ok(out) if !out.contains(" bridge ") || !out.contains(&format!("alias {ALIAS}")) => {
                return Err(HolderError::NotOurs(name.into()))
            }
            Ok(_) => false,
            Err(_) => {
                ip(&["link", "add", name, "type", "bridge"]).await?;
                true
            }
        };
        // From here on, dropping the holder removes the interface.
        let mut holder = Self {
            name: name.into(),
            addresses: BTreeSet::new(),
            keep: false,
        };
        if created {
            ip(&["link", "set", name, "alias", ALIAS]).await?;
        } else {
            tracing::info!(
                interface = name,
                "adopting the holder interface of an earlier run"
            );
            holder.addresses = current_addresses(name).await?;
        }
        ip(&["link", "set", name, "up"]).await?;
        Ok(holder)
    }

    /// The interface's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The addresses on the interface.
    pub fn addresses(&self) -> &BTreeSet<IpAddr> {
        &self.addresses
    }

    /// Make the interface carry exactly `desired` (each as a host address).
    pub async fn sync(&mut self, desired: &BTreeSet<IpAddr>) -> Result<(), HolderError> {
        let mut batch = String::new();
        for ip in desired.difference(&self.addresses) {
            batch.push_str(&format!(
                "address replace {ip}/{} dev {}{}\n",
                host_prefix(*ip),
                self.name,
                // Duplicate address detection would hold an IPv6 ClusterIP
                // unusable for a second.
                if ip.is_ipv6() { " nodad" } else { "" }
            ));
        }
        for ip in self.addresses.difference(desired) {
            batch.push_str(&format!(
                "address del {ip}/{} dev {}\n",
                host_prefix(*ip),
                self.name
            ));
        }
        if batch.is_empty() {
            return Ok(());
        }
        let result = ip_batch(&batch).await;
        // Partial failures leave some addresses as they were: read back what
        // is there so the next sync retries exactly the difference.
        self.addresses = current_addresses(&self.name).await?;
        result
    }

    /// Leave the interface in place when dropped (for a restart that adopts it).
    pub fn keep(mut self) {
        self.keep = true;
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        // Drop cannot await; `ip link del` is quick.
        run_blocking(
            "ip",
            &["link", "del", &self.name],
            "removing the holder interface",
        );
    }
}

fn host_prefix(ip: IpAddr) -> u8 {
    if ip.is_ipv4() {
        32
    } else {
        128
    }
}

async fn current_addresses(name: &str) -> Result<BTreeSet<IpAddr>, HolderError> {
    let out = ip(&["-o", "address", "show", "dev", name]).await?;
    Ok(parse_addresses(&out))
}

/// The addresses in `ip -o address show` output; link-local IPv6 addresses
/// are the kernel's, not ours.
fn parse_addresses(out: &str) -> BTreeSet<IpAddr> {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            cidr.split('/').next()?.parse().ok()
        })
        .filter(|ip: &IpAddr| match ip {
            IpAddr::V6(v6) => (v6.segments()[0] & 0xffc0) != 0xfe80,
            IpAddr::V4(_) => true,
        })
        .collect()
}

async fn ip(args: &[&str]) -> Result<String, HolderError> {
    Ok(command::run("ip", args, None).await?)
}

async fn ip_batch(commands: &str) -> Result<(), HolderError> {
    Ok(command::batch("ip", commands).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ip_address_output() {
        let out = "\
12: kedge0    inet 10.96.0.10/32 scope global kedge0\\       valid_lft forever preferred_lft forever
12: kedge0    inet 10.96.0.1/32 scope global kedge0\\       valid_lft forever preferred_lft forever
12: kedge0    inet6 fd00::a/128 scope global nodad \\       valid_lft forever preferred_lft forever
12: kedge0    inet6 fe80::1c2b:3ff:fe4d:5e6f/64 scope link \\       valid_lft forever preferred_lft forever
";
        let got: Vec<String> = parse_addresses(out).iter().map(|i| i.to_string()).collect();
        assert_eq!(got, ["10.96.0.1", "10.96.0.10", "fd00::a"]);
    }
}
