//! A full disk makes an append fail with a clear error; everything stored before stays, and
//! the store works again once space is back. Runs on a 1 MiB tmpfs (needs root).

use std::path::{Path, PathBuf};
use std::process::Command;

use automerge::Automerge;
use gridsync_store::{Store, StoreError};

use crate::support::{SplitMix, get, path, put, seed};

/// Unmounts the tmpfs when the test ends, also on panic.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn mount_small_tmpfs(dir: &Path) -> Result<Mounted, String> {
    let output = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(dir)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if output.status.success() {
        Ok(Mounted(dir.to_owned()))
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

#[test]
fn a_full_disk_refuses_the_write_and_the_store_keeps_working() {
    let outer = tempfile::tempdir().expect("temp dir");
    let _mounted = match mount_small_tmpfs(outer.path()) {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED full-disk test: cannot mount a tmpfs ({why})");
            return;
        }
    };
    let dir = outer.path().join("store");
    let ballast = outer.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 256 * 1024]).expect("ballast");
    let mut store = Store::create(&dir).expect("create store on tmpfs");
    store.put_meta("node-id", b"volunteer-3").expect("meta");
    let p = path("panhuo/grid-9/bldg-4");
    let mut doc = Automerge::new();
    let mut rng = SplitMix(seed());
    let mut stored = Vec::new();
    let mut full = None;
    for i in 0..2000 {
        // Random text so that neither SQLite nor automerge's deflate shrinks it much.
        let value: String = (0..4000)
            .map(|_| char::from(b'a' + rng.below(26) as u8))
            .collect();
        let key = format!("visit-{i}");
        let mut attempt = doc.clone();
        let chunk = put(&mut attempt, &key, &value);
        match store.append(&p, &chunk) {
            Ok(()) => {
                doc = attempt;
                stored.push((key, value));
            }
            Err(e) => {
                full = Some(e);
                break;
            }
        }
    }
    let error = full.expect("a 1 MiB tmpfs fills up");
    assert!(
        matches!(error, StoreError::DiskFull(_)),
        "unexpected error: {error:?}"
    );
    assert!(
        !stored.is_empty(),
        "some appends succeeded before the disk filled"
    );

    // Everything acknowledged is still there, reads work, and the failed write left no trace.
    let check = |store: &Store, stored: &[(String, String)]| {
        let loaded = store.load_doc(&p).expect("load").expect("present");
        for (key, value) in stored {
            assert_eq!(get(&loaded, key).as_ref(), Some(value), "{key} lost");
        }
        assert_eq!(
            store.get_meta("node-id").expect("meta"),
            Some(b"volunteer-3".to_vec())
        );
    };
    check(&store, &stored);

    // Space comes back: the same store object accepts writes again.
    std::fs::remove_file(&ballast).expect("free space");
    let chunk = put(&mut doc, "after", "space");
    store
        .append(&p, &chunk)
        .expect("append after space is back");
    stored.push(("after".into(), "space".into()));
    check(&store, &stored);
    drop(store);
    let reopened = Store::open(&dir).expect("reopen");
    check(&reopened, &stored);
}
