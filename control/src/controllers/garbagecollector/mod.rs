//! The garbage collector (Kubernetes' `pkg/controller/garbagecollector`).
//!
//! Monitors watch every resource the server serves that can be listed,
//! watched and deleted (events excepted), through the dynamic API, and feed
//! one graph builder that keeps the uid → object graph. Workers then:
//! - delete dependents none of whose owners exist any more (Background:
//!   the owner is already gone);
//! - for an owner deleted with the `orphan` finalizer (propagationPolicy
//!   Orphan), remove its ownerReference from every dependent, then the
//!   finalizer;
//! - for an owner deleted with the `foregroundDeletion` finalizer, delete
//!   its dependents, and remove the finalizer once no dependent with
//!   `blockOwnerDeletion` is left.
//!
//! Owners are always looked up live before a dependent is deleted, so a
//! graph that lags behind the server never deletes a live object's
//! dependents.

mod graph;
mod queue;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, Patch, PatchParams, Preconditions,
    PropagationPolicy,
};
use kube::discovery::{verbs, ApiCapabilities, Discovery, Scope};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Client, ResourceExt};
use parking_lot::{Mutex, RwLock};
use serde_json::json;
use tokio::sync::mpsc;

use super::Context;
use graph::{Graph, Node, FOREGROUND, ORPHAN};
use queue::WorkQueue;

/// How often discovery runs again to pick up newly served resources.
const REDISCOVERY: Duration = Duration::from_secs(30);
/// Workers deleting dependents (Kubernetes runs 20; two cores here).
const DELETE_WORKERS: usize = 4;

/// Errors of one attempt; the item is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An API call failed.
    #[error("{0}")]
    Api(#[from] kube::Error),
    /// An ownerReference names a kind the server does not serve.
    #[error("no resource serves {0}")]
    UnknownKind(String),
}

/// A resource the monitors watch.
#[derive(Clone)]
struct Resource {
    api: ApiResource,
    namespaced: bool,
}

/// One change the monitors saw.
enum Change {
    Upsert(usize, Box<DynamicObject>),
    Delete(String),
    /// A monitor (re)listed: these uids exist, the others of its resource not.
    Relisted(usize, HashSet<String>),
}

/// Shared by monitors, the graph builder and the workers.
struct Collector {
    client: Client,
    resources: RwLock<Vec<Resource>>,
    graph: Mutex<Graph>,
    attempt_to_delete: Arc<WorkQueue>,
    attempt_to_orphan: Arc<WorkQueue>,
    changes: mpsc::UnboundedSender<Change>,
    /// Rings when an owner's kind is not known yet (a custom resource whose
    /// definition came after the last discovery): discover again now.
    rediscover: tokio::sync::Notify,
}

