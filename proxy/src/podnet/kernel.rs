//! What the pod network programs into the kernel: the VXLAN device, the
//! routes, neighbour and forwarding entries to other nodes' pods, and the
//! masquerade of traffic leaving the cluster CIDR — through `ip`, `bridge`
//! and `nft`, a batch per change.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use super::{format_cidr, overlaps, vtep_mac, Backend, Peer, PodNetworkConfig, PodNetworkError};
use crate::command::{self, run_blocking};

/// What a node made in the kernel, removed when dropped.
#[derive(Debug)]
pub struct Kernel {
    cfg: PodNetworkConfig,
    table: String,
    masquerading: bool,
    /// The VXLAN device, once a remote peer needed it.
    device: Option<String>,
    /// The peers routed to, by node name.
    applied: BTreeMap<String, Peer>,
    /// This machine's addresses, as of the last change of candidates.
    local: BTreeSet<Ipv4Addr>,
    candidates: BTreeMap<String, Peer>,
}

impl Kernel {
    /// Nothing made yet.
    pub fn new(cfg: &PodNetworkConfig) -> Self {
        let node: String = cfg
            .node_name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        Self {
            cfg: cfg.clone(),
            table: format!("kedge_podnet_{node}"),
            masquerading: false,
            device: None,
            applied: BTreeMap::new(),
            local: BTreeSet::new(),
            candidates: BTreeMap::new(),
        }
    }

    fn device_name(&self) -> Option<String> {
        match self.cfg.backend {
            Backend::Vxlan { vni, .. } => Some(format!("kedge.{vni}")),
            Backend::HostGw => None,
        }
    }

    fn alias(&self) -> String {
        format!("kedge-podnet:{}", self.cfg.node_name)
    }

    /// Masquerade what the node's pods send out of the cluster CIDR (and
    /// nothing they send to other pods, which keeps their addresses — the
    /// node's own pods included when its pod CIDR lies outside the
    /// cluster CIDR: between two pods on one bridge nothing is rewritten).
    pub async fn masquerade(&mut self) -> Result<(), PodNetworkError> {
        let t = &self.table;
        let (own, cluster) = (self.cfg.pod_cidr, self.cfg.cluster_cidr);
        // An interval set takes no overlapping elements.
        let kept = if overlaps(own, cluster) {
            format_cidr(cluster)
        } else {
            format!("{}, {}", format_cidr(cluster), format_cidr(own))
        };
        let rules = format!(
            "add table ip {t}\ndelete table ip {t}\n\
             table ip {t} {{\n  chain postrouting {{\n    type nat hook postrouting priority srcnat; policy accept;\n    \
             ip saddr {own} ip daddr != {{ {kept}, 224.0.0.0/4 }} masquerade\n  }}\n}}\n",
            own = format_cidr(own),
        );
        command::run("nft", &["-f", "-"], Some(&rules)).await?;
        self.masquerading = true;
        Ok(())
    }

    /// Route to exactly `peers` (those on other machines).
    pub async fn sync(&mut self, peers: &BTreeMap<String, Peer>) -> Result<(), PodNetworkError> {
        if *peers != self.candidates {
            self.local = local_addresses().await?;
            self.candidates = peers.clone();
        }
        let desired: BTreeMap<String, Peer> = peers
            .iter()
            .filter(|(_, p)| !self.local.contains(&p.public_ip))
            .map(|(n, p)| (n.clone(), p.clone()))
            .collect();
        if desired == self.applied {
            return Ok(());
        }
        let device = match self.device_name() {
            Some(name) if self.device.is_none() && !desired.is_empty() => {
                self.create_device(&name).await?;
                Some(name)
            }
            _ => self.device.clone(),
        };
        let mut ip = String::new();
        let mut bridge = String::new();
        for (name, old) in &self.applied {
            if desired.get(name) != Some(old) {
                remove(old, device.as_deref(), &mut ip, &mut bridge);
            }
        }
        for (name, new) in &desired {
            if self.applied.get(name) != Some(new) {
                add(new, device.as_deref(), &mut ip, &mut bridge);
                tracing::info!(node = %name, pod_cidr = %format_cidr(new.cidr), via = %new.public_ip, "routing to the node's pods");
            }
        }
        // Forwarding entries first: a route is only used once the tunnel
        // knows where to send.
        let result = async {
            if !bridge.is_empty() {
                command::batch("bridge", &bridge).await?;
            }
            if !ip.is_empty() {
                command::batch("ip", &ip).await?;
            }
            Ok::<_, PodNetworkError>(())
        }
        .await;
        self.applied = desired;
        result
    }

