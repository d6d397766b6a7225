//! Scenario 6, office memory and cold start: an office store with 20,000 building documents
//! and 1,000,000 visits (50 a building, one change each, from three volunteers per building)
//! plus a street plan of 180,000 households; the office started on it in a fresh process.
//!
//! The office is started twice, each time in a fresh process on the same store. The generated
//! store holds no building summary yet (a real office would have stored them as the visits
//! arrived), so the first start summarizes every building from its document and stores the
//! summaries; the restart finds them keyed by unchanged heads and reads no building document
//! to aggregate. The restart is the cold start that the target bounds.
//!
//! Figures, all measured on the same store:
//! - restart (and first start) to serving the API: from spawning the office process (started
//!   as `gridsync run --http` starts it, see [`crate::node_office`]) until `GET
//!   /api/v1/summary` answers 200 with every visit counted. Reference: a process that only
//!   opens the store and loads every document with automerge.
//! - resident memory (VmRSS) of the restarted office process once it serves, after a few API
//!   requests, and its peak (VmHWM) during the start. Reference: the load-only process's.
//! - the store's size on disk, with the summaries stored (reference: before).
//!
//! The generator builds documents on every core (each through the field model, as devices
//! would have written them) and stores them with `Replica::append_whole_documents`, 1,000 a transaction.
//! The office starts with a warm page cache (the store was just written), as after a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use gridsync_net::{DeviceIdentity, Invite};
use gridsync_node::WholeDocument;
use gridsync_node::node::unix_ms;
use gridsync_proto::{Role, Scopes};
use gridsync_store::Store;

use crate::harness::{BenchStreet, STREET, StreetLayout, import_plan, street_write};
use crate::node_office::{
    CHILD_DIR_VAR, CHILD_MODE_VAR, CHILD_REPORT_VAR, ChildMode, LoadReport, OfficeReady,
};
use crate::node_street::{building_doc, mib, resident_memory};
use crate::progress::Progress;
use crate::report::{Figure, ScenarioReport, TargetKind};
use crate::scale::Scale;

/// The issue's bounds.
const MAX_RESIDENT_MIB: f64 = 1024.0;
const MAX_START_SECONDS: f64 = 10.0;

/// Buildings handed to a generator thread at a time.
const GENERATOR_CHUNK: usize = 50;
/// Documents stored per `append_batch`.
const STORE_BATCH: usize = 1_000;
/// Longest wait for a child process to be ready or to finish.
const CHILD_TIMEOUT: Duration = Duration::from_secs(600);

/// How large the office's street is.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    buildings: usize,
    visits_per_building: usize,
}

pub fn run(scale: Scale, progress: &Progress) -> anyhow::Result<ScenarioReport> {
    if let Some(mode) = ChildMode::from_env() {
        crate::node_office::run_child(mode);
    }
    let sizes = scale.pick(
        Sizes {
            buildings: 40,
            visits_per_building: 5,
        },
        Sizes {
            buildings: 20_000,
            visits_per_building: 50,
        },
    );
    // One stairwell of nine households a building: 180,000 households at full size, under
    // the plan importer's limit of 200,000 rows.
    let layout = StreetLayout {
        buildings: sizes.buildings,
        units: 1,
        households_per_unit: 9,
    };
    let visits = sizes.buildings * sizes.visits_per_building;
    let street = BenchStreet::new()?;
    let dir = street.root().join("office");
    let (store_bytes, token) = populate(&street, &dir, &layout, sizes, progress)?;

    progress.step("reference: a fresh process loads every document with automerge alone");
    let load: LoadReport = run_load_only(scale, &dir, street.root())?;
    progress.step(&format!(
        "reference loaded {} documents in {:.1}s, resident {:.0} MiB",
        load.documents,
        load.load_ms / 1e3,
        mib(load.resident_bytes)
    ));

    progress.step("first start: the office computes and stores every building summary");
    let first = run_office(scale, &dir, street.root(), &token, visits, "first")?;
    report_start(progress, "first start", &first);
    let store_with_summaries = Store::open(&dir)?.stats()?.file_bytes;

    progress.step("restart: a fresh office process on the same store");
    let office = run_office(scale, &dir, street.root(), &token, visits, "restart")?;
    report_start(progress, "restart", &office);
    if office.ready.summaries_computed != 0 {
        bail!(
            "the restarted office summarized {} buildings again from their documents",
            office.ready.summaries_computed
        );
    }

    let reference = "store + automerge load only, fresh process";
    Ok(ScenarioReport {
        number: 6,
        title: "Office memory and cold start".into(),
        setup: format!(
            "{} building documents, {visits} visits ({} a building, one change each), a plan of {} households; the office started twice in a fresh process on the same store, warm page cache: a first start on the generated store (no building summary stored yet: every building summarized and its summary stored) and a restart, which is the cold start compared with the 10 s target; memory is the restarted process's",
            sizes.buildings,
            sizes.visits_per_building,
            layout.buildings * layout.households_per_building()
        ),
        figures: vec![
            Figure::new(
                "restart to serving the API",
                office.serving_after.as_secs_f64(),
                "s",
            )
            .with_reference(reference, load.load_ms / 1e3)
            .with_target(TargetKind::AtMost, MAX_START_SECONDS),
            Figure::new(
                "first start to serving the API (summaries computed and stored)",
                first.serving_after.as_secs_f64(),
                "s",
            )
            .with_reference(reference, load.load_ms / 1e3),
            Figure::new("resident memory serving", mib(office.resident_bytes), "MiB")
                .with_reference(reference, mib(load.resident_bytes))
                .with_target(TargetKind::AtMost, MAX_RESIDENT_MIB),
            Figure::new("peak resident memory", mib(office.peak_bytes), "MiB")
                .with_reference(reference, mib(load.peak_bytes))
                .with_target(TargetKind::AtMost, MAX_RESIDENT_MIB),
            Figure::new("store on disk", mib(store_with_summaries), "MiB")
                .with_reference("before building summaries were stored", mib(store_bytes)),
        ],
        notes: vec![
            "the reference loads every document; the office's first aggregation reads no building document whose stored summary matches its heads, and no plan document when the stored plan matches the plan's heads (the restart), so its start grows with the number of buildings, not with the records they hold".into(),
            phases("first start", &first),
            phases("restart", &office),
            format!(
                "first start: resident {:.0} MiB, peak {:.0} MiB",
                mib(first.resident_bytes),
                mib(first.peak_bytes)
            ),
        ],
    })
}

