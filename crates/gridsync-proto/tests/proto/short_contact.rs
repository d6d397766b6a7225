//! Short contacts and relayed authorship: what moves first when two devices meet briefly, a
//! sync cut off midway resuming without resending what completed, duplicated deliveries
//! changing nothing, and relayed changes checked against their author's grants.

use automerge::sync::Message;
use gridsync_proto::{Frame, Limits, RefusalReason, Role, SessionEvent};

use gridsync_proto::testing::{Identity, MemoryDocs, Pair, Side, node_id, path};

const DOCS: usize = 40;
/// The documents the volunteer marks as holding open special needs.
const URGENT: [usize; 3] = [5, 20, 33];

fn doc(i: usize) -> String {
    format!("s/g1/b-{i:02}")
}

fn identities() -> (Identity, Identity) {
    (
        Identity::new("vol-1", Role::Volunteer, &["write:s/g1"]),
        Identity::new("cap-1", Role::Captain, &["write:s/g1"]),
    )
}

/// A volunteer and a captain that synced every document once, then the volunteer logged new
/// work everywhere offline: document `i`'s new change is stamped `10_000 - i` seconds, so the
/// highest-numbered documents hold the oldest unsynced work. A few of the new changes report
/// open needs (marked urgent, as the field model marks such visits).
fn volunteer_back_from_the_field() -> (MemoryDocs, MemoryDocs) {
    let (vol_id, cap_id) = identities();
    let mut vol = MemoryDocs::new(&node_id("vol-1"));
    for i in 0..DOCS {
        vol.write_at(&doc(i), "households", "18", 1_000);
    }
    let cap = MemoryDocs::new(&node_id("cap-1"));
    let mut pair = Pair::new((vol_id, vol), (cap_id, cap));
    pair.drive();
    assert_eq!(pair.b.docs.docs.len(), DOCS);
    let (mut vol, cap) = (pair.a.docs, pair.b.docs);
    for i in 0..DOCS {
        // A visit's worth of text, so a document's changes take real room on the link.
        let note = format!("visit {i}: ").repeat(60);
        if URGENT.contains(&i) {
            vol.write_urgent_at(&doc(i), "latest", &note, 10_000 - i as i64);
        } else {
            vol.write_at(&doc(i), "latest", &note, 10_000 - i as i64);
        }
    }
    (vol, cap)
}

