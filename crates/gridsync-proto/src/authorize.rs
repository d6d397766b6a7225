//! Authorization of what a peer sends: the shared set, and who may change which document.
//!
//! The shared set is every path both nodes may hold. Within it, what the engine accepts from
//! the peer depends on the peer's grants for that document and on who authored each change:
//!
//! - Every change not held yet must be signed by its author: a signature of the author's
//!   device key on the change or on a later change of the same actor it leads to
//!   ([`crate::signature`]); the node verifies it against the author's certificate. So no
//!   device, relay or not, can make a change under another device's actor.
//! - `Write`: the peer's own changes (an actor naming the peer's node) are applied.
//! - `Carry` without `Write`: a store-and-forward relay. None of the changes it sends may be
//!   authored by the relay itself.
//! - otherwise (`Read` only): changes are refused; the sync state is put in automerge's
//!   read-only mode so the peer is told not to send any.
//! - Whoever sends them, changes authored by another device (relayed) are applied only if
//!   that author may write the document by its own grants, as the receiver's device directory
//!   records them ([`crate::DocumentSet::author_standing`]). So a change nobody was allowed to
//!   make is refused at every hop, whatever relays carry it.
//! - Documents with content rules (the node's device directory and revocation list) have
//!   every change checked against them first ([`crate::DocumentSet::check_content`]).
//!
//! The check decodes every chunk of the sync message *before* anything is applied, rather
//! than applying to a fork: a fork hides changes whose dependencies are missing in
//! automerge's private queue, where they would be applied later without being inspected. Each
//! chunk is parsed as a single change, or else loaded as a whole document (automerge's v2
//! sync messages send a full save), after its compressed parts were inflated against a cap
//! (`inflate_limit`). Change parts are passed on one by one as received (so a change
//! no signature in the message can reach yet can be left out); document chunks are kept as
//! received, since loading the same bytes again yields exactly the changes that were
//! inspected.

use automerge::sync::{ChunkList, Message};
use automerge::{ActorId, Automerge, Change, ChangeHash};

use crate::frame::RefusalReason;
use crate::identity::{NodeId, Scopes};
use crate::path::DocPath;
use crate::session::{AuthorStanding, SignatureCheck};
use crate::signature::{
    ChangeFacts, ChangeSignature, SignatureClaim, SignedHead, covered_changes, is_genesis_actor,
    signed_bytes,
};

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
    /// The verified signatures on each author's newest change in the message, for the node
    /// to store and hand onward.
    pub signed_heads: Vec<SignedHead>,
}

/// A whole document received in one chunk, already loaded (see [`Inspected`]).
#[derive(Debug)]
pub struct WholeDocument {
    pub doc: Automerge,
    pub bytes: Vec<u8>,
}

