//! Replays every saved fuzz input (`corpus/<target>/*`, seeds, minimized corpus and the
//! inputs of crashes that were fixed) through its target on stable, so the normal test
//! suite keeps every finding fixed. `generate_seed_corpus` (ignored) writes the seeds.

use std::fs;
use std::path::{Path, PathBuf};

use gridsync_fuzz::TARGETS;

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

#[test]
fn every_saved_input_replays_without_a_panic() {
    for (name, target) in TARGETS {
        let dir = corpus_dir().join(name);
        let mut files: Vec<PathBuf> = fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{name} has a saved corpus");
        for file in files {
            let data = fs::read(&file).expect("corpus file reads");
            let outcome = std::panic::catch_unwind(|| target(&data));
            assert!(outcome.is_ok(), "{name} panicked on {}", file.display());
        }
    }
}

mod seeds {
    use std::fs;

    use automerge::sync::{Message, State, SyncDoc as _};
    use automerge::transaction::Transactable as _;
    use automerge::{Automerge, ROOT};
    use gridsync_fuzz::fixture::{self, STREET};
    use gridsync_fuzz::input::push_slice;
    use gridsync_net::{ChangeSigner, DeviceIdentity, Invite, StreetCa, StreetCaPem};
    use gridsync_proto::frame::{Frame, GoodbyeReason, Hello, PROTOCOL_VERSION, encode_frame};
    use gridsync_proto::signature::signed_bytes;
    use gridsync_proto::{ChangeSignature, DocPath, NodeId, RefusalReason, Role, Scopes};

    const NOW: u64 = 1_790_000_000;

    fn node(name: &str) -> NodeId {
        NodeId::parse(name).expect("valid node id")
    }

    fn identity(name: &str, role: Role, grants: &[&str]) -> DeviceIdentity {
        DeviceIdentity {
            street: STREET.into(),
            node_id: node(name),
            role,
            scopes: Scopes(grants.iter().map(|g| g.parse().expect("grant")).collect()),
            not_before: NOW - 60,
            not_after: NOW + 100 * 365 * 86_400,
        }
    }

    /// The fixture CA: made once (when the fixture file holds none) and then reused.
    fn ca() -> StreetCa {
        let path = super::corpus_dir().join("../fixtures/street.json");
        let text = fs::read_to_string(&path).expect("fixture file");
        let street: fixture::Street = serde_json::from_str(&text).expect("fixture parses");
        if !street.ca_key_pem.is_empty() {
            return StreetCa::from_pem(&StreetCaPem {
                cert_pem: street.ca_cert_pem,
                key_pem: street.ca_key_pem,
            })
            .expect("fixture CA loads");
        }
        let ca = StreetCa::generate(STREET, NOW).expect("CA");
        let office = ca
            .issue(&identity("office", Role::Office, &["write:s"]))
            .expect("office certificate");
        let pem = ca.to_pem();
        let street = fixture::Street {
            ca_cert_pem: pem.cert_pem,
            ca_key_pem: pem.key_pem,
            ca_cert_der: hex::encode(ca.cert_der()),
            office_cert_der: hex::encode(&office.cert_der),
        };
        let json = serde_json::to_string_pretty(&street).expect("serializes");
        fs::write(&path, json + "\n").expect("fixture written");
        panic!("wrote a new fixture CA; rebuild and run the generator again");
    }

    fn write(target: &str, name: &str, bytes: &[u8]) {
        let dir = super::corpus_dir().join(target);
        fs::create_dir_all(&dir).expect("corpus directory");
        fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed written");
    }

    /// The message `doc`'s holder sends a peer holding `peer` (nothing if `None`) once the
    /// peer has said what it has: the one carrying changes.
    fn message_for(doc: &Automerge, peer: Option<&Automerge>) -> Message {
        let mut ours = doc.clone();
        let mut theirs = peer.cloned().unwrap_or_default();
        let (mut our_state, mut their_state) = (State::new(), State::new());
        for _ in 0..8 {
            if let Some(m) = theirs.generate_sync_message(&mut their_state) {
                ours.receive_sync_message(&mut our_state, m)
                    .expect("applies");
            }
            if let Some(m) = ours.generate_sync_message(&mut our_state) {
                if !m.changes.is_empty() {
                    return m;
                }
                theirs
                    .receive_sync_message(&mut their_state, m)
                    .expect("applies");
            }
        }
        panic!("no message with changes");
    }

    fn put_by(doc: &mut Automerge, author: &str, key: &str) {
        doc.set_actor(node(author).actor_id());
        let mut tx = doc.transaction();
        tx.put(ROOT, key, 1).expect("put on root");
        tx.commit();
    }

    fn inspect_input(header: [u8; 4], message: Message, specs: &[u8]) -> Vec<u8> {
        let mut out = header.to_vec();
        push_slice(&mut out, &message.encode());
        out.extend_from_slice(specs);
        out
    }

