//! [`WriteBatch`]: everything a running node has to make durable at one moment (new bytes of
//! any number of documents with their heads and origins, and sync states) committed in one
//! transaction, so that one fsync covers all of it (group commit).

use std::collections::BTreeMap;

use automerge::ChangeHash;
use gridsync_proto::{DocPath, NodeId, SignedHead};
use rusqlite::TransactionBehavior;

use crate::documents::{DocumentSizes, compact_if_due, insert_chunk};
use crate::{ChangeOrigin, DerivedEntry, Store, StoreError};

/// New bytes of one document and what the store keeps beside them.
#[derive(Debug, Clone)]
pub struct DocumentAppend {
    pub path: DocPath,
    /// Incremental automerge bytes (`save_after`) or a whole save; an empty chunk is skipped.
    pub chunk: Vec<u8>,
    /// The document's heads once this chunk is in, so a node can list what it holds
    /// without loading documents.
    pub heads: Vec<ChangeHash>,
    /// Where the changes came from (empty for local writes).
    pub origins: Vec<ChangeOrigin>,
    /// Signatures on the newest changes of their actors among these (see
    /// [`Store::put_signatures`]): stored with the changes, never without them.
    pub signed_heads: Vec<SignedHead>,
}

impl DocumentAppend {
    /// A chunk of a local write: no provenance, no signatures.
    pub fn local(path: DocPath, chunk: Vec<u8>, heads: Vec<ChangeHash>) -> DocumentAppend {
        DocumentAppend {
            path,
            chunk,
            heads,
            origins: Vec::new(),
            signed_heads: Vec::new(),
        }
    }
}

/// One peer's sync state for one document.
#[derive(Debug, Clone)]
pub struct SyncStateWrite {
    pub peer: NodeId,
    pub path: DocPath,
    pub state: Vec<u8>,
}

/// Writes committed together. Appends to one document are applied in the order given.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    pub appends: Vec<DocumentAppend>,
    pub sync_states: Vec<SyncStateWrite>,
    /// Values derived from documents (see [`Store::put_derived`]), by kind; later entries
    /// for the same kind and path replace earlier ones.
    pub derived: Vec<(String, DerivedEntry)>,
    /// Derived values to delete, as (kind, stored path), before `derived` is written.
    pub derived_deleted: Vec<(String, String)>,
}

impl WriteBatch {
    pub fn is_empty(&self) -> bool {
        self.appends.is_empty()
            && self.sync_states.is_empty()
            && self.derived.is_empty()
            && self.derived_deleted.is_empty()
    }

    /// Moves everything of `other` after what this batch holds.
    pub fn extend(&mut self, other: WriteBatch) {
        self.appends.extend(other.appends);
        self.sync_states.extend(other.sync_states);
        self.derived.extend(other.derived);
        self.derived_deleted.extend(other.derived_deleted);
    }
}

impl Store {
    /// Commits the whole batch in one transaction: durable when it returns `Ok`, nothing of it
    /// stored on error. Documents whose chunks have grown past the compaction policy are
    /// compacted in the same transaction.
    pub fn write_batch(&mut self, batch: &WriteBatch) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut touched: BTreeMap<&DocPath, DocumentSizes> = BTreeMap::new();
        for append in &batch.appends {
            if !append.chunk.is_empty() {
                let sizes = insert_chunk(&tx, &append.path, &append.chunk, Some(&append.heads))?;
                touched.insert(&append.path, sizes);
            }
            crate::provenance::insert_origins(&tx, &append.origins)?;
            crate::signatures::insert_signatures(&tx, &append.path, &append.signed_heads)?;
        }
        for write in &batch.sync_states {
            crate::sync_states::insert_sync_state(&tx, &write.peer, &write.path, &write.state)?;
        }
        for (kind, path) in &batch.derived_deleted {
            crate::derived::delete_derived_path(&tx, kind, path)?;
        }
        for (kind, entry) in &batch.derived {
            crate::derived::insert_derived(&tx, kind, std::slice::from_ref(entry))?;
        }
        for (path, sizes) in touched {
            compact_if_due(&tx, &self.policy, path, sizes)?;
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use automerge::transaction::Transactable;
    use automerge::{Automerge, ReadDoc};

    use super::*;

    fn path(text: &str) -> DocPath {
        DocPath::parse(text).unwrap()
    }

    fn edit(doc: &mut Automerge, value: &str) -> Vec<u8> {
        let before = doc.get_heads();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "k", value).unwrap();
        tx.commit();
        doc.save_after(&before)
    }

