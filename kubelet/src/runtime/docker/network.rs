//! The pod network: a Docker bridge network per node whose subnet is the
//! node's pod CIDR, so pod IPs come from the range the cluster gave the
//! node and are reachable from the node itself.

use std::collections::HashMap;

use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::Docker;

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

/// The first address of an IPv4 subnet: the bridge's, the node's address
/// on the pod network.
pub fn gateway(subnet: &str) -> Option<String> {
    let (addr, _) = subnet.split_once('/')?;
    let ip: std::net::Ipv4Addr = addr.parse().ok()?;
    Some(std::net::Ipv4Addr::from(u32::from(ip) + 1).to_string())
}
