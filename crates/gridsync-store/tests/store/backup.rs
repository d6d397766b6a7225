//! A backup taken while the store is in use restores into a store that opens cleanly and
//! holds the same documents and metadata; a bad backup is refused and leaves nothing behind.

use automerge::Automerge;
use gridsync_store::{DB_FILE_NAME, Store, StoreError};

use crate::support::{get, path, put};

#[test]
fn backup_restores_documents_and_meta() {
    let live = tempfile::tempdir().expect("temp dir");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let doc_path = path("panhuo/grid-001/bldg-1");
    let mut store = Store::create(live.path()).expect("create");
    let mut doc = Automerge::new();
    for i in 0..20 {
        store
            .append(&doc_path, &put(&mut doc, &format!("k{i}"), "v"))
            .expect("append");
    }
    store.put_meta("node_id", b"office").expect("meta");

    let backup = elsewhere.path().join("office.backup");
    store
        .backup_to(&backup)
        .expect("backup while the store is open");
    assert!(matches!(
        store.backup_to(&backup),
        Err(StoreError::AlreadyExists(_))
    ));
    // The live store keeps working after the backup.
    store
        .append(&doc_path, &put(&mut doc, "after", "backup"))
        .expect("append after backup");

    let restored_dir = elsewhere.path().join("restored");
    let restored = Store::restore(&backup, &restored_dir).expect("restore");
    let loaded = restored
        .load_doc(&doc_path)
        .expect("load")
        .expect("document present");
    assert_eq!(get(&loaded, "k19").as_deref(), Some("v"));
    assert_eq!(
        get(&loaded, "after"),
        None,
        "the backup is the state at backup time"
    );
    assert_eq!(
        restored.get_meta("node_id").expect("meta").as_deref(),
        Some(&b"office"[..])
    );
    drop(restored);
    assert!(
        Store::open(&restored_dir).is_ok(),
        "the restored store reopens"
    );
    assert!(matches!(
        Store::restore(&backup, &restored_dir),
        Err(StoreError::AlreadyExists(_))
    ));
}

#[test]
fn a_backup_that_is_not_a_store_is_refused_and_leaves_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let garbage = dir.path().join("garbage.backup");
    std::fs::write(&garbage, vec![7u8; 8192]).expect("write garbage");
    let target = dir.path().join("restored");
    assert!(Store::restore(&garbage, &target).is_err());
    assert!(!target.join(DB_FILE_NAME).exists());
}
