//! Population and measurement helpers for the node-side scenarios (4, 5, 6), on top of the
//! harness's [`StreetLayout`]: visits with varied outcomes, flags and needs written by several
//! volunteers (so an office aggregates something like a real week), whole building documents
//! built from them, resident-memory readings of a process, and percentiles.
//!
//! Everything is deterministic from its arguments (record ids included), so two runs build
//! the same documents.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::Context as _;
use automerge::Automerge;
use gridsync_model::{
    DocKind, NeedKind, SpecialNeed, StreetPlan, Visit, VisitOutcome, WriteContext,
};
use gridsync_proto::NodeId;

use crate::harness::{StreetLayout, visit_id};

/// Volunteers whose devices wrote the visits of one building.
const VOLUNTEERS_PER_BUILDING: usize = 3;

/// Visits are a minute apart and end a minute before "now" (the model refuses visits from
/// the future).
const VISIT_SPACING_MS: i64 = 60_000;

/// Visit `i` of building `k`, the last of `total` ending a minute before `now_ms`: the
/// building's households in turn, mostly contacted, every seventh contact flagging an elderly
/// resident living alone who needs medicine.
pub fn visit(layout: &StreetLayout, k: usize, i: usize, total: usize, now_ms: i64) -> Visit {
    let outcomes = [
        VisitOutcome::Contacted,
        VisitOutcome::NotHome,
        VisitOutcome::Contacted,
        VisitOutcome::Refused,
        VisitOutcome::Contacted,
    ];
    let outcome = outcomes[i % outcomes.len()];
    let mut flags = BTreeSet::new();
    let mut needs = BTreeMap::new();
    if outcome == VisitOutcome::Contacted && i.is_multiple_of(7) {
        flags.insert(SpecialNeed::ElderlyLivingAlone);
        needs.insert(NeedKind::Medicine, "blood pressure tablets".to_owned());
    }
    let at_ms = now_ms - (total.saturating_sub(i) as i64) * VISIT_SPACING_MS;
    Visit {
        id: visit_id(k, i, at_ms),
        household: layout.household(k, i),
        volunteer: volunteer(k, i).to_string(),
        at_ms,
        outcome,
        people_seen: (i % 4) as u16,
        flags,
        needs,
        note: "door-to-door sweep".to_owned(),
    }
}

/// Building `k`'s document: its genesis plus `visits` visits, one change each, written through
/// the field model under the actors of the volunteers who logged them.
pub fn building_doc(
    layout: &StreetLayout,
    plan: &StreetPlan,
    k: usize,
    visits: usize,
    now_ms: i64,
) -> anyhow::Result<Automerge> {
    let building = layout.building(k);
    let ctx = WriteContext {
        plan,
        building: &building,
        now_ms,
    };
    let mut doc = gridsync_model::genesis(DocKind::Building);
    for i in 0..visits {
        doc.set_actor(gridsync_model::actor_for(&volunteer(k, i)));
        gridsync_model::record_visit(&mut doc, &ctx, &visit(layout, k, i, visits, now_ms))
            .with_context(|| format!("cannot write visit {i} of {building}"))?;
    }
    Ok(doc)
}

/// The volunteer device that logged visit `i` of building `k`.
pub fn volunteer(k: usize, i: usize) -> NodeId {
    let n = (k * VOLUNTEERS_PER_BUILDING + i % VOLUNTEERS_PER_BUILDING) % 1000;
    // Invariant: "vol-" and four digits are a valid node id.
    NodeId::parse(&format!("vol-{n:04}")).expect("vol-NNNN is a valid node id")
}

/// Resident memory of process `pid` (`self` for this one) from `/proc/<pid>/status`: the
/// current VmRSS and the peak VmHWM, in bytes.
pub fn resident_memory(pid: &str) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("cannot read /proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let kib: u64 = status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?
            .parse()?;
        Ok(kib * 1024)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Bytes as MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Nearest-rank percentile `p` (0..=1) of `values`; NaN when empty.
pub fn percentile(values: &[f64], p: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varied_visits_are_accepted_by_the_model() {
        let layout = StreetLayout::reference(3);
        let plan = layout.street_plan();
        let now_ms = 1_764_400_000_000;
        let doc = building_doc(&layout, &plan, 2, 30, now_ms).expect("visits are valid");
        let records = gridsync_model::BuildingRecords::read(&doc);
        assert_eq!(records.corrected_visits().len(), 30);
        let authors: BTreeSet<_> = doc
            .get_changes_meta(&[])
            .iter()
            .map(|c| c.actor.clone())
            .collect();
        // The genesis actor and three volunteers.
        assert_eq!(authors.len(), 1 + VOLUNTEERS_PER_BUILDING);
    }

    #[test]
    fn percentiles_use_nearest_rank() {
        let values = [5.0, 1.0, 4.0, 2.0, 3.0];
        assert_eq!(percentile(&values, 0.5), 3.0);
        assert_eq!(percentile(&values, 0.99), 5.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn this_process_has_resident_memory() {
        let (rss, peak) = resident_memory("self").expect("linux /proc");
        assert!(rss > 0 && peak >= rss);
    }
}
