//! The street rules on changes to the device directory and the revocation list, and the
//! certificate and signature checks behind them.

use std::sync::OnceLock;

use automerge::legacy::{Key, OpType};
use automerge::{Automerge, Change, ReadDoc as _, ScalarValue};
use gridsync_net::{
    ChangeSigner, RevocationList, SignedRevocation, certificate_public_key, identity_from_cert,
    verify_change_signature, verify_device_certificate, verify_revocation,
};
use gridsync_node::directory::DeviceDirectory;
use gridsync_node::fuzzing::{check_directory_change, check_revocations_change, directory_device};
use gridsync_proto::signature::signed_bytes;
use gridsync_proto::{DocPath, NodeId, SIGNATURE_LEN};

use crate::fixture;
use crate::input::{Input, fix_checksums};

/// The directory document a check starts from: the genesis, or with the office's entry.
fn directory_doc(with_office: bool) -> &'static Automerge {
    static DOCS: OnceLock<[Automerge; 2]> = OnceLock::new();
    let docs = DOCS.get_or_init(|| {
        let genesis = gridsync_node::directory::genesis();
        let mut office = genesis.clone();
        let node = NodeId::parse("office").expect("valid node id");
        gridsync_node::directory::publish(&mut office, &node, fixture::office_cert_der(), 1)
            .expect("office entry");
        [genesis, office]
    });
    &docs[usize::from(with_office)]
}

fn directory_of(doc: &Automerge) -> DeviceDirectory {
    let mut directory = DeviceDirectory::default();
    directory.refresh(doc, fixture::ca_cert_der());
    directory
}

/// A 64-byte signature from arbitrary bytes (cut or zero-padded).
fn signature_from(bytes: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut signature = [0u8; SIGNATURE_LEN];
    let n = bytes.len().min(SIGNATURE_LEN);
    signature[..n].copy_from_slice(&bytes[..n]);
    signature
}

/// Input: a flags byte (bit 0: repair the change's checksum; bit 1: the directory holds
/// the office's entry), then length-prefixed: a change, a signature, a certificate, a
/// public or private key, a message, a signed revocation (JSON).
///
/// The change goes through both street rules (device directory, revocation list) and, when
/// its author is in the directory, its signature is verified with the author's key; the
/// other parts go through certificate, key, signature and revocation verification.
///
/// Invariants: the directory rule answers the same on a fresh directory (no hidden state);
/// every entry a passing directory change adds is a verified device of the node id it is
/// filed under, both while inspecting and once applied; a certificate that verifies against
/// the CA has a public key; a passing change applied to its document leaves a document the
/// node's readers read.
pub fn directory_and_signature_checks(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.byte();
    let change_bytes = input.slice();
    let signature = signature_from(input.slice());
    let cert = input.slice();
    let key = input.slice();
    let message = input.slice();
    let revocation = input.slice();

    let change_bytes = if flags & 1 != 0 {
        fix_checksums(change_bytes)
    } else {
        change_bytes.to_vec()
    };
    if let Some(change) = gridsync_proto::apply::parse_change(change_bytes.as_slice()) {
        check_change(&change, flags & 2 != 0, &signature);
    }

    let verified = verify_device_certificate(fixture::ca_cert_der(), cert);
    let public_key = certificate_public_key(cert);
    let _ = identity_from_cert(cert);
    if verified.is_ok() {
        assert!(
            public_key.is_ok(),
            "a verified certificate has a public key"
        );
    }
    if let Ok(public_key) = &public_key {
        let _ = verify_change_signature(public_key, message, &signature);
    }
    let _ = verify_change_signature(key, message, &signature);
    if let Ok(signer) = ChangeSigner::from_pkcs8(key) {
        let _ = signer.sign(message);
    }
    if let Ok(revocation) = serde_json::from_slice::<SignedRevocation>(revocation) {
        let _ = verify_revocation(fixture::ca_cert_der(), &revocation);
    }
}

fn check_change(change: &Change, with_office: bool, signature: &[u8; SIGNATURE_LEN]) {
    let doc = directory_doc(with_office);
    let mut directory = directory_of(doc);
    let verdict = check_directory_change(change, &mut directory);
    assert_eq!(
        verdict,
        check_directory_change(change, &mut directory_of(doc)),
        "the directory rule has no hidden state"
    );
    let path = DocPath::parse("s/devices").expect("valid path");
    if verdict.is_ok() {
        let mut added = Vec::new();
        for op in &change.decode().operations {
            let (Key::Map(key), OpType::Put(ScalarValue::Bytes(der))) = (&op.key, &op.action)
            else {
                panic!("a passing directory change holds only certificate puts");
            };
            let node = NodeId::parse(key).expect("a passing entry is under a node id");
            let (certified, _) =
                directory_device(&mut directory, &node).expect("a passing entry verifies");
            assert_eq!(certified, node);
            added.push((node, der.clone()));
        }
        let mut applied = doc.clone();
        if apply_as_a_node_does(&mut applied, change) && applied.get_missing_deps(&[]).is_empty() {
            let mut after = directory_of(&applied);
            for (node, der) in added {
                if entry_of(&applied, &node).as_deref() == Some(der.as_slice()) {
                    let (certified, _) = directory_device(&mut after, &node)
                        .expect("an applied passing entry verifies");
                    assert_eq!(certified, node);
                }
            }
        }
    }
    if let Some(author) = NodeId::from_actor(change.actor_id())
        && let Some((_, public_key)) = directory_device(&mut directory, &author)
    {
        let _ =
            verify_change_signature(&public_key, &signed_bytes(&path, &change.hash()), signature);
    }

    if check_revocations_change(change).is_ok() {
        let mut applied = gridsync_node::revocations::genesis();
        if apply_as_a_node_does(&mut applied, change) {
            let _ = gridsync_node::revocations::read(&applied);
            let _ = gridsync_node::revocations::apply_document(
                &applied,
                fixture::ca_cert_der(),
                &RevocationList::new(),
            );
        }
    }
}

/// Applies `change` the way a node's session does once inspection admitted it: the sequence
/// check, then automerge's apply with a panic turned into a refusal. Whether it applied.
fn apply_as_a_node_does(doc: &mut Automerge, change: &Change) -> bool {
    use automerge::sync::{ChunkList, Message, State, SyncDoc as _};
    let Some(base) = Automerge::new().generate_sync_message(&mut State::new()) else {
        return false;
    };
    let message = Message {
        changes: ChunkList::from(vec![change.raw_bytes().to_vec()]),
        ..base
    };
    gridsync_proto::sequence::check_sequences(Some(doc), &message).is_ok()
        && gridsync_proto::apply::receive_guarded(doc, &mut State::new(), message).is_ok()
}

/// The certificate the directory document holds for `node`, if any.
fn entry_of(doc: &Automerge, node: &NodeId) -> Option<Vec<u8>> {
    let (_, map) = doc.get(automerge::ROOT, "devices").ok()??;
    match doc.get(&map, node.as_str()).ok()?? {
        (automerge::Value::Scalar(value), _) => match value.as_ref() {
            ScalarValue::Bytes(bytes) => Some(bytes.clone()),
            _ => None,
        },
        _ => None,
    }
}
