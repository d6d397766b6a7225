//! Convergence under the intersection of scopes, hello verification and live push.

use gridsync_proto::{Frame, Role, SessionError, SessionEvent};

use gridsync_proto::testing::{Identity, MemoryDocs, Pair, Side, node_id};

fn overlapping_pair() -> Pair {
    let a_id = Identity::new("cap-a", Role::Captain, &["write:s/g1", "write:s/g2"]);
    let b_id = Identity::new("cap-b", Role::Captain, &["write:s/g2", "write:s/g3"]);
    let mut a = MemoryDocs::new(&node_id("cap-a"));
    a.write("s/g1/secret-a", "k", "only a");
    a.write("s/g2/shared", "from-a", "1");
    a.write("s/g2/only-a", "k", "a");
    let mut b = MemoryDocs::new(&node_id("cap-b"));
    b.write("s/g2/shared", "from-b", "2");
    b.write("s/g2/only-b", "k", "b");
    b.write("s/g3/secret-b", "k", "only b");
    Pair::new((a_id, a), (b_id, b))
}

#[test]
fn overlapping_scopes_converge_and_nothing_else_is_sent() {
    let mut pair = overlapping_pair();
    pair.drive();
    assert!(pair.a.error.is_none() && pair.b.error.is_none());
    for node in [&pair.a.docs, &pair.b.docs] {
        assert_eq!(node.get("s/g2/shared", "from-a").as_deref(), Some("1"));
        assert_eq!(node.get("s/g2/shared", "from-b").as_deref(), Some("2"));
        assert_eq!(node.get("s/g2/only-a", "k").as_deref(), Some("a"));
        assert_eq!(node.get("s/g2/only-b", "k").as_deref(), Some("b"));
    }
    assert!(
        !pair
            .b
            .docs
            .docs
            .contains_key(&gridsync_proto::testing::path("s/g1/secret-a"))
    );
    assert!(
        !pair
            .a
            .docs
            .docs
            .contains_key(&gridsync_proto::testing::path("s/g3/secret-b"))
    );
    // Neither the inventory nor any sync message mentions the unshared documents: the
    // secret paths (and their grid prefix, outside hello) never appear in the byte stream.
    assert!(!pair.a.sent_mentions("secret-a"));
    assert!(!pair.b.sent_mentions("secret-b"));
    for frames in [pair.a.sent_frames(), pair.b.sent_frames()] {
        for frame in frames {
            match frame {
                Frame::Inventory(parts) => {
                    for p in parts {
                        for bound in [p.range.lower, p.range.upper].into_iter().flatten() {
                            assert!(bound.as_str().starts_with("s/g2/"), "{bound}");
                        }
                        if let gridsync_proto::frame::RangeSummary::Items(items) = p.summary {
                            assert!(items.iter().all(|(p, _)| p.as_str().starts_with("s/g2/")));
                        }
                    }
                }
                Frame::DocSync { path, .. } | Frame::Refused { path, .. } => {
                    assert!(path.as_str().starts_with("s/g2/"), "{path}")
                }
                _ => {}
            }
        }
    }
    for node in [&pair.a, &pair.b] {
        assert!(matches!(
            node.events.first(),
            Some(SessionEvent::PeerVerified {
                role: Role::Captain,
                ..
            })
        ));
        assert!(node.events.contains(&SessionEvent::UpToDate));
        assert!(
            node.events
                .iter()
                .any(|e| matches!(e, SessionEvent::InventoryDone { .. }))
        );
    }
    // Documents created from the peer were reported for persistence.
    assert!(pair.a.events.iter().any(|e| matches!(
        e,
        SessionEvent::DocumentChanged { path, from, .. } if path.as_str() == "s/g2/only-b" && from.as_str() == "cap-b"
    )));
    // A document new to the receiver arrives whole: it is taken as inspected, and the bytes
    // handed for storage are the document at the heads it now has.
    let whole = pair
        .a
        .events
        .iter()
        .find_map(|e| match e {
            SessionEvent::DocumentChanged {
                path,
                received_whole: Some(whole),
                ..
            } if path.as_str() == "s/g2/only-b" => Some(whole.clone()),
            _ => None,
        })
        .expect("the new document arrived whole");
    let stored = automerge::Automerge::load(&whole.bytes).expect("the bytes are a saved document");
    let held = pair.a.docs.heads_of("s/g2/only-b");
    assert_eq!(stored.get_heads(), held);
    assert_eq!(whole.heads, held);
}

