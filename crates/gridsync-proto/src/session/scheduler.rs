//! The scheduler: which documents to sync and when, owning the per-document sets (queued to
//! start, in flight, dirty, waiting for an author) within the session's bounds.

use super::*;

impl SyncSession {
    /// Whether the next queued document may start now: a pull always may; a document with
    /// changes to send needs a free slot among `max_docs_in_flight`.
    pub(super) fn can_start_next(&self) -> bool {
        if self.to_start.is_empty() {
            return false;
        }
        if self.to_start.next_is_pull() {
            return true;
        }
        let pulls = self
            .pulls
            .iter()
            .filter(|p| self.in_flight.contains(*p))
            .count();
        self.in_flight.len() - pulls < self.config.limits.max_docs_in_flight
    }

    /// Whether `path` is being synced already (tracked and not waiting in the queue).
    pub(super) fn is_started(&self, path: &DocPath) -> bool {
        self.tracked.contains_key(path) && !self.to_start.contains(path)
    }

    /// Queues `path` to start, placed by the node's priority class and then by the age of its
    /// oldest change the peer is not known to have.
    pub(super) fn enqueue(
        &mut self,
        path: DocPath,
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        if self.to_start.contains(&path) {
            return Ok(());
        }
        let mut priority = docs.sync_priority(&path);
        self.track(&path, docs)?;
        let oldest_unsynced = match (docs.doc(&path), self.tracked.get(&path)) {
            (Some(doc), Some(tracked)) => {
                // A persisted state from before a restore may name heads this copy lacks.
                // (`get_missing_deps` is a graph lookup; looking a change up by hash scans.)
                let shared: Vec<_> = tracked
                    .state
                    .shared_heads
                    .iter()
                    .filter(|h| doc.get_missing_deps(&[**h]).is_empty())
                    .copied()
                    .collect();
                let unsynced = doc.get_changes_meta(&shared);
                if priority > SyncPriority::OpenNeeds
                    && unsynced
                        .iter()
                        .any(|meta| meta.message.as_deref() == Some(URGENT_CHANGE))
                {
                    priority = SyncPriority::OpenNeeds;
                }
                unsynced
                    .iter()
                    .map(|meta| meta.timestamp)
                    .min()
                    .unwrap_or(NOTHING_TO_SEND)
            }
            _ => NOTHING_TO_SEND,
        };
        let key = (priority, oldest_unsynced);
        self.keys.insert(path.clone(), key);
        self.to_start.push(path, key);
        Ok(())
    }

    /// After `changed` changed, asks the peer again for documents refused over an unknown
    /// author: the change may have been the device directory learning that author. The sync
    /// reset makes the peer forget what it believes it sent and offer the changes again.
    pub(super) fn retry_awaiting_authors(
        &mut self,
        changed: &DocPath,
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        if self.awaiting_authors.is_empty() || self.awaiting_authors.contains(changed) {
            return Ok(());
        }
        for path in std::mem::take(&mut self.awaiting_authors) {
            self.track(&path, docs)?;
            if let Some(tracked) = self.tracked.get_mut(&path) {
                // A fresh state (only the shared heads survive) so that a message goes out
                // even while automerge believes one is in flight; the reset flag (or, before
                // the peer's capabilities are known, empty heads) makes the peer resend.
                let mut fresh = State::decode(&tracked.persisted).unwrap_or_default();
                fresh.read_only = tracked.state.read_only;
                fresh.needs_reset = true;
                tracked.state = fresh;
            }
            self.mark_dirty(path);
        }
        Ok(())
    }

    /// Marks `path` as needing a sync message, in its start key's order.
    pub(super) fn mark_dirty(&mut self, path: DocPath) {
        let key = self
            .keys
            .get(&path)
            .copied()
            .unwrap_or((SyncPriority::Routine, NOTHING_TO_SEND));
        self.dirty.insert((key, path));
    }

    /// Ensures a sync state for `path` exists, loading the persisted one.
    pub(super) fn track(
        &mut self,
        path: &DocPath,
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        if self.tracked.contains_key(path) {
            return Ok(());
        }
        if self.tracked.len() >= self.config.limits.max_tracked_docs {
            return Err(SessionError::TooManyDocs(
                self.config.limits.max_tracked_docs,
            ));
        }
        let persisted = docs.load_sync_state(&self.peer.node_id, path);
        let mut state = persisted
            .as_deref()
            .and_then(|bytes| State::decode(bytes).ok())
            .unwrap_or_default();
        state.read_only = PeerAccess::of(&self.peer.scopes, path) == PeerAccess::ReadOnly;
        self.tracked.insert(
            path.clone(),
            TrackedDoc {
                persisted: state.encode(),
                state,
            },
        );
        Ok(())
    }

    /// Starts queued documents and generates sync messages while there is room.
    pub(super) fn pump(&mut self, docs: &mut dyn DocumentSet) {
        if self.closed || !self.verified {
            return;
        }
        let max_outgoing = self.config.limits.max_outgoing_bytes;
        while self.outgoing_bytes < max_outgoing {
            let in_flight = &self.in_flight;
            self.pulls.retain(|p| in_flight.contains(p));
            if !self.can_start_next() {
                break;
            }
            let is_pull = self.to_start.next_is_pull();
            let Some(path) = self.to_start.pop() else {
                break;
            };
            if is_pull {
                self.pulls.insert(path.clone());
            }
            if let Err(error) = self.track(&path, docs) {
                self.fail(error);
                return;
            }
            // The peer's answer is awaited from now, not from its last frame.
            self.last_progress = self.last_now;
            self.in_flight.insert(path.clone());
            self.mark_dirty(path);
        }
        let empty = Automerge::new();
        while self.outgoing_bytes < max_outgoing {
            let Some((_, path)) = self.dirty.pop_first() else {
                break;
            };
            let Some(tracked) = self.tracked.get_mut(&path) else {
                continue;
            };
            let doc = docs.doc(&path).unwrap_or(&empty);
            match doc.generate_sync_message(&mut tracked.state) {
                Some(mut message) => {
                    complete_author_chains(doc, &tracked.state, &mut message);
                    let signatures = if message.changes.is_empty() {
                        Vec::new()
                    } else {
                        signatures_for(&message, docs.signatures(&path))
                    };
                    let frame = Frame::DocSync {
                        path: path.clone(),
                        message: message.encode(),
                        signatures,
                    };
                    if !self.queue(&frame) {
                        self.in_flight.remove(&path);
                    }
                }
                None => {
                    self.in_flight.remove(&path);
                }
            }
        }
        let idle = matches!(self.inventory, InventoryPhase::Done)
            && self.to_start.is_empty()
            && self.dirty.is_empty()
            && self.in_flight.is_empty();
        if idle && !self.up_to_date_reported {
            self.up_to_date_reported = true;
            self.events.push_back(SessionEvent::UpToDate);
        }
    }
}
