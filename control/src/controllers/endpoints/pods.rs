//! What the Endpoints and EndpointSlice controllers ask of a Pod: whether it
//! belongs in a Service's endpoints at all, whether it is ready, which of
//! its ports a Service port targets, and which Services select it.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Pod, Service, ServicePort};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Label a headless Service puts on its Endpoints and EndpointSlices.
pub(crate) const HEADLESS_LABEL: &str = "service.kubernetes.io/headless";

/// Annotation with the time of the oldest change not yet reflected.
pub(crate) const LAST_CHANGE_TRIGGER_TIME: &str =
    "endpoints.kubernetes.io/last-change-trigger-time";

/// Whether the pod is in a terminal phase (Succeeded or Failed).
pub(crate) fn is_terminal(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// The pod's Ready condition is True.
pub(crate) fn is_ready(pod: &Pod) -> bool {
    ready_condition(pod).is_some_and(|c| c.status == "True")
}

fn ready_condition(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::PodCondition> {
    pod.status
        .as_ref()?
        .conditions
        .as_ref()?
        .iter()
        .find(|c| c.type_ == "Ready")
}

/// When the pod last changed in a way endpoints care about: the last
/// transition of its Ready condition, if it has one.
pub(crate) fn trigger_time(pod: &Pod) -> Option<jiff::Timestamp> {
    ready_condition(pod)?
        .last_transition_time
        .as_ref()
        .map(|t| t.0)
}

/// Kubernetes' `ShouldPodBeInEndpoints`: terminal pods and pods without an
/// IP never are; terminating pods only when asked for.
pub(crate) fn should_be_in_endpoints(pod: &Pod, include_terminating: bool) -> bool {
    if is_terminal(pod) {
        return false;
    }
    if pod_ips(pod).is_empty() {
        return false;
    }
    include_terminating || pod.metadata.deletion_timestamp.is_none()
}

/// Every IP of the pod, `podIP` first.
pub(crate) fn pod_ips(pod: &Pod) -> Vec<String> {
    let Some(status) = pod.status.as_ref() else {
        return Vec::new();
    };
    let mut ips: Vec<String> = status
        .pod_ip
        .iter()
        .filter(|ip| !ip.is_empty())
        .cloned()
        .collect();
    for ip in status.pod_ips.iter().flatten() {
        if !ip.ip.is_empty() && !ips.contains(&ip.ip) {
            ips.push(ip.ip.clone());
        }
    }
    ips
}

/// Whether an address is IPv6 (else IPv4).
pub(crate) fn is_ipv6(ip: &str) -> bool {
    ip.contains(':')
}

/// The pod's address in the given family ("IPv4" or "IPv6").
pub(crate) fn pod_ip_for_family(pod: &Pod, family: &str) -> Option<String> {
    let want_v6 = family == "IPv6";
    pod_ips(pod).into_iter().find(|ip| is_ipv6(ip) == want_v6)
}

/// The address family a Service's endpoints use: its ClusterIP's, else its
/// first `ipFamilies` entry, else IPv4.
pub(crate) fn service_family(svc: &Service) -> &'static str {
    let spec = svc.spec.as_ref();
    if let Some(ip) = spec.and_then(|s| s.cluster_ip.as_deref()) {
        if !ip.is_empty() && ip != "None" {
            return if is_ipv6(ip) { "IPv6" } else { "IPv4" };
        }
    }
    match spec
        .and_then(|s| s.ip_families.as_ref())
        .and_then(|f| f.first())
        .map(String::as_str)
    {
        Some("IPv6") => "IPv6",
        _ => "IPv4",
    }
}

/// A Service with `clusterIP: None`.
pub(crate) fn is_headless(svc: &Service) -> bool {
    svc.spec.as_ref().and_then(|s| s.cluster_ip.as_deref()) == Some("None")
}

/// `spec.publishNotReadyAddresses`.
pub(crate) fn publish_not_ready(svc: &Service) -> bool {
    svc.spec
        .as_ref()
        .and_then(|s| s.publish_not_ready_addresses)
        .unwrap_or(false)
}

/// The selector of a Service this controller serves: Services without one
/// (and ExternalName Services) get their endpoints from elsewhere.
pub(crate) fn managed_selector(svc: &Service) -> Option<&BTreeMap<String, String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() == Some("ExternalName") {
        return None;
    }
    spec.selector.as_ref()
}

