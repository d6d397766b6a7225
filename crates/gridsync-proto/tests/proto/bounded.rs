//! Bounded inputs inside sync messages: decompression bombs, and change chunks whose sequence
//! numbers skip or repeat or whose dependencies nobody has. Each is refused or held back as a
//! whole, never a panic, never a document half-applied, and the session goes on syncing.

use std::time::Instant;

use automerge::sync::{ChunkList, Message, State, SyncDoc};
use automerge::transaction::Transactable;
use automerge::{Automerge, ChangeHash, ROOT};
use gridsync_proto::frame::encode_frame;
use gridsync_proto::{Frame, RefusalReason, Role};

use gridsync_proto::testing::chunks::{checksum, chunk, uleb, zeros_deflated};
use gridsync_proto::testing::{Identity, MemoryDocs, Pair, Side, node_id, path};

const GIB: u64 = 1 << 30;

/// A compressed change chunk (type 2) inflating to 1 GiB, checksum that of the inflated change.
fn change_bomb() -> Vec<u8> {
    let (deflated, sum) = zeros_deflated(GIB);
    chunk(2, &deflated, sum)
}

/// A document chunk (type 0), checksum correct, with one op column of 1 GiB deflated.
fn document_bomb() -> Vec<u8> {
    let (column, _) = zeros_deflated(GIB);
    let mut body = Vec::new();
    uleb(1, &mut body);
    uleb(2, &mut body);
    body.extend_from_slice(b"v7");
    uleb(0, &mut body); // no heads
    uleb(0, &mut body); // no change columns
    uleb(1, &mut body); // one op column, deflated (bit 3 of the spec)
    uleb((1 << 4) | 0b1000, &mut body);
    uleb(column.len() as u64, &mut body);
    body.extend_from_slice(&column);
    chunk(0, &body, checksum(0, &body))
}

/// A sync message carrying exactly `chunks` as its changes.
fn message_with(heads: Vec<ChangeHash>, chunks: Vec<Vec<u8>>) -> Vec<u8> {
    let base = Automerge::new()
        .generate_sync_message(&mut State::new())
        .expect("an opening message");
    Message {
        heads,
        changes: ChunkList::from(chunks),
        ..base
    }
    .encode()
}

