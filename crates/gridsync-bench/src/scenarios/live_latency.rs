//! Scenario 4, live edit latency volunteer -> captain -> office, with 3,000 building
//! documents loaded at each of the three nodes.
//!
//! Three nodes run in this process over real QUIC on loopback with mutual TLS and durable
//! stores: the volunteer dials the captain, the captain dials the office. All three start
//! with the same 3,000 building documents and the street plan. Once both links report their
//! peers up to date, the volunteer logs visits through `RunningNode::write` (what `gridsync
//! visit add` does on a running node) at a steady 20 a second, each to a different building.
//!
//! For each visit: the edit starts when `write` is called. The office has it when its change
//! feed announces the document from the captain: the change is then in the office's replica
//! and its API serves it. It is durable there once the office's store writer has committed
//! it; both are reported. Each node forwards a change as soon as it is in memory, while its
//! own store writer makes it durable, so the fsyncs of the three nodes overlap rather than
//! add up (on this machine the three share one disk). The volunteer's `write` itself returns
//! only once the visit is durable on the volunteer. Reference: the same visit written by the field model and carried through two
//! in-memory `automerge::sync` hops between documents with up-to-date sync states (the least
//! any design built on automerge sync must do), measured in the same run.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use automerge::Automerge;
use automerge::sync::{Message, State, SyncDoc};
use gridsync_model::{StreetPlan, WriteContext};
use gridsync_node::DocChange;
use gridsync_node::node::{RunningNode, unix_ms};
use gridsync_node::ops::FieldWrite;
use gridsync_node::store_writer::WriteTicket;
use gridsync_proto::{DocPath, NodeId, Role};
use tokio::sync::{broadcast, watch};

use crate::harness::{
    self, BenchStreet, StreetLayout, copy_plan, import_plan, start_node, stop_all, store_docs,
    street_write, wait_until,
};
use crate::node_street::{percentile, visit};
use crate::progress::Progress;
use crate::report::{Figure, ScenarioReport, TargetKind};
use crate::scale::Scale;

/// The bounds, milliseconds.
const MAX_P50_MS: f64 = 5.0;
const MAX_P99_MS: f64 = 50.0;

/// Visits each building document holds before the measurement.
const VISITS_PER_BUILDING: usize = 5;
/// Writes before the measurement, not counted (first use of each path through the stack).
const WARM_UP_WRITES: usize = 10;
/// A stride coprime with the street's size: consecutive writes land far apart, each in a
/// building of its own.
const STRIDE: usize = 7_919;
/// Longest wait for the links to be up to date, or for the office to receive every write.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);

/// How large the run is.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    buildings: usize,
    writes: usize,
    pace: Duration,
    reference_writes: usize,
}

