//! The watch cache: every object in memory, a bounded history of changes, and
//! a broadcast of new changes. All writes pass through here so that the
//! durable commit, the in-memory state and the event stream stay in one order.

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, OnceLock};

use parking_lot::{Condvar, Mutex};
use serde_json::Value;
use tokio::sync::broadcast;

use super::etcd::{Change, EtcdStore, Outcome, Stored};
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
    /// deletion's resourceVersion): parsed from `raw` when first asked for.
    object: OnceLock<Arc<Value>>,
    /// The object as JSON: what a watch sends, without serialising it again.
    pub raw: Arc<Vec<u8>>,
    /// The object before the change, parsed when first asked for.
    previous: OnceLock<Option<Arc<Value>>>,
    previous_raw: Option<Arc<Vec<u8>>>,
}

impl WatchEvent {
    /// A change whose objects are at hand already parsed.
    fn new(
        revision: u64,
        event_type: EventType,
        key: String,
        object: Arc<Value>,
        raw: Arc<Vec<u8>>,
        previous: Option<Arc<Value>>,
    ) -> Self {
        Self {
            revision,
            event_type,
            key,
            object: OnceLock::from(object),
            raw,
            previous: OnceLock::from(previous),
            previous_raw: None,
        }
    }

    /// The object after the change (before it, for a deletion, carrying the
    /// deletion's resourceVersion).
    pub fn object(&self) -> &Arc<Value> {
        self.object.get_or_init(|| parse(&self.key, &self.raw))
    }

    /// The object before the change, for watches that filter by selector
    /// and must tell when an object starts or stops matching.
    pub fn previous(&self) -> Option<&Arc<Value>> {
        self.previous
            .get_or_init(|| self.previous_raw.as_ref().map(|b| parse(&self.key, b)))
            .as_ref()
    }
}

/// Committed JSON back as a tree. It was written by `serde_json` and always
/// parses; should it not, the watcher gets a null rather than a panic.
fn parse(key: &str, raw: &[u8]) -> Arc<Value> {
    Arc::new(serde_json::from_slice(raw).unwrap_or_else(|e| {
        tracing::error!(key, error = %e, "unreadable committed JSON in the history");
        Value::Null
    }))
}

/// What the history keeps of an event: the JSON of the object and of the
/// object before it, not their parsed trees (which take about ten times
/// the bytes). Each JSON is shared with the event that wrote it and with
/// the current state, so a change costs the history one document.
struct Past {
    revision: u64,
    event_type: EventType,
    key: String,
    raw: Arc<Vec<u8>>,
    previous: Option<Arc<Vec<u8>>>,
}

impl Past {
    /// The event again. Its objects are parsed only if a watcher asks for
    /// them (a filter or a Table); a plain watch sends the JSON as it is.
    fn event(&self) -> WatchEvent {
        WatchEvent {
            revision: self.revision,
            event_type: self.event_type,
            key: self.key.clone(),
            object: OnceLock::new(),
            raw: self.raw.clone(),
            previous: OnceLock::new(),
            previous_raw: self.previous.clone(),
        }
    }
}

/// An object in a list, with its committed JSON.
pub struct RawItem {
    /// The storage key.
    pub key: String,
    /// The object.
    pub object: Arc<Value>,
    /// Its JSON as committed (absent only for objects not yet rewritten
    /// since an upgrade).
    pub raw: Option<Arc<Vec<u8>>>,
}

/// The start of a watch: the changes to replay, then the live feed.
pub struct WatchStream {
    /// Events to deliver first, in order.
    pub initial: Vec<Arc<WatchEvent>>,
    /// New events; a receiver that lags resubscribes from the history.
    pub live: broadcast::Receiver<Arc<WatchEvent>>,
    /// The revision the initial events bring the client to.
    pub revision: u64,
}

struct Inner {
    revision: u64,
    objects: BTreeMap<String, Arc<Value>>,
    /// Each object's JSON as committed, so lists can be answered by copying
    /// bytes instead of serialising every object again.
    raw: HashMap<String, Arc<Vec<u8>>>,
    /// Past events by resource (`/<group>/<resource>/`), as Kubernetes
    /// keeps a watch cache per type: a burst of Lease writes does not push
    /// the pod events out of reach of a pod watch.
    history: HashMap<String, History>,
    /// The revision the cache was loaded at: no history reaches before it.
    loaded: u64,
}

/// The recent events of one resource.
struct History {
    events: VecDeque<Past>,
    /// Every event of the resource after this revision is in `events`.
    compacted: u64,
}

/// The resource part of a key or watch prefix, `/<group>/<resource>/`
/// (the whole string if it has fewer parts).
fn resource_of(key: &str) -> &str {
    match key.match_indices('/').nth(2) {
        Some((i, _)) => &key[..=i],
        None => key,
    }
}

/// A write decided but not yet durable.
struct Queued {
    event: Arc<WatchEvent>,
    /// The JSON of the object before the change, for the history.
    previous_raw: Option<Arc<Vec<u8>>>,
    op: Op,
    done: Arc<Completion>,
}

/// An object with its JSON.
type Doc = (Arc<Value>, Arc<Vec<u8>>);

