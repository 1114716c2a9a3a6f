//! The mesh's trust bundle: the mesh CA's certificate, kept by every API
//! server in the ConfigMap `kube-system/kedge-mesh-ca` (as kube-apiserver
//! keeps `extension-apiserver-authentication`), where node proxies read it
//! to verify each other's workload certificates. Rewritten every few
//! seconds, so a deletion or an edit is undone.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use super::kubernetes_service::put;
use super::ApiState;

/// The ConfigMap's name.
pub const NAME: &str = "kedge-mesh-ca";
/// Its namespace.
pub const NAMESPACE: &str = "kube-system";
/// Its key holding the PEM certificate.
pub const KEY: &str = "ca.crt";
const INTERVAL: Duration = Duration::from_secs(10);

/// Keep the ConfigMap saying `ca_pem` until the task is dropped.
pub async fn run(state: Arc<ApiState>, ca_pem: String) {
    loop {
        let s = state.clone();
        let pem = ca_pem.clone();
        let done = tokio::task::spawn_blocking(move || {
            put(
                &s,
                "configmaps",
                "",
                "v1",
                json!({
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {
                        "name": NAME,
                        "namespace": NAMESPACE,
                        "labels": {"provider": "kedge"},
                    },
                    "data": {KEY: pem},
                }),
            )
        })
        .await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e.message, "publishing the mesh trust bundle"),
            Err(e) => tracing::warn!(error = %e, "publishing the mesh trust bundle"),
        }
        tokio::time::sleep(INTERVAL).await;
    }
}
