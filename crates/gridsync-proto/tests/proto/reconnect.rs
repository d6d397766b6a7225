//! What reconnecting costs: nothing changed, one document changed, and for reference what
//! a sync of every document with fresh sync states would cost.

use automerge::sync::{State, SyncDoc};
use gridsync_proto::{Role, SessionEvent};

use gridsync_proto::testing::{Identity, MemoryDocs, Pair, Side, node_id};

const DOCS: usize = 1000;

fn identities() -> (Identity, Identity) {
    (
        Identity::new("office", Role::Office, &["write:s"]),
        Identity::new("cap-b", Role::Captain, &["write:s/g1"]),
    )
}

fn doc_path(i: usize) -> String {
    format!("s/g1/bldg-{i:04}")
}

/// A first full sync of 1,000 small documents from the office to an empty captain.
fn synced_nodes() -> (MemoryDocs, MemoryDocs) {
    let (a_id, b_id) = identities();
    let mut a = MemoryDocs::new(&node_id("office"));
    for i in 0..DOCS {
        a.write(&doc_path(i), "households", &format!("{}", i % 7));
    }
    let b = MemoryDocs::new(&node_id("cap-b"));
    let mut pair = Pair::new((a_id, a), (b_id, b));
    pair.drive();
    assert!(pair.a.error.is_none() && pair.b.error.is_none());
    assert_eq!(pair.b.docs.docs.len(), DOCS);
    assert_eq!(pair.a.docs.sync_states.len(), DOCS);
    assert_eq!(pair.b.docs.sync_states.len(), DOCS);
    println!(
        "first full sync of {DOCS} docs: {} bytes, {:.1} round trips",
        pair.total_bytes(),
        pair.round_trips()
    );
    (pair.a.docs, pair.b.docs)
}

fn reconnect(a: MemoryDocs, b: MemoryDocs) -> Pair {
    let (a_id, b_id) = identities();
    let mut pair = Pair::new((a_id, a), (b_id, b));
    pair.drive();
    assert!(pair.a.error.is_none() && pair.b.error.is_none());
    pair
}

fn inventory_differing(pair: &Pair) -> usize {
    [&pair.a, &pair.b]
        .iter()
        .flat_map(|n| n.events.iter())
        .filter_map(|e| match e {
            SessionEvent::InventoryDone { differing, .. } => Some(*differing),
            _ => None,
        })
        .sum()
}

/// What syncing every document with fresh (not persisted) sync states costs, in bytes.
fn fresh_state_cost(a: &MemoryDocs, b: &MemoryDocs) -> u64 {
    let mut total = 0;
    for (path, doc_a) in &a.docs {
        let mut doc_a = doc_a.clone();
        let mut doc_b = b.docs.get(path).expect("synced").clone();
        let (mut sa, mut sb) = (State::new(), State::new());
        loop {
            let mut progressed = false;
            if let Some(m) = doc_a.generate_sync_message(&mut sa) {
                let bytes = m.encode();
                total += bytes.len() as u64;
                let m = automerge::sync::Message::decode(&bytes).expect("own message");
                doc_b.receive_sync_message(&mut sb, m).expect("applies");
                progressed = true;
            }
            if let Some(m) = doc_b.generate_sync_message(&mut sb) {
                let bytes = m.encode();
                total += bytes.len() as u64;
                let m = automerge::sync::Message::decode(&bytes).expect("own message");
                doc_a.receive_sync_message(&mut sa, m).expect("applies");
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }
    total
}

#[test]
fn unchanged_reconnect_and_one_changed_document_are_cheap() {
    let (a, b) = synced_nodes();

    let fresh = fresh_state_cost(&a, &b);
    let pair = reconnect(a, b);
    let (bytes, rtt) = (pair.total_bytes(), pair.round_trips());
    println!(
        "no-op reconnect, {DOCS} docs: {bytes} bytes ({} a->b, {} b->a), {rtt:.1} round trips; \
         per-document sync with fresh sync states would cost {fresh} bytes",
        pair.a.sent.len(),
        pair.b.sent.len()
    );
    assert!(bytes <= 2048, "{bytes} bytes");
    assert!(rtt <= 2.0, "{rtt} round trips");
    assert_eq!(pair.a.session.stats().doc_frames_sent, 0);
    assert_eq!(pair.b.session.stats().doc_frames_sent, 0);
    assert!(pair.a.events.contains(&SessionEvent::UpToDate));
    assert!(fresh > bytes * 10);

    let (mut a, b) = (pair.a.docs, pair.b.docs);
    a.write(&doc_path(637), "households", "changed");
    let mut pair = reconnect(a, b);
    let (bytes, rtt) = (pair.total_bytes(), pair.round_trips());
    println!("reconnect with 1 of {DOCS} docs changed: {bytes} bytes, {rtt:.1} round trips");
    assert_eq!(
        pair.b.docs.get(&doc_path(637), "households").as_deref(),
        Some("changed")
    );
    assert_eq!(inventory_differing(&pair), 1);
    let doc_frames =
        pair.a.session.stats().doc_frames_sent + pair.b.session.stats().doc_frames_sent;
    assert!(
        doc_frames <= 4,
        "{doc_frames} sync messages for one document"
    );
    assert!(bytes <= 8 * 1024, "{bytes} bytes");
    assert!(rtt <= 6.0, "{rtt} round trips");

    // Live push on the same connection afterwards.
    pair.a.docs.write(&doc_path(12), "households", "live");
    pair.local_change(Side::A, &doc_path(12));
    pair.drive();
    assert_eq!(
        pair.b.docs.get(&doc_path(12), "households").as_deref(),
        Some("live")
    );
}

/// The harness the benchmarks measure with: placeholder signatures for every author (here a
/// genesis author that is no node), every author allowed; a first sync moves everything and
/// an unchanged reconnect sends no document.
#[test]
fn a_measuring_pair_syncs_and_an_unchanged_reconnect_sends_no_document() {
    use automerge::transaction::Transactable;

    let (a_id, b_id) = identities();
    let genesis_author = automerge::ActorId::from(b"genesis".as_slice());
    let docs: Vec<_> = (0..20)
        .map(|i| {
            let mut doc = automerge::Automerge::new().with_actor(genesis_author.clone());
            let mut tx = doc.transaction();
            tx.put(automerge::ROOT, "n", i as i64).expect("put");
            tx.commit();
            (gridsync_proto::testing::path(&doc_path(i)), doc)
        })
        .collect();
    let a = MemoryDocs::for_measuring(&a_id.certified.node_id, &docs);
    let b = MemoryDocs::for_measuring(&b_id.certified.node_id, &[]);
    let mut pair = Pair::new((a_id.clone(), a), (b_id.clone(), b)).keep_sent(false);
    pair.try_drive().expect("the first sync settles");
    assert!(pair.doc_frames() >= 20);
    assert!(pair.a.sent.is_empty(), "bytes were kept");
    let (a, b) = pair.into_docs();
    assert_eq!(b.docs.len(), 20);

    let mut again = Pair::new((a_id, a), (b_id, b)).keep_sent(false);
    again.try_drive().expect("the reconnect settles");
    assert_eq!(again.doc_frames(), 0);
    assert!(again.round_trips() <= 2.0, "{}", again.round_trips());
}
