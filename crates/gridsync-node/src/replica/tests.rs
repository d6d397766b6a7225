#![allow(clippy::unwrap_used)]

use automerge::transaction::Transactable;

use super::*;

fn put(replica: &mut Replica, path: &str) -> Result<(), ReplicaError> {
    let path = DocPath::parse(path).unwrap();
    replica.write_with_genesis(&path, Automerge::new, |doc| {
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "k", "v")?;
        tx.commit();
        Ok::<_, automerge::AutomergeError>(())
    })
}

#[test]
fn a_device_at_its_document_cap_refuses_new_documents_and_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeId::parse("vol-1").unwrap();
    let mut replica = Replica::init(dir.path(), &node, "panhuo").unwrap();
    replica.set_limits(Some(2), None);
    put(&mut replica, "panhuo/grid-001/b-1").unwrap();
    put(&mut replica, "panhuo/grid-001/b-2").unwrap();
    let refused = put(&mut replica, "panhuo/grid-001/b-3");
    assert!(
        matches!(refused, Err(ReplicaError::StorageCap { documents: 2, .. })),
        "{refused:?}"
    );
    // Documents already held still take writes, and nothing stored was lost.
    put(&mut replica, "panhuo/grid-001/b-1").unwrap();
    assert_eq!(replica.doc_paths().unwrap().len(), 2);
    drop(replica);
    let mut reopened = Replica::open(dir.path()).unwrap();
    assert_eq!(reopened.load_all().unwrap(), 2);
}

#[test]
fn a_bounded_cache_unloads_durable_documents_and_keeps_listing_them() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeId::parse("office").unwrap();
    let mut replica = Replica::init(dir.path(), &node, "panhuo").unwrap();
    replica.set_cache_limit(Some(4));
    let paths: Vec<DocPath> = (0..12)
        .map(|n| DocPath::parse(&format!("panhuo/grid-001/b-{n}")).unwrap())
        .collect();
    for path in &paths {
        put(&mut replica, path.as_str()).unwrap();
    }
    assert!(
        replica.loaded_docs().len() <= 4,
        "{}",
        replica.loaded_docs().len()
    );
    assert_eq!(replica.held_paths().len(), 12);
    let first = &paths[0];
    let listed = replica.known_heads(first).unwrap();
    let loaded = replica.doc(first).unwrap().unwrap().get_heads();
    assert_eq!(listed, loaded, "the index answers what loading finds");

    // A change received into memory and not yet stored is never unloaded.
    let received = &paths[1];
    let before = replica.known_heads(received).unwrap();
    {
        let doc = replica.doc_mut_or_create(received);
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "k", "from a peer").unwrap();
        tx.commit();
    }
    for path in &paths[2..] {
        replica.doc(path).unwrap();
    }
    assert!(replica.loaded_docs().contains_key(received));
    replica.persist_since(received, &before).unwrap();
    let heads = replica.known_heads(received).unwrap();
    drop(replica);

    // Reopened, the index is read back from the store without loading documents.
    let reopened = Replica::open(dir.path()).unwrap();
    assert!(reopened.loaded_docs().is_empty());
    assert_eq!(reopened.known_heads(received), Some(heads));
    assert_eq!(reopened.held_paths().len(), 12);
}

/// A 1 MiB tmpfs mounted on `dir` for the test's life (needs root, as in CI).
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(dir: &Path) -> Result<SmallDisk, String> {
        let output = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if output.status.success() {
            Ok(SmallDisk(dir.to_owned()))
        } else {
            Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
        }
    }
}

impl SmallDisk {
    /// A small tmpfs on a fresh temporary directory, or `None` (said on stderr) where none
    /// can be mounted.
    fn in_temp_dir() -> Option<(tempfile::TempDir, SmallDisk)> {
        let outer = tempfile::tempdir().unwrap();
        match SmallDisk::mount(outer.path()) {
            Ok(disk) => Some((outer, disk)),
            Err(why) => {
                eprintln!("SKIPPED full-disk test: cannot mount a tmpfs ({why})");
                None
            }
        }
    }
}

