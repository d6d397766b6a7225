//! Change signatures: what a device signs, how a signature travels, and which changes one
//! signature vouches for.
//!
//! Every change a device authors is signed with its device key. A signature names one change
//! by hash, and the bytes signed bind the document's path ([`signed_bytes`]), so a signed
//! change cannot be replayed into another document (every building document starts from the
//! same genesis change). Because a change's hash covers its dependencies, one signature on an
//! author's newest change in a document vouches for every earlier change of that author the
//! newest one descends from: a sync message needs one signature per author, not one per
//! change ([`covered_changes`]). The engine only checks coverage and asks the node
//! ([`crate::DocumentSet::verify_signature`]) whether a signature is the author's; keys and
//! cryptography live in the node and in gridsync-net.

use std::collections::{HashMap, HashSet};

use automerge::{ActorId, ChangeHash};

use crate::path::DocPath;

/// Length of a signature: ECDSA P-256 in fixed (r ‖ s) form.
pub const SIGNATURE_LEN: usize = 64;
/// Most signatures one document sync frame may carry (one per author of the document's
/// changes in the message).
pub const MAX_SIGNATURES_PER_MESSAGE: usize = 4096;
/// Domain separation for the signed bytes, so a device signature over a change can never be
/// mistaken for one over anything else the device key signs (TLS handshakes).
const SIGNATURE_DOMAIN: &[u8] = b"gridsync change signature v1\0";

/// A signature over one change in one document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChangeSignature {
    /// The change signed.
    pub hash: ChangeHash,
    /// The author's signature over [`signed_bytes`] of the document and `hash`.
    pub signature: [u8; SIGNATURE_LEN],
}

/// A signature to check: the author it claims, the bytes it claims to sign ([`signed_bytes`]
/// of a document and a change) and the signature itself. What the engine hands the node when
/// it asks whether a received signature is the author's.
#[derive(Debug, Clone, Copy)]
pub struct SignatureClaim<'a> {
    pub author: &'a ActorId,
    pub signed: &'a [u8],
    pub signature: &'a [u8; SIGNATURE_LEN],
}

/// A verified signature on an author's newest change in a received message: what the node
/// stores so that it can hand the signature onward with the changes it vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedHead {
    pub actor: ActorId,
    /// Sequence number of the signed change among the actor's changes.
    pub seq: u64,
    pub signature: ChangeSignature,
}

/// Whether `actor` is the all-zero actor of the deterministic genesis changes, which no
/// device is and which signs nothing (the genesis changes are recognised by hash).
pub fn is_genesis_actor(actor: &ActorId) -> bool {
    let bytes = actor.to_bytes();
    bytes.len() == 16 && bytes.iter().all(|b| *b == 0)
}

/// The bytes a device signs for `hash` in the document at `path`.
pub fn signed_bytes(path: &DocPath, hash: &ChangeHash) -> Vec<u8> {
    let path = path.as_str().as_bytes();
    let mut bytes = Vec::with_capacity(SIGNATURE_DOMAIN.len() + 1 + path.len() + 32);
    bytes.extend_from_slice(SIGNATURE_DOMAIN);
    // Paths are at most 200 bytes (DocPath's bound), so the length fits a byte.
    bytes.push(path.len().min(255) as u8);
    bytes.extend_from_slice(path);
    bytes.extend_from_slice(&hash.0);
    bytes
}

/// The facts of one received change that coverage needs.
#[derive(Debug, Clone)]
pub struct ChangeFacts {
    pub hash: ChangeHash,
    pub actor: ActorId,
    pub seq: u64,
    pub deps: Vec<ChangeHash>,
}

impl ChangeFacts {
    /// The facts of every change of `doc`.
    pub fn of_document(doc: &automerge::Automerge) -> Vec<ChangeFacts> {
        doc.get_changes_meta(&[])
            .into_iter()
            .map(|meta| ChangeFacts {
                hash: meta.hash,
                actor: meta.actor.into_owned(),
                seq: meta.seq,
                deps: meta.deps,
            })
            .collect()
    }
}