/// A doc-sync frame for `message`, each change in it signed by its author (so that what is
/// tested is what comes after the signature check, as from an enrolled device).
fn doc_sync(p: &str, message: Vec<u8>) -> Vec<u8> {
    let signatures = Message::decode(&message)
        .map(|m| {
            m.changes
                .iter()
                .filter_map(|chunk| automerge::Change::try_from(chunk).ok())
                .filter_map(|change| {
                    let author = gridsync_proto::NodeId::from_actor(change.actor_id())?;
                    Some(gridsync_proto::testing::sign_as(
                        author.as_str(),
                        p,
                        &change.hash(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    encode_frame(&Frame::DocSync {
        path: path(p),
        message,
        signatures,
    })
    .expect("encodes")
}

/// The office (A) and a captain who may write grid 1 (B), synced on one building.
fn synced_pair() -> Pair {
    let office = Identity::new("office", Role::Office, &["write:s"]);
    let cap = Identity::new("cap-b", Role::Captain, &["write:s/g1"]);
    let mut a = MemoryDocs::new(&node_id("office"));
    a.write("s/g1/bldg-1", "k", "v");
    let b = MemoryDocs::new(&node_id("cap-b"));
    let mut pair = Pair::new((office, a), (cap, b));
    pair.drive();
    assert_eq!(pair.b.docs.get("s/g1/bldg-1", "k"), Some("v".to_string()));
    pair
}

/// After whatever was injected, an honest write on B still reaches A and both converge.
fn still_syncs(pair: &mut Pair, key: &str) {
    pair.b.docs.write("s/g1/bldg-1", key, "after");
    pair.local_change(Side::B, "s/g1/bldg-1");
    pair.drive();
    assert!(!pair.a.session.is_closed() && pair.a.error.is_none());
    assert_eq!(
        pair.a.docs.get("s/g1/bldg-1", key),
        Some("after".to_string())
    );
    assert_eq!(
        pair.a.docs.heads_of("s/g1/bldg-1"),
        pair.b.docs.heads_of("s/g1/bldg-1")
    );
}

#[test]
fn a_compressed_change_bomb_is_refused_and_the_session_goes_on() {
    let mut pair = synced_pair();
    let bomb = change_bomb();
    assert!(bomb.len() < 2 << 20, "{} bytes on the wire", bomb.len());
    let before = pair.a.docs.heads_of("s/g1/bldg-1");
    let frame = doc_sync("s/g1/bldg-1", message_with(before.clone(), vec![bomb]));
    let started = Instant::now();
    pair.inject(Side::A, &frame).expect("refused, not fatal");
    let took = started.elapsed();
    eprintln!("change bomb refused in {took:?}");
    // Inflating the gigabyte took about 20 s in a debug build; stopping at the cap, 20 ms.
    assert!(took.as_secs() < 5, "refused only after {took:?}");
    assert_eq!(
        pair.a.refusals(),
        vec![(path("s/g1/bldg-1"), RefusalReason::Malformed)]
    );
    assert_eq!(pair.a.docs.heads_of("s/g1/bldg-1"), before);
    still_syncs(&mut pair, "next");
}

#[test]
fn a_document_column_bomb_is_refused_and_the_session_goes_on() {
    let mut pair = synced_pair();
    // A document the office does not hold yet, sent whole: the first thing it would load.
    let frame = doc_sync("s/g1/bldg-2", message_with(vec![], vec![document_bomb()]));
    let started = Instant::now();
    pair.inject(Side::A, &frame).expect("refused, not fatal");
    let took = started.elapsed();
    eprintln!("document bomb refused in {took:?}");
    assert!(took.as_secs() < 5, "refused only after {took:?}");
    assert_eq!(
        pair.a.refusals(),
        vec![(path("s/g1/bldg-2"), RefusalReason::Malformed)]
    );
    assert!(!pair.a.docs.docs.contains_key(&path("s/g1/bldg-2")));
    still_syncs(&mut pair, "next");
}

/// Splits a change chunk into its body's fields up to the sequence number: (deps, actor,
/// seq, rest of the body).
fn change_fields(chunk: &[u8]) -> (Vec<[u8; 32]>, Vec<u8>, u64, Vec<u8>) {
    fn read(bytes: &[u8], at: &mut usize) -> u64 {
        let mut value = 0u64;
        let mut shift = 0;
        loop {
            let byte = bytes[*at];
            *at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }
    assert_eq!(chunk[8], 1, "an uncompressed change chunk");
    let mut at = 9;
    let len = read(chunk, &mut at) as usize;
    let body = &chunk[at..at + len];
    let mut at = 0;
    let deps = (0..read(body, &mut at))
        .map(|_| {
            let dep: [u8; 32] = body[at..at + 32].try_into().expect("32 bytes");
            at += 32;
            dep
        })
        .collect();
    let actor_len = read(body, &mut at) as usize;
    let actor = body[at..at + actor_len].to_vec();
    at += actor_len;
    let seq = read(body, &mut at);
    (deps, actor, seq, body[at..].to_vec())
}

/// The change chunk with its dependencies and sequence number replaced, checksum recomputed:
/// a change automerge parses, which no honest automerge would have made.
fn forged(chunk: &[u8], deps: &[[u8; 32]], seq: u64) -> Vec<u8> {
    let (_, actor, _, rest) = change_fields(chunk);
    let mut body = Vec::new();
    uleb(deps.len() as u64, &mut body);
    for dep in deps {
        body.extend_from_slice(dep);
    }
    uleb(actor.len() as u64, &mut body);
    body.extend_from_slice(&actor);
    uleb(seq, &mut body);
    body.extend_from_slice(&rest);
    let forged = chunk_of_change(&body);
    assert!(
        automerge::Change::try_from(forged.as_slice()).is_ok(),
        "automerge parses the forged change"
    );
    forged
}

fn chunk_of_change(body: &[u8]) -> Vec<u8> {
    chunk(1, body, checksum(1, body))
}

/// A new change by B on the shared building, not yet sent: its bytes.
fn unsent_change_by_b(pair: &mut Pair, key: &str) -> Vec<u8> {
    pair.b.docs.write("s/g1/bldg-1", key, "forged");
    pair.b.docs.docs[&path("s/g1/bldg-1")]
        .get_last_local_change()
        .expect("just written")
        .raw_bytes()
        .to_vec()
}

fn heads_as_deps(heads: &[ChangeHash]) -> Vec<[u8; 32]> {
    heads.iter().map(|h| h.0).collect()
}

#[test]
fn a_change_skipping_sequence_numbers_is_refused_without_a_panic() {
    let mut pair = synced_pair();
    let before = pair.a.docs.heads_of("s/g1/bldg-1");
    // B's first change would be its seq 1; this one claims seq 3, on top of what A holds.
    let honest = unsent_change_by_b(&mut pair, "gap");
    let (_, _, seq, _) = change_fields(&honest);
    let gap = forged(&honest, &heads_as_deps(&before), seq + 2);
    pair.inject(
        Side::A,
        &doc_sync("s/g1/bldg-1", message_with(before.clone(), vec![gap])),
    )
    .expect("refused, not fatal");
    assert_eq!(
        pair.a.refusals(),
        vec![(path("s/g1/bldg-1"), RefusalReason::Malformed)]
    );
    assert_eq!(pair.a.docs.heads_of("s/g1/bldg-1"), before);
    // B's honest change (the real seq) still syncs.
    pair.local_change(Side::B, "s/g1/bldg-1");
    pair.drive();
    assert_eq!(
        pair.a.docs.get("s/g1/bldg-1", "gap"),
        Some("forged".to_string())
    );
    still_syncs(&mut pair, "next");
}

#[test]
fn a_sequence_number_used_twice_is_refused_and_nothing_is_half_applied() {
    let mut pair = synced_pair();
    let before = pair.a.docs.heads_of("s/g1/bldg-1");
    // Two forks of B's document, each making B's next change: same (actor, seq), two
    // different changes. A third, valid change rides in the same message first.
    // (`fork` draws a new actor; the fork keeps B's.)
    let mut fork = pair.b.docs.docs[&path("s/g1/bldg-1")]
        .fork()
        .with_actor(pair.b.docs.actor.clone());
    let one = unsent_change_by_b(&mut pair, "one");
    let mut tx = fork.transaction();
    tx.put(ROOT, "two", "forged").expect("put on root");
    tx.commit();
    let two = fork
        .get_last_local_change()
        .expect("just written")
        .raw_bytes()
        .to_vec();
    let (_, one_actor, one_seq, _) = change_fields(&one);
    let (_, two_actor, two_seq, _) = change_fields(&two);
    assert_eq!(
        (one_actor, one_seq),
        (two_actor, two_seq),
        "same actor and seq"
    );
    assert_ne!(one, two);
    pair.inject(
        Side::A,
        &doc_sync(
            "s/g1/bldg-1",
            message_with(before.clone(), vec![one.clone(), two.clone()]),
        ),
    )
    .expect("refused, not fatal");
    assert_eq!(
        pair.a.refusals(),
        vec![(path("s/g1/bldg-1"), RefusalReason::Malformed)]
    );
    assert_eq!(
        pair.a.docs.heads_of("s/g1/bldg-1"),
        before,
        "nothing applied"
    );
    // The first alone is fine; the second afterwards repeats its seq and is refused.
    pair.inject(
        Side::A,
        &doc_sync("s/g1/bldg-1", message_with(before.clone(), vec![one])),
    )
    .expect("applies");
    let with_one = pair.a.docs.heads_of("s/g1/bldg-1");
    assert_ne!(with_one, before);
    pair.inject(
        Side::A,
        &doc_sync("s/g1/bldg-1", message_with(with_one.clone(), vec![two])),
    )
    .expect("refused, not fatal");
    assert_eq!(pair.a.refusals().len(), 2);
    assert_eq!(pair.a.docs.heads_of("s/g1/bldg-1"), with_one);
    still_syncs(&mut pair, "next");
}

#[test]
fn changes_naming_missing_dependencies_wait_and_never_half_apply() {
    let mut pair = synced_pair();
    let before = pair.a.docs.heads_of("s/g1/bldg-1");
    // B's second new change without its first: held back until the first arrives.
    let _first = unsent_change_by_b(&mut pair, "first");
    let second = unsent_change_by_b(&mut pair, "second");
    // And a change naming a dependency nobody has.
    let orphan = forged(&second, &[[7u8; 32]], change_fields(&second).2);
    pair.inject(
        Side::A,
        &doc_sync(
            "s/g1/bldg-1",
            message_with(before.clone(), vec![second, orphan]),
        ),
    )
    .expect("not fatal");
    assert!(!pair.a.session.is_closed());
    assert_eq!(
        pair.a.docs.heads_of("s/g1/bldg-1"),
        before,
        "nothing applied yet"
    );
    // An honest sync brings the first, then the second applies; the orphan never does.
    pair.local_change(Side::B, "s/g1/bldg-1");
    pair.drive();
    assert_eq!(
        pair.a.docs.get("s/g1/bldg-1", "second"),
        Some("forged".to_string())
    );
    still_syncs(&mut pair, "next");
}

/// The last line of defence: a message automerge panics on (here a change skipping its
/// actor's sequence, which the sequence check would refuse first) is refused by the guarded
/// apply instead of unwinding through the node.
#[test]
fn a_panic_inside_automerge_becomes_a_refusal() {
    use automerge::sync::{Message, State};
    let mut pair = synced_pair();
    let before = pair.a.docs.heads_of("s/g1/bldg-1");
    let honest = unsent_change_by_b(&mut pair, "gap");
    let (_, _, seq, _) = change_fields(&honest);
    let gap = forged(&honest, &heads_as_deps(&before), seq + 2);
    let message = Message::decode(&message_with(before.clone(), vec![gap])).expect("decodes");
    let mut doc = pair.a.docs.docs[&path("s/g1/bldg-1")].clone();
    let outcome = gridsync_proto::apply::receive_guarded(&mut doc, &mut State::new(), message);
    assert!(
        matches!(outcome, Err(gridsync_proto::apply::ApplyError::Panicked)),
        "{outcome:?}"
    );
}