/// Writes decided under the writers' lock, waiting for the committer.
struct Pending {
    /// The last revision handed out.
    next_revision: u64,
    /// The newest undurable state of each key (None: deleted), so that a
    /// write decides on top of the writes queued before it.
    /// Queued writes by key: revision, new state, and when it is durable.
    overlay: HashMap<String, (u64, Option<Doc>, Arc<Completion>)>,
    queue: Vec<Queued>,
    /// Set when the backend failed: the store refuses writes from then on.
    failed: Option<String>,
    shutdown: bool,
}

/// Signals one writer that its revision is durable (or failed).
#[derive(Default)]
struct Completion {
    /// The commit's outcome (a failure as its message), once known.
    result: Mutex<Option<std::result::Result<(), String>>>,
    ready: Condvar,
    ready_async: tokio::sync::Notify,
}

impl Completion {
    /// The commit is done: durable, or failed with the backend's message.
    fn finish(&self, r: std::result::Result<(), String>) {
        *self.result.lock() = Some(r);
        self.ready.notify_all();
        self.ready_async.notify_waiters();
    }

    fn outcome(r: &std::result::Result<(), String>) -> Result<()> {
        r.clone().map_err(StoreError::Backend)
    }

    /// Block the thread until the commit is done.
    fn wait(&self) -> Result<()> {
        let mut g = self.result.lock();
        loop {
            if let Some(r) = &*g {
                return Self::outcome(r);
            }
            self.ready.wait(&mut g);
        }
    }

    /// Wait for the commit without holding a thread.
    async fn wait_async(&self) -> Result<()> {
        loop {
            let notified = self.ready_async.notified();
            tokio::pin!(notified);
            // Registered before looking, so a finish in between wakes it.
            notified.as_mut().enable();
            if let Some(r) = &*self.result.lock() {
                return Self::outcome(r);
            }
            notified.await;
        }
    }

    /// Wait for it: at the end of the request when the request runs under
    /// [`durable`], here and now otherwise.
    fn confirm(self: &Arc<Self>) -> Result<()> {
        let deferred = UNCONFIRMED.try_with(|u| u.borrow_mut().push(self.clone()));
        match deferred {
            Ok(()) => Ok(()),
            Err(_) => wait_blocking(|| self.wait()),
        }
    }
}

tokio::task_local! {
    /// Commits the current request has queued and not yet waited for.
    static UNCONFIRMED: RefCell<Vec<Arc<Completion>>>;
}

/// Run `request`, letting each write it makes return as soon as it is
/// queued for the group commit, then wait, without holding a thread, until
/// every one of them is durable; a failed commit is the answer instead of
/// `request`'s. Without this, a writer blocks its thread until the commit,
/// and the runtime starts another thread for every writer waiting at once.
///
/// Only for requests that do not read back what they wrote: until the
/// commit, reads still see the state before it.
pub async fn durable<T, E, F>(request: F) -> std::result::Result<T, E>
where
    F: Future<Output = std::result::Result<T, E>>,
    E: From<StoreError>,
{
    UNCONFIRMED
        .scope(RefCell::new(Vec::new()), async {
            let out = request.await;
            let queued = UNCONFIRMED.with(|u| std::mem::take(&mut *u.borrow_mut()));
            for done in queued {
                done.wait_async().await?;
            }
            out
        })
        .await
}

struct Shared {
    /// The durable store the committer writes (None: the cache follows
    /// etcd instead).
    store: Option<Box<dyn Store>>,
    /// etcd, when the cache is fed by its watch and writes go there.
    etcd: Option<Arc<EtcdStore>>,
    /// Signalled whenever `inner` has applied changes from etcd.
    applied: Condvar,
    inner: Mutex<Inner>,
    pending: Mutex<Pending>,
    /// Wakes the committer when writes are queued.
    queued: Condvar,
    /// New events, a channel per resource (`/<group>/<resource>/`), made
    /// by the first watch of it: a change wakes only the watchers of its
    /// own resource (with one channel, every Lease renewal woke every pod
    /// watcher to be skipped). Taken inside `inner`'s lock, never around it.
    events: Mutex<HashMap<String, broadcast::Sender<Arc<WatchEvent>>>>,
    history_limit: usize,
}

/// The objects a cache starts with, and the revision they are at.
type Loaded = (
    u64,
    BTreeMap<String, Arc<Value>>,
    HashMap<String, Arc<Vec<u8>>>,
);

impl Shared {
    fn new(
        store: Option<Box<dyn Store>>,
        etcd: Option<Arc<EtcdStore>>,
        (revision, objects, raw): Loaded,
        history_limit: usize,
    ) -> Self {
        Self {
            store,
            etcd,
            applied: Condvar::new(),
            inner: Mutex::new(Inner {
                revision,
                objects,
                raw,
                history: HashMap::new(),
                loaded: revision,
            }),
            pending: Mutex::new(Pending {
                next_revision: revision,
                overlay: HashMap::new(),
                queue: Vec::new(),
                failed: None,
                shutdown: false,
            }),
            queued: Condvar::new(),
            events: Mutex::new(HashMap::new()),
            history_limit: history_limit.max(1),
        }
    }
}

/// Live events a watcher may fall behind by before it is caught up from
/// the history instead.
const LIVE_EVENTS: usize = 2048;

