//! ControllerRevisions of DaemonSets and StatefulSets (Kubernetes'
//! `pkg/controller/history`): one per distinct pod template the workload
//! has had, numbered in the order they were current. Each records the
//! strategic merge patch that puts the template back (`spec.template` with
//! `$patch: replace`), which is what `kubectl rollout undo` applies, and
//! `kubectl rollout history` lists them by their `revision`.
//!
//! Going back to an earlier template reuses its revision object and gives
//! it the next number, as Kubernetes does; revisions beyond
//! `revisionHistoryLimit` that no live pod was made from are deleted,
//! oldest first.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use k8s_openapi::api::apps::v1::ControllerRevision;
use k8s_openapi::api::core::v1::{Pod, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::runtime::RawExtension;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams, Preconditions};
use kube::runtime::reflector::Store;
use serde_json::{json, Value};

use super::replicaset::claim::is_not_found;
use super::replicaset::pods::controller_of;

/// The workload whose history is kept.
pub struct Owner<'a> {
    /// Its metadata (namespace, name, uid).
    pub meta: &'a ObjectMeta,
    /// Its controller reference, put on each revision.
    pub reference: OwnerReference,
    /// Its pod template's labels, which its revisions carry (so a list
    /// by the workload's selector finds them).
    pub template_labels: BTreeMap<String, String>,
    /// The workload as JSON, for the patch of its template.
    pub object: Value,
    /// The name of the current revision (`<name>-<hash>`).
    pub revision_name: String,
    /// The hash pods of this revision carry in `controller-revision-hash`.
    pub hash: String,
    /// How many revisions no pod uses to keep.
    pub history_limit: usize,
}

impl<'a> Owner<'a> {
    /// The history of `workload`, whose pods come from `template`;
    /// `history_limit` is its `revisionHistoryLimit` (10 when unset).
    pub fn of<K: serde::Serialize>(
        workload: &'a K,
        meta: &'a ObjectMeta,
        reference: OwnerReference,
        template: Option<&PodTemplateSpec>,
        revision_name: String,
        hash: String,
        history_limit: Option<i32>,
    ) -> Self {
        Owner {
            meta,
            reference,
            template_labels: template
                .and_then(|t| t.metadata.as_ref())
                .and_then(|m| m.labels.clone())
                .unwrap_or_default(),
            object: serde_json::to_value(workload).unwrap_or_default(),
            revision_name,
            hash,
            history_limit: history_limit.unwrap_or(10).max(0) as usize,
        }
    }
}

/// The revision hashes `pods` were made from.
pub fn hashes_in_use(pods: &[Arc<Pod>]) -> HashSet<String> {
    pods.iter()
        .filter_map(|p| p.metadata.labels.as_ref()?.get(REVISION_LABEL).cloned())
        .collect()
}

/// The label with the template's hash, on revisions and pods.
pub const REVISION_LABEL: &str = "controller-revision-hash";

/// The patch that restores `workload`'s template (Kubernetes' `getPatch`).
pub fn template_patch(workload: &Value) -> Value {
    let mut template = workload
        .pointer("/spec/template")
        .cloned()
        .unwrap_or_else(|| json!({}));
    if let Some(t) = template.as_object_mut() {
        t.insert("$patch".into(), json!("replace"));
    }
    json!({"spec": {"template": template}})
}

/// The revisions `owner` controls, from the shared cache.
pub fn owned(
    revisions: &Store<ControllerRevision>,
    owner: &ObjectMeta,
) -> Vec<Arc<ControllerRevision>> {
    let uid = owner.uid.as_deref().unwrap_or_default();
    let ns = owner.namespace.as_deref();
    let mut owned = revisions.state_filter(|r| {
        r.metadata.namespace.as_deref() == ns
            && controller_of(&r.metadata).is_some_and(|c| c.uid == uid)
    });
    owned.sort_by_key(|r| r.revision);
    owned
}

/// Make sure the current template has a revision, numbered after every
/// other, and drop old unused ones; returns the current revision number.
/// `in_use` are the hashes live pods carry.
pub async fn sync(
    client: &kube::Client,
    revisions: &Store<ControllerRevision>,
    owner: &Owner<'_>,
    in_use: &HashSet<String>,
) -> Result<i64, kube::Error> {
    let ns = owner.meta.namespace.as_deref().unwrap_or_default();
    let api: Api<ControllerRevision> = Api::namespaced(client.clone(), ns);
    let patch = template_patch(&owner.object);
    let history = owned(revisions, owner.meta);
    let max = history.iter().map(|r| r.revision).max().unwrap_or(0);
    let current = history
        .iter()
        .find(|r| r.data.as_ref().map(|d| &d.0) == Some(&patch));
    let number = match current {
        Some(r) if r.revision == max => max,
        Some(r) => {
            // Back to an earlier template: it becomes the newest revision.
            let name = r.metadata.name.clone().unwrap_or_default();
            let body = json!({"revision": max + 1});
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&body))
                .await?;
            max + 1
        }
        None => {
            let mut labels = owner.template_labels.clone();
            labels.insert(REVISION_LABEL.into(), owner.hash.clone());
            let revision = ControllerRevision {
                metadata: ObjectMeta {
                    name: Some(owner.revision_name.clone()),
                    namespace: Some(ns.to_string()),
                    labels: Some(labels),
                    owner_references: Some(vec![owner.reference.clone()]),
                    ..Default::default()
                },
                data: Some(RawExtension(patch)),
                revision: max + 1,
            };
            match api.create(&PostParams::default(), &revision).await {
                Ok(_) => {}
                // The cache lags a create of ours; the next sync sees it.
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => return Err(e),
            }
            max + 1
        }
    };
    let current_name = current
        .and_then(|r| r.metadata.name.clone())
        .unwrap_or_else(|| owner.revision_name.clone());
    let unused: Vec<&Arc<ControllerRevision>> = history
        .iter()
        .filter(|r| r.metadata.name.as_deref() != Some(current_name.as_str()))
        .filter(|r| {
            let hash = r
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(REVISION_LABEL));
            hash.is_none_or(|h| !in_use.contains(h))
        })
        .collect();
    let excess = unused.len().saturating_sub(owner.history_limit);
    for r in unused.into_iter().take(excess) {
        let name = r.metadata.name.clone().unwrap_or_default();
        let params = DeleteParams {
            preconditions: Some(Preconditions {
                uid: r.metadata.uid.clone(),
                ..Default::default()
            }),
            ..Default::default()
        };
        match api.delete(&name, &params).await {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(number)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_replaces_the_whole_template() {
        let ds = json!({
            "metadata": {"name": "web"},
            "spec": {"selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "c", "image": "v1"}]}}}
        });
        assert_eq!(
            template_patch(&ds),
            json!({"spec": {"template": {
                "$patch": "replace",
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "v1"}]}
            }}})
        );
    }
}
