//! networking.k8s.io/v1 Ingress, IngressClass and NetworkPolicy,
//! discovery.k8s.io/v1 EndpointSlice, and coordination.k8s.io/v1 Lease.

use std::collections::HashSet;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::{Ingress, IngressBackend, IngressClass};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::meta::{validate_object_meta, NameRule};
use super::strings::*;
use super::{child, go_quote, index, validate_nonnegative, FieldError, IS_NOT_POSITIVE_ERROR};

const INVALID_PATH_SEQUENCES: &[&str] = &["//", "/./", "/../", "%2f", "%2F"];
const INVALID_PATH_SUFFIXES: &[&str] = &["/..", "/."];

fn validate_backend(b: &IngressBackend, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    match (&b.resource, &b.service) {
        (Some(_), Some(_)) => {
            errs.push(FieldError::invalid_str(
                path,
                "",
                "cannot set both resource and service backends",
            ));
        }
        (Some(r), None) => {
            let p = child(path, "resource");
            if r.kind.is_empty() {
                errs.push(FieldError::required(child(&p, "kind"), ""));
            }
            if r.name.is_empty() {
                errs.push(FieldError::required(child(&p, "name"), ""));
            }
            if let Some(g) = r.api_group.as_deref().filter(|g| !g.is_empty()) {
                for m in is_dns1123_subdomain(g) {
                    errs.push(FieldError::invalid_str(child(&p, "apiGroup"), g, m));
                }
            }
        }
        (None, Some(s)) => {
            let sp = child(path, "service");
            if s.name.is_empty() {
                errs.push(FieldError::required(child(&sp, "name"), ""));
            } else {
                for m in is_dns1035_label(&s.name) {
                    errs.push(FieldError::invalid_str(child(&sp, "name"), &s.name, m));
                }
            }
            let port_name = s
                .port
                .as_ref()
                .and_then(|p| p.name.as_deref())
                .unwrap_or("");
            let port_number = s.port.as_ref().and_then(|p| p.number).unwrap_or(0);
            if !port_name.is_empty() && port_number != 0 {
                errs.push(FieldError::invalid_str(
                    path,
                    "",
                    "cannot set both port name & port number",
                ));
            } else if !port_name.is_empty() {
                for m in is_valid_port_name(port_name) {
                    errs.push(FieldError::invalid_str(
                        child(&sp, "port.name"),
                        port_name,
                        m,
                    ));
                }
            } else if port_number != 0 {
                for m in is_valid_port_num(port_number as i64) {
                    errs.push(FieldError::invalid_int(
                        child(&sp, "port.number"),
                        port_number as i64,
                        m,
                    ));
                }
            } else {
                errs.push(FieldError::required(
                    path,
                    "port name or number is required",
                ));
            }
        }
        (None, None) => {
            errs.push(FieldError::invalid_str(
                path,
                "",
                "resource or service backend is required",
            ));
        }
    }
    errs
}

fn validate_host(host: &str, path: &str) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if host.parse::<std::net::IpAddr>().is_ok() {
        errs.push(FieldError::invalid_str(
            path,
            host,
            "must be a DNS name, not an IP address",
        ));
    }
    let msgs = if host.contains('*') {
        is_wildcard_dns1123_subdomain(host)
    } else {
        is_dns1123_subdomain(host)
    };
    for m in msgs {
        errs.push(FieldError::invalid_str(path, host, m));
    }
    errs
}

