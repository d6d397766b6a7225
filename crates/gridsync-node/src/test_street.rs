//! A small street for gridsync-node's tests: a street CA, and members (office, relay,
//! volunteer) enrolled with real keys and certificates, each with a replica on disk.

#![allow(clippy::unwrap_used)]

use automerge::ROOT;
use automerge::ReadDoc;
use automerge::transaction::Transactable;
use gridsync_net::{DeviceIdentity, StreetCa};
use gridsync_proto::{DocPath, LocalIdentity, NodeId, PeerIdentity, Role, Scopes};

use crate::replica::Replica;

pub(crate) const STREET: &str = "s";

pub(crate) fn now_secs() -> u64 {
    crate::clock::unix_ms() / 1000
}

pub(crate) struct Member {
    pub(crate) identity: LocalIdentity,
    pub(crate) replica: Replica,
    pub(crate) key_der: Vec<u8>,
    _dir: tempfile::TempDir,
}

pub(crate) fn enroll(ca: &StreetCa, name: &str, role: Role, grants: &[&str]) -> Member {
    let scopes = Scopes(grants.iter().map(|g| g.parse().unwrap()).collect());
    let node_id = NodeId::parse(name).unwrap();
    let issued = ca
        .issue(&DeviceIdentity {
            street: STREET.into(),
            node_id: node_id.clone(),
            role,
            scopes: scopes.clone(),
            not_before: now_secs() - 60,
            not_after: now_secs() + 3600,
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut replica = Replica::init(dir.path(), &node_id, STREET).unwrap();
    replica.set_trust_root(ca.cert_der().to_vec());
    replica.set_signing_key(&issued.key_der).unwrap();
    replica
        .publish_device_certificate(&issued.cert_der, 1_000)
        .unwrap();
    Member {
        identity: LocalIdentity {
            node_id,
            role,
            scopes,
        },
        replica,
        key_der: issued.key_der,
        _dir: dir,
    }
}

pub(crate) fn peer_of(member: &Member) -> PeerIdentity {
    PeerIdentity {
        node_id: member.identity.node_id.clone(),
        role: member.identity.role,
        scopes: member.identity.scopes.clone(),
    }
}

pub(crate) fn plan_path() -> DocPath {
    gridsync_model::plan_path(STREET).unwrap()
}

pub(crate) fn street() -> (StreetCa, Member, Member, Member) {
    let ca = StreetCa::generate(STREET, now_secs()).unwrap();
    let office = enroll(&ca, "office", Role::Office, &["write:s"]);
    let relay = enroll(&ca, "relay-1", Role::Relay, &["carry:s", "write:s/devices"]);
    let volunteer = enroll(
        &ca,
        "vol-1",
        Role::Volunteer,
        &[
            "write:s/g1",
            "write:s/devices",
            "carry:s/plan",
            "carry:s/revocations",
        ],
    );
    (ca, office, relay, volunteer)
}

pub(crate) fn office_writes_plan(office: &mut Member, key: &str) {
    office
        .replica
        .write(&plan_path(), gridsync_model::DocKind::StreetPlan, |doc| {
            let mut tx = doc.transaction();
            tx.put(ROOT, key, "from the office")?;
            tx.commit();
            Ok::<_, automerge::AutomergeError>(())
        })
        .unwrap();
}

pub(crate) fn holds_key(member: &mut Member, path: &DocPath, key: &str) -> bool {
    member
        .replica
        .doc(path)
        .unwrap()
        .is_some_and(|doc| doc.get(ROOT, key).unwrap().is_some())
}
