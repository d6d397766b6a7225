//! Appends records to a store until it is killed, acknowledging each one on stdout.
//!
//! Usage: `gridsync-store-crash-writer <store-dir> <first-sequence-number> [max-chunks]`
//!
//! A small `max-chunks` makes the store compact often, so that kills also land inside
//! compactions.
//!
//! Each record is one automerge change that puts key `rec-<n>` = n into one of a few
//! documents (round robin). `ACK <n>` is printed and flushed only after `Store::append`
//! returned `Ok`, so every acknowledged number must survive a SIGKILL at any moment. The
//! crash test in tests/store.rs kills this process at random points and checks exactly that.

use std::io::Write;
use std::path::PathBuf;

use automerge::{Automerge, ROOT, transaction::Transactable};
use gridsync_proto::DocPath;
use gridsync_store::{CompactionPolicy, Store};

/// Documents the records rotate through.
const DOCUMENTS: &[&str] = &[
    "crash/grid-1/bldg-1",
    "crash/grid-1/bldg-2",
    "crash/grid-2/bldg-3",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(dir), Some(first)) = (args.next(), args.next()) else {
        return Err(
            "usage: gridsync-store-crash-writer <store-dir> <first-sequence-number>".into(),
        );
    };
    let first: u64 = first.parse()?;
    let mut store = Store::open_or_create(&PathBuf::from(dir))?;
    if let Some(max_chunks) = args.next() {
        store.set_compaction_policy(CompactionPolicy {
            max_chunks: max_chunks.parse()?,
            ..CompactionPolicy::default()
        });
    }
    let paths = DOCUMENTS
        .iter()
        .map(|p| DocPath::parse(p))
        .collect::<Result<Vec<_>, _>>()?;
    // Continue each document from what is stored, as a restarted node would.
    let mut docs = Vec::new();
    for path in &paths {
        docs.push(store.load_doc(path)?.unwrap_or_else(Automerge::new));
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for seq in first.. {
        let index = usize::try_from(seq).unwrap_or(0) % paths.len();
        let doc = &mut docs[index];
        let before = doc.get_heads();
        let mut tx = doc.transaction();
        tx.put(ROOT, format!("rec-{seq}"), seq)?;
        tx.commit();
        let chunk = doc.save_after(&before);
        store.append(&paths[index], &chunk)?;
        writeln!(out, "ACK {seq}")?;
        out.flush()?;
    }
    Ok(())
}
