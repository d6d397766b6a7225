//! Values derived from documents (the office's building summaries), kept so that a restart
//! does not recompute them from every document.
//!
//! Each entry is keyed by a `kind` (which derivation, with its format version, such as
//! `office.building-summary/1`) and the document path it was derived from. Beside the value
//! lies a `source_key`: a digest, chosen by the caller, of everything the value depends on
//! (the document's heads, for instance). The store does not interpret either; the caller
//! compares the stored key with the one it would derive now and reuses the value only when
//! they are equal. Entries are a cache: losing them costs recomputation, never data, so a
//! caller treats a value it cannot decode as absent.

use std::collections::BTreeSet;

use gridsync_proto::DocPath;
use rusqlite::{OptionalExtension, TransactionBehavior};

use crate::{Store, StoreError};

/// Writes (or replaces) `entries` of `kind` inside the caller's transaction.
pub(crate) fn insert_derived(
    conn: &rusqlite::Connection,
    kind: &str,
    entries: &[DerivedEntry],
) -> Result<(), StoreError> {
    let mut statement = conn.prepare_cached(
        "INSERT INTO derived (kind, path, source_key, value) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (kind, path) DO UPDATE
         SET source_key = excluded.source_key, value = excluded.value",
    )?;
    for entry in entries {
        statement.execute((kind, entry.path.as_str(), &entry.source_key, &entry.value))?;
    }
    Ok(())
}

/// One stored derived value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DerivedEntry {
    /// The document the value was derived from.
    pub path: DocPath,
    /// Digest of what the value was derived from, as the caller computed it.
    pub source_key: Vec<u8>,
    /// The derived value, encoded by the caller.
    pub value: Vec<u8>,
}

impl Store {
    /// Stores `entries` under `kind`, replacing those of the same paths, in one transaction
    /// (one fsync for the lot). Durable when `Ok`.
    pub fn put_derived(&mut self, kind: &str, entries: &[DerivedEntry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_derived(&tx, kind, entries)?;
        tx.commit()?;
        Ok(())
    }

    /// The entry of `kind` derived from `path`, if one is stored: a point lookup, so that a
    /// caller walking many documents in chunks reads only the entries of the chunk at hand.
    pub fn derived_entry(
        &self,
        kind: &str,
        path: &DocPath,
    ) -> Result<Option<DerivedEntry>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT source_key, value FROM derived WHERE kind = ?1 AND path = ?2")?
            .query_row((kind, path.as_str()), |row| {
                Ok(DerivedEntry {
                    path: path.clone(),
                    source_key: row.get(0)?,
                    value: row.get(1)?,
                })
            })
            .optional()?)
    }

    /// Every entry of `kind`, in path order. Loads them all at once: for many large values,
    /// prefer [`Store::derived_entry`] per path.
    pub fn derived(&self, kind: &str) -> Result<Vec<DerivedEntry>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT path, source_key, value FROM derived WHERE kind = ?1 ORDER BY path",
        )?;
        let mut rows = statement.query([kind])?;
        let mut entries = Vec::new();
        while let Some(row) = rows.next()? {
            let path: String = row.get(0)?;
            entries.push(DerivedEntry {
                path: DocPath::parse(&path).map_err(|_| StoreError::BadStoredPath(path))?,
                source_key: row.get(1)?,
                value: row.get(2)?,
            });
        }
        Ok(entries)
    }

    /// Deletes the entries of `kind` derived from `paths`, in one transaction. Returns how
    /// many were deleted.
    pub fn delete_derived(&mut self, kind: &str, paths: &[DocPath]) -> Result<usize, StoreError> {
        if paths.is_empty() {
            return Ok(0);
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut deleted = 0;
        {
            let mut statement =
                tx.prepare_cached("DELETE FROM derived WHERE kind = ?1 AND path = ?2")?;
            for path in paths {
                deleted += statement.execute((kind, path.as_str()))?;
            }
        }
        tx.commit()?;
        Ok(deleted)
    }

    /// The stored paths of every entry of `kind`, as stored (a path that does not parse is
    /// listed too, so that it can be deleted).
    pub fn derived_paths(&self, kind: &str) -> Result<Vec<String>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT path FROM derived WHERE kind = ?1")?;
        let paths = statement.query_map([kind], |row| row.get::<_, String>(0))?;
        Ok(paths.collect::<Result<_, _>>()?)
    }

    /// Deletes the entries of `kind` whose path is not in `keep` (documents gone, or no longer
    /// of that kind), in one transaction. Returns how many were deleted. A stored path that
    /// does not parse is deleted too: no caller can ever ask for it.
    pub fn retain_derived(
        &mut self,
        kind: &str,
        keep: &BTreeSet<DocPath>,
    ) -> Result<usize, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let stale: Vec<String> = {
            let mut statement = tx.prepare_cached("SELECT path FROM derived WHERE kind = ?1")?;
            let paths = statement.query_map([kind], |row| row.get::<_, String>(0))?;
            let mut stale = Vec::new();
            for path in paths {
                let path = path?;
                let kept = DocPath::parse(&path).is_ok_and(|p| keep.contains(&p));
                if !kept {
                    stale.push(path);
                }
            }
            stale
        };
        {
            let mut statement =
                tx.prepare_cached("DELETE FROM derived WHERE kind = ?1 AND path = ?2")?;
            for path in &stale {
                statement.execute((kind, path))?;
            }
        }
        tx.commit()?;
        Ok(stale.len())
    }
}

