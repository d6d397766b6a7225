//! The documents held in memory and the heads index of every stored one: loading on demand,
//! evicting the least recently used beyond the cache limit (only once durable), and the
//! inventory items a session summarises them by.

use super::*;

impl Replica {
    /// Every document path held, in the store or in memory, sorted.
    pub fn doc_paths(&self) -> Result<Vec<DocPath>, ReplicaError> {
        Ok(self.held_paths())
    }

    /// Every document path held, sorted; reads no document.
    pub fn held_paths(&self) -> Vec<DocPath> {
        let mut paths: Vec<DocPath> = self.known_heads.keys().cloned().collect();
        paths.extend(
            self.docs
                .keys()
                .filter(|p| !self.known_heads.contains_key(*p))
                .cloned(),
        );
        paths.sort();
        paths
    }

    /// A held document's inventory item, made again only when its heads changed since the
    /// last time (see `inventory_items`); `None` if the document is not held.
    pub fn inventory_item(&mut self, path: &DocPath) -> Option<InventoryItem> {
        let loaded;
        let heads: &[ChangeHash] = match self.docs.get(path) {
            Some(doc) => {
                loaded = doc.get_heads();
                &loaded
            }
            None => self.known_heads.get(path)?,
        };
        if let Some((made_from, item)) = self.inventory_items.get(path)
            && made_from.as_slice() == heads
        {
            return Some(*item);
        }
        let item = InventoryItem::of(path, heads);
        self.inventory_items
            .insert(path.clone(), (heads.to_vec(), item));
        Some(item)
    }

    /// The inventory items of every held document `shared` accepts, in path order. Walks
    /// the heads index once (no path list to build and sort, no lookup per path) and makes
    /// items only for documents whose heads changed since their item was made.
    pub fn inventory_items(
        &mut self,
        shared: &dyn Fn(&DocPath) -> bool,
    ) -> Vec<(DocPath, InventoryItem)> {
        let mut items = Vec::with_capacity(self.known_heads.len());
        let mut made = Vec::new();
        // Both maps are in path order: the cached item of `path`, if any, is the next one
        // at or after it.
        let mut cached = self.inventory_items.iter().peekable();
        for (path, stored) in &self.known_heads {
            while cached.next_if(|(p, _)| *p < path).is_some() {}
            if !shared(path) {
                continue;
            }
            // A loaded document may be ahead of the index until its changes are stored.
            let loaded;
            let heads: &[ChangeHash] = match self.docs.get(path) {
                Some(doc) => {
                    loaded = doc.get_heads();
                    &loaded
                }
                None => stored,
            };
            let item = match cached.peek() {
                Some((p, (made_from, item))) if *p == path && made_from.as_slice() == heads => {
                    *item
                }
                _ => {
                    let item = InventoryItem::of(path, heads);
                    made.push((path.clone(), (heads.to_vec(), item)));
                    item
                }
            };
            items.push((path.clone(), item));
        }
        self.inventory_items.extend(made);
        // Documents created here and not yet stored are loaded but not in the index yet.
        let unindexed: Vec<DocPath> = self
            .docs
            .keys()
            .filter(|p| !self.known_heads.contains_key(*p) && shared(p))
            .cloned()
            .collect();
        for path in unindexed {
            if let Some(item) = self.inventory_item(&path) {
                items.push((path, item));
            }
        }
        items
    }

    /// Records `heads` as a held, unloaded document's (tests that need many documents
    /// without writing them all through the store).
    #[cfg(test)]
    pub(crate) fn index_heads_for_test(&mut self, path: DocPath, heads: Vec<ChangeHash>) {
        self.known_heads.insert(path, heads);
    }

    /// The heads of a held document without loading it.
    pub fn known_heads(&self, path: &DocPath) -> Option<Vec<ChangeHash>> {
        match self.docs.get(path) {
            Some(doc) => Some(doc.get_heads()),
            None => self.known_heads.get(path).cloned(),
        }
    }

