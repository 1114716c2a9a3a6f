//! The records of the Kubernetes DNS-based service discovery specification,
//! computed from Service and EndpointSlice objects with no IO, so that the
//! index and its tests need no API server.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hickory_server::proto::rr::rdata::{A, AAAA, CNAME, PTR, SOA, SRV, TXT};
use hickory_server::proto::rr::{Name, RData, Record};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// The version of the specification served, in `dns-version.<domain>`.
pub const SCHEMA_VERSION: &str = "1.1.0";

/// `<service>.<namespace>.svc.<domain>`.
pub fn service_name(domain: &Name, namespace: &str, service: &str) -> Option<Name> {
    Name::from_labels([service, namespace, "svc"])
        .ok()?
        .append_domain(domain)
        .ok()
}

/// `<namespace>.svc.<domain>`.
pub fn namespace_name(domain: &Name, namespace: &str) -> Option<Name> {
    Name::from_labels([namespace, "svc"])
        .ok()?
        .append_domain(domain)
        .ok()
}

/// An IP address as one DNS label: `10-244-0-5`, `fd00--5`.
pub fn dashed(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string().replace('.', "-"),
        IpAddr::V6(v6) => v6.to_string().replace(':', "-"),
    }
}

/// The address a dashed label names, the inverse of [`dashed`].
pub fn undashed(label: &str) -> Option<IpAddr> {
    if label.contains("--") || label.matches('-').count() > 3 {
        return label
            .replace('-', ":")
            .parse::<Ipv6Addr>()
            .ok()
            .map(IpAddr::V6);
    }
    label
        .replace('-', ".")
        .parse::<Ipv4Addr>()
        .ok()
        .map(IpAddr::V4)
}

/// An address record, A or AAAA by the address family.
pub fn address_record(name: Name, ttl: u32, ip: IpAddr) -> Record {
    let rdata = match ip {
        IpAddr::V4(v4) => RData::A(A(v4)),
        IpAddr::V6(v6) => RData::AAAA(AAAA(v6)),
    };
    Record::from_rdata(name, ttl, rdata)
}

/// The zone's SOA, answered in the authority section of NXDOMAIN and NODATA
/// answers; its minimum is the TTL, which caps negative caching by clients.
pub fn soa_record(domain: &Name, ttl: u32, serial: u32) -> Record {
    let mname = Name::from_labels(["ns", "dns"])
        .and_then(|n| n.append_domain(domain))
        .unwrap_or_else(|_| domain.clone());
    let rname = Name::from_labels(["hostmaster"])
        .and_then(|n| n.append_domain(domain))
        .unwrap_or_else(|_| domain.clone());
    Record::from_rdata(
        domain.clone(),
        ttl,
        RData::SOA(SOA::new(mname, rname, serial, 7200, 1800, 86400, ttl)),
    )
}

/// `dns-version.<domain>` TXT, the schema version.
pub fn dns_version_record(domain: &Name, ttl: u32) -> Option<Record> {
    let name = Name::from_labels(["dns-version"])
        .ok()?
        .append_domain(domain)
        .ok()?;
    Some(Record::from_rdata(
        name,
        ttl,
        RData::TXT(TXT::new(vec![SCHEMA_VERSION.to_string()])),
    ))
}

/// The A/AAAA answer of a pod name `<ip-dashed>.<namespace>.pod.<domain>`,
/// taken from the name itself without checking that such a pod exists
/// (CoreDNS's `pods insecure`), given the name's first label.
pub fn pod_address(label: &[u8]) -> Option<IpAddr> {
    undashed(std::str::from_utf8(label).ok()?)
}

/// Whether a Service is headless (`clusterIP: None`).
pub fn is_headless(service: &Service) -> bool {
    service
        .spec
        .as_ref()
        .and_then(|s| s.cluster_ip.as_deref())
        .is_some_and(|ip| ip == "None")
}

/// The namespace and name of the Service an EndpointSlice belongs to.
pub fn slice_service(slice: &EndpointSlice) -> Option<(&str, &str)> {
    let namespace = slice.metadata.namespace.as_deref()?;
    let service = slice.metadata.labels.as_ref()?.get(SERVICE_NAME_LABEL)?;
    Some((namespace, service.as_str()))
}