/// Run the collector until the future is dropped.
pub async fn run(ctx: Arc<Context>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let gc = Arc::new(Collector {
        client: ctx.client.clone(),
        resources: RwLock::new(Vec::new()),
        graph: Mutex::new(Graph::default()),
        attempt_to_delete: Arc::new(WorkQueue::default()),
        attempt_to_orphan: Arc::new(WorkQueue::default()),
        changes: tx,
        rediscover: tokio::sync::Notify::new(),
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(build_graph(gc.clone(), rx));
    for _ in 0..DELETE_WORKERS {
        let gc = gc.clone();
        tasks.spawn(async move {
            loop {
                let uid = gc.attempt_to_delete.get().await;
                match attempt_to_delete(&gc, &uid).await {
                    Ok(()) => gc.attempt_to_delete.done(&uid),
                    Err(e) => {
                        tracing::debug!(error = %e, %uid, "garbage collector: retrying delete");
                        if matches!(e, Error::UnknownKind(_)) {
                            gc.rediscover.notify_one();
                        }
                        gc.attempt_to_delete.retry(&uid);
                    }
                }
            }
        });
    }
    let orphaner = gc.clone();
    tasks.spawn(async move {
        loop {
            let uid = orphaner.attempt_to_orphan.get().await;
            match attempt_to_orphan(&orphaner, &uid).await {
                Ok(()) => orphaner.attempt_to_orphan.done(&uid),
                Err(e) => {
                    tracing::debug!(error = %e, %uid, "garbage collector: retrying orphaning");
                    orphaner.attempt_to_orphan.retry(&uid);
                }
            }
        }
    });
    discover(gc, &mut tasks).await;
}

/// Discover the deletable resources now, every `REDISCOVERY` and when an
/// owner of unknown kind turns up, starting a monitor for each new one.
async fn discover(gc: Arc<Collector>, tasks: &mut tokio::task::JoinSet<()>) {
    let mut watched: HashSet<(String, String)> = HashSet::new();
    loop {
        match Discovery::new(gc.client.clone()).run().await {
            Ok(discovery) => {
                for group in discovery.groups() {
                    for (api, caps) in group.recommended_resources() {
                        if !collectable(&api, &caps) {
                            continue;
                        }
                        let key = (api.group.clone(), api.plural.clone());
                        if !watched.insert(key) {
                            continue;
                        }
                        let index = {
                            let mut resources = gc.resources.write();
                            resources.push(Resource {
                                api,
                                namespaced: caps.scope == Scope::Namespaced,
                            });
                            resources.len() - 1
                        };
                        tasks.spawn(monitor(gc.clone(), index));
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "garbage collector: discovery failed"),
        }
        tokio::select! {
            () = tokio::time::sleep(REDISCOVERY) => {}
            () = gc.rediscover.notified() => {
                // Several unknown owners in a burst make one discovery.
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Kubernetes' `GetDeletableResources` minus its ignored resources (events).
fn collectable(api: &ApiResource, caps: &ApiCapabilities) -> bool {
    let ignored = api.plural == "events" && (api.group.is_empty() || api.group == "events.k8s.io");
    !ignored
        && [verbs::LIST, verbs::WATCH, verbs::DELETE]
            .iter()
            .all(|v| caps.supports_operation(v))
}

/// Watch one resource and report its changes to the graph builder.
async fn monitor(gc: Arc<Collector>, index: usize) {
    let api: Api<DynamicObject> = {
        let resources = gc.resources.read();
        Api::all_with(gc.client.clone(), &resources[index].api)
    };
    let mut listing: Option<HashSet<String>> = None;
    let mut events = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    while let Some(event) = events.next().await {
        let change = match event {
            Ok(watcher::Event::Init) => {
                listing = Some(HashSet::new());
                continue;
            }
            Ok(watcher::Event::InitApply(obj)) => {
                if let (Some(seen), Some(uid)) = (listing.as_mut(), obj.uid()) {
                    seen.insert(uid);
                }
                Change::Upsert(index, Box::new(obj))
            }
            Ok(watcher::Event::InitDone) => {
                Change::Relisted(index, listing.take().unwrap_or_default())
            }
            Ok(watcher::Event::Apply(obj)) => Change::Upsert(index, Box::new(obj)),
            Ok(watcher::Event::Delete(obj)) => Change::Delete(obj.uid().unwrap_or_default()),
            Err(e) => {
                tracing::debug!(error = %e, "garbage collector monitor");
                continue;
            }
        };
        if gc.changes.send(change).is_err() {
            return;
        }
    }
}

/// The graph builder: applies changes in order and queues the work they
/// call for.
async fn build_graph(gc: Arc<Collector>, mut rx: mpsc::UnboundedReceiver<Change>) {
    // Uids seen per resource, to notice deletions missed across a relist.
    let mut by_resource: HashMap<usize, HashSet<String>> = HashMap::new();
    while let Some(change) = rx.recv().await {
        let work = {
            let mut graph = gc.graph.lock();
            match change {
                Change::Upsert(index, obj) => {
                    let Some(uid) = obj.uid() else { continue };
                    by_resource.entry(index).or_default().insert(uid.clone());
                    let finalizers = obj.finalizers().to_vec();
                    let node = Node {
                        resource: index,
                        namespace: obj.namespace().unwrap_or_default(),
                        name: obj.name_any(),
                        owners: obj.owner_references().to_vec(),
                        being_deleted: obj.metadata.deletion_timestamp.is_some(),
                        deleting_dependents: false,
                    };
                    vec![graph.upsert(&uid, node, &finalizers)]
                }
                Change::Delete(uid) => {
                    for seen in by_resource.values_mut() {
                        seen.remove(&uid);
                    }
                    vec![graph.remove(&uid)]
                }
                Change::Relisted(index, now) => {
                    let before = by_resource.insert(index, now.clone()).unwrap_or_default();
                    before
                        .difference(&now)
                        .map(|uid| graph.remove(uid))
                        .collect()
                }
            }
        };
        for w in work {
            for uid in w.attempt_to_delete {
                gc.attempt_to_delete.add(&uid);
            }
            for uid in w.attempt_to_orphan {
                gc.attempt_to_orphan.add(&uid);
            }
        }
    }
}

// === impl Collector ===

impl Collector {
    fn resource(&self, index: usize) -> Resource {
        self.resources.read()[index].clone()
    }

    /// The resource serving an ownerReference's apiVersion and kind.
    fn resource_for(&self, api_version: &str, kind: &str) -> Option<Resource> {
        self.resources
            .read()
            .iter()
            .find(|r| r.api.api_version == api_version && r.api.kind == kind)
            .cloned()
    }

    fn api(&self, resource: &Resource, namespace: &str) -> Api<DynamicObject> {
        if resource.namespaced {
            Api::namespaced_with(self.client.clone(), namespace, &resource.api)
        } else {
            Api::all_with(self.client.clone(), &resource.api)
        }
    }

    /// The live object, if it still exists with this uid.
    async fn live(
        &self,
        api: &Api<DynamicObject>,
        name: &str,
        uid: &str,
    ) -> Result<Option<DynamicObject>, Error> {
        match api.get_opt(name).await? {
            Some(obj) if obj.uid().as_deref() == Some(uid) => Ok(Some(obj)),
            _ => Ok(None),
        }
    }
}

/// How a dependent stands with one of its owners.
enum OwnerState {
    /// The owner exists and is not waiting on its dependents.
    Solid,
    /// The owner is gone (or a new object took its name).
    Dangling,
    /// The owner is being deleted in the foreground.
    Waiting,
}

async fn classify(
    gc: &Collector,
    namespace: &str,
    owner: &OwnerReference,
) -> Result<OwnerState, Error> {
    let resource = gc
        .resource_for(&owner.api_version, &owner.kind)
        .ok_or_else(|| Error::UnknownKind(format!("{}/{}", owner.api_version, owner.kind)))?;
    let api = gc.api(&resource, namespace);
    Ok(match gc.live(&api, &owner.name, &owner.uid).await? {
        None => OwnerState::Dangling,
        Some(o)
            if o.metadata.deletion_timestamp.is_some()
                && o.finalizers().iter().any(|f| f == FOREGROUND) =>
        {
            OwnerState::Waiting
        }
        Some(_) => OwnerState::Solid,
    })
}

/// Kubernetes' `attemptToDeleteItem`.
async fn attempt_to_delete(gc: &Collector, uid: &str) -> Result<(), Error> {
    let Some(node) = gc.graph.lock().node(uid).cloned() else {
        return Ok(());
    };
    let resource = gc.resource(node.resource);
    let api = gc.api(&resource, &node.namespace);
    let Some(latest) = gc.live(&api, &node.name, uid).await? else {
        // Gone without the monitor having said so yet.
        let _ = gc.changes.send(Change::Delete(uid.to_string()));
        return Ok(());
    };
    let being_deleted = latest.metadata.deletion_timestamp.is_some();
    if being_deleted && latest.finalizers().iter().any(|f| f == FOREGROUND) {
        return process_deleting_dependents(gc, &api, uid, &latest).await;
    }
    if being_deleted {
        return Ok(());
    }
    let owners = latest.owner_references().to_vec();
    if owners.is_empty() {
        return Ok(());
    }
    let mut solid = Vec::new();
    let mut dangling = Vec::new();
    let mut waiting = Vec::new();
    for owner in &owners {
        match classify(gc, &node.namespace, owner).await? {
            OwnerState::Solid => solid.push(owner.uid.clone()),
            OwnerState::Dangling => dangling.push(owner.uid.clone()),
            OwnerState::Waiting => waiting.push(owner.uid.clone()),
        }
    }
    if !solid.is_empty() {
        // Still owned: only drop references to owners that are gone or
        // going.
        if dangling.is_empty() && waiting.is_empty() {
            return Ok(());
        }
        let keep: Vec<&OwnerReference> = owners
            .iter()
            .filter(|o| !dangling.contains(&o.uid) && !waiting.contains(&o.uid))
            .collect();
        patch_owners(&api, &latest, json!(keep)).await?;
        return Ok(());
    }
    let has_dependents = !gc.graph.lock().dependents(uid).is_empty();
    let policy = if !waiting.is_empty() && has_dependents {
        // An owner waits for this object in the foreground: its own
        // dependents go first, so delete it in the foreground too, and stop
        // it from blocking if a dependent is itself waiting (a cycle).
        let cycle = {
            let graph = gc.graph.lock();
            graph
                .dependents(uid)
                .iter()
                .any(|d| graph.node(d).is_some_and(|n| n.deleting_dependents))
        };
        if cycle {
            let unblocked: Vec<OwnerReference> = owners
                .iter()
                .cloned()
                .map(|mut o| {
                    if o.block_owner_deletion == Some(true) {
                        o.block_owner_deletion = Some(false);
                    }
                    o
                })
                .collect();
            patch_owners(&api, &latest, json!(unblocked)).await?;
        }
        PropagationPolicy::Foreground
    } else if latest.finalizers().iter().any(|f| f == ORPHAN) {
        PropagationPolicy::Orphan
    } else if latest.finalizers().iter().any(|f| f == FOREGROUND) {
        PropagationPolicy::Foreground
    } else {
        PropagationPolicy::Background
    };
    tracing::debug!(object = %node.name, namespace = %node.namespace, ?policy, "garbage collector: deleting");
    let params = DeleteParams {
        propagation_policy: Some(policy),
        preconditions: Some(Preconditions {
            uid: Some(uid.to_string()),
            resource_version: None,
        }),
        ..Default::default()
    };
    match api.delete(&node.name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        // The uid precondition failed: a new object took the name.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Kubernetes' `processDeletingDependentsItem`: an owner deleted in the
/// foreground loses its finalizer once no blocking dependent is left.
async fn process_deleting_dependents(
    gc: &Collector,
    api: &Api<DynamicObject>,
    uid: &str,
    latest: &DynamicObject,
) -> Result<(), Error> {
    let blocking: Vec<(String, bool)> = {
        let graph = gc.graph.lock();
        graph
            .blocking_dependents(uid)
            .into_iter()
            .map(|d| {
                let deleting = graph.node(&d).is_some_and(|n| n.being_deleted);
                (d, deleting)
            })
            .collect()
    };
    if blocking.is_empty() {
        return remove_finalizer(api, latest, FOREGROUND).await;
    }
    for (dependent, deleting) in blocking {
        if !deleting {
            gc.attempt_to_delete.add(&dependent);
        }
    }
    Ok(())
}

/// Kubernetes' `attemptToOrphanWorker`: drop the owner from every
/// dependent's ownerReferences, then the owner's `orphan` finalizer.
async fn attempt_to_orphan(gc: &Collector, uid: &str) -> Result<(), Error> {
    let (owner, dependents) = {
        let graph = gc.graph.lock();
        let Some(node) = graph.node(uid).cloned() else {
            return Ok(());
        };
        let dependents: Vec<Node> = graph
            .dependents(uid)
            .iter()
            .filter_map(|d| graph.node(d).cloned())
            .collect();
        (node, dependents)
    };
    for dependent in dependents {
        let api = gc.api(&gc.resource(dependent.resource), &dependent.namespace);
        let Some(latest) = api.get_opt(&dependent.name).await? else {
            continue;
        };
        if !latest.owner_references().iter().any(|o| o.uid == uid) {
            continue;
        }
        let keep: Vec<&OwnerReference> = latest
            .owner_references()
            .iter()
            .filter(|o| o.uid != uid)
            .collect();
        patch_owners(&api, &latest, json!(keep)).await?;
    }
    let api = gc.api(&gc.resource(owner.resource), &owner.namespace);
    match gc.live(&api, &owner.name, uid).await? {
        Some(latest) => remove_finalizer(&api, &latest, ORPHAN).await,
        None => Ok(()),
    }
}

/// Replace an object's ownerReferences, failing on a concurrent change
/// (the retry reads it again).
async fn patch_owners(
    api: &Api<DynamicObject>,
    latest: &DynamicObject,
    owners: serde_json::Value,
) -> Result<(), Error> {
    let patch = json!({
        "metadata": {
            "ownerReferences": owners,
            "resourceVersion": latest.resource_version(),
        }
    });
    match api
        .patch(
            &latest.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

async fn remove_finalizer(
    api: &Api<DynamicObject>,
    latest: &DynamicObject,
    finalizer: &str,
) -> Result<(), Error> {
    if !latest.finalizers().iter().any(|f| f == finalizer) {
        return Ok(());
    }
    let keep: Vec<&String> = latest
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .collect();
    let patch = json!({
        "metadata": {
            "finalizers": keep,
            "resourceVersion": latest.resource_version(),
        }
    });
    match api
        .patch(
            &latest.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(e) => Err(e.into()),
    }
}