/// Deletes the entry of `kind` stored under `path` inside a caller's transaction.
pub(crate) fn delete_derived_path(
    tx: &rusqlite::Transaction<'_>,
    kind: &str,
    path: &str,
) -> Result<(), StoreError> {
    tx.prepare_cached("DELETE FROM derived WHERE kind = ?1 AND path = ?2")?
        .execute((kind, path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> DocPath {
        DocPath::parse(text).expect("valid test path")
    }

    fn entry(p: &str, key: u8, value: &[u8]) -> DerivedEntry {
        DerivedEntry {
            path: path(p),
            source_key: vec![key; 32],
            value: value.to_vec(),
        }
    }

    fn new_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::create(dir.path()).expect("new store");
        (dir, store)
    }

    #[test]
    fn put_replaces_by_kind_and_path_and_survives_reopening() {
        let (dir, mut store) = new_store();
        store
            .put_derived(
                "a/1",
                &[entry("s/g/b1", 1, b"one"), entry("s/g/b2", 2, b"two")],
            )
            .expect("put");
        store
            .put_derived("b/1", &[entry("s/g/b1", 9, b"other kind")])
            .expect("put");
        store
            .put_derived("a/1", &[entry("s/g/b1", 3, b"one again")])
            .expect("replace");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(
            store.derived("a/1").expect("read"),
            vec![entry("s/g/b1", 3, b"one again"), entry("s/g/b2", 2, b"two")]
        );
        assert_eq!(
            store.derived_entry("b/1", &path("s/g/b1")).expect("read"),
            Some(entry("s/g/b1", 9, b"other kind"))
        );
        assert_eq!(
            store.derived_entry("b/1", &path("s/g/b2")).expect("read"),
            None
        );
        assert!(store.derived("c/1").expect("read").is_empty());
    }

    #[test]
    fn delete_and_retain_touch_only_their_kind() {
        let (_dir, mut store) = new_store();
        let all = [
            entry("s/g/b1", 1, b"1"),
            entry("s/g/b2", 2, b"2"),
            entry("s/g/b3", 3, b"3"),
        ];
        store.put_derived("a/1", &all).expect("put");
        store.put_derived("b/1", &all).expect("put");

        assert_eq!(
            store
                .delete_derived("a/1", &[path("s/g/b1"), path("s/g/none")])
                .expect("delete"),
            1
        );
        let keep: BTreeSet<DocPath> = [path("s/g/b3"), path("s/g/b9")].into();
        assert_eq!(store.retain_derived("a/1", &keep).expect("retain"), 1);
        assert_eq!(
            store.derived("a/1").expect("read"),
            vec![entry("s/g/b3", 3, b"3")]
        );
        assert_eq!(store.derived("b/1").expect("read"), all.to_vec());
        assert_eq!(store.retain_derived("a/1", &keep).expect("retain"), 0);
    }

    #[test]
    fn empty_batches_are_no_ops() {
        let (_dir, mut store) = new_store();
        store.put_derived("a/1", &[]).expect("put nothing");
        assert_eq!(store.delete_derived("a/1", &[]).expect("delete nothing"), 0);
        assert!(store.derived("a/1").expect("read").is_empty());
    }
}
