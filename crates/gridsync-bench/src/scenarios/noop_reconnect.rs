//! Scenario 3, no-op reconnect: a captain and the office that already synced 1,000 building
//! documents (108 visits each) restart from their stores and reconnect with nothing changed.
//! What the reconnect costs in bytes and round trips.
//!
//! Round trips are counted at protocol level, by gridsync's sessions joined by a virtual link
//! (`gridsync_proto::testing`, the engine's own test harness); bytes both there and over QUIC between real nodes: the gridsync
//! frames the nodes exchanged until both report being up to date, and the UDP bytes through a
//! counting relay (which adds QUIC's and TLS's own handshake, certificates included).
//!
//! Reference, same documents: automerge's sync with fresh sync states, which sends a Bloom
//! filter of the whole history of every document on every reconnect.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use gridsync_proto::testing::{Identity, MemoryDocs, Pair};
use gridsync_proto::{LocalIdentity, NodeId, Role, Scopes};

use crate::harness::{self, BenchStreet, median, street_write};
use crate::progress::Progress;
use crate::report::{Figure, ScenarioReport, TargetKind};
use crate::scale::Scale;
use crate::sync_relay::CountingRelay;
use crate::sync_run::{self, Source};

/// Visits per building, as in scenario 1.
const VISITS_PER_BUILDING: usize = 108;

/// Longest a reconnect may take to report "up to date" on both sides.
const RECONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Time after both sides report up to date in which late frames are still counted.
const SETTLE: Duration = Duration::from_millis(200);

/// What one reconnect over QUIC measured.
struct QuicReconnect {
    frame_bytes: u64,
    udp_bytes: u64,
    to_up_to_date: Duration,
}

pub fn run(scale: Scale, progress: &Progress) -> anyhow::Result<ScenarioReport> {
    let buildings = scale.pick(20, 1000);
    let visits_each = scale.pick(5, VISITS_PER_BUILDING);
    let repetitions = scale.pick(1, 5);
    let load_at_start = sync_run::load_average();
    let (author, docs) = harness::captain_buildings(buildings, visits_each, progress)?;

    progress.step("protocol level: initial sync, then a reconnect, between in-memory sessions");
    let captain = local_identity("cap-01", Role::Captain)?;
    let office = local_identity("office", Role::Office)?;
    let (captain, office) = (Identity::certified(captain), Identity::certified(office));
    let mut first = Pair::new(
        (
            captain.clone(),
            MemoryDocs::for_measuring(&captain.certified.node_id, &docs),
        ),
        (
            office.clone(),
            MemoryDocs::for_measuring(&office.certified.node_id, &[]),
        ),
    )
    .keep_sent(false);
    first.try_drive()?;
    let (captain_docs, office_docs) = first.into_docs();
    let mut again = Pair::new((captain, captain_docs), (office, office_docs)).keep_sent(false);
    again.try_drive()?;
    let engine_bytes = again.total_bytes();
    let engine_round_trips = again.round_trips();
    let engine_doc_frames = again.doc_frames();
    let fresh_bytes = sync_run::fresh_state_reconnect_bytes(&docs)?;

    progress.step("QUIC: initial sync between durable nodes");
    let street = BenchStreet::new()?;
    let source = Source::populate(&street, author.as_str(), &docs, progress)?;
    let synced = sync_run::initial_sync(&street, &source, "office", false, progress)?;
    let mut runs = Vec::new();
    for repetition in 1..=repetitions {
        progress.step(&format!(
            "QUIC: both nodes restart and reconnect, run {repetition} of {repetitions}"
        ));
        runs.push(reconnect_over_quic(
            &street,
            &source,
            &synced.office_id,
            synced.office_credentials.clone(),
        )?);
    }
    let frame_bytes = median(
        &runs
            .iter()
            .map(|r| r.frame_bytes as f64)
            .collect::<Vec<_>>(),
    );
    let udp_bytes = median(&runs.iter().map(|r| r.udp_bytes as f64).collect::<Vec<_>>());
    let to_up_to_date = median(
        &runs
            .iter()
            .map(|r| r.to_up_to_date.as_secs_f64() * 1e3)
            .collect::<Vec<_>>(),
    );

    let reference_name = "automerge sync, fresh sync states";
    Ok(ScenarioReport {
        number: 3,
        title: "No-op reconnect".into(),
        setup: format!(
            "{buildings} unchanged building documents ({visits_each} visits each) on both \
             sides, sync states persisted; QUIC figures are medians of {repetitions} restarts"
        ),
        figures: vec![
            Figure::new(
                "bytes, gridsync frames over QUIC, both ways",
                frame_bytes,
                "bytes",
            )
            .with_reference(reference_name, fresh_bytes as f64)
            .with_target(TargetKind::AtMost, 2048.0),
            Figure::new(
                "round trips, gridsync engine (virtual link)",
                engine_round_trips,
                "round trips",
            )
            .with_target(TargetKind::AtMost, 2.0),
            Figure::new(
                "bytes, gridsync engine (virtual link), both ways",
                engine_bytes as f64,
                "bytes",
            )
            .with_reference(reference_name, fresh_bytes as f64)
            .with_target(TargetKind::AtMost, 2048.0),
            Figure::new(
                "document sync messages sent on the reconnect",
                engine_doc_frames as f64,
                "messages",
            )
            .with_target(TargetKind::AtMost, 0.0),
            Figure::new(
                "UDP bytes over QUIC incl. TLS handshake and certificates",
                udp_bytes,
                "bytes",
            )
            .with_reference(reference_name, fresh_bytes as f64),
            Figure::new(
                "time from dialing to up to date on both sides, QUIC",
                to_up_to_date,
                "ms",
            ),
        ],
        notes: vec![
            "the 2 KB target applies to the sync protocol's bytes; the UDP figure adds QUIC and \
             the TLS 1.3 handshake with both device certificates, paid once per connection"
                .into(),
            format!(
                "load average {load_at_start} at start, {} at end",
                sync_run::load_average()
            ),
        ],
    })
}

