//! The serviceaccount controller (Kubernetes'
//! `pkg/controller/serviceaccount`): every namespace has a `default`
//! ServiceAccount, made when the namespace appears and made again if it is
//! deleted. Pods that name no ServiceAccount run as it.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use kube::api::{Api, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{watcher, Controller};
use kube::Client;

use super::Context;

/// The ServiceAccounts every namespace has.
pub const DEFAULT_SERVICE_ACCOUNTS: &[&str] = &["default"];

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or creating a ServiceAccount failed.
    #[error("serviceaccount {namespace}/{name}: {source}")]
    Api {
        /// The namespace.
        namespace: String,
        /// The ServiceAccount.
        name: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    Controller::new(
        Api::<Namespace>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    )
    // A ServiceAccount change (a deletion above all) syncs its namespace.
    .watches(
        Api::<ServiceAccount>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
        |sa| {
            let ns = sa.metadata.namespace.clone()?;
            DEFAULT_SERVICE_ACCOUNTS
                .contains(&sa.metadata.name.as_deref().unwrap_or(""))
                .then(|| ObjectRef::new(&ns))
        },
    )
    .run(
        reconcile,
        error_policy,
        Arc::new(Clients {
            writer: client,
            reader: ctx.watch_client.clone(),
        }),
    )
    .for_each(|_| async {})
    .await;
}

/// The controller's clients: its own for writes, the controller
/// manager's for reads (its role only creates).
struct Clients {
    writer: Client,
    reader: Client,
}

async fn reconcile(ns: Arc<Namespace>, clients: Arc<Clients>) -> Result<Action, Error> {
    let name = ns.metadata.name.clone().unwrap_or_default();
    // A terminating namespace takes no new content.
    if ns.metadata.deletion_timestamp.is_some()
        || ns.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Terminating")
    {
        return Ok(Action::await_change());
    }
    let api: Api<ServiceAccount> = Api::namespaced(clients.writer.clone(), &name);
    let reader: Api<ServiceAccount> = Api::namespaced(clients.reader.clone(), &name);
    for sa in DEFAULT_SERVICE_ACCOUNTS {
        let err = |source| Error::Api {
            namespace: name.clone(),
            name: sa.to_string(),
            source,
        };
        if reader.get_opt(sa).await.map_err(err)?.is_some() {
            continue;
        }
        let mut obj = ServiceAccount::default();
        obj.metadata.name = Some(sa.to_string());
        match api.create(&PostParams::default(), &obj).await {
            Ok(_) => tracing::debug!(namespace = %name, serviceaccount = sa, "created"),
            // Made meanwhile, or the namespace began terminating.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 403 => {}
            Err(e) => return Err(err(e)),
        }
    }
    Ok(Action::await_change())
}

fn error_policy(ns: Arc<Namespace>, err: &Error, _: Arc<Clients>) -> Action {
    tracing::debug!(namespace = ?ns.metadata.name, error = %err, "serviceaccount sync failed");
    Action::requeue(Duration::from_secs(1))
}
