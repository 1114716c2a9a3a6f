//! core/v1 kinds other than Pod: Service, Endpoints, ConfigMap, Secret, Namespace, Node,
//! Event, ServiceAccount, Binding; and autoscaling/v1 Scale.

use std::collections::HashSet;

use k8s_openapi::api::autoscaling::v1::Scale;
use k8s_openapi::api::core::v1::{
    Binding, ConfigMap, Endpoints, Event, Namespace, Node, Secret, Service, ServiceAccount,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::apps::render_int_or_string;
use super::meta::{validate_labels, validate_object_meta, NameRule};
use super::strings::*;
use super::{child, go_quote, index, key, render_string_slice, validate_nonnegative, FieldError};

const PROTOCOLS: &[&str] = &["SCTP", "TCP", "UDP"];
/// The largest ConfigMap or Secret payload (1 MiB).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;

/// Validates a Service.
pub fn validate_service(svc: &Service) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&svc.metadata, NameRule::Dns1035, "metadata");
    let default = Default::default();
    let spec = svc.spec.as_ref().unwrap_or(&default);
    let ty = spec.type_.as_deref().unwrap_or("");
    let cluster_ip = spec.cluster_ip.as_deref().unwrap_or("");
    let headless = cluster_ip == "None";
    let ports = spec.ports.as_deref().unwrap_or(&[]);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(FieldError::required("spec.ports", ""));
    }
    match ty {
        "ClusterIP" | "NodePort" | "LoadBalancer" => {}
        "ExternalName" => {
            if !cluster_ip.is_empty() && !headless {
                errs.push(FieldError::forbidden(
                    "spec.clusterIP",
                    "may not be set for ExternalName services",
                ));
            }
            let name = spec.external_name.as_deref().unwrap_or("");
            let clean = name.strip_suffix('.').unwrap_or(name);
            if clean.is_empty() {
                errs.push(FieldError::required("spec.externalName", ""));
            } else {
                for m in is_dns1123_subdomain(clean) {
                    errs.push(FieldError::invalid_str("spec.externalName", name, m));
                }
            }
        }
        "" => errs.push(FieldError::required("spec.type", "")),
        other => errs.push(FieldError::not_supported(
            "spec.type",
            other,
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    let require_name = ports.len() > 1;
    let mut names: HashSet<&str> = HashSet::new();
    let mut pairs: HashSet<(i32, String)> = HashSet::new();
    let mut node_ports: HashSet<(i32, String)> = HashSet::new();
    for (i, sp) in ports.iter().enumerate() {
        let p = index("spec.ports", i);
        let name = sp.name.as_deref().unwrap_or("");
        if require_name && name.is_empty() {
            errs.push(FieldError::required(child(&p, "name"), ""));
        } else if !name.is_empty() {
            for m in is_dns1123_label(name) {
                errs.push(FieldError::invalid_str(child(&p, "name"), name, m));
            }
            if !names.insert(name) {
                errs.push(FieldError::duplicate(child(&p, "name"), go_quote(name)));
            }
        }
        for m in is_valid_port_num(sp.port as i64) {
            errs.push(FieldError::invalid_int(
                child(&p, "port"),
                sp.port as i64,
                m,
            ));
        }
        let proto = sp.protocol.as_deref().unwrap_or("");
        match proto {
            "" => errs.push(FieldError::required(child(&p, "protocol"), "")),
            "TCP" | "UDP" | "SCTP" => {}
            other => errs.push(FieldError::not_supported(
                child(&p, "protocol"),
                other,
                PROTOCOLS,
            )),
        }
        if let Some(tp) = &sp.target_port {
            match tp {
                IntOrString::Int(n) => {
                    for m in is_valid_port_num(*n as i64) {
                        errs.push(FieldError::invalid_int(
                            child(&p, "targetPort"),
                            *n as i64,
                            m,
                        ));
                    }
                }
                IntOrString::String(s) => {
                    for m in is_valid_port_name(s) {
                        errs.push(FieldError::invalid_str(child(&p, "targetPort"), s, m));
                    }
                }
            }
        }
        let np = sp.node_port.unwrap_or(0);
        if np != 0 {
            if ty == "ClusterIP" {
                errs.push(FieldError::forbidden(
                    child(&p, "nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
            for m in is_valid_port_num(np as i64) {
                errs.push(FieldError::invalid_int(child(&p, "nodePort"), np as i64, m));
            }
            if !node_ports.insert((np, proto.to_string())) {
                errs.push(FieldError::duplicate(child(&p, "nodePort"), np.to_string()));
            }
        }
        if !pairs.insert((sp.port, proto.to_string())) {
            errs.push(FieldError::duplicate(
                &p,
                format!(
                    "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{}, TargetPort:{}, NodePort:0}}",
                    go_quote(proto),
                    sp.port,
                    render_int_or_string(None)
                ),
            ));
        }
        if let Some(ap) = sp.app_protocol.as_deref() {
            for m in is_qualified_name(ap) {
                errs.push(FieldError::invalid_str(child(&p, "appProtocol"), ap, m));
            }
        }
    }
    if ty != "ExternalName" {
        errs.extend(validate_labels(spec.selector.as_ref(), "spec.selector"));
    }
    match spec.session_affinity.as_deref().unwrap_or("") {
        "None" => {
            if spec.session_affinity_config.is_some() {
                errs.push(FieldError::invalid(
                    "spec.sessionAffinityConfig",
                    "&core.SessionAffinityConfig{...}",
                    "must not be set when session affinity is None",
                ));
            }
        }
        "ClientIP" => {
            let t = spec
                .session_affinity_config
                .as_ref()
                .and_then(|c| c.client_ip.as_ref())
                .and_then(|c| c.timeout_seconds);
            match t {
                None => errs.push(FieldError::required(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    "",
                )),
                Some(t) if !(1..=86400).contains(&t) => errs.push(FieldError::invalid_int(
                    "spec.sessionAffinityConfig.clientIP.timeoutSeconds",
                    t as i64,
                    "must be greater than 0 and less than 86400",
                )),
                _ => {}
            }
        }
        "" => errs.push(FieldError::required("spec.sessionAffinity", "")),
        other => errs.push(FieldError::not_supported(
            "spec.sessionAffinity",
            other,
            &["ClientIP", "None"],
        )),
    }
    // ClusterIP / ClusterIPs.
    let ips = spec.cluster_ips.as_deref().unwrap_or(&[]);
    if !cluster_ip.is_empty() && !ips.is_empty() && ips[0] != cluster_ip {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            render_string_slice(Some(ips)),
            "first value must match `clusterIP`",
        ));
    }
    if ips.is_empty() && !cluster_ip.is_empty() && !headless {
        for m in is_valid_ip(cluster_ip) {
            errs.push(FieldError::invalid_str("spec.clusterIP", cluster_ip, m));
        }
    }
    for (i, ip) in ips.iter().enumerate() {
        if ip == "None" {
            if i != 0 || ips.len() > 1 {
                errs.push(FieldError::invalid(
                    "spec.clusterIPs",
                    render_string_slice(Some(ips)),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        for m in is_valid_ip(ip) {
            errs.push(FieldError::invalid_str(index("spec.clusterIPs", i), ip, m));
        }
    }
    if ips.len() > 2 {
        errs.push(FieldError::invalid(
            "spec.clusterIPs",
            render_string_slice(Some(ips)),
            "may only hold up to 2 values",
        ));
    }
    for (i, ip) in spec.external_ips.iter().flatten().enumerate() {
        for m in is_valid_ip(ip) {
            errs.push(FieldError::invalid_str(index("spec.externalIPs", i), ip, m));
        }
    }
    // Traffic policies.
    let externally_accessible = ty == "NodePort"
        || ty == "LoadBalancer"
        || (ty == "ClusterIP" && spec.external_ips.as_ref().is_some_and(|v| !v.is_empty()));
    let etp = spec.external_traffic_policy.as_deref().unwrap_or("");
    if !externally_accessible {
        if !etp.is_empty() {
            errs.push(FieldError::invalid_str(
                "spec.externalTrafficPolicy",
                etp,
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(FieldError::required("spec.externalTrafficPolicy", ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(FieldError::not_supported(
            "spec.externalTrafficPolicy",
            etp,
            &["Cluster", "Local"],
        ));
    }
    if let Some(itp) = spec.internal_traffic_policy.as_deref() {
        if itp != "Cluster" && itp != "Local" {
            errs.push(FieldError::not_supported(
                "spec.internalTrafficPolicy",
                itp,
                &["Cluster", "Local"],
            ));
        }
    } else if ty != "ExternalName" && !ty.is_empty() {
        errs.push(FieldError::required("spec.internalTrafficPolicy", ""));
    }
    if let Some(p) = spec.ip_family_policy.as_deref() {
        if !["SingleStack", "PreferDualStack", "RequireDualStack"].contains(&p) {
            errs.push(FieldError::not_supported(
                "spec.ipFamilyPolicy",
                p,
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    for (i, f) in spec.ip_families.iter().flatten().enumerate() {
        if f != "IPv4" && f != "IPv6" {
            errs.push(FieldError::not_supported(
                index("spec.ipFamilies", i),
                f,
                &["IPv4", "IPv6"],
            ));
        }
    }
    for (i, r) in spec
        .load_balancer_source_ranges
        .iter()
        .flatten()
        .enumerate()
    {
        for m in is_valid_cidr(r.trim()) {
            errs.push(FieldError::invalid_str(
                index("spec.loadBalancerSourceRanges", i),
                r,
                m,
            ));
        }
    }
    if let Some(h) = spec.health_check_node_port.filter(|h| *h != 0) {
        for m in is_valid_port_num(h as i64) {
            errs.push(FieldError::invalid_int(
                "spec.healthCheckNodePort",
                h as i64,
                m,
            ));
        }
    }
    errs
}

/// Validates Endpoints.
pub fn validate_endpoints(ep: &Endpoints) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ep.metadata, NameRule::Subdomain, "metadata");
    for (i, ss) in ep.subsets.iter().flatten().enumerate() {
        let p = index("subsets", i);
        for (field, list) in [
            ("addresses", &ss.addresses),
            ("notReadyAddresses", &ss.not_ready_addresses),
        ] {
            for (j, a) in list.iter().flatten().enumerate() {
                let ap = index(&child(&p, field), j);
                for m in is_valid_ip(&a.ip) {
                    errs.push(FieldError::invalid_str(child(&ap, "ip"), &a.ip, m));
                }
                if a.ip == "0.0.0.0" || a.ip == "::" {
                    errs.push(FieldError::invalid_str(
                        child(&ap, "ip"),
                        &a.ip,
                        "may not be unspecified (0.0.0.0)",
                    ));
                }
                if let Some(h) = a.hostname.as_deref().filter(|h| !h.is_empty()) {
                    for m in is_dns1123_label(h) {
                        errs.push(FieldError::invalid_str(child(&ap, "hostname"), h, m));
                    }
                }
                if let Some(n) = a.node_name.as_deref().filter(|h| !h.is_empty()) {
                    for m in is_dns1123_subdomain(n) {
                        errs.push(FieldError::invalid_str(child(&ap, "nodeName"), n, m));
                    }
                }
            }
        }
        let ports = ss.ports.as_deref().unwrap_or(&[]);
        let require_name = ports.len() > 1;
        let mut names = HashSet::new();
        for (j, port) in ports.iter().enumerate() {
            let pp = index(&child(&p, "ports"), j);
            let name = port.name.as_deref().unwrap_or("");
            if require_name && name.is_empty() {
                errs.push(FieldError::required(child(&pp, "name"), ""));
            } else if !name.is_empty() {
                for m in is_dns1123_label(name) {
                    errs.push(FieldError::invalid_str(child(&pp, "name"), name, m));
                }
                if !names.insert(name) {
                    errs.push(FieldError::duplicate(child(&pp, "name"), go_quote(name)));
                }
            }
            for m in is_valid_port_num(port.port as i64) {
                errs.push(FieldError::invalid_int(
                    child(&pp, "port"),
                    port.port as i64,
                    m,
                ));
            }
            match port.protocol.as_deref().unwrap_or("") {
                "" => errs.push(FieldError::required(child(&pp, "protocol"), "")),
                "TCP" | "UDP" | "SCTP" => {}
                other => errs.push(FieldError::not_supported(
                    child(&pp, "protocol"),
                    other,
                    PROTOCOLS,
                )),
            }
        }
    }
    errs
}

/// Validates a ConfigMap: keys, no key in both data and binaryData, total size.
pub fn validate_config_map(cm: &ConfigMap) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&cm.metadata, NameRule::Subdomain, "metadata");
    let mut total = 0usize;
    for (k, v) in cm.data.iter().flatten() {
        for m in is_config_map_key(k) {
            errs.push(FieldError::invalid_str(key("data", k), k, m));
        }
        total += v.len();
    }
    for (k, v) in cm.binary_data.iter().flatten() {
        for m in is_config_map_key(k) {
            errs.push(FieldError::invalid_str(key("binaryData", k), k, m));
        }
        if cm.data.as_ref().is_some_and(|d| d.contains_key(k)) {
            errs.push(FieldError::invalid_str(
                key("binaryData", k),
                k,
                "duplicate of key present in data",
            ));
        }
        total += v.0.len();
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("", MAX_SECRET_SIZE));
    }
    errs
}

/// Validates a Secret: keys, total size, and the rules of its type.
pub fn validate_secret(s: &Secret) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&s.metadata, NameRule::Subdomain, "metadata");
    let empty = Default::default();
    let data = s.data.as_ref().unwrap_or(&empty);
    let mut total = 0usize;
    for (k, v) in data {
        for m in is_config_map_key(k) {
            errs.push(FieldError::invalid_str(key("data", k), k, m));
        }
        total += v.0.len();
    }
    // stringData, when not yet merged into data.
    for (k, v) in s.string_data.iter().flatten() {
        for m in is_config_map_key(k) {
            errs.push(FieldError::invalid_str(key("stringData", k), k, m));
        }
        if !data.contains_key(k) {
            total += v.len();
        }
    }
    if total > MAX_SECRET_SIZE {
        errs.push(FieldError::too_long("data", MAX_SECRET_SIZE));
    }
    let has =
        |k: &str| data.contains_key(k) || s.string_data.as_ref().is_some_and(|d| d.contains_key(k));
    let get = |k: &str| -> Option<Vec<u8>> {
        data.get(k).map(|b| b.0.clone()).or_else(|| {
            s.string_data
                .as_ref()
                .and_then(|d| d.get(k))
                .map(|v| v.as_bytes().to_vec())
        })
    };
    match s.type_.as_deref().unwrap_or("") {
        "kubernetes.io/service-account-token" => {
            let name = s
                .metadata
                .annotations
                .as_ref()
                .and_then(|a| a.get("kubernetes.io/service-account.name"))
                .map(String::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(FieldError::required(
                    "metadata.annotations[kubernetes.io/service-account.name]",
                    "",
                ));
            }
        }
        "" | "Opaque" => {}
        t @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let k = if t == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match get(k) {
                None => errs.push(FieldError::required(key("data", k), "")),
                Some(bytes) => {
                    if let Err(e) =
                        serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&bytes)
                    {
                        errs.push(FieldError::invalid_str(
                            key("data", k),
                            "<secret contents redacted>",
                            e.to_string(),
                        ));
                    }
                }
            }
        }
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(FieldError::required("data[username]", ""));
            errs.push(FieldError::required("data[password]", ""));
        }
        "kubernetes.io/ssh-auth" if get("ssh-privatekey").is_none_or(|v| v.is_empty()) => {
            errs.push(FieldError::required("data[ssh-privatekey]", ""));
        }
        "kubernetes.io/tls" => {
            if !has("tls.crt") {
                errs.push(FieldError::required("data[tls.crt]", ""));
            }
            if !has("tls.key") {
                errs.push(FieldError::required("data[tls.key]", ""));
            }
        }
        _ => {}
    }
    errs
}

/// Validates a Namespace (name is a DNS-1123 label; finalizers are qualified names).
pub fn validate_namespace(ns: &Namespace) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ns.metadata, NameRule::Label, "metadata");
    if let Some(spec) = &ns.spec {
        for (i, f) in spec.finalizers.iter().flatten().enumerate() {
            if f == "kubernetes" {
                continue;
            }
            let msgs = is_qualified_name(f);
            for m in &msgs {
                errs.push(FieldError::invalid_str(
                    index("spec.finalizers", i),
                    f,
                    m.clone(),
                ));
            }
            if msgs.is_empty() && !f.contains('/') {
                errs.push(FieldError::invalid_str(
                    index("spec.finalizers", i),
                    f,
                    "name is neither a standard finalizer name nor is it fully qualified",
                ));
            }
        }
    }
    errs
}

/// Validates a Node: pod CIDRs and taints.
pub fn validate_node(node: &Node) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&node.metadata, NameRule::Subdomain, "metadata");
    if let Some(spec) = &node.spec {
        if let Some(c) = spec.pod_cidr.as_deref().filter(|s| !s.is_empty()) {
            for m in is_valid_cidr(c) {
                errs.push(FieldError::invalid_str("spec.podCIDR", c, m));
            }
        }
        for (i, c) in spec.pod_cidrs.iter().flatten().enumerate() {
            for m in is_valid_cidr(c) {
                errs.push(FieldError::invalid_str(index("spec.podCIDRs", i), c, m));
            }
        }
        let mut seen = HashSet::new();
        for (i, t) in spec.taints.iter().flatten().enumerate() {
            let p = index("spec.taints", i);
            for m in is_qualified_name(&t.key) {
                errs.push(FieldError::invalid_str(child(&p, "key"), &t.key, m));
            }
            if let Some(v) = t.value.as_deref() {
                for m in is_valid_label_value(v) {
                    errs.push(FieldError::invalid_str(child(&p, "value"), v, m));
                }
            }
            match t.effect.as_str() {
                "NoSchedule" | "PreferNoSchedule" | "NoExecute" => {}
                "" => errs.push(FieldError::required(child(&p, "effect"), "")),
                other => errs.push(FieldError::not_supported(
                    child(&p, "effect"),
                    other,
                    &["NoSchedule", "PreferNoSchedule", "NoExecute"],
                )),
            }
            if !seen.insert((t.key.clone(), t.effect.clone())) {
                errs.push(FieldError::duplicate(
                    &p,
                    format!(
                        "core.Taint{{Key:{}, Effect:{}}}",
                        go_quote(&t.key),
                        go_quote(&t.effect)
                    ),
                ));
            }
        }
    }
    errs
}

/// Validates an Event (lightly: name, involved object, count).
pub fn validate_event(ev: &Event) -> Vec<FieldError> {
    let mut errs = validate_object_meta(&ev.metadata, NameRule::Any, "metadata");
    let ns = ev.metadata.namespace.as_deref().unwrap_or("");
    let io_ns = ev.involved_object.namespace.as_deref().unwrap_or("");
    if !io_ns.is_empty() && !ns.is_empty() && io_ns != ns {
        errs.push(FieldError::invalid_str(
            "involvedObject.namespace",
            io_ns,
            "does not match event.namespace",
        ));
    }
    if let Some(t) = ev.type_.as_deref().filter(|t| !t.is_empty()) {
        if t != "Normal" && t != "Warning" {
            errs.push(FieldError::not_supported("type", t, &["Normal", "Warning"]));
        }
    }
    if let Some(c) = ev.count {
        errs.extend(validate_nonnegative(c as i64, "count"));
    }
    errs
}

/// Validates a ServiceAccount.
pub fn validate_service_account(sa: &ServiceAccount) -> Vec<FieldError> {
    validate_object_meta(&sa.metadata, NameRule::Subdomain, "metadata")
}

/// Validates a Binding (pods/binding): the target must name a Node.
pub fn validate_binding(b: &Binding) -> Vec<FieldError> {
    let mut errs = Vec::new();
    let kind = b.target.kind.as_deref().unwrap_or("");
    if !kind.is_empty() && kind != "Node" {
        errs.push(FieldError::not_supported(
            "target.kind",
            kind,
            &["Node", "<empty>"],
        ));
    }
    if b.target.name.as_deref().unwrap_or("").is_empty() {
        errs.push(FieldError::required("target.name", ""));
    }
    errs
}

/// Validates a Scale (the scale subresource).
pub fn validate_scale(s: &Scale) -> Vec<FieldError> {
    let mut errs = Vec::new();
    if let Some(r) = s.spec.as_ref().and_then(|s| s.replicas) {
        errs.extend(validate_nonnegative(r as i64, "spec.replicas"));
    }
    errs
}
