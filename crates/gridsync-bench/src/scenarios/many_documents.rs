//! Scenario 2, many documents: initial sync of 1,000, 5,000 and 20,000 small building
//! documents (genesis and two visits each) over one QUIC connection, captain -> empty office,
//! durable stores; the time per document at each size. The target is that the per-document
//! time at 20,000 stays within 1.5 times the time at 1,000: the cost of a document must not
//! grow with the number of documents beside it.
//!
//! Reference at each size: the same documents synced with `automerge::sync` alone in memory.

use crate::harness::{self, BenchStreet, StreetLayout, median};
use crate::progress::Progress;
use crate::report::{Figure, ScenarioReport, TargetKind};
use crate::scale::Scale;
use crate::sync_run::{self, Source};

/// Visits in each small document.
const VISITS_PER_DOCUMENT: usize = 2;

pub fn run(scale: Scale, progress: &Progress) -> anyhow::Result<ScenarioReport> {
    let sizes: [usize; 3] = scale.pick([20, 50, 100], [1_000, 5_000, 20_000]);
    // Rounds over all sizes (a 20,000-document run takes 15-60 s on the shared machine).
    let rounds = scale.pick(1, 3);
    let load_at_start = sync_run::load_average();
    let largest = sizes[2];
    let layout = StreetLayout::reference(largest);
    let author = gridsync_proto::NodeId::parse("cap-01")?;
    progress.step(&format!(
        "building {largest} documents with {VISITS_PER_DOCUMENT} visits each"
    ));
    let all_docs =
        harness::building_docs(&layout, 0..largest, VISITS_PER_DOCUMENT, &author, progress)?;

    // A street per size, so that every source is the author of its documents (a node checks
    // relayed changes against its device directory, which is not what is measured here).
    let mut sources = Vec::new();
    for size in sizes {
        progress.step(&format!("{size} documents: storing them on a captain"));
        let street = BenchStreet::new()?;
        let source = Source::populate(&street, author.as_str(), &all_docs[..size], progress)?;
        sources.push((size, street, source));
    }
    // Rounds go through every size in turn, so that a burst of load from elsewhere on the
    // machine lands on all sizes alike rather than on the one that ran at that moment.
    let mut quic: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    let mut cpu: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    let mut reference: Vec<Vec<f64>> = vec![Vec::new(); sizes.len()];
    for round in 1..=rounds {
        for (i, (size, street, source)) in sources.iter().enumerate() {
            progress.step(&format!(
                "{size} documents: QUIC initial sync, round {round} of {rounds}"
            ));
            let run = sync_run::initial_sync(
                street,
                source,
                &format!("office-{round}"),
                false,
                progress,
            )?;
            quic[i].push(run.took.as_secs_f64());
            cpu[i].push(run.cpu.as_secs_f64());
            reference[i].push(
                sync_run::automerge_reference(&all_docs[..*size])?
                    .took
                    .as_secs_f64(),
            );
        }
    }
    // (size, gridsync ms per document, automerge ms per document, CPU ms per document)
    let per_doc: Vec<(usize, f64, f64, f64)> = sizes
        .iter()
        .enumerate()
        .map(|(i, size)| {
            let ms_per_doc = |secs: f64| secs * 1e3 / *size as f64;
            (
                *size,
                ms_per_doc(median(&quic[i])),
                ms_per_doc(median(&reference[i])),
                ms_per_doc(median(&cpu[i])),
            )
        })
        .collect();

    let reference_name = "automerge::sync in memory, same documents";
    let mut figures: Vec<Figure> = per_doc
        .iter()
        .map(|(size, gridsync, automerge, _)| {
            Figure::new(
                format!("time per document at {size} documents"),
                *gridsync,
                "ms",
            )
            .with_reference(reference_name, *automerge)
        })
        .collect();
    let (first_size, first, _, first_cpu) = per_doc[0];
    let (last_size, last, _, last_cpu) = per_doc[2];
    figures.push(
        Figure::new(
            format!("per-document time at {last_size} vs {first_size} documents"),
            last,
            "ms",
        )
        .with_reference(format!("per-document time at {first_size}"), first)
        .with_target(TargetKind::RatioAtMost, 1.5),
    );
    figures.push(
        Figure::new(
            format!("CPU time per document at {last_size} (both nodes)"),
            last_cpu,
            "ms",
        )
        .with_reference(format!("CPU time per document at {first_size}"), first_cpu),
    );
    Ok(ScenarioReport {
        number: 2,
        title: "Many documents".into(),
        setup: format!(
            "{} small building documents ({VISITS_PER_DOCUMENT} visits each), captain -> empty \
             office over one QUIC connection, durable stores; median of {rounds} rounds",
            sizes
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(" / ")
        ),
        figures,
        notes: vec![
            format!(
                "load average {load_at_start} at start, {} at end",
                sync_run::load_average()
            ),
            "for comparison (from the issue, not measured in this run): a per-document \
             automerge-repo style sync took 3 ms per document at 1,000 and 24 ms at 5,000"
                .into(),
        ],
    })
}