/// Validates an Ingress: rules (hosts, paths, pathType, backends), default backend, TLS.
pub fn validate_ingress(ing: &Ingress) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ing.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    let spec = ing.spec.as_ref().unwrap_or(&default);
    let rules = spec.rules.as_deref().unwrap_or(&[]);
    if rules.is_empty() && spec.default_backend.is_none() {
        errs.push(FieldError::invalid(
            "spec",
            "[]networking.IngressRule(nil)",
            "either `defaultBackend` or `rules` must be specified",
        ));
    }
    if let Some(b) = &spec.default_backend {
        errs.extend(validate_backend(b, "spec.defaultBackend"));
    }
    for (i, r) in rules.iter().enumerate() {
        let rp = index("spec.rules", i);
        if let Some(h) = r.host.as_deref().filter(|h| !h.is_empty()) {
            errs.extend(validate_host(h, &child(&rp, "host")));
        }
        let Some(http) = &r.http else { continue };
        let hp = child(&rp, "http");
        if http.paths.is_empty() {
            errs.push(FieldError::required(child(&hp, "paths"), ""));
        }
        for (j, p) in http.paths.iter().enumerate() {
            let pp = index(&child(&hp, "paths"), j);
            let path = p.path.as_deref().unwrap_or("");
            match p.path_type.as_str() {
                "" => {
                    errs.push(FieldError::required(
                        child(&pp, "pathType"),
                        "pathType must be specified",
                    ));
                    continue;
                }
                "Exact" | "Prefix" => {
                    if !path.starts_with('/') {
                        errs.push(FieldError::invalid_str(
                            child(&pp, "path"),
                            path,
                            "must be an absolute path",
                        ));
                    }
                    if !path.is_empty() {
                        for seq in INVALID_PATH_SEQUENCES {
                            if path.contains(seq) {
                                errs.push(FieldError::invalid_str(
                                    child(&pp, "path"),
                                    path,
                                    format!("must not contain '{seq}'"),
                                ));
                            }
                        }
                        for suf in INVALID_PATH_SUFFIXES {
                            if path.ends_with(suf) {
                                errs.push(FieldError::invalid_str(
                                    child(&pp, "path"),
                                    path,
                                    format!("cannot end with '{suf}'"),
                                ));
                            }
                        }
                    }
                }
                "ImplementationSpecific" => {
                    if !path.is_empty() && !path.starts_with('/') {
                        errs.push(FieldError::invalid_str(
                            child(&pp, "path"),
                            path,
                            "must be an absolute path",
                        ));
                    }
                }
                other => errs.push(FieldError::not_supported(
                    child(&pp, "pathType"),
                    other,
                    &["Exact", "ImplementationSpecific", "Prefix"],
                )),
            }
            errs.extend(validate_backend(&p.backend, &child(&pp, "backend")));
        }
    }
    for (i, t) in spec.tls.iter().flatten().enumerate() {
        let tp = index("spec.tls", i);
        for (j, h) in t.hosts.iter().flatten().enumerate() {
            let msgs = if h.contains('*') {
                is_wildcard_dns1123_subdomain(h)
            } else {
                is_dns1123_subdomain(h)
            };
            for m in msgs {
                errs.push(FieldError::invalid_str(
                    index(&child(&tp, "hosts"), j),
                    h,
                    m,
                ));
            }
        }
        if let Some(s) = t.secret_name.as_deref().filter(|s| !s.is_empty()) {
            for m in is_dns1123_subdomain(s) {
                errs.push(FieldError::invalid_str(child(&tp, "secretName"), s, m));
            }
        }
    }
    if let Some(c) = spec.ingress_class_name.as_deref() {
        for m in is_dns1123_subdomain(c) {
            errs.push(FieldError::invalid_str("spec.ingressClassName", c, m));
        }
        let annotation = ing
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get("kubernetes.io/ingress.class"));
        if let Some(a) = annotation {
            if a != c {
                errs.push(FieldError::invalid_str(
                    "annotations.kubernetes.io/ingress.class",
                    a,
                    "must match `ingressClassName` when both are specified",
                ));
            }
        }
    }
    errs
}

