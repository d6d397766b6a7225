//! `gridsync export` streams: exporting ten times as many records does not take ten times
//! the memory. The export process's resident memory is sampled while it runs, for a store of
//! 10,000 visits and one of 100,000 (500 building documents), and the peaks compared.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use gridsync_model::{DocKind, RecordId, StreetPlan, Visit, VisitOutcome, WriteContext};
use gridsync_node::Replica;
use gridsync_proto::{DocPath, NodeId};

use crate::support::gridsync_bin;

const STREET: &str = "panhuo";
const BUILDINGS: usize = 500;
const HOUSEHOLDS_PER_BUILDING: usize = 20;

/// A street of `BUILDINGS` buildings with `visits_per_building` visits each, written straight
/// into the store. To keep the test quick, one building's document is generated and its
/// bytes stored under every building's path: the export reads 500 real documents either way.
fn populate(dir: &Path, visits_per_building: usize) {
    let node = NodeId::parse("office").expect("node id");
    let mut replica = Replica::init(dir, &node, STREET).expect("init store");
    let mut plan = gridsync_model::PlanCsv::new();
    for b in 0..BUILDINGS {
        for h in 0..HOUSEHOLDS_PER_BUILDING {
            plan.row(gridsync_model::PlanRow {
                household: &format!("h-{b}-{h}"),
                community: "c-1",
                grid: &format!("grid-{:03}", b / 50),
                building: &format!("b-{b}"),
                unit: "u1",
                door: &h.to_string(),
                residents: 2,
                zone: "control",
            });
        }
    }
    let csv = plan.finish();
    gridsync_node::ops::FieldWrite::PlanImport { csv }
        .apply(&mut replica, now_ms() as u64)
        .expect("plan");
    let plan: std::sync::Arc<StreetPlan> =
        replica.street_plan().expect("plan").expect("plan present");
    let building = "b-0";
    let mut doc =
        gridsync_model::genesis(DocKind::Building).with_actor(gridsync_model::actor_for(&node));
    let ctx = WriteContext {
        plan: &plan,
        building,
        now_ms: now_ms(),
    };
    let start = now_ms() - 3_600_000;
    for v in 0..visits_per_building {
        let visit = Visit {
            id: RecordId::from(ulid::Ulid::new()),
            household: format!("h-0-{}", v % HOUSEHOLDS_PER_BUILDING),
            volunteer: "vol-0001".into(),
            at_ms: start + v as i64,
            outcome: VisitOutcome::Contacted,
            people_seen: 2,
            flags: BTreeSet::new(),
            needs: Default::default(),
            note: "door-to-door sweep, all well".into(),
        };
        gridsync_model::record_visit(&mut doc, &ctx, &visit).expect("visit");
    }
    let one = gridsync_node::WholeDocument::of(DocPath::parse(STREET).expect("path"), &doc);
    let buildings: Vec<gridsync_node::WholeDocument> = (0..BUILDINGS)
        .map(|b| {
            let path = DocPath::parse(&format!("{STREET}/grid-{:03}/b-{b}", b / 50)).expect("path");
            gridsync_node::WholeDocument {
                path,
                ..one.clone()
            }
        })
        .collect();
    replica
        .append_whole_documents(&buildings)
        .expect("append buildings");
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// Runs `gridsync export` on `dir` and returns (rows exported, peak resident KiB sampled).
fn export_and_sample(dir: &Path) -> (usize, u64) {
    let out = dir.join("export.csv");
    let mut child = Command::new(gridsync_bin())
        .arg("--data")
        .arg(dir)
        .args(["export", "--format", "csv", "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn export");
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak = 0u64;
    loop {
        // VmHWM is the process's own high-water mark; sampling it until exit catches the peak.
        if let Ok(status) = std::fs::read_to_string(&status_file)
            && let Some(kib) = status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        {
            peak = peak.max(kib);
        }
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let rows = std::fs::read_to_string(&out)
        .expect("export file")
        .lines()
        .count()
        - 1;
    (rows, peak)
}

#[test]
fn exporting_100000_visits_streams_in_flat_memory() {
    let small = tempfile::tempdir().expect("temp dir");
    let large = tempfile::tempdir().expect("temp dir");
    populate(small.path(), 20);
    populate(large.path(), 200);
    let (small_rows, small_peak) = export_and_sample(small.path());
    let (large_rows, large_peak) = export_and_sample(large.path());
    assert_eq!(small_rows, 10_000);
    assert_eq!(large_rows, 100_000);
    eprintln!(
        "export peak resident memory: {small_peak} KiB for 10,000 visits, {large_peak} KiB for 100,000"
    );
    assert!(
        small_peak > 0 && large_peak > 0,
        "could not sample the export's memory"
    );
    // Ten times the records; memory may grow by the size of one building document, not 10x.
    assert!(
        (large_peak as f64) < (small_peak as f64) * 1.5,
        "memory grew with the export: {small_peak} KiB -> {large_peak} KiB"
    );
}