/// What inspection asks the node about one document's received changes.
pub trait ChangeJudge {
    /// May the device behind `author` write the document? (Its write grant, or, for the
    /// all-zero genesis actor, whether `change` is one of the deterministic genesis changes.)
    fn author_standing(&mut self, author: &ActorId, change: &ChangeHash) -> AuthorStanding;
    /// Is the claimed signature the signature of the device behind its author over its
    /// signed bytes ([`signed_bytes`] of the document and the change)?
    fn verify_signature(&mut self, claim: SignatureClaim<'_>) -> SignatureCheck;
    /// Whether the receiver holds the change already (it was checked when it arrived; a
    /// message may carry it again, as a whole saved document does).
    fn holds(&mut self, change: &ChangeHash) -> bool {
        let _ = change;
        false
    }
    /// Checks a verified signature on an author's newest change in the message against the
    /// signatures the receiver holds: a device that signed two different changes for one
    /// (actor, seq) equivocates.
    fn check_signed_head(&mut self, head: &SignedHead) -> Result<(), RefusalReason> {
        let _ = head;
        Ok(())
    }
    /// Whether the document has rules on what a change may contain (then every change is
    /// handed to [`ChangeJudge::check_content`] before its signature is checked).
    fn has_content_rules(&self) -> bool {
        false
    }
    /// Checks one change's operations against the document's rules.
    fn check_content(&mut self, change: &Change) -> Result<(), RefusalReason> {
        let _ = change;
        Ok(())
    }
}

/// Checks every change in `message` for the document at `path`, sent by the peer `sender`
/// with `sender_access` to it, before anything is applied:
///
/// 1. every change parses, and, where the document has content rules, obeys them;
/// 2. every change except the genesis changes is vouched for by a signature of its author
///    among `signatures` (the signed change or one of its descendants by the same actor,
///    see [`covered_changes`]), and every signature used verifies;
/// 3. the sender's own changes need `Write` (a carrier authors none); anyone else's need
///    their author's write grant.
pub fn inspect_changes(
    path: &DocPath,
    message: Message,
    signatures: &[ChangeSignature],
    sender: &NodeId,
    sender_access: PeerAccess,
    judge: &mut dyn ChangeJudge,
) -> Result<Inspected, RefusalReason> {
    if message.changes.is_empty() {
        return Ok(Inspected {
            message,
            whole_document: None,
            signed_heads: Vec::new(),
        });
    }
    let content_rules = judge.has_content_rules();
    let mut facts: Vec<ChangeFacts> = Vec::new();
    // What to pass on to automerge: whole chunks as received, or single change parts that
    // can be left out one by one (see `check_signatures`).
    let mut parts_out: Vec<OutgoingPart> = Vec::new();
    let mut whole_document = None;
    let single_chunk = message.changes.len() == 1;
    let mut inflate_budget = crate::inflate_limit::MAX_INFLATED_BYTES;
    for chunk in message.changes.iter() {
        // A v2 message concatenates several storage chunks in one; every part is inspected.
        let parts = storage_chunks(chunk).ok_or(RefusalReason::Malformed)?;
        let single_part = parts.len() == 1;
        for part in parts {
            // Compressed parts are inflated against a cap before automerge sees them.
            let inflated = crate::inflate_limit::inflated_len(part.bytes, inflate_budget)
                .map_err(|_| RefusalReason::Malformed)?;
            inflate_budget = inflate_budget.saturating_sub(inflated);
            if part.kind == DOCUMENT_CHUNK {
                let doc =
                    crate::apply::load_document(part.bytes).ok_or(RefusalReason::Malformed)?;
                if content_rules {
                    for change in doc.get_changes(&[]) {
                        // Genesis changes are admitted by hash (the author check).
                        if !is_genesis_actor(change.actor_id()) {
                            judge.check_content(&change)?;
                        }
                    }
                }
                facts.extend(ChangeFacts::of_document(&doc));
                parts_out.push(OutgoingPart::Document(part.bytes.to_vec()));
                if single_chunk && single_part {
                    whole_document = Some(WholeDocument {
                        doc,
                        bytes: part.bytes.to_vec(),
                    });
                }
            } else {
                let change =
                    crate::apply::parse_change(part.bytes).ok_or(RefusalReason::Malformed)?;
                if content_rules && !is_genesis_actor(change.actor_id()) {
                    judge.check_content(&change)?;
                }
                parts_out.push(OutgoingPart::Change {
                    fact: facts.len(),
                    bytes: part.bytes.to_vec(),
                });
                facts.push(FactsOf::of(&change));
            }
        }
    }
    let checked = check_signatures(path, &facts, signatures, judge)?;
    for head in &checked.signed_heads {
        judge.check_signed_head(head)?;
    }
    // One answer per actor: whether an author may write depends on who it is (the genesis
    // changes, judged by hash, aside), and a whole document carries hundreds of its changes.
    let mut by_actor: std::collections::HashMap<&ActorId, Result<(), RefusalReason>> =
        std::collections::HashMap::new();
    for (i, change) in facts.iter().enumerate() {
        if checked.left_out.contains(&i) {
            continue;
        }
        if is_genesis_actor(&change.actor) {
            check_author(change, sender, sender_access, judge)?;
            continue;
        }
        let verdict = match by_actor.get(&change.actor) {
            Some(verdict) => *verdict,
            None => {
                let verdict = check_author(change, sender, sender_access, judge);
                by_actor.insert(&change.actor, verdict);
                verdict
            }
        };
        verdict?;
    }
    let chunks: Vec<Vec<u8>> = parts_out
        .into_iter()
        .filter_map(|part| match part {
            OutgoingPart::Document(bytes) => Some(bytes),
            OutgoingPart::Change { fact, bytes } => {
                (!checked.left_out.contains(&fact)).then_some(bytes)
            }
        })
        .collect();
    Ok(Inspected {
        message: Message {
            changes: ChunkList::from(chunks),
            ..message
        },
        whole_document: whole_document.filter(|_| checked.left_out.is_empty()),
        signed_heads: checked.signed_heads,
    })
}

/// A received storage chunk part, as passed on to automerge.
enum OutgoingPart {
    /// A whole saved document: passed on as it came.
    Document(Vec<u8>),
    /// One change (`facts[fact]`): left out when no signature in the message can vouch for
    /// it yet.
    Change { fact: usize, bytes: Vec<u8> },
}

/// Builds [`ChangeFacts`] from a parsed change.
struct FactsOf;

impl FactsOf {
    fn of(change: &Change) -> ChangeFacts {
        ChangeFacts {
            hash: change.hash(),
            actor: change.actor_id().clone(),
            seq: change.seq(),
            deps: change.deps().to_vec(),
        }
    }
}

/// What the signature check found.
struct SignatureVerdict {
    /// The verified signatures used, as heads to store.
    signed_heads: Vec<SignedHead>,
    /// Changes (indices into the facts) that no signature in the message could vouch for
    /// because the message lacks a change between them and their author's signed one: left
    /// out of what is applied, and sent again by the peer with the changes they wait for.
    left_out: std::collections::HashSet<usize>,
}

/// Requires every non-genesis change not held yet to be vouched for by a verified signature
/// of its author.
///
/// A change no signature covers is refused, unless the message depends on a change that is
/// neither in it nor held here: then the covering chain may run through that missing change
/// (automerge's sync left it out on a Bloom-filter false positive, say), so the change is
/// left out of what is applied rather than refused; the peer sends it again, with the
/// changes it waits for and the signature that covers it, once this side asks for them.
fn check_signatures(
    path: &DocPath,
    changes: &[ChangeFacts],
    signatures: &[ChangeSignature],
    judge: &mut dyn ChangeJudge,
) -> Result<SignatureVerdict, RefusalReason> {
    let covered = covered_changes(changes, signatures);
    let mut verdicts: Vec<Option<SignatureCheck>> = vec![None; signatures.len()];
    let mut signed_heads = Vec::new();
    let mut left_out = std::collections::HashSet::new();
    let mut misses_a_change: Option<bool> = None;
    for (i, (change, covering)) in changes.iter().zip(&covered).enumerate() {
        if is_genesis_actor(&change.actor) {
            // Genesis changes are unsigned; the author check admits them by hash alone.
            continue;
        }
        if covering.is_none() && judge.holds(&change.hash) {
            continue;
        }
        let Some(s) = *covering else {
            let misses = *misses_a_change.get_or_insert_with(|| {
                let in_message: std::collections::HashSet<&ChangeHash> =
                    changes.iter().map(|c| &c.hash).collect();
                changes
                    .iter()
                    .flat_map(|c| &c.deps)
                    .any(|dep| !in_message.contains(dep) && !judge.holds(dep))
            });
            if misses {
                left_out.insert(i);
                continue;
            }
            return Err(RefusalReason::BadSignature);
        };
        let verdict = match verdicts[s] {
            Some(verdict) => verdict,
            None => {
                let signature = &signatures[s];
                let verdict = judge.verify_signature(SignatureClaim {
                    author: &change.actor,
                    signed: &signed_bytes(path, &signature.hash),
                    signature: &signature.signature,
                });
                verdicts[s] = Some(verdict);
                if verdict == SignatureCheck::Valid
                    && let Some(head) = changes.iter().find(|c| c.hash == signature.hash)
                {
                    signed_heads.push(SignedHead {
                        actor: head.actor.clone(),
                        seq: head.seq,
                        signature: *signature,
                    });
                }
                verdict
            }
        };
        match verdict {
            SignatureCheck::Valid => {}
            SignatureCheck::Invalid => return Err(RefusalReason::BadSignature),
            SignatureCheck::UnknownAuthor => return Err(RefusalReason::UnknownAuthor),
        }
    }
    Ok(SignatureVerdict {
        signed_heads,
        left_out,
    })
}

/// The author rule for one change: the sender's own changes by the sender's access, anyone
/// else's by the author's own grants.
fn check_author(
    change: &ChangeFacts,
    sender: &NodeId,
    sender_access: PeerAccess,
    judge: &mut dyn ChangeJudge,
) -> Result<(), RefusalReason> {
    if NodeId::from_actor(&change.actor).as_ref() == Some(sender) {
        return match sender_access {
            PeerAccess::Write => Ok(()),
            PeerAccess::Carry => Err(RefusalReason::CarrierAuthored),
            PeerAccess::ReadOnly => Err(RefusalReason::NotWritable),
        };
    }
    match judge.author_standing(&change.actor, &change.hash) {
        AuthorStanding::MayWrite => Ok(()),
        AuthorStanding::MayNotWrite => Err(RefusalReason::UnauthorizedAuthor),
        AuthorStanding::Unknown => Err(RefusalReason::UnknownAuthor),
    }
}

/// The facts of an outgoing message's changes: which actors' newest changes it carries,
/// so the sender can attach their signatures. `None` when the message is one whole saved
/// document (it then carries every author's newest change) or does not parse.
pub fn outgoing_change_facts(message: &Message) -> Option<Vec<ChangeFacts>> {
    let mut facts = Vec::new();
    for chunk in message.changes.iter() {
        for part in storage_chunks(chunk)? {
            if part.kind == DOCUMENT_CHUNK {
                return None;
            }
            let change = crate::apply::parse_change(part.bytes)?;
            facts.push(ChangeFacts {
                hash: change.hash(),
                actor: change.actor_id().clone(),
                seq: change.seq(),
                deps: Vec::new(),
            });
        }
    }
    Some(facts)
}

use crate::inflate_limit::CHUNK_MAGIC;
/// Chunk type of a whole saved document (others are single or compressed changes).
const DOCUMENT_CHUNK: u8 = 0;

/// One storage chunk: its type and its bytes, header included.
pub(crate) struct StorageChunk<'a> {
    pub(crate) kind: u8,
    pub(crate) bytes: &'a [u8],
}

