//! Adoption and release by ownerReference (Kubernetes'
//! `ControllerRefManager`): a controller owns the objects its selector
//! matches; orphans that match are adopted, owned objects that stopped
//! matching are released, and objects owned by another controller are left
//! alone. Shared by the ReplicaSet controller (pods) and the Deployment
//! controller (ReplicaSets).

use std::fmt::Debug;
use std::sync::Arc;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::Resource;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::pods::controller_of;

/// The controller doing the claiming.
pub struct Claimer<'a> {
    /// Its controller reference (uid, kind, name).
    pub owner: &'a OwnerReference,
    /// Its namespace.
    pub namespace: &'a str,
    /// Whether it is being deleted: it then adopts and releases nothing.
    pub deleting: bool,
}

/// The `kind` controllers (of `api_version`'s group) to sync for an event
/// of `child`: its controller, none if something else controls it, and for
/// an orphan every one in its namespace that would adopt it (`adopts`).
pub fn owners_to_sync<P>(
    parents: &Store<P>,
    child: &ObjectMeta,
    api_version: &str,
    kind: &str,
    adopts: impl Fn(&P) -> bool,
) -> Vec<ObjectRef<P>>
where
    P: Resource<DynamicType = ()> + Clone,
{
    let ns = child.namespace.as_deref().unwrap_or_default();
    let group = |v: &str| v.rsplit_once('/').map_or("", |(g, _)| g).to_string();
    if let Some(owner) = controller_of(child) {
        if owner.kind == kind && group(&owner.api_version) == group(api_version) {
            return vec![ObjectRef::new(&owner.name).within(ns)];
        }
        return Vec::new();
    }
    parents
        .state()
        .iter()
        .filter(|p| p.meta().namespace.as_deref() == Some(ns) && adopts(p))
        .map(|p| ObjectRef::from_obj(p.as_ref()))
        .collect()
}

/// Whether a NotFound error (the object went away meanwhile).
pub fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

impl Claimer<'_> {
    /// The objects this controller owns after adopting and releasing.
    /// `recheck` is asked once, before the first adoption, whether the
    /// controller still exists undeleted with the same uid (read fresh from
    /// the API, since the cache may be stale and adopting for a deleted
    /// owner would leave the object to the garbage collector).
    pub async fn claim<K, F, Fut>(
        &self,
        api: &Api<K>,
        objects: Vec<Arc<K>>,
        matches: impl Fn(&K) -> bool,
        recheck: F,
    ) -> Result<Vec<Arc<K>>, kube::Error>
    where
        K: Resource + Clone + DeserializeOwned + Debug,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<bool, kube::Error>>,
    {
        let mut claimed = Vec::new();
        let mut recheck = Some(recheck);
        let mut may_adopt = None;
        for obj in objects {
            let meta = obj.meta();
            let name = meta.name.clone().unwrap_or_default();
            let uid = meta.uid.clone().unwrap_or_default();
            if let Some(cref) = controller_of(meta) {
                if cref.uid != self.owner.uid {
                    continue;
                }
                if matches(&obj) {
                    claimed.push(obj);
                    continue;
                }
                if self.deleting {
                    continue;
                }
                let patch = json!({"metadata": {
                    "ownerReferences": [{"$patch": "delete", "uid": self.owner.uid}],
                    "uid": uid,
                }});
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                    .await
                {
                    Ok(_) => {}
                    Err(e) if is_not_found(&e) => {}
                    Err(e) => return Err(e),
                }
                continue;
            }
            if self.deleting || !matches(&obj) || meta.deletion_timestamp.is_some() {
                continue;
            }
            if meta.namespace.as_deref().unwrap_or("") != self.namespace {
                continue;
            }
            if may_adopt.is_none() {
                let f = recheck.take().expect("recheck runs once");
                may_adopt = Some(f().await?);
            }
            if may_adopt != Some(true) {
                continue;
            }
            let patch = json!({"metadata": {"ownerReferences": [self.owner], "uid": uid}});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Strategic(&patch))
                .await
            {
                Ok(_) => claimed.push(obj),
                Err(e) if is_not_found(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(claimed)
    }
}