    /// Reads every document's heads from the store; documents whose heads the store does
    /// not know (written by an older gridsync) are loaded once and their heads recorded.
    pub(super) fn read_known_heads(&mut self) -> Result<(), ReplicaError> {
        let mut unknown = Vec::new();
        for (path, heads) in self.store.doc_heads()? {
            match heads {
                Some(heads) => {
                    self.known_heads.insert(path, heads);
                }
                None => unknown.push(path),
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        tracing::info!(
            documents = unknown.len(),
            "recording the heads of documents stored without them (once)"
        );
        let mut found = Vec::with_capacity(unknown.len());
        for path in unknown {
            if let Some(doc) = self.store.load_doc(&path)? {
                found.push((path, doc.get_heads()));
            }
        }
        self.store.record_heads(&found)?;
        self.known_heads.extend(found);
        Ok(())
    }

    /// Keeps at most `limit` documents loaded (the least recently used are unloaded once
    /// their writes are durable); `None` keeps every loaded document.
    pub fn set_cache_limit(&mut self, limit: Option<usize>) {
        self.cache_limit = limit;
    }

    /// Unloads the least recently used documents past the cache limit, keeping `keep` and
    /// any whose state is not durable yet: changes received into memory and not yet handed
    /// to the store (their heads differ from the index), or staged and not yet committed.
    pub(super) fn evict_beyond_limit(&mut self, keep: &DocPath) {
        let Some(limit) = self.cache_limit else {
            return;
        };
        if self.docs.len() < limit {
            return;
        }
        // Unload a tenth at once, so the scan is paid once per many loads.
        let target = limit - limit / 10 - 1;
        let mut candidates: Vec<(u64, DocPath)> = self
            .docs
            .keys()
            .filter(|p| *p != keep)
            .filter(|p| {
                let stored = self.known_heads.get(*p).map(Vec::as_slice).unwrap_or(&[]);
                self.docs
                    .get(*p)
                    .is_some_and(|doc| doc.get_heads() == stored)
            })
            .filter(|p| match (self.staged.get(*p), &self.writer) {
                (Some(ticket), Some(writer)) => writer.is_settled(*ticket),
                _ => true,
            })
            .map(|p| (self.last_use.get(p).copied().unwrap_or(0), p.clone()))
            .collect();
        candidates.sort_unstable();
        let excess = self.docs.len().saturating_sub(target);
        for (_, path) in candidates.into_iter().take(excess) {
            self.docs.remove(&path);
            self.last_use.remove(&path);
            self.staged.remove(&path);
        }
    }

    pub(super) fn touch(&mut self, path: &DocPath) {
        if self.cache_limit.is_some() {
            self.use_clock += 1;
            self.last_use.insert(path.clone(), self.use_clock);
        }
    }

    /// The current heads of the document at `path`, `None` if it is not held. Loads no
    /// document (the heads of unloaded documents are kept in an index).
    pub fn heads(&mut self, path: &DocPath) -> Result<Option<Vec<ChangeHash>>, ReplicaError> {
        self.recover_failed_writes();
        Ok(self.known_heads(path))
    }

    /// The document at `path`, loading it from the store on first use.
    pub fn doc(&mut self, path: &DocPath) -> Result<Option<&Automerge>, ReplicaError> {
        self.ensure_loaded(path)?;
        Ok(self.docs.get(path))
    }

    /// When this node first held each change of the document at `path` (its provenance), for
    /// the clock rule of [`gridsync_model::clock`]; changes with no recorded arrival (written
    /// here, or arrived and not yet committed) count as first seen at `now_ms`. `None` when
    /// the document is not held.
    pub fn first_sight(
        &mut self,
        path: &DocPath,
        now_ms: i64,
    ) -> Result<Option<gridsync_model::FirstSight>, ReplicaError> {
        self.ensure_loaded(path)?;
        let Some(doc) = self.docs.get(path) else {
            return Ok(None);
        };
        let arrivals = self.store.first_received(path)?;
        Ok(Some(gridsync_model::FirstSight::of_document(
            doc, arrivals, now_ms,
        )))
    }

    /// Loads every stored document into memory (a node serving peers needs them all).
    pub fn load_all(&mut self) -> Result<usize, ReplicaError> {
        for path in self.store.doc_paths()? {
            self.ensure_loaded(&path)?;
        }
        Ok(self.docs.len())
    }

    /// The documents loaded in memory: every held document after [`Replica::load_all`]
    /// without a cache limit (the CLI, simulations); a running node loads on demand.
    pub fn loaded_docs(&self) -> &BTreeMap<DocPath, Automerge> {
        &self.docs
    }

    pub(super) fn ensure_loaded(&mut self, path: &DocPath) -> Result<(), ReplicaError> {
        self.recover_failed_writes();
        if !self.docs.contains_key(path)
            && let Some(mut doc) = self.store.load_doc(path)?
        {
            doc.set_actor(self.actor.clone());
            self.insert_loaded(path, doc);
        }
        self.touch(path);
        Ok(())
    }

    /// Adds a document to memory, first unloading others past the cache limit.
    pub(super) fn insert_loaded(&mut self, path: &DocPath, doc: Automerge) {
        self.evict_beyond_limit(path);
        self.docs.insert(path.clone(), doc);
        self.touch(path);
    }

    /// Replaces the in-memory copy of `path` by what the store holds, dropping whatever was
    /// received into it and not stored (a document automerge panicked on).
    pub fn reload_from_store(&mut self, path: &DocPath) {
        self.forget_unsaved(path);
    }

    /// Replaces the in-memory copy of `path` by what the store holds (best effort: if the
    /// store cannot be read either, the document is left unloaded).
    pub(super) fn forget_unsaved(&mut self, path: &DocPath) {
        // Signatures written with the lost changes were lost with them: read them again.
        self.signatures.remove(path);
        self.docs.remove(path);
        self.last_use.remove(path);
        self.staged.remove(path);
        match self.store.load_doc(path) {
            Ok(Some(mut doc)) => {
                doc.set_actor(self.actor.clone());
                self.known_heads.insert(path.clone(), doc.get_heads());
                self.docs.insert(path.clone(), doc);
            }
            Ok(None) => {
                self.known_heads.remove(path);
            }
            Err(error) => {
                tracing::warn!(%path, %error, "cannot reload a document after a failed write");
            }
        }
    }
}
