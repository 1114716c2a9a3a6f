//! The cluster's pods as the mesh sees them, by address: who a connection
//! goes to (and which identity must answer), and which pods on this node
//! the node proxy carries. Rebuilt from the pod and namespace caches when
//! either changes.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Namespace, Pod};

use super::{is_meshed, label, MTLS_LABEL};

/// Whether a meshed pod also takes plaintext from outside the mesh
/// (Istio's PeerAuthentication modes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MtlsMode {
    /// Mutual TLS from meshed callers, plaintext from others.
    Permissive,
    /// Mutual TLS only; plaintext connections are refused.
    Strict,
}

/// A running pod with an address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Workload {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's UID (its sandbox is found by it).
    pub uid: String,
    /// The pod's ServiceAccount: its identity in the mesh.
    pub service_account: String,
    /// The node it runs on.
    pub node_name: String,
    /// Its address.
    pub ip: IpAddr,
    /// Whether it is in the mesh.
    pub meshed: bool,
    /// What a meshed pod takes from outside the mesh.
    pub mtls: MtlsMode,
    /// The pod's labels (policies select by them).
    pub labels: BTreeMap<String, String>,
}

impl Workload {
    /// `namespace/serviceaccount`, how metrics and logs name the workload.
    pub fn identity(&self) -> String {
        format!("{}/{}", self.namespace, self.service_account)
    }
}

/// The running, non-hostNetwork pods with an address, by address.
#[derive(Clone, Debug, Default)]
pub struct Workloads {
    by_ip: HashMap<IpAddr, Arc<Workload>>,
}

impl Workloads {
    /// Index `pods`, with their namespaces' labels from `namespaces`. Pods
    /// not running (pending, finished, being deleted past their grace) and
    /// hostNetwork pods (whose address is the node's) are left out; two pods
    /// claiming one address (a finished pod's address reused) resolve to the
    /// one that is running.
    pub fn index<'a>(
        pods: impl IntoIterator<Item = &'a Pod>,
        namespaces: impl IntoIterator<Item = &'a Namespace>,
    ) -> Self {
        let namespace_labels: HashMap<&str, &BTreeMap<String, String>> = namespaces
            .into_iter()
            .filter_map(|ns| Some((ns.metadata.name.as_deref()?, ns.metadata.labels.as_ref()?)))
            .collect();
        let mut by_ip = HashMap::new();
        for pod in pods {
            let Some(workload) = workload(pod, &namespace_labels) else {
                continue;
            };
            by_ip.insert(workload.ip, Arc::new(workload));
        }
        Self { by_ip }
    }

    /// The pod at `ip`.
    pub fn get(&self, ip: IpAddr) -> Option<&Arc<Workload>> {
        self.by_ip.get(&ip)
    }

    /// The meshed pods on `node`.
    pub fn meshed_on<'a>(&'a self, node: &'a str) -> impl Iterator<Item = &'a Arc<Workload>> + 'a {
        self.by_ip
            .values()
            .filter(move |w| w.meshed && w.node_name == node)
    }
}

fn workload(
    pod: &Pod,
    namespace_labels: &HashMap<&str, &BTreeMap<String, String>>,
) -> Option<Workload> {
    let spec = pod.spec.as_ref()?;
    if spec.host_network.unwrap_or(false) {
        return None;
    }
    let status = pod.status.as_ref()?;
    if status.phase.as_deref() != Some("Running") {
        return None;
    }
    let ip: IpAddr = status.pod_ip.as_deref()?.parse().ok()?;
    let namespace = pod.metadata.namespace.clone()?;
    let labels = namespace_labels.get(namespace.as_str()).copied();
    let mtls = match label(pod.metadata.labels.as_ref(), MTLS_LABEL)
        .or_else(|| label(labels, MTLS_LABEL))
    {
        Some("strict") => MtlsMode::Strict,
        _ => MtlsMode::Permissive,
    };
    Some(Workload {
        meshed: is_meshed(pod, labels),
        name: pod.metadata.name.clone()?,
        uid: pod.metadata.uid.clone()?,
        service_account: spec
            .service_account_name
            .clone()
            .unwrap_or_else(|| "default".to_string()),
        node_name: spec.node_name.clone()?,
        ip,
        namespace,
        mtls,
        labels: pod.metadata.labels.clone().unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, ip: &str, phase: &str, labels: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"),
                         "labels": labels},
            "spec": {"nodeName": "n1", "serviceAccountName": "web", "containers": []},
            "status": {"phase": phase, "podIP": ip}
        }))
        .unwrap()
    }

    fn namespace(labels: serde_json::Value) -> Namespace {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "shop", "labels": labels}}))
            .unwrap()
    }

    #[test]
    fn running_pods_are_found_by_address_with_their_identity_and_mode() {
        let ns = namespace(
            serde_json::json!({"kedge.io/mesh": "enabled", "kedge.io/mesh-mtls": "strict"}),
        );
        let pods = [
            pod("a", "10.244.0.5", "Running", serde_json::json!({})),
            pod(
                "b",
                "10.244.0.6",
                "Running",
                serde_json::json!({"kedge.io/mesh-mtls": "permissive"}),
            ),
            pod("c", "10.244.0.7", "Pending", serde_json::json!({})),
            pod(
                "d",
                "10.244.0.8",
                "Running",
                serde_json::json!({"kedge.io/mesh": "disabled"}),
            ),
        ];
        let index = Workloads::index(&pods, [&ns]);
        let a = index.get("10.244.0.5".parse().unwrap()).unwrap();
        assert_eq!(
            (a.meshed, a.mtls, a.identity().as_str()),
            (true, MtlsMode::Strict, "shop/web")
        );
        let b = index.get("10.244.0.6".parse().unwrap()).unwrap();
        assert_eq!(b.mtls, MtlsMode::Permissive, "the pod's label wins");
        assert!(
            index.get("10.244.0.7".parse().unwrap()).is_none(),
            "not running"
        );
        assert!(!index.get("10.244.0.8".parse().unwrap()).unwrap().meshed);
        let mut on_node: Vec<_> = index.meshed_on("n1").map(|w| w.name.clone()).collect();
        on_node.sort();
        assert_eq!(on_node, ["a", "b"]);
        assert_eq!(index.meshed_on("n2").count(), 0);
    }
}
