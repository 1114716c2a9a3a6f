//! The service mesh in the node proxy. Pods opt in with the label
//! `kedge.io/mesh: enabled` on their namespace (or on themselves; a pod
//! labelled `disabled` stays out); hostNetwork pods never take part.
//!
//! - [`identity`]: the certificates of the ServiceAccounts of the meshed
//!   pods on this node, asked of the Certificates API as the node and
//!   rotated at half their lifetime.
//! - [`netns`]: listeners, sockets and capture rules inside a pod's
//!   network namespace.
//! - [`outbound`]: a captured connection carried on, through the tunnel
//!   when its destination is meshed.
//! - [`tls`]: mutual TLS between node proxies, each side known by its
//!   workload's SPIFFE ID.
//! - [`tunnel`]: connections carried between node proxies as HTTP/2
//!   CONNECT streams over that TLS (Istio's HBONE).

pub mod identity;
pub mod netns;
pub mod outbound;
pub mod tls;
pub mod tunnel;

#[cfg(test)]
mod testing;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;

/// The label that opts a namespace or a pod into the mesh.
pub const MESH_LABEL: &str = "kedge.io/mesh";

/// Whether `pod` is in the mesh, given its namespace's labels: the pod's
/// own label decides if it has one, else the namespace's.
pub fn is_meshed(pod: &Pod, namespace_labels: Option<&BTreeMap<String, String>>) -> bool {
    if pod
        .spec
        .as_ref()
        .and_then(|s| s.host_network)
        .unwrap_or(false)
    {
        return false;
    }
    match label(pod.metadata.labels.as_ref()) {
        Some(value) => value == "enabled",
        None => label(namespace_labels) == Some("enabled"),
    }
}

fn label(labels: Option<&BTreeMap<String, String>>) -> Option<&str> {
    labels.and_then(|l| l.get(MESH_LABEL)).map(String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &[(&str, &str)], host_network: bool) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "p", "namespace": "n",
                         "labels": labels.iter().cloned().collect::<BTreeMap<_, _>>()},
            "spec": {"hostNetwork": host_network, "containers": []}
        }))
        .unwrap()
    }

    #[test]
    fn the_pod_label_wins_over_the_namespace_and_host_network_never_joins() {
        let enabled: BTreeMap<String, String> = [(MESH_LABEL.to_string(), "enabled".to_string())]
            .into_iter()
            .collect();
        assert!(is_meshed(&pod(&[], false), Some(&enabled)));
        assert!(!is_meshed(&pod(&[], false), None));
        assert!(!is_meshed(
            &pod(&[(MESH_LABEL, "disabled")], false),
            Some(&enabled)
        ));
        assert!(is_meshed(&pod(&[(MESH_LABEL, "enabled")], false), None));
        assert!(!is_meshed(
            &pod(&[(MESH_LABEL, "enabled")], true),
            Some(&enabled)
        ));
    }
}
