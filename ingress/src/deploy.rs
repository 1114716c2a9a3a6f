//! The ingress controller deployed the Kubernetes way: its namespace, a
//! ServiceAccount with a ClusterRole as narrow as ingress-nginx's (what the
//! controller reads and the status it writes) plus what the mesh needs (the
//! pods and namespaces, its own workload certificate and the mesh's trust
//! bundle), the `kedge`
//! IngressClass (the default class) and a
//! DaemonSet whose pods run with the host's network on every node labelled
//! `ingress=true`, binding the node's HTTP and HTTPS ports.

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::IngressClass;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use serde_json::{json, Value};

/// The namespace the controller runs in.
pub const NAMESPACE: &str = "kedge-ingress";
/// The IngressClass kedge creates.
pub const CLASS_NAME: &str = "kedge";
/// The node label that asks for an ingress controller on the node.
pub const NODE_LABEL: (&str, &str) = ("ingress", "true");

/// How the DaemonSet runs the controller.
#[derive(Clone, Debug)]
pub struct DeployOptions {
    /// The image holding kedge's binary at `/kedge`.
    pub image: String,
    /// The node's HTTP port.
    pub http_port: u16,
    /// The node's HTTPS port.
    pub https_port: u16,
    /// Where the pod serves metrics on the node.
    pub metrics_port: u16,
    /// The mesh's trust domain (the cluster domain).
    pub mesh_trust_domain: String,
}

/// The controller's ClusterRole and its binding to the ServiceAccount.
fn access() -> (Value, Value) {
    let role = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": "kedge-ingress"},
        "rules": [
            // The routes: Ingresses and their classes, the Services and
            // endpoints behind them, the TLS Secrets they name.
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses", "ingressclasses"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses/status"],
             "verbs": ["update", "patch"]},
            {"apiGroups": [""], "resources": ["services", "secrets"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["", "events.k8s.io"], "resources": ["events"], "verbs": ["create", "patch"]},
            // The mesh: which pods are meshed and whose they are, the
            // controller's own workload certificate and the trust bundle.
            {"apiGroups": [""], "resources": ["pods", "namespaces"], "verbs": ["get", "list", "watch"]},
            {"apiGroups": ["certificates.k8s.io"], "resources": ["certificatesigningrequests"],
             "verbs": ["create", "get"]},
            {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["kedge-mesh-ca"],
             "verbs": ["get"]},
        ]
    });
    let binding = json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
        "metadata": {"name": "kedge-ingress"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "kedge-ingress"},
        "subjects": [{"kind": "ServiceAccount", "name": "kedge-ingress", "namespace": NAMESPACE}]
    });
    (role, binding)
}

fn objects(o: &DeployOptions) -> (Value, Value, Value, Value) {
    let labels = json!({"app.kubernetes.io/name": "kedge-ingress"});
    let namespace = json!({
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": NAMESPACE}
    });
    let account = json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "kedge-ingress", "namespace": NAMESPACE}
    });
    let class = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": CLASS_NAME,
                     "annotations": {crate::table::DEFAULT_CLASS_ANNOTATION: "true"}},
        "spec": {"controller": crate::CONTROLLER_NAME}
    });
    let daemonset = json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "kedge-ingress", "namespace": NAMESPACE, "labels": labels},
        "spec": {
            "selector": {"matchLabels": labels},
            "updateStrategy": {"type": "RollingUpdate"},
            "template": {
                "metadata": {"labels": labels},
                "spec": {
                    "hostNetwork": true,
                    "dnsPolicy": "ClusterFirstWithHostNet",
                    "nodeSelector": {NODE_LABEL.0: NODE_LABEL.1},
                    "serviceAccountName": "kedge-ingress",
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": "controller",
                        "image": o.image,
                        "args": [
                            "ingress",
                            format!("--http-port={}", o.http_port),
                            format!("--https-port={}", o.https_port),
                            format!("--metrics-addr=127.0.0.1:{}", o.metrics_port),
                            format!("--mesh-trust-domain={}", o.mesh_trust_domain),
                            format!("--mesh-service-account={NAMESPACE}/kedge-ingress"),
                        ],
                        "env": [
                            {"name": "NODE_NAME",
                             "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}},
                            {"name": "KEDGE_STATUS_ADDRESS",
                             "valueFrom": {"fieldRef": {"fieldPath": "status.hostIP"}}}
                        ],
                        "ports": [
                            {"name": "http", "containerPort": o.http_port, "hostPort": o.http_port},
                            {"name": "https", "containerPort": o.https_port, "hostPort": o.https_port}
                        ],
                        "readinessProbe": {"tcpSocket": {"port": o.http_port},
                                           "periodSeconds": 2},
                        "resources": {"requests": {"cpu": "100m", "memory": "90Mi"}}
                    }]
                }
            }
        }
    });
    (namespace, account, class, daemonset)
}

/// Create or update the controller's objects (server-side apply, so a
/// user's own changes to other fields stay).
pub async fn apply(client: &Client, o: &DeployOptions) -> Result<(), kube::Error> {
    let pp = PatchParams::apply("kedge-up").force();
    let (namespace, account, class, daemonset) = objects(o);
    Api::<Namespace>::all(client.clone())
        .patch(NAMESPACE, &pp, &Patch::Apply(&namespace))
        .await?;
    Api::<ServiceAccount>::namespaced(client.clone(), NAMESPACE)
        .patch("kedge-ingress", &pp, &Patch::Apply(&account))
        .await?;
    let (role, binding) = access();
    Api::<ClusterRole>::all(client.clone())
        .patch("kedge-ingress", &pp, &Patch::Apply(&role))
        .await?;
    Api::<ClusterRoleBinding>::all(client.clone())
        .patch("kedge-ingress", &pp, &Patch::Apply(&binding))
        .await?;
    Api::<IngressClass>::all(client.clone())
        .patch(CLASS_NAME, &pp, &Patch::Apply(&class))
        .await?;
    Api::<DaemonSet>::namespaced(client.clone(), NAMESPACE)
        .patch("kedge-ingress", &pp, &Patch::Apply(&daemonset))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_parse_as_their_types() {
        let (ns, sa, class, ds) = objects(&DeployOptions {
            image: "kedge/kedge:abc".into(),
            http_port: 80,
            https_port: 443,
            metrics_port: 10254,
            mesh_trust_domain: "cluster.local".into(),
        });
        let _: Namespace = serde_json::from_value(ns).unwrap();
        let (role, binding) = access();
        let _: ClusterRole = serde_json::from_value(role).unwrap();
        let _: ClusterRoleBinding = serde_json::from_value(binding).unwrap();
        let _: ServiceAccount = serde_json::from_value(sa).unwrap();
        let _: IngressClass = serde_json::from_value(class).unwrap();
        let ds: DaemonSet = serde_json::from_value(ds).unwrap();
        let pod = ds.spec.unwrap().template.spec.unwrap();
        assert_eq!(pod.host_network, Some(true));
        assert_eq!(
            pod.node_selector
                .unwrap()
                .get("ingress")
                .map(String::as_str),
            Some("true")
        );
    }
}