    async fn create_device(&mut self, name: &str) -> Result<(), PodNetworkError> {
        let Backend::Vxlan { vni, port } = self.cfg.backend else {
            return Ok(());
        };
        if let Ok(existing) =
            command::run("ip", &["-d", "-o", "link", "show", "dev", name], None).await
        {
            if !existing.contains(&format!("alias {}", self.alias())) {
                return Err(PodNetworkError::NotOurs(name.to_string()));
            }
            // Our own, from a run that ended without cleaning up: made
            // anew so no stale entry survives.
            command::run("ip", &["link", "del", name], None).await?;
        }
        let mtu = underlay_mtu(self.cfg.public_ip).await? - self.cfg.backend.overhead();
        let public_ip = self.cfg.public_ip.to_string();
        let own_gateway = format!("{}/32", self.cfg.pod_cidr.0);
        command::batch(
            "ip",
            &format!(
                "link add {name} address {mac} type vxlan id {vni} local {public_ip} dstport {port} nolearning\n\
                 link set {name} alias {alias} mtu {mtu} up\n\
                 address add {own_gateway} dev {name}\n",
                mac = vtep_mac(self.cfg.public_ip),
                alias = self.alias(),
            ),
        )
        .await?;
        tracing::info!(device = name, vni, port, mtu, local = %public_ip, "made the VXLAN device");
        self.device = Some(name.to_string());
        Ok(())
    }
}

/// The commands that route to `peer`.
fn add(peer: &Peer, device: Option<&str>, ip: &mut String, bridge: &mut String) {
    let cidr = format_cidr(peer.cidr);
    match (device, &peer.vtep_mac) {
        (Some(dev), Some(mac)) => {
            // The peer's pod network address stands for its VTEP: routed
            // on-link to it, resolved to its MAC, forwarded to its host.
            let gw = peer.cidr.0;
            bridge.push_str(&format!(
                "fdb replace {mac} dev {dev} dst {} self permanent\n",
                peer.public_ip
            ));
            ip.push_str(&format!(
                "neigh replace {gw} lladdr {mac} dev {dev} nud permanent\n\
                 route replace {cidr} via {gw} dev {dev} onlink\n"
            ));
        }
        _ => ip.push_str(&format!("route replace {cidr} via {}\n", peer.public_ip)),
    }
}

/// The commands that stop routing to `peer`.
fn remove(peer: &Peer, device: Option<&str>, ip: &mut String, bridge: &mut String) {
    let cidr = format_cidr(peer.cidr);
    match (device, &peer.vtep_mac) {
        (Some(dev), Some(mac)) => {
            ip.push_str(&format!(
                "route del {cidr} dev {dev}\nneigh del {} dev {dev}\n",
                peer.cidr.0
            ));
            bridge.push_str(&format!(
                "fdb del {mac} dev {dev} dst {} self\n",
                peer.public_ip
            ));
        }
        _ => ip.push_str(&format!("route del {cidr} via {}\n", peer.public_ip)),
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // Drop cannot await; each is one quick process.
        if let Some(dev) = &self.device {
            run_blocking("ip", &["link", "del", dev], "removing the VXLAN device");
        } else {
            for peer in self.applied.values() {
                let cidr = format_cidr(peer.cidr);
                let via = peer.public_ip.to_string();
                run_blocking(
                    "ip",
                    &["route", "del", &cidr, "via", &via],
                    "removing a route",
                );
            }
        }
        if self.masquerading {
            run_blocking(
                "nft",
                &["delete", "table", "ip", &self.table],
                "removing the masquerade table",
            );
        }
    }
}