/// Every record one Service owns: its own name, SRV names, endpoint names
/// of a headless Service and the PTR records of its addresses. Nothing for
/// a Service whose names are not valid DNS names, or with no ClusterIP yet.
pub fn service_records(
    domain: &Name,
    ttl: u32,
    service: &Service,
    slices: &[&EndpointSlice],
) -> Vec<Record> {
    let mut out = Vec::new();
    let (Some(namespace), Some(name), Some(spec)) = (
        service.metadata.namespace.as_deref(),
        service.metadata.name.as_deref(),
        service.spec.as_ref(),
    ) else {
        return out;
    };
    let Some(base) = service_name(domain, namespace, name) else {
        return out;
    };

    if spec.type_.as_deref() == Some("ExternalName") {
        if let Some(target) = spec
            .external_name
            .as_deref()
            .and_then(|n| Name::from_ascii(n).ok())
        {
            let mut target = target;
            target.set_fqdn(true);
            out.push(Record::from_rdata(base, ttl, RData::CNAME(CNAME(target))));
        }
        return out;
    }

    if is_headless(service) {
        headless_records(&base, ttl, service, slices, &mut out);
        return out;
    }

    let cluster_ips: BTreeSet<IpAddr> = spec
        .cluster_ips
        .iter()
        .flatten()
        .chain(spec.cluster_ip.iter())
        .filter_map(|ip| ip.parse().ok())
        .collect();
    if cluster_ips.is_empty() {
        return out;
    }
    for ip in &cluster_ips {
        out.push(address_record(base.clone(), ttl, *ip));
        out.push(Record::from_rdata(
            Name::from(*ip),
            ttl,
            RData::PTR(PTR(base.clone())),
        ));
    }
    for port in spec.ports.iter().flatten() {
        let Some(port_name) = port.name.as_deref().filter(|n| !n.is_empty()) else {
            continue;
        };
        let Some(srv) = srv_name(&base, port_name, port.protocol.as_deref()) else {
            continue;
        };
        out.push(Record::from_rdata(
            srv,
            ttl,
            RData::SRV(SRV::new(0, 100, port.port as u16, base.clone())),
        ));
    }
    out
}

/// `_<port>._<proto>.<base>`.
fn srv_name(base: &Name, port: &str, protocol: Option<&str>) -> Option<Name> {
    let proto = format!("_{}", protocol.unwrap_or("TCP").to_ascii_lowercase());
    Name::from_labels([format!("_{port}").as_str(), proto.as_str()])
        .ok()?
        .append_domain(base)
        .ok()
}

/// A headless Service answers its ready endpoint addresses; each endpoint
/// also has a name of its own, its hostname (StatefulSet pods) or its
/// dashed address, which SRV and PTR records point at.
fn headless_records(
    base: &Name,
    ttl: u32,
    service: &Service,
    slices: &[&EndpointSlice],
    out: &mut Vec<Record>,
) {
    let publish_not_ready = service
        .spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false);
    // endpoint name -> addresses; BTree so the answer order is stable.
    let mut endpoints: BTreeMap<Name, BTreeSet<IpAddr>> = BTreeMap::new();
    // (port name, protocol) -> (port, endpoint names)
    let mut ports: BTreeMap<(String, String), (u16, BTreeSet<Name>)> = BTreeMap::new();
    for slice in slices {
        let mut slice_targets = BTreeSet::new();
        for endpoint in &slice.endpoints {
            // A nil ready condition means ready (discovery.k8s.io/v1).
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready && !publish_not_ready {
                continue;
            }
            let hostname = endpoint.hostname.as_deref().filter(|h| !h.is_empty());
            for address in &endpoint.addresses {
                let Ok(ip) = address.parse::<IpAddr>() else {
                    continue;
                };
                let label = hostname.map_or_else(|| dashed(ip), str::to_string);
                let Some(name) = Name::from_labels([label.as_str()])
                    .ok()
                    .and_then(|n| n.append_domain(base).ok())
                else {
                    continue;
                };
                endpoints.entry(name.clone()).or_default().insert(ip);
                slice_targets.insert(name);
            }
        }
        for port in slice.ports.iter().flatten() {
            let (Some(port_name), Some(number)) =
                (port.name.as_deref().filter(|n| !n.is_empty()), port.port)
            else {
                continue;
            };
            let protocol = port.protocol.clone().unwrap_or_else(|| "TCP".into());
            let entry = ports
                .entry((port_name.to_string(), protocol))
                .or_insert_with(|| (number as u16, BTreeSet::new()));
            entry.1.extend(slice_targets.iter().cloned());
        }
    }

    let all: BTreeSet<IpAddr> = endpoints.values().flatten().copied().collect();
    for ip in &all {
        out.push(address_record(base.clone(), ttl, *ip));
    }
    for (name, ips) in &endpoints {
        for ip in ips {
            out.push(address_record(name.clone(), ttl, *ip));
            out.push(Record::from_rdata(
                Name::from(*ip),
                ttl,
                RData::PTR(PTR(name.clone())),
            ));
        }
    }
    for ((port_name, protocol), (number, targets)) in &ports {
        let Some(srv) = srv_name(base, port_name, Some(protocol)) else {
            continue;
        };
        // CoreDNS spreads a weight of 100 over the targets of one name.
        let weight = (100 / targets.len().max(1)).max(1) as u16;
        for target in targets {
            out.push(Record::from_rdata(
                srv.clone(),
                ttl,
                RData::SRV(SRV::new(0, weight, *number, target.clone())),
            ));
        }
    }
}

#[cfg(test)]
mod tests;
