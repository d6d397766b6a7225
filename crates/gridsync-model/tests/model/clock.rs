//! The clock rule: record times bounded by when the reading node first saw them.

use gridsync_model::{
    BuildingRecords, CorrectionAction, FirstSight, RecordKind, VisitOutcome, WriteContext,
    building_view, export_rows, record_correction, record_visit,
};
use gridsync_proto::DocPath;

use super::support::{BUILDING, NOW, device, plan, retraction, rid, visit};

const HOUR: i64 = 3_600_000;

/// Every change of `doc` as first held at `seen_ms`.
fn all_seen_at(doc: &automerge::Automerge, seen_ms: i64) -> FirstSight {
    let arrivals = doc
        .get_changes_meta(&[])
        .into_iter()
        .map(|c| (c.hash.0, seen_ms))
        .collect::<Vec<_>>();
    FirstSight::of_document(doc, arrivals, seen_ms + 24 * HOUR)
}

#[test]
fn a_visit_from_a_clock_six_hours_ahead_counts_at_its_first_sight_and_is_flagged() {
    let plan = plan();
    let fast_clock = WriteContext {
        plan: &plan,
        building: BUILDING,
        now_ms: NOW + 6 * HOUR,
    };
    let mut doc = device("vol-fast");
    let ahead = visit(rid(NOW + 6 * HOUR, 1), "h-1", NOW + 6 * HOUR);
    record_visit(&mut doc, &fast_clock, &ahead).expect("valid visit");
    // Five minutes ahead is ordinary drift.
    let drift = visit(rid(NOW + 5 * 60_000, 2), "h-2", NOW + 5 * 60_000);
    record_visit(&mut doc, &fast_clock, &drift).expect("valid visit");

    let sight = all_seen_at(&doc, NOW);
    let records = BuildingRecords::read_seen(&doc, &sight);
    let read = |id| records.visits.iter().find(|v| &v.id == id).expect("read");
    assert_eq!(read(&ahead.id).at_ms, NOW, "ordered at its first sight");
    assert_eq!(
        read(&drift.id).at_ms,
        NOW + 5 * 60_000,
        "within the tolerance"
    );
    let flagged = records.clock_ahead.get(&ahead.id).expect("flagged");
    assert_eq!((flagged.claimed_ms, flagged.seen_ms), (NOW + 6 * HOUR, NOW));
    assert_eq!(records.clock_ahead.len(), 1);

    // The device itself trusts its own clock.
    let own = BuildingRecords::read(&doc);
    assert!(own.clock_ahead.is_empty());
    assert!(own.visits.iter().any(|v| v.at_ms == NOW + 6 * HOUR));

    // The export keeps the claimed time and says when the record was first seen.
    let path = DocPath::parse("panhuo/grid-017/bldg-12").expect("path");
    let rows: Vec<_> = export_rows(&doc, &path, &sight)
        .collect::<Result<_, _>>()
        .expect("rows");
    let row = rows
        .iter()
        .find(|r| r.id == ahead.id.to_string())
        .expect("row");
    assert_eq!(row.at_ms, NOW + 6 * HOUR);
    assert_eq!(row.clock.as_deref(), Some("clock-ahead"));
    assert_eq!(row.seen_ms, Some(NOW));
    let row = rows
        .iter()
        .find(|r| r.id == drift.id.to_string())
        .expect("row");
    assert_eq!((row.clock.as_deref(), row.seen_ms), (None, None));
}

#[test]
fn a_correction_changes_what_a_visit_says_never_when_it_happened() {
    let plan = plan();
    let ctx = WriteContext {
        plan: &plan,
        building: BUILDING,
        now_ms: NOW + 2 * HOUR,
    };
    let mut doc = device("vol-1");
    let earlier = visit(rid(NOW, 1), "h-1", NOW);
    let later = visit(rid(NOW + HOUR, 2), "h-1", NOW + HOUR);
    record_visit(&mut doc, &ctx, &earlier).expect("valid visit");
    record_visit(&mut doc, &ctx, &later).expect("valid visit");
    // A replacement of the earlier visit that claims a time after the later one.
    let mut replacement = visit(earlier.id.clone(), "h-1", NOW + 2 * HOUR);
    replacement.outcome = VisitOutcome::Refused;
    let mut correction = retraction(
        rid(NOW + 2 * HOUR, 3),
        &earlier.id,
        RecordKind::Visit,
        NOW + 2 * HOUR,
    );
    correction.action = CorrectionAction::ReplaceVisit(Box::new(replacement));
    record_correction(&mut doc, &ctx, &correction).expect("valid correction");

    let corrected = BuildingRecords::read(&doc).corrected_visits();
    let replaced = corrected
        .iter()
        .find(|v| v.original.id == earlier.id)
        .expect("kept");
    assert_eq!(
        replaced.current.outcome,
        VisitOutcome::Refused,
        "what it says changed"
    );
    assert_eq!(replaced.current.at_ms, NOW, "when it happened did not");
    let view = building_view(&doc, &plan, BUILDING);
    let h1 = view
        .households
        .iter()
        .find(|h| h.household.id == "h-1")
        .expect("h-1");
    let latest = h1.latest_visit.as_ref().expect("visited");
    assert_eq!(latest.id, later.id, "the later visit is still the latest");
}
