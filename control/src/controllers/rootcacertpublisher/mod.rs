//! The root-ca-cert-publisher (Kubernetes'
//! `pkg/controller/certificates/rootcacertpublisher`): every namespace has
//! the ConfigMap `kube-root-ca.crt` whose `ca.crt` is the cluster CA, so
//! pods can check the API server's certificate. A ConfigMap deleted or
//! edited is put back.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::Client;

use super::Context;

/// The ConfigMap's name.
pub const CONFIG_MAP: &str = "kube-root-ca.crt";
/// Its key holding the CA bundle.
pub const KEY: &str = "ca.crt";
const DESCRIPTION_ANNOTATION: &str = "kubernetes.io/description";
const DESCRIPTION: &str = "Contains a CA bundle that can be used to verify the kube-apiserver when using internal endpoints such as the internal service IP or kubernetes.default.svc. No other usage is guaranteed across distributions of Kubernetes clusters.";

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing the ConfigMap failed.
    #[error("configmap {namespace}/kube-root-ca.crt: {source}")]
    Api {
        /// The namespace.
        namespace: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

struct State {
    /// Writes, as the controller.
    client: Client,
    /// Reads, as the controller manager (its role may not read).
    reader: Client,
    ca_pem: String,
}

/// Publish `ca_pem` in every namespace until the future is dropped.
pub async fn run(ctx: Arc<Context>, ca_pem: String) {
    let client = ctx.client.clone();
    let configmaps = watcher::Config::default().fields(&format!("metadata.name={CONFIG_MAP}"));
    Controller::new(
        Api::<Namespace>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    )
    .watches(
        Api::<ConfigMap>::all(ctx.watch_client.clone()),
        configmaps,
        |cm| {
            let ns = cm.metadata.namespace.clone()?;
            Some(ObjectRef::new(&ns))
        },
    )
    .run(
        reconcile,
        error_policy,
        Arc::new(State {
            client,
            reader: ctx.watch_client.clone(),
            ca_pem,
        }),
    )
    .for_each(|_| async {})
    .await;
}

async fn reconcile(ns: Arc<Namespace>, state: Arc<State>) -> Result<Action, Error> {
    let namespace = ns.metadata.name.clone().unwrap_or_default();
    if ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
    {
        return Ok(Action::await_change());
    }
    let err = |source| Error::Api {
        namespace: namespace.clone(),
        source,
    };
    let api: Api<ConfigMap> = Api::namespaced(state.client.clone(), &namespace);
    let data = BTreeMap::from([(KEY.to_string(), state.ca_pem.clone())]);
    let reader: Api<ConfigMap> = Api::namespaced(state.reader.clone(), &namespace);
    match reader.get_opt(CONFIG_MAP).await.map_err(err)? {
        None => {
            let mut cm = ConfigMap::default();
            cm.metadata.name = Some(CONFIG_MAP.into());
            cm.metadata.annotations = Some(BTreeMap::from([(
                DESCRIPTION_ANNOTATION.to_string(),
                DESCRIPTION.to_string(),
            )]));
            cm.data = Some(data);
            match api.create(&PostParams::default(), &cm).await {
                Ok(_) => tracing::debug!(%namespace, "published the root CA"),
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
                Err(e) => return Err(err(e)),
            }
        }
        Some(mut cm) if cm.data.as_ref() != Some(&data) || cm.binary_data.is_some() => {
            cm.data = Some(data);
            cm.binary_data = None;
            cm.metadata
                .annotations
                .get_or_insert_with(BTreeMap::new)
                .insert(DESCRIPTION_ANNOTATION.into(), DESCRIPTION.into());
            // A conflict means a newer version exists, and its event
            // brings another sync.
            match api.replace(CONFIG_MAP, &PostParams::default(), &cm).await {
                Ok(_) => tracing::debug!(%namespace, "restored the root CA"),
                Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => {}
                Err(e) => return Err(err(e)),
            }
        }
        Some(_) => {}
    }
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _: Arc<State>) -> Action {
    tracing::debug!(namespace = ?ns.metadata.name, error = %err, "root CA publishing failed");
    Action::requeue(Duration::from_secs(1))
}
