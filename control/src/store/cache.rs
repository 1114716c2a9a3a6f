//! The watch cache: every object in memory, a bounded history of changes, and
//! a broadcast of new changes. All writes pass through here so that the
//! durable commit, the in-memory state and the event stream stay in one order.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::broadcast;

use super::{Op, Result, Store, StoreError};

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object was changed.
    Modified,
    /// The object was removed.
    Deleted,
}

impl EventType {
    /// The word a watch stream uses.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, numbered by the revision that made it.
#[derive(Debug)]
pub struct WatchEvent {
    /// The revision of the write.
    pub revision: u64,
    /// The kind of change.
    pub event_type: EventType,
    /// The storage key of the object.
    pub key: String,
    /// The object after the change (before it, for a deletion, carrying the
    /// deletion's resourceVersion).
    pub object: Arc<Value>,
    /// The object before the change, for watches that filter by selector
    /// and must tell when an object starts or stops matching.
    pub previous: Option<Arc<Value>>,
}

/// The start of a watch: the changes to replay, then the live feed.
pub struct WatchStream {
    /// Events to deliver first, in order.
    pub initial: Vec<Arc<WatchEvent>>,
    /// New events; a lagging receiver ends the watch (the client resumes).
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
    /// The revision the initial events bring the client to.
    pub revision: u64,
}

struct Inner {
    revision: u64,
    objects: BTreeMap<String, Arc<Value>>,
    history: VecDeque<Arc<WatchEvent>>,
    /// Every event after this revision is still in `history`.
    compacted: u64,
}

/// The in-memory face of the store.
pub struct WatchCache {
    store: Box<dyn Store>,
    inner: Mutex<Inner>,
    events: broadcast::Sender<Arc<WatchEvent>>,
    history_limit: usize,
}

/// What a write closure decides for a key.
pub enum Decision {
    /// Store this object.
    Put(Value),
    /// Remove the object.
    Delete,
    /// Leave the object as it is (a no-op update makes no new revision).
    Keep,
}

/// The result of a write.
pub enum Written {
    /// A change was committed and published.
    Changed(Arc<WatchEvent>),
    /// Nothing changed; the current object.
    Unchanged(Option<Arc<Value>>),
}

impl Written {
    /// The object after the write (the deleted object for a deletion).
    pub fn object(&self) -> Option<Arc<Value>> {
        match self {
            Written::Changed(e) => Some(e.object.clone()),
            Written::Unchanged(o) => o.clone(),
        }
    }
}

impl WatchCache {
    /// Load everything from `store` and keep at most `history_limit` past
    /// events for watches to resume from.
    pub fn open(store: Box<dyn Store>, history_limit: usize) -> Result<Self> {
        let (revision, docs) = store.load()?;
        let mut objects = BTreeMap::new();
        for (k, v) in docs {
            let obj: Value = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Backend(format!("corrupt object at {k}: {e}")))?;
            objects.insert(k, Arc::new(obj));
        }
        let (events, _) = broadcast::channel(8192);
        Ok(Self {
            store,
            inner: Mutex::new(Inner {
                revision,
                objects,
                history: VecDeque::new(),
                compacted: revision,
            }),
            events,
            history_limit: history_limit.max(1),
        })
    }

    /// The last committed revision.
    pub fn revision(&self) -> u64 {
        self.inner.lock().revision
    }

