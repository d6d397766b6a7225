//! Files that are not healthy gridsync stores are refused with a typed error and left as
//! they were; nothing is ever created over them.

use std::path::Path;

use automerge::Automerge;
use gridsync_store::{DB_FILE_NAME, FORMAT_VERSION, Store, StoreError};

use crate::support::{SplitMix, path, put};

/// Opens the store in `dir`, asserts that `check` accepts the error, and that the database
/// file has exactly the bytes it had before.
fn assert_refused(dir: &Path, check: impl Fn(&StoreError) -> bool) {
    let db = dir.join(DB_FILE_NAME);
    let before = std::fs::read(&db).expect("read file");
    for attempt in [Store::open(dir), Store::open_or_create(dir)] {
        match attempt {
            Ok(_) => panic!("a bad file was opened as a store"),
            Err(e) => assert!(check(&e), "unexpected error: {e:?}"),
        }
    }
    assert_eq!(
        std::fs::read(&db).expect("read file"),
        before,
        "file was modified"
    );
}

/// A store of a few dozen pages with real documents in it, closed.
fn filled_store(dir: &Path) {
    let mut store = Store::create(dir).expect("create");
    let mut doc = Automerge::new();
    let filler = "x".repeat(2000);
    for i in 0..60 {
        store
            .append(
                &path("panhuo/grid-1/bldg-1"),
                &put(&mut doc, &format!("k{i}-{filler}"), "v"),
            )
            .expect("append");
    }
}

#[test]
fn random_bytes_are_not_sqlite() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = SplitMix(42);
    let bytes: Vec<u8> = (0..10_000).map(|_| rng.next() as u8).collect();
    std::fs::write(dir.path().join(DB_FILE_NAME), bytes).expect("write");
    assert_refused(dir.path(), |e| matches!(e, StoreError::NotSqlite { .. }));
}

#[test]
fn an_empty_file_is_truncated_not_a_new_store() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join(DB_FILE_NAME), b"").expect("write");
    assert_refused(dir.path(), |e| matches!(e, StoreError::Truncated { .. }));
}

#[test]
fn a_truncated_store_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    filled_store(dir.path());
    let db = dir.path().join(DB_FILE_NAME);
    let full = std::fs::read(&db).expect("read");
    assert!(
        full.len() >= 8 * 4096,
        "store is big enough: {}",
        full.len()
    );
    // Cut at a page boundary (the header's page count betrays it) and mid-page.
    for cut in [full.len() / 2 / 4096 * 4096, full.len() - 1000, 60] {
        std::fs::write(&db, &full[..cut]).expect("truncate");
        assert_refused(dir.path(), |e| matches!(e, StoreError::Truncated { .. }));
    }
}

#[test]
fn a_store_with_garbage_pages_fails_the_quick_check() {
    let dir = tempfile::tempdir().expect("temp dir");
    filled_store(dir.path());
    let db = dir.path().join(DB_FILE_NAME);
    let mut bytes = std::fs::read(&db).expect("read");
    let mut rng = SplitMix(7);
    // Page 1 keeps the header and schema; everything after it becomes noise.
    for b in &mut bytes[4096..] {
        *b = rng.next() as u8;
    }
    std::fs::write(&db, &bytes).expect("write");
    assert_refused(dir.path(), |e| matches!(e, StoreError::Corrupt { .. }));
}

#[test]
fn another_applications_sqlite_file_is_foreign() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join(DB_FILE_NAME);
    {
        let conn = rusqlite::Connection::open(&db).expect("sqlite");
        conn.execute_batch("CREATE TABLE recipes (name TEXT); INSERT INTO recipes VALUES ('tea');")
            .expect("foreign schema");
    }
    assert_refused(dir.path(), |e| matches!(e, StoreError::Foreign { .. }));

    // Our application id alone is not enough: the format table must be there too.
    {
        let conn = rusqlite::Connection::open(&db).expect("sqlite");
        conn.pragma_update(None, "application_id", gridsync_store::APPLICATION_ID)
            .expect("pragma");
    }
    assert_refused(dir.path(), |e| matches!(e, StoreError::Foreign { .. }));
}

#[test]
fn a_newer_format_version_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    drop(Store::create(dir.path()).expect("create"));
    {
        let conn = rusqlite::Connection::open(dir.path().join(DB_FILE_NAME)).expect("sqlite");
        conn.execute("UPDATE format SET version = ?1", [FORMAT_VERSION + 1])
            .expect("bump version");
    }
    assert_refused(
        dir.path(),
        |e| matches!(e, StoreError::NewerFormat { found, .. } if *found == FORMAT_VERSION + 1),
    );
}
