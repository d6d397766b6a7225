//! Write benchmark: acknowledged durable visits per second, one at a time and batched,
//! beside the in-memory automerge rate for the same records (no store) in the same run.
//!
//! Run in release mode: `cargo run --release -p gridsync-bench --bin store_writes [dir]`.
//! The store lives in a fresh directory under `dir` (default: the system temp dir) per run,
//! so pass a directory on the disk you care about. One visit is one automerge change that
//! puts a map of ten fields under `visits/<id>`, then `save_incremental`, then the append.
//!
//! Targets: at least 1,000 acknowledged visits/s one at a time (bounded by one fsync per
//! append), and batched at least half the in-memory rate.

use std::path::{Path, PathBuf};
use std::time::Instant;

use automerge::{AutoCommit, ObjId, ObjType, ROOT, transaction::Transactable};
use gridsync_proto::DocPath;
use gridsync_store::Store;

/// Building documents the visits are spread over.
const BUILDINGS: usize = 8;
/// Visits per one-at-a-time run.
const SINGLE_VISITS: usize = 2_000;
/// Visits per batched run and per in-memory run.
const BATCH_VISITS: usize = 20_000;
/// Visits per `append_batch`.
const BATCH_SIZE: usize = 100;
/// Runs per measurement; the median is reported.
const RUNS: usize = 5;

/// One building's document with its `visits` map, as a node holds it in memory.
struct Building {
    path: DocPath,
    doc: AutoCommit,
    visits: ObjId,
}

fn buildings() -> Result<Vec<Building>, Box<dyn std::error::Error>> {
    (0..BUILDINGS)
        .map(|i| {
            let mut doc = AutoCommit::new();
            let visits = doc.put_object(ROOT, "visits", ObjType::Map)?;
            doc.commit();
            Ok(Building {
                path: DocPath::parse(&format!("panhuo/grid-017/bldg-{i:02}"))?,
                doc,
                visits,
            })
        })
        .collect()
}

/// Logs visit `n` into its building and returns the incremental bytes to store.
fn log_visit(building: &mut Building, n: usize) -> Result<Vec<u8>, automerge::AutomergeError> {
    let doc = &mut building.doc;
    let visit = doc.put_object(&building.visits, format!("01J{n:023}"), ObjType::Map)?;
    doc.put(&visit, "household", format!("unit-{}-{}", n % 6, n % 40))?;
    doc.put(&visit, "volunteer", "volunteer-0042")?;
    doc.put(&visit, "at", 1_764_400_000_000i64 + n as i64)?;
    doc.put(&visit, "outcome", "contacted")?;
    doc.put(&visit, "residents", (n % 5) as i64)?;
    doc.put(&visit, "temperature_ok", true)?;
    doc.put(&visit, "needs_medicine", n.is_multiple_of(7))?;
    doc.put(&visit, "needs_food", n.is_multiple_of(3))?;
    doc.put(&visit, "note", "left the leaflet at the door")?;
    doc.put(&visit, "device", "tablet-17")?;
    doc.commit();
    Ok(doc.save_incremental())
}

/// Visits per second of automerge alone: transaction and save_incremental, nothing stored.
fn in_memory_rate() -> Result<f64, Box<dyn std::error::Error>> {
    let mut buildings = buildings()?;
    let mut bytes = 0usize;
    let started = Instant::now();
    for n in 0..BATCH_VISITS {
        bytes += log_visit(&mut buildings[n % BUILDINGS], n)?.len();
    }
    std::hint::black_box(bytes);
    Ok(BATCH_VISITS as f64 / started.elapsed().as_secs_f64())
}

/// Acknowledged visits per second with one durable append per visit.
fn single_rate(base: &Path) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir_in(base)?;
    let mut store = Store::create(dir.path())?;
    let mut buildings = buildings()?;
    let mut latencies = Vec::with_capacity(SINGLE_VISITS);
    let started = Instant::now();
    for n in 0..SINGLE_VISITS {
        let building = &mut buildings[n % BUILDINGS];
        let chunk = log_visit(building, n)?;
        let append_started = Instant::now();
        store.append(&building.path, &chunk)?;
        latencies.push(append_started.elapsed());
    }
    let rate = SINGLE_VISITS as f64 / started.elapsed().as_secs_f64();
    latencies.sort();
    let in_store: std::time::Duration = latencies.iter().sum();
    println!(
        "  one-at-a-time run: append latency median {:?}, p99 {:?}, {:.0}% of the time in the store",
        latencies[latencies.len() / 2],
        latencies[latencies.len() * 99 / 100],
        100.0 * in_store.as_secs_f64() / started.elapsed().as_secs_f64()
    );
    Ok(rate)
}

/// Acknowledged visits per second with one durable `append_batch` per `BATCH_SIZE` visits.
fn batched_rate(base: &Path) -> Result<f64, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir_in(base)?;
    let mut store = Store::create(dir.path())?;
    let mut buildings = buildings()?;
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let mut in_store = std::time::Duration::ZERO;
    let started = Instant::now();
    for n in 0..BATCH_VISITS {
        let building = &mut buildings[n % BUILDINGS];
        batch.push((building.path.clone(), log_visit(building, n)?));
        if batch.len() == BATCH_SIZE || n + 1 == BATCH_VISITS {
            let append_started = Instant::now();
            store.append_batch(&batch)?;
            in_store += append_started.elapsed();
            batch.clear();
        }
    }
    let rate = BATCH_VISITS as f64 / started.elapsed().as_secs_f64();
    println!(
        "  batched run: {:.0}% of the time in the store",
        100.0 * in_store.as_secs_f64() / started.elapsed().as_secs_f64()
    );
    let stats = store.stats()?;
    println!(
        "  batched run: {} documents, {} pending chunks, {} KiB of snapshots, {} KiB on disk",
        stats.documents,
        stats.chunks,
        stats.snapshot_bytes / 1024,
        stats.file_bytes / 1024
    );
    Ok(rate)
}

fn median(mut rates: Vec<f64>) -> f64 {
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let base = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    println!(
        "gridsync-store write benchmark in {} ({RUNS} runs each, medians)",
        base.display()
    );
    let (mut memory, mut single, mut batched) = (Vec::new(), Vec::new(), Vec::new());
    for run in 1..=RUNS {
        memory.push(in_memory_rate()?);
        single.push(single_rate(&base)?);
        batched.push(batched_rate(&base)?);
        println!(
            "run {run}: in-memory {:.0}/s, one at a time {:.0}/s, batched {:.0}/s",
            memory[run - 1],
            single[run - 1],
            batched[run - 1]
        );
    }
    let (memory, single, batched) = (median(memory), median(single), median(batched));
    println!("in-memory automerge (transaction + save_incremental): {memory:.0} visits/s");
    println!(
        "durable, one append per visit:      {single:.0} visits/s ({:.3} x in-memory; target >= 1000/s)",
        single / memory
    );
    println!(
        "durable, {BATCH_SIZE} visits per append_batch: {batched:.0} visits/s ({:.3} x in-memory; target >= 0.5 x)",
        batched / memory
    );
    Ok(())
}
