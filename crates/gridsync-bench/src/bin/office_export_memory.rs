//! Exporting a week of sweeps in flat memory: 100,000 visits over 1,000 building documents
//! (the reference street's size), streamed by the office's `/api/v1/export.csv` and
//! `/api/v1/export.json`, while a sampler thread watches the process's resident memory.
//!
//! Run with `cargo run --release -p gridsync-bench --bin office_export_memory [VISITS_PER_BUILDING]`.
//! It builds the street in a temporary directory, starts an office node with its HTTP server
//! on loopback, downloads both exports, prints what it saw, and exits non-zero if the
//! resident memory grew by more than a quarter of the export's size while streaming.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gridsync_bench::office_street::{BUILDINGS_PER_GRID, GRIDS, STREET, fill_street, plan_csv};
use gridsync_node::ops::FieldWrite;
use gridsync_office::{OfficeOptions, OfficeState, OfficeToken};
use gridsync_proto::Role;

/// Resident set size of this process, in bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn main() -> Result<()> {
    let per_building: usize = match std::env::args().nth(1) {
        Some(n) => n.parse().context("VISITS_PER_BUILDING must be a number")?,
        None => 100,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(per_building))
}

async fn run(per_building: usize) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = gridsync_testkit::street_ca(STREET)?;
    let (credentials, mut replica) = gridsync_testkit::enroll(
        &ca,
        dir.path(),
        "office",
        Role::Office,
        gridsync_testkit::write_scopes(STREET, STREET)?,
    )?;

    let started = Instant::now();
    FieldWrite::PlanImport { csv: plan_csv() }.apply_now(&mut replica)?;
    let plan = replica.street_plan()?.context("plan imported")?;
    println!(
        "imported a plan of {} households in {} buildings",
        plan.household_count(),
        GRIDS * BUILDINGS_PER_GRID
    );
    let visits = fill_street(&mut replica, per_building)?;
    println!(
        "wrote {visits} visits in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let node = gridsync_testkit::start_loopback_node(credentials, replica, Vec::new())?;
    let token = OfficeToken::generate();
    let aggregated = Instant::now();
    let state = OfficeState::new(
        node.handle().clone(),
        OfficeOptions::daily(token.clone(), 480),
    );
    println!(
        "office aggregated the street in {:.1}s",
        aggregated.elapsed().as_secs_f64()
    );
    // One more visit: the aggregation folds in that one building, not the street.
    let mut versions = state.subscribe();
    versions.borrow_and_update();
    let written = Instant::now();
    node.write(FieldWrite::visit("h-0000-00", "contacted"))?;
    let stored = written.elapsed();
    tokio::time::timeout(Duration::from_secs(30), versions.changed()).await??;
    println!(
        "a new visit was durable after {:.1} ms and in the street's figures after {:.1} ms",
        stored.as_secs_f64() * 1e3,
        written.elapsed().as_secs_f64() * 1e3
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gridsync_office::serve(listener, state, async move {
        let _ = stopped.await;
    }));

    let mut failed = false;
    for path in ["/api/v1/export.csv", "/api/v1/export.json"] {
        let (bytes, lines, baseline, peak, took) = download(addr, path, token.reveal()).await?;
        let growth = peak.saturating_sub(baseline);
        println!(
            "{path}: {:.1} MiB in {lines} lines, {:.1}s; resident memory {:.1} MiB before, peak {:.1} MiB (+{:.1} MiB, {:.1}% of the export)",
            mib(bytes),
            took.as_secs_f64(),
            mib(baseline),
            mib(peak),
            mib(growth),
            100.0 * growth as f64 / bytes.max(1) as f64
        );
        if (lines as usize) < visits + 1 {
            println!("  too few lines: expected at least {}", visits + 1);
            failed = true;
        }
        if growth > bytes / 4 {
            println!("  memory grew with the export: it is not streaming");
            failed = true;
        }
    }
    let _ = stop.send(());
    server.await??;
    node.shutdown().await;
    if failed {
        bail!("export did not stream in flat memory");
    }
    println!("both exports streamed in flat memory");
    Ok(())
}

/// Downloads `path`, counting bytes and lines, while a thread samples resident memory.
async fn download(
    addr: SocketAddr,
    path: &str,
    token: &str,
) -> Result<(u64, u64, u64, u64, Duration)> {
    // The client shares this process: one small request first, so that its own first-use
    // allocations (about 1 MiB) are in the baseline and not counted as the export's.
    let (warm_token, warm_path) = (token.to_owned(), "/api/v1/summary");
    tokio::task::spawn_blocking(move || {
        gridsync_testkit::http::stream_authed(addr, warm_path, &warm_token, |_| {})
    })
    .await??;
    let baseline = rss_bytes();
    let peak = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let started = Instant::now();
    let (path, token) = (path.to_owned(), token.to_owned());
    let (bytes, lines) = tokio::task::spawn_blocking(move || {
        let mut lines = 0u64;
        let (status, bytes) =
            gridsync_testkit::http::stream_authed(addr, &path, &token, |piece| {
                lines += piece.iter().filter(|b| **b == b'\n').count() as u64;
            })?;
        if status != 200 {
            bail!("{path}: status {status}");
        }
        Ok((bytes, lines))
    })
    .await??;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler
        .join()
        .map_err(|_| anyhow::anyhow!("sampler panicked"))?;
    Ok((bytes, lines, baseline, peak.load(Ordering::Relaxed), took))
}