/// Validates an IngressClass.
pub fn validate_ingress_class(ic: &IngressClass) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ic.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    let spec = ic.spec.as_ref().unwrap_or(&default);
    let controller = spec.controller.as_deref().unwrap_or("");
    if controller.len() > 250 {
        errs.push(FieldError::too_long("spec.controller", 250));
    }
    for m in is_domain_prefixed_path(controller) {
        errs.push(FieldError::invalid_str("spec.controller", controller, m));
    }
    if let Some(p) = &spec.parameters {
        let pp = "spec.parameters";
        if p.kind.is_empty() {
            errs.push(FieldError::required(child(pp, "kind"), "kind is required"));
        }
        if p.name.is_empty() {
            errs.push(FieldError::required(child(pp, "name"), "name is required"));
        }
        let scope = p.scope.as_deref().unwrap_or("Cluster");
        match scope {
            "Cluster" => {
                if p.namespace.is_some() {
                    errs.push(FieldError::forbidden(
                        child(pp, "namespace"),
                        "`parameters.scope` is set to 'Cluster'",
                    ));
                }
            }
            "Namespace" => {
                if p.namespace.as_deref().unwrap_or("").is_empty() {
                    errs.push(FieldError::required(
                        child(pp, "namespace"),
                        "`parameters.scope` is set to 'Namespace'",
                    ));
                }
            }
            other => errs.push(FieldError::not_supported(
                child(pp, "scope"),
                other,
                &["Cluster", "Namespace"],
            )),
        }
    }
    errs
}

/// Validates an EndpointSlice: address type, addresses of that type, ports.
pub fn validate_endpoint_slice(es: &EndpointSlice) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&es.metadata, NameRule::Subdomain, "metadata");
    let at = es.address_type.as_str();
    if !["IPv4", "IPv6", "FQDN"].contains(&at) {
        errs.push(FieldError::not_supported(
            "addressType",
            at,
            &["FQDN", "IPv4", "IPv6"],
        ));
    }
    if es.endpoints.len() > 1000 {
        errs.push(FieldError::too_many("endpoints", es.endpoints.len(), 1000));
    }
    for (i, ep) in es.endpoints.iter().enumerate() {
        let p = index("endpoints", i);
        let ap = child(&p, "addresses");
        if ep.addresses.is_empty() {
            errs.push(FieldError::required(&ap, "must contain at least 1 address"));
        } else if ep.addresses.len() > 100 {
            errs.push(FieldError::too_many(&ap, ep.addresses.len(), 100));
        }
        for (j, a) in ep.addresses.iter().enumerate() {
            let path = index(&ap, j);
            match at {
                "IPv4" if a.parse::<std::net::Ipv4Addr>().is_err() => {
                    errs.push(FieldError::invalid_str(
                        path,
                        a,
                        "must be a valid IPv4 address",
                    ));
                }
                "IPv6" if a.parse::<std::net::Ipv6Addr>().is_err() => {
                    errs.push(FieldError::invalid_str(
                        path,
                        a,
                        "must be a valid IPv6 address",
                    ));
                }
                "FQDN" => {
                    for m in is_dns1123_subdomain(a.strip_suffix('.').unwrap_or(a)) {
                        errs.push(FieldError::invalid_str(&path, a, m));
                    }
                }
                _ => {}
            }
        }
        if let Some(n) = ep.node_name.as_deref().filter(|s| !s.is_empty()) {
            for m in is_dns1123_subdomain(n) {
                errs.push(FieldError::invalid_str(child(&p, "nodeName"), n, m));
            }
        }
        if let Some(h) = ep.hostname.as_deref().filter(|s| !s.is_empty()) {
            for m in is_dns1123_label(h) {
                errs.push(FieldError::invalid_str(child(&p, "hostname"), h, m));
            }
        }
    }
    let ports = es.ports.as_deref().unwrap_or(&[]);
    if ports.len() > 20000 {
        errs.push(FieldError::too_many("ports", ports.len(), 20000));
    }
    let mut names = HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let p = index("ports", i);
        let name = port.name.as_deref().unwrap_or("");
        if !name.is_empty() {
            for m in is_dns1123_label(name) {
                errs.push(FieldError::invalid_str(child(&p, "name"), name, m));
            }
        }
        if !names.insert(name) {
            errs.push(FieldError::duplicate(child(&p, "name"), go_quote(name)));
        }
        match port.protocol.as_deref() {
            None | Some("") => errs.push(FieldError::required(child(&p, "protocol"), "")),
            Some("TCP" | "UDP" | "SCTP") => {}
            Some(other) => errs.push(FieldError::not_supported(
                child(&p, "protocol"),
                other,
                &["SCTP", "TCP", "UDP"],
            )),
        }
        if let Some(n) = port.port {
            if n != 0 {
                for m in is_valid_port_num(n as i64) {
                    errs.push(FieldError::invalid_int(child(&p, "port"), n as i64, m));
                }
            }
        }
        if let Some(ap) = port.app_protocol.as_deref() {
            for m in is_qualified_name(ap) {
                errs.push(FieldError::invalid_str(child(&p, "appProtocol"), ap, m));
            }
        }
    }
    errs
}