/// For each signature among `signatures` whose change is in `changes`, the changes it
/// vouches for: the signed change and every change *by the same actor* it descends from
/// through changes of the message. Returns, per change index, the index of the signature
/// that covers it (`None`: uncovered). Changes outside the message end the walk; those are
/// held by the receiver already, and were checked when they arrived.
pub fn covered_changes(
    changes: &[ChangeFacts],
    signatures: &[ChangeSignature],
) -> Vec<Option<usize>> {
    let index: HashMap<ChangeHash, usize> = changes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.hash, i))
        .collect();
    let mut covered: Vec<Option<usize>> = vec![None; changes.len()];
    // Per actor, every change already walked from one of its signatures: a second signature
    // of the same actor stops where the first one's walk went (the ancestors are covered).
    let mut walked: HashMap<&ActorId, HashSet<usize>> = HashMap::new();
    for (s, signature) in signatures.iter().enumerate() {
        let Some(&start) = index.get(&signature.hash) else {
            continue;
        };
        let actor = &changes[start].actor;
        let seen = walked.entry(actor).or_default();
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if !seen.insert(i) {
                continue;
            }
            if changes[i].actor == *actor && covered[i].is_none() {
                covered[i] = Some(s);
            }
            stack.extend(changes[i].deps.iter().filter_map(|d| index.get(d).copied()));
        }
    }
    covered
}

/// For the changes of an outgoing message, the newest change of each actor: the ones whose
/// signatures the message must carry.
pub fn newest_per_actor(changes: &[ChangeFacts]) -> Vec<ChangeHash> {
    let mut newest: HashMap<&ActorId, (u64, ChangeHash)> = HashMap::new();
    for change in changes {
        let entry = newest
            .entry(&change.actor)
            .or_insert((change.seq, change.hash));
        if change.seq > entry.0 {
            *entry = (change.seq, change.hash);
        }
    }
    newest.into_values().map(|(_, hash)| hash).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(n: u8) -> ChangeHash {
        ChangeHash([n; 32])
    }

    fn change(n: u8, actor: &str, seq: u64, deps: &[u8]) -> ChangeFacts {
        ChangeFacts {
            hash: hash(n),
            actor: ActorId::from(actor.as_bytes()),
            seq,
            deps: deps.iter().map(|d| hash(*d)).collect(),
        }
    }

    fn signed(n: u8) -> ChangeSignature {
        ChangeSignature {
            hash: hash(n),
            signature: [0; SIGNATURE_LEN],
        }
    }

    #[test]
    fn one_signature_covers_the_authors_earlier_changes_through_others() {
        // a1 <- b1 <- a2 <- a3; an unrelated a-change x (a forged seq) hangs off a1.
        let changes = [
            change(1, "a", 1, &[]),
            change(2, "b", 1, &[1]),
            change(3, "a", 2, &[2]),
            change(4, "a", 3, &[3]),
            change(9, "a", 2, &[1]),
        ];
        let covered = covered_changes(&changes, &[signed(4)]);
        assert_eq!(covered, vec![Some(0), None, Some(0), Some(0), None]);
        // b's change needs b's own signature.
        let covered = covered_changes(&changes, &[signed(4), signed(2)]);
        assert_eq!(covered[1], Some(1));
        assert_eq!(
            covered[4], None,
            "a change off the signed chain stays uncovered"
        );
    }

    #[test]
    fn signatures_of_changes_outside_the_message_cover_nothing() {
        let changes = [change(1, "a", 1, &[])];
        assert_eq!(covered_changes(&changes, &[signed(7)]), vec![None]);
    }

    #[test]
    fn the_newest_change_of_each_actor_is_named() {
        let changes = [
            change(1, "a", 1, &[]),
            change(2, "a", 2, &[1]),
            change(3, "b", 4, &[2]),
        ];
        let mut newest = newest_per_actor(&changes);
        newest.sort();
        assert_eq!(newest, vec![hash(2), hash(3)]);
    }

    #[test]
    fn signed_bytes_bind_the_document() {
        let a = DocPath::parse("s/g1/b1").expect("valid test path");
        let b = DocPath::parse("s/g1/b2").expect("valid test path");
        assert_ne!(signed_bytes(&a, &hash(1)), signed_bytes(&b, &hash(1)));
        assert_ne!(signed_bytes(&a, &hash(1)), signed_bytes(&a, &hash(2)));
    }
}