#[test]
fn live_push_after_inventory() {
    let mut pair = overlapping_pair();
    pair.drive();
    let sent_before = pair.a.sent.len();
    pair.a.docs.write("s/g2/shared", "late", "news");
    pair.local_change(Side::A, "s/g2/shared");
    // A change outside the shared set is not pushed.
    pair.a.docs.write("s/g1/secret-a", "late", "hidden");
    pair.local_change(Side::A, "s/g1/secret-a");
    pair.drive();
    assert_eq!(
        pair.b.docs.get("s/g2/shared", "late").as_deref(),
        Some("news")
    );
    assert!(!pair.a.sent_mentions("secret-a"));
    let pushed = pair.a.sent.len() - sent_before;
    println!("live push of one change: {pushed} bytes from a");
    assert!(pushed < 1024, "live push took {pushed} bytes");
}

fn assert_no_document_bytes(frames: &[Frame]) {
    assert!(
        frames
            .iter()
            .all(|f| matches!(f, Frame::Hello(_) | Frame::Goodbye { .. })),
        "sent {frames:?}"
    );
}

#[test]
fn hello_mismatch_closes_before_any_document_bytes() {
    type Lie = fn(&mut Identity);
    let cases: [(&str, Lie); 3] = [
        ("scopes", |id| {
            id.claimed.scopes = gridsync_proto::testing::scopes(&["write:s"]);
        }),
        ("role", |id| id.claimed.role = Role::Office),
        ("node id", |id| id.claimed.node_id = node_id("cap-z")),
    ];
    for (field, lie) in cases {
        let mut pair = overlapping_pair();
        let a_id = Identity::new("cap-a", Role::Captain, &["write:s/g1", "write:s/g2"]);
        let mut b_id = Identity::new("cap-b", Role::Captain, &["write:s/g2", "write:s/g3"]);
        lie(&mut b_id);
        pair = Pair::new((a_id, pair.a.docs.clone()), (b_id, pair.b.docs.clone()));
        pair.drive();
        assert_eq!(
            pair.a.error,
            Some(SessionError::IdentityMismatch(field)),
            "{field}"
        );
        assert!(pair.a.session.is_closed());
        assert_eq!(pair.a.session.stats().doc_frames_sent, 0);
        assert_no_document_bytes(&pair.a.sent_frames());
        assert!(matches!(
            pair.b.error,
            Some(SessionError::PeerClosed { .. })
        ));
    }
}

#[test]
fn a_frame_before_hello_closes_the_session() {
    let mut pair = overlapping_pair();
    let early = gridsync_proto::frame::encode_frame(&Frame::Inventory(vec![]))
        .expect("small frame encodes");
    assert_eq!(
        pair.inject(Side::A, &early),
        Err(SessionError::BeforeHello("inventory"))
    );
    assert!(pair.a.session.is_closed());
    pair.drive();
    assert_no_document_bytes(&pair.a.sent_frames());
}

#[test]
fn outgoing_bytes_stay_bounded_under_backpressure() {
    let limits = gridsync_proto::Limits {
        max_docs_in_flight: 64,
        max_outgoing_bytes: 2048,
        ..gridsync_proto::Limits::default()
    };
    let a_id = Identity::new("office", Role::Office, &["write:s"]);
    let b_id = Identity::new("cap-b", Role::Captain, &["write:s"]);
    let mut a = MemoryDocs::new(&node_id("office"));
    for i in 0..60 {
        a.write(&format!("s/g1/bldg-{i:03}"), "notes", &"x".repeat(300));
    }
    let b = MemoryDocs::new(&node_id("cap-b"));
    let mut pair = Pair::with_limits((a_id, a), (b_id, b), limits);
    pair.drive();
    assert_eq!(pair.b.docs.docs.len(), 60);
    // Generation stops once the buffer reaches the limit (without it, 60 documents would be
    // queued at once); one message may overshoot it.
    println!("peak outgoing buffer: {} bytes", pair.peak_outgoing);
    assert!(
        pair.peak_outgoing < 2048 + 1024,
        "peak {} bytes buffered",
        pair.peak_outgoing
    );
    assert!(pair.b.events.contains(&SessionEvent::UpToDate));
}

