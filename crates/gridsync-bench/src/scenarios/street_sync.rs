//! Scenario 1, street initial sync: a captain holding every building document of the street
//! (1,000 documents, 108 visits each, one change per visit) starts and dials an empty office
//! over QUIC on loopback; both stores are durable. Timed until the office has stored every
//! document at the captain's heads (see [`crate::sync_run::initial_sync`]).
//!
//! Reference, same run, same documents: each document synced to an empty one with
//! `automerge::sync` alone in memory (messages encoded and decoded, no IO). A second figure
//! runs gridsync's sans-IO engine between two in-memory sessions, which separates what the
//! engine costs from what QUIC, the stores and the node's tasks add.

use std::time::Instant;

use gridsync_proto::{LocalIdentity, NodeId, Role, Scopes};

use crate::harness::{self, BenchStreet, median, street_write};
use crate::progress::Progress;
use crate::report::{Figure, ScenarioReport, TargetKind};
use crate::scale::Scale;
use crate::sync_run::{self, Source};
use gridsync_proto::testing::{Identity, MemoryDocs, Pair};

/// Visits per building: 1,000 buildings of 18 households, six sweep rounds, 108,000 visits.
const VISITS_PER_BUILDING: usize = 108;

pub fn run(scale: Scale, progress: &Progress) -> anyhow::Result<ScenarioReport> {
    let buildings = scale.pick(20, 1000);
    let visits_each = scale.pick(12, VISITS_PER_BUILDING);
    let repetitions = scale.pick(1, 3);
    let load_at_start = sync_run::load_average();
    let (author, docs) = harness::captain_buildings(buildings, visits_each, progress)?;
    let visits = harness::count_visits(&docs);
    let street = BenchStreet::new()?;
    let source = Source::populate(&street, author.as_str(), &docs, progress)?;

    progress.step("reference: automerge::sync in memory");
    let mut reference_secs = Vec::new();
    let mut reference_cpu = Vec::new();
    for _ in 0..repetitions {
        let reference = sync_run::automerge_reference(&docs)?;
        reference_secs.push(reference.took.as_secs_f64());
        reference_cpu.push(reference.cpu.as_secs_f64());
    }
    let reference_secs = median(&reference_secs);
    let reference_cpu = median(&reference_cpu);

    progress.step("gridsync engine between in-memory sessions");
    let mut engine_secs = Vec::new();
    let mut engine_round_trips = 0.0;
    for _ in 0..repetitions {
        let (secs, round_trips) = engine_in_memory(&docs)?;
        engine_secs.push(secs);
        engine_round_trips = round_trips;
    }
    let engine_secs = median(&engine_secs);

    let mut quic_secs = Vec::new();
    let mut quic_cpu = Vec::new();
    for repetition in 1..=repetitions {
        progress.step(&format!(
            "QUIC initial sync to an empty office, run {repetition} of {repetitions}"
        ));
        let run = sync_run::initial_sync(
            &street,
            &source,
            &format!("office-{repetition}"),
            false,
            progress,
        )?;
        quic_secs.push(run.took.as_secs_f64());
        quic_cpu.push(run.cpu.as_secs_f64());
    }
    let quic_secs = median(&quic_secs);
    let quic_cpu = median(&quic_cpu);

    progress.step("change signatures: signing and verifying with a device key");
    let signatures = signature_rates(&source, scale.pick(200, 5_000))?;
    // One signature per author per document crosses the sync: the captain's, on each of its
    // documents (and a few on the street documents, left out here).
    let verify_share = buildings as f64 / signatures.verified_per_sec / quic_cpu.max(0.01);

    let rate = |secs: f64| visits as f64 / secs;
    // CPU time comes in 10 ms ticks: a smoke run can take less than one.
    let cpu_rate = |secs: f64| visits as f64 / secs.max(0.01);
    let reference_name = "automerge::sync in memory";
    Ok(ScenarioReport {
        number: 1,
        title: "Street initial sync".into(),
        setup: format!(
            "{buildings} building documents, {visits} visits (one change each), captain -> empty office, \
             QUIC on loopback, durable stores on both ends; median of {repetitions}"
        ),
        figures: vec![
            Figure::new(
                "visits/s, QUIC + durable stores",
                rate(quic_secs),
                "visits/s",
            )
            .with_reference(reference_name, rate(reference_secs))
            .with_target(TargetKind::RatioAtLeast, 0.5),
            Figure::new("initial sync time, QUIC + durable stores", quic_secs, "s")
                .with_reference(reference_name, reference_secs),
            Figure::new(
                "visits per CPU-second, QUIC + durable (both nodes)",
                cpu_rate(quic_cpu),
                "visits/CPU-s",
            )
            .with_reference(reference_name, cpu_rate(reference_cpu)),
            Figure::new(
                "visits/s, gridsync engine in memory (no QUIC, no disk)",
                rate(engine_secs),
                "visits/s",
            )
            .with_reference(reference_name, rate(reference_secs)),
            Figure::new(
                "round trips, gridsync engine (virtual link)",
                engine_round_trips,
                "round trips",
            ),
            Figure::new(
                "documents/s, QUIC + durable stores",
                buildings as f64 / quic_secs,
                "docs/s",
            ),
            Figure::new(
                "change signatures signed per second (ECDSA P-256, one core)",
                signatures.signed_per_sec,
                "signatures/s",
            ),
            Figure::new(
                "change signatures verified per second (ECDSA P-256, one core)",
                signatures.verified_per_sec,
                "signatures/s",
            ),
            Figure::new(
                "share of the sync's CPU spent verifying signatures (one per document)",
                verify_share * 100.0,
                "%",
            ),
        ],
        notes: vec![
            format!(
                "timed from the captain's start (documents already loaded) to the office's last \
                 durable store; the office's store is then reopened and every document's heads \
                 checked; load average {load_at_start} at start, {} at end",
                sync_run::load_average()
            ),
            "the reference syncs the documents one after the other with fresh sync states, \
             encoding and decoding every message, on copies loaded from the saved documents"
                .into(),
            "CPU-seconds (user + system, whole process) depend much less on other load than \
             wall time: a CPU ratio near the wall ratio means the sync is bound by its own work, \
             a much higher one that it waits (on the disk, or for a CPU on a busy machine)"
                .into(),
        ],
    })
}