/// A progress line on one start of the office.
fn report_start(progress: &Progress, which: &str, run: &OfficeRun) {
    progress.step(&format!(
        "{which}: office served the API after {:.1}s (aggregation {:.1}s: {} summaries reused, {} computed), resident {:.0} MiB (peak {:.0} MiB)",
        run.serving_after.as_secs_f64(),
        run.ready.aggregate_ms / 1e3,
        run.ready.summaries_reused,
        run.ready.summaries_computed,
        mib(run.resident_bytes),
        mib(run.peak_bytes)
    ));
}

/// The phases of one start, for the report's notes.
fn phases(which: &str, run: &OfficeRun) -> String {
    let ready = &run.ready;
    format!(
        "{which} phases: open store {:.0} ms, node start {:.0} ms, first aggregation {:.0} ms ({} building summaries reused from the store, {} computed from documents), HTTP serving {:.0} ms after the process's entry",
        ready.open_ms,
        ready.node_start_ms,
        ready.aggregate_ms,
        ready.summaries_reused,
        ready.summaries_computed,
        ready.total_ms
    )
}

/// Creates the office's store: identity (an invite, as `gridsync office init` stores it),
/// dashboard token, street plan, and every building document. Returns the store's size on
/// disk and the token.
fn populate(
    street: &BenchStreet,
    dir: &Path,
    layout: &StreetLayout,
    sizes: Sizes,
    progress: &Progress,
) -> anyhow::Result<(u64, String)> {
    let enrolled = street.enroll("office", Role::Office, &[street_write()])?;
    let mut replica = enrolled.replica;
    let now = unix_ms() / 1000;
    let mut scopes = Scopes(vec![street_write()]);
    gridsync_node::credentials::add_street_wide_grants(STREET, &mut scopes)?;
    let issued = street.ca().issue(&DeviceIdentity {
        street: STREET.into(),
        node_id: enrolled.node_id.clone(),
        role: Role::Office,
        scopes,
        not_before: now.saturating_sub(600),
        not_after: now + 86_400,
    })?;
    replica.install_invite(&Invite::new(street.ca(), &issued, Vec::new()))?;
    let (token, _) = gridsync_office::load_or_create_token(&mut replica)?;

    progress.step(&format!(
        "importing a plan of {} households",
        layout.buildings * layout.households_per_building()
    ));
    import_plan(&mut replica, layout)?;

    progress.step(&format!(
        "building {} documents with {} visits each",
        sizes.buildings, sizes.visits_per_building
    ));
    generate_buildings(&mut replica, layout, sizes, progress)?;
    drop(replica);
    let store = Store::open(dir)?;
    let stats = store.stats()?;
    if stats.documents as usize != sizes.buildings + 1 {
        bail!(
            "the office store holds {} documents, expected {}",
            stats.documents,
            sizes.buildings + 1
        );
    }
    Ok((stats.file_bytes, token.reveal().to_owned()))
}

