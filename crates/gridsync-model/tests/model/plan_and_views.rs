//! Plan import round trip at street scale, the building view and streaming export.

use std::time::Instant;

use gridsync_model::{
    CorrectionAction, DeliveryItem, DeliveryStatus, DocKind, FirstSight, Household, NeedKind,
    PlanImport, RecordKind, StreetPlan, VisitOutcome, Zone, apply_import, building_view,
    export_rows, genesis, has_open_needs, parse_csv, read_plan, record_correction, record_delivery,
    record_sweep, record_visit,
};
use gridsync_proto::DocPath;

use super::support::{
    BUILDING, NOW, ctx, delivery, device, plan, plan_csv, retraction, rid, sweep, visit,
};

fn street(households: usize) -> PlanImport {
    PlanImport {
        households: (0..households)
            .map(|n| Household {
                id: format!("h-{n:05}"),
                community: format!("c-{}", n / 6_000),
                grid: format!("grid-{:03}", n / 600),
                building: format!("bldg-{:04}", n / 20),
                unit: format!("u{}", n % 4),
                door: format!("{}-{}", n % 4, n % 20),
                residents: (n % 5) as u32,
                zone: Zone::Control,
            })
            .collect(),
    }
}

#[test]
fn plan_round_trips_through_its_document_at_street_scale() {
    let import = street(18_563);
    let mut doc = genesis(DocKind::StreetPlan);
    let started = Instant::now();
    apply_import(&mut doc, &import, NOW)
        .expect("applies")
        .expect("a change");
    let applied = started.elapsed();
    let (plan, bad) = read_plan(&doc);
    assert!(bad.is_empty());
    assert_eq!(plan, StreetPlan::from_import(&import));
    assert_eq!(plan.household_count(), 18_563);
    assert_eq!(
        plan.household("h-18562").map(|h| h.building.as_str()),
        Some("bldg-0928")
    );
    assert_eq!(
        plan.building("bldg-0000").map(|b| b.households.len()),
        Some(20)
    );
    // Re-applying the same import adds nothing.
    assert_eq!(apply_import(&mut doc, &import, NOW).expect("applies"), None);
    let started = Instant::now();
    let hits = (0..18_563)
        .filter(|n| plan.household(&format!("h-{n:05}")).is_some())
        .count();
    assert_eq!(hits, 18_563);
    eprintln!(
        "applied 18,563 households in {applied:?}, looked all up in {:?}",
        started.elapsed()
    );
}

#[test]
fn csv_import_matches_the_document_read_back() {
    let import = parse_csv(plan_csv().as_bytes()).expect("parses");
    let mut doc = genesis(DocKind::StreetPlan);
    apply_import(&mut doc, &import, NOW).expect("applies");
    let (read, bad) = read_plan(&doc);
    assert!(bad.is_empty());
    assert_eq!(read, plan());
}