/// The in-memory face of the store.
///
/// Writes are group-committed: each writer decides its change under the
/// writers' lock (seeing every earlier write, durable or not), queues it,
/// and waits; one committer thread writes all queued changes in one durable
/// transaction, then makes them visible to reads and watches in revision
/// order and releases the writers. Readers never see a change before it is
/// durable, and a writer is answered only after its change is.
pub struct WatchCache {
    shared: Arc<Shared>,
    committer: Option<std::thread::JoinHandle<()>>,
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
            Written::Changed(e) => Some(e.object().clone()),
            Written::Unchanged(o) => o.clone(),
        }
    }
}

impl Drop for WatchCache {
    fn drop(&mut self) {
        self.shared.pending.lock().shutdown = true;
        self.shared.queued.notify_all();
        // The backend is closed only once the committer has let go of it.
        if let Some(t) = self.committer.take() {
            let _ = t.join();
        }
    }
}

impl WatchCache {
    /// Load everything from `store` and keep at most `history_limit` past
    /// events of each resource for watches to resume from.
    pub fn open(store: Box<dyn Store>, history_limit: usize) -> Result<Self> {
        let (revision, docs) = store.load()?;
        let mut objects = BTreeMap::new();
        let mut raw = HashMap::new();
        for (k, v) in docs {
            let obj: Value = serde_json::from_slice(&v)
                .map_err(|e| StoreError::Backend(format!("corrupt object at {k}: {e}")))?;
            objects.insert(k.clone(), Arc::new(obj));
            raw.insert(k, Arc::new(v));
        }
        let shared = Arc::new(Shared::new(
            Some(store),
            None,
            (revision, objects, raw),
            history_limit,
        ));
        let for_thread = shared.clone();
        let committer = std::thread::Builder::new()
            .name("store-commit".into())
            .spawn(move || commit_loop(&for_thread))
            .map_err(|e| StoreError::Backend(format!("starting the committer: {e}")))?;
        Ok(Self {
            shared,
            committer: Some(committer),
        })
    }

    /// Load everything from etcd and follow its watch from there on; writes
    /// go to etcd as conditional transactions.
    pub fn open_etcd(etcd: EtcdStore, history_limit: usize) -> Result<Self> {
        let etcd = Arc::new(etcd);
        let (revision, docs) = etcd.load()?;
        let mut objects = BTreeMap::new();
        let mut raw = HashMap::new();
        for (k, v, mod_revision) in docs {
            let (obj, bytes) = with_revision(&k, &v, mod_revision)?;
            objects.insert(k.clone(), obj);
            raw.insert(k, bytes);
        }
        let shared = Arc::new(Shared::new(
            None,
            Some(etcd.clone()),
            (revision, objects, raw),
            history_limit,
        ));
        let weak = Arc::downgrade(&shared);
        etcd.follow(revision, move |changes| match weak.upgrade() {
            Some(sh) => {
                follow_changes(&sh, changes);
                true
            }
            None => false,
        });
        etcd.compact_periodically(super::etcd::COMPACTION_INTERVAL);
        Ok(Self {
            shared,
            committer: None,
        })
    }

    /// Whether the store behind the cache works: etcd answers a read, or
    /// the embedded store's committer still runs.
    pub fn health(&self) -> std::result::Result<(), String> {
        match &self.shared.etcd {
            Some(etcd) => etcd.health(),
            None if self.committer.as_ref().is_some_and(|c| c.is_finished()) => {
                Err("the store's committer has stopped".into())
            }
            None => Ok(()),
        }
    }

    /// The last committed revision.
    pub fn revision(&self) -> u64 {
        self.shared.inner.lock().revision
    }

    /// The object at `key`.
    pub fn get(&self, key: &str) -> Option<Arc<Value>> {
        self.shared.inner.lock().objects.get(key).cloned()
    }

    /// Every object whose key starts with `prefix`, in key order, and the
    /// revision the snapshot reflects.
    pub fn list(&self, prefix: &str) -> (u64, Vec<(String, Arc<Value>)>) {
        let inner = self.shared.inner.lock();
        let items = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (inner.revision, items)
    }

