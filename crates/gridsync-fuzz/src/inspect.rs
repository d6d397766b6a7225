//! Inspection of a received sync message, then applying it as the session does.

use std::collections::HashSet;
use std::sync::OnceLock;

use automerge::sync::{ChunkList, Message, State, SyncDoc as _};
use automerge::transaction::Transactable as _;
use automerge::{ActorId, Automerge, Change, ChangeHash, ROOT};
use gridsync_node::directory::DeviceDirectory;
use gridsync_proto::authorize::{ChangeJudge, PeerAccess, inspect_changes};
use gridsync_proto::signature::{
    ChangeFacts, ChangeSignature, is_genesis_actor, newest_per_actor, signed_bytes,
};
use gridsync_proto::{
    AuthorStanding, DocPath, NodeId, RefusalReason, SIGNATURE_LEN, SignatureCheck, SignatureClaim,
};
use sha2::{Digest as _, Sha256};

use crate::fixture;
use crate::input::{Input, fix_checksums};

/// The documents a message may be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Building,
    Plan,
    Directory,
    Revocations,
}

const KINDS: [(Kind, &str); 4] = [
    (Kind::Building, "s/g1/b1"),
    (Kind::Plan, "s/plan"),
    (Kind::Directory, "s/devices"),
    (Kind::Revocations, "s/revocations"),
];

/// Senders: a captain and a volunteer (who may write), a relay and a device whose changes
/// are refused (standing by first letter, see [`standing`]).
pub const SENDERS: [&str; 4] = ["cap-1", "vol-1", "relay-1", "xen-1"];
const ACCESS: [PeerAccess; 3] = [PeerAccess::Write, PeerAccess::Carry, PeerAccess::ReadOnly];

fn genesis(kind: Kind) -> Automerge {
    match kind {
        Kind::Building => gridsync_model::genesis(gridsync_model::DocKind::Building),
        Kind::Plan => gridsync_model::genesis(gridsync_model::DocKind::StreetPlan),
        Kind::Directory => gridsync_node::directory::genesis(),
        Kind::Revocations => gridsync_node::revocations::genesis(),
    }
}

fn genesis_hashes() -> &'static HashSet<ChangeHash> {
    static HASHES: OnceLock<HashSet<ChangeHash>> = OnceLock::new();
    HASHES.get_or_init(|| {
        KINDS
            .iter()
            .flat_map(|(k, _)| genesis(*k).get_heads())
            .collect()
    })
}

/// The documents the receiver starts from, per kind: nothing, the genesis, or the genesis
/// and one change by `vol-1`.
fn base(kind: Kind, choice: u8) -> Option<Automerge> {
    match choice % 3 {
        0 => None,
        1 => Some(genesis(kind)),
        _ => {
            let mut doc = genesis(kind).with_actor(actor("vol-1"));
            let mut tx = doc.transaction();
            tx.put(ROOT, "base", 1).expect("put on root");
            tx.commit();
            Some(doc)
        }
    }
}

pub fn actor(node: &str) -> ActorId {
    NodeId::parse(node).expect("valid node id").actor_id()
}

/// The fuzz targets' stand-in for a device signature: a digest keyed by the author.
pub fn fake_signature(author: &ActorId, signed: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut out = [0u8; SIGNATURE_LEN];
    out[..32].copy_from_slice(&Sha256::digest([author.to_bytes(), signed].concat()));
    out[32..].copy_from_slice(&Sha256::digest([signed, author.to_bytes()].concat()));
    out
}

/// Who may write, by the first letter of the node id: `c`, `v`, `o` may; `x` and `r` may
/// not; anyone else is unknown. The zero actor may for the genesis changes only; an actor
/// that is no node id never.
fn standing(author: &ActorId, change: &ChangeHash) -> AuthorStanding {
    if is_genesis_actor(author) {
        return if genesis_hashes().contains(change) {
            AuthorStanding::MayWrite
        } else {
            AuthorStanding::MayNotWrite
        };
    }
    match NodeId::from_actor(author).map(|n| n.as_str().as_bytes()[0]) {
        Some(b'c' | b'v' | b'o') => AuthorStanding::MayWrite,
        Some(b'x' | b'r') => AuthorStanding::MayNotWrite,
        Some(_) => AuthorStanding::Unknown,
        None => AuthorStanding::MayNotWrite,
    }
}