#[test]
fn building_view_applies_corrections_rules_and_needs() {
    let plan = plan();
    let ctx = ctx(&plan);
    let mut doc = device("vol-a");
    let t = NOW - 100_000;
    // h-1: contacted with a medicine need, then medicine delivered -> need closed.
    record_visit(&mut doc, &ctx, &visit(rid(t, 1), "h-1", t)).expect("valid");
    let mut med = delivery(rid(t + 10, 2), "h-1", DeliveryStatus::Delivered, t + 10);
    med.item = DeliveryItem::Medicine;
    record_delivery(&mut doc, &ctx, &med).expect("valid");
    // h-2: contacted with a need, later not at home; flags and needs stay from the contact.
    record_visit(&mut doc, &ctx, &visit(rid(t, 3), "h-2", t)).expect("valid");
    let mut absent = visit(rid(t + 20, 4), "h-2", t + 20);
    absent.outcome = VisitOutcome::NotHome;
    absent.needs.clear();
    absent.flags.clear();
    record_visit(&mut doc, &ctx, &absent).expect("valid");
    // h-3: a visit replaced by a correction (wrong outcome).
    let wrong = visit(rid(t, 5), "h-3", t);
    record_visit(&mut doc, &ctx, &wrong).expect("valid");
    let mut fixed = wrong.clone();
    fixed.outcome = VisitOutcome::Refused;
    fixed.needs.clear();
    let mut fix = retraction(rid(t + 30, 6), &wrong.id, RecordKind::Visit, t + 30);
    fix.action = CorrectionAction::ReplaceVisit(Box::new(fixed));
    record_correction(&mut doc, &ctx, &fix).expect("valid");
    // Sweeps: round 1 retracted, round 2 kept.
    let s1 = sweep(rid(t, 7), 1, t);
    record_sweep(&mut doc, &ctx, &s1).expect("valid");
    record_sweep(&mut doc, &ctx, &sweep(rid(t + 40, 8), 2, t + 40)).expect("valid");
    record_correction(
        &mut doc,
        &ctx,
        &retraction(rid(t + 50, 9), &s1.id, RecordKind::Sweep, t + 50),
    )
    .expect("valid");

    let view = building_view(&doc, &plan, BUILDING);
    assert_eq!(view.households.len(), 6);
    // The plan-free check the sync engine uses agrees with the view.
    assert_eq!(
        has_open_needs(&doc),
        view.households.iter().any(|h| !h.open_needs.is_empty())
    );
    let h = |id: &str| {
        view.households
            .iter()
            .find(|h| h.household.id == id)
            .expect("household")
    };
    assert!(h("h-1").open_needs.is_empty());
    assert_eq!(h("h-1").deliveries[0].status, DeliveryStatus::Delivered);
    assert_eq!(
        h("h-2").latest_visit.as_ref().map(|v| v.outcome),
        Some(VisitOutcome::NotHome)
    );
    assert!(h("h-2").open_needs.contains_key(&NeedKind::Medicine));
    assert!(!h("h-2").flags.is_empty());
    assert_eq!(
        h("h-3").latest_visit.as_ref().map(|v| v.outcome),
        Some(VisitOutcome::Refused)
    );
    assert!(h("h-4").latest_visit.is_none());
    assert_eq!(view.sweeps.len(), 1);
    assert_eq!(view.sweeps[0].round, 2);
    assert!(view.unplanned_households.is_empty());
    // The corrected visit's original stays readable.
    let records = gridsync_model::BuildingRecords::read(&doc);
    let corrected = records.corrected_visits();
    let c = corrected
        .iter()
        .find(|v| v.original.id == wrong.id)
        .expect("corrected visit");
    assert_eq!(c.original.outcome, VisitOutcome::Contacted);
    assert_eq!(c.current.outcome, VisitOutcome::Refused);
    assert_eq!(c.corrected_by.as_ref(), Some(&fix.id));

    // Export: every record as a row, serializable to CSV and JSON.
    let path = DocPath::parse("panhuo/grid-017/bldg-12").expect("valid path");
    let mut csv_out = csv::Writer::from_writer(Vec::new());
    let mut rows = 0;
    for row in export_rows(&doc, &path, &FirstSight::trust_claimed()) {
        let row = row.expect("well-formed");
        serde_json::to_string(&row).expect("json");
        csv_out.serialize(&row).expect("csv");
        rows += 1;
    }
    assert_eq!(rows, 4 + 1 + 2 + 2);
    let text = String::from_utf8(csv_out.into_inner().expect("flush")).expect("utf-8");
    assert!(text.starts_with("document,kind,id,by,at_ms,household,status"));
    assert!(text.contains("medicine:insulin"));
}

#[test]
fn open_needs_close_when_the_fulfilling_item_is_delivered() {
    let plan = plan();
    let ctx = ctx(&plan);
    let mut doc = device("vol-a");
    assert!(!has_open_needs(&doc), "an empty building has no needs");
    let t = NOW - 100_000;
    let mut routine = visit(rid(t, 1), "h-1", t);
    routine.needs.clear();
    record_visit(&mut doc, &ctx, &routine).expect("valid");
    assert!(!has_open_needs(&doc), "a visit without needs opens none");
    record_visit(&mut doc, &ctx, &visit(rid(t + 5, 2), "h-1", t + 5)).expect("valid");
    assert!(has_open_needs(&doc), "a medicine need is open");
    // Food does not meet a medicine need; medicine delivered before the visit does not either.
    let food = delivery(rid(t + 10, 3), "h-1", DeliveryStatus::Delivered, t + 10);
    record_delivery(&mut doc, &ctx, &food).expect("valid");
    assert!(has_open_needs(&doc));
    let mut medicine = delivery(rid(t + 20, 4), "h-1", DeliveryStatus::Delivered, t + 20);
    medicine.item = DeliveryItem::Medicine;
    record_delivery(&mut doc, &ctx, &medicine).expect("valid");
    assert!(!has_open_needs(&doc), "delivered medicine closes the need");
}

#[test]
fn visits_reporting_needs_are_marked_urgent_for_the_sync_engine() {
    let plan = plan();
    let ctx = ctx(&plan);
    let mut doc = device("vol-a");
    let t = NOW - 100_000;
    let mut routine = visit(rid(t, 1), "h-1", t);
    routine.needs.clear();
    let plain = record_visit(&mut doc, &ctx, &routine).expect("valid");
    let needing = record_visit(&mut doc, &ctx, &visit(rid(t + 5, 2), "h-2", t + 5)).expect("valid");
    let message = |hash| {
        doc.get_change_meta_by_hash(&hash)
            .and_then(|meta| meta.message.map(|m| m.to_string()))
    };
    assert_eq!(message(plain), None);
    assert_eq!(
        message(needing).as_deref(),
        Some(gridsync_proto::URGENT_CHANGE)
    );
}
