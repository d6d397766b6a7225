//! How fresh the office's figures stay under a steady stream of incoming changes, and how fast
//! it exports: an office holding 1,000 building documents (the reference street's size, 20
//! visits each) and a captain connected to it over QUIC on loopback that logs visits to
//! households spread across the street.
//!
//! Run with `cargo run --release -p gridsync-bench --bin office_latency`.
//! For every visit the captain writes it takes the time at which `write` returned and the time
//! at which the office's aggregation first counts it (the building's visit count reaches what
//! the write makes it), and reports p50/p99/max of that latency: the change's trip over QUIC,
//! the office's durable store and the fold into the aggregation. The office-local part starts
//! when the office's change feed announced the document (the `DocChange` a peer's sync made).
//! Two rates: a steady 20 writes a second, then writes back to back. Then it streams
//! `/api/v1/export.csv` over HTTP and the same rows in-process, and prints records a second.
//! The machine's load average is printed beside the figures: on a shared machine it explains
//! a good part of the tail.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use gridsync_bench::office_street::{
    BUILDINGS, HOUSEHOLDS_PER_UNIT, STREET, UNITS, building_of, fill_street, plan_csv,
};
use gridsync_node::node::RunningNode;
use gridsync_node::ops::FieldWrite;
use gridsync_office::aggregate::is_building_path;
use gridsync_office::{OfficeOptions, OfficeState, OfficeToken};
use gridsync_proto::{DocPath, Role};
use gridsync_testkit::{enroll_street_writer as enroll, start_loopback_node as start_node};

/// Visits each building document holds before the measurement.
const VISITS_PER_BUILDING: usize = 20;
/// Writes in each phase.
const WRITES_PER_PHASE: usize = 300;
/// Pace of the steady phase.
const STEADY_WRITES_PER_SECOND: u64 = 20;
/// Longest wait for the office to count a phase's writes.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for the captain's first sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(300);

/// The load average line of the machine (1, 5 and 15 minutes).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// One measured write: when it started and returned on the captain, when the office's change
/// feed announced its document, and when the office's aggregation first counted it.
struct Probe {
    path: DocPath,
    building: String,
    /// The building's visit count once this write is counted.
    expected_visits: u32,
    started: Instant,
    returned: Option<Instant>,
    counted: Option<Instant>,
}

/// Probes shared by the writer, the change-feed listener and the aggregation watcher.
#[derive(Default)]
struct Probes {
    all: Mutex<Vec<Probe>>,
    /// Every change the office received from a peer: (document, when the feed delivered it).
    peer_changes: Mutex<Vec<(DocPath, Instant)>>,
}

impl Probes {
    fn probes(&self) -> std::sync::MutexGuard<'_, Vec<Probe>> {
        // Invariant: nothing panics while holding this lock; recover the data regardless.
        self.all.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn peer_changes(&self) -> std::sync::MutexGuard<'_, Vec<(DocPath, Instant)>> {
        // Invariant: as above.
        self.peer_changes.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn uncounted(&self) -> usize {
        self.probes().iter().filter(|p| p.counted.is_none()).count()
    }
}

/// Marks probes as counted each time the office publishes a new aggregation version.
async fn watch_aggregation(state: OfficeState, probes: Arc<Probes>) {
    let mut versions = state.subscribe();
    loop {
        if versions.changed().await.is_err() {
            return;
        }
        versions.borrow_and_update();
        let now = Instant::now();
        let mut all = probes.probes();
        state.with_aggregator(|agg| {
            for probe in all.iter_mut().filter(|p| p.counted.is_none()) {
                let visits = agg
                    .building(&probe.building)
                    .map_or(0, |s| s.totals.records.visits);
                if visits >= probe.expected_visits {
                    probe.counted = Some(now);
                }
            }
        });
    }
}

/// Timestamps every change the office's node received from a peer.
async fn listen_to_feed(
    mut changes: tokio::sync::broadcast::Receiver<gridsync_node::DocChange>,
    probes: Arc<Probes>,
) {
    loop {
        match changes.recv().await {
            Ok(change) => {
                if change.from.is_some() {
                    probes.peer_changes().push((change.path, Instant::now()));
                }
            }
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
        }
    }
}

/// Nearest-rank percentile of sorted `values`.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// What one phase measured.
struct PhaseResult {
    name: &'static str,
    writes: usize,
    took: Duration,
    write_ms: Vec<f64>,
    end_to_end_ms: Vec<f64>,
    office_local_ms: Vec<f64>,
    uncounted: usize,
    load: String,
}