/// Splits concatenated automerge storage chunks (magic, checksum, type, LEB128 length,
/// data). `None` if the bytes are not a whole number of well-formed chunk frames; the parts
/// themselves are parsed (and their checksums verified) by automerge afterwards.
pub(crate) fn storage_chunks(mut bytes: &[u8]) -> Option<Vec<StorageChunk<'_>>> {
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
    use crate::SIGNATURE_LEN;
    use automerge::sync::{State, SyncDoc};
    use automerge::transaction::Transactable;
    use automerge::{ROOT, ReadDoc as _};
    use sha2::{Digest as _, Sha256};

    fn test_path() -> DocPath {
        DocPath::parse("s/g1/b1").expect("valid test path")
    }

    /// The unit tests' stand-in for a device signature: a digest keyed by the author's name.
    fn fake_signature(author: &ActorId, signed: &[u8]) -> [u8; SIGNATURE_LEN] {
        let mut out = [0u8; SIGNATURE_LEN];
        out[..32].copy_from_slice(&Sha256::digest([author.to_bytes(), signed].concat()));
        out[32..].copy_from_slice(&Sha256::digest([signed, author.to_bytes()].concat()));
        out
    }

    /// Every author's signature on its newest change in `doc`.
    fn signatures_of(doc: &Automerge) -> Vec<ChangeSignature> {
        let facts = ChangeFacts::of_document(doc);
        crate::signature::newest_per_actor(&facts)
            .into_iter()
            .map(|hash| {
                let actor = &facts.iter().find(|f| f.hash == hash).expect("listed").actor;
                ChangeSignature {
                    hash,
                    signature: fake_signature(actor, &signed_bytes(&test_path(), &hash)),
                }
            })
            .collect()
    }

    /// A directory in which only `vol-7` and `vol-8` may write, with the fake signatures; the
    /// receiver holds every change the message depends on and does not carry (as automerge
    /// sends to a peer that has the rest).
    struct Directory {
        carried: std::collections::HashSet<ChangeHash>,
    }

    impl Directory {
        fn for_message(message: &Message) -> Directory {
            let mut carried = std::collections::HashSet::new();
            for chunk in message.changes.iter() {
                for part in storage_chunks(chunk).unwrap_or_default() {
                    if part.kind == DOCUMENT_CHUNK {
                        if let Ok(doc) = Automerge::load(part.bytes) {
                            carried.extend(doc.get_changes_meta(&[]).iter().map(|m| m.hash));
                        }
                    } else if let Ok(change) = Change::try_from(part.bytes) {
                        carried.insert(change.hash());
                    }
                }
            }
            Directory { carried }
        }
    }

    impl ChangeJudge for Directory {
        fn holds(&mut self, change: &ChangeHash) -> bool {
            !self.carried.contains(change)
        }
        fn author_standing(&mut self, actor: &ActorId, _: &ChangeHash) -> AuthorStanding {
            match NodeId::from_actor(actor).as_ref().map(NodeId::as_str) {
                Some("vol-7" | "vol-8") => AuthorStanding::MayWrite,
                Some("vol-9") => AuthorStanding::MayNotWrite,
                _ => AuthorStanding::Unknown,
            }
        }
        fn verify_signature(&mut self, claim: SignatureClaim<'_>) -> SignatureCheck {
            if fake_signature(claim.author, claim.signed) == *claim.signature {
                SignatureCheck::Valid
            } else {
                SignatureCheck::Invalid
            }
        }
    }

    fn inspect(
        (message, signatures): (Message, Vec<ChangeSignature>),
        sender: &str,
        access: PeerAccess,
    ) -> Result<Inspected, RefusalReason> {
        let sender = NodeId::parse(sender).expect("valid test node id");
        let mut directory = Directory::for_message(&message);
        inspect_changes(
            &test_path(),
            message,
            &signatures,
            &sender,
            access,
            &mut directory,
        )
    }

    fn doc_by(actor: &str, key: &str) -> Automerge {
        let mut doc = Automerge::new().with_actor(ActorId::from(actor.as_bytes()));
        let mut tx = doc.transaction();
        tx.put(ROOT, key, 1).expect("put on root");
        tx.commit();
        doc
    }

    fn first_message(doc: &Automerge) -> (Message, Vec<ChangeSignature>) {
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
        (reply, signatures_of(&doc))
    }

    /// A document of `changes` changes by vol-7, and our sync state with a peer that holds
    /// all of it, settled: the next message carries only what is written after.
    fn synced_with_a_peer(changes: usize) -> (Automerge, State) {
        let mut doc = Automerge::new().with_actor(ActorId::from("vol-7".as_bytes()));
        for i in 0..changes {
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("k{i}"), i as i64)
                .expect("put on root");
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
        (doc, ours)
    }

    /// A message carrying only the newest change, as automerge sends to a peer that has the
    /// rest (individual change chunks rather than a whole document).
    fn incremental_message(author: &str) -> (Message, Vec<ChangeSignature>) {
        let (mut doc, mut ours) = synced_with_a_peer(6);
        doc.set_actor(ActorId::from(author.as_bytes()));
        let mut tx = doc.transaction();
        tx.put(ROOT, "new", 1).expect("put on root");
        tx.commit();
        let message = doc
            .generate_sync_message(&mut ours)
            .expect("new change to send");
        assert_eq!(message.changes.len(), 1);
        assert!(Change::try_from(message.changes.iter().next().expect("one chunk")).is_ok());
        (message, signatures_of(&doc))
    }

    fn carried(
        message: (Message, Vec<ChangeSignature>),
        carrier: &str,
    ) -> Result<Message, RefusalReason> {
        inspect(message, carrier, PeerAccess::Carry).map(|i| i.message)
    }

    #[test]
    fn incremental_changes_are_checked_one_by_one() {
        assert_eq!(
            carried(incremental_message("relay-1"), "relay-1").err(),
            Some(RefusalReason::CarrierAuthored)
        );
        let rebuilt = carried(incremental_message("vol-8"), "relay-1").expect("relayed");
        assert_eq!(rebuilt.changes.len(), 1);
    }

    #[test]
    fn carrier_cannot_author_but_may_relay() {
        let own = first_message(&doc_by("relay-1", "k"));
        assert_eq!(
            carried(own, "relay-1").err(),
            Some(RefusalReason::CarrierAuthored)
        );
        let relayed = first_message(&doc_by("vol-7", "k"));
        let rebuilt = carried(relayed, "relay-1").expect("relayed change accepted");
        assert!(!rebuilt.changes.is_empty());
    }

    #[test]
    fn a_whole_document_comes_back_loaded_with_its_bytes() {
        let original = doc_by("vol-7", "k");
        let inspected =
            inspect(first_message(&original), "relay-1", PeerAccess::Carry).expect("accepted");
        let whole = inspected.whole_document.expect("one whole document");
        assert_eq!(whole.doc.get_heads(), original.get_heads());
        let reloaded = Automerge::load(&whole.bytes).expect("the bytes are a save");
        assert_eq!(reloaded.get_heads(), original.get_heads());
        // Incremental changes are not a whole document.
        let incremental =
            inspect(incremental_message("vol-8"), "relay-1", PeerAccess::Carry).expect("accepted");
        assert!(incremental.whole_document.is_none());
    }

    /// A message carrying several new changes by different authors, as automerge's v2
    /// messages concatenate them into one chunk.
    fn several_changes_message(authors: &[&str]) -> (Message, Vec<ChangeSignature>) {
        let (mut doc, mut ours) = synced_with_a_peer(8);
        for author in authors {
            doc.set_actor(ActorId::from(author.as_bytes()));
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("by-{author}"), 1)
                .expect("put on root");
            tx.commit();
        }
        let message = doc
            .generate_sync_message(&mut ours)
            .expect("new changes to send");
        (message, signatures_of(&doc))
    }

    #[test]
    fn every_change_of_a_concatenated_chunk_is_checked() {
        let check = |message| inspect(message, "cap-1", PeerAccess::Write).map(|i| i.message);
        let fine = several_changes_message(&["vol-7", "vol-8", "cap-1"]);
        assert_eq!(fine.0.changes.len(), 1, "one chunk holding three changes");
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
        let check = |message| inspect(message, "cap-1", PeerAccess::Write).map(|i| i.message);
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
        assert_eq!(
            carried(first_message(&doc_by("vol-9", "k")), "relay-1").err(),
            Some(RefusalReason::UnauthorizedAuthor)
        );
    }

    #[test]
    fn a_change_without_its_authors_signature_is_refused() {
        // No signature at all, whoever sends it.
        let (message, _) = incremental_message("vol-8");
        assert_eq!(
            inspect((message, vec![]), "cap-1", PeerAccess::Write).err(),
            Some(RefusalReason::BadSignature)
        );
        // A carrier signing a change it made under another device's actor with its own key.
        let (message, signatures) = incremental_message("vol-8");
        let forged: Vec<ChangeSignature> = signatures
            .into_iter()
            .map(|s| ChangeSignature {
                signature: fake_signature(
                    &ActorId::from("relay-1".as_bytes()),
                    &signed_bytes(&test_path(), &s.hash),
                ),
                ..s
            })
            .collect();
        assert_eq!(
            carried((message, forged), "relay-1").err(),
            Some(RefusalReason::BadSignature)
        );
        // A signature made for another document does not carry over (replay).
        let (message, signatures) = incremental_message("vol-8");
        let other = DocPath::parse("s/g1/b2").expect("valid test path");
        let replayed: Vec<ChangeSignature> = signatures
            .into_iter()
            .map(|s| ChangeSignature {
                signature: fake_signature(
                    &ActorId::from("vol-8".as_bytes()),
                    &signed_bytes(&other, &s.hash),
                ),
                ..s
            })
            .collect();
        assert_eq!(
            carried((message, replayed), "relay-1").err(),
            Some(RefusalReason::BadSignature)
        );
    }

    #[test]
    fn one_signature_per_author_vouches_for_a_whole_document() {
        let mut doc = doc_by("vol-7", "k");
        for i in 0..20 {
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("more-{i}"), i).expect("put on root");
            tx.commit();
        }
        let (message, signatures) = first_message(&doc);
        assert_eq!(signatures.len(), 1, "one author, one signature");
        let inspected = inspect((message, signatures), "relay-1", PeerAccess::Carry)
            .expect("one signature covers all 21 changes");
        assert_eq!(inspected.signed_heads.len(), 1);
        assert_eq!(inspected.signed_heads[0].seq, 21);
    }

    #[test]
    fn a_change_cut_off_from_its_signature_by_a_missing_one_is_left_out_not_refused() {
        // vol-8 wrote five changes; the message carries the 3rd and the 5th but not the 4th
        // (automerge left it out on a Bloom-filter false positive), signed on the 5th.
        let mut doc = Automerge::new().with_actor(ActorId::from("vol-8".as_bytes()));
        for i in 0..5 {
            let mut tx = doc.transaction();
            tx.put(ROOT, format!("k{i}"), i).expect("put on root");
            tx.commit();
        }
        let changes = doc.get_changes(&[]);
        let (third, fifth) = (&changes[2], &changes[4]);
        let base = Automerge::new()
            .generate_sync_message(&mut automerge::sync::State::new())
            .expect("an opening message");
        let message = Message {
            changes: ChunkList::from(vec![third.raw_bytes().to_vec(), fifth.raw_bytes().to_vec()]),
            ..base
        };
        let signature = ChangeSignature {
            hash: fifth.hash(),
            signature: fake_signature(
                &ActorId::from("vol-8".as_bytes()),
                &signed_bytes(&test_path(), &fifth.hash()),
            ),
        };
        let mut directory = Directory::for_message(&message);
        // The receiver holds the first two changes, not the 4th.
        directory.carried.insert(changes[3].hash());
        let inspected = inspect_changes(
            &test_path(),
            message,
            &[signature],
            &NodeId::parse("cap-1").expect("valid test id"),
            PeerAccess::Write,
            &mut directory,
        )
        .expect("not refused");
        let kept: Vec<ChangeHash> = inspected
            .message
            .changes
            .iter()
            .map(|c| Change::try_from(c).expect("a change").hash())
            .collect();
        assert_eq!(kept, vec![fifth.hash()], "the 3rd waits for the 4th");
        assert_eq!(inspected.signed_heads.len(), 1);
    }
}