    #[test]
    fn a_batch_stores_documents_heads_origins_and_sync_states_together() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::create(dir.path()).unwrap();
        let a = path("panhuo/grid-001/b-1");
        let b = path("panhuo/grid-001/b-2");
        let mut doc_a = Automerge::new();
        let mut doc_b = Automerge::new();
        let first = edit(&mut doc_a, "1");
        let heads_after_first = doc_a.get_heads();
        let second = edit(&mut doc_a, "2");
        let other = edit(&mut doc_b, "x");
        let peer = NodeId::parse("cap-1").unwrap();
        let batch = WriteBatch {
            appends: vec![
                DocumentAppend {
                    path: a.clone(),
                    chunk: first,
                    heads: heads_after_first,
                    origins: Vec::new(),
                    signed_heads: Vec::new(),
                },
                DocumentAppend {
                    path: b.clone(),
                    chunk: other,
                    heads: doc_b.get_heads(),
                    origins: Vec::new(),
                    signed_heads: Vec::new(),
                },
                DocumentAppend {
                    path: a.clone(),
                    chunk: second,
                    heads: doc_a.get_heads(),
                    origins: Vec::new(),
                    signed_heads: Vec::new(),
                },
            ],
            sync_states: vec![SyncStateWrite {
                peer: peer.clone(),
                path: a.clone(),
                state: vec![7, 7],
            }],
            derived: vec![(
                "test.kind".into(),
                DerivedEntry {
                    path: a.clone(),
                    source_key: vec![1],
                    value: vec![2],
                },
            )],
            // A value derived from a document no longer held goes in the same transaction.
            derived_deleted: vec![("test.kind".into(), "panhuo/grid-001/gone".into())],
        };
        store
            .put_derived(
                "test.kind",
                &[DerivedEntry {
                    path: path("panhuo/grid-001/gone"),
                    source_key: vec![9],
                    value: vec![9],
                }],
            )
            .unwrap();
        store.write_batch(&batch).unwrap();
        drop(store);

        let store = Store::open(dir.path()).unwrap();
        let loaded = store.load_doc(&a).unwrap().unwrap();
        assert_eq!(loaded.get_heads(), doc_a.get_heads());
        let value = loaded.get(automerge::ROOT, "k").unwrap().unwrap().0;
        assert_eq!(value.as_str(), Some("2"));
        let mut expected_b = doc_b.get_heads();
        expected_b.sort_unstable();
        let mut expected_a = doc_a.get_heads();
        expected_a.sort_unstable();
        assert_eq!(
            store.doc_heads().unwrap(),
            vec![(a.clone(), Some(expected_a)), (b, Some(expected_b))]
        );
        assert_eq!(store.sync_state(&peer, &a).unwrap(), Some(vec![7, 7]));
        assert_eq!(
            store.derived("test.kind").unwrap(),
            vec![DerivedEntry {
                path: a.clone(),
                source_key: vec![1],
                value: vec![2],
            }]
        );
    }

    #[test]
    fn an_append_without_heads_marks_them_unknown_and_record_heads_fills_them_in() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::create(dir.path()).unwrap();
        let a = path("panhuo/grid-001/b-1");
        let mut doc = Automerge::new();
        let chunk = edit(&mut doc, "1");
        store
            .write_batch(&WriteBatch {
                appends: vec![DocumentAppend::local(a.clone(), chunk, doc.get_heads())],
                ..WriteBatch::default()
            })
            .unwrap();
        let chunk = edit(&mut doc, "2");
        store.append(&a, &chunk).unwrap();
        assert_eq!(store.doc_heads().unwrap(), vec![(a.clone(), None)]);
        store.record_heads(&[(a.clone(), doc.get_heads())]).unwrap();
        assert_eq!(store.doc_heads().unwrap(), vec![(a, Some(doc.get_heads()))]);
    }
}
