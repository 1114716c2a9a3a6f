//! The resource quota controller (kube-controller-manager's
//! `resourcequota`): recounts each ResourceQuota's `status.used` from what
//! exists in its namespace — so what deleted objects used is given back —
//! and publishes `status.hard`, which admission waits for before it
//! charges anything to the quota.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Pod, ResourceQuota, ResourceQuotaStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::ApiResource;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::Client;

use crate::apiserver::admission::resourcequota::{format_amount, pod_counts, pod_usage};

use super::replicaset::backoff::Backoff;
use super::replicaset::cache::key_of;
use super::Context;

/// How often every quota is recounted (objects other than pods are not
/// watched).
const RESYNC: Duration = Duration::from_secs(30);

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API: {0}")]
    Api(#[from] kube::Error),
}

struct State {
    client: Client,
    pods: Store<Pod>,
    backoff: Backoff,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let pods = ctx.informers.get::<Pod>();
    let controller = Controller::new(
        Api::<ResourceQuota>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    );
    let quotas = controller.store();
    let controller = controller.watches_shared_stream(pods.subscribe(), move |pod: Arc<Pod>| {
        quotas
            .state()
            .iter()
            .filter(|q| q.metadata.namespace == pod.metadata.namespace)
            .map(|q| ObjectRef::from_obj(&**q))
            .collect::<Vec<_>>()
    });
    let state = Arc::new(State {
        client: ctx.client.clone(),
        pods: pods.store(),
        backoff: Backoff::default(),
    });
    controller
        .run(reconcile, error_policy, state)
        .for_each(|_| async {})
        .await;
}

fn error_policy(quota: Arc<ResourceQuota>, err: &Error, state: Arc<State>) -> Action {
    state
        .backoff
        .failed("resourcequota", &key_of(&quota.metadata), err)
}

/// How many objects of `plural` (in `group`, core when empty) the
/// namespace holds.
async fn count(client: &Client, namespace: &str, plural: &str, group: &str) -> Result<i128, Error> {
    let version = if group.is_empty() {
        "v1".to_string()
    } else {
        match kube::discovery::group(client, group).await {
            Ok(g) => g.preferred_version_or_latest().to_string(),
            Err(_) => return Ok(0),
        }
    };
    let ar = ApiResource {
        group: group.to_string(),
        version: version.clone(),
        api_version: if group.is_empty() {
            version
        } else {
            format!("{group}/{version}")
        },
        kind: String::new(),
        plural: plural.to_string(),
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &ar);
    Ok(api.list_metadata(&ListParams::default()).await?.items.len() as i128)
}

async fn reconcile(quota: Arc<ResourceQuota>, state: Arc<State>) -> Result<Action, Error> {
    let namespace = quota.metadata.namespace.clone().unwrap_or_default();
    let hard = quota
        .spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default();
    // What the namespace's pods use.
    let mut pods_used: BTreeMap<String, i128> = BTreeMap::new();
    let mut pod_count = 0i128;
    for pod in state.pods.state() {
        if pod.metadata.namespace.as_deref() != Some(namespace.as_str()) {
            continue;
        }
        let value = serde_json::to_value(&*pod).unwrap_or_default();
        if !pod_counts(&value) {
            continue;
        }
        pod_count += 1;
        for (k, v) in pod_usage(&value) {
            *pods_used.entry(k).or_insert(0) += v;
        }
    }
    let mut used = BTreeMap::new();
    for name in hard.keys() {
        let nanos = match name.as_str() {
            "pods" | "count/pods" => pod_count * 1_000_000_000,
            n if n.starts_with("requests.")
                || n.starts_with("limits.")
                || matches!(n, "cpu" | "memory") =>
            {
                pods_used.get(n).copied().unwrap_or(0)
            }
            n => {
                let what = n.strip_prefix("count/").unwrap_or(n);
                let (plural, group) = what.split_once('.').unwrap_or((what, ""));
                count(&state.client, &namespace, plural, group).await? * 1_000_000_000
            }
        };
        used.insert(name.clone(), Quantity(format_amount(name, nanos)));
    }
    let status = ResourceQuotaStatus {
        hard: Some(hard),
        used: Some(used),
    };
    if quota.status.as_ref() != Some(&status) {
        let api: Api<ResourceQuota> = Api::namespaced(state.client.clone(), &namespace);
        super::replace_status_retrying(&api, &quota, |q| q.status = Some(status.clone())).await?;
    }
    state.backoff.forget(&key_of(&quota.metadata));
    Ok(Action::requeue(RESYNC))
}