/// A new replica in `dir` staging its writes with a store writer, as a running node's does.
fn replica_with_writer(
    dir: &Path,
) -> (
    Replica,
    crate::store_writer::StoreWriter,
    crate::store_writer::DurabilityWaiter,
) {
    let node = NodeId::parse("vol-1").unwrap();
    let mut replica = Replica::init(dir, &node, "panhuo").unwrap();
    let (writer, handle) = crate::store_writer::StoreWriter::start(replica.store()).unwrap();
    let durability = handle.waiter();
    replica.use_store_writer(handle);
    (replica, writer, durability)
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_staged_writes_and_memory_falls_back_to_what_is_durable() {
    let Some((outer, _disk)) = SmallDisk::in_temp_dir() else {
        return;
    };
    let ballast = outer.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 256 * 1024]).unwrap();
    let dir = outer.path().join("node");
    let (mut replica, writer, durability) = replica_with_writer(&dir);

    let mut durable_paths = Vec::new();
    let mut failed = None;
    for n in 0..500 {
        let path = DocPath::parse(&format!("panhuo/grid-001/b-{n}")).unwrap();
        let value = noise(4000);
        replica
            .write_with_genesis(&path, Automerge::new, |doc| {
                let mut tx = doc.transaction();
                tx.put(automerge::ROOT, "note", value.as_str())?;
                tx.commit();
                Ok::<_, automerge::AutomergeError>(())
            })
            .unwrap();
        let ticket = replica.last_write_ticket().unwrap();
        match durability.wait(ticket) {
            Ok(()) => durable_paths.push(path),
            Err(error) => {
                failed = Some((path, error));
                break;
            }
        }
    }
    let (failed_path, error) = failed.expect("a 1 MiB disk fills up");
    assert!(!durable_paths.is_empty());
    assert!(error.to_string().contains("full"), "{error}");

    // The failed document is dropped from memory at the next use: it was never durable,
    // so it is no longer held at all; what was durable is all there.
    assert_eq!(replica.heads(&failed_path).unwrap(), None);
    assert!(replica.doc(&failed_path).unwrap().is_none());
    for path in &durable_paths {
        assert!(replica.doc(path).unwrap().is_some(), "{path} lost");
    }

    // Space comes back: the same node writes durably again.
    std::fs::remove_file(&ballast).unwrap();
    put(&mut replica, failed_path.as_str()).unwrap();
    let ticket = replica.last_write_ticket().unwrap();
    durability.wait(ticket).unwrap();
    drop(replica);
    writer.finish();
    let reopened = Replica::open(&dir).unwrap();
    assert_eq!(reopened.held_paths().len(), durable_paths.len() + 1);
}

/// Writes `value` under `key` in the document at `path`.
fn set(replica: &mut Replica, path: &DocPath, key: &str, value: &str) -> Result<(), ReplicaError> {
    replica.write_with_genesis(path, Automerge::new, |doc| {
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, key, value)?;
        tx.commit();
        Ok::<_, automerge::AutomergeError>(())
    })
}

/// Random letters, so that neither SQLite nor automerge's deflate shrinks them much (each
/// call draws new ones).
fn noise(len: usize) -> String {
    static SEED: std::sync::atomic::AtomicU64 =
        std::sync::atomic::AtomicU64::new(0x2545_f491_4f6c_dd1d);
    let mut seed = SEED.fetch_add(0x9e37_79b9_7f4a_7c15, std::sync::atomic::Ordering::Relaxed) | 1;
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            char::from(b'a' + (seed % 26) as u8)
        })
        .collect()
}

/// Fills the file system holding `ballast` up, then frees about `leave` bytes of it.
fn fill_leaving(ballast: &Path, leave: u64) {
    use std::io::Write;
    let mut file = std::fs::File::create(ballast).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    let len = file.metadata().unwrap().len();
    file.set_len(len.saturating_sub(leave)).unwrap();
}