/// The receiver: its document, the fake signature scheme, and for the control documents
/// the node's real content rules against the fixture CA.
struct Judge<'a> {
    kind: Kind,
    held: Option<&'a Automerge>,
    directory: DeviceDirectory,
}

impl ChangeJudge for Judge<'_> {
    fn author_standing(&mut self, author: &ActorId, change: &ChangeHash) -> AuthorStanding {
        standing(author, change)
    }
    fn verify_signature(&mut self, claim: SignatureClaim<'_>) -> SignatureCheck {
        if standing(claim.author, &ChangeHash([0; 32])) == AuthorStanding::Unknown {
            SignatureCheck::UnknownAuthor
        } else if fake_signature(claim.author, claim.signed) == *claim.signature {
            SignatureCheck::Valid
        } else {
            SignatureCheck::Invalid
        }
    }
    fn holds(&mut self, change: &ChangeHash) -> bool {
        self.held
            .is_some_and(|doc| automerge::ReadDoc::get_change_by_hash(doc, change).is_some())
    }
    fn has_content_rules(&self) -> bool {
        matches!(self.kind, Kind::Directory | Kind::Revocations)
    }
    fn check_content(&mut self, change: &Change) -> Result<(), RefusalReason> {
        match self.kind {
            Kind::Directory => {
                gridsync_node::fuzzing::check_directory_change(change, &mut self.directory)
            }
            Kind::Revocations => gridsync_node::fuzzing::check_revocations_change(change),
            _ => Ok(()),
        }
    }
}

/// The changes in a message's chunks, parsed independently of the code under test (`None`
/// if any chunk does not parse).
fn facts_of(changes: &ChunkList) -> Option<Vec<ChangeFacts>> {
    let mut facts = Vec::new();
    for chunk in changes.iter() {
        if let Some(change) = gridsync_proto::apply::parse_change(chunk) {
            facts.push(ChangeFacts {
                hash: change.hash(),
                actor: change.actor_id().clone(),
                seq: change.seq(),
                deps: change.deps().to_vec(),
            });
        } else {
            let doc = gridsync_proto::apply::load_document(chunk)?;
            facts.extend(ChangeFacts::of_document(&doc));
        }
    }
    Some(facts)
}

/// Builds the signatures a message carries. Mode 0: a valid signature on each actor's
/// newest change; 1: only those the spec bytes list; 2: both; 3: none. Each spec is two
/// bytes (kind, change index): kind 0 signs the change validly, 1 with garbage, 2 for
/// another document (a replay), 3 names a hash outside the message.
fn signatures(
    path: &DocPath,
    facts: &[ChangeFacts],
    mode: u8,
    specs: &[u8],
) -> Vec<ChangeSignature> {
    let sign = |hash: ChangeHash, actor: &ActorId, path: &DocPath| ChangeSignature {
        hash,
        signature: fake_signature(actor, &signed_bytes(path, &hash)),
    };
    let mut out = Vec::new();
    if mode.is_multiple_of(2) {
        for hash in newest_per_actor(facts) {
            if let Some(fact) = facts.iter().find(|f| f.hash == hash) {
                out.push(sign(hash, &fact.actor, path));
            }
        }
    }
    if mode % 4 == 1 || mode % 4 == 2 {
        let other = DocPath::parse("s/g1/b2").expect("valid path");
        for spec in specs.chunks_exact(2).take(16) {
            let Some(fact) = facts.get(usize::from(spec[1]) % facts.len().max(1)) else {
                continue;
            };
            out.push(match spec[0] % 4 {
                0 => sign(fact.hash, &fact.actor, path),
                1 => ChangeSignature {
                    hash: fact.hash,
                    signature: [spec[1]; SIGNATURE_LEN],
                },
                2 => sign(fact.hash, &fact.actor, &other),
                _ => sign(ChangeHash([spec[1]; 32]), &fact.actor, path),
            });
        }
    }
    out
}

