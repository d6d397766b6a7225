//! A store written by the first format opens under this build: migrated in place, nothing
//! lost, and the additions of formats 2 (document heads, derived values) and 3 (change
//! signatures) usable at once.

use automerge::Automerge;
use gridsync_store::{DB_FILE_NAME, DocumentAppend, FORMAT_VERSION, Store, WriteBatch};

use crate::support::{get, path, put};

/// Turns a freshly made store back into format 1, as the first release wrote it.
fn downgrade_to_format_1(dir: &std::path::Path) {
    let conn = rusqlite::Connection::open(dir.join(DB_FILE_NAME)).expect("sqlite");
    conn.execute_batch(
        "ALTER TABLE documents DROP COLUMN heads;
         DROP TABLE derived;
         DROP TABLE change_signatures;
         UPDATE format SET version = 1;
         PRAGMA user_version = 1;",
    )
    .expect("downgrade");
}

#[test]
fn a_format_1_store_is_migrated_and_keeps_its_documents() {
    assert_eq!(FORMAT_VERSION, 3);
    let dir = tempfile::tempdir().expect("temp dir");
    let building = path("panhuo/grid-1/bldg-1");
    let mut doc = Automerge::new();
    {
        let mut store = Store::create(dir.path()).expect("create");
        store
            .append(&building, &put(&mut doc, "visit-1", "contacted"))
            .expect("append");
    }
    downgrade_to_format_1(dir.path());

    let mut store = Store::open(dir.path()).expect("a format 1 store opens");
    let version: i64 = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME))
        .expect("sqlite")
        .query_row("SELECT version FROM format", [], |row| row.get(0))
        .expect("format row");
    assert_eq!(version, 3);
    let loaded = store.load_doc(&building).expect("load").expect("held");
    assert_eq!(get(&loaded, "visit-1").as_deref(), Some("contacted"));
    // Documents stored before heads were kept list with their heads unknown, until recorded.
    assert_eq!(
        store.doc_heads().expect("heads"),
        vec![(building.clone(), None)]
    );
    store
        .record_heads(&[(building.clone(), loaded.get_heads())])
        .expect("record heads");
    let chunk = put(&mut doc, "visit-2", "absent");
    store
        .write_batch(&WriteBatch {
            appends: vec![DocumentAppend::local(
                building.clone(),
                chunk,
                doc.get_heads(),
            )],
            ..WriteBatch::default()
        })
        .expect("write after migration");
    assert_eq!(
        store.doc_heads().expect("heads"),
        vec![(building.clone(), Some(doc.get_heads()))]
    );
    // Format 3's signatures table is there after the two steps.
    assert!(store.signatures(&building).expect("signatures").is_empty());
}
