//! The sync engine's view of a replica: [`gridsync_proto::DocumentSet`] implemented over the
//! documents a [`Replica`] holds (listed from its heads index, loaded on demand) and the sync
//! states in its store.

use automerge::{ActorId, Automerge, ChangeHash};
use gridsync_proto::{AuthorStanding, DocPath, DocumentSet, NodeId, SyncPriority};

use crate::replica::Replica;

impl DocumentSet for Replica {
    fn paths(&self) -> Vec<DocPath> {
        self.held_paths()
    }

    fn heads(&self, path: &DocPath) -> Option<Vec<ChangeHash>> {
        self.known_heads(path)
    }

    fn doc(&mut self, path: &DocPath) -> Option<&Automerge> {
        match Replica::doc(self, path) {
            Ok(doc) => doc,
            Err(error) => {
                tracing::warn!(%path, %error, "cannot load a document for a sync session");
                None
            }
        }
    }

    fn doc_mut_or_create(&mut self, path: &DocPath) -> &mut Automerge {
        Replica::doc_mut_or_create(self, path)
    }

    fn may_store(&self, path: &DocPath, new_document: bool) -> bool {
        let allowed = Replica::may_store(self, path, new_document);
        if !allowed {
            tracing::warn!(%path, new_document, "refusing changes: this device is at its storage cap");
        }
        allowed
    }

    fn load_sync_state(&mut self, peer: &NodeId, path: &DocPath) -> Option<Vec<u8>> {
        match self.store().sync_state(peer, path) {
            Ok(state) => state,
            Err(e) => {
                // A missing sync state only costs a larger first message; never fail a
                // session over it.
                tracing::warn!(%peer, %path, error = %e, "cannot read sync state; starting fresh");
                None
            }
        }
    }

    fn sync_priority(&mut self, path: &DocPath) -> SyncPriority {
        Replica::sync_priority(self, path)
    }

    fn author_standing(
        &mut self,
        author: &ActorId,
        change: &ChangeHash,
        path: &DocPath,
    ) -> AuthorStanding {
        let standing = Replica::author_standing(self, author, change, path);
        if standing != AuthorStanding::MayWrite {
            tracing::info!(%path, author = %String::from_utf8_lossy(author.to_bytes()), ?standing, "refusing a relayed change");
        }
        standing
    }
}
