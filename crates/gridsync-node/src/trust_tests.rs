//! The trust model end to end on real replicas, keys and certificates: two sessions driven
//! in memory by the node's own [`SessionDriver`] (received changes stored with their
//! signatures before anything else happens).

#![allow(clippy::unwrap_used)]

use automerge::transaction::Transactable;
use automerge::{Automerge, ROOT, ReadDoc};
use gridsync_proto::signature::signed_bytes;
use gridsync_proto::{
    ChangeSignature, DocPath, NodeId, RefusalReason, Role, SessionConfig, SignedHead,
};

use crate::replica::Replica;
use crate::session_driver::{DriverOutcome, SessionDriver};
use crate::test_street::*;

/// What one side of a sync refused, by document.
pub(crate) type Refusals = Vec<(DocPath, RefusalReason)>;

/// Syncs `a` and `b` through the node's session driver until neither has anything to send,
/// then ends both sessions in order; returns what each refused.
pub(crate) fn sync(a: &mut Member, b: &mut Member) -> (Refusals, Refusals) {
    let mut da = SessionDriver::new(SessionConfig::new(a.identity.clone()), peer_of(b), 0);
    let mut db = SessionDriver::new(SessionConfig::new(b.identity.clone()), peer_of(a), 0);
    let mut refused = (Vec::new(), Vec::new());
    for _ in 0..10_000 {
        let mut moved = false;
        while let Some(bytes) = da.poll_transmit() {
            moved = true;
            let _ = db.handle_bytes(0, &bytes, &mut b.replica);
            settle(&mut db, &mut b.replica, &mut refused.1);
        }
        while let Some(bytes) = db.poll_transmit() {
            moved = true;
            let _ = da.handle_bytes(0, &bytes, &mut a.replica);
            settle(&mut da, &mut a.replica, &mut refused.0);
        }
        settle(&mut da, &mut a.replica, &mut refused.0);
        settle(&mut db, &mut b.replica, &mut refused.1);
        if !moved {
            da.finish(&mut a.replica);
            db.finish(&mut b.replica);
            return refused;
        }
    }
    panic!("the sessions did not settle");
}

/// Has the driver carry out its session's events; collects the refusals.
pub(crate) fn settle(
    driver: &mut SessionDriver,
    replica: &mut Replica,
    refused: &mut Vec<(DocPath, RefusalReason)>,
) {
    let mut outcomes = Vec::new();
    driver.process_events(0, replica, &mut outcomes);
    for outcome in outcomes {
        match outcome {
            DriverOutcome::Refused { path, reason } => refused.push((path, reason)),
            DriverOutcome::StoreFailed { path, error } => panic!("cannot store {path}: {error}"),
            _ => {}
        }
    }
}

/// Whether every refusal is a wait for the directory (an author not known yet).
fn only_waiting(refused: &[(DocPath, RefusalReason)]) -> bool {
    refused
        .iter()
        .all(|(_, reason)| *reason == RefusalReason::UnknownAuthor)
}

#[test]
fn signed_records_travel_through_a_relay() {
    let (_ca, mut office, mut relay, mut volunteer) = street();
    office_writes_plan(&mut office, "households");
    // An author not in the directory yet is refused for now and asked for again once the
    // directory arrives; nothing else may be refused.
    let (r1, r2) = sync(&mut office, &mut relay);
    assert!(only_waiting(&r1) && only_waiting(&r2), "{r1:?} {r2:?}");
    let (r1, r2) = sync(&mut relay, &mut volunteer);
    assert!(only_waiting(&r1) && only_waiting(&r2), "{r1:?} {r2:?}");
    assert!(holds_key(&mut volunteer, &plan_path(), "households"));
}

/// A carrier makes a change under the office's actor and relays it: refused at the first
/// hop, whether it signs with its own key or not at all.
#[test]
fn a_carrier_cannot_forge_the_office() {
    let (_ca, mut office, mut relay, mut volunteer) = street();
    office_writes_plan(&mut office, "households");
    sync(&mut office, &mut relay);
    let path = plan_path();
    for signed_by_relay in [true, false] {
        let mut forged: Automerge = relay.replica.doc(&path).unwrap().unwrap().fork();
        forged.set_actor(NodeId::parse("office").unwrap().actor_id());
        let mut tx = forged.transaction();
        tx.delete(ROOT, "households").unwrap();
        tx.commit();
        let newest = forged.get_last_local_change().unwrap();
        let mut heads = Vec::new();
        if signed_by_relay {
            let signer = gridsync_net::ChangeSigner::from_pkcs8(&relay.key_der).unwrap();
            heads.push(SignedHead {
                actor: newest.actor_id().clone(),
                seq: newest.seq(),
                signature: ChangeSignature {
                    hash: newest.hash(),
                    signature: signer.sign(&signed_bytes(&path, &newest.hash())).unwrap(),
                },
            });
        }
        let mut carrier = enroll(
            &_ca,
            "relay-2",
            Role::Relay,
            &["carry:s", "write:s/devices"],
        );
        carrier.replica.merge_doc(&path, &forged, heads).unwrap();
        let (_, refused) = sync(&mut carrier, &mut volunteer);
        assert!(
            refused.contains(&(path.clone(), RefusalReason::BadSignature)),
            "{refused:?}"
        );
        // The volunteer has the directory now, but never the forged deletion.
        sync(&mut relay, &mut volunteer);
        assert!(holds_key(&mut volunteer, &path, "households"));
    }
}

