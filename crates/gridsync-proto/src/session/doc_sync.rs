//! Per-document sync: a received automerge sync message inspected, authorized, applied and
//! answered, and refusals reported.

use super::*;

impl SyncSession {
    pub(super) fn handle_doc_sync(
        &mut self,
        path: DocPath,
        bytes: &[u8],
        signatures: &[ChangeSignature],
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        let _span = tracing::debug_span!("doc_sync", peer = %self.peer.node_id, %path).entered();
        self.up_to_date_reported = false;
        if !self.is_shared(&path) {
            self.refuse(path, RefusalReason::NotShared);
            return Ok(());
        }
        let Some(mut message) = crate::apply::decode_message(bytes) else {
            self.refuse(path, RefusalReason::Malformed);
            return Ok(());
        };
        let max_heads = self.config.limits.max_heads_per_doc;
        if message.heads.len() > max_heads
            || message.need.len() > max_heads
            || message.have.len() > max_heads
            || message.have.iter().any(|h| h.last_sync.len() > max_heads)
        {
            self.refuse(path, RefusalReason::Malformed);
            return Ok(());
        }
        let mut whole_document = None;
        let mut signed_heads = Vec::new();
        match PeerAccess::of(&self.peer.scopes, &path) {
            PeerAccess::ReadOnly => {
                if !message.changes.is_empty() {
                    self.refuse(path.clone(), RefusalReason::NotWritable);
                    message.changes = automerge::sync::ChunkList::empty();
                }
            }
            access => {
                let mut judge = DocumentJudge { docs, path: &path };
                let checked = inspect_changes(
                    &path,
                    message,
                    signatures,
                    &self.peer.node_id,
                    access,
                    &mut judge,
                );
                match checked {
                    Ok(checked) => {
                        message = checked.message;
                        whole_document = checked.whole_document;
                        signed_heads = checked.signed_heads;
                    }
                    Err(reason) => {
                        if reason == RefusalReason::UnknownAuthor {
                            self.awaiting_authors.insert(path.clone());
                        }
                        self.refuse(path, reason);
                        return Ok(());
                    }
                }
            }
        }
        // automerge panics on a change out of its actor's sequence; refuse it first.
        if !message.changes.is_empty()
            && let Err(reason) = crate::sequence::check_sequences(docs.doc(&path), &message)
        {
            self.refuse(path, reason);
            return Ok(());
        }
        // A pull (the peer has nothing we lack, and lacks something of ours) of a document we
        // have not started is answered in our own order: it joins our queue, and our first
        // message for it carries the changes. The inventory may have told only the peer that
        // this document differs, so this is also how we learn it.
        let is_pull = message.changes.is_empty()
            && docs.doc(&path).is_some_and(|doc| {
                let mut ours = doc.get_heads();
                let mut theirs = message.heads.clone();
                ours.sort_unstable();
                theirs.sort_unstable();
                ours != theirs && doc.get_missing_deps(&theirs).is_empty()
            });
        if is_pull && !self.is_started(&path) {
            self.enqueue(path.clone(), docs)?;
        }
        let deferred = is_pull && self.to_start.holds_data_for(&path);
        if !deferred {
            self.to_start.remove(&path);
        }
        self.track(&path, docs)?;
        let Some(tracked) = self.tracked.get_mut(&path) else {
            return Ok(());
        };
        let before = docs.heads(&path);
        if !message.changes.is_empty() && !docs.may_store(&path, before.is_none()) {
            self.refuse(path, RefusalReason::CapacityExceeded);
            return Ok(());
        }
        let mut received_whole = None;
        let result = if message.changes.is_empty() && before.is_none() {
            // Nothing to store yet: answer from an empty document without creating one.
            Automerge::new().receive_sync_message(&mut tracked.state, message)
        } else if let Some(whole) = whole_document.filter(|_| before.is_none())
            && !tracked.state.read_only
        {
            // A document new here, sent whole, already loaded by the inspection: take it as
            // it is rather than load the same bytes again, then let automerge update the
            // sync state from the rest of the message. Seeing no changes and its own heads
            // equal to the peer's, automerge would conclude it had sent those heads itself;
            // it has not, so that one field is kept as it was (applying the changes instead
            // would not have touched it).
            let heads = whole.doc.get_heads();
            docs.adopt(&path, whole.doc);
            received_whole = Some(ReceivedWhole {
                bytes: whole.bytes,
                heads,
            });
            let last_sent_heads = tracked.state.last_sent_heads.clone();
            message.changes = automerge::sync::ChunkList::empty();
            let result = docs
                .doc_mut_or_create(&path)
                .receive_sync_message(&mut tracked.state, message);
            tracked.state.last_sent_heads = last_sent_heads;
            result
        } else {
            match crate::apply::receive_guarded(
                docs.doc_mut_or_create(&path),
                &mut tracked.state,
                message,
            ) {
                Ok(()) => Ok(()),
                Err(crate::apply::ApplyError::Refused(error)) => Err(error),
                Err(crate::apply::ApplyError::Panicked) => {
                    // The document and this sync state may be half-updated: both go, the
                    // document to be reloaded from what is durable.
                    tracing::warn!(peer = %self.peer.node_id, %path, "automerge panicked on a received message; the document is reloaded from the store");
                    docs.discard_unsaved(&path);
                    self.tracked.remove(&path);
                    self.in_flight.remove(&path);
                    self.refuse(path, RefusalReason::Malformed);
                    return Ok(());
                }
            }
        };
        if let Err(error) = result {
            tracing::info!(peer = %self.peer.node_id, %path, %error, "sync message did not apply");
            self.refuse(path, RefusalReason::Malformed);
            return Ok(());
        }
        if !signed_heads.is_empty() {
            docs.signatures_received(&path, &signed_heads);
        }
        let after = docs.heads(&path);
        let changed = after.is_some() && after != before;
        if changed {
            self.events.push_back(SessionEvent::DocumentChanged {
                path: path.clone(),
                before_heads: before.unwrap_or_default(),
                from: self.peer.node_id.clone(),
                received_whole,
                signed_heads,
            });
        }
        let encoded = tracked.state.encode();
        if encoded != tracked.persisted {
            tracked.persisted = encoded.clone();
            self.events.push_back(SessionEvent::SyncStateUpdated {
                path: path.clone(),
                state: encoded,
            });
        }
        let ours = after.unwrap_or_default();
        if tracked.state.their_heads.as_ref() == Some(&ours) {
            self.in_flight.remove(&path);
        }
        if !deferred {
            self.mark_dirty(path.clone());
        }
        if changed {
            self.retry_awaiting_authors(&path, docs)?;
        }
        Ok(())
    }

