//! Shared informers: one list+watch per resource for every controller of
//! the process, as kube-controller-manager's SharedInformerFactory gives
//! its controllers. Each [`Informer`] keeps one cache ([`Store`]) that
//! controllers read, applies each event to it, then calls its observers
//! with the event and the object as the cache held it before (what
//! expectations need: was this pod known?), then wakes its subscribers —
//! so a reconcile that sees an expectation met, or is woken by an event,
//! always finds that event in the cache.
//!
//! An informer starts its watch when a controller first asks for it and
//! runs until the [`Informers`] that made it is dropped.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt::Debug;
use std::hash::Hash;
use std::sync::Arc;

use futures::channel::mpsc;
use futures::{Stream, StreamExt};
use kube::api::Api;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Client, Resource};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

/// What a shared informer's resource type must be.
pub trait Informed:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

impl<K> Informed for K where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
}

/// A function that sees each event once the cache has applied it, with
/// the object as the cache held it before (`None`: not cached).
pub type Observer<K> = Box<dyn Fn(&Event<K>, Option<&K>) + Send + Sync>;

/// The informers of one process, one per resource type, made on demand.
pub struct Informers {
    client: Client,
    by_type: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Drop for Informers {
    fn drop(&mut self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

impl Informers {
    /// Informers over `client`; nothing is watched until asked for.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            by_type: Mutex::new(HashMap::new()),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The informer of every `K` in the cluster, started on first use.
    pub fn get<K: Informed>(&self) -> Arc<Informer<K>> {
        let mut by_type = self.by_type.lock();
        if let Some(found) = by_type.get(&TypeId::of::<K>()) {
            return found
                .clone()
                .downcast::<Informer<K>>()
                .expect("informers are kept by their type");
        }
        let (reader, writer) = reflector::store();
        let informer = Arc::new(Informer {
            store: reader,
            dispatch: Mutex::new(Dispatch {
                subscribers: Vec::new(),
                observers: Vec::new(),
                listed: false,
                before_relist: Vec::new(),
            }),
        });
        let api: Api<K> = Api::all(self.client.clone());
        self.tasks
            .lock()
            .push(tokio::spawn(informer.clone().run(api, writer)));
        by_type.insert(TypeId::of::<K>(), informer.clone());
        informer
    }
}

/// One resource's shared watch, cache and fan-out.
pub struct Informer<K: Informed> {
    store: Store<K>,
    dispatch: Mutex<Dispatch<K>>,
}

/// What a subscriber is told.
#[derive(Clone)]
enum Change<K> {
    Applied(Arc<K>),
    Deleted(Arc<K>),
    /// Everything listed has been told (after each list, and after the
    /// snapshot a late subscriber starts with).
    Listed,
}

struct Dispatch<K: Informed> {
    subscribers: Vec<mpsc::UnboundedSender<Change<K>>>,
    observers: Vec<Observer<K>>,
    /// Whether the first list has been applied.
    listed: bool,
    /// What the cache held when a relist began: what is gone at its end
    /// was deleted while the watch was down.
    before_relist: Vec<Arc<K>>,
}

impl<K: Informed> Informer<K>
where
    K::DynamicType: Eq + Hash + Clone,
{
    /// The shared cache (ready once the first list is applied).
    pub fn store(&self) -> Store<K> {
        self.store.clone()
    }

    /// Call `f` with every later event once the cache has it, and the
    /// object as the cache held it before.
    pub fn observe(&self, f: impl Fn(&Event<K>, Option<&K>) + Send + Sync + 'static) {
        self.dispatch.lock().observers.push(Box::new(f));
    }

    /// Every object as the cache holds it after each change (deleted
    /// objects as they were last seen); a subscriber that comes after the
    /// first list starts with everything cached.
    pub fn subscribe(&self) -> impl Stream<Item = Arc<K>> + Send + 'static {
        self.changes().filter_map(|c| {
            futures::future::ready(match c {
                Change::Applied(obj) | Change::Deleted(obj) => Some(obj),
                Change::Listed => None,
            })
        })
    }

    /// [`subscribe`](Self::subscribe) as watcher events (`Apply` and
    /// `Delete`, copies of the cached objects), for code written against a
    /// watch of its own.
    pub fn subscribe_events(
        &self,
    ) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send + 'static {
        self.changes().filter_map(|c| {
            futures::future::ready(match c {
                Change::Applied(obj) => Some(Ok(Event::Apply(K::clone(&obj)))),
                Change::Deleted(obj) => Some(Ok(Event::Delete(K::clone(&obj)))),
                Change::Listed => None,
            })
        })
    }

    /// [`subscribe_events`](Self::subscribe_events), with `InitDone` once
    /// everything listed has come (the first list, or the snapshot a late
    /// subscriber starts with, and each relist): for code that must not act
    /// on a partial picture, as the scheduler.
    pub fn subscribe_with_lists(&self) -> impl Stream<Item = Event<K>> + Send + 'static {
        self.changes().map(|c| match c {
            Change::Applied(obj) => Event::Apply(K::clone(&obj)),
            Change::Deleted(obj) => Event::Delete(K::clone(&obj)),
            Change::Listed => Event::InitDone,
        })
    }

    fn changes(&self) -> mpsc::UnboundedReceiver<Change<K>> {
        let (tx, rx) = mpsc::unbounded();
        let mut dispatch = self.dispatch.lock();
        if dispatch.listed {
            for obj in self.store.state() {
                let _ = tx.unbounded_send(Change::Applied(obj));
            }
            let _ = tx.unbounded_send(Change::Listed);
        }
        dispatch.subscribers.push(tx);
        rx
    }