/// A device that may write the directory replaces the whole map with a string and files an
/// entry for someone else: every change of that kind is refused, and the directory keeps
/// answering for everyone.
#[test]
fn no_device_can_vandalize_the_directory() {
    let (_ca, mut office, _relay, mut volunteer) = street();
    let directory = crate::directory::directory_path(STREET).unwrap();
    volunteer
        .replica
        .write_with_genesis(&directory, crate::directory::genesis, |doc| {
            let mut tx = doc.transaction();
            tx.put(ROOT, "devices", "gone")?;
            tx.commit();
            Ok::<_, automerge::AutomergeError>(())
        })
        .unwrap();
    let (_, refused) = sync(&mut volunteer, &mut office);
    assert!(
        refused.contains(&(directory.clone(), RefusalReason::BadContent)),
        "{refused:?}"
    );
    // The office still knows its own entry and the volunteer's (from before the vandalism
    // it could not take), and keeps judging authors by them.
    office_writes_plan(&mut office, "households");
    let mut fresh = enroll(
        &_ca,
        "vol-2",
        Role::Volunteer,
        &["write:s/g1", "write:s/devices", "carry:s/plan"],
    );
    let (_, refused) = sync(&mut office, &mut fresh);
    assert!(only_waiting(&refused), "{refused:?}");
    assert!(holds_key(&mut fresh, &plan_path(), "households"));
}

/// Every node start writes under a new actor; a plain reopen (the CLI) keeps the stored one
/// unless a node used it; a restore retires it.
#[test]
fn actors_are_never_reused_across_incarnations() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeId::parse("vol-1").unwrap();
    let first = Replica::init(dir.path(), &node, STREET)
        .unwrap()
        .actor()
        .clone();
    let reopened = Replica::open(dir.path()).unwrap().actor().clone();
    assert_eq!(first, reopened, "a CLI reopen keeps the incarnation");
    let mut running = Replica::open(dir.path()).unwrap();
    running.begin_node_incarnation().unwrap();
    let node_actor = running.actor().clone();
    assert_ne!(node_actor, first);
    drop(running);
    let after_node = Replica::open(dir.path()).unwrap().actor().clone();
    assert_ne!(
        after_node, node_actor,
        "a node's actor is never written under again"
    );
    {
        let mut store = gridsync_store::Store::open(dir.path()).unwrap();
        crate::replica::retire_incarnation(&mut store).unwrap();
    }
    let restored = Replica::open(dir.path()).unwrap().actor().clone();
    assert_ne!(restored, after_node, "a restored store draws a new actor");
    for actor in [first, node_actor, after_node, restored] {
        assert_eq!(NodeId::from_actor(&actor), Some(node.clone()));
    }
}

/// A device that signs two different changes with one (actor, seq): the second is refused
/// as evidence of equivocation, the evidence is kept across a restart, and the device's
/// later changes are refused.
#[test]
fn a_device_signing_two_changes_for_one_sequence_number_is_caught() {
    let (ca, mut office, _relay, mut volunteer) = street();
    let building = DocPath::parse("s/g1/b-1").unwrap();
    let write = |member: &mut Member, key: &str| {
        member
            .replica
            .write(&building, gridsync_model::DocKind::Building, |doc| {
                let mut tx = doc.transaction();
                tx.put(ROOT, key, "visited")?;
                tx.commit();
                Ok::<_, automerge::AutomergeError>(())
            })
            .unwrap();
    };
    write(&mut volunteer, "first");
    sync(&mut volunteer, &mut office);
    let before = volunteer.replica.heads(&building).unwrap().unwrap();
    write(&mut volunteer, "second");
    sync(&mut volunteer, &mut office);
    assert!(holds_key(&mut office, &building, "second"));

    // The same device (same key, same actor) signs another change with that seq.
    let mut fork = volunteer
        .replica
        .doc(&building)
        .unwrap()
        .unwrap()
        .fork_at(&before)
        .unwrap();
    fork.set_actor(volunteer.replica.actor().clone());
    let mut tx = fork.transaction();
    tx.put(ROOT, "other", "forked").unwrap();
    tx.commit();
    let twin = fork.get_last_local_change().unwrap();
    let signer = gridsync_net::ChangeSigner::from_pkcs8(&volunteer.key_der).unwrap();
    let head = SignedHead {
        actor: twin.actor_id().clone(),
        seq: twin.seq(),
        signature: ChangeSignature {
            hash: twin.hash(),
            signature: signer.sign(&signed_bytes(&building, &twin.hash())).unwrap(),
        },
    };
    // A carrier holding the twin meets the office: whichever of the two receives the other
    // twin first refuses it as equivocation and keeps the evidence.
    let mut fresh = enroll(&ca, "relay-3", Role::Relay, &["carry:s", "write:s/devices"]);
    fresh
        .replica
        .merge_doc(&building, &fork, vec![head.clone()])
        .unwrap();
    let (at_carrier, at_office) = sync(&mut fresh, &mut office);
    let caught = (building.clone(), RefusalReason::Equivocation);
    assert!(
        at_carrier.contains(&caught) || at_office.contains(&caught),
        "{at_carrier:?} {at_office:?}"
    );
    assert!(!holds_key(&mut office, &building, "other"));
    // At the office, the twin signed head is evidence by itself, whoever relays it.
    assert_eq!(
        office.replica.check_signed_head(&building, &head),
        Err(RefusalReason::Equivocation)
    );
    let evidence: Vec<_> = office.replica.equivocators().cloned().collect();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].node_id, "vol-1");
    assert!(evidence[0].advice().contains("gridsync revoke vol-1"));

    // Kept across a restart, and the device's later changes are refused.
    let dir = office.replica.dir().to_owned();
    drop(std::mem::replace(
        &mut office.replica,
        Replica::open(&dir).unwrap(),
    ));
    office.replica.set_trust_root(ca.cert_der().to_vec());
    assert_eq!(office.replica.equivocators().count(), 1);
    write(&mut volunteer, "third");
    let (_, refused) = sync(&mut volunteer, &mut office);
    assert!(
        !refused.is_empty(),
        "the equivocating device's change was taken"
    );
    assert!(!holds_key(&mut office, &building, "third"));
}

