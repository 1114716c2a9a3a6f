//! A container's requests and limits in the runtime's units, as the
//! kubelet's Linux container config computes them: CPU shares from the
//! request, a CFS quota from the CPU limit, a memory limit in bytes.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Container;
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kedge_config::quantity::parse_quantity;

use crate::runtime::ContainerResources;

/// The kernel's smallest `cpu.shares`; also what a container without a CPU
/// request gets, so it yields to every container that has one.
pub const MIN_SHARES: i64 = 2;
/// The kernel's largest `cpu.shares`.
pub const MAX_SHARES: i64 = 262_144;
/// Shares per core.
pub const SHARES_PER_CPU: i64 = 1024;

/// The runtime resources of `container`. A quantity that does not parse
/// counts as unset (the API server has validated them).
pub fn container_resources(container: &Container) -> ContainerResources {
    let r = container.resources.as_ref();
    let get = |map: Option<&BTreeMap<String, Quantity>>, name: &str| {
        map.and_then(|m| m.get(name))
            .and_then(|q| parse_quantity(&q.0).ok())
    };
    let requests = r.and_then(|r| r.requests.as_ref());
    let limits = r.and_then(|r| r.limits.as_ref());
    let cpu_limit = get(limits, "cpu").map(|q| clamp(q.as_milli()));
    // A CPU limit without a request makes the request equal to it.
    let cpu_request = get(requests, "cpu")
        .map(|q| clamp(q.as_milli()))
        .filter(|&m| m != 0)
        .or(cpu_limit)
        .unwrap_or(0);
    ContainerResources {
        cpu_shares: Some(milli_cpu_to_shares(cpu_request)),
        cpu_limit_millis: cpu_limit,
        memory_limit_bytes: get(limits, "memory").map(|q| clamp(q.as_bytes())),
    }
}

/// `cpu.shares` for a CPU request in millicores: 1024 per core, between
/// [`MIN_SHARES`] and [`MAX_SHARES`].
pub fn milli_cpu_to_shares(milli_cpu: i64) -> i64 {
    (milli_cpu.saturating_mul(SHARES_PER_CPU) / 1000).clamp(MIN_SHARES, MAX_SHARES)
}

fn clamp(v: i128) -> i64 {
    i64::try_from(v).unwrap_or(if v < 0 { i64::MIN } else { i64::MAX })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ResourceRequirements;

    fn container(requests: &[(&str, &str)], limits: &[(&str, &str)]) -> Container {
        let map = |v: &[(&str, &str)]| {
            (!v.is_empty()).then(|| {
                v.iter()
                    .map(|(k, q)| (k.to_string(), Quantity(q.to_string())))
                    .collect()
            })
        };
        Container {
            name: "c".into(),
            resources: Some(ResourceRequirements {
                requests: map(requests),
                limits: map(limits),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn shares_from_requests() {
        assert_eq!(milli_cpu_to_shares(0), 2);
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(100), 102);
        assert_eq!(milli_cpu_to_shares(250), 256);
        assert_eq!(milli_cpu_to_shares(1000), 1024);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        let r = container_resources(&container(&[("cpu", "500m")], &[]));
        assert_eq!(
            r,
            ContainerResources {
                cpu_shares: Some(512),
                cpu_limit_millis: None,
                memory_limit_bytes: None,
            }
        );
    }

    #[test]
    fn limits() {
        let r = container_resources(&container(
            &[("cpu", "250m"), ("memory", "64Mi")],
            &[("cpu", "2"), ("memory", "128Mi")],
        ));
        assert_eq!(
            r,
            ContainerResources {
                cpu_shares: Some(256),
                cpu_limit_millis: Some(2000),
                memory_limit_bytes: Some(128 << 20),
            }
        );
    }

    #[test]
    fn request_defaults_to_limit() {
        let r = container_resources(&container(&[], &[("cpu", "1500m")]));
        assert_eq!(r.cpu_shares, Some(1536));
        assert_eq!(r.cpu_limit_millis, Some(1500));
    }

    #[test]
    fn best_effort_gets_minimum_shares() {
        let r = container_resources(&Container::default());
        assert_eq!(
            r,
            ContainerResources {
                cpu_shares: Some(MIN_SHARES),
                cpu_limit_millis: None,
                memory_limit_bytes: None,
            }
        );
        // A malformed quantity counts as unset.
        let r = container_resources(&container(&[], &[("memory", "lots")]));
        assert_eq!(r.memory_limit_bytes, None);
    }
}
