//! The pod network: a Docker bridge network per node whose subnet is the
//! node's pod CIDR, so pod IPs come from the range the cluster gave the
//! node and are reachable from the node itself.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::Docker;
use kedge_config::cluster::KUBELET_PROBE_SOURCE;

use super::{is_status, map_err, DockerOptions, LABEL_MANAGED, LABEL_NODE};
use crate::runtime::{Result, RuntimeError};

/// Make sure the network `name` exists with `subnet`; a network of that
/// name with another subnet is an error (pods would get addresses outside
/// the node's range).
pub(super) async fn ensure(docker: &Docker, name: &str, options: &DockerOptions) -> Result<()> {
    let (subnet, node) = (options.pod_cidr.as_str(), options.node_name.as_str());
    match docker.inspect_network(name, None).await {
        Ok(net) => {
            let subnets: Vec<String> = net
                .ipam
                .and_then(|i| i.config)
                .unwrap_or_default()
                .into_iter()
                .filter_map(|c| c.subnet)
                .collect();
            if subnets.iter().any(|s| s == subnet) {
                return Ok(());
            }
            Err(RuntimeError::Failed(format!(
                "docker network {name} has subnets {subnets:?}, not the pod CIDR {subnet}; remove it or pick another pod CIDR"
            )))
        }
        Err(e) if is_status(&e, 404) => {
            let request = NetworkCreateRequest {
                name: name.to_string(),
                driver: Some("bridge".into()),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig {
                        subnet: Some(subnet.to_string()),
                        gateway: gateway(subnet),
                        ..Default::default()
                    }]),
                    ..Default::default()
                }),
                options: Some(bridge_options(options)),
                labels: Some(HashMap::from([
                    (LABEL_MANAGED.to_string(), "true".to_string()),
                    (LABEL_NODE.to_string(), node.to_string()),
                ])),
                ..Default::default()
            };
            match docker.create_network(request).await {
                Ok(_) => {
                    tracing::info!(network = %name, %subnet, "created the pod network");
                    Ok(())
                }
                // Another agent of this node made it meanwhile.
                Err(e) if is_status(&e, 409) => Ok(()),
                Err(e) => Err(map_err("creating the pod network", e)),
            }
        }
        Err(e) => Err(map_err("inspecting the pod network", e)),
    }
}

/// The bridge driver's options: the pods' MTU, and whether Docker
/// masquerades.
fn bridge_options(options: &DockerOptions) -> HashMap<String, String> {
    let mut out = HashMap::new();
    if let Some(mtu) = options.mtu {
        out.insert("com.docker.network.driver.mtu".to_string(), mtu.to_string());
    }
    if !options.docker_masquerade {
        out.insert(
            "com.docker.network.bridge.enable_ip_masquerade".to_string(),
            "false".to_string(),
        );
    }
    out
}

/// An IPv4 subnet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Subnet {
    base: u32,
    mask: u32,
}

impl Subnet {
    /// `a.b.c.d/n`.
    pub fn parse(cidr: &str) -> Option<Self> {
        let (addr, len) = cidr.split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        let len: u32 = len.parse().ok().filter(|l| *l <= 32)?;
        let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
        Some(Self {
            base: u32::from(addr) & mask,
            mask,
        })
    }

    /// Whether `ip` is in it.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask == self.base
    }
}

/// Put [`KUBELET_PROBE_SOURCE`] on the bridge of the pod network `name`,
/// for probes to come from (the pods answer it through their gateway, the
/// bridge). `None`, with a warning, if that cannot be done: probes then
/// come from the bridge's own address.
pub(super) async fn add_probe_source(
    docker: &Docker,
    name: &str,
    pod_cidr: &str,
) -> Option<(Ipv4Addr, Subnet)> {
    let subnet = Subnet::parse(pod_cidr)?;
    let network = docker.inspect_network(name, None).await.ok()?;
    // Docker names a bridge after its network unless told a name.
    let bridge = network
        .options
        .and_then(|mut o| o.remove("com.docker.network.bridge.name"))
        .or_else(|| Some(format!("br-{}", network.id?.get(..12)?)))?;
    let address = format!("{KUBELET_PROBE_SOURCE}/32");
    let out = tokio::process::Command::new("ip")
        .args(["addr", "replace", &address, "dev", &bridge])
        .output()
        .await;
    match out {
        Ok(out) if out.status.success() => Some((KUBELET_PROBE_SOURCE, subnet)),
        Ok(out) => {
            tracing::warn!(%bridge, error = %String::from_utf8_lossy(&out.stderr).trim(), "no probe source address on the pod bridge; probes come from the bridge's address");
            None
        }
        Err(error) => {
            tracing::warn!(%bridge, %error, "no probe source address on the pod bridge (is `ip` installed?)");
            None
        }
    }
}

/// The first address of an IPv4 subnet: the bridge's, the node's address
/// on the pod network.
pub fn gateway(subnet: &str) -> Option<String> {
    let (addr, _) = subnet.split_once('/')?;
    let ip: std::net::Ipv4Addr = addr.parse().ok()?;
    Some(std::net::Ipv4Addr::from(u32::from(ip) + 1).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subnet_holds_its_own_addresses_only() {
        let subnet = Subnet::parse("10.244.3.0/24").unwrap();
        assert!(subnet.contains(Ipv4Addr::new(10, 244, 3, 17)));
        assert!(!subnet.contains(Ipv4Addr::new(10, 244, 4, 17)));
        assert!(Subnet::parse("0.0.0.0/0")
            .unwrap()
            .contains(Ipv4Addr::new(1, 2, 3, 4)));
        assert_eq!(Subnet::parse("10.0.0.0/33"), None);
        assert_eq!(Subnet::parse("nonsense"), None);
    }
}
