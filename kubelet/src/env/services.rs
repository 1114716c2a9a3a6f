//! The variables the kubelet gives every container for Services, as
//! Kubernetes' `pkg/kubelet/envvars` makes them: `<NAME>_SERVICE_HOST`,
//! `<NAME>_SERVICE_PORT`, `<NAME>_SERVICE_PORT_<PORTNAME>` and the Docker
//! links variables `<NAME>_PORT*`, for the `kubernetes` Service of
//! `default` always and for the Services of the pod's namespace when
//! `enableServiceLinks` is not false.

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Pod, Service};

use crate::objects::{ObjectSource, Result};

/// The namespace of the API server's Service.
const MASTER_NAMESPACE: &str = "default";
/// The Services every pod gets variables for, whatever its namespace.
const MASTER_SERVICES: &[&str] = &["kubernetes"];

/// The service variables of `pod`, in the order Kubernetes writes them
/// (Services by name).
pub async fn service_environment(
    pod: &Pod,
    objects: &dyn ObjectSource,
) -> Result<Vec<(String, String)>> {
    let namespace = pod.metadata.namespace.as_deref().unwrap_or("default");
    let links = pod
        .spec
        .as_ref()
        .and_then(|s| s.enable_service_links)
        .unwrap_or(true);
    let mut chosen: BTreeMap<String, Arc<Service>> = BTreeMap::new();
    for svc in objects.services(MASTER_NAMESPACE).await? {
        let name = svc.metadata.name.clone().unwrap_or_default();
        if MASTER_SERVICES.contains(&name.as_str()) {
            chosen.insert(name, svc);
        }
    }
    if links {
        // A Service of the pod's own namespace wins over a master
        // Service of the same name.
        let own = if namespace == MASTER_NAMESPACE {
            objects.services(MASTER_NAMESPACE).await?
        } else {
            objects.services(namespace).await?
        };
        for svc in own {
            chosen.insert(svc.metadata.name.clone().unwrap_or_default(), svc);
        }
    }
    Ok(chosen.values().flat_map(|s| from_service(s)).collect())
}

fn variable_name(s: &str) -> String {
    s.replace('-', "_").to_uppercase()
}

/// The variables of one Service; none for a headless one.
pub fn from_service(svc: &Service) -> Vec<(String, String)> {
    let Some(spec) = &svc.spec else {
        return Vec::new();
    };
    let ip = spec.cluster_ip.as_deref().unwrap_or("");
    let ports = spec.ports.as_deref().unwrap_or_default();
    if ip.is_empty() || ip == "None" || ports.is_empty() {
        return Vec::new();
    }
    let prefix = variable_name(svc.metadata.name.as_deref().unwrap_or(""));
    let mut out = vec![
        (format!("{prefix}_SERVICE_HOST"), ip.to_string()),
        (format!("{prefix}_SERVICE_PORT"), ports[0].port.to_string()),
    ];
    for p in ports {
        if let Some(name) = p.name.as_deref().filter(|n| !n.is_empty()) {
            out.push((
                format!("{prefix}_SERVICE_PORT_{}", variable_name(name)),
                p.port.to_string(),
            ));
        }
    }
    let host_port = |port: i32| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    for (i, p) in ports.iter().enumerate() {
        let protocol = p.protocol.as_deref().unwrap_or("TCP");
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{}", host_port(p.port));
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, protocol.to_uppercase());
        out.push((port_prefix.clone(), url));
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.to_string()));
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{ServicePort, ServiceSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    use super::*;

    fn service(name: &str, ip: &str, ports: &[(&str, i32, &str)]) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..Default::default()
            },
            spec: Some(ServiceSpec {
                cluster_ip: Some(ip.into()),
                ports: Some(
                    ports
                        .iter()
                        .map(|(n, p, proto)| ServicePort {
                            name: (!n.is_empty()).then(|| n.to_string()),
                            port: *p,
                            protocol: Some(proto.to_string()),
                            ..Default::default()
                        })
                        .collect(),
                ),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn kubernetes_service_variables() {
        let vars = from_service(&service(
            "kubernetes",
            "10.96.0.1",
            &[("https", 443, "TCP")],
        ));
        let expect: Vec<(String, String)> = [
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(vars, expect);
    }

    #[test]
    fn dashes_become_underscores_and_headless_services_have_none() {
        let vars = from_service(&service(
            "my-dns",
            "10.96.0.10",
            &[("", 53, "UDP"), ("dns-tcp", 53, "TCP")],
        ));
        let names: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"MY_DNS_SERVICE_PORT_DNS_TCP"));
        assert!(vars.contains(&("MY_DNS_PORT".into(), "udp://10.96.0.10:53".into())));
        assert!(vars.contains(&("MY_DNS_PORT_53_TCP_PROTO".into(), "tcp".into())));
        assert!(from_service(&service("headless", "None", &[("", 80, "TCP")])).is_empty());
    }
}
