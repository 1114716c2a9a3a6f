//! The subsets of an Endpoints object: one address per selected pod, ready
//! or not, with the ports each pod offers, repacked as Kubernetes'
//! `RepackSubsets` does (pods that offer the same ports share a subset).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    EndpointAddress, EndpointPort, EndpointSubset, ObjectReference, Pod, Service,
};

use super::pods;

/// The subsets a Service's Endpoints should have, from the pods its
/// selector matches.
pub(crate) fn desired(svc: &Service, selected: &[&Pod]) -> Vec<EndpointSubset> {
    let publish = pods::publish_not_ready(svc);
    let family = pods::service_family(svc);
    let ports = svc
        .spec
        .as_ref()
        .and_then(|s| s.ports.clone())
        .unwrap_or_default();
    let mut entries = Vec::new();
    for pod in selected {
        if !pods::should_be_in_endpoints(pod, publish) {
            continue;
        }
        let Some(ip) = pods::pod_ip_for_family(pod, family) else {
            continue;
        };
        let address = EndpointAddress {
            ip,
            hostname: pods::hostname_for(pod, svc),
            node_name: pod
                .spec
                .as_ref()
                .and_then(|s| s.node_name.clone())
                .filter(|n| !n.is_empty()),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: pod.metadata.namespace.clone(),
                name: pod.metadata.name.clone(),
                uid: pod.metadata.uid.clone(),
                ..Default::default()
            }),
        };
        let ready = publish || pods::is_ready(pod);
        if ports.is_empty() {
            // A headless Service without ports still lists its pods.
            if pods::is_headless(svc) {
                entries.push((address, ready, None));
            }
            continue;
        }
        for port in &ports {
            let Some(number) = pods::find_port(pod, port) else {
                tracing::debug!(
                    pod = pod.metadata.name.as_deref().unwrap_or(""),
                    port = port.name.as_deref().unwrap_or(""),
                    "pod has no port the Service targets"
                );
                continue;
            };
            let endpoint_port = EndpointPort {
                name: port.name.clone(),
                port: number,
                protocol: Some(port.protocol.clone().unwrap_or_else(|| "TCP".into())),
                app_protocol: port.app_protocol.clone(),
            };
            entries.push((address.clone(), ready, Some(endpoint_port)));
        }
    }
    repack(entries)
}

type PortKey = (Option<String>, i32, Option<String>, Option<String>);
type AddrKey = (String, String);

fn port_key(p: &EndpointPort) -> PortKey {
    (
        p.name.clone(),
        p.port,
        p.protocol.clone(),
        p.app_protocol.clone(),
    )
}

fn addr_key(a: &EndpointAddress) -> AddrKey {
    let uid = a
        .target_ref
        .as_ref()
        .and_then(|r| r.uid.clone())
        .unwrap_or_default();
    (a.ip.clone(), uid)
}

/// Group (address, ready, port) entries into subsets: every port maps to
/// the set of addresses offering it, and ports with the same set of
/// addresses share a subset. An address ready anywhere counts as ready.
// The nested maps mirror Kubernetes' RepackSubsets step by step; naming
// each level would hide that correspondence.
#[allow(clippy::type_complexity)]
fn repack(entries: Vec<(EndpointAddress, bool, Option<EndpointPort>)>) -> Vec<EndpointSubset> {
    // Port (None: the "no ports" sentinel) → address key → (address, ready).
    let mut by_port: BTreeMap<
        Option<PortKey>,
        (
            Option<EndpointPort>,
            BTreeMap<AddrKey, (EndpointAddress, bool)>,
        ),
    > = BTreeMap::new();
    for (address, ready, port) in entries {
        let entry = by_port
            .entry(port.as_ref().map(port_key))
            .or_insert_with(|| (port.clone(), BTreeMap::new()));
        let slot = entry
            .1
            .entry(addr_key(&address))
            .or_insert_with(|| (address, ready));
        slot.1 |= ready;
    }
    // Address set (with readiness) → the ports it offers.
    type Signature = Vec<(AddrKey, bool)>;
    let mut by_addresses: BTreeMap<Signature, (Vec<(EndpointAddress, bool)>, Vec<EndpointPort>)> =
        BTreeMap::new();
    for (port, addresses) in by_port.into_values() {
        let signature: Signature = addresses
            .iter()
            .map(|(k, (_, r))| (k.clone(), *r))
            .collect();
        let group = by_addresses
            .entry(signature)
            .or_insert_with(|| (addresses.into_values().collect(), Vec::new()));
        if let Some(p) = port {
            group.1.push(p);
        }
    }
    by_addresses
        .into_values()
        .map(|(addresses, ports)| {
            let (ready, not_ready): (Vec<_>, Vec<_>) = addresses.into_iter().partition(|(_, r)| *r);
            let strip = |v: Vec<(EndpointAddress, bool)>| {
                let v: Vec<EndpointAddress> = v.into_iter().map(|(a, _)| a).collect();
                (!v.is_empty()).then_some(v)
            };
            EndpointSubset {
                addresses: strip(ready),
                not_ready_addresses: strip(not_ready),
                ports: (!ports.is_empty()).then_some(ports),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(ip: &str) -> EndpointAddress {
        EndpointAddress {
            ip: ip.into(),
            ..Default::default()
        }
    }

    fn port(name: &str, n: i32) -> Option<EndpointPort> {
        Some(EndpointPort {
            name: Some(name.into()),
            port: n,
            protocol: Some("TCP".into()),
            app_protocol: None,
        })
    }

    #[test]
    fn pods_with_the_same_ports_share_a_subset() {
        let subsets = repack(vec![
            (addr("10.0.0.2"), true, port("http", 80)),
            (addr("10.0.0.1"), false, port("http", 80)),
            (addr("10.0.0.3"), true, port("http", 8080)),
        ]);
        assert_eq!(subsets.len(), 2);
        let both = subsets
            .iter()
            .find(|s| s.ports.as_ref().unwrap()[0].port == 80)
            .unwrap();
        assert_eq!(both.addresses.as_ref().unwrap()[0].ip, "10.0.0.2");
        assert_eq!(both.not_ready_addresses.as_ref().unwrap()[0].ip, "10.0.0.1");
    }

    #[test]
    fn multiple_ports_of_the_same_pods_are_one_subset() {
        let subsets = repack(vec![
            (addr("10.0.0.1"), true, port("http", 80)),
            (addr("10.0.0.1"), true, port("https", 443)),
        ]);
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].ports.as_ref().unwrap().len(), 2);
    }
}
