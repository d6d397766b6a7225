//! A buggy or hostile peer's malformed records are skipped and reported, never a panic.

use automerge::transaction::Transactable;
use automerge::{ObjType, ROOT, ReadDoc};
use gridsync_model::{
    BuildingRecords, DocKind, FirstSight, RecordKind, building_view, export_rows, genesis,
    read_plan, record_visit,
};
use gridsync_proto::DocPath;

use super::support::{BUILDING, NOW, ctx, device, plan, rid, visit};

#[test]
fn malformed_visits_are_skipped_and_reported() {
    let plan = plan();
    let mut doc = device("vol-a");
    let good = visit(rid(NOW - 1_000, 1), "h-1", NOW - 1_000);
    record_visit(&mut doc, &ctx(&plan), &good).expect("valid visit");

    // A hostile peer writes straight into the document, bypassing validation.
    let mut hostile = doc
        .fork()
        .with_actor(automerge::ActorId::from(b"evil".as_slice()));
    {
        let mut tx = hostile.transaction();
        let (_, visits) = tx.get(ROOT, "visits").ok().flatten().expect("visits map");
        let (_, deliveries) = tx
            .get(ROOT, "deliveries")
            .ok()
            .flatten()
            .expect("deliveries map");
        // 1: key is not a ULID.
        let o = tx
            .put_object(&visits, "not-an-id", ObjType::Map)
            .expect("put");
        tx.put(&o, "household", "h-1").expect("put");
        // 2: a scalar where a record map belongs.
        tx.put(&visits, rid(NOW, 2).as_str(), "just a string")
            .expect("put");
        // 3..: maps with bad fields, each otherwise a copy of a good visit.
        let bad_fields: Vec<(&str, automerge::ScalarValue)> = vec![
            ("outcome", "exploded".into()),
            ("people_seen", automerge::ScalarValue::Int(-5)),
            ("note", "z".repeat(10_000).into()),
            ("at", automerge::ScalarValue::Str("yesterday".into())),
            ("flags", "elderly-living-alone,alien".into()),
            ("need.unicorn", "".into()),
            ("household", "../../etc".into()),
        ];
        for (n, (field, value)) in bad_fields.into_iter().enumerate() {
            let o = tx
                .put_object(&visits, rid(NOW, 10 + n as u128).as_str(), ObjType::Map)
                .expect("put");
            for (k, v) in [
                ("household", automerge::ScalarValue::from("h-1")),
                ("volunteer", "vol-x".into()),
                ("at", automerge::ScalarValue::Int(NOW - 1)),
                ("outcome", "contacted".into()),
                ("people_seen", automerge::ScalarValue::Uint(1)),
                ("flags", "".into()),
                ("note", "".into()),
            ] {
                tx.put(&o, k, v).expect("put");
            }
            tx.put(&o, field, value).expect("put");
        }
        // A visit missing a field entirely.
        let o = tx
            .put_object(&visits, rid(NOW, 30).as_str(), ObjType::Map)
            .expect("put");
        tx.put(&o, "household", "h-1").expect("put");
        // A record stuffed with keys.
        let o = tx
            .put_object(&visits, rid(NOW, 31).as_str(), ObjType::Map)
            .expect("put");
        for k in 0..200 {
            tx.put(&o, format!("k{k}"), k as i64).expect("put");
        }
        // A list inside a record field, and a delivery that is a list.
        let o = tx
            .put_object(&visits, rid(NOW, 32).as_str(), ObjType::Map)
            .expect("put");
        tx.put_object(&o, "household", ObjType::List).expect("put");
        tx.put_object(&deliveries, rid(NOW, 33).as_str(), ObjType::List)
            .expect("put");
        tx.commit();
    }
    doc.merge(&mut hostile).expect("merge");

    let records = BuildingRecords::read(&doc);
    assert_eq!(records.visits, vec![good.clone()]);
    assert_eq!(records.malformed.len(), 13, "{:#?}", records.malformed);
    assert!(
        records
            .malformed
            .iter()
            .any(|m| m.kind == RecordKind::Delivery)
    );
    assert!(
        records
            .malformed
            .iter()
            .any(|m| m.problem.contains("unknown visit outcome"))
    );

    let view = building_view(&doc, &plan, BUILDING);
    assert_eq!(view.malformed.len(), 13);
    let h1 = view
        .households
        .iter()
        .find(|h| h.household.id == "h-1")
        .expect("h-1 in view");
    assert_eq!(h1.visits, 1);

    let path = DocPath::parse("panhuo/grid-017/bldg-12").expect("valid path");
    let rows: Vec<_> = export_rows(&doc, &path, &FirstSight::trust_claimed()).collect();
    assert_eq!(rows.iter().filter(|r| r.is_ok()).count(), 1);
    assert_eq!(rows.iter().filter(|r| r.is_err()).count(), 13);
}

#[test]
fn a_document_without_its_maps_reads_as_malformed_not_a_panic() {
    let mut doc = automerge::Automerge::new();
    let mut tx = doc.transaction();
    tx.put(ROOT, "visits", "not a map").expect("put");
    tx.commit();
    let records = BuildingRecords::read(&doc);
    assert!(records.visits.is_empty());
    assert_eq!(records.malformed.len(), 4);

    let (plan, bad) = read_plan(&doc);
    assert_eq!(plan.household_count(), 0);
    assert_eq!(bad.len(), 1);
    // And a plan document with one bad household entry keeps the rest.
    let mut plan_doc = genesis(DocKind::StreetPlan);
    let import = gridsync_model::parse_csv(super::support::plan_csv().as_bytes()).expect("parses");
    gridsync_model::apply_import(&mut plan_doc, &import, NOW).expect("applies");
    let mut tx = plan_doc.transaction();
    let (_, households) = tx
        .get(ROOT, "households")
        .ok()
        .flatten()
        .expect("households");
    let (_, h1) = tx.get(&households, "h-1").ok().flatten().expect("h-1");
    tx.put(&h1, "zone", "moon").expect("put");
    tx.commit();
    let (plan, bad) = read_plan(&plan_doc);
    assert_eq!(plan.household_count(), 7);
    assert_eq!(bad.len(), 1);
    assert!(plan_doc.get(ROOT, "kind").is_ok());
}