/// The order in which the captain's documents changed during a session.
fn arrival_order(pair: &Pair) -> Vec<String> {
    pair.b
        .events
        .iter()
        .filter_map(|e| match e {
            SessionEvent::DocumentChanged { path, .. } => Some(path.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn open_needs_then_oldest_unsynced_cross_first() {
    let (vol, cap) = volunteer_back_from_the_field();
    let (vol_id, cap_id) = identities();
    let mut pair = Pair::new((vol_id, vol), (cap_id, cap));
    pair.drive();
    assert!(pair.a.error.is_none() && pair.b.error.is_none());
    // Urgent documents first, oldest unsynced first among them; then the rest, oldest first.
    let mut expected: Vec<String> = URGENT.iter().rev().map(|i| doc(*i)).collect();
    expected.extend((0..DOCS).rev().filter(|i| !URGENT.contains(i)).map(doc));
    assert_eq!(arrival_order(&pair), expected);
}

#[test]
fn a_contact_cut_midway_resumes_without_resending_what_completed() {
    let (vol, cap) = volunteer_back_from_the_field();
    let (vol_id, cap_id) = identities();
    // Two documents in flight at a time: a slow link, where order decides what makes it.
    let limits = Limits {
        max_docs_in_flight: 2,
        ..Limits::default()
    };
    let mut first = Pair::with_limits((vol_id.clone(), vol), (cap_id.clone(), cap), limits);
    // Long enough for the inventory and a few documents, not for all of them.
    first.drive_until(first.now + 600);
    let completed = arrival_order(&first);
    println!("arrived before the cut: {completed:?}");
    assert!(
        completed.len() >= URGENT.len() && completed.len() < DOCS,
        "the cut should fall midway: {} of {DOCS} documents arrived",
        completed.len()
    );
    for i in URGENT {
        assert!(
            completed.contains(&doc(i)),
            "urgent {} must cross first",
            doc(i)
        );
    }
    let first_bytes = first.total_bytes();

    let mut second = Pair::new((vol_id, first.a.docs), (cap_id, first.b.docs));
    second.drive();
    assert!(second.a.error.is_none() && second.b.error.is_none());
    for i in 0..DOCS {
        let p = doc(i);
        assert_eq!(
            second.a.docs.docs[&path(&p)].get_heads(),
            second.b.docs.docs[&path(&p)].get_heads(),
            "{p} converged"
        );
    }
    // The resumed session carries changes only for documents the cut interrupted.
    for frame in second.a.sent_frames() {
        if let Frame::DocSync { path, message, .. } = frame {
            let message = Message::decode(&message).expect("our own messages decode");
            if completed.contains(&path.to_string()) {
                assert!(
                    message.changes.is_empty(),
                    "{path} completed before the cut and was sent again"
                );
            }
        }
    }
    let resumed: Vec<String> = arrival_order(&second);
    assert!(resumed.iter().all(|p| !completed.contains(p)));
    assert_eq!(resumed.len() + completed.len(), DOCS);
    println!(
        "cut after {} of {DOCS} documents ({first_bytes} bytes); resumed with {} bytes",
        completed.len(),
        second.total_bytes()
    );
}

#[test]
fn duplicated_delivery_changes_nothing() {
    let (vol, cap) = volunteer_back_from_the_field();
    let (vol_id, cap_id) = identities();
    let mut pair = Pair::new((vol_id, vol), (cap_id, cap));
    pair.drive();
    let heads_before: Vec<_> = (0..DOCS)
        .map(|i| pair.b.docs.docs[&path(&doc(i))].get_heads())
        .collect();
    // Every sync message the volunteer sent, delivered to the captain a second time.
    let mut again = Vec::new();
    for frame in pair.a.sent_frames() {
        if matches!(frame, Frame::DocSync { .. }) {
            again.extend(gridsync_proto::frame::encode_frame(&frame).expect("encodes"));
        }
    }
    assert!(!again.is_empty());
    let result = pair.inject(Side::B, &again);
    assert!(
        result.is_ok(),
        "replayed frames must not break the session: {result:?}"
    );
    let heads_after: Vec<_> = (0..DOCS)
        .map(|i| pair.b.docs.docs[&path(&doc(i))].get_heads())
        .collect();
    assert_eq!(heads_before, heads_after);
    assert!(pair.b.refusals().is_empty());
}

/// A relay (carry-only), a captain (writer) and the office; `vol-2` may write grid g2 only.
fn directory_of(docs: &mut MemoryDocs) {
    docs.know("vol-1", &["write:s/g1"]);
    docs.know("vol-2", &["write:s/g2"]);
    docs.know("cap-1", &["write:s/g1"]);
    docs.know("relay-1", &["carry:s/g1"]);
}

/// `vol-2` wrote into grid g1 (outside its grants) on a tampered device; the document reached
/// `holder` somehow. Whatever `holder`'s own access, the office refuses the change.
fn offer_to_office(holder: Identity, holder_docs: MemoryDocs) -> Pair {
    let office = Identity::new("office", Role::Office, &["write:s"]);
    let mut office_docs = MemoryDocs::new(&node_id("office"));
    directory_of(&mut office_docs);
    let mut pair = Pair::new((holder, holder_docs), (office, office_docs));
    pair.drive();
    pair
}

fn forged_by_vol_2() -> MemoryDocs {
    let mut forged = MemoryDocs::new(&node_id("vol-2"));
    forged.write("s/g1/b-01", "visited", "yes");
    forged
}

#[test]
fn an_unauthorized_change_is_refused_through_any_relay() {
    let forged = forged_by_vol_2();
    for (holder, grants, role) in [
        ("relay-1", &["carry:s/g1"], Role::Relay),
        ("cap-1", &["write:s/g1"], Role::Captain),
    ] {
        let mut holder_docs = MemoryDocs::new(&node_id(holder));
        holder_docs.docs = forged.docs.clone();
        holder_docs.signed_by("vol-2", "s/g1/b-01");
        directory_of(&mut holder_docs);
        let pair = offer_to_office(Identity::new(holder, role, grants), holder_docs);
        assert!(pair.a.error.is_none() && pair.b.error.is_none());
        assert!(
            pair.b
                .docs
                .docs
                .get(&path("s/g1/b-01"))
                .is_none_or(|d| d.get_heads().is_empty()),
            "the office stored vol-2's change relayed by {holder}"
        );
        assert_eq!(
            pair.b.refusals(),
            vec![(path("s/g1/b-01"), RefusalReason::UnauthorizedAuthor)],
            "via {holder}"
        );
    }
}

#[test]
fn an_unknown_author_waits_until_the_directory_knows_it() {
    let (vol_id, cap_id) = identities();
    let _ = vol_id;
    let mut cap_docs = MemoryDocs::new(&node_id("cap-1"));
    // vol-3 joined after the office's directory last reached anyone here.
    let mut by_vol_3 = MemoryDocs::new(&node_id("vol-3"));
    by_vol_3.write("s/g1/b-02", "visited", "yes");
    cap_docs.docs = by_vol_3.docs;
    cap_docs.signed_by("vol-3", "s/g1/b-02");
    let office = Identity::new("office", Role::Office, &["write:s"]);
    let mut office_docs = MemoryDocs::new(&node_id("office"));
    directory_of(&mut office_docs);
    let mut pair = Pair::new((cap_id.clone(), cap_docs), (office.clone(), office_docs));
    pair.drive();
    assert_eq!(
        pair.b.refusals(),
        vec![(path("s/g1/b-02"), RefusalReason::UnknownAuthor)]
    );
    // The directory learns vol-3; the next contact carries the change.
    let (cap_docs, mut office_docs) = (pair.a.docs, pair.b.docs);
    office_docs.know("vol-3", &["write:s/g1"]);
    let mut pair = Pair::new((cap_id, cap_docs), (office, office_docs));
    pair.drive();
    assert!(pair.b.refusals().is_empty());
    assert_eq!(
        pair.b.docs.get("s/g1/b-02", "visited").as_deref(),
        Some("yes")
    );
}

#[test]
fn an_unauthorized_change_stops_at_the_first_hop_that_checks_it() {
    // relay-1 holds vol-2's forged change (a tampered relay, say) and meets relay-2; relay-2
    // refuses it, so it never travels on; relay-2 then meets the office with nothing to give.
    let mut relay_1 = MemoryDocs::new(&node_id("relay-1"));
    relay_1.docs = forged_by_vol_2().docs;
    relay_1.signed_by("vol-2", "s/g1/b-01");
    directory_of(&mut relay_1);
    let mut relay_2 = MemoryDocs::new(&node_id("relay-2"));
    directory_of(&mut relay_2);
    let relay = |name: &str| Identity::new(name, Role::Relay, &["carry:s/g1"]);
    let mut hop = Pair::new((relay("relay-1"), relay_1), (relay("relay-2"), relay_2));
    hop.drive();
    assert_eq!(
        hop.b.refusals(),
        vec![(path("s/g1/b-01"), RefusalReason::UnauthorizedAuthor)]
    );
    assert!(
        hop.b
            .docs
            .docs
            .get(&path("s/g1/b-01"))
            .is_none_or(|d| d.get_heads().is_empty())
    );
    let next = offer_to_office(relay("relay-2"), hop.b.docs);
    assert!(
        next.b
            .docs
            .docs
            .get(&path("s/g1/b-01"))
            .is_none_or(|d| d.get_heads().is_empty())
    );
}
