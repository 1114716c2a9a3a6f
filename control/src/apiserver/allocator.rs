//! Service ClusterIP and NodePort allocation. The set of used addresses and
//! ports is read from the stored Services each time, under one lock, so an
//! address is released the moment its Service is gone and no second map can
//! drift from the truth.

use std::collections::HashSet;
use std::net::Ipv4Addr;

use serde_json::{json, Value};

use kedge_config::cluster::ClusterConfig;
use kedge_config::validation::{FieldError, FieldErrorKind};

/// Addresses and ports held by Services other than the one being written.
pub struct InUse {
    /// ClusterIPs.
    pub ips: HashSet<Ipv4Addr>,
    /// NodePorts (TCP and UDP share the space, as in Kubernetes).
    pub node_ports: HashSet<u16>,
}

impl InUse {
    /// Collect from stored Service objects, skipping the one at `skip_key`.
    pub fn from_services<'a>(
        services: impl Iterator<Item = (&'a str, &'a Value)>,
        skip_key: &str,
    ) -> Self {
        let mut ips = HashSet::new();
        let mut node_ports = HashSet::new();
        for (key, svc) in services {
            if key == skip_key {
                continue;
            }
            for ip in cluster_ips(svc) {
                ips.insert(ip);
            }
            if let Some(ports) = svc.pointer("/spec/ports").and_then(Value::as_array) {
                for p in ports {
                    if let Some(n) = p.get("nodePort").and_then(Value::as_u64) {
                        node_ports.insert(n as u16);
                    }
                }
            }
        }
        Self { ips, node_ports }
    }
}

fn cluster_ips(svc: &Value) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    if let Some(ip) = svc.pointer("/spec/clusterIP").and_then(Value::as_str) {
        if let Ok(ip) = ip.parse() {
            out.push(ip);
        }
    }
    out
}

fn invalid(field: &str, value: &str, detail: String) -> FieldError {
    FieldError {
        kind: FieldErrorKind::Invalid,
        field: field.to_string(),
        value: Some(value.to_string()),
        detail,
    }
}

/// Fill in and check `spec.clusterIP(s)` and NodePorts of a Service being
/// created or updated (`old` is the stored version on update).
pub fn allocate(
    cfg: &ClusterConfig,
    svc: &mut Value,
    old: Option<&Value>,
    in_use: &InUse,
) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    let (net, prefix) = cfg.service_cidr_net();
    let size: u32 = 1u32 << (32 - prefix as u32);
    let base = u32::from(net);
    let in_range = |ip: Ipv4Addr| {
        let v = u32::from(ip);
        v > base && v < base + size - 1
    };
    let svc_type = svc
        .pointer("/spec/type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
        return Ok(());
    };

    // === ClusterIP ===
    if svc_type == "ExternalName" {
        spec.remove("clusterIP");
        spec.remove("clusterIPs");
    } else {
        let requested = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let old_ip = old
            .and_then(|o| o.pointer("/spec/clusterIP"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let ip = match (requested.as_str(), old_ip) {
            // An update that leaves the address out keeps it.
            ("", Some(old_ip)) => Some(old_ip),
            ("None", _) => Some("None".to_string()),
            ("", None) => {
                let reserved = [cfg.kubernetes_service_ip(), cfg.dns_service_ip()];
                let start = rand::random::<u32>() % (size - 2);
                let found = (0..size - 2)
                    .map(|i| base + 1 + (start + i) % (size - 2))
                    .find(|v| {
                        let ip = Ipv4Addr::from(*v);
                        !in_use.ips.contains(&ip) && !reserved.contains(&ip)
                    });
                match found {
                    Some(v) => Some(Ipv4Addr::from(v).to_string()),
                    None => {
                        errors.push(invalid(
                            "spec.clusterIPs",
                            "",
                            "failed to allocate IP: range is full".into(),
                        ));
                        None
                    }
                }
            }
            (req, Some(old_ip)) if req == old_ip => Some(old_ip),
            (req, _) => match req.parse::<Ipv4Addr>() {
                Ok(ip) if !in_range(ip) => {
                    errors.push(invalid(
                        "spec.clusterIPs",
                        req,
                        format!(
                            "failed to allocate IP {req}: the provided IP ({req}) is not in the valid range. The range of valid IPs is {}",
                            cfg.service_cidr
                        ),
                    ));
                    None
                }
                Ok(ip) if in_use.ips.contains(&ip) => {
                    errors.push(invalid(
                        "spec.clusterIPs",
                        req,
                        format!("failed to allocate IP {req}: provided IP is already allocated"),
                    ));
                    None
                }
                Ok(_) => Some(req.to_string()),
                Err(_) => {
                    errors.push(invalid(
                        "spec.clusterIP",
                        req,
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)".into(),
                    ));
                    None
                }
            },
        };
        if let Some(ip) = ip {
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
            spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
            spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
        }
    }

    // === NodePorts ===
    let wants_node_ports = svc_type == "NodePort" || svc_type == "LoadBalancer";
    let (lo, hi) = cfg.node_port_range;
    let old_ports: Vec<Value> = old
        .and_then(|o| o.pointer("/spec/ports"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut taken: HashSet<u16> = HashSet::new();
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for (i, p) in ports.iter_mut().enumerate() {
            let Some(p) = p.as_object_mut() else { continue };
            if !wants_node_ports {
                p.remove("nodePort");
                continue;
            }
            let mut requested = p.get("nodePort").and_then(Value::as_u64).unwrap_or(0) as u16;
            if requested == 0 {
                // Keep the port an earlier version had for the same port.
                let port = p.get("port").cloned();
                if let Some(n) = old_ports
                    .iter()
                    .find(|o| o.get("port") == port.as_ref())
                    .and_then(|o| o.get("nodePort"))
                    .and_then(Value::as_u64)
                {
                    requested = n as u16;
                }
            }
            let field = format!("spec.ports[{i}].nodePort");
            if requested != 0 {
                if requested < lo || requested > hi {
                    errors.push(invalid(&field, &requested.to_string(), format!("provided port is not in the valid range. The range of valid ports is {lo}-{hi}")));
                } else if in_use.node_ports.contains(&requested) || taken.contains(&requested) {
                    errors.push(invalid(
                        &field,
                        &requested.to_string(),
                        "provided port is already allocated".into(),
                    ));
                } else {
                    taken.insert(requested);
                    p.insert("nodePort".into(), json!(requested));
                }
                continue;
            }
            let span = (hi - lo) as u32 + 1;
            let start = rand::random::<u32>() % span;
            let found = (0..span)
                .map(|k| lo + ((start + k) % span) as u16)
                .find(|n| !in_use.node_ports.contains(n) && !taken.contains(n));
            match found {
                Some(n) => {
                    taken.insert(n);
                    p.insert("nodePort".into(), json!(n));
                }
                None => errors.push(invalid(
                    &field,
                    "0",
                    "failed to allocate a nodePort: range is full".into(),
                )),
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}
