//! The write path: every change (local, received, installed) goes to the store through
//! here, staged with the store writer on a running node or committed at once without one,
//! and the caches (sync states, derived values) beside it.

use super::*;

impl Replica {
    /// Hands writes to the node's store writer from now on (see [`crate::store_writer`]).
    pub fn use_store_writer(&mut self, writer: StoreWriterHandle) {
        self.writer = Some(writer);
    }

    /// The ticket of the last write staged with the store writer (`None` without a writer
    /// or before any write): wait on it to know the write is durable.
    pub fn last_write_ticket(&self) -> Option<WriteTicket> {
        self.writer
            .as_ref()
            .map(|w| w.last_ticket())
            .filter(|t| *t > WriteTicket::NONE)
    }

    /// Stores sync states for `peer`: staged with the store writer (after every document
    /// change staged before, so never ahead of the documents they describe), or committed
    /// now without one. A state claiming changes the loaded document no longer holds (they
    /// were lost by a failed commit) is dropped: stored, it would make the peer believe we
    /// have them.
    pub fn store_sync_states(
        &mut self,
        peer: &NodeId,
        mut states: Vec<(DocPath, Vec<u8>)>,
    ) -> Result<(), ReplicaError> {
        self.recover_failed_writes();
        states.retain(|(path, state)| {
            self.docs
                .get(path)
                .is_none_or(|doc| claims_only_held_changes(doc, state))
        });
        if states.is_empty() {
            return Ok(());
        }
        let sync_states: Vec<SyncStateWrite> = states
            .into_iter()
            .map(|(path, state)| SyncStateWrite {
                peer: peer.clone(),
                path,
                state,
            })
            .collect();
        let remembered: Vec<((NodeId, DocPath), Vec<u8>)> = match self.writer {
            Some(_) => sync_states
                .iter()
                .map(|w| ((w.peer.clone(), w.path.clone()), w.state.clone()))
                .collect(),
            None => Vec::new(),
        };
        self.write_cache(WriteBatch {
            sync_states,
            ..WriteBatch::default()
        })?;
        if let Some(ticket) = self.last_write_ticket() {
            self.forget_settled_sync_states();
            for (key, state) in remembered {
                self.staged_sync_states.insert(key, (ticket, state));
            }
        }
        Ok(())
    }

    /// The sync state last stored for `peer` and `path`: the staged one if the store writer
    /// may not have committed it yet, else the store's.
    pub fn sync_state(
        &mut self,
        peer: &NodeId,
        path: &DocPath,
    ) -> Result<Option<Vec<u8>>, ReplicaError> {
        let key = (peer.clone(), path.clone());
        if let Some((ticket, state)) = self.staged_sync_states.get(&key) {
            let settled = self.writer.as_ref().is_none_or(|w| w.is_settled(*ticket));
            if !settled {
                return Ok(Some(state.clone()));
            }
            self.staged_sync_states.remove(&key);
        }
        Ok(self.store.sync_state(peer, path)?)
    }

    /// Drops the staged sync states the store writer has settled (committed, or failed: a
    /// failed one is a lost cache entry, as after a crash).
    fn forget_settled_sync_states(&mut self) {
        if let Some(writer) = &self.writer {
            self.staged_sync_states
                .retain(|_, (ticket, _)| !writer.is_settled(*ticket));
        }
    }

    /// Writes what is only a cache (sync states, derived values): staged with the store
    /// writer, whose ticket nobody waits for (losing the newest costs one larger sync
    /// message, or a summary recomputed), or committed now without one.
    pub(super) fn write_cache(&mut self, batch: WriteBatch) -> Result<(), ReplicaError> {
        match &mut self.writer {
            Some(writer) => {
                let _cache = writer.stage(batch);
                Ok(())
            }
            None => Ok(self.store.write_batch(&batch)?),
        }
    }

    /// Stores values derived from documents (the office's building summaries): staged with
    /// the store writer, so that no fsync happens under the replica lock on a running node,
    /// or committed now without one.
    pub fn store_derived(
        &mut self,
        kind: &str,
        entries: Vec<gridsync_store::DerivedEntry>,
    ) -> Result<(), ReplicaError> {
        self.write_cache(WriteBatch {
            derived: entries.into_iter().map(|e| (kind.to_owned(), e)).collect(),
            ..WriteBatch::default()
        })
    }

    /// Deletes the derived values of `kind` whose document path is not in `keep` (documents
    /// gone, or no longer of that kind): staged with the store writer like
    /// [`Replica::store_derived`], or committed now without one. Returns how many.
    pub fn retain_derived(
        &mut self,
        kind: &str,
        keep: &std::collections::BTreeSet<DocPath>,
    ) -> Result<usize, ReplicaError> {
        let stale: Vec<(String, String)> = self
            .store
            .derived_paths(kind)?
            .into_iter()
            .filter(|path| !DocPath::parse(path).is_ok_and(|p| keep.contains(&p)))
            .map(|path| (kind.to_owned(), path))
            .collect();
        let count = stale.len();
        self.write_cache(WriteBatch {
            derived_deleted: stale,
            ..WriteBatch::default()
        })?;
        Ok(count)
    }