/// Validates a Lease.
pub fn validate_lease(l: &Lease) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&l.metadata, NameRule::Subdomain, "metadata");
    if let Some(spec) = &l.spec {
        if let Some(d) = spec.lease_duration_seconds {
            if d <= 0 {
                errs.push(FieldError::invalid_int(
                    "spec.leaseDurationSeconds",
                    d as i64,
                    IS_NOT_POSITIVE_ERROR,
                ));
            }
        }
        if let Some(t) = spec.lease_transitions {
            errs.extend(validate_nonnegative(t as i64, "spec.leaseTransitions"));
        }
    }
    errs
}

/// Validates a NetworkPolicy (`ValidateNetworkPolicy`): selectors, ports
/// (a protocol Kubernetes knows, a port or port range that makes sense),
/// ipBlocks whose `except` lie inside their CIDR, policy types.
pub fn validate_network_policy(
    np: &k8s_openapi::api::networking::v1::NetworkPolicy,
) -> Vec<FieldError> {
    use super::meta::validate_label_selector;
    let mut errs = validate_object_meta(&np.metadata, NameRule::Subdomain, "metadata");
    let default = Default::default();
    let spec = np.spec.as_ref().unwrap_or(&default);
    if let Some(sel) = &spec.pod_selector {
        errs.extend(validate_label_selector(sel, "spec.podSelector"));
    }
    let ports = |ports: Option<&Vec<k8s_openapi::api::networking::v1::NetworkPolicyPort>>,
                 path: &str,
                 errs: &mut Vec<FieldError>| {
        for (i, p) in ports.into_iter().flatten().enumerate() {
            let at = index(path, i);
            if let Some(proto) = p.protocol.as_deref() {
                if !["TCP", "UDP", "SCTP"].contains(&proto) {
                    errs.push(FieldError::not_supported(
                        child(&at, "protocol"),
                        proto,
                        &["SCTP", "TCP", "UDP"],
                    ));
                }
            }
            match (&p.port, p.end_port) {
                (Some(IntOrString::Int(n)), end) => {
                    if !(1..=65535).contains(n) {
                        errs.push(FieldError::invalid_int(
                            child(&at, "port"),
                            i64::from(*n),
                            "must be between 1 and 65535, inclusive",
                        ));
                    }
                    if let Some(end) = end {
                        if end < *n {
                            errs.push(FieldError::invalid_int(
                                child(&at, "endPort"),
                                i64::from(end),
                                "must be greater than or equal to `port`",
                            ));
                        }
                    }
                }
                (Some(IntOrString::String(_)), Some(end)) => errs.push(FieldError::invalid_int(
                    child(&at, "endPort"),
                    i64::from(end),
                    "may not be specified when `port` is non-numeric",
                )),
                (None, Some(end)) => errs.push(FieldError::invalid_int(
                    child(&at, "endPort"),
                    i64::from(end),
                    "may not be specified when `port` is not specified",
                )),
                _ => {}
            }
        }
    };
    let peers = |peers: Option<&Vec<k8s_openapi::api::networking::v1::NetworkPolicyPeer>>,
                 path: &str,
                 errs: &mut Vec<FieldError>| {
        for (i, peer) in peers.into_iter().flatten().enumerate() {
            let at = index(path, i);
            let set = [
                peer.pod_selector.is_some(),
                peer.namespace_selector.is_some(),
                peer.ip_block.is_some(),
            ];
            if set.iter().all(|s| !s) {
                errs.push(FieldError::required(at.clone(), "must specify a peer"));
            }
            if peer.ip_block.is_some() && (set[0] || set[1]) {
                errs.push(FieldError::forbidden(
                    at.clone(),
                    "may not specify both ipBlock and another peer",
                ));
            }
            if let Some(sel) = &peer.pod_selector {
                errs.extend(validate_label_selector(sel, &child(&at, "podSelector")));
            }
            if let Some(sel) = &peer.namespace_selector {
                errs.extend(validate_label_selector(
                    sel,
                    &child(&at, "namespaceSelector"),
                ));
            }
            if let Some(block) = &peer.ip_block {
                let cidr_path = child(&child(&at, "ipBlock"), "cidr");
                let cidr = ipnet_of(&block.cidr);
                if cidr.is_none() {
                    for m in is_valid_cidr(&block.cidr) {
                        errs.push(FieldError::invalid_str(&cidr_path, &block.cidr, m));
                    }
                }
                for (j, e) in block.except.iter().flatten().enumerate() {
                    let ep = index(&child(&child(&at, "ipBlock"), "except"), j);
                    match (ipnet_of(e), cidr) {
                        (None, _) => {
                            for m in is_valid_cidr(e) {
                                errs.push(FieldError::invalid_str(&ep, e, m));
                            }
                        }
                        (Some(inner), Some(outer)) if !within(inner, outer) => errs.push(
                            FieldError::invalid_str(&ep, e, "must be a strict subset of `cidr`"),
                        ),
                        _ => {}
                    }
                }
            }
        }
    };
    for (i, rule) in spec.ingress.iter().flatten().enumerate() {
        let at = index("spec.ingress", i);
        ports(rule.ports.as_ref(), &child(&at, "ports"), &mut errs);
        peers(rule.from.as_ref(), &child(&at, "from"), &mut errs);
    }
    for (i, rule) in spec.egress.iter().flatten().enumerate() {
        let at = index("spec.egress", i);
        ports(rule.ports.as_ref(), &child(&at, "ports"), &mut errs);
        peers(rule.to.as_ref(), &child(&at, "to"), &mut errs);
    }
    for (i, t) in spec.policy_types.iter().flatten().enumerate() {
        if t != "Ingress" && t != "Egress" {
            errs.push(FieldError::not_supported(
                index("spec.policyTypes", i),
                t,
                &["Egress", "Ingress"],
            ));
        }
    }
    errs
}

/// An address and prefix length, parsed.
fn ipnet_of(cidr: &str) -> Option<(std::net::IpAddr, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    let ip: std::net::IpAddr = ip.parse().ok()?;
    let len: u8 = len.parse().ok()?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    (len <= max).then_some((ip, len))
}

/// Whether `inner` lies strictly inside `outer`.
fn within(inner: (std::net::IpAddr, u8), outer: (std::net::IpAddr, u8)) -> bool {
    use std::net::IpAddr::{V4, V6};
    if inner.1 <= outer.1 {
        return false;
    }
    match (inner.0, outer.0) {
        (V4(i), V4(o)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(outer.1)).unwrap_or(0);
            u32::from(i) & mask == u32::from(o) & mask
        }
        (V6(i), V6(o)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(outer.1)).unwrap_or(0);
            u128::from(i) & mask == u128::from(o) & mask
        }
        _ => false,
    }
}
