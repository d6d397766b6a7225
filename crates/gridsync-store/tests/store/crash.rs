//! SIGKILL a writing process at random moments: the store must open without repair and
//! hold every record the writer acknowledged.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use automerge::ReadDoc;
use gridsync_store::Store;

use crate::support::{SplitMix, path, seed};

/// Documents the crash writer rotates through (see src/bin/crash_writer.rs).
const DOCUMENTS: &[&str] = &[
    "crash/grid-1/bldg-1",
    "crash/grid-1/bldg-2",
    "crash/grid-2/bldg-3",
];

const KILLS: usize = 60;

/// Compaction threshold for the writer: small, so that many kills land inside compactions.
const MAX_CHUNKS: u64 = 4;

#[test]
fn acknowledged_appends_survive_sigkill() {
    let mut rng = SplitMix(seed());
    let dir = tempfile::tempdir().expect("temp dir");
    // The node creates its store once, at enrolment; the crashes happen afterwards.
    drop(Store::create(dir.path()).expect("create store"));
    let writer = env!("CARGO_BIN_EXE_gridsync-store-crash-writer");
    let mut acknowledged: Vec<u64> = Vec::new();
    let mut next_seq = 0u64;
    let started = Instant::now();
    for round in 0..KILLS {
        let mut child = Command::new(writer)
            .arg(dir.path())
            .arg(next_seq.to_string())
            .arg(MAX_CHUNKS.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn crash writer");
        let stdout = child.stdout.take().expect("stdout is piped");
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(n) = line
                    .strip_prefix("ACK ")
                    .and_then(|n| n.parse::<u64>().ok())
                {
                    acks.push(n);
                }
            }
            acks
        });
        std::thread::sleep(Duration::from_millis(5 + rng.below(76)));
        if let Some(status) = child.try_wait().expect("poll writer") {
            let mut stderr = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut stderr);
            }
            panic!("writer exited on its own in round {round}: {status}: {stderr}");
        }
        child.kill().expect("SIGKILL the writer");
        child.wait().expect("reap the writer");
        let acks = reader.join().expect("reader thread");
        if let Some(&last) = acks.last() {
            next_seq = last + 1;
        }
        acknowledged.extend(acks);

        let store = Store::open(dir.path())
            .unwrap_or_else(|e| panic!("store does not open after kill {round}: {e}"));
        let docs: Vec<_> = DOCUMENTS
            .iter()
            .map(|p| store.load_doc(&path(p)).expect("document loads"))
            .collect();
        for &seq in &acknowledged {
            let index = usize::try_from(seq).expect("small") % DOCUMENTS.len();
            let doc = docs[index]
                .as_ref()
                .unwrap_or_else(|| panic!("document {} lost (seq {seq})", DOCUMENTS[index]));
            assert!(
                doc.get(automerge::ROOT, format!("rec-{seq}"))
                    .expect("read root")
                    .is_some(),
                "acknowledged record {seq} lost after kill {round}"
            );
        }
    }
    let stats = Store::open(dir.path())
        .expect("open")
        .stats()
        .expect("stats");
    eprintln!(
        "{KILLS} kills, {} acknowledged records, {:?}, {stats:?}",
        acknowledged.len(),
        started.elapsed()
    );
    assert!(
        stats.snapshot_bytes > 0,
        "compactions ran while the writer was killed"
    );
    assert!(
        acknowledged.len() > KILLS,
        "the writer acknowledged too little to test anything"
    );
}
