//! Authorization of what a peer sends: the shared set, and who may change which document.
//!
//! The shared set is every path both nodes may hold. Within it, what the engine accepts from
//! the peer depends on the peer's grants for that document and on who authored each change:
//!
//! - `Write`: the peer's own changes are applied.
//! - `Carry` without `Write`: a store-and-forward relay. None of the changes it sends may be
//!   authored by the relay itself (actor id = the node id's bytes).
//! - otherwise (`Read` only): changes are refused; the sync state is put in automerge's
//!   read-only mode so the peer is told not to send any.
//! - Whoever sends them, changes authored by another device (relayed) are applied only if
//!   that author may write the document by its own grants, as the receiver's device directory
//!   records them ([`crate::DocumentSet::author_standing`]). So a change nobody was allowed to
//!   make is refused at every hop, whatever relays carry it.
//!
//! The check decodes every chunk of the sync message *before* anything is applied, rather
//! than applying to a fork: a fork hides changes whose dependencies are missing in
//! automerge's private queue, where they would be applied later without being inspected. Each
//! chunk is parsed as a single change, or else loaded as a whole document (automerge's v2
//! sync messages send a full save). Change chunks are re-emitted from the parsed change
//! (`Change::raw_bytes`); document chunks are kept as received, since loading the same bytes
//! again yields exactly the changes that were inspected.

use automerge::sync::{ChunkList, Message};
use automerge::{ActorId, Automerge, Change, ChangeHash};

use crate::frame::RefusalReason;
use crate::identity::Scopes;
use crate::path::DocPath;
use crate::session::AuthorStanding;

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

/// A sync message whose changes all passed inspection.
#[derive(Debug)]
pub struct Inspected {
    /// The message rebuilt from exactly the chunks that were inspected.
    pub message: Message,
    /// When the message's changes are one whole saved document (what automerge sends a
    /// peer that holds nothing of it): that document as inspection loaded it, and its bytes.
    /// A receiver holding nothing of the document can take it as it is instead of loading
    /// the same bytes a second time, and store the bytes as they came instead of saving the
    /// document again.
    pub whole_document: Option<WholeDocument>,
}

/// A whole document received in one chunk, already loaded (see [`Inspected`]).
#[derive(Debug)]
pub struct WholeDocument {
    pub doc: Automerge,
    pub bytes: Vec<u8>,
}

/// Checks every change in `message`, sent by the peer whose actor id is `sender` with
/// `sender_access` to the document: the sender's own changes need `Write`; anyone else's
/// need `author_standing` to answer [`AuthorStanding::MayWrite`].
pub fn inspect_changes(
    message: Message,
    sender: &ActorId,
    sender_access: PeerAccess,
    mut author_standing: impl FnMut(&ActorId, &ChangeHash) -> AuthorStanding,
) -> Result<Inspected, RefusalReason> {
    if message.changes.is_empty() {
        return Ok(Inspected {
            message,
            whole_document: None,
        });
    }
    let mut check = |actor: &ActorId, hash: &ChangeHash| -> Result<(), RefusalReason> {
        if actor == sender {
            return match sender_access {
                PeerAccess::Write => Ok(()),
                PeerAccess::Carry => Err(RefusalReason::CarrierAuthored),
                PeerAccess::ReadOnly => Err(RefusalReason::NotWritable),
            };
        }
        match author_standing(actor, hash) {
            AuthorStanding::MayWrite => Ok(()),
            AuthorStanding::MayNotWrite => Err(RefusalReason::UnauthorizedAuthor),
            AuthorStanding::Unknown => Err(RefusalReason::UnknownAuthor),
        }
    };
    let mut chunks = Vec::with_capacity(message.changes.len());
    let mut whole_document = None;
    let single_chunk = message.changes.len() == 1;
    let mut inflate_budget = crate::inflate_limit::MAX_INFLATED_BYTES;
    for chunk in message.changes.iter() {
        // A v2 message concatenates several storage chunks in one; every part is inspected.
        let parts = storage_chunks(chunk).ok_or(RefusalReason::Malformed)?;
        let single_part = parts.len() == 1;
        for part in parts {
            inflate_budget -= crate::inflate_limit::inflated_len(part.bytes, inflate_budget)
                .map_err(|_| RefusalReason::Malformed)?;
            if part.kind == DOCUMENT_CHUNK {
                let doc = Automerge::load(part.bytes).map_err(|_| RefusalReason::Malformed)?;
                for meta in doc.get_changes_meta(&[]) {
                    check(meta.actor.as_ref(), &meta.hash)?;
                }
                if single_chunk && single_part {
                    whole_document = Some(WholeDocument {
                        doc,
                        bytes: part.bytes.to_vec(),
                    });
                }
            } else {
                let change = Change::try_from(part.bytes).map_err(|_| RefusalReason::Malformed)?;
                check(change.actor_id(), &change.hash())?;
            }
        }
        chunks.push(chunk.to_vec());
    }
    Ok(Inspected {
        message: Message {
            changes: ChunkList::from(chunks),
            ..message
        },
        whole_document,
    })
}