/// Whether a Service's selector selects a pod in its namespace.
pub(crate) fn selects(svc: &Service, pod: &Pod) -> bool {
    let Some(selector) = managed_selector(svc) else {
        return false;
    };
    if svc.metadata.namespace != pod.metadata.namespace {
        return false;
    }
    let empty = BTreeMap::new();
    let labels = pod.metadata.labels.as_ref().unwrap_or(&empty);
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// Kubernetes' `FindPort`: the pod port a Service port targets. A number is
/// taken as is; a name is looked up among the containers' ports (and
/// restartable init containers') with the same protocol. `None` when the
/// pod has no such named port: the Endpoints controller then leaves the
/// pod out of that port's subset, and the EndpointSlice controller gives
/// its endpoint a port list without that port.
pub(crate) fn find_port(pod: &Pod, port: &ServicePort) -> Option<i32> {
    let protocol = port.protocol.as_deref().unwrap_or("TCP");
    match &port.target_port {
        None => Some(port.port),
        Some(IntOrString::Int(n)) => Some(*n),
        Some(IntOrString::String(name)) => {
            if let Ok(n) = name.parse::<i32>() {
                return Some(n);
            }
            let spec = pod.spec.as_ref()?;
            let sidecars = spec
                .init_containers
                .iter()
                .flatten()
                .filter(|c| c.restart_policy.as_deref() == Some("Always"));
            spec.containers
                .iter()
                .chain(sidecars)
                .flat_map(|c| c.ports.iter().flatten())
                .find(|p| {
                    p.name.as_deref() == Some(name.as_str())
                        && p.protocol.as_deref().unwrap_or("TCP") == protocol
                })
                .map(|p| p.container_port)
        }
    }
}

/// Kubernetes' `ShouldSetHostname`: a pod whose subdomain names the Service
/// publishes its hostname.
pub(crate) fn hostname_for(pod: &Pod, svc: &Service) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    let hostname = spec.hostname.as_deref().filter(|h| !h.is_empty())?;
    (spec.subdomain.as_deref() == svc.metadata.name.as_deref()
        && pod.metadata.namespace == svc.metadata.namespace)
        .then(|| hostname.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{Container, ContainerPort, PodSpec};

    fn pod_with_port(name: &str, number: i32) -> Pod {
        Pod {
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    ports: Some(vec![ContainerPort {
                        name: Some(name.into()),
                        container_port: number,
                        ..Default::default()
                    }]),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn named_target_port_resolves_per_pod() {
        let port = ServicePort {
            port: 80,
            target_port: Some(IntOrString::String("http".into())),
            ..Default::default()
        };
        assert_eq!(find_port(&pod_with_port("http", 8080), &port), Some(8080));
        assert_eq!(find_port(&pod_with_port("web", 8080), &port), None);
        let udp = ServicePort {
            protocol: Some("UDP".into()),
            ..port
        };
        assert_eq!(find_port(&pod_with_port("http", 8080), &udp), None);
    }

    #[test]
    fn numeric_and_missing_target_port() {
        let pod = pod_with_port("http", 8080);
        let port = ServicePort {
            port: 80,
            target_port: Some(IntOrString::Int(9376)),
            ..Default::default()
        };
        assert_eq!(find_port(&pod, &port), Some(9376));
        let bare = ServicePort {
            port: 80,
            ..Default::default()
        };
        assert_eq!(find_port(&pod, &bare), Some(80));
    }
}
