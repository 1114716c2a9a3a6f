//! The Deployment controller: rolls a Deployment's pod template out
//! through ReplicaSets named `<deployment>-<pod-template-hash>`, by the
//! RollingUpdate or Recreate strategy, numbering revisions, keeping a
//! bounded history and reporting progress (Kubernetes'
//! `pkg/controller/deployment`). Files follow Kubernetes' cut: `sync`,
//! `rolling`, `recreate`, `rollback`, `progress`, `util`.
//!
//! The work loop is `kube::runtime::Controller` over Deployments, woken by
//! ReplicaSet events too; reconcile reads ReplicaSets from a reflector that
//! it waits on to catch up with the event that woke it (see
//! `replicaset::cache`).

pub mod progress;
pub mod recreate;
pub mod rollback;
pub mod rolling;
pub mod sync;
pub mod util;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kedge_config::selector::LabelSelector;
use kube::api::Api;
use kube::runtime::controller::Action;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{watcher, Controller};
use kube::Client;

use super::events::{EventType, Recorder};
use super::replicaset::backoff::Backoff;
use super::replicaset::cache::{self, key_of, SyncPoint};
use super::replicaset::claim::{owners_to_sync, Claimer};
use super::Context;

/// Errors of one sync.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("API: {0}")]
    Api(#[source] kube::Error),
    /// The new ReplicaSet's name is taken by another template; the
    /// collision count was raised for the next attempt.
    #[error("replica set {0} exists with another template (hash collision)")]
    Collision(String),
}

/// What the reconcile function works with.
pub struct State {
    /// The API client.
    pub client: Client,
    /// Events as `deployment-controller`.
    pub recorder: Recorder,
    /// All ReplicaSets.
    pub rss: Store<ReplicaSet>,
    rss_sync: Arc<SyncPoint>,
    backoff: Backoff,
}

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let rs_api: Api<ReplicaSet> = Api::all(ctx.watch_client.clone());
    let rss_sync = Arc::new(SyncPoint::default());
    let (rss, rs_cache) = cache::cache(rs_api.clone(), rss_sync.clone(), |_| {});
    let controller = Controller::new(
        Api::<Deployment>::all(ctx.watch_client.clone()),
        watcher::Config::default(),
    );
    let deployments = controller.store();
    let sync = rss_sync.clone();
    let controller = controller.watches(rs_api, watcher::Config::default(), move |rs| {
        sync.want_owners(owners_of(&deployments, &rs), cache::revision(&rs))
    });
    let state = Arc::new(State {
        client,
        recorder: ctx.recorder("deployment-controller"),
        rss,
        rss_sync,
        backoff: Backoff::default(),
    });
    let work = controller
        .run(reconcile, error_policy, state)
        .for_each(|_| async {});
    tokio::join!(rs_cache, work);
}

/// Deployments to sync for a ReplicaSet event: its controller, or for an
/// orphan every Deployment whose selector matches it.
fn owners_of(deployments: &Store<Deployment>, rs: &ReplicaSet) -> Vec<ObjectRef<Deployment>> {
    let labels = rs.metadata.labels.clone().unwrap_or_default();
    owners_to_sync(deployments, &rs.metadata, "apps/v1", "Deployment", |d| {
        selector_of(d).is_some_and(|s| !s.is_empty() && s.matches(&labels))
    })
}

fn selector_of(d: &Deployment) -> Option<LabelSelector> {
    LabelSelector::from_label_selector(&d.spec.as_ref()?.selector).ok()
}

async fn reconcile(d: Arc<Deployment>, state: Arc<State>) -> Result<Action, Error> {
    let key = key_of(&d.metadata);
    let after = sync_deployment(&d, &state, &key).await?;
    state.backoff.forget(&key);
    Ok(after.map_or_else(Action::await_change, Action::requeue))
}

fn error_policy(d: Arc<Deployment>, err: &Error, state: Arc<State>) -> Action {
    state
        .backoff
        .failed("deployment", &key_of(&d.metadata), err)
}

/// Kubernetes' `syncDeployment`: claim ReplicaSets, then status only when
/// deleting, plain scaling when paused or resized, a rollback when asked,
/// else a step of the strategy.
async fn sync_deployment(
    d: &Deployment,
    state: &State,
    key: &str,
) -> Result<Option<Duration>, Error> {
    if state.rss.wait_until_ready().await.is_err() {
        return Ok(Some(Duration::from_secs(1)));
    }
    state.rss_sync.catch_up(key).await;
    let mut d = d.clone();
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let Some(selector) = selector_of(&d) else {
        return Ok(None);
    };
    if selector.is_empty() {
        sync::event(
            state,
            &d,
            EventType::Warning,
            "SelectingAll",
            "This deployment is selecting all pods. A non-empty selector is required.",
        )
        .await;
        let st = d.status.get_or_insert_with(Default::default);
        if st.observed_generation.unwrap_or(0) < d.metadata.generation.unwrap_or(0) {
            st.observed_generation = d.metadata.generation;
            sync::update_status(state, &mut d).await?;
        }
        return Ok(None);
    }

    let rs_api: Api<ReplicaSet> = Api::namespaced(state.client.clone(), &ns);
    let d_api: Api<Deployment> = Api::namespaced(state.client.clone(), &ns);
    let candidates: Vec<Arc<ReplicaSet>> = state
        .rss
        .state_filter(|r| r.metadata.namespace.as_deref() == Some(ns.as_str()));
    let owner = sync::controller_ref(&d);
    let claimer = Claimer {
        owner: &owner,
        namespace: &ns,
        deleting: d.metadata.deletion_timestamp.is_some(),
    };
    let uid = d.metadata.uid.clone();
    let name = d.metadata.name.clone().unwrap_or_default();
    let claimed = claimer
        .claim(
            &rs_api,
            candidates,
            |r| selector.matches(&r.metadata.labels.clone().unwrap_or_default()),
            || async {
                let fresh = d_api.get(&name).await?;
                Ok(fresh.metadata.uid == uid && fresh.metadata.deletion_timestamp.is_none())
            },
        )
        .await
        .map_err(Error::Api)?;
    let rss: Vec<ReplicaSet> = claimed.iter().map(|r| (**r).clone()).collect();

    if d.metadata.deletion_timestamp.is_some() {
        let (new_rs, old) = sync::get_all_and_sync_revision(state, &mut d, &rss, false).await?;
        let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
        sync::sync_status(state, &all, new_rs.as_ref(), &mut d).await?;
        return Ok(None);
    }
    sync::check_paused_conditions(state, &mut d).await?;
    if d.spec.as_ref().and_then(|s| s.paused).unwrap_or(false) {
        sync::sync(state, &mut d, &rss).await?;
        return Ok(None);
    }
    let rollback = d
        .metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(util::ROLLBACK_TO));
    if rollback {
        return rollback::rollback(state, &mut d, &rss).await;
    }
    if sync::is_scaling_event(state, &mut d, &rss).await? {
        sync::sync(state, &mut d, &rss).await?;
        return Ok(None);
    }
    if util::is_rolling(&d) {
        rolling::rollout(state, &mut d, &rss).await
    } else {
        recreate::rollout(state, &mut d, &rss).await
    }
}
