//! The concurrent-creation pitfall, designed out by genesis.

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc};
use gridsync_model::{BuildingRecords, DocKind, genesis, node_for_actor, record_visit};

use super::support::{NOW, ctx, device, merge_into, node, plan, rid, visit};

#[test]
fn two_devices_that_never_met_both_keep_their_first_visit() {
    assert_eq!(
        genesis(DocKind::Building).get_heads(),
        genesis(DocKind::Building).get_heads(),
        "genesis change hash is identical across independent calls"
    );
    let plan = plan();
    let mut docs = vec![device("vol-a"), device("vol-b")];
    let first = visit(rid(NOW - 5_000, 1), "h-1", NOW - 5_000);
    let second = visit(rid(NOW - 4_000, 2), "h-2", NOW - 4_000);
    record_visit(&mut docs[0], &ctx(&plan), &first).expect("valid visit");
    record_visit(&mut docs[1], &ctx(&plan), &second).expect("valid visit");

    merge_into(&mut docs, 0, 1);
    merge_into(&mut docs, 1, 0);

    assert_eq!(docs[0].get_heads(), docs[1].get_heads());
    let a = BuildingRecords::read(&docs[0]);
    let b = BuildingRecords::read(&docs[1]);
    assert_eq!(a, b);
    assert_eq!(a.visits, vec![first.clone(), second.clone()]);
    assert!(a.malformed.is_empty());

    // Provenance: each visit's map was created by its device's actor.
    let visits = match docs[0].get(ROOT, "visits") {
        Ok(Some((_, id))) => id,
        other => panic!("visits map missing: {other:?}"),
    };
    for (v, who) in [(&first, "vol-a"), (&second, "vol-b")] {
        let (_, obj) = docs[0]
            .get(&visits, v.id.as_str())
            .ok()
            .flatten()
            .expect("visit present");
        let automerge::ObjId::Id(_, actor, _) = obj else {
            panic!("a record object is not the root");
        };
        assert_eq!(node_for_actor(&actor), Some(node(who)));
    }
}

/// Shows what genesis prevents: each device creating the `visits` map itself loses a visit.
#[test]
fn without_genesis_one_device_s_visit_is_hidden() {
    let mut a = Automerge::new().with_actor(ActorId::from(b"vol-a".as_slice()));
    let mut b = Automerge::new().with_actor(ActorId::from(b"vol-b".as_slice()));
    for (doc, key) in [(&mut a, "v1"), (&mut b, "v2")] {
        let mut tx = doc.transaction();
        let visits = tx
            .put_object(ROOT, "visits", ObjType::Map)
            .expect("fresh document");
        tx.put(&visits, key, "visit").expect("fresh map");
        tx.commit();
    }
    a.merge(&mut b).expect("merge");
    let (_, visits) = a
        .get(ROOT, "visits")
        .ok()
        .flatten()
        .expect("visits present");
    assert_eq!(
        a.keys(&visits).count(),
        1,
        "the other device's visits map is hidden"
    );
}