pub fn run(scale: Scale, progress: &Progress) -> anyhow::Result<ScenarioReport> {
    let sizes = scale.pick(
        Sizes {
            buildings: 30,
            writes: 20,
            pace: Duration::from_millis(10),
            reference_writes: 20,
        },
        Sizes {
            buildings: 3_000,
            writes: 400,
            pace: Duration::from_millis(50),
            reference_writes: 400,
        },
    );
    let layout = StreetLayout::reference(sizes.buildings);
    if sizes.writes + WARM_UP_WRITES > sizes.buildings || sizes.buildings.is_multiple_of(STRIDE) {
        bail!("each write needs a building of its own");
    }

    progress.step(&format!(
        "building {} documents and storing them at each of three nodes",
        sizes.buildings
    ));
    let street = BenchStreet::new()?;
    let author = NodeId::parse("vol-0001")?;
    let docs = harness::building_docs(
        &layout,
        0..sizes.buildings,
        VISITS_PER_BUILDING,
        &author,
        progress,
    )?;
    let mut office = street.enroll("office", Role::Office, &[street_write()])?;
    let mut captain = street.enroll("cap-0001", Role::Captain, &[street_write()])?;
    let mut volunteer = street.enroll("vol-0042", Role::Volunteer, &[street_write()])?;
    import_plan(&mut office.replica, &layout)?;
    copy_plan(
        &mut office.replica,
        [&mut captain.replica, &mut volunteer.replica],
    )?;
    for enrolled in [&mut office, &mut captain, &mut volunteer] {
        store_docs(&mut enrolled.replica, &docs, progress)?;
    }
    drop(docs);

    progress.step("reference: two in-memory automerge sync hops per visit");
    let reference = in_memory_hops(&layout, sizes.reference_writes)?;

    let measured = harness::block_on(async {
        let office = start_node(office.credentials, office.replica, Vec::new())?;
        let captain = start_node(
            captain.credentials,
            captain.replica,
            vec![office.local_addr],
        )?;
        let volunteer = start_node(
            volunteer.credentials,
            volunteer.replica,
            vec![captain.local_addr],
        )?;
        let result = measure(&layout, sizes, &volunteer, &captain, &office, progress).await;
        stop_all(vec![volunteer, captain, office]).await;
        result
    })??;

    let to_office: Vec<f64> = measured.iter().map(|p| p.office_ms).collect();
    let to_office_durable: Vec<f64> = measured.iter().map(|p| p.office_durable_ms).collect();
    let to_captain: Vec<f64> = measured.iter().map(|p| p.captain_ms).collect();
    let acknowledged: Vec<f64> = measured.iter().map(|p| p.acknowledged_ms).collect();
    let reference_name = "model write + 2 in-memory automerge::sync hops";
    Ok(ScenarioReport {
        number: 4,
        title: "Live edit latency".into(),
        setup: format!(
            "volunteer -> captain -> office over QUIC on loopback, {} building documents at each, durable stores; {} visits at {:.0}/s, each to its own building",
            sizes.buildings,
            measured.len(),
            1.0 / sizes.pace.as_secs_f64()
        ),
        figures: vec![
            Figure::new("edit -> office has it, p50", percentile(&to_office, 0.5), "ms")
                .with_reference(reference_name, percentile(&reference, 0.5))
                .with_target(TargetKind::AtMost, MAX_P50_MS),
            Figure::new("edit -> office has it, p99", percentile(&to_office, 0.99), "ms")
                .with_reference(reference_name, percentile(&reference, 0.99))
                .with_target(TargetKind::AtMost, MAX_P99_MS),
            Figure::new(
                "edit -> durable at the office, p50",
                percentile(&to_office_durable, 0.5),
                "ms",
            ),
            Figure::new(
                "edit -> durable at the office, p99",
                percentile(&to_office_durable, 0.99),
                "ms",
            ),
            Figure::new(
                "edit -> durable at the captain, p50",
                percentile(&to_captain, 0.5),
                "ms",
            ),
            Figure::new(
                "edit -> durable on the volunteer, p50",
                percentile(&acknowledged, 0.5),
                "ms",
            ),
            Figure::new(
                "edit -> durable on the volunteer, p99",
                percentile(&acknowledged, 0.99),
                "ms",
            ),
        ],
        notes: vec![
            "\"has it\": the office's change feed announced the change, so its API serves it; each hop forwards a change as soon as it is in memory, while its own store writer makes it durable".into(),
            "\"durable\": that node's store writer committed the change (one fsync, shared with whatever else was staged meanwhile); the three nodes share this machine's one disk".into(),
        ],
    })
}

/// One measured visit, milliseconds after its `write` call started.
struct Probe {
    acknowledged_ms: f64,
    captain_ms: f64,
    office_ms: f64,
    office_durable_ms: f64,
}

/// Arrival times of documents changed by a peer, per node, as their change feeds announce them.
#[derive(Default)]
struct Arrivals {
    /// When the change feed announced the document (in memory, served by the node).
    seen: Mutex<BTreeMap<DocPath, Instant>>,
    /// When that change was durable at the node.
    durable: Mutex<BTreeMap<DocPath, Instant>>,
}

