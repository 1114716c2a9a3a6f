//! The embedded default backend: one redb file in the data dir. Every commit is
//! an ACID transaction with immediate durability, so an acknowledged write
//! survives a crash of the process or the machine.

use std::path::Path;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::{Op, Result, Snapshot, Store, StoreError};

const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
const REVISION: &str = "revision";

/// A redb database file holding every API object.
pub struct RedbStore {
    db: Database,
}

fn backend<E: std::fmt::Display>(e: E) -> StoreError {
    StoreError::Backend(e.to_string())
}

impl RedbStore {
    /// Open (or create) the database file at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        let db = Database::create(path).map_err(backend)?;
        // Create the tables up front so reads never meet a missing table.
        let tx = db.begin_write().map_err(backend)?;
        tx.open_table(OBJECTS).map_err(backend)?;
        tx.open_table(META).map_err(backend)?;
        tx.commit().map_err(backend)?;
        Ok(Self { db })
    }
}

impl Store for RedbStore {
    fn load(&self) -> Result<Snapshot> {
        let tx = self.db.begin_read().map_err(backend)?;
        let meta = tx.open_table(META).map_err(backend)?;
        let revision = meta
            .get(REVISION)
            .map_err(backend)?
            .map(|v| v.value())
            .unwrap_or(0);
        let objects = tx.open_table(OBJECTS).map_err(backend)?;
        let mut out = Vec::new();
        for entry in objects.iter().map_err(backend)? {
            let (k, v) = entry.map_err(backend)?;
            out.push((k.value().to_string(), v.value().to_vec()));
        }
        Ok((revision, out))
    }

    fn commit(&self, revision: u64, ops: &[Op]) -> Result<()> {
        let tx = self.db.begin_write().map_err(backend)?;
        {
            let mut objects = tx.open_table(OBJECTS).map_err(backend)?;
            for op in ops {
                match op {
                    Op::Put(k, v) => {
                        objects.insert(k.as_str(), v.as_slice()).map_err(backend)?;
                    }
                    Op::Delete(k) => {
                        objects.remove(k.as_str()).map_err(backend)?;
                    }
                }
            }
            let mut meta = tx.open_table(META).map_err(backend)?;
            meta.insert(REVISION, revision).map_err(backend)?;
        }
        tx.commit().map_err(backend)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn commits_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let s = RedbStore::open(&path).unwrap();
            s.commit(
                1,
                &[Op::Put("/core/pods/a/x".into(), Arc::new(b"{}".to_vec()))],
            )
            .unwrap();
            s.commit(
                2,
                &[Op::Put("/core/pods/a/y".into(), Arc::new(b"{}".to_vec()))],
            )
            .unwrap();
            s.commit(3, &[Op::Delete("/core/pods/a/x".into())]).unwrap();
        }
        let s = RedbStore::open(&path).unwrap();
        let (rev, objs) = s.load().unwrap();
        assert_eq!(rev, 3);
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].0, "/core/pods/a/y");
    }
}
