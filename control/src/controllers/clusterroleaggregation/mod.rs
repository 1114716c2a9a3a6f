//! The clusterrole-aggregation controller (Kubernetes'
//! `pkg/controller/clusterroleaggregation`): a ClusterRole with an
//! `aggregationRule` holds the rules of every ClusterRole its selectors
//! match — how `admin`, `edit` and `view` grow when a ClusterRole labelled
//! `rbac.authorization.k8s.io/aggregate-to-view: "true"` appears.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use kube::api::{Api, ListParams, PostParams};
use kube::runtime::watcher;

use kedge_config::selector::LabelSelector;

use super::Context;

/// Run the controller until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let api: Api<ClusterRole> = Api::all(ctx.client.clone());
    let mut changes = watcher(api.clone(), watcher::Config::default()).boxed();
    while let Some(event) = changes.next().await {
        if let Err(e) = event {
            tracing::debug!(error = %e, "clusterrole watch");
            continue;
        }
        // Whatever changed, every aggregated role is recomputed from a
        // fresh list: a label change can move a role in or out of several.
        if let Err(e) = sync(&api).await {
            tracing::warn!(error = %e, "aggregating cluster roles");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

/// The rules an aggregated role should hold: those of the roles its
/// selectors match, in name order, each once.
pub fn aggregate(role: &ClusterRole, all: &[ClusterRole]) -> Option<Vec<PolicyRule>> {
    let selectors = role
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .clone()?;
    let selectors: Vec<LabelSelector> = selectors
        .iter()
        .filter_map(|s| LabelSelector::from_label_selector(s).ok())
        .collect();
    let mut sources: Vec<&ClusterRole> = all
        .iter()
        .filter(|r| r.metadata.name != role.metadata.name)
        .filter(|r| {
            let labels = r.metadata.labels.clone().unwrap_or_default();
            selectors
                .iter()
                .any(|s| !s.is_empty() && s.matches(&labels))
        })
        .collect();
    sources.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    let mut rules: Vec<PolicyRule> = Vec::new();
    for r in sources {
        for rule in r.rules.iter().flatten() {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    Some(rules)
}

async fn sync(api: &Api<ClusterRole>) -> Result<(), kube::Error> {
    let all = api.list(&ListParams::default()).await?.items;
    for role in &all {
        let Some(rules) = aggregate(role, &all) else {
            continue;
        };
        if role.rules.clone().unwrap_or_default() == rules {
            continue;
        }
        let mut next = role.clone();
        next.rules = Some(rules);
        let name = role.metadata.name.clone().unwrap_or_default();
        match api.replace(&name, &PostParams::default(), &next).await {
            Ok(_) => tracing::info!(clusterrole = %name, "aggregated rules updated"),
            // Someone wrote meanwhile; the watch brings that change.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