    /// The objects below `prefix` that `keep` chooses, without copying the
    /// others (`keep` runs under the cache's lock: it must not call the
    /// cache).
    pub fn select(&self, prefix: &str, mut keep: impl FnMut(&Value) -> bool) -> Vec<Arc<Value>> {
        let inner = self.shared.inner.lock();
        inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, v)| keep(v))
            .map(|(_, v)| v.clone())
            .collect()
    }

    /// Like [`WatchCache::list`], with each object's committed JSON bytes.
    pub fn list_raw(&self, prefix: &str) -> (u64, Vec<RawItem>) {
        let inner = self.shared.inner.lock();
        let items = inner
            .objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| RawItem {
                key: k.clone(),
                object: v.clone(),
                raw: inner.raw.get(k).cloned(),
            })
            .collect();
        (inner.revision, items)
    }

    /// Atomically read the object at `key`, let `decide` choose its new state,
    /// commit it durably and publish the change. The new object gets the new
    /// revision as its resourceVersion. Returns once the change is durable
    /// and visible. Blocks the calling thread while the commit runs (inside
    /// a tokio runtime, through `block_in_place`).
    /// With etcd, `decide` runs again on the newer object when another
    /// server changed it meanwhile (as kube-apiserver's guaranteed update).
    pub fn write<F, E>(&self, key: &str, mut decide: F) -> Result<Written, E>
    where
        F: FnMut(Option<&Arc<Value>>) -> Result<Decision, E>,
        E: From<StoreError>,
    {
        if let Some(etcd) = &self.shared.etcd {
            return self.write_etcd(etcd, key, decide);
        }
        let sh = &self.shared;
        let mut pending = sh.pending.lock();
        if let Some(f) = &pending.failed {
            return Err(StoreError::Backend(f.clone()).into());
        }
        let (current, current_pending) = match pending.overlay.get(key) {
            Some((_, doc, done)) => (doc.clone(), Some(done.clone())),
            None => {
                let inner = sh.inner.lock();
                let doc = inner.objects.get(key).map(|v| {
                    let raw = match inner.raw.get(key) {
                        Some(r) => r.clone(),
                        None => Arc::new(serde_json::to_vec(&**v).unwrap_or_default()),
                    };
                    (v.clone(), raw)
                });
                (doc, None)
            }
        };
        let (current, previous_raw) = match current {
            Some((v, r)) => (Some(v), Some(r)),
            None => (None, None),
        };
        let decision = decide(current.as_ref())?;
        let revision = pending.next_revision + 1;
        let (event_type, object, raw, op) = match decision {
            Decision::Keep => {
                drop(pending);
                // Answer only with durable state.
                if let Some(done) = current_pending {
                    done.confirm()?;
                }
                return Ok(Written::Unchanged(current));
            }
            Decision::Put(mut obj) => {
                set_resource_version(&mut obj, revision);
                let bytes =
                    serde_json::to_vec(&obj).map_err(|e| StoreError::Backend(e.to_string()))?;
                let t = if current.is_some() {
                    EventType::Modified
                } else {
                    EventType::Added
                };
                let bytes = Arc::new(bytes);
                (
                    t,
                    Arc::new(obj),
                    bytes.clone(),
                    Op::Put(key.to_string(), bytes),
                )
            }
            Decision::Delete => {
                let Some(old) = current.clone() else {
                    return Err(StoreError::NotFound.into());
                };
                let mut obj = (*old).clone();
                set_resource_version(&mut obj, revision);
                let bytes =
                    serde_json::to_vec(&obj).map_err(|e| StoreError::Backend(e.to_string()))?;
                (
                    EventType::Deleted,
                    Arc::new(obj),
                    Arc::new(bytes),
                    Op::Delete(key.to_string()),
                )
            }
        };
        pending.next_revision = revision;
        let after = (event_type != EventType::Deleted).then(|| (object.clone(), raw.clone()));
        let done = Arc::new(Completion::default());
        pending
            .overlay
            .insert(key.to_string(), (revision, after, done.clone()));
        let event = Arc::new(WatchEvent::new(
            revision,
            event_type,
            key.to_string(),
            object,
            raw,
            current,
        ));
        pending.queue.push(Queued {
            event: event.clone(),
            previous_raw,
            op,
            done: done.clone(),
        });
        drop(pending);
        sh.queued.notify_one();
        done.confirm()?;
        Ok(Written::Changed(event))
    }

    fn write_etcd<F, E>(&self, etcd: &EtcdStore, key: &str, mut decide: F) -> Result<Written, E>
    where
        F: FnMut(Option<&Arc<Value>>) -> Result<Decision, E>,
        E: From<StoreError>,
    {
        let sh = &self.shared;
        for _ in 0..16 {
            let current = sh.inner.lock().objects.get(key).cloned();
            let expected = current.as_deref().and_then(resource_version);
            let outcome = match decide(current.as_ref())? {
                Decision::Keep => return Ok(Written::Unchanged(current)),
                Decision::Put(mut obj) => {
                    // The version is the key's revision in etcd, not a field
                    // of the stored document.
                    if let Some(meta) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.remove("resourceVersion");
                    }
                    let bytes =
                        serde_json::to_vec(&obj).map_err(|e| StoreError::Backend(e.to_string()))?;
                    let outcome = wait_blocking(|| etcd.put(key, &Arc::new(bytes), expected))?;
                    if let Outcome::Committed(revision) = outcome {
                        set_resource_version(&mut obj, revision);
                        let event_type = if current.is_some() {
                            EventType::Modified
                        } else {
                            EventType::Added
                        };
                        let raw = serde_json::to_vec(&obj)
                            .map_err(|e| StoreError::Backend(e.to_string()))?;
                        self.wait_applied(revision)?;
                        return Ok(Written::Changed(Arc::new(WatchEvent::new(
                            revision,
                            event_type,
                            key.to_string(),
                            Arc::new(obj),
                            Arc::new(raw),
                            current,
                        ))));
                    }
                    outcome
                }
                Decision::Delete => {
                    let (Some(old), Some(expected)) = (current.clone(), expected) else {
                        return Err(StoreError::NotFound.into());
                    };
                    let outcome = wait_blocking(|| etcd.delete(key, expected))?;
                    if let Outcome::Committed(revision) = outcome {
                        let mut obj = (*old).clone();
                        set_resource_version(&mut obj, revision);
                        let raw = serde_json::to_vec(&obj)
                            .map_err(|e| StoreError::Backend(e.to_string()))?;
                        self.wait_applied(revision)?;
                        return Ok(Written::Changed(Arc::new(WatchEvent::new(
                            revision,
                            EventType::Deleted,
                            key.to_string(),
                            Arc::new(obj),
                            Arc::new(raw),
                            current,
                        ))));
                    }
                    outcome
                }
            };
            // Another server wrote the key first: decide again once the
            // cache holds what it wrote.
            if let Outcome::Moved(now) = outcome {
                self.wait_for_key(key, now);
            }
        }
        Err(StoreError::Conflict.into())
    }

    /// Wait until the cache has applied etcd's `revision`.
    fn wait_applied(&self, revision: u64) -> Result<()> {
        let sh = &self.shared;
        let deadline = std::time::Instant::now() + ETCD_CATCH_UP;
        wait_blocking(|| {
            let mut inner = sh.inner.lock();
            while inner.revision < revision {
                if sh.applied.wait_until(&mut inner, deadline).timed_out() {
                    return Err(StoreError::Backend(format!(
                        "etcd's watch has not brought revision {revision} within {ETCD_CATCH_UP:?}"
                    )));
                }
            }
            Ok(())
        })
    }

    /// Wait (a bounded time) until the cache shows `key` at etcd's
    /// `mod_revision` (None: gone).
    fn wait_for_key(&self, key: &str, mod_revision: Option<u64>) {
        let sh = &self.shared;
        let deadline = std::time::Instant::now() + ETCD_CATCH_UP;
        wait_blocking(|| {
            let mut inner = sh.inner.lock();
            loop {
                let cached = inner.objects.get(key).and_then(|o| resource_version(o));
                let caught_up = match mod_revision {
                    Some(rev) => cached.is_some_and(|c| c >= rev),
                    None => cached.is_none(),
                };
                if caught_up || sh.applied.wait_until(&mut inner, deadline).timed_out() {
                    return;
                }
            }
        })
    }

    /// Start a watch of the keys under `prefix`. With `from`, replay every
    /// change after that revision (410-style `Expired` if the history no longer
    /// reaches back that far); without it, replay the current state as ADDED
    /// events.
    pub fn watch(&self, prefix: &str, from: Option<u64>) -> Result<WatchStream> {
        let inner = self.shared.inner.lock();
        // Subscribed under `inner`'s lock, which the committer holds while
        // it publishes: nothing falls between the replay and the feed.
        let live = self
            .shared
            .events
            .lock()
            .entry(resource_of(prefix).to_string())
            .or_insert_with(|| broadcast::channel(LIVE_EVENTS).0)
            .subscribe();
        let revision = inner.revision;
        let history = inner.history.get(resource_of(prefix));
        let compacted = history.map_or(inner.loaded, |h| h.compacted);
        let initial = match from {
            Some(rv) if rv < compacted => {
                return Err(StoreError::Expired {
                    requested: rv,
                    oldest: compacted + 1,
                });
            }
            Some(rv) => {
                let Some(history) = history else {
                    return Ok(WatchStream {
                        initial: Vec::new(),
                        live,
                        revision,
                    });
                };
                // The history is in revision order: start at the first
                // event after `rv`.
                let skip = history.events.partition_point(|e| e.revision <= rv);
                history
                    .events
                    .range(skip..)
                    .filter(|e| e.key.starts_with(prefix))
                    .map(|e| Arc::new(e.event()))
                    .collect()
            }
            None => inner
                .objects
                .range(prefix.to_string()..)
                .take_while(|(k, _)| k.starts_with(prefix))
                .map(|(k, v)| {
                    let raw = match inner.raw.get(k) {
                        Some(r) => r.clone(),
                        None => Arc::new(serde_json::to_vec(&**v).unwrap_or_default()),
                    };
                    Arc::new(WatchEvent::new(
                        resource_version(v).unwrap_or(0),
                        EventType::Added,
                        k.clone(),
                        v.clone(),
                        raw,
                        None,
                    ))
                })
                .collect(),
        };
        Ok(WatchStream {
            initial,
            live,
            revision,
        })
    }
}