#[test]
fn a_failed_commit_fails_the_writes_of_its_document_staged_behind_it() {
    let Some((outer, _disk)) = SmallDisk::in_temp_dir() else {
        return;
    };
    let dir = outer.path().join("node");
    let (mut replica, writer, durability) = replica_with_writer(&dir);
    let path = DocPath::parse("panhuo/grid-001/b-1").unwrap();
    let peer = NodeId::parse("cap-1").unwrap();
    set(&mut replica, &path, "first", "durable").unwrap();
    durability
        .wait(replica.last_write_ticket().unwrap())
        .unwrap();
    let durable_heads = replica.known_heads(&path).unwrap();

    // Room for a small change, not for a big one.
    let ballast = outer.path().join("ballast");
    fill_leaving(&ballast, 64 * 1024);

    // Another connection holds the write lock, so that the writer takes the big change
    // into a transaction of its own and waits there while the next writes are staged
    // behind it (the sleep gives the writer thread time to take it).
    let mut blocker = rusqlite::Connection::open(replica.store().db_path()).unwrap();
    let lock = blocker
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    set(&mut replica, &path, "big", &noise(300_000)).unwrap();
    let big = replica.last_write_ticket().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    set(&mut replica, &path, "second", "small").unwrap();
    let second = replica.last_write_ticket().unwrap();
    // A sync state claiming the heads of both changes, as a session would stage it.
    let mut claimed = automerge::sync::State::new();
    claimed.shared_heads = replica.known_heads(&path).unwrap();
    replica
        .store_sync_states(&peer, vec![(path.clone(), claimed.encode())])
        .unwrap();
    let sync_state = replica.last_write_ticket().unwrap();
    drop(lock);

    let error = durability.wait(big).unwrap_err();
    assert!(error.to_string().contains("full"), "{error}");
    // The small change would fit, but it builds on the big one: saving it would store a
    // change whose dependency is missing. It fails, with the reason.
    let error = durability
        .wait(second)
        .expect_err("a change staged behind a failed change of its document was saved");
    assert!(error.to_string().contains("full"), "{error}");
    assert!(
        durability.wait(sync_state).is_err(),
        "a sync state claiming lost changes was saved"
    );

    // Memory falls back to what is durable, and a session still holding the state it
    // had before cannot store it.
    assert_eq!(replica.heads(&path).unwrap(), Some(durable_heads));
    replica
        .store_sync_states(&peer, vec![(path.clone(), claimed.encode())])
        .unwrap();

    // Space comes back: the document takes writes again, durably, and loads.
    std::fs::remove_file(&ballast).unwrap();
    set(&mut replica, &path, "third", "after").unwrap();
    durability
        .wait(replica.last_write_ticket().unwrap())
        .unwrap();
    let heads = replica.known_heads(&path).unwrap();
    drop(replica);
    writer.finish();
    let mut reopened = Replica::open(&dir).unwrap();
    assert_eq!(reopened.store().sync_state(&peer, &path).unwrap(), None);
    let doc = reopened.doc(&path).unwrap().expect("the document loads");
    assert_eq!(doc.get_heads(), heads);
    use automerge::ReadDoc;
    let keys: Vec<String> = doc.keys(automerge::ROOT).collect();
    assert_eq!(keys, vec!["first".to_owned(), "third".to_owned()]);
}

#[test]
fn a_device_past_its_byte_cap_refuses_changes() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeId::parse("vol-1").unwrap();
    let mut replica = Replica::init(dir.path(), &node, "panhuo").unwrap();
    // The empty store already takes some pages on disk: a cap of one byte is exceeded.
    replica.set_limits(None, Some(1));
    assert!(matches!(
        put(&mut replica, "panhuo/grid-001/b-1"),
        Err(ReplicaError::StorageCap { .. })
    ));
    replica.set_limits(None, None);
    put(&mut replica, "panhuo/grid-001/b-1").unwrap();
}

/// A session that starts while the store writer has not committed the sync state an earlier
/// session with the same peer staged must start from that state, not the store's older one:
/// otherwise what it sends depends on the writer thread's pace (a simulation run twice, or
/// under load, diverged there).
#[test]
fn a_staged_sync_state_is_what_the_next_session_reads_before_it_is_committed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut replica, writer, durability) = replica_with_writer(&dir.path().join("node"));
    let peer = NodeId::parse("cap-1").unwrap();
    let path = DocPath::parse("panhuo/grid-001/b-1").unwrap();
    replica
        .store_sync_states(&peer, vec![(path.clone(), vec![1])])
        .unwrap();
    durability
        .wait(replica.last_write_ticket().unwrap())
        .unwrap();

    // Another connection holds the write lock: the writer cannot commit the next state.
    let mut blocker = rusqlite::Connection::open(replica.store().db_path()).unwrap();
    let lock = blocker
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .unwrap();
    replica
        .store_sync_states(&peer, vec![(path.clone(), vec![2])])
        .unwrap();
    let staged = replica.last_write_ticket().unwrap();
    assert_eq!(
        replica.store().sync_state(&peer, &path).unwrap(),
        Some(vec![1])
    );
    let read = gridsync_proto::DocumentSet::load_sync_state(&mut replica, &peer, &path);
    assert_eq!(
        read,
        Some(vec![2]),
        "the session read the store's older state"
    );

    drop(lock);
    durability.wait(staged).unwrap();
    let read = gridsync_proto::DocumentSet::load_sync_state(&mut replica, &peer, &path);
    assert_eq!(read, Some(vec![2]));
    assert!(
        replica.staged_sync_states.is_empty(),
        "settled states are dropped"
    );
    drop(replica);
    writer.finish();
}