/// Input: four bytes (document: `b0 % 4`; sender `b1 % 4` and its access `(b1 >> 2) % 3`;
/// the receiver's document `b2 % 3`: none, genesis, genesis and a change; flags `b3`:
/// bit 0 repairs chunk checksums, bits 1-2 the signature mode), a length-prefixed automerge
/// sync message, then signature specs (see [`signatures`]).
///
/// The message is inspected by [`inspect_changes`] as the session does; when it passes, it
/// is applied as the session applies it (a whole document new to the receiver is adopted,
/// anything else received into the held document).
///
/// Invariants: inspection of the same message answers the same twice; a message that
/// applies adds only changes that inspection saw, each by an author who may write the
/// document (the sender with write access, or a writer by its standing); one that does not
/// apply leaves the document as it was; a whole document comes back as its bytes load; the
/// result saves and loads to the same heads.
pub fn inspect_and_apply(data: &[u8]) {
    let mut input = Input::new(data);
    let (kind, path) = KINDS[usize::from(input.byte() % 4)];
    let who = input.byte();
    let sender = NodeId::parse(SENDERS[usize::from(who % 4)]).expect("valid sender");
    let access = ACCESS[usize::from((who >> 2) % 3)];
    let base_choice = input.byte();
    let flags = input.byte();
    let Ok(mut message) = Message::decode(input.slice()) else {
        return;
    };
    let specs = input.rest();
    if flags & 1 != 0 {
        let fixed: Vec<Vec<u8>> = message.changes.iter().map(fix_checksums).collect();
        message.changes = ChunkList::from(fixed);
    }
    let path = DocPath::parse(path).expect("valid path");
    let held = base(kind, base_choice);
    let facts = facts_of(&message.changes).unwrap_or_default();
    let signatures = signatures(&path, &facts, flags >> 1, specs);

    let inspect = |message: Message| {
        let mut judge = Judge {
            kind,
            held: held.as_ref(),
            directory: directory_for(held.as_ref()),
        };
        inspect_changes(&path, message, &signatures, &sender, access, &mut judge)
    };
    // Compared by their chunks: automerge's encoder asserts (in debug builds) that heads are
    // sorted, which a received message need not be, and the session never re-encodes one.
    let chunks = |m: &Message| m.changes.iter().map(<[u8]>::to_vec).collect::<Vec<_>>();
    let again = inspect(message.clone()).map(|i| chunks(&i.message));
    let inspected = match inspect(message) {
        Ok(inspected) => inspected,
        Err(reason) => {
            assert_eq!(again.err(), Some(reason), "inspection is deterministic");
            return;
        }
    };
    assert_eq!(
        again.ok(),
        Some(chunks(&inspected.message)),
        "inspection is deterministic"
    );
    let seen: HashSet<ChangeHash> = facts_of(&inspected.message.changes)
        .expect("inspected chunks parse")
        .iter()
        .map(|f| f.hash)
        .collect();

    let mut state = State::new();
    let mut message = inspected.message;
    let before = held.as_ref().map(Automerge::get_heads).unwrap_or_default();
    let doc = match (held.clone(), inspected.whole_document) {
        (None, Some(whole)) => {
            let reloaded = Automerge::load(&whole.bytes).expect("a whole document's bytes load");
            assert_eq!(reloaded.get_heads(), whole.doc.get_heads());
            let mut doc = whole.doc;
            let heads = doc.get_heads();
            message.changes = ChunkList::empty();
            if doc.receive_sync_message(&mut state, message).is_err() {
                assert_eq!(doc.get_heads(), heads, "a failed message changes nothing");
            }
            doc
        }
        (held, _) => {
            let mut doc = held.unwrap_or_default();
            if doc.receive_sync_message(&mut state, message).is_err() {
                assert_eq!(doc.get_heads(), before, "a failed message changes nothing");
                return;
            }
            doc
        }
    };
    for change in doc.get_changes(&before) {
        assert!(
            seen.contains(&change.hash()),
            "an applied change was inspected"
        );
        let own = NodeId::from_actor(change.actor_id()).as_ref() == Some(&sender);
        if own {
            assert_eq!(
                access,
                PeerAccess::Write,
                "the sender's own changes need write"
            );
        } else {
            assert_eq!(
                standing(change.actor_id(), &change.hash()),
                AuthorStanding::MayWrite,
                "a relayed change's author may write"
            );
        }
    }
    let saved = Automerge::load(&doc.save()).expect("a document saves and loads");
    assert_eq!(saved.get_heads(), doc.get_heads());
}

/// The directory the content rules consult: the held directory document's entries, if any.
fn directory_for(held: Option<&Automerge>) -> DeviceDirectory {
    let mut directory = DeviceDirectory::default();
    directory.set_ca(fixture::ca_cert_der());
    if let Some(doc) = held {
        directory.refresh(doc, fixture::ca_cert_der());
    }
    directory
}