impl Arrivals {
    fn seen(&self) -> MutexGuard<'_, BTreeMap<DocPath, Instant>> {
        // Invariant: nothing panics while holding this lock; recover the data regardless.
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn durable(&self) -> MutexGuard<'_, BTreeMap<DocPath, Instant>> {
        // Invariant: nothing panics while holding this lock; recover the data regardless.
        self.durable.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records when each document from a peer was first announced by the node's change feed
    /// (as soon as it is in memory: sessions forward it and the API serves it then) and when
    /// it became durable there (the store writer's ticket it came with, awaited here).
    async fn follow(
        self: Arc<Self>,
        mut changes: broadcast::Receiver<DocChange>,
        mut settled: watch::Receiver<WriteTicket>,
    ) {
        loop {
            match changes.recv().await {
                Ok(change) if change.from.is_some() => {
                    self.seen()
                        .entry(change.path.clone())
                        .or_insert_with(Instant::now);
                    if let Some(ticket) = change.durable_after
                        && settled.wait_for(|at| *at >= ticket).await.is_err()
                    {
                        return;
                    }
                    self.durable()
                        .entry(change.path)
                        .or_insert_with(Instant::now);
                }
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    }
}

/// Waits until both links are up, then writes and times the visits.
async fn measure(
    layout: &StreetLayout,
    sizes: Sizes,
    volunteer: &RunningNode,
    captain: &RunningNode,
    office: &RunningNode,
    progress: &Progress,
) -> anyhow::Result<Vec<Probe>> {
    progress.step("waiting for volunteer -> captain -> office to be connected and up to date");
    let up_to_date = |node: &RunningNode, peers: usize| {
        let snapshot = node.handle().peers();
        snapshot.len() == peers && snapshot.iter().all(|p| p.connected && p.up_to_date)
    };
    wait_until(
        "the links to be up to date",
        SETTLE_TIMEOUT,
        Duration::from_millis(20),
        || Ok(up_to_date(volunteer, 1) && up_to_date(captain, 2) && up_to_date(office, 1)),
    )
    .await?;

    let at_captain = Arc::new(Arrivals::default());
    let at_office = Arc::new(Arrivals::default());
    let followers = [
        tokio::spawn(at_captain.clone().follow(
            captain.handle().subscribe(),
            captain.handle().durable_progress(),
        )),
        tokio::spawn(at_office.clone().follow(
            office.handle().subscribe(),
            office.handle().durable_progress(),
        )),
    ];
    progress.step(&format!(
        "{} visits from the volunteer, {} ms apart",
        sizes.writes,
        sizes.pace.as_millis()
    ));
    let mut ticker = tokio::time::interval(sizes.pace);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sent = Vec::new();
    for n in 0..WARM_UP_WRITES + sizes.writes {
        ticker.tick().await;
        let k = (n * STRIDE) % layout.buildings;
        let write = FieldWrite::Visit {
            household: layout.household(k, n),
            outcome: "contacted".into(),
            people: 1,
            flags: Vec::new(),
            needs: Vec::new(),
            note: Some("live latency probe".into()),
            volunteer: None,
            at_ms: None,
        };
        let started = Instant::now();
        let receipt =
            tokio::task::block_in_place(|| volunteer.write(write).map_err(anyhow::Error::from))?;
        let acknowledged = Instant::now();
        if n >= WARM_UP_WRITES {
            sent.push((receipt.document, started, acknowledged));
        }
        progress.count(
            "visits written",
            n as u64 + 1,
            (WARM_UP_WRITES + sizes.writes) as u64,
        );
    }
    let arrived = |arrivals: &Arrivals| {
        let by_path = arrivals.durable();
        sent.iter()
            .filter(|(path, ..)| by_path.contains_key(path))
            .count()
    };
    let settled = wait_until(
        "the office to receive every visit",
        SETTLE_TIMEOUT,
        Duration::from_millis(10),
        || Ok(arrived(&at_office) == sent.len()),
    )
    .await;
    for follower in followers {
        follower.abort();
    }
    settled?;

    let ms = |from: Instant, to: Instant| to.saturating_duration_since(from).as_secs_f64() * 1e3;
    let (captain_durable, office_seen, office_durable) =
        (at_captain.durable(), at_office.seen(), at_office.durable());
    sent.iter()
        .map(|(path, started, acknowledged)| {
            let captain_at = captain_durable
                .get(path)
                .with_context(|| format!("the captain never stored {path}"))?;
            let office_at = office_seen
                .get(path)
                .with_context(|| format!("the office never announced {path}"))?;
            let office_stored_at = office_durable
                .get(path)
                .with_context(|| format!("the office never stored {path}"))?;
            Ok(Probe {
                acknowledged_ms: ms(*started, *acknowledged),
                captain_ms: ms(*started, *captain_at),
                office_ms: ms(*started, *office_at),
                office_durable_ms: ms(*started, *office_stored_at),
            })
        })
        .collect()
}

/// Per visit: the model's write plus two `automerge::sync` hops (volunteer -> captain ->
/// office, messages encoded and decoded) between copies of one building document whose sync
/// states are up to date; milliseconds. The acknowledgements that keep the states current are
/// exchanged outside the timing.
fn in_memory_hops(layout: &StreetLayout, writes: usize) -> anyhow::Result<Vec<f64>> {
    let plan: StreetPlan = layout.street_plan();
    let now_ms = unix_ms() as i64;
    let k = 0;
    let building = layout.building(k);
    let base = harness::building_docs(
        layout,
        k..k + 1,
        VISITS_PER_BUILDING,
        &NodeId::parse("vol-0001")?,
        &Progress::new(4, true),
    )?
    .pop()
    .context("one building document")?
    .1;
    let actor =
        |name: &str| -> anyhow::Result<_> { Ok(gridsync_model::actor_for(&NodeId::parse(name)?)) };
    let mut volunteer = base.fork().with_actor(actor("vol-0042")?);
    let mut captain = base.fork().with_actor(actor("cap-0001")?);
    let mut office = base.fork().with_actor(actor("office")?);
    let mut link_vc = SyncLink::default();
    let mut link_co = SyncLink::default();
    link_vc.settle(&mut volunteer, &mut captain)?;
    link_co.settle(&mut captain, &mut office)?;
    let mut latencies = Vec::with_capacity(writes);
    for n in 0..writes {
        let ctx = WriteContext {
            plan: &plan,
            building: &building,
            now_ms,
        };
        let started = Instant::now();
        gridsync_model::record_visit(
            &mut volunteer,
            &ctx,
            &visit(
                layout,
                k,
                VISITS_PER_BUILDING + n,
                VISITS_PER_BUILDING + writes,
                now_ms,
            ),
        )?;
        link_vc.one_way(&volunteer, &mut captain)?;
        link_co.one_way(&captain, &mut office)?;
        latencies.push(started.elapsed().as_secs_f64() * 1e3);
        link_vc.settle(&mut volunteer, &mut captain)?;
        link_co.settle(&mut captain, &mut office)?;
        if office.get_heads() != volunteer.get_heads() {
            bail!("the in-memory hops did not carry the visit");
        }
    }
    Ok(latencies)
}

/// The two sync states of one in-memory link: the upstream side's and the downstream side's.
#[derive(Default)]
struct SyncLink {
    upstream: State,
    downstream: State,
}

impl SyncLink {
    /// One message from `from` to `to`, encoded and decoded as it would travel.
    fn one_way(&mut self, from: &Automerge, to: &mut Automerge) -> anyhow::Result<bool> {
        match from.generate_sync_message(&mut self.upstream) {
            Some(message) => {
                let message = Message::decode(&message.encode())?;
                to.receive_sync_message(&mut self.downstream, message)?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Exchanges messages both ways until neither side has anything to say.
    fn settle(
        &mut self,
        upstream: &mut Automerge,
        downstream: &mut Automerge,
    ) -> anyhow::Result<()> {
        for _ in 0..64 {
            let sent = self.one_way(upstream, downstream)?;
            let answered = match downstream.generate_sync_message(&mut self.downstream) {
                Some(message) => {
                    let message = Message::decode(&message.encode())?;
                    upstream.receive_sync_message(&mut self.upstream, message)?;
                    true
                }
                None => false,
            };
            if !sent && !answered {
                return Ok(());
            }
        }
        bail!("in-memory sync did not settle")
    }
}
