//! A reflector cache that a `Controller` reconcile can wait on.
//!
//! The controller's trigger watch and the reflector that reconcile reads are
//! two watches of the same kind. When the trigger runs ahead, reconcile
//! would compute from a cache that lacks the very event that woke it, and
//! nothing would wake it again: a status stuck one event behind. So the
//! trigger's mapper notes the resourceVersion it saw per key, and reconcile
//! waits (bounded) until the cache has applied that version. Both watches
//! see one ordered stream of store revisions, so "applied version ≥ v"
//! means "has every event up to v".

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

/// The longest a reconcile waits for its cache; past it, it works from what
/// the cache has (a lost event must not stall the controller).
const CATCH_UP_LIMIT: Duration = Duration::from_secs(5);

/// resourceVersion as a number (kedge's are store revisions); 0 if not.
pub fn revision<K: Resource>(obj: &K) -> u64 {
    obj.meta()
        .resource_version
        .as_deref()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `namespace/name`: the key the backoff and the [`SyncPoint`] know an
/// object by.
pub fn key_of(meta: &ObjectMeta) -> String {
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or(""),
        meta.name.as_deref().unwrap_or("")
    )
}

/// How far a cache has got, and how far each key's triggers have seen.
#[derive(Debug)]
pub struct SyncPoint {
    applied: watch::Sender<u64>,
    wanted: Mutex<HashMap<String, u64>>,
}

impl Default for SyncPoint {
    fn default() -> Self {
        Self {
            applied: watch::channel(0).0,
            wanted: Mutex::new(HashMap::new()),
        }
    }
}

impl SyncPoint {
    /// A trigger for `key` saw an object at revision `rv`.
    pub fn want(&self, key: String, rv: u64) {
        let mut wanted = self.wanted.lock();
        let w = wanted.entry(key).or_default();
        *w = (*w).max(rv);
    }

    /// A child at revision `rv` triggers `owners`: each of their syncs
    /// waits until the cache has it. Returns the owners, for a mapper.
    pub fn want_owners<P: Resource>(
        &self,
        owners: Vec<ObjectRef<P>>,
        rv: u64,
    ) -> Vec<ObjectRef<P>> {
        for o in &owners {
            self.want(
                format!("{}/{}", o.namespace.as_deref().unwrap_or(""), o.name),
                rv,
            );
        }
        owners
    }

    /// Wait until the cache has what the triggers of `key` saw.
    pub async fn catch_up(&self, key: &str) {
        let Some(want) = self.wanted.lock().remove(key) else {
            return;
        };
        let mut rx = self.applied.subscribe();
        let _ = tokio::time::timeout(CATCH_UP_LIMIT, rx.wait_for(|v| *v >= want)).await;
    }

    fn applied(&self, rv: u64) {
        self.applied.send_if_modified(|v| {
            let newer = rv > *v;
            if newer {
                *v = rv;
            }
            newer
        });
    }
}

/// A cache of every `K`, its sync point, and the future that keeps it
/// (run it alongside the controller). `observe` sees each event before the
/// cache applies it.
pub fn cache<K>(
    api: Api<K>,
    sync: std::sync::Arc<SyncPoint>,
    observe: impl Fn(&Event<K>) + Send + 'static,
) -> (Store<K>, impl Future<Output = ()> + Send)
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
    K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
{
    let (reader, writer) = reflector::store();
    let mut listed = 0u64;
    let events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .inspect_ok(move |ev| observe(ev));
    let applied = reflector::reflector(writer, events).for_each(move |ev| {
        // After the reflector: the store holds what is published here.
        if let Ok(ev) = ev {
            match &ev {
                Event::Apply(o) | Event::Delete(o) => sync.applied(revision(o)),
                Event::InitApply(o) => listed = listed.max(revision(o)),
                Event::InitDone => sync.applied(listed),
                Event::Init => {}
            }
        }
        async {}
    });
    (reader, applied)
}
