//! Rolling back through the `deprecated.deployment.rollback.to` annotation
//! (extensions/v1beta1's `spec.rollbackTo`, Kubernetes' `rollback.go`):
//! the template of the ReplicaSet with that revision (0: the previous one)
//! is copied into the Deployment. `kubectl rollout undo` does the same
//! client-side with a JSON patch, which needs nothing from here.

use std::time::Duration;

use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use kube::api::{Api, PostParams};

use super::sync::{self, event};
use super::util;
use super::{Error, State};
use crate::controllers::events::EventType;

/// Perform the requested rollback and drop the request.
pub async fn rollback(
    state: &State,
    d: &mut Deployment,
    rss: &[ReplicaSet],
) -> Result<Option<Duration>, Error> {
    let (new_rs, old) = sync::get_all_and_sync_revision(state, d, rss, true).await?;
    let all: Vec<&ReplicaSet> = old.iter().chain(new_rs.as_ref()).collect();
    let mut to: i64 = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(util::ROLLBACK_TO))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if to == 0 {
        // The revision before the newest.
        let mut revs: Vec<i64> = all.iter().map(|r| util::revision(r)).collect();
        revs.sort_unstable();
        revs.dedup();
        match revs.len() {
            n if n >= 2 => to = revs[n - 2],
            _ => {
                event(
                    state,
                    d,
                    EventType::Warning,
                    "DeploymentRollbackRevisionNotFound",
                    "Unable to find last revision.",
                )
                .await;
                return finish(state, d).await;
            }
        }
    }
    if let Some(rs) = all.iter().find(|r| util::revision(r) == to) {
        let template = rs
            .spec
            .as_ref()
            .and_then(|s| s.template.clone())
            .unwrap_or_default();
        if !util::equal_ignore_hash(&util::d_template(d), &template) {
            let mut t = template;
            if let Some(labels) = t.metadata.as_mut().and_then(|m| m.labels.as_mut()) {
                labels.remove(util::POD_TEMPLATE_HASH);
            }
            if let Some(spec) = d.spec.as_mut() {
                spec.template = t;
            }
            let msg = format!(
                "Rolled back deployment {:?} to revision {to}",
                d.metadata.name.as_deref().unwrap_or("")
            );
            event(state, d, EventType::Normal, "DeploymentRollback", &msg).await;
        }
    } else {
        event(
            state,
            d,
            EventType::Warning,
            "DeploymentRollbackRevisionNotFound",
            "Unable to find the revision to rollback to.",
        )
        .await;
    }
    finish(state, d).await
}

async fn finish(state: &State, d: &mut Deployment) -> Result<Option<Duration>, Error> {
    if let Some(a) = d.metadata.annotations.as_mut() {
        a.remove(util::ROLLBACK_TO);
    }
    let ns = d.metadata.namespace.clone().unwrap_or_default();
    let name = d.metadata.name.clone().unwrap_or_default();
    Api::<Deployment>::namespaced(state.client.clone(), &ns)
        .replace(&name, &PostParams::default(), d)
        .await
        .map_err(Error::Api)?;
    Ok(None)
}