/// Block on `f`, telling the tokio runtime (if any) that this thread waits.
fn wait_blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}

/// The committer: takes every queued write, commits them as one durable
/// transaction, then publishes them in order and wakes their writers.
fn commit_loop(sh: &Shared) {
    loop {
        let batch = {
            let mut pending = sh.pending.lock();
            while pending.queue.is_empty() && !pending.shutdown {
                sh.queued.wait(&mut pending);
            }
            if pending.queue.is_empty() && pending.shutdown {
                return;
            }
            std::mem::take(&mut pending.queue)
        };
        let last = batch.last().map(|q| q.event.revision).unwrap_or(0);
        let ops: Vec<Op> = batch.iter().map(|q| q.op.clone()).collect();
        let Some(store) = &sh.store else { return };
        if let Err(e) = store.commit(last, &ops) {
            let msg = e.to_string();
            tracing::error!(error = %msg, "store commit failed; refusing further writes");
            let mut pending = sh.pending.lock();
            pending.failed = Some(msg.clone());
            pending.overlay.clear();
            // Writes queued after this batch were decided on top of it.
            let rest = std::mem::take(&mut pending.queue);
            drop(pending);
            for q in batch.iter().chain(rest.iter()) {
                q.done.finish(Err(msg.clone()));
            }
            continue;
        }
        {
            let mut inner = sh.inner.lock();
            for q in &batch {
                apply(sh, &mut inner, &q.event, q.previous_raw.clone());
            }
        }
        {
            let mut pending = sh.pending.lock();
            pending.overlay.retain(|_, (rev, _, _)| *rev > last);
        }
        for q in &batch {
            q.done.finish(Ok(()));
        }
    }
}

