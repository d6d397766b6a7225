//! Scenario 5, durable local writes: acknowledged visits per second on a volunteer's device,
//! one at a time and batched, beside the rate of the same writes in memory.
//!
//! The device holds one micro-grid (20 buildings of 18 households) with the street plan. Three
//! measurements, each repeated and reported as a median:
//! - reference, in memory: the field model's `record_visit` into building documents held in
//!   memory, plus `save_after` to extract the change's bytes; nothing is stored.
//! - one at a time: `FieldWrite::Visit` applied to a `Replica`, exactly what `gridsync visit
//!   add` (or a running node's control socket) does: validation, one automerge change, one
//!   durable append (one fsync) before the write returns. Its latency percentiles are reported.
//! - batched: the same per-visit changes, stored 100 at a time with `Store::append_batch` (one
//!   transaction and one fsync per batch), the path a burst of records takes.
//!
//! The issue sets no target; the ratios say how much durability costs.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use automerge::Automerge;
use gridsync_model::{DocKind, StreetPlan, WriteContext};
use gridsync_node::Replica;
use gridsync_node::ops::FieldWrite;
use gridsync_proto::{DocPath, NodeId};
use gridsync_store::Store;

use crate::harness::{STREET, StreetLayout, median};
use crate::node_street::{percentile, visit};
use crate::progress::Progress;
use crate::report::{Figure, ScenarioReport};
use crate::scale::Scale;

/// One micro-grid, as a volunteer's device holds it.
const LAYOUT: StreetLayout = StreetLayout {
    buildings: 20,
    units: 2,
    households_per_unit: 9,
};

/// Visits per `append_batch`.
const BATCH_SIZE: usize = 100;

/// How many visits each measurement writes, and how often it is repeated.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    in_memory: usize,
    one_at_a_time: usize,
    batched: usize,
    repetitions: usize,
}

/// What one repetition of the one-at-a-time measurement saw.
struct SingleRun {
    rate: f64,
    latencies_ms: Vec<f64>,
}

pub fn run(scale: Scale, progress: &Progress) -> anyhow::Result<ScenarioReport> {
    let sizes = scale.pick(
        Sizes {
            in_memory: 400,
            one_at_a_time: 40,
            batched: 400,
            repetitions: 1,
        },
        Sizes {
            in_memory: 20_000,
            one_at_a_time: 2_000,
            batched: 20_000,
            repetitions: 5,
        },
    );
    let base = tempfile::tempdir().context("cannot create a temporary directory")?;
    let plan = Arc::new(LAYOUT.street_plan());

    let (mut memory, mut batched, mut singles) = (Vec::new(), Vec::new(), Vec::new());
    for repetition in 1..=sizes.repetitions {
        progress.step(&format!(
            "repetition {repetition}/{}: in memory, one at a time, batched",
            sizes.repetitions
        ));
        memory.push(in_memory_rate(&plan, sizes.in_memory)?);
        singles.push(one_at_a_time(base.path(), repetition, sizes.one_at_a_time)?);
        batched.push(batched_rate(base.path(), repetition, &plan, sizes.batched)?);
    }
    let memory = median(&memory);
    let single = median(&singles.iter().map(|r| r.rate).collect::<Vec<_>>());
    let batched = median(&batched);
    let latencies: Vec<f64> = singles
        .iter()
        .flat_map(|r| r.latencies_ms.clone())
        .collect();
    let reference = "in-memory automerge (model write + save_after)";

    Ok(ScenarioReport {
        number: 5,
        title: "Durable local writes".into(),
        setup: format!(
            "one device, {} building documents with the street plan; {} visits one at a time, {} batched ({BATCH_SIZE} per append_batch), {} in memory; median of {}",
            LAYOUT.buildings, sizes.one_at_a_time, sizes.batched, sizes.in_memory, sizes.repetitions
        ),
        figures: vec![
            Figure::new("in-memory automerge writes", memory, "visits/s"),
            Figure::new("durable, one at a time (FieldWrite::Visit)", single, "visits/s")
                .with_reference(reference, memory),
            Figure::new("one-at-a-time acknowledgement p50", percentile(&latencies, 0.5), "ms"),
            Figure::new("one-at-a-time acknowledgement p99", percentile(&latencies, 0.99), "ms"),
            Figure::new(
                format!("durable, batched ({BATCH_SIZE} per append_batch)"),
                batched,
                "visits/s",
            )
            .with_reference(reference, memory),
        ],
        notes: vec![
            "one at a time is bounded by one fsync per acknowledged write (SQLite WAL, synchronous=FULL): the disk, not automerge, sets that rate".into(),
            "batched writes share one fsync per batch; what remains is automerge's own work plus the SQLite inserts and the periodic compaction of growing documents".into(),
        ],
    })
}

