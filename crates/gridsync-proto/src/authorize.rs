//! Authorization of what a peer sends: the shared set, and who may change which document.
//!
//! The shared set is every path both nodes may hold. Within it, what the engine accepts from
//! the peer depends on the peer's grants for that document:
//!
//! - `Write`: changes are applied, whoever authored them (a writer may relay others' work).
//! - `Carry` without `Write`: a store-and-forward relay. Its changes are applied only if none
//!   of them was authored by the relay itself (actor id = the node id's bytes).
//! - otherwise (`Read` only): changes are refused; the sync state is put in automerge's
//!   read-only mode so the peer is told not to send any.
//!
//! The carrier check decodes every chunk of the sync message *before* anything is applied,
//! rather than applying to a fork: a fork hides changes whose dependencies are missing in
//! automerge's private queue, where they would be applied later without being inspected. Each
//! chunk is parsed as a single change, or else loaded as a whole document (automerge's v2
//! sync messages send a full save); the message is then rebuilt from the parsed changes
//! (`Change::raw_bytes`) and re-saved documents, so exactly what was inspected is applied.

use automerge::sync::{ChunkList, Message};
use automerge::{ActorId, Automerge, Change};

use crate::frame::RefusalReason;
use crate::identity::Scopes;
use crate::path::DocPath;

/// Whether both nodes may hold `path`.
pub fn is_shared(local: &Scopes, peer: &Scopes, path: &DocPath) -> bool {
    local.may_hold(path) && peer.may_hold(path)
}

/// What the peer may do to a shared document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerAccess {
    /// May author changes.
    Write,
    /// May relay others' changes but not author its own.
    Carry,
    /// May only receive.
    ReadOnly,
}

impl PeerAccess {
    /// The peer's access to `path` according to its grants.
    pub fn of(peer: &Scopes, path: &DocPath) -> Self {
        if peer.may_write(path) {
            PeerAccess::Write
        } else if peer.may_carry(path) {
            PeerAccess::Carry
        } else {
            PeerAccess::ReadOnly
        }
    }
}

/// Checks that no change in `message` was authored by `carrier`, returning the message rebuilt
/// from exactly the chunks that were inspected.
pub fn check_carried(message: Message, carrier: &ActorId) -> Result<Message, RefusalReason> {
    if message.changes.is_empty() {
        return Ok(message);
    }
    let mut chunks = Vec::with_capacity(message.changes.len());
    for chunk in message.changes.iter() {
        if let Ok(change) = Change::try_from(chunk) {
            if change.actor_id() == carrier {
                return Err(RefusalReason::CarrierAuthored);
            }
            chunks.push(change.raw_bytes().to_vec());
            continue;
        }
        let Ok(doc) = Automerge::load(chunk) else {
            return Err(RefusalReason::Malformed);
        };
        if doc
            .get_changes_meta(&[])
            .iter()
            .any(|meta| meta.actor.as_ref() == carrier)
        {
            return Err(RefusalReason::CarrierAuthored);
        }
        chunks.push(doc.save());
    }
    Ok(Message {
        changes: ChunkList::from(chunks),
        ..message
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::sync::{State, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc as _};

    fn doc_by(actor: &str, key: &str) -> Automerge {
        let mut doc = Automerge::new().with_actor(ActorId::from(actor.as_bytes()));
        let mut tx = doc.transaction();
        tx.put(ROOT, key, 1).expect("put on root");
        tx.commit();
        doc
    }

    fn first_message(doc: &Automerge) -> Message {
        // Answer an empty peer so the message carries the changes.
        let empty = Automerge::new();
        let (mut ours, mut theirs) = (State::new(), State::new());
        let hello = empty
            .generate_sync_message(&mut theirs)
            .expect("first message");
        let mut doc = doc.clone();
        doc.receive_sync_message(&mut ours, hello)
            .expect("valid message");
        let reply = doc.generate_sync_message(&mut ours).expect("reply");
        let mut check = Automerge::new();
        check
            .receive_sync_message(&mut theirs, reply.clone())
            .expect("applies");
        assert!(check.get(ROOT, "k").ok().flatten().is_some());
        reply
    }

    /// A message carrying only the newest change, as automerge sends to a peer that has the
    /// rest (individual change chunks rather than a whole document).
    fn incremental_message(author: &str) -> Message {
        let mut doc = Automerge::new().with_actor(ActorId::from("vol-7".as_bytes()));
        for i in 0..6 {
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("k{i}"), i).expect("put on root");
            tx.commit();
        }
        let mut peer = doc.fork();
        let (mut ours, mut theirs) = (State::new(), State::new());
        // Settle both states on the shared history.
        for _ in 0..4 {
            if let Some(m) = doc.generate_sync_message(&mut ours) {
                peer.receive_sync_message(&mut theirs, m).expect("applies");
            }
            if let Some(m) = peer.generate_sync_message(&mut theirs) {
                doc.receive_sync_message(&mut ours, m).expect("applies");
            }
        }
        doc.set_actor(ActorId::from(author.as_bytes()));
        let mut tx = doc.transaction();
        tx.put(ROOT, "new", 1).expect("put on root");
        tx.commit();
        let message = doc
            .generate_sync_message(&mut ours)
            .expect("new change to send");
        assert_eq!(message.changes.len(), 1);
        assert!(Change::try_from(message.changes.iter().next().expect("one chunk")).is_ok());
        message
    }

    #[test]
    fn incremental_changes_are_checked_one_by_one() {
        let relay = ActorId::from("relay-1".as_bytes());
        assert_eq!(
            check_carried(incremental_message("relay-1"), &relay).err(),
            Some(RefusalReason::CarrierAuthored)
        );
        let rebuilt = check_carried(incremental_message("vol-8"), &relay).expect("relayed");
        assert_eq!(rebuilt.changes.len(), 1);
    }

    #[test]
    fn carrier_cannot_author_but_may_relay() {
        let relay = ActorId::from("relay-1".as_bytes());
        let own = first_message(&doc_by("relay-1", "k"));
        assert_eq!(
            check_carried(own, &relay).err(),
            Some(RefusalReason::CarrierAuthored)
        );
        let relayed = first_message(&doc_by("vol-7", "k"));
        let rebuilt = check_carried(relayed, &relay).expect("relayed change accepted");
        assert!(!rebuilt.changes.is_empty());
    }
}