    /// The object at `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.inner.lock().objects.get(key).cloned()
    }

    /// Every object whose key starts with `prefix`, in key order, and the
    /// revision the snapshot reflects.
    pub fn list(&self, prefix: &str) -> (u64, Vec<(String, Arc<Value>)>) {
        let inner = self.inner.lock();
        let items = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (inner.revision, items)
    }

    /// Atomically read the object at `key`, let `decide` choose its new state,
    /// commit it durably and publish the change. The new object gets the new
    /// revision as its resourceVersion. Returns the event that was published.
    pub fn write<F, E>(&self, key: &str, decide: F) -> Result<Written, E>
    where
        F: FnOnce(Option<&Arc<Value>>) -> Result<Decision, E>,
        E: From<StoreError>,
    {
        let mut inner = self.inner.lock();
        let current = inner.objects.get(key).cloned();
        let decision = decide(current.as_ref())?;
        let revision = inner.revision + 1;
        let (event_type, object, op) = match decision {
            Decision::Put(mut obj) => {
                set_resource_version(&mut obj, revision);
                let bytes =
                    serde_json::to_vec(&obj).map_err(|e| StoreError::Backend(e.to_string()))?;
                let t = if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                (t, Arc::new(obj), Op::Put(key.to_string(), Arc::new(bytes)))
            }
            Decision::Keep => return Ok(Written::Unchanged(current)),
            Decision::Delete => {
                let Some(old) = current.clone() else {
                    return Err(StoreError::NotFound.into());
                };
                let mut obj = (*old).clone();
                set_resource_version(&mut obj, revision);
                (
                    EventType::Deleted,
                    Arc::new(obj),
                    Op::Delete(key.to_string()),
                )
            }
        };
        // Durable first: nothing is visible until the backend has it.
        tokio::task::block_in_place(|| self.store.commit(revision, std::slice::from_ref(&op)))?;
        inner.revision = revision;
        match event_type {
            EventType::Deleted => {
                inner.objects.remove(key);
            }
            _ => {
                inner.objects.insert(key.to_string(), object.clone());
            }
        }
        let event = Arc::new(WatchEvent {
            revision,
            event_type,
            key: key.to_string(),
            object,
            previous: current,
        });
        inner.history.push_back(event.clone());
        while inner.history.len() > self.history_limit {
            if let Some(old) = inner.history.pop_front() {
                inner.compacted = old.revision;
            }
        }
        // No receivers is not an error: nobody is watching.
        let _ = self.events.send(event.clone());
        Ok(Written::Changed(event))
    }

    /// Start a watch of the keys under `prefix`. With `from`, replay every
    /// change after that revision (410-style `Expired` if the history no longer
    /// reaches back that far); without it, replay the current state as ADDED
    /// events.
    pub fn watch(&self, prefix: &str, from: Option<u64>) -> Result<WatchStream> {
        let inner = self.inner.lock();
        let live = self.events.subscribe();
        let initial = match from {
            Some(rv) if rv < inner.compacted => {
                return Err(StoreError::Expired {
                    requested: rv,
                    oldest: inner.compacted + 1,
                });
            }
            Some(rv) => inner
                .history
                .iter()
                .filter(|e| e.revision > rv && e.key.starts_with(prefix))
                .cloned()
                .collect(),
            None => inner
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| {
                    Arc::new(WatchEvent {
                        revision: resource_version(v).unwrap_or(0),
                        event_type: EventType::Added,
                        key: k.clone(),
                        object: v.clone(),
                        previous: None,
                    })
                })
                .collect(),
        };
        Ok(WatchStream {
            initial,
            live,
            revision: inner.revision,
        })
    }
}

fn set_resource_version(obj: &mut Value, revision: u64) {
    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert(
            "resourceVersion".into(),
            Value::String(revision.to_string()),
        );
    }
}

/// The resourceVersion of a stored object as a number.
pub fn resource_version(obj: &Value) -> Option<u64> {
    obj.pointer("/metadata/resourceVersion")?
        .as_str()?
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cache(limit: usize) -> (tempfile::TempDir, WatchCache) {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::RedbStore::open(&dir.path().join("s.redb")).unwrap();
        (dir, WatchCache::open(Box::new(store), limit).unwrap())
    }

    fn put(c: &WatchCache, key: &str, n: i64) -> u64 {
        match c
            .write::<_, StoreError>(key, |_| {
                Ok(Decision::Put(json!({"metadata": {"name": key}, "n": n})))
            })
            .unwrap()
        {
            Written::Changed(e) => e.revision,
            Written::Unchanged(_) => panic!("unchanged"),
        }
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn revisions_increase_and_watch_replays() {
        let (_d, c) = cache(100);
        let r1 = put(&c, "/core/pods/a/x", 1);
        let r2 = put(&c, "/core/pods/a/x", 2);
        let r3 = put(&c, "/core/pods/b/y", 3);
        assert!(r1 < r2 && r2 < r3);
        let w = c.watch("/core/pods/a/", Some(r1)).unwrap();
        assert_eq!(w.initial.len(), 1);
        assert_eq!(w.initial[0].event_type, EventType::Modified);
        let w = c.watch("/core/pods/", None).unwrap();
        assert_eq!(w.initial.len(), 2);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn compacted_history_expires_old_revisions() {
        let (_d, c) = cache(2);
        let r1 = put(&c, "/k/1", 1);
        for i in 0..5 {
            put(&c, "/k/1", i);
        }
        assert!(matches!(
            c.watch("/k/", Some(r1)),
            Err(StoreError::Expired { .. })
        ));
        assert!(c.watch("/k/", Some(c.revision() - 1)).is_ok());
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn state_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.redb");
        {
            let c = WatchCache::open(Box::new(super::super::RedbStore::open(&path).unwrap()), 10)
                .unwrap();
            put(&c, "/k/1", 1);
            put(&c, "/k/2", 2);
            c.write::<_, StoreError>("/k/1", |_| Ok(Decision::Delete))
                .unwrap();
        }
        let c =
            WatchCache::open(Box::new(super::super::RedbStore::open(&path).unwrap()), 10).unwrap();
        assert_eq!(c.revision(), 3);
        assert!(c.get("/k/1").is_none());
        assert_eq!(c.get("/k/2").unwrap()["n"], 2);
        assert_eq!(resource_version(&c.get("/k/2").unwrap()), Some(2));
    }
}