/// Runs one phase: `WRITES_PER_PHASE` visits from the captain, `pace` apart (back to back if
/// `None`), then waits until the office counted them all.
async fn run_phase(
    name: &'static str,
    captain: &RunningNode,
    probes: &Arc<Probes>,
    counts: &mut [u32],
    first_write: usize,
    pace: Option<Duration>,
) -> Result<PhaseResult> {
    probes.probes().clear();
    probes.peer_changes().clear();
    let mut ticker = pace.map(|p| {
        let mut t = tokio::time::interval(p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let outcomes = ["contacted", "not-home", "refused", "contacted"];
    let started = Instant::now();
    for i in 0..WRITES_PER_PHASE {
        match ticker.as_mut() {
            Some(t) => {
                t.tick().await;
            }
            None => tokio::task::yield_now().await,
        }
        let n = first_write + i;
        // A stride coprime with the street's size: consecutive writes land far apart.
        let k = (n * 7919) % BUILDINGS;
        let (grid, building) = building_of(k);
        counts[k] += 1;
        let index = {
            let mut all = probes.probes();
            all.push(Probe {
                path: gridsync_model::building_path(STREET, &grid, &building)?,
                building: building.clone(),
                expected_visits: counts[k],
                started: Instant::now(),
                returned: None,
                counted: None,
            });
            all.len() - 1
        };
        captain.write(FieldWrite::visit(
            format!(
                "h-{}-{}{}",
                &building[2..],
                n % UNITS,
                (n / UNITS) % HOUSEHOLDS_PER_UNIT
            ),
            outcomes[n % outcomes.len()],
        ))?;
        probes.probes()[index].returned = Some(Instant::now());
    }
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while probes.uncounted() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let took = started.elapsed();
    let load = load_average();

    let all = probes.probes();
    let changes = probes.peer_changes();
    let mut write_ms = Vec::new();
    let mut end_to_end_ms = Vec::new();
    let mut office_local_ms = Vec::new();
    for probe in all.iter() {
        let Some(returned) = probe.returned else {
            continue;
        };
        write_ms.push(ms(returned - probe.started));
        let Some(counted) = probe.counted else {
            continue;
        };
        end_to_end_ms.push(ms(counted.saturating_duration_since(returned)));
        // The first change of this document the office received after the write began.
        let arrived = changes
            .iter()
            .filter(|(path, at)| *path == probe.path && *at >= probe.started && *at <= counted)
            .map(|(_, at)| *at)
            .min();
        if let Some(arrived) = arrived {
            office_local_ms.push(ms(counted - arrived));
        }
    }
    for v in [&mut write_ms, &mut end_to_end_ms, &mut office_local_ms] {
        v.sort_by(f64::total_cmp);
    }
    Ok(PhaseResult {
        name,
        writes: WRITES_PER_PHASE,
        took,
        write_ms,
        end_to_end_ms,
        office_local_ms,
        uncounted: all.iter().filter(|p| p.counted.is_none()).count(),
        load,
    })
}

/// Downloads `path` over HTTP (timed until the last byte) and counts the body's records
/// (lines after the CSV header) and bytes.
async fn download(addr: SocketAddr, path: &str, token: &str) -> Result<(u64, u64, Duration)> {
    let (path, token) = (path.to_owned(), token.to_owned());
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let mut lines = 0u64;
        let (status, bytes) =
            gridsync_testkit::http::stream_authed(addr, &path, &token, |piece| {
                lines += piece.iter().filter(|b| **b == b'\n').count() as u64;
            })?;
        let took = started.elapsed();
        if status != 200 {
            bail!("{path}: status {status}");
        }
        // The header line is not a record.
        Ok((lines.saturating_sub(1), bytes, took))
    })
    .await?
}

/// The export's rows written as CSV into a sink, in-process: the same work as the HTTP export
/// without the socket (one document copied out of the replica at a time).
fn export_in_process(node: &RunningNode) -> Result<(u64, Duration)> {
    let started = Instant::now();
    let paths: Vec<DocPath> = node
        .handle()
        .lock_replica()
        .doc_paths()?
        .into_iter()
        .filter(|p| is_building_path(STREET, p))
        .collect();
    let mut writer = csv::Writer::from_writer(std::io::sink());
    let mut rows = 0u64;
    for path in paths {
        // Loaded from the store if it is not in memory, with its first sight, as the
        // office's export does.
        let (doc, sight) = {
            let mut replica = node.handle().lock_replica();
            let now = gridsync_node::node::unix_ms() as i64;
            let Some(sight) = replica.first_sight(&path, now)? else {
                continue;
            };
            let Some(doc) = replica.doc(&path)?.cloned() else {
                continue;
            };
            (doc, sight)
        };
        for row in gridsync_model::export_rows(&doc, &path, &sight).filter_map(Result::ok) {
            writer.serialize(&row)?;
            rows += 1;
        }
    }
    writer.flush()?;
    Ok((rows, started.elapsed()))
}

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run())
}