/// Magic bytes opening every automerge storage chunk.
const CHUNK_MAGIC: [u8; 4] = [0x85, 0x6f, 0x4a, 0x83];
/// Chunk type of a whole saved document (others are single or compressed changes).
const DOCUMENT_CHUNK: u8 = 0;

/// One storage chunk: its type and its bytes, header included.
struct StorageChunk<'a> {
    kind: u8,
    bytes: &'a [u8],
}

/// Splits concatenated automerge storage chunks (magic, checksum, type, LEB128 length,
/// data). `None` if the bytes are not a whole number of well-formed chunk frames; the parts
/// themselves are parsed (and their checksums verified) by automerge afterwards.
fn storage_chunks(mut bytes: &[u8]) -> Option<Vec<StorageChunk<'_>>> {
    let mut parts = Vec::new();
    while !bytes.is_empty() {
        let header = bytes.get(..9)?;
        if header[..4] != CHUNK_MAGIC {
            return None;
        }
        let (len, len_bytes) = read_uleb128(&bytes[9..])?;
        let total = 9usize
            .checked_add(len_bytes)?
            .checked_add(usize::try_from(len).ok()?)?;
        let (part, rest) = bytes.split_at_checked(total)?;
        parts.push(StorageChunk {
            kind: header[8],
            bytes: part,
        });
        bytes = rest;
    }
    Some(parts)
}