    async fn run(self: Arc<Self>, api: Api<K>, mut writer: reflector::store::Writer<K>) {
        let mut events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            if let Ok(event) = event {
                self.handle(&mut writer, &event);
            }
        }
    }

    /// The cache, then the observers, then the subscribers: an observer
    /// that settles an expectation must not let a sync see it settled
    /// before the cache has the object.
    fn handle(&self, writer: &mut reflector::store::Writer<K>, event: &Event<K>) {
        let mut dispatch = self.dispatch.lock();
        let before = match event {
            Event::Apply(obj) | Event::Delete(obj) | Event::InitApply(obj) => {
                self.store.get(&ObjectRef::from_obj(obj))
            }
            Event::Init => {
                dispatch.before_relist = self.store.state();
                None
            }
            Event::InitDone => None,
        };
        writer.apply_watcher_event(event);
        for observe in &dispatch.observers {
            observe(event, before.as_deref());
        }
        let changed: Vec<Change<K>> = match event {
            Event::Apply(obj) => self
                .store
                .get(&ObjectRef::from_obj(obj))
                .map(Change::Applied)
                .into_iter()
                .collect(),
            Event::Delete(obj) => vec![Change::Deleted(Arc::new(obj.clone()))],
            // A (re)list replaces the cache at its end: everything in it
            // may have changed.
            Event::InitDone => {
                dispatch.listed = true;
                let gone = std::mem::take(&mut dispatch.before_relist)
                    .into_iter()
                    .filter(|old| self.store.get(&ObjectRef::from_obj(old)).is_none())
                    .map(Change::Deleted);
                let now = self.store.state().into_iter().map(Change::Applied);
                gone.chain(now)
                    .chain(std::iter::once(Change::Listed))
                    .collect()
            }
            Event::Init | Event::InitApply(_) => Vec::new(),
        };
        // Sent under the lock, so a new subscriber's snapshot and the
        // events after it never miss one between them.
        dispatch.subscribers.retain(|tx| {
            changed
                .iter()
                .all(|obj| tx.unbounded_send(obj.clone()).is_ok())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Pod;

    /// An informer without a watch, and the writer `run` would feed.
    fn informer() -> (Informer<Pod>, reflector::store::Writer<Pod>) {
        let (reader, writer) = reflector::store::<Pod>();
        let informer = Informer {
            store: reader,
            dispatch: Mutex::new(Dispatch {
                subscribers: Vec::new(),
                observers: Vec::new(),
                listed: false,
                before_relist: Vec::new(),
            }),
        };
        (informer, writer)
    }

    fn pod(name: &str, rv: &str) -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv, "uid": name}
        }))
        .unwrap()
    }

    /// The fan-out without a server: events fed to the step `run` takes
    /// for each.
    #[tokio::test]
    async fn subscribers_see_objects_after_the_cache_has_them() {
        let (informer, mut writer) = informer();
        let seen_before: Arc<Mutex<Vec<bool>>> = Arc::default();
        let seen = seen_before.clone();
        let store = informer.store();
        informer.observe(move |ev, before| {
            if let Event::Apply(p) = ev {
                // Cached already, and whether it was before.
                assert!(store.get(&ObjectRef::from_obj(p)).is_some());
                seen.lock().push(before.is_some());
            }
        });
        let mut early = informer.subscribe();
        for ev in [
            Event::Init,
            Event::InitApply(pod("a", "1")),
            Event::InitDone,
            Event::Apply(pod("b", "2")),
            Event::Apply(pod("b", "3")),
        ] {
            informer.handle(&mut writer, &ev);
        }
        let names: Vec<String> = (0..3)
            .map(|_| {
                let p = futures::executor::block_on(early.next()).unwrap();
                format!(
                    "{}@{}",
                    p.metadata.name.clone().unwrap(),
                    p.metadata.resource_version.clone().unwrap()
                )
            })
            .collect();
        assert_eq!(names, ["a@1", "b@2", "b@3"]);
        // b was new, then known.
        assert_eq!(*seen_before.lock(), [false, true]);
        // A late subscriber starts from the cache.
        let mut late = informer.subscribe();
        let mut got: Vec<String> = (0..2)
            .map(|_| {
                futures::executor::block_on(late.next())
                    .unwrap()
                    .metadata
                    .name
                    .clone()
                    .unwrap()
            })
            .collect();
        got.sort();
        assert_eq!(got, ["a", "b"]);
    }

    /// A relist that no longer finds an object tells subscribers it was
    /// deleted (it went while the watch was down), then that the list is in.
    #[tokio::test]
    async fn a_relist_reports_what_went_missing() {
        let (informer, mut writer) = informer();
        let mut events = Box::pin(informer.subscribe_with_lists());
        for ev in [
            Event::Init,
            Event::InitApply(pod("a", "1")),
            Event::InitApply(pod("b", "2")),
            Event::InitDone,
            Event::Init,
            Event::InitApply(pod("a", "3")),
            Event::InitDone,
        ] {
            informer.handle(&mut writer, &ev);
        }
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(match events.next().await.unwrap() {
                Event::Apply(p) => format!("apply {}", p.metadata.name.unwrap()),
                Event::Delete(p) => format!("delete {}", p.metadata.name.unwrap()),
                Event::InitDone => "listed".to_string(),
                _ => "other".to_string(),
            });
        }
        // The first list's order is the cache's.
        seen[0..2].sort();
        assert_eq!(
            seen,
            ["apply a", "apply b", "listed", "delete b", "apply a", "listed"]
        );
    }
}
