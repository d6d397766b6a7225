//! Documents: incremental chunks appended durably, loaded as snapshot plus chunks, and
//! compacted into a fresh snapshot when the chunks grow.

use std::collections::BTreeMap;

use automerge::{Automerge, ChangeHash, ReadDoc};
use gridsync_proto::DocPath;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior};

use crate::{Store, StoreError};

/// When an append folds a document's chunks into a new snapshot.
///
/// Pending chunks make loading slower and take about ten times the bytes of the same
/// changes in a compressed snapshot; compaction fixes both at the price of loading and
/// saving the whole document, which costs time proportional to the document. The trigger
/// therefore grows with the snapshot, keeping the amortized cost per append constant.
///
/// Measured with automerge 0.12 on ten-field visits (see gridsync-bench's `store_writes`): a change
/// chunk is ~280 bytes and loads in ~32 us, a visit costs ~26 bytes and ~13 us inside a
/// snapshot. With `snapshot_factor` 4 the pending chunks of a large document cost about as
/// much to load as its snapshot, and compaction adds ~40 us per append; a fixed limit of 64
/// chunks instead made a 2,500-visit building compact every 64 appends (~35 ms each) and
/// halved the batched write rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompactionPolicy {
    /// Compact once a document has more chunks than this, however small they are.
    pub max_chunks: u64,
    /// Compact once the chunks' bytes exceed this many times the snapshot's bytes...
    pub snapshot_factor: u64,
    /// ...but never below this many bytes, so that a small document is not rewritten after
    /// every few appends.
    pub min_chunk_bytes: u64,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            max_chunks: 1024,
            snapshot_factor: 4,
            min_chunk_bytes: 64 * 1024,
        }
    }
}

impl CompactionPolicy {
    /// True when a document with these sizes should be compacted now.
    pub fn is_due(&self, chunk_count: u64, chunk_bytes: u64, snapshot_bytes: u64) -> bool {
        chunk_count > self.max_chunks
            || chunk_bytes
                > snapshot_bytes
                    .saturating_mul(self.snapshot_factor)
                    .max(self.min_chunk_bytes)
    }
}

/// A document's path and its heads as recorded (`None`: not known, see [`Store::doc_heads`]).
pub type StoredHeads = (DocPath, Option<Vec<ChangeHash>>);

/// Sizes of one document row after an append.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DocumentSizes {
    id: i64,
    chunk_count: u64,
    chunk_bytes: u64,
    snapshot_bytes: u64,
}

impl Store {
    /// Replaces the compaction policy (tests and benchmarks tune it).
    pub fn set_compaction_policy(&mut self, policy: CompactionPolicy) {
        self.policy = policy;
    }

