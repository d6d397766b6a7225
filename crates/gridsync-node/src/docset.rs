//! The sync engine's view of a replica: [`gridsync_proto::DocumentSet`] implemented over the
//! documents a [`Replica`] holds (listed from its heads index, loaded on demand) and the sync
//! states in its store.

use automerge::{ActorId, Automerge, Change, ChangeHash};
use gridsync_proto::{
    AuthorStanding, ChangeSignature, DocPath, DocumentSet, NodeId, RefusalReason, SignatureCheck,
    SignatureClaim, SignedHead, SyncPriority,
};

use crate::replica::Replica;

impl DocumentSet for Replica {
    fn paths(&self) -> Vec<DocPath> {
        self.held_paths()
    }

    fn heads(&self, path: &DocPath) -> Option<Vec<ChangeHash>> {
        self.known_heads(path)
    }

    fn inventory_item(
        &mut self,
        path: &DocPath,
    ) -> Option<gridsync_proto::inventory::InventoryItem> {
        Replica::inventory_item(self, path)
    }

    fn inventory_items(
        &mut self,
        shared: &dyn Fn(&DocPath) -> bool,
    ) -> Vec<(DocPath, gridsync_proto::inventory::InventoryItem)> {
        Replica::inventory_items(self, shared)
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
        match self.sync_state(peer, path) {
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
            tracing::info!(%path, author = %author_label(author), ?standing, "refusing a relayed change");
        }
        standing
    }

    fn verify_signature(&mut self, path: &DocPath, claim: SignatureClaim<'_>) -> SignatureCheck {
        let check = Replica::verify_signature(self, claim);
        if check != SignatureCheck::Valid {
            tracing::info!(%path, author = %author_label(claim.author), ?check, "refusing changes over their signature");
        }
        check
    }

    fn signatures(&mut self, path: &DocPath) -> Vec<ChangeSignature> {
        self.signatures_for(path)
            .into_iter()
            .map(|head| head.signature)
            .collect()
    }

    fn check_signed_head(
        &mut self,
        path: &DocPath,
        head: &SignedHead,
    ) -> Result<(), RefusalReason> {
        Replica::check_signed_head(self, path, head)
    }

    fn discard_unsaved(&mut self, path: &DocPath) {
        self.reload_from_store(path);
    }

    fn signatures_received(&mut self, path: &DocPath, heads: &[SignedHead]) {
        self.remember_signatures(path, heads);
    }

    fn has_content_rules(&self, path: &DocPath) -> bool {
        Replica::has_content_rules(self, path)
    }

    fn check_content(&mut self, path: &DocPath, change: &Change) -> Result<(), RefusalReason> {
        let verdict = Replica::check_content(self, path, change);
        if let Err(reason) = verdict {
            tracing::warn!(%path, author = %author_label(change.actor_id()), %reason, "refusing a change to a street control document");
        }
        verdict
    }
}

/// An actor for logs: its node id when it names one, else its hex.
fn author_label(actor: &ActorId) -> String {
    NodeId::from_actor(actor)
        .map(|n| n.to_string())
        .unwrap_or_else(|| actor.to_hex_string())
}