    #[test]
    #[ignore = "writes the seed corpus and fixture; run by hand"]
    fn generate_seed_corpus() {
        let ca = ca();
        let issue = |name: &str, role, grants: &[&str]| {
            ca.issue(&identity(name, role, grants)).expect("issued")
        };
        let vol1 = issue("vol-1", Role::Volunteer, &["write:s/g1"]);
        let vol2 = issue("vol-2", Role::Volunteer, &["write:s/g1"]);
        let office_der = fixture::office_cert_der();

        // inspect_and_apply: building, plan, directory and revocation messages.
        let t = "inspect_and_apply";
        let building = gridsync_model::genesis(gridsync_model::DocKind::Building);
        let mut doc = building.clone();
        for i in 0..3 {
            put_by(&mut doc, "vol-1", &format!("k{i}"));
        }
        write(
            t,
            "building-whole",
            &inspect_input([0, 1, 0, 0], message_for(&doc, None), &[]),
        );
        write(
            t,
            "building-incremental",
            &inspect_input([0, 1, 1, 0], message_for(&doc, Some(&building)), &[]),
        );
        put_by(&mut doc, "cap-1", "c");
        put_by(&mut doc, "xen-1", "x");
        put_by(&mut doc, "unknown-1", "u");
        put_by(&mut doc, "vol-2", "v");
        write(
            t,
            "building-several-authors",
            &inspect_input(
                [0, 4, 1, 4],
                message_for(&doc, Some(&building)),
                &[0, 0, 1, 1, 2, 2, 3, 3, 0, 4, 0, 5],
            ),
        );
        write(
            t,
            "building-relayed",
            &inspect_input([0, 2 | 4, 2, 0], message_for(&doc, Some(&building)), &[]),
        );
        let plan = gridsync_model::genesis(gridsync_model::DocKind::StreetPlan);
        let mut doc = plan.clone();
        put_by(&mut doc, "cap-1", "p");
        write(
            t,
            "plan",
            &inspect_input([1, 0, 1, 0], message_for(&doc, Some(&plan)), &[]),
        );

        let directory = gridsync_node::directory::genesis();
        let mut doc = directory.clone();
        doc.set_actor(node("vol-1").actor_id());
        gridsync_node::directory::publish(&mut doc, &node("vol-1"), &vol1.cert_der, 5)
            .expect("publishes");
        write(
            t,
            "directory-own-entry",
            &inspect_input([2, 1, 1, 0], message_for(&doc, Some(&directory)), &[]),
        );
        doc.set_actor(node("office").actor_id());
        gridsync_node::directory::publish(&mut doc, &node("office"), office_der, 6)
            .expect("publishes");
        gridsync_node::directory::publish(&mut doc, &node("vol-2"), &vol2.cert_der, 7)
            .expect("publishes");
        write(
            t,
            "directory-office-files",
            &inspect_input([2, 2, 1, 0], message_for(&doc, Some(&directory)), &[]),
        );
        write(
            t,
            "directory-whole",
            &inspect_input([2, 2, 0, 0], message_for(&doc, None), &[]),
        );

        let revocations = gridsync_node::revocations::genesis();
        let mut doc = revocations.clone();
        doc.set_actor(node("office").actor_id());
        let revoked = ca.sign_revocation(&node("vol-9"), NOW).expect("signs");
        gridsync_node::revocations::add(&mut doc, &revoked, 9).expect("adds");
        write(
            t,
            "revocations",
            &inspect_input([3, 2, 1, 0], message_for(&doc, Some(&revocations)), &[]),
        );

        // directory_and_signature_checks: real directory and revocation changes, signed.
        let t = "directory_and_signature_checks";
        let devices = DocPath::parse("s/devices").expect("valid path");
        let mut doc = directory.clone();
        doc.set_actor(node("vol-1").actor_id());
        gridsync_node::directory::publish(&mut doc, &node("vol-1"), &vol1.cert_der, 5)
            .expect("publishes");
        let own = doc.get_changes(&directory.get_heads()).remove(0);
        let signer = ChangeSigner::from_pkcs8(&vol1.key_der).expect("signer");
        let signed = signed_bytes(&devices, &own.hash());
        let signature = signer.sign(&signed).expect("signs");
        let public_key = gridsync_net::certificate_public_key(&vol1.cert_der).expect("key");
        let revocation_json = serde_json::to_vec(&revoked).expect("serializes");
        let directory_input = |flags: u8, change: &[u8], key: &[u8]| {
            let mut out = vec![flags];
            push_slice(&mut out, change);
            push_slice(&mut out, &signature);
            push_slice(&mut out, &vol1.cert_der);
            push_slice(&mut out, key);
            push_slice(&mut out, &signed);
            push_slice(&mut out, &revocation_json);
            out
        };
        write(
            t,
            "own-entry",
            &directory_input(0, own.raw_bytes(), &public_key),
        );
        write(
            t,
            "own-entry-pkcs8",
            &directory_input(3, own.raw_bytes(), &vol1.key_der),
        );
        let mut doc = gridsync_node::directory::genesis();
        doc.set_actor(node("office").actor_id());
        gridsync_node::directory::publish(&mut doc, &node("office"), office_der, 6)
            .expect("publishes");
        let heads = doc.get_heads();
        gridsync_node::directory::publish(&mut doc, &node("vol-2"), &vol2.cert_der, 7)
            .expect("publishes");
        let office_files = doc.get_changes(&heads).remove(0);
        write(
            t,
            "office-files",
            &directory_input(2, office_files.raw_bytes(), &public_key),
        );
        let mut doc = revocations.clone();
        doc.set_actor(node("office").actor_id());
        gridsync_node::revocations::add(&mut doc, &revoked, 9).expect("adds");
        let added = doc.get_changes(&revocations.get_heads()).remove(0);
        write(
            t,
            "revocation-entry",
            &directory_input(0, added.raw_bytes(), &public_key),
        );

        // parse_invite: real invites from the fixture CA.
        let t = "parse_invite";
        let invite = Invite::new(&ca, &vol1, vec!["192.0.2.1:7420".into()]);
        write(t, "volunteer", &invite.to_bytes());
        let office = issue("office-2", Role::Office, &["write:s"]);
        write(t, "office", &Invite::new(&ca, &office, vec![]).to_bytes());
        let mut wrong_key = invite.clone();
        wrong_key.key_pem = Invite::new(&ca, &vol2, vec![]).key_pem;
        write(t, "wrong-key", &wrong_key.to_bytes());

        // decode_frames: a session's frames back to back.
        let t = "decode_frames";
        let frames = [
            Frame::Hello(Hello {
                protocol_version: PROTOCOL_VERSION,
                node_id: node("vol-1"),
                role: Role::Volunteer,
                scopes: Scopes(vec!["write:s/g1".parse().expect("grant")]),
            }),
            Frame::Inventory(vec![]),
            Frame::DocSync {
                path: DocPath::parse("s/g1/b1").expect("valid path"),
                message: message_for(
                    &gridsync_model::genesis(gridsync_model::DocKind::Building),
                    None,
                )
                .encode(),
                signatures: vec![ChangeSignature {
                    hash: own.hash(),
                    signature,
                }],
            },
            Frame::Refused {
                path: DocPath::parse("s/plan").expect("valid path"),
                reason: RefusalReason::BadSignature,
            },
            Frame::Goodbye {
                reason: GoodbyeReason::Normal,
                detail: "bye".into(),
            },
        ];
        for split in [1u8, 7, 255] {
            let mut out = vec![split];
            for frame in &frames {
                out.extend(encode_frame(frame).expect("encodes"));
            }
            write(t, &format!("session-split-{split}"), &out);
        }
    }
}