/// How long a writer waits for etcd's watch to bring its own write.
const ETCD_CATCH_UP: std::time::Duration = std::time::Duration::from_secs(30);

/// Make `event` the current state of its key, keep it in the history and
/// send it to the watchers of its resource.
fn apply(sh: &Shared, inner: &mut Inner, e: &Arc<WatchEvent>, previous_raw: Option<Arc<Vec<u8>>>) {
    inner.revision = inner.revision.max(e.revision);
    if e.event_type == EventType::Deleted {
        inner.objects.remove(&e.key);
        inner.raw.remove(&e.key);
    } else {
        inner.objects.insert(e.key.clone(), e.object().clone());
        inner.raw.insert(e.key.clone(), e.raw.clone());
    }
    let loaded = inner.loaded;
    let history = inner
        .history
        .entry(resource_of(&e.key).to_string())
        .or_insert_with(|| History {
            events: VecDeque::new(),
            compacted: loaded,
        });
    history.events.push_back(Past {
        revision: e.revision,
        event_type: e.event_type,
        key: e.key.clone(),
        raw: e.raw.clone(),
        previous: previous_raw,
    });
    while history.events.len() > sh.history_limit {
        if let Some(old) = history.events.pop_front() {
            history.compacted = old.revision;
        }
    }
    // No channel or no receivers: nobody is watching.
    if let Some(live) = sh.events.lock().get(resource_of(&e.key)) {
        let _ = live.send(e.clone());
    }
}

/// A document from etcd with its key's revision as its resourceVersion.
fn with_revision(key: &str, stored: &[u8], revision: u64) -> Result<Doc> {
    let mut obj: Value = serde_json::from_slice(stored)
        .map_err(|e| StoreError::Backend(format!("corrupt object at {key}: {e}")))?;
    set_resource_version(&mut obj, revision);
    let raw = serde_json::to_vec(&obj).map_err(|e| StoreError::Backend(e.to_string()))?;
    Ok((Arc::new(obj), Arc::new(raw)))
}

/// Apply what etcd's watch reported, in order, and wake the writers
/// waiting for it.
fn follow_changes(sh: &Shared, changes: Vec<Change>) {
    let mut inner = sh.inner.lock();
    for change in changes {
        let (key, revision) = match change {
            Change::Relisted { revision, objects } => {
                relist(sh, &mut inner, revision, objects);
                continue;
            }
            Change::Put {
                ref key, revision, ..
            }
            | Change::Delete { ref key, revision } => (key.clone(), revision),
        };
        if revision <= inner.revision {
            // Already part of what was loaded.
            continue;
        }
        let previous = inner.objects.get(&key).cloned();
        let previous_raw = inner.raw.get(&key).cloned();
        let event = match change {
            Change::Put { value, .. } => match with_revision(&key, &value, revision) {
                Ok((obj, raw)) => {
                    let t = if previous.is_some() {
                        EventType::Modified
                    } else {
                        EventType::Added
                    };
                    WatchEvent::new(revision, t, key, obj, raw, previous)
                }
                Err(e) => {
                    tracing::error!(error = %e, "skipping an unreadable object from etcd");
                    inner.revision = revision;
                    continue;
                }
            },
            Change::Relisted { .. } => continue,
            Change::Delete { .. } => {
                let Some(old) = previous.clone() else {
                    inner.revision = revision;
                    continue;
                };
                let mut obj = (*old).clone();
                set_resource_version(&mut obj, revision);
                let raw = serde_json::to_vec(&obj).unwrap_or_default();
                WatchEvent::new(
                    revision,
                    EventType::Deleted,
                    key,
                    Arc::new(obj),
                    Arc::new(raw),
                    previous,
                )
            }
        };
        apply(sh, &mut inner, &Arc::new(event), previous_raw);
    }
    drop(inner);
    sh.applied.notify_all();
}