    /// Makes `append` durable: staged with the store writer, or committed now. Keeps the
    /// heads index current either way.
    pub(super) fn store_append(&mut self, append: DocumentAppend) -> Result<(), ReplicaError> {
        let bytes = append.chunk.len();
        let path = append.path.clone();
        let heads = append.heads.clone();
        let batch = WriteBatch {
            appends: vec![append],
            ..WriteBatch::default()
        };
        match &mut self.writer {
            Some(writer) => {
                let ticket = writer.stage(batch);
                self.staged.insert(path.clone(), ticket);
            }
            None => self.store.write_batch(&batch)?,
        }
        self.known_heads.insert(path, heads);
        self.count_appended(bytes);
        Ok(())
    }

    /// Drops from memory the documents whose staged writes failed to commit, so that memory
    /// never holds what the disk does not; they reload from the durable state on next use.
    pub(super) fn recover_failed_writes(&mut self) {
        let Some(writer) = &self.writer else {
            return;
        };
        for path in writer.take_failed_documents() {
            self.forget_unsaved(&path);
        }
    }

    /// Applies `op` to the document at `path` (created from its deterministic genesis when
    /// absent) and returns `op`'s result. Without a store writer the new changes are durable
    /// when it returns; with one (a running node) they are staged, and durable once
    /// [`Replica::last_write_ticket`] settles: a caller that acknowledges the write to a person
    /// waits for that first.
    ///
    /// `op` must be atomic (the model's operations validate first and commit one
    /// transaction). If the append to the store fails (a full disk, say), the document is
    /// reloaded from the store so memory never holds a change that was reported unsaved.
    pub fn write<R, E>(
        &mut self,
        path: &DocPath,
        kind: gridsync_model::DocKind,
        op: impl FnOnce(&mut Automerge) -> Result<R, E>,
    ) -> Result<R, ReplicaError>
    where
        ReplicaError: From<E>,
    {
        self.write_with_genesis(path, || gridsync_model::genesis(kind), op)
    }