async fn run() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = gridsync_testkit::street_ca(STREET)?;
    println!("load average at start (1/5/15 min): {}", load_average());

    let setup = Instant::now();
    let (credentials, mut replica) = enroll(&ca, dir.path(), "office", Role::Office)?;
    FieldWrite::PlanImport { csv: plan_csv() }.apply_now(&mut replica)?;
    let visits = fill_street(&mut replica, VISITS_PER_BUILDING)?;
    let office = start_node(credentials, replica, Vec::new())?;
    let token = OfficeToken::generate();
    let state = OfficeState::new(
        office.handle().clone(),
        OfficeOptions::daily(token.clone(), 480),
    );
    println!(
        "office: {BUILDINGS} building documents, {visits} visits, aggregated; set up in {:.1}s",
        setup.elapsed().as_secs_f64()
    );
    let probes = Arc::new(Probes::default());
    let watcher = tokio::spawn(watch_aggregation(state.clone(), probes.clone()));
    let feed = tokio::spawn(listen_to_feed(office.handle().subscribe(), probes.clone()));

    // The captain syncs the plan and every building document before the measurement.
    let sync = Instant::now();
    let (credentials, replica) = enroll(&ca, dir.path(), "cap-1", Role::Captain)?;
    let captain = start_node(credentials, replica, vec![office.local_addr])?;
    loop {
        let (has_plan, buildings) = {
            let mut replica = captain.handle().lock_replica();
            let buildings = replica
                .doc_paths()?
                .iter()
                .filter(|p| is_building_path(STREET, p))
                .count();
            (replica.street_plan()?.is_some(), buildings)
        };
        if has_plan && buildings >= BUILDINGS {
            break;
        }
        if sync.elapsed() > SYNC_TIMEOUT {
            bail!(
                "captain holds the plan: {has_plan}, {buildings} buildings after {SYNC_TIMEOUT:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "captain synced the plan and {BUILDINGS} building documents over QUIC in {:.1}s",
        sync.elapsed().as_secs_f64()
    );
    // Let the first sync's last messages settle before measuring.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let mut counts = vec![VISITS_PER_BUILDING as u32; BUILDINGS];
    let steady = run_phase(
        "steady 20/s",
        &captain,
        &probes,
        &mut counts,
        0,
        Some(Duration::from_millis(1000 / STEADY_WRITES_PER_SECOND)),
    )
    .await?;
    let burst = run_phase(
        "back to back",
        &captain,
        &probes,
        &mut counts,
        WRITES_PER_PHASE,
        None,
    )
    .await?;

    println!();
    println!(
        "Change arriving at the office -> views reflecting it ({BUILDINGS} building documents, captain over QUIC on loopback)"
    );
    println!(
        "{:<13} {:>6} {:>7} | {:>24} | {:>24} | {:>21} | {:>9} | load 1/5/15",
        "phase",
        "writes",
        "rate/s",
        "end-to-end p50/p99/max",
        "office-local p50/p99/max",
        "captain write p50/p99",
        "uncounted"
    );
    for r in [&steady, &burst] {
        let fmt3 = |v: &[f64]| {
            format!(
                "{:.1}/{:.1}/{:.1} ms",
                percentile(v, 0.5),
                percentile(v, 0.99),
                v.last().copied().unwrap_or(f64::NAN)
            )
        };
        println!(
            "{:<13} {:>6} {:>7.0} | {:>24} | {:>24} | {:>21} | {:>9} | {}",
            r.name,
            r.writes,
            r.writes as f64 / r.took.as_secs_f64(),
            fmt3(&r.end_to_end_ms),
            fmt3(&r.office_local_ms),
            format!(
                "{:.1}/{:.1} ms",
                percentile(&r.write_ms, 0.5),
                percentile(&r.write_ms, 0.99)
            ),
            r.uncounted,
            r.load
        );
    }
    println!(
        "(end-to-end: captain's write returned -> office aggregation counts it; office-local: \
         office's change feed announced the document -> aggregation counts it; rate: writes over \
         the phase including the wait for the last to be counted)"
    );

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gridsync_office::serve(listener, state, async move {
        let _ = stopped.await;
    }));
    println!();
    println!("Export throughput");
    println!(
        "{:<28} {:>8} {:>9} {:>8} {:>12} | load 1/5/15",
        "export", "records", "MiB", "seconds", "records/s"
    );
    for run in 1..=3 {
        let (records, bytes, took) = download(addr, "/api/v1/export.csv", token.reveal()).await?;
        println!(
            "{:<28} {:>8} {:>9.1} {:>8.2} {:>12.0} | {}",
            format!("/api/v1/export.csv #{run}"),
            records,
            bytes as f64 / (1024.0 * 1024.0),
            took.as_secs_f64(),
            records as f64 / took.as_secs_f64(),
            load_average()
        );
    }
    for run in 1..=3 {
        let (records, took) = {
            let office = &office;
            tokio::task::block_in_place(|| export_in_process(office))?
        };
        println!(
            "{:<28} {:>8} {:>9} {:>8.2} {:>12.0} | {}",
            format!("in-process CSV rows #{run}"),
            records,
            "-",
            took.as_secs_f64(),
            records as f64 / took.as_secs_f64(),
            load_average()
        );
    }

    let _ = stop.send(());
    server.await??;
    captain.shutdown().await;
    office.shutdown().await;
    watcher.abort();
    feed.abort();
    if steady.uncounted + burst.uncounted > 0 {
        bail!("the office never counted some writes");
    }
    Ok(())
}