/// Syncs `docs` from one gridsync session to an empty one in memory; returns the seconds it
/// took and the round trips the virtual link counted.
fn engine_in_memory(
    docs: &[(gridsync_proto::DocPath, automerge::Automerge)],
) -> anyhow::Result<(f64, f64)> {
    let identity = |name: &str, role: Role| -> anyhow::Result<LocalIdentity> {
        Ok(LocalIdentity {
            node_id: NodeId::parse(name)?,
            role,
            scopes: Scopes(vec![street_write()]),
        })
    };
    let captain = identity("cap-01", Role::Captain)?;
    let office = identity("office", Role::Office)?;
    let mut loaded = Vec::with_capacity(docs.len());
    for (path, doc) in docs {
        loaded.push((path.clone(), automerge::Automerge::load(&doc.save())?));
    }
    let a = MemoryDocs::for_measuring(&captain.node_id, &loaded);
    let b = MemoryDocs::for_measuring(&office.node_id, &[]);
    let started = Instant::now();
    let mut pair = Pair::new(
        (Identity::certified(captain.clone()), a),
        (Identity::certified(office.clone()), b),
    )
    .keep_sent(false);
    pair.try_drive()?;
    let secs = started.elapsed().as_secs_f64();
    let round_trips = pair.round_trips();
    let (_, office_docs) = pair.into_docs();
    for (path, doc) in docs {
        let synced = office_docs.docs.get(path).map(|d| d.get_heads());
        anyhow::ensure!(
            synced == Some(doc.get_heads()),
            "the in-memory engine left {path} incomplete"
        );
    }
    Ok((secs, round_trips))
}

/// Signing and verifying rates of change signatures with a device key.
struct SignatureRates {
    signed_per_sec: f64,
    verified_per_sec: f64,
}

/// Signs and verifies `count` change signatures with `source`'s device key, over the bytes
/// a device signs (domain, document path, change hash).
fn signature_rates(source: &Source, count: usize) -> anyhow::Result<SignatureRates> {
    let signer = gridsync_net::ChangeSigner::from_pkcs8(&source.credentials.key_der)?;
    let public_key = gridsync_net::certificate_public_key(&source.credentials.cert_der)?;
    let path = gridsync_proto::DocPath::parse("panhuo/grid-001/b-00001")?;
    let messages: Vec<Vec<u8>> = (0..count)
        .map(|i| {
            let hash = automerge::ChangeHash([(i % 251) as u8; 32]);
            gridsync_proto::signature::signed_bytes(&path, &hash)
        })
        .collect();
    let started = Instant::now();
    let signatures = messages
        .iter()
        .map(|m| signer.sign(m))
        .collect::<Result<Vec<_>, _>>()?;
    let signed_per_sec = count as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    for (message, signature) in messages.iter().zip(&signatures) {
        anyhow::ensure!(
            gridsync_net::verify_change_signature(&public_key, message, signature),
            "a signature made with the device key does not verify"
        );
    }
    let verified_per_sec = count as f64 / started.elapsed().as_secs_f64();
    Ok(SignatureRates {
        signed_per_sec,
        verified_per_sec,
    })
}