#[test]
fn documents_in_flight_stay_bounded() {
    let limits = gridsync_proto::Limits {
        max_docs_in_flight: 4,
        ..gridsync_proto::Limits::default()
    };
    let a_id = Identity::new("office", Role::Office, &["write:s"]);
    let b_id = Identity::new("cap-b", Role::Captain, &["write:s"]);
    let mut a = MemoryDocs::new(&node_id("office"));
    for i in 0..30 {
        a.write(&format!("s/g1/bldg-{i:03}"), "k", "v");
    }
    let mut pair = Pair::with_limits(
        (a_id, a),
        (b_id, MemoryDocs::new(&node_id("cap-b"))),
        limits,
    );
    pair.drive();
    assert_eq!(pair.b.docs.docs.len(), 30);
    assert_eq!(pair.peak_in_flight, 4);
}

#[test]
fn a_peer_that_never_says_hello_times_out() {
    let mut pair = overlapping_pair();
    let deadline = pair.a.session.poll_timeout().expect("waiting for hello");
    let mut docs = pair.a.docs.clone();
    pair.a.session.handle_timeout(deadline - 1, &mut docs);
    assert!(!pair.a.session.is_closed());
    pair.a.session.handle_timeout(deadline, &mut docs);
    assert!(pair.a.session.is_closed());
    let mut closed = false;
    while let Some(event) = pair.a.session.poll_event() {
        closed |= matches!(
            event,
            SessionEvent::Closed {
                reason: gridsync_proto::CloseReason::Error(SessionError::Timeout(_))
            }
        );
    }
    assert!(closed);
}

#[test]
fn an_unsupported_protocol_version_closes_the_session() {
    let mut pair = overlapping_pair();
    let hello = gridsync_proto::frame::encode_frame(&Frame::Hello(gridsync_proto::frame::Hello {
        protocol_version: 99,
        node_id: node_id("cap-b"),
        role: Role::Captain,
        scopes: gridsync_proto::testing::scopes(&["write:s/g2", "write:s/g3"]),
    }))
    .expect("small frame encodes");
    assert_eq!(
        pair.inject(Side::A, &hello),
        Err(SessionError::UnsupportedVersion {
            ours: gridsync_proto::frame::PROTOCOL_VERSION,
            theirs: 99
        })
    );
    pair.drive();
    assert_no_document_bytes(&pair.a.sent_frames());
}

#[test]
fn a_receiver_at_its_document_cap_refuses_new_documents_and_keeps_syncing_the_rest() {
    let a_id = Identity::new("cap-a", Role::Captain, &["write:s"]);
    let b_id = Identity::new("vol-b", Role::Volunteer, &["write:s"]);
    let mut a = MemoryDocs::new(&node_id("cap-a"));
    for name in ["s/b1", "s/b2", "s/b3"] {
        a.write(name, "k", "from a");
    }
    let mut b = MemoryDocs::new(&node_id("vol-b"));
    b.write("s/b1", "own", "from b");
    // b may hold two documents: it has one, so exactly one of a's new documents fits.
    b.max_documents = Some(2);
    let mut pair = Pair::new((a_id, a), (b_id, b));
    pair.drive();
    assert!(pair.a.error.is_none() && pair.b.error.is_none());
    assert_eq!(pair.b.docs.docs.len(), 2, "the cap holds");
    // The document b already had still syncs both ways.
    assert_eq!(pair.b.docs.get("s/b1", "k").as_deref(), Some("from a"));
    assert_eq!(pair.a.docs.get("s/b1", "own").as_deref(), Some("from b"));
    let refused: Vec<_> = pair
        .b
        .refusals()
        .into_iter()
        .filter(|(_, reason)| *reason == gridsync_proto::RefusalReason::CapacityExceeded)
        .collect();
    assert_eq!(refused.len(), 1, "one new document refused: {refused:?}");
    assert!(!pair.b.session.is_closed());
}
