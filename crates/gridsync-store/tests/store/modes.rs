//! Keys at rest: the store holds the device key (and at the office the street CA key and
//! the dashboard token), so its directory is owner-only (0700) and every file of it, the
//! write-ahead log and shared-memory index included, and every backup, is 0600. A store
//! left with wider modes by an older version is tightened when opened.
//!
//! The process umask of a test run is usually 022, under which SQLite's own defaults give
//! 0644 files and `create_dir_all` 0755 directories: these tests fail unless the store sets
//! the modes itself.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use automerge::Automerge;
use gridsync_store::{DB_FILE_NAME, Store};

use crate::support::{path, put};

/// The permission bits of `path`, in octal as `ls` and `chmod` write them.
fn mode(path: &Path) -> String {
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode();
    format!("{:o}", mode & 0o7777)
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `gridsync.db`, `gridsync.db-wal` and `gridsync.db-shm` of the store in `dir`.
fn store_files(dir: &Path) -> [PathBuf; 3] {
    let db = dir.join(DB_FILE_NAME);
    let with = |suffix: &str| {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        PathBuf::from(name)
    };
    [db.clone(), with("-wal"), with("-shm")]
}

/// Appends one change, so that the write-ahead log and its index exist while `store` is open.
fn write_something(store: &mut Store) {
    let mut doc = Automerge::new();
    store
        .append(&path("panhuo/grid-001/bldg-1"), &put(&mut doc, "k", "v"))
        .expect("append");
}

#[test]
fn a_new_store_its_wal_and_its_directory_are_owner_only() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("data").join("device");
    let mut store = Store::open_or_create(&dir).expect("create");
    write_something(&mut store);
    assert_eq!(mode(&dir), "700", "data directory");
    for file in store_files(&dir) {
        assert!(
            file.exists(),
            "{} exists while the store is open",
            file.display()
        );
        assert_eq!(mode(&file), "600", "{}", file.display());
    }
}

#[test]
fn a_backup_is_owner_only() {
    let (_live, _elsewhere, backup) = backed_up_store();
    assert_eq!(mode(&backup), "600");
}

/// A store with something in it, backed up to another directory: (the store's directory,
/// the backup's, the backup file).
fn backed_up_store() -> (tempfile::TempDir, tempfile::TempDir, PathBuf) {
    let live = tempfile::tempdir().expect("temp dir");
    let elsewhere = tempfile::tempdir().expect("temp dir");
    let mut store = Store::create(live.path()).expect("create");
    write_something(&mut store);
    let backup = elsewhere.path().join("device.backup");
    store.backup_to(&backup).expect("backup");
    (live, elsewhere, backup)
}

#[test]
fn a_failed_backup_leaves_no_file_behind() {
    let live = tempfile::tempdir().expect("temp dir");
    let store = Store::create(live.path()).expect("create");
    let backup = live.path().join("no-such-dir").join("device.backup");
    assert!(store.backup_to(&backup).is_err());
    assert!(!backup.exists());
}

#[test]
fn a_restored_store_is_owner_only_whatever_the_backup_mode() {
    let (_live, elsewhere, backup) = backed_up_store();
    // A backup copied around with a careless umask or `cp` must not make the store readable.
    chmod(&backup, 0o644);
    let restored_dir = elsewhere.path().join("restored");
    let mut restored = Store::restore(&backup, &restored_dir).expect("restore");
    write_something(&mut restored);
    assert_eq!(mode(&restored_dir), "700", "data directory");
    for file in store_files(&restored_dir) {
        assert_eq!(mode(&file), "600", "{}", file.display());
    }
}

#[test]
fn an_old_store_with_open_modes_is_tightened_on_open() {
    let root = tempfile::tempdir().expect("temp dir");
    let dir = root.path().join("old");
    // As an older gridsync left it (umask 022), with the log and index of a crashed run.
    let mut old = Store::create(&dir).expect("create");
    write_something(&mut old);
    chmod(&dir, 0o755);
    for file in store_files(&dir) {
        chmod(&file, 0o644);
    }
    let _reopened = Store::open(&dir).expect("open");
    assert_eq!(mode(&dir), "700", "data directory");
    for file in store_files(&dir) {
        assert_eq!(mode(&file), "600", "{}", file.display());
    }
}