/// Bring the cache to `objects` as etcd holds them at `revision`, after
/// the watch lost changes to compaction: what changed since the cache's
/// revision is applied as events, what is gone as deletions, and every
/// watch resuming from before is told its history is gone (410).
fn relist(sh: &Shared, inner: &mut Inner, revision: u64, objects: Vec<Stored>) {
    let before = inner.revision;
    let mut present = std::collections::HashSet::new();
    let mut changed: Vec<(String, Vec<u8>, u64)> = Vec::new();
    for (key, value, mod_revision) in objects {
        present.insert(key.clone());
        if mod_revision > before {
            changed.push((key, value, mod_revision));
        }
    }
    changed.sort_by_key(|c| c.2);
    for (key, value, mod_revision) in changed {
        let Ok((obj, raw)) = with_revision(&key, &value, mod_revision) else {
            continue;
        };
        let previous = inner.objects.get(&key).cloned();
        let previous_raw = inner.raw.get(&key).cloned();
        let t = if previous.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        let event = Arc::new(WatchEvent::new(mod_revision, t, key, obj, raw, previous));
        apply(sh, inner, &event, previous_raw);
    }
    let gone: Vec<String> = inner
        .objects
        .keys()
        .filter(|k| !present.contains(*k))
        .cloned()
        .collect();
    for key in gone {
        let Some(old) = inner.objects.get(&key).cloned() else {
            continue;
        };
        let previous_raw = inner.raw.get(&key).cloned();
        let mut obj = (*old).clone();
        set_resource_version(&mut obj, revision);
        let raw = serde_json::to_vec(&obj).unwrap_or_default();
        let event = Arc::new(WatchEvent::new(
            revision,
            EventType::Deleted,
            key,
            Arc::new(obj),
            Arc::new(raw),
            Some(old),
        ));
        apply(sh, inner, &event, previous_raw);
    }
    inner.revision = inner.revision.max(revision);
    for history in inner.history.values_mut() {
        history.compacted = history.compacted.max(before);
    }
    tracing::info!(from = before, to = revision, "the cache read etcd anew");
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
    async fn a_relist_after_lost_changes_applies_their_net_effect() {
        let (_d, c) = cache(100);
        put(&c, "/core/pods/a/kept", 1);
        put(&c, "/core/pods/a/changed", 1);
        let before = put(&c, "/core/pods/a/gone", 1);
        let mut live = c.watch("/core/pods/", None).unwrap().live;
        // What etcd holds at revision 10, the changes in between compacted.
        let doc = |n: i64| serde_json::to_vec(&json!({"metadata": {"name": "x"}, "n": n})).unwrap();
        let kept_rv = resource_version(&c.get("/core/pods/a/kept").unwrap()).unwrap();
        let objects = vec![
            ("/core/pods/a/kept".to_string(), doc(1), kept_rv),
            ("/core/pods/a/changed".to_string(), doc(2), 8),
            ("/core/pods/a/new".to_string(), doc(3), 9),
        ];
        {
            let sh = &c.shared;
            let mut inner = sh.inner.lock();
            relist(sh, &mut inner, 10, objects);
        }
        let mut seen = Vec::new();
        while let Ok(e) = live.try_recv() {
            seen.push((e.revision, e.event_type, e.key.clone()));
        }
        assert_eq!(
            seen,
            [
                (8, EventType::Modified, "/core/pods/a/changed".to_string()),
                (9, EventType::Added, "/core/pods/a/new".to_string()),
                (10, EventType::Deleted, "/core/pods/a/gone".to_string()),
            ]
        );
        assert_eq!(c.revision(), 10);
        assert_eq!(c.get("/core/pods/a/changed").unwrap()["n"], 2);
        assert!(c.get("/core/pods/a/gone").is_none());
        // A watch resuming from before the gap relists.
        assert!(matches!(
            c.watch("/core/pods/", Some(before - 1)),
            Err(StoreError::Expired { .. })
        ));
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
    async fn replay_from_history_has_objects_json_and_previous() {
        let (_d, c) = cache(100);
        let r1 = put(&c, "/core/pods/a/x", 1);
        let r2 = put(&c, "/core/pods/a/x", 2);
        let deleted = match c
            .write::<_, StoreError>("/core/pods/a/x", |_| Ok(Decision::Delete))
            .unwrap()
        {
            Written::Changed(e) => e,
            Written::Unchanged(_) => panic!("unchanged"),
        };
        let live: Vec<u8> = deleted.raw.to_vec();
        let w = c.watch("/core/pods/", Some(r1 - 1)).unwrap();
        // Replayed events are parsed only when asked: a plain watch sends
        // their JSON as it is.
        assert!(w
            .initial
            .iter()
            .all(|e| e.object.get().is_none() && e.previous.get().is_none()));
        let got: Vec<_> = w
            .initial
            .iter()
            .map(|e| {
                (
                    e.event_type,
                    e.revision,
                    e.object()["n"].as_i64(),
                    e.previous().map(|p| p["n"].as_i64().unwrap()),
                    resource_version(e.object()),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (EventType::Added, r1, Some(1), None, Some(r1)),
                (EventType::Modified, r2, Some(2), Some(1), Some(r2)),
                (EventType::Deleted, r2 + 1, Some(2), Some(2), Some(r2 + 1)),
            ]
        );
        for e in &w.initial {
            assert_eq!(
                **e.object(),
                serde_json::from_slice::<Value>(&e.raw).unwrap()
            );
        }
        assert_eq!(*w.initial[2].raw, live);
        let w = c.watch("/core/pods/", Some(r2)).unwrap();
        assert_eq!(w.initial.len(), 1);
        assert_eq!(w.initial[0].event_type, EventType::Deleted);
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn compacted_history_expires_old_revisions() {
        let (_d, c) = cache(2);
        let r1 = put(&c, "/core/configmaps/a/1", 1);
        for i in 0..5 {
            put(&c, "/core/configmaps/a/1", i);
        }
        assert!(matches!(
            c.watch("/core/configmaps/", Some(r1)),
            Err(StoreError::Expired { .. })
        ));
        assert!(c
            .watch("/core/configmaps/a/", Some(c.revision() - 1))
            .is_ok());
    }

    // A change reaches only the watchers of its own resource.
    #[tokio::test(flavor = "multi_thread")]
    async fn live_events_go_to_their_resource_only() {
        let (_d, c) = cache(100);
        let mut pods = c.watch("/core/pods/", None).unwrap();
        put(&c, "/coordination.k8s.io/leases/kube-node-lease/n", 1);
        assert!(matches!(
            pods.live.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
        let rev = put(&c, "/core/pods/a/p", 1);
        assert_eq!(pods.live.try_recv().unwrap().revision, rev);
    }

    // Each resource keeps its own recent events: many writes of one do not
    // expire a watch of another.
    #[tokio::test(flavor = "multi_thread")]
    async fn history_is_kept_per_resource() {
        let (_d, c) = cache(2);
        let before = c.revision();
        let pod = put(&c, "/core/pods/a/p", 1);
        for i in 0..10 {
            put(&c, "/coordination.k8s.io/leases/kube-node-lease/n", i);
        }
        let w = c.watch("/core/pods/", Some(before)).unwrap();
        assert_eq!(w.initial.len(), 1);
        assert_eq!(w.initial[0].revision, pod);
        assert!(matches!(
            c.watch("/coordination.k8s.io/leases/", Some(before)),
            Err(StoreError::Expired { .. })
        ));
        // A resource never written since the start replays nothing.
        assert!(c
            .watch("/core/nodes/", Some(before))
            .unwrap()
            .initial
            .is_empty());
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

    #[tokio::test(flavor = "multi_thread")]
    async fn concurrent_read_modify_writes_lose_nothing() {
        let (_d, c) = cache(10_000);
        let c = Arc::new(c);
        let mut threads = Vec::new();
        for _ in 0..8 {
            let c = c.clone();
            threads.push(std::thread::spawn(move || {
                for _ in 0..50 {
                    c.write::<_, StoreError>("/counter", |cur| {
                        let n = cur.and_then(|v| v["n"].as_i64()).unwrap_or(0);
                        Ok(Decision::Put(json!({"metadata": {}, "n": n + 1})))
                    })
                    .unwrap();
                }
            }));
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(c.get("/counter").unwrap()["n"], 400);
        assert_eq!(c.revision(), 400);
        // Every revision was published once, in order.
        let w = c.watch("/counter", Some(0)).unwrap();
        let revs: Vec<u64> = w.initial.iter().map(|e| e.revision).collect();
        assert_eq!(revs, (1..=400).collect::<Vec<_>>());
    }

    /// The redb store, with its first commit held until `expect` writes
    /// have been queued (or ten seconds have passed).
    struct HeldFirstCommit {
        store: super::super::RedbStore,
        queued: Arc<std::sync::atomic::AtomicUsize>,
        expect: usize,
        held: std::sync::atomic::AtomicBool,
        gave_up: Arc<std::sync::atomic::AtomicBool>,
    }

    impl Store for HeldFirstCommit {
        fn load(&self) -> Result<super::super::Snapshot> {
            self.store.load()
        }
        fn commit(&self, revision: u64, ops: &[Op]) -> Result<()> {
            use std::sync::atomic::Ordering::SeqCst;
            if !self.held.swap(true, SeqCst) {
                let start = std::time::Instant::now();
                while self.queued.load(SeqCst) < self.expect {
                    if start.elapsed() > std::time::Duration::from_secs(10) {
                        self.gave_up.store(true, SeqCst);
                        break;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
            self.store.commit(revision, ops)
        }
    }

    // One thread for every request: under `durable`, a write waiting for
    // its commit leaves the thread to the others, which queue theirs behind
    // it; each is answered only once its own write is durable.
    #[tokio::test(flavor = "current_thread")]
    async fn durable_writers_wait_without_holding_the_thread() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
        const WRITERS: usize = 50;
        let dir = tempfile::tempdir().unwrap();
        let queued = Arc::new(AtomicUsize::new(0));
        let gave_up = Arc::new(AtomicBool::new(false));
        let store = HeldFirstCommit {
            store: super::super::RedbStore::open(&dir.path().join("s.redb")).unwrap(),
            queued: queued.clone(),
            expect: WRITERS,
            held: AtomicBool::new(false),
            gave_up: gave_up.clone(),
        };
        let c = Arc::new(WatchCache::open(Box::new(store), 1000).unwrap());
        let mut tasks = Vec::new();
        for i in 0..WRITERS {
            let (c, queued) = (c.clone(), queued.clone());
            tasks.push(tokio::spawn(async move {
                let key = format!("/core/configmaps/default/c{i}");
                let written = durable(async {
                    let w = c.write::<_, StoreError>(&key, |_| {
                        Ok(Decision::Put(json!({"metadata": {"name": key}})))
                    });
                    queued.fetch_add(1, SeqCst);
                    w
                })
                .await
                .unwrap();
                let Written::Changed(e) = written else {
                    panic!("unchanged")
                };
                // Answered: durable and visible to reads.
                assert!(c.revision() >= e.revision);
                assert!(c.get(&key).is_some());
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert!(
            !gave_up.load(SeqCst),
            "writers held the thread while waiting"
        );
        assert_eq!(c.revision(), WRITERS as u64);
    }
}