    pub(super) fn refuse(&mut self, path: DocPath, reason: RefusalReason) {
        tracing::info!(peer = %self.peer.node_id, %path, ?reason, "refused sync message");
        self.queue(&Frame::Refused {
            path: path.clone(),
            reason,
        });
        self.events
            .push_back(SessionEvent::ChangeRefused { path, reason });
    }
}

/// The node's answers about one document's received changes, for [`inspect_changes`].
struct DocumentJudge<'a> {
    docs: &'a mut dyn DocumentSet,
    path: &'a DocPath,
}

impl ChangeJudge for DocumentJudge<'_> {
    fn author_standing(
        &mut self,
        author: &ActorId,
        change: &automerge::ChangeHash,
    ) -> AuthorStanding {
        self.docs.author_standing(author, change, self.path)
    }
    fn verify_signature(&mut self, claim: SignatureClaim<'_>) -> SignatureCheck {
        self.docs.verify_signature(self.path, claim)
    }
    fn holds(&mut self, change: &automerge::ChangeHash) -> bool {
        // A graph lookup: no missing dependency means the change is in the document.
        self.docs
            .doc(self.path)
            .is_some_and(|doc| doc.get_missing_deps(&[*change]).is_empty())
    }
    fn has_content_rules(&self) -> bool {
        self.docs.has_content_rules(self.path)
    }
    fn check_signed_head(
        &mut self,
        head: &crate::signature::SignedHead,
    ) -> Result<(), RefusalReason> {
        self.docs.check_signed_head(self.path, head)
    }
    fn check_content(&mut self, change: &automerge::Change) -> Result<(), RefusalReason> {
        self.docs.check_content(self.path, change)
    }
}
