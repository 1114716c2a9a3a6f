//! Storage of API objects: a durable backend (the `Store` trait; redb by default)
//! under an in-memory watch cache that serves every read, list and watch.
//!
//! Objects are kept as JSON documents under keys of the form
//! `/<group>/<resource>/<namespace>/<name>` (group `core` for the legacy group,
//! namespace empty for cluster-scoped objects). One revision counter numbers
//! every write; an object's `metadata.resourceVersion` is the revision of its
//! last write.

mod cache;
mod encryption;
pub mod etcd;
mod redb;

pub use self::cache::{
    durable, resource_version, Decision, EventType, RawItem, WatchCache, WatchEvent, WatchStream,
    Written,
};
pub use self::encryption::{
    ensure_config, load_config, open_with_key, seal_with_key, EncryptedStore, EncryptionConfig,
    EncryptionConfigError, ENCRYPTION_CONFIG_FILE,
};
pub use self::etcd::{EtcdConfig, EtcdStore};
pub use self::redb::RedbStore;

use std::sync::Arc;

/// Errors of the storage layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The key already holds an object.
    #[error("already exists")]
    AlreadyExists,
    /// The key holds no object.
    #[error("not found")]
    NotFound,
    /// The object changed since the revision the caller based its write on.
    #[error("the object has been modified; please apply your changes to the latest version and try again")]
    Conflict,
    /// A watch asked for a revision older than the history the cache keeps.
    #[error("too old resource version: {requested} ({oldest})")]
    Expired {
        /// The revision asked for.
        requested: u64,
        /// The oldest revision still in the history.
        oldest: u64,
    },
    /// The durable backend failed; the write did not happen.
    #[error("storage backend: {0}")]
    Backend(String),
}

/// Result of storage operations.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// One change to commit atomically with a revision.
#[derive(Debug, Clone)]
pub enum Op {
    /// Write the document at the key.
    Put(String, Arc<Vec<u8>>),
    /// Remove the key.
    Delete(String),
}

/// Everything a backend holds: the last committed revision and every key
/// with its document.
pub type Snapshot = (u64, Vec<(String, Vec<u8>)>);

/// A durable backend. It is written only through the watch cache, which
/// serialises writes, so an implementation needs no concurrency control of its
/// own beyond being safe to call from one writer at a time.
pub trait Store: Send + Sync + 'static {
    /// Every stored key and document, and the last committed revision.
    fn load(&self) -> Result<Snapshot>;
    /// Durably commit `ops` as revision `revision`; returns only once the
    /// write would survive a crash.
    fn commit(&self, revision: u64, ops: &[Op]) -> Result<()>;
}