    /// All document paths, sorted byte-wise (the order of [`DocPath`]).
    pub fn doc_paths(&self) -> Result<Vec<DocPath>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT path FROM documents ORDER BY path")?;
        let rows = statement.query_map([], |row| row.get::<_, String>(0))?;
        let mut paths = Vec::new();
        for row in rows {
            let raw = row?;
            paths.push(DocPath::parse(&raw).map_err(|_| StoreError::BadStoredPath(raw))?);
        }
        Ok(paths)
    }

    /// Every document with its heads as last recorded, sorted by path; `None` where they
    /// are not known (a document written before the store kept heads, or by an append that
    /// did not give them). Lets a node list what it holds without loading any document.
    pub fn doc_heads(&self) -> Result<Vec<StoredHeads>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT path, heads FROM documents ORDER BY path")?;
        let rows = statement.query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Option<Vec<u8>>>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (raw, heads) = row?;
            let path = DocPath::parse(&raw).map_err(|_| StoreError::BadStoredPath(raw))?;
            out.push((path, heads.as_deref().and_then(decode_heads)));
        }
        Ok(out)
    }

    /// Records the heads of documents whose heads were unknown (computed by loading them),
    /// in one transaction. A document whose row is gone is skipped.
    pub fn record_heads(&mut self, items: &[(DocPath, Vec<ChangeHash>)]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut statement =
                tx.prepare_cached("UPDATE documents SET heads = ?2 WHERE path = ?1")?;
            for (path, heads) in items {
                statement.execute((path.as_str(), encode_heads(heads)))?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// True when the store holds the document.
    pub fn has_doc(&self, path: &DocPath) -> Result<bool, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM documents WHERE path = ?1")?
            .query_row([path.as_str()], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// Loads a document from its snapshot and every chunk appended since.
    pub fn load_doc(&self, path: &DocPath) -> Result<Option<Automerge>, StoreError> {
        read_document(&self.conn, path)
    }

    /// A document's stored bytes, to load elsewhere ([`load_document_bytes`]): reading them
    /// is quick, loading them is not, so a caller holding a lock around the store can load
    /// them after letting go of it, on another thread.
    pub fn doc_bytes(&self, path: &DocPath) -> Result<Option<Vec<u8>>, StoreError> {
        read_document_bytes(&self.conn, path)
    }

    /// Appends incremental automerge bytes (from `save_incremental` or `save_after`) to a
    /// document, creating it if new. Durable when it returns `Ok`. An empty chunk is
    /// ignored. The bytes are not parsed here; a chunk automerge cannot load is reported
    /// by [`Store::load_doc`] as [`StoreError::CorruptDocument`]. The document's heads are
    /// recorded as unknown; [`Store::write_batch`] records them, with provenance.
    pub fn append(&mut self, path: &DocPath, chunk: &[u8]) -> Result<(), StoreError> {
        if chunk.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let sizes = insert_chunk(&tx, path, chunk, None)?;
        compact_if_due(&tx, &self.policy, path, sizes)?;
        tx.commit()?;
        Ok(())
    }

    /// Appends many chunks, to any documents, in one transaction (one fsync). Durable when
    /// it returns `Ok`; on error none of them is stored.
    pub fn append_batch(&mut self, items: &[(DocPath, Vec<u8>)]) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut touched: BTreeMap<&DocPath, DocumentSizes> = BTreeMap::new();
        for (path, chunk) in items {
            if !chunk.is_empty() {
                touched.insert(path, insert_chunk(&tx, path, chunk, None)?);
            }
        }
        for (path, sizes) in touched {
            compact_if_due(&tx, &self.policy, path, sizes)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces a document's snapshot and chunks by `doc.save()`, atomically.
    ///
    /// Nothing stored is lost even if `doc` lags behind the store: when the stored document
    /// has changes `doc` lacks, the two are merged before saving.
    pub fn compact(&mut self, path: &DocPath, doc: &Automerge) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let (snapshot, heads) = match read_document(&tx, path)? {
            Some(mut stored)
                if stored
                    .get_heads()
                    .iter()
                    .any(|head| doc.get_change_by_hash(head).is_none()) =>
            {
                let mut merged = doc.clone();
                merged
                    .merge(&mut stored)
                    .map_err(|source| StoreError::CorruptDocument {
                        path: path.clone(),
                        source: Box::new(source),
                    })?;
                (merged.save(), merged.get_heads())
            }
            _ => (doc.save(), doc.get_heads()),
        };
        tx.prepare_cached(
            "INSERT INTO documents (path) VALUES (?1) ON CONFLICT (path) DO NOTHING",
        )?
        .execute([path.as_str()])?;
        let id: i64 = tx
            .prepare_cached("SELECT id FROM documents WHERE path = ?1")?
            .query_row([path.as_str()], |row| row.get(0))?;
        replace_with_snapshot(&tx, id, &snapshot)?;
        tx.prepare_cached("UPDATE documents SET heads = ?2 WHERE id = ?1")?
            .execute((id, encode_heads(&heads)))?;
        tx.commit()?;
        Ok(())
    }
}

/// Stores one chunk and returns the document's new sizes.
///
/// `heads` are the document's heads once the chunk is in, when the caller knows them; `None`
/// marks them unknown (the next reader that loads the document computes them).
pub(crate) fn insert_chunk(
    conn: &Connection,
    path: &DocPath,
    chunk: &[u8],
    heads: Option<&[ChangeHash]>,
) -> Result<DocumentSizes, StoreError> {
    let chunk_len = i64::try_from(chunk.len()).unwrap_or(i64::MAX);
    let heads = heads.map(encode_heads);
    let (id, chunk_count, chunk_bytes, snapshot_bytes) = conn
        .prepare_cached(
            "INSERT INTO documents (path, chunk_count, chunk_bytes, heads) VALUES (?1, 1, ?2, ?3)
             ON CONFLICT (path) DO UPDATE SET
                 chunk_count = chunk_count + 1,
                 chunk_bytes = chunk_bytes + excluded.chunk_bytes,
                 heads = excluded.heads
             RETURNING id, chunk_count, chunk_bytes, snapshot_bytes",
        )?
        .query_row((path.as_str(), chunk_len, heads), four_counts)?;
    conn.prepare_cached("INSERT INTO chunks (doc_id, bytes) VALUES (?1, ?2)")?
        .execute((id, chunk))?;
    let as_u64 = |n: i64| u64::try_from(n).unwrap_or(0);
    Ok(DocumentSizes {
        id,
        chunk_count: as_u64(chunk_count),
        chunk_bytes: as_u64(chunk_bytes),
        snapshot_bytes: as_u64(snapshot_bytes),
    })
}

/// Heads as stored: the 32-byte hashes, sorted, back to back.
fn encode_heads(heads: &[ChangeHash]) -> Vec<u8> {
    let mut sorted = heads.to_vec();
    sorted.sort_unstable();
    sorted.iter().flat_map(|h| h.0).collect()
}

/// Stored heads back to hashes; `None` for bytes that are not whole hashes (read as unknown,
/// so a damaged value costs one document load, never a wrong answer).
fn decode_heads(bytes: &[u8]) -> Option<Vec<ChangeHash>> {
    if !bytes.len().is_multiple_of(32) {
        return None;
    }
    bytes
        .chunks_exact(32)
        .map(|chunk| <[u8; 32]>::try_from(chunk).ok().map(ChangeHash))
        .collect()
}

/// Compacts the document at `path` inside the caller's transaction when its sizes after an
/// append call for it under `policy`.
pub(crate) fn compact_if_due(
    conn: &Connection,
    policy: &CompactionPolicy,
    path: &DocPath,
    sizes: DocumentSizes,
) -> Result<(), StoreError> {
    if policy.is_due(sizes.chunk_count, sizes.chunk_bytes, sizes.snapshot_bytes) {
        compact_stored(conn, path, sizes.id)?;
    }
    Ok(())
}

/// Compacts a document from what is stored, inside the caller's transaction. A document
/// whose chunks do not load is left as it is (its data stays stored; `load_doc` reports it).
fn compact_stored(conn: &Connection, path: &DocPath, id: i64) -> Result<(), StoreError> {
    match read_document(conn, path) {
        Ok(Some(doc)) => replace_with_snapshot(conn, id, &doc.save()),
        Ok(None) => Ok(()),
        Err(StoreError::CorruptDocument { path, source }) => {
            tracing::warn!(%path, error = %source, "not compacting a document whose chunks do not load");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Writes `snapshot` as the document's only content.
fn replace_with_snapshot(conn: &Connection, id: i64, snapshot: &[u8]) -> Result<(), StoreError> {
    let snapshot_len = i64::try_from(snapshot.len()).unwrap_or(i64::MAX);
    conn.prepare_cached(
        "INSERT INTO snapshots (doc_id, bytes) VALUES (?1, ?2)
         ON CONFLICT (doc_id) DO UPDATE SET bytes = excluded.bytes",
    )?
    .execute((id, snapshot))?;
    conn.prepare_cached("DELETE FROM chunks WHERE doc_id = ?1")?
        .execute([id])?;
    conn.prepare_cached(
        "UPDATE documents SET snapshot_bytes = ?2, chunk_count = 0, chunk_bytes = 0 WHERE id = ?1",
    )?
    .execute((id, snapshot_len))?;
    Ok(())
}

/// Loads a document's snapshot and chunks as one automerge byte stream.
fn read_document(conn: &Connection, path: &DocPath) -> Result<Option<Automerge>, StoreError> {
    read_document_bytes(conn, path)?
        .map(|bytes| load_document_bytes(path, &bytes))
        .transpose()
}

/// A document's stored bytes: its snapshot followed by every chunk appended since, which
/// automerge reads as one document (an empty stream is an empty document).
fn read_document_bytes(conn: &Connection, path: &DocPath) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(id) = conn
        .prepare_cached("SELECT id FROM documents WHERE path = ?1")?
        .query_row([path.as_str()], |row| row.get::<_, i64>(0))
        .optional()?
    else {
        return Ok(None);
    };
    let mut bytes: Vec<u8> = conn
        .prepare_cached("SELECT bytes FROM snapshots WHERE doc_id = ?1")?
        .query_row([id], |row| row.get(0))
        .optional()?
        .unwrap_or_default();
    {
        let mut statement =
            conn.prepare_cached("SELECT bytes FROM chunks WHERE doc_id = ?1 ORDER BY id")?;
        let mut rows = statement.query([id])?;
        while let Some(row) = rows.next()? {
            let chunk = row.get_ref(0)?.as_blob().map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Blob,
                    Box::new(e),
                )
            })?;
            bytes.extend_from_slice(chunk);
        }
    }
    Ok(Some(bytes))
}

/// Loads the bytes [`Store::doc_bytes`] gave for the document at `path`.
pub fn load_document_bytes(path: &DocPath, bytes: &[u8]) -> Result<Automerge, StoreError> {
    Automerge::load(bytes).map_err(|source| StoreError::CorruptDocument {
        path: path.clone(),
        source: Box::new(source),
    })
}

/// A row of four integers (counts and sizes), as the documents table's queries return them.
pub(crate) fn four_counts(row: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, i64, i64, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_compacts_on_count_or_bytes_above_the_floor() {
        let policy = CompactionPolicy {
            max_chunks: 4,
            snapshot_factor: 2,
            min_chunk_bytes: 100,
        };
        assert!(!policy.is_due(4, 50, 0));
        assert!(policy.is_due(5, 50, 0));
        assert!(!policy.is_due(1, 100, 0), "floor protects small documents");
        assert!(policy.is_due(1, 101, 0));
        assert!(!policy.is_due(1, 2000, 1000));
        assert!(policy.is_due(1, 2001, 1000));
        assert!(!policy.is_due(1, u64::MAX - 1, u64::MAX), "no overflow");
    }
}