fn local_identity(name: &str, role: Role) -> anyhow::Result<LocalIdentity> {
    Ok(LocalIdentity {
        node_id: NodeId::parse(name)?,
        role,
        scopes: Scopes(vec![street_write()]),
    })
}

/// Restarts the office and the captain from their stores, lets the captain dial the office
/// through a counting relay, and measures until both report being up to date.
fn reconnect_over_quic(
    street: &BenchStreet,
    source: &Source,
    office_id: &NodeId,
    office_credentials: gridsync_net::NodeCredentials,
) -> anyhow::Result<QuicReconnect> {
    let office_dir = street.node_dir(office_id);
    let office_replica = street.reopen(office_id)?;
    let mut source_replica = street.reopen(&source.node_id)?;
    source_replica.load_all()?;
    harness::block_on(async {
        let office = harness::start_node(office_credentials, office_replica, Vec::new())?;
        let relay = CountingRelay::start(office.local_addr).await?;
        let started = Instant::now();
        let captain =
            harness::start_node(source.credentials.clone(), source_replica, vec![relay.addr])?;
        let up_to_date = |node: &gridsync_node::node::RunningNode, peer: &NodeId| {
            node.handle()
                .peers()
                .iter()
                .any(|p| p.node_id == *peer && p.connected && p.up_to_date)
        };
        harness::wait_until(
            "both sides up to date after the reconnect",
            RECONNECT_TIMEOUT,
            Duration::from_millis(1),
            || Ok(up_to_date(&office, &source.node_id) && up_to_date(&captain, office_id)),
        )
        .await
        .with_context(|| format!("office store in {}", office_dir.display()))?;
        let elapsed = started.elapsed();
        tokio::time::sleep(SETTLE).await;
        let frame_bytes = office
            .handle()
            .peer(&source.node_id)
            .map_or(0, |p| p.bytes_sent + p.bytes_received);
        let udp_bytes = relay.totals().total();
        harness::stop_all(vec![captain, office]).await;
        Ok::<_, anyhow::Error>(QuicReconnect {
            frame_bytes,
            udp_bytes,
            to_up_to_date: elapsed,
        })
    })?
}