/// An unsigned LEB128 value (at most 64 bits) and how many bytes it took.
fn read_uleb128(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        let low = u64::from(byte & 0x7f);
        value |= low.checked_shl(7 * i as u32)?;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
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

    /// A directory in which only `vol-7` and `vol-8` may write.
    fn directory(actor: &ActorId, _: &ChangeHash) -> AuthorStanding {
        match std::str::from_utf8(actor.to_bytes()) {
            Ok("vol-7" | "vol-8") => AuthorStanding::MayWrite,
            Ok("vol-9") => AuthorStanding::MayNotWrite,
            _ => AuthorStanding::Unknown,
        }
    }

    fn carried(message: Message, carrier: &ActorId) -> Result<Message, RefusalReason> {
        inspect_changes(message, carrier, PeerAccess::Carry, directory).map(|i| i.message)
    }

    #[test]
    fn incremental_changes_are_checked_one_by_one() {
        let relay = ActorId::from("relay-1".as_bytes());
        assert_eq!(
            carried(incremental_message("relay-1"), &relay).err(),
            Some(RefusalReason::CarrierAuthored)
        );
        let rebuilt = carried(incremental_message("vol-8"), &relay).expect("relayed");
        assert_eq!(rebuilt.changes.len(), 1);
    }

    #[test]
    fn carrier_cannot_author_but_may_relay() {
        let relay = ActorId::from("relay-1".as_bytes());
        let own = first_message(&doc_by("relay-1", "k"));
        assert_eq!(
            carried(own, &relay).err(),
            Some(RefusalReason::CarrierAuthored)
        );
        let relayed = first_message(&doc_by("vol-7", "k"));
        let rebuilt = carried(relayed, &relay).expect("relayed change accepted");
        assert!(!rebuilt.changes.is_empty());
    }

    #[test]
    fn a_whole_document_comes_back_loaded_with_its_bytes() {
        let relay = ActorId::from("relay-1".as_bytes());
        let original = doc_by("vol-7", "k");
        let inspected = inspect_changes(
            first_message(&original),
            &relay,
            PeerAccess::Carry,
            directory,
        )
        .expect("accepted");
        let whole = inspected.whole_document.expect("one whole document");
        assert_eq!(whole.doc.get_heads(), original.get_heads());
        let reloaded = Automerge::load(&whole.bytes).expect("the bytes are a save");
        assert_eq!(reloaded.get_heads(), original.get_heads());
        // Incremental changes are not a whole document.
        let incremental = inspect_changes(
            incremental_message("vol-8"),
            &relay,
            PeerAccess::Carry,
            directory,
        )
        .expect("accepted");
        assert!(incremental.whole_document.is_none());
    }

    /// A message carrying several new changes by different authors, as automerge's v2
    /// messages concatenate them into one chunk.
    fn several_changes_message(authors: &[&str]) -> Message {
        let mut doc = Automerge::new().with_actor(ActorId::from("vol-7".as_bytes()));
        for i in 0..8 {
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("k{i}"), i).expect("put on root");
            tx.commit();
        }
        let mut peer = doc.fork();
        let (mut ours, mut theirs) = (State::new(), State::new());
        for _ in 0..4 {
            if let Some(m) = doc.generate_sync_message(&mut ours) {
                peer.receive_sync_message(&mut theirs, m).expect("applies");
            }
            if let Some(m) = peer.generate_sync_message(&mut theirs) {
                doc.receive_sync_message(&mut ours, m).expect("applies");
            }
        }
        for author in authors {
            doc.set_actor(ActorId::from(author.as_bytes()));
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("by-{author}"), 1)
                .expect("put on root");
            tx.commit();
        }
        doc.generate_sync_message(&mut ours)
            .expect("new changes to send")
    }

    #[test]
    fn every_change_of_a_concatenated_chunk_is_checked() {
        let writer = ActorId::from("cap-1".as_bytes());
        let check = |message| {
            inspect_changes(message, &writer, PeerAccess::Write, directory).map(|i| i.message)
        };
        let fine = several_changes_message(&["vol-7", "vol-8", "cap-1"]);
        assert_eq!(fine.changes.len(), 1, "one chunk holding three changes");
        assert!(check(fine).is_ok());
        assert_eq!(
            check(several_changes_message(&["vol-7", "vol-9", "vol-8"])).err(),
            Some(RefusalReason::UnauthorizedAuthor)
        );
    }

    #[test]
    fn chunk_framing_is_parsed_strictly() {
        assert!(storage_chunks(&[]).is_some_and(|p| p.is_empty()));
        assert!(storage_chunks(&[1, 2, 3]).is_none());
        let doc = doc_by("vol-7", "k").save();
        let mut two = doc.clone();
        two.extend_from_slice(&doc);
        assert_eq!(storage_chunks(&two).map(|p| p.len()), Some(2));
        assert!(storage_chunks(&two[..two.len() - 1]).is_none());
        assert_eq!(read_uleb128(&[0xE5, 0x8E, 0x26]), Some((624_485, 3)));
        assert_eq!(read_uleb128(&[0x80; 11]), None);
    }

    #[test]
    fn relayed_changes_need_an_author_who_may_write() {
        let writer = ActorId::from("cap-1".as_bytes());
        let check = |message| {
            inspect_changes(message, &writer, PeerAccess::Write, directory).map(|i| i.message)
        };
        // The writer's own changes need no directory entry.
        assert!(check(first_message(&doc_by("cap-1", "k"))).is_ok());
        // Relayed: by a permitted author, by one who may not write, by an unknown one.
        assert!(check(first_message(&doc_by("vol-7", "k"))).is_ok());
        assert_eq!(
            check(first_message(&doc_by("vol-9", "k"))).err(),
            Some(RefusalReason::UnauthorizedAuthor)
        );
        assert_eq!(
            check(incremental_message("stranger")).err(),
            Some(RefusalReason::UnknownAuthor)
        );
        // The same holds when a carrier relays them.
        let relay = ActorId::from("relay-1".as_bytes());
        assert_eq!(
            carried(first_message(&doc_by("vol-9", "k")), &relay).err(),
            Some(RefusalReason::UnauthorizedAuthor)
        );
    }
}