    /// [`Replica::write`] for documents whose skeleton is not a field-model kind (the
    /// revocation list): `genesis` must be deterministic.
    pub fn write_with_genesis<R, E>(
        &mut self,
        path: &DocPath,
        genesis: impl FnOnce() -> Automerge,
        op: impl FnOnce(&mut Automerge) -> Result<R, E>,
    ) -> Result<R, ReplicaError>
    where
        ReplicaError: From<E>,
    {
        if let Some(scopes) = &self.write_scopes
            && !scopes.may_write(path)
        {
            return Err(ReplicaError::OutsideWriteScope {
                path: path.clone(),
                scopes: scopes
                    .0
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        self.ensure_loaded(path)?;
        if !self.may_store(path, !self.docs.contains_key(path)) {
            return Err(ReplicaError::StorageCap {
                documents: self.held_count(),
                max_documents: self.limits.max_documents,
                bytes: self.limits.approx_bytes,
                max_bytes: self.limits.max_store_bytes,
            });
        }
        let actor = self.actor.clone();
        let (before, is_new) = match self.docs.get(path) {
            Some(doc) => (doc.get_heads(), false),
            None => {
                let mut doc = genesis();
                doc.set_actor(actor);
                self.insert_loaded(path, doc);
                (Vec::new(), true)
            }
        };
        // Invariant: the document was loaded or inserted just above.
        let doc = self.docs.get_mut(path).expect("document present");
        let result = match op(doc) {
            Ok(result) => result,
            Err(e) => {
                if is_new {
                    self.docs.remove(path);
                }
                return Err(e.into());
            }
        };
        let bytes = doc.save_after(&before);
        if !bytes.is_empty() {
            let heads = doc.get_heads();
            let signed_heads = match self.sign_new_changes(path, &self.docs[path], &before) {
                Ok(signed) => signed,
                Err(e) => {
                    self.forget_unsaved(path);
                    return Err(e);
                }
            };
            self.remember_signatures(path, &signed_heads);
            let append = DocumentAppend {
                path: path.clone(),
                chunk: bytes,
                heads,
                origins: Vec::new(),
                signed_heads,
            };
            if let Err(e) = self.store_append(append) {
                // The store still holds the last durable state.
                self.forget_unsaved(path);
                return Err(e);
            }
        }
        Ok(result)
    }

    /// Records changes that arrived from a peer into `path`: appends everything after
    /// `before` to the store. Called by the node after a sync message changed a document.
    pub fn persist_since(
        &mut self,
        path: &DocPath,
        before: &[ChangeHash],
    ) -> Result<(), ReplicaError> {
        self.persist_from(path, before, None)
    }

    /// [`Replica::persist_since`] for changes that arrived from peer `via`: also records,
    /// per change, its author (from the actor id) and the peer it came through, in the same
    /// transaction.
    pub fn persist_from(
        &mut self,
        path: &DocPath,
        before: &[ChangeHash],
        via: Option<&NodeId>,
    ) -> Result<(), ReplicaError> {
        self.persist_received(path, before, via, None, Vec::new())
    }

    /// [`Replica::persist_from`] for a document that may have arrived whole: while the
    /// document is still at the received heads, the received bytes (the peer's save) are
    /// stored as they are instead of saving the document again.
    pub fn persist_received(
        &mut self,
        path: &DocPath,
        before: &[ChangeHash],
        via: Option<&NodeId>,
        received_whole: Option<gridsync_proto::ReceivedWhole>,
        signed_heads: Vec<SignedHead>,
    ) -> Result<(), ReplicaError> {
        // Kept in memory before anything else, so that the other sessions this change is
        // fanned out to hand the signatures on with it.
        self.remember_signatures(path, &signed_heads);
        if let Some(doc) = self.docs.get(path) {
            // A document new here is stored as one compressed save: `save_after(&[])` would
            // encode its changes one by one, about four times the bytes (and the time) for a
            // building received whole in an initial sync. The store reads a save followed by
            // change chunks as one document.
            let bytes = match received_whole {
                Some(whole) if before.is_empty() && whole.heads == doc.get_heads() => whole.bytes,
                _ if before.is_empty() => doc.save(),
                _ => doc.save_after(before),
            };
            let origins: Vec<gridsync_store::ChangeOrigin> = match via {
                None => Vec::new(),
                Some(via) => {
                    let received_ms = self.sources.clock.unix_ms() as i64;
                    doc.get_changes_meta(before)
                        .iter()
                        .map(|change| gridsync_store::ChangeOrigin {
                            path: path.clone(),
                            change_hash: change.hash.0,
                            author: author_name(&change.actor),
                            via: via.to_string(),
                            received_ms,
                        })
                        .collect()
                }
            };
            if !bytes.is_empty() {
                let append = DocumentAppend {
                    path: path.clone(),
                    chunk: bytes,
                    heads: doc.get_heads(),
                    origins,
                    signed_heads,
                };
                if let Err(e) = self.store_append(append) {
                    // Memory must not hold what the disk does not: drop the unsaved changes
                    // by reloading the durable state. The peer will offer them again.
                    self.forget_unsaved(path);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Installs a whole document this replica does not hold yet, handed out with the
    /// device (a street plan at enrollment): `saved` must be `doc.save()`'s bytes, which are
    /// stored as they are. Nothing is loaded or saved again.
    pub fn install_document(
        &mut self,
        path: &DocPath,
        doc: Automerge,
        saved: Vec<u8>,
        signed_heads: Vec<SignedHead>,
    ) -> Result<(), ReplicaError> {
        self.remember_signatures(path, &signed_heads);
        let append = DocumentAppend {
            path: path.clone(),
            chunk: saved,
            heads: doc.get_heads(),
            origins: Vec::new(),
            signed_heads,
        };
        self.store_append(append)?;
        let mut doc = doc;
        doc.set_actor(self.actor.clone());
        self.insert_loaded(path, doc);
        Ok(())
    }

    /// Mutable access to a loaded document, creating an empty one if absent, for the sync
    /// engine (which receives a peer's history, genesis included).
    pub fn doc_mut_or_create(&mut self, path: &DocPath) -> &mut Automerge {
        if let Err(error) = self.ensure_loaded(path) {
            // Receiving into an empty copy is still correct (automerge merges by hash); the
            // stored changes join when the document is next loaded from the store.
            tracing::warn!(%path, %error, "cannot load a stored document; receiving into an empty copy");
        }
        if !self.docs.contains_key(path) {
            let empty = Automerge::new().with_actor(self.actor.clone());
            self.insert_loaded(path, empty);
        }
        // Invariant: present, loaded or inserted just above.
        self.docs.get_mut(path).expect("document present")
    }

    /// Merges another replica's copy of a document into this one (an offline exchange, by
    /// file or in-process) and stores what was new. Returns whether anything changed.
    pub fn merge_doc(
        &mut self,
        path: &DocPath,
        other: &Automerge,
        signed_heads: Vec<SignedHead>,
    ) -> Result<bool, ReplicaError> {
        self.ensure_loaded(path)?;
        let doc = self.doc_mut_or_create(path);
        let before = doc.get_heads();
        let mut incoming = other.fork();
        doc.merge(&mut incoming)
            .map_err(|source| ReplicaError::Merge {
                path: path.clone(),
                source,
            })?;
        if doc.get_heads() == before {
            return Ok(false);
        }
        self.persist_received(path, &before, None, None, signed_heads)?;
        Ok(true)
    }
}

/// Does the encoded sync `state` claim only changes `doc` holds? A state automerge cannot
/// decode claims nothing here (it is stored as it was; the session reads it back as empty).
pub(super) fn claims_only_held_changes(doc: &Automerge, state: &[u8]) -> bool {
    automerge::sync::State::decode(state).map_or(true, |state| {
        state
            .shared_heads
            .iter()
            .all(|hash| doc.get_change_meta_by_hash(hash).is_some())
    })
}