/// The input that made automerge panic in `import_ops` (a revocation change naming an actor
/// the document does not know, passing the street rules): through the path a node takes,
/// the sequence check and the guarded apply, it is refused and nothing panics.
#[test]
fn the_change_automerge_panicked_on_does_no_harm_on_the_node_path() {
    use automerge::sync::{Message, State, SyncDoc as _};
    use gridsync_fuzz::input::{Input, fix_checksums};

    let data = fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("corpus/directory_and_signature_checks/crash-automerge-import-ops-unknown-actor"),
    )
    .expect("the saved crash input");
    let mut input = Input::new(&data);
    let flags = input.byte();
    let change = input.slice();
    let change = if flags & 1 != 0 {
        fix_checksums(change)
    } else {
        change.to_vec()
    };
    let parsed = automerge::Change::try_from(change.as_slice()).expect("the change parses");
    assert!(gridsync_node::fuzzing::check_revocations_change(&parsed).is_ok());
    let mut doc = gridsync_node::revocations::genesis();
    let base = automerge::Automerge::new()
        .generate_sync_message(&mut State::new())
        .expect("an opening message");
    let message = Message {
        changes: automerge::sync::ChunkList::from(vec![change.clone()]),
        ..base
    };
    // Refused by the sequence check, or applied (or held back for a missing dependency)
    // by the guarded apply, or refused by it: never a panic, and the document stays whole.
    if gridsync_proto::sequence::check_sequences(Some(&doc), &message).is_ok() {
        let applied = gridsync_proto::apply::receive_guarded(&mut doc, &mut State::new(), message);
        assert!(
            !matches!(applied, Err(gridsync_proto::apply::ApplyError::Panicked)),
            "automerge panicked"
        );
        let reloaded = automerge::Automerge::load(&doc.save()).expect("the document reloads");
        assert_eq!(reloaded.get_heads(), doc.get_heads());
    }
}