/// The IPv4 addresses of this machine (its network namespace).
async fn local_addresses() -> Result<BTreeSet<Ipv4Addr>, PodNetworkError> {
    let out = command::run("ip", &["-o", "-4", "address", "show"], None).await?;
    Ok(parse_addresses(&out)
        .into_iter()
        .map(|(ip, _)| ip)
        .collect())
}

/// `(address, interface)` of each `inet` line of `ip -o -4 address show`.
fn parse_addresses(out: &str) -> Vec<(Ipv4Addr, String)> {
    out.lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let _index = words.next()?;
            let dev = words.next()?.to_string();
            words.find(|w| *w == "inet")?;
            let ip = words.next()?.split('/').next()?.parse().ok()?;
            Some((ip, dev))
        })
        .collect()
}

/// The MTU of the interface holding `ip` (1500 when no interface does).
pub async fn underlay_mtu(ip: Ipv4Addr) -> Result<u32, PodNetworkError> {
    let out = command::run("ip", &["-o", "-4", "address", "show"], None).await?;
    let Some((_, dev)) = parse_addresses(&out).into_iter().find(|(a, _)| *a == ip) else {
        return Ok(1500);
    };
    let link = command::run("ip", &["-o", "link", "show", "dev", &dev], None).await?;
    Ok(parse_mtu(&link).unwrap_or(1500))
}

fn parse_mtu(link: &str) -> Option<u32> {
    let mut words = link.split_whitespace();
    words.find(|w| *w == "mtu")?;
    words.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_addresses_and_mtu() {
        let out = "1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever\n\
                   2: eth0    inet 10.123.0.2/24 brd 10.123.0.255 scope global eth0\\       valid_lft forever preferred_lft forever\n";
        assert_eq!(
            parse_addresses(out),
            [
                (Ipv4Addr::new(127, 0, 0, 1), "lo".to_string()),
                (Ipv4Addr::new(10, 123, 0, 2), "eth0".to_string())
            ]
        );
        let link = "2: eth0@if7: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP mode DEFAULT group default qlen 1000\\    link/ether b6:36:e3:7c:04:5b brd ff:ff:ff:ff:ff:ff link-netns kt-under";
        assert_eq!(parse_mtu(link), Some(1500));
    }

    #[test]
    fn a_vxlan_peer_is_a_forwarding_entry_a_neighbour_and_an_onlink_route() {
        let peer = Peer {
            cidr: (Ipv4Addr::new(10, 244, 2, 0), 24),
            public_ip: Ipv4Addr::new(10, 123, 0, 2),
            vtep_mac: Some("0e:6b:0a:7b:00:02".into()),
        };
        let (mut ip, mut bridge) = (String::new(), String::new());
        add(&peer, Some("kedge.1"), &mut ip, &mut bridge);
        assert_eq!(
            bridge,
            "fdb replace 0e:6b:0a:7b:00:02 dev kedge.1 dst 10.123.0.2 self permanent\n"
        );
        assert_eq!(
            ip,
            "neigh replace 10.244.2.0 lladdr 0e:6b:0a:7b:00:02 dev kedge.1 nud permanent\n\
             route replace 10.244.2.0/24 via 10.244.2.0 dev kedge.1 onlink\n"
        );
        let (mut ip, mut bridge) = (String::new(), String::new());
        remove(&peer, Some("kedge.1"), &mut ip, &mut bridge);
        assert_eq!(
            ip,
            "route del 10.244.2.0/24 dev kedge.1\nneigh del 10.244.2.0 dev kedge.1\n"
        );
        assert_eq!(
            bridge,
            "fdb del 0e:6b:0a:7b:00:02 dev kedge.1 dst 10.123.0.2 self\n"
        );
    }

    #[test]
    fn a_host_gw_peer_is_a_route() {
        let peer = Peer {
            cidr: (Ipv4Addr::new(10, 244, 3, 0), 24),
            public_ip: Ipv4Addr::new(10, 123, 0, 3),
            vtep_mac: None,
        };
        let (mut ip, mut bridge) = (String::new(), String::new());
        add(&peer, None, &mut ip, &mut bridge);
        assert_eq!(ip, "route replace 10.244.3.0/24 via 10.123.0.3\n");
        assert!(bridge.is_empty());
    }
}
