//! LoadBalancer Services, servicelb-style: the node addresses are the load
//! balancer, written into `status.loadBalancer.ingress`.

use std::net::IpAddr;
use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::json;
use tokio::sync::mpsc;

/// Tries per Service before waiting for its next watch event.
const TRIES: usize = 5;

/// The ingress a LoadBalancer Service should show, when it lacks one of
/// this node's addresses; `None` when there is nothing to write (not a
/// LoadBalancer, another controller's class, already listed). Addresses
/// already shown are kept, so that proxies on several nodes each add theirs
/// instead of overwriting one another in turn.
pub(crate) fn wanted_ingress(svc: &Service, addresses: &[IpAddr]) -> Option<Vec<String>> {
    let spec = svc.spec.as_ref()?;
    if spec.type_.as_deref() != Some("LoadBalancer") || spec.load_balancer_class.is_some() {
        return None;
    }
    let mut wanted: Vec<String> = svc
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .into_iter()
        .flatten()
        .filter_map(|i| i.ip.clone())
        .collect();
    let shown = wanted.len();
    for ip in addresses {
        let ip = ip.to_string();
        if !wanted.contains(&ip) {
            wanted.push(ip);
        }
    }
    (wanted.len() > shown).then_some(wanted)
}

/// One Service whose status to write.
pub(crate) struct StatusUpdate {
    pub namespace: String,
    pub name: String,
    pub ingress: Vec<String>,
}

/// Write status updates as they come, off the watch loop so that a slow
/// API call never delays the data plane.
pub(crate) async fn write_statuses(
    client: Client,
    mut updates: mpsc::UnboundedReceiver<StatusUpdate>,
) {
    while let Some(u) = updates.recv().await {
        let api: Api<Service> = Api::namespaced(client.clone(), &u.namespace);
        let ingress: Vec<_> = u.ingress.iter().map(|ip| json!({"ip": ip})).collect();
        let patch = json!({"status": {"loadBalancer": {"ingress": ingress}}});
        for attempt in 1..=TRIES {
            match api
                .patch_status(&u.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => break,
                // Deleted meanwhile: nothing to do.
                Err(kube::Error::Api(e)) if e.code == 404 => break,
                Err(e) => {
                    tracing::warn!(service = %format!("{}/{}", u.namespace, u.name), attempt, error = %e, "writing load-balancer status failed");
                    tokio::time::sleep(Duration::from_millis(200 * attempt as u64)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(v: serde_json::Value) -> Service {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn only_load_balancers_without_class_missing_this_node() {
        let addrs: Vec<IpAddr> = vec!["10.244.0.1".parse().unwrap()];
        let lb = svc(json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"}}));
        assert_eq!(
            wanted_ingress(&lb, &addrs),
            Some(vec!["10.244.0.1".to_string()])
        );
        let done = svc(
            json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.244.0.1"}]}}}),
        );
        assert_eq!(wanted_ingress(&done, &addrs), None);
        let other = svc(
            json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer", "loadBalancerClass": "x/y"}}),
        );
        assert_eq!(wanted_ingress(&other, &addrs), None);
        let np = svc(json!({"metadata": {"name": "a"}, "spec": {"type": "NodePort"}}));
        assert_eq!(wanted_ingress(&np, &addrs), None);
        assert_eq!(wanted_ingress(&lb, &[]), None);
        // Another node's address stays.
        let other_node = svc(
            json!({"metadata": {"name": "a"}, "spec": {"type": "LoadBalancer"},
            "status": {"loadBalancer": {"ingress": [{"ip": "10.244.1.1"}]}}}),
        );
        assert_eq!(
            wanted_ingress(&other_node, &addrs),
            Some(vec!["10.244.1.1".to_string(), "10.244.0.1".to_string()])
        );
    }
}