/// Builds every building document on all cores and stores them, [`STORE_BATCH`] per
/// `append_batch`, as they come.
fn generate_buildings(
    replica: &mut gridsync_node::Replica,
    layout: &StreetLayout,
    sizes: Sizes,
    progress: &Progress,
) -> anyhow::Result<()> {
    let plan = layout.street_plan();
    let now_ms = unix_ms() as i64;
    let next = AtomicUsize::new(0);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (sender, receiver) = mpsc::sync_channel::<anyhow::Result<WholeDocument>>(2 * STORE_BATCH);
    std::thread::scope(|scope| -> anyhow::Result<()> {
        for _ in 0..workers {
            let sender = sender.clone();
            let (plan, next) = (&plan, &next);
            scope.spawn(move || {
                loop {
                    let first = next.fetch_add(GENERATOR_CHUNK, Ordering::Relaxed);
                    if first >= layout.buildings {
                        return;
                    }
                    for k in first..(first + GENERATOR_CHUNK).min(layout.buildings) {
                        let built = layout.building_path(k).and_then(|path| {
                            let doc =
                                building_doc(layout, plan, k, sizes.visits_per_building, now_ms)?;
                            Ok(WholeDocument::of(path, &doc))
                        });
                        let failed = built.is_err();
                        // A closed channel means the receiver gave up; stop quietly.
                        if sender.send(built).is_err() || failed {
                            return;
                        }
                    }
                }
            });
        }
        drop(sender);
        // Owned here, so that an early return drops it and unblocks the generator threads.
        let receiver = receiver;
        let mut batch = Vec::with_capacity(STORE_BATCH);
        let mut stored = 0usize;
        for built in receiver.iter() {
            batch.push(built?);
            if batch.len() == STORE_BATCH {
                replica.append_whole_documents(&batch)?;
                stored += batch.len();
                batch.clear();
                progress.count(
                    "building documents stored",
                    stored as u64,
                    layout.buildings as u64,
                );
            }
        }
        replica.append_whole_documents(&batch)?;
        stored += batch.len();
        progress.count(
            "building documents stored",
            stored as u64,
            layout.buildings as u64,
        );
        if stored != layout.buildings {
            bail!("stored {stored} building documents of {}", layout.buildings);
        }
        Ok(())
    })
}

/// Starts this benchmark binary again as a child of `mode` on the office's store.
fn spawn_child(scale: Scale, mode: ChildMode, dir: &Path, report: &Path) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("cannot find the benchmark binary")?;
    Command::new(exe)
        .args(["--scale", scale.name(), "--only", "6", "--quiet", "--json"])
        .arg(report.with_extension("unused.json"))
        .env(CHILD_MODE_VAR, mode.as_str())
        .env(CHILD_DIR_VAR, dir)
        .env(CHILD_REPORT_VAR, report)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the child process")
}

/// Runs the load-only reference to its end.
fn run_load_only(scale: Scale, dir: &Path, scratch: &Path) -> anyhow::Result<LoadReport> {
    let report = scratch.join("load-only.json");
    let mut child = spawn_child(scale, ChildMode::LoadOnly, dir, &report)?;
    drop(child.stdin.take());
    let status = wait_with_timeout(&mut child)?;
    if !status.success() {
        bail!("the load-only process failed ({status})");
    }
    Ok(serde_json::from_slice(&std::fs::read(&report)?)?)
}

/// What the office process showed.
struct OfficeRun {
    ready: OfficeReady,
    serving_after: Duration,
    resident_bytes: u64,
    peak_bytes: u64,
}

/// Starts the office, waits until its API answers with every visit counted, reads its memory,
/// then stops it by closing its stdin.
fn run_office(
    scale: Scale,
    dir: &Path,
    scratch: &Path,
    token: &str,
    visits: usize,
    which: &str,
) -> anyhow::Result<OfficeRun> {
    let report = scratch.join(format!("office-ready-{which}.json"));
    let spawned = Instant::now();
    let mut child = spawn_child(scale, ChildMode::Office, dir, &report)?;
    let result = (|| {
        let ready: OfficeReady = loop {
            if let Ok(bytes) = std::fs::read(&report) {
                break serde_json::from_slice(&bytes)?;
            }
            if let Some(status) = child.try_wait()? {
                bail!("the office process ended before serving ({status})");
            }
            if spawned.elapsed() > CHILD_TIMEOUT {
                bail!("the office did not serve within {CHILD_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], ready.http_port));
        let summary = gridsync_testkit::http::get_json(addr, "/api/v1/summary", token)?;
        let serving_after = spawned.elapsed();
        let counted = summary
            .pointer("/totals/records/visits")
            .and_then(serde_json::Value::as_u64)
            .context("the summary has no visit count")?;
        if counted != visits as u64 {
            bail!("the office counts {counted} visits, the store holds {visits}");
        }
        for path in ["/api/v1/places", "/api/v1/needs", "/api/v1/summary"] {
            gridsync_testkit::http::get_json(addr, path, token)?;
        }
        let (resident_bytes, peak_bytes) = resident_memory(&child.id().to_string())?;
        Ok(OfficeRun {
            ready,
            serving_after,
            resident_bytes,
            peak_bytes,
        })
    })();
    // Closing stdin asks the office to shut down cleanly.
    drop(child.stdin.take());
    let status = wait_with_timeout(&mut child);
    let run = result?;
    let status = status?;
    if !status.success() {
        bail!("the office process did not shut down cleanly ({status})");
    }
    Ok(run)
}

/// Waits for `child` to exit; kills it after [`CHILD_TIMEOUT`].
fn wait_with_timeout(child: &mut Child) -> anyhow::Result<std::process::ExitStatus> {
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if started.elapsed() > CHILD_TIMEOUT {
            child.kill().ok();
            child.wait().ok();
            bail!(
                "child process {} did not exit within {CHILD_TIMEOUT:?}",
                child.id()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
