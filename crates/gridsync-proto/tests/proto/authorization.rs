//! Authorization on receipt: read-only writers are refused, carriers may relay but not author.

use automerge::sync::{State, SyncDoc};
use automerge::{ActorId, Automerge};
use gridsync_proto::frame::encode_frame;
use gridsync_proto::{Frame, RefusalReason, Role};

use gridsync_proto::testing::{Identity, MemoryDocs, Pair, Side, node_id, path};

/// A sync message that hands all of `doc` to a peer that has nothing.
fn message_with_everything(doc: &Automerge) -> Vec<u8> {
    let empty = Automerge::new();
    let (mut ours, mut theirs) = (State::new(), State::new());
    let opening = empty
        .generate_sync_message(&mut theirs)
        .expect("opening message");
    let mut doc = doc.clone();
    doc.receive_sync_message(&mut ours, opening)
        .expect("valid opening");
    doc.generate_sync_message(&mut ours)
        .expect("reply with changes")
        .encode()
}

#[test]
fn write_without_write_scope_is_refused_and_the_session_continues() {
    let office = Identity::new("office", Role::Office, &["write:s"]);
    let reader = Identity::new("vol-r", Role::Volunteer, &["read:s/g1"]);
    let mut a = MemoryDocs::new(&node_id("office"));
    a.write("s/g1/bldg-1", "k", "office");
    let b = MemoryDocs::new(&node_id("vol-r"));
    let mut pair = Pair::new((office, a), (reader, b));
    pair.drive();
    assert_eq!(
        pair.b.docs.get("s/g1/bldg-1", "k").as_deref(),
        Some("office")
    );

    // The reader writes anyway and pushes it like a hostile peer would.
    let mut forged = pair.b.docs.docs[&path("s/g1/bldg-1")].clone();
    {
        use automerge::transaction::Transactable;
        let mut tx = forged.transaction();
        tx.put(automerge::ROOT, "k", "forged").expect("put");
        tx.commit();
    }
    let frame = encode_frame(&Frame::DocSync {
        path: path("s/g1/bldg-1"),
        message: message_with_everything(&forged),
        signatures: vec![],
    })
    .expect("encodes");
    pair.inject(Side::A, &frame).expect("refusal is not fatal");
    assert_eq!(
        pair.a.refusals(),
        vec![(path("s/g1/bldg-1"), RefusalReason::NotWritable)]
    );
    assert_eq!(
        pair.a.docs.get("s/g1/bldg-1", "k").as_deref(),
        Some("office")
    );
    assert!(!pair.a.session.is_closed());

    // The session still works: the office's next change reaches the reader.
    pair.a.docs.write("s/g1/bldg-1", "k", "office again");
    pair.local_change(Side::A, "s/g1/bldg-1");
    pair.drive();
    assert_eq!(
        pair.b.docs.get("s/g1/bldg-1", "k").as_deref(),
        Some("office again")
    );
    assert!(pair.a.error.is_none());
}

#[test]
fn carrier_relays_others_changes_but_cannot_author() {
    let office = Identity::new("office", Role::Office, &["write:s"]);
    let relay = Identity::new("relay-1", Role::Relay, &["carry:s/g1"]);
    let a = MemoryDocs::new(&node_id("office"));
    let mut c = MemoryDocs::new(&node_id("relay-1"));
    // A volunteer's change that the relay picked up elsewhere and carries.
    let mut carried = Automerge::new().with_actor(ActorId::from("vol-7".as_bytes()));
    {
        use automerge::transaction::Transactable;
        let mut tx = carried.transaction();
        tx.put(automerge::ROOT, "visit", "done").expect("put");
        tx.commit();
    }
    c.docs.insert(path("s/g1/bldg-1"), carried);
    c.signed_by("vol-7", "s/g1/bldg-1");
    // And a change the relay authored itself.
    c.write("s/g1/bldg-2", "visit", "made up by the relay");

    let mut pair = Pair::new((office, a), (relay, c));
    pair.drive();
    assert_eq!(
        pair.a.docs.get("s/g1/bldg-1", "visit").as_deref(),
        Some("done")
    );
    assert_eq!(pair.a.docs.get("s/g1/bldg-2", "visit"), None);
    assert!(
        pair.a
            .refusals()
            .contains(&(path("s/g1/bldg-2"), RefusalReason::CarrierAuthored))
    );
    assert!(!pair.a.session.is_closed() && pair.a.error.is_none());
    // The relay is told, in a frame that names only the path it sent.
    assert!(pair.a.sent_frames().contains(&Frame::Refused {
        path: path("s/g1/bldg-2"),
        reason: RefusalReason::CarrierAuthored
    }));
}