/// A revoked device has no write standing for changes that reach a node after its
/// revocation did, and no device can lift the revocation: a change that deletes or
/// overwrites an entry is refused, also after a restart.
#[test]
fn a_revocation_holds_whatever_a_peer_sends() {
    let (ca, mut office, mut relay, mut volunteer) = street();
    let building = DocPath::parse("s/g1/b-1").unwrap();
    let revocations = crate::revocations::revocations_path(STREET).unwrap();
    let vol = NodeId::parse("vol-1").unwrap();
    let revocation = ca.sign_revocation(&vol, now_secs()).unwrap();
    office
        .replica
        .write_with_genesis(&revocations, crate::revocations::genesis, |doc| {
            crate::revocations::add(doc, &revocation, 1_000)
        })
        .unwrap();
    let (r1, r2) = sync(&mut office, &mut relay);
    assert!(only_waiting(&r1) && only_waiting(&r2), "{r1:?} {r2:?}");

    // The revoked volunteer's new visit is refused by the relay.
    volunteer
        .replica
        .write(&building, gridsync_model::DocKind::Building, |doc| {
            let mut tx = doc.transaction();
            tx.put(ROOT, "after-revocation", "visited")?;
            tx.commit();
            Ok::<_, automerge::AutomergeError>(())
        })
        .unwrap();
    // (A revoked device cannot connect itself: TLS refuses its certificate. Its changes can
    // only travel through a device that has not heard of the revocation yet.)
    let mut unaware = enroll(&ca, "relay-2", Role::Relay, &["carry:s", "write:s/devices"]);
    sync(&mut volunteer, &mut unaware);
    assert!(holds_key(&mut unaware, &building, "after-revocation"));
    let (_, refused) = sync(&mut unaware, &mut relay);
    assert!(
        refused.contains(&(building.clone(), RefusalReason::UnauthorizedAuthor)),
        "{refused:?}"
    );
    assert!(!holds_key(&mut relay, &building, "after-revocation"));

    // A device that may write the revocation list deletes the entry, validly signed: refused.
    let mut rogue = enroll(&ca, "cap-9", Role::Captain, &["write:s", "write:s/devices"]);
    sync(&mut office, &mut rogue);
    rogue
        .replica
        .write_with_genesis(&revocations, crate::revocations::genesis, |doc| {
            let (_, map) = doc.get(ROOT, "revoked")?.expect("the revoked map");
            let mut tx = doc.transaction();
            tx.delete(&map, "vol-1")?;
            tx.commit();
            Ok::<_, automerge::AutomergeError>(())
        })
        .unwrap();
    let (_, refused) = sync(&mut rogue, &mut relay);
    assert!(
        refused.contains(&(revocations.clone(), RefusalReason::BadContent)),
        "{refused:?}"
    );
    // Reopened, the relay still refuses the revoked device.
    let dir = relay.replica.dir().to_owned();
    drop(std::mem::replace(
        &mut relay.replica,
        Replica::open(&dir).unwrap(),
    ));
    relay.replica.set_trust_root(ca.cert_der().to_vec());
    let (_, refused) = sync(&mut unaware, &mut relay);
    assert!(
        refused.contains(&(building.clone(), RefusalReason::UnauthorizedAuthor)),
        "{refused:?}"
    );
}