/// The building documents of the grid, each from its genesis, under one device's actor.
fn fresh_buildings(device: &NodeId) -> anyhow::Result<Vec<(DocPath, String, Automerge)>> {
    (0..LAYOUT.buildings)
        .map(|k| {
            let doc = gridsync_model::genesis(DocKind::Building)
                .with_actor(gridsync_model::actor_for(device));
            Ok((LAYOUT.building_path(k)?, LAYOUT.building(k), doc))
        })
        .collect()
}

/// Writes visit `n` into its building in memory and returns the building's path and the
/// change's bytes (what a durable write stores).
fn write_in_memory(
    buildings: &mut [(DocPath, String, Automerge)],
    plan: &StreetPlan,
    n: usize,
    total: usize,
    now_ms: i64,
) -> anyhow::Result<(DocPath, Vec<u8>)> {
    let k = n % buildings.len();
    let (path, building, doc) = &mut buildings[k];
    let ctx = WriteContext {
        plan,
        building,
        now_ms,
    };
    let before = doc.get_heads();
    gridsync_model::record_visit(doc, &ctx, &visit(&LAYOUT, k, n, total, now_ms))?;
    Ok((path.clone(), doc.save_after(&before)))
}

fn device() -> anyhow::Result<NodeId> {
    Ok(NodeId::parse("vol-0042")?)
}

/// Visits per second of the model and automerge alone.
fn in_memory_rate(plan: &StreetPlan, visits: usize) -> anyhow::Result<f64> {
    let mut buildings = fresh_buildings(&device()?)?;
    let now_ms = gridsync_node::node::unix_ms() as i64;
    let mut bytes = 0usize;
    let started = Instant::now();
    for n in 0..visits {
        bytes += write_in_memory(&mut buildings, plan, n, visits, now_ms)?
            .1
            .len();
    }
    let took = started.elapsed();
    std::hint::black_box(bytes);
    Ok(visits as f64 / took.as_secs_f64())
}

/// Acknowledged visits per second through `FieldWrite::Visit` on a replica.
fn one_at_a_time(
    base: &std::path::Path,
    repetition: usize,
    visits: usize,
) -> anyhow::Result<SingleRun> {
    let dir = base.join(format!("single-{repetition}"));
    let mut replica = Replica::init(&dir, &device()?, STREET)?;
    FieldWrite::PlanImport {
        csv: LAYOUT.plan_csv(),
    }
    .apply_now(&mut replica)?;
    let mut latencies_ms = Vec::with_capacity(visits);
    let started = Instant::now();
    for n in 0..visits {
        let k = n % LAYOUT.buildings;
        let write = FieldWrite::Visit {
            household: LAYOUT.household(k, n),
            outcome: "contacted".into(),
            people: 2,
            flags: Vec::new(),
            needs: Vec::new(),
            note: Some("door-to-door sweep".into()),
            volunteer: None,
            at_ms: None,
        };
        let write_started = Instant::now();
        write.apply_now(&mut replica)?;
        latencies_ms.push(ms(write_started.elapsed()));
    }
    let rate = visits as f64 / started.elapsed().as_secs_f64();
    drop(replica);
    std::fs::remove_dir_all(&dir).ok();
    Ok(SingleRun { rate, latencies_ms })
}

/// Acknowledged visits per second with one `append_batch` per `BATCH_SIZE` visits.
fn batched_rate(
    base: &std::path::Path,
    repetition: usize,
    plan: &StreetPlan,
    visits: usize,
) -> anyhow::Result<f64> {
    let dir = base.join(format!("batched-{repetition}"));
    let mut store = Store::create(&dir)?;
    let mut buildings = fresh_buildings(&device()?)?;
    // The documents' genesis is stored first (untimed), as a device holds it before its
    // first visit; every later chunk depends on it.
    let genesis: Vec<(DocPath, Vec<u8>)> = buildings
        .iter()
        .map(|(path, _, doc)| (path.clone(), doc.save()))
        .collect();
    store.append_batch(&genesis)?;
    let now_ms = gridsync_node::node::unix_ms() as i64;
    let mut batch = Vec::with_capacity(BATCH_SIZE);
    let started = Instant::now();
    for n in 0..visits {
        batch.push(write_in_memory(&mut buildings, plan, n, visits, now_ms)?);
        if batch.len() == BATCH_SIZE || n + 1 == visits {
            store.append_batch(&batch)?;
            batch.clear();
        }
    }
    let rate = visits as f64 / started.elapsed().as_secs_f64();
    drop(store);
    std::fs::remove_dir_all(&dir).ok();
    Ok(rate)
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}
