//! Measures what opening a store costs, and how much of it is `PRAGMA quick_check`, on a
//! store of about 50 MB (page cache warm).
//!
//! Run: `cargo run --release -p gridsync-bench --bin store_open [dir]`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use automerge::{AutoCommit, ROOT, transaction::Transactable};
use gridsync_proto::DocPath;
use gridsync_store::{DB_FILE_NAME, Store};

/// Store size to build before measuring.
const TARGET_BYTES: u64 = 50 * 1024 * 1024;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(base)?;
    let mut store = Store::create(dir.path())?;
    // Pseudo-random text so deflate cannot shrink the snapshots to nothing.
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut text = |len: usize| -> String {
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                char::from(b'a' + (state % 26) as u8)
            })
            .collect()
    };
    let mut documents = 0;
    while store.stats()?.file_bytes < TARGET_BYTES {
        let mut doc = AutoCommit::new();
        for field in 0..20 {
            doc.put(ROOT, format!("field-{field}"), text(8_000))?;
        }
        let path = DocPath::parse(&format!(
            "bench/grid-{}/bldg-{}",
            documents / 50,
            documents % 50
        ))?;
        store.compact(&path, doc.document())?;
        documents += 1;
    }
    let stats = store.stats()?;
    drop(store);
    println!(
        "store: {documents} documents, {:.1} MB on disk",
        stats.file_bytes as f64 / 1e6
    );
    let db = dir.path().join(DB_FILE_NAME);
    let time = |f: &mut dyn FnMut() -> Result<(), Box<dyn std::error::Error>>| {
        let mut best = Duration::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            f()?;
            best = best.min(started.elapsed());
        }
        Ok::<_, Box<dyn std::error::Error>>(best)
    };
    let open = time(&mut || {
        drop(Store::open(dir.path())?);
        Ok(())
    })?;
    let quick_check = time(&mut || {
        let conn = rusqlite::Connection::open(&db)?;
        let result: String = conn.query_row("PRAGMA quick_check", [], |row| row.get(0))?;
        assert_eq!(result, "ok", "benchmark store is healthy");
        Ok(())
    })?;
    let bare = time(&mut || {
        let conn = rusqlite::Connection::open(&db)?;
        let _: i64 = conn.query_row("SELECT COUNT(*) FROM format", [], |row| row.get(0))?;
        Ok(())
    })?;
    println!("Store::open (with quick_check): {open:?} (best of 5)");
    println!("quick_check alone:              {quick_check:?}");
    println!("bare open and one query:        {bare:?}");
    Ok(())
}
