//! Scenario 7, wire bytes per visit during the street's initial sync: the documents of
//! scenario 1 (1,000 buildings, 108 visits each) go from a captain to an empty office over
//! QUIC, through a counting UDP relay. Two figures per visit: gridsync's frames (hello,
//! inventory, per-document sync messages: the protocol's own bytes) and the UDP bytes the
//! network carried (plus QUIC, TLS and acknowledgements).
//!
//! Reference, same documents: the bytes of the sync messages `automerge::sync` itself
//! exchanges to sync each document to an empty one, both ways.

use gridsync_proto::NodeId;

use crate::harness::{self, BenchStreet, StreetLayout};
use crate::progress::Progress;
use crate::report::{Figure, ScenarioReport, TargetKind};
use crate::scale::Scale;
use crate::sync_run::{self, Source};

/// Visits per building, as in scenario 1.
const VISITS_PER_BUILDING: usize = 108;

pub fn run(scale: Scale, progress: &Progress) -> anyhow::Result<ScenarioReport> {
    let buildings = scale.pick(20, 1000);
    let visits_each = scale.pick(12, VISITS_PER_BUILDING);
    let layout = StreetLayout::reference(buildings);
    let author = NodeId::parse("cap-01")?;
    progress.step(&format!(
        "building {buildings} documents with {visits_each} visits each"
    ));
    let docs = harness::building_docs(&layout, 0..buildings, visits_each, &author, progress)?;
    let visits = harness::count_visits(&docs) as f64;

    progress.step("reference: automerge::sync message bytes");
    let reference = sync_run::automerge_reference(&docs)?;

    progress.step("QUIC initial sync through a counting UDP relay");
    let street = BenchStreet::new()?;
    let source = Source::populate(&street, author.as_str(), &docs, progress)?;
    let run = sync_run::initial_sync(&street, &source, "office", true, progress)?;
    let wire = run
        .wire
        .ok_or_else(|| anyhow::anyhow!("the sync did not go through the relay"))?;

    let reference_name = "automerge::sync messages, same documents";
    let per_visit = |bytes: u64| bytes as f64 / visits;
    Ok(ScenarioReport {
        number: 7,
        title: "Wire bytes per visit".into(),
        setup: format!(
            "{buildings} building documents, {visits} visits, captain -> empty office, initial \
             sync over QUIC on loopback through a counting UDP relay"
        ),
        figures: vec![
            Figure::new(
                "gridsync frame bytes per visit, both ways",
                per_visit(run.frame_bytes),
                "bytes/visit",
            )
            .with_reference(reference_name, per_visit(reference.bytes))
            .with_target(TargetKind::RatioAtMost, 1.2),
            Figure::new(
                "UDP bytes per visit (QUIC, TLS, acks included)",
                per_visit(wire.total()),
                "bytes/visit",
            )
            .with_reference(reference_name, per_visit(reference.bytes))
            .with_target(TargetKind::RatioAtMost, 1.2),
            Figure::new(
                "stored snapshot bytes per visit (compressed, for scale)",
                per_visit(source.stored_bytes),
                "bytes/visit",
            ),
            Figure::new("UDP datagrams", wire.datagrams as f64, "datagrams"),
        ],
        notes: vec![format!(
            "automerge exchanged {} sync messages ({} bytes); gridsync {} frame bytes, {} UDP \
             bytes ({} toward the office, {} back)",
            reference.messages,
            reference.bytes,
            run.frame_bytes,
            wire.total(),
            wire.to_upstream,
            wire.from_upstream
        )],
    })
}
