//! Two volunteers' devices record visits to one building while offline, then merge.
//!
//! This is gridsync's data model with nothing else around it: no network, no store, just the
//! automerge documents that every node keeps, written through `gridsync-model`. Two devices
//! that have never exchanged a byte each write records about building `b-001`, then their
//! documents are merged, in both directions, and we watch the building view converge.
//!
//! What it shows:
//! - why every building document starts from the same deterministic *genesis* change, so that
//!   two devices' first visits both survive the merge;
//! - that records never conflict (each is a map under its own fresh id), so a merge is a union;
//! - the delivery merge rule: a `delivered` event wins over any other status, even a later
//!   `out-for-delivery` written by someone who had not heard of the delivery yet;
//! - a need (insulin) stays open until the item that fulfils it is delivered.
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p gridsync-examples --example two_devices_offline
//! ```

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result, ensure};
use gridsync_model::{
    BuildingView, DeliveryEvent, DeliveryItem, DeliveryStatus, DocKind, NeedKind, RecordId,
    SpecialNeed, StreetPlan, Visit, VisitOutcome, WriteContext, actor_for, building_view, genesis,
    parse_csv, record_delivery, record_visit,
};
use gridsync_proto::NodeId;

/// The sample street plan of the reference street "panhuo" (see `examples/street-plan.csv`).
const PLAN_CSV: &str = include_str!("street-plan.csv");

/// 2026-04-02 09:00 in Ningbo (UTC+8), in unix milliseconds: the morning of the sweep.
const NINE_AM: i64 = 1_775_091_600_000;
const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;

fn main() -> Result<()> {
    // The street plan says which households exist and where they live. The office imports it
    // from CSV and every device receives it; here we simply parse the sample file. A write is
    // always checked against it: a visit to a household that is not in this building is
    // refused before anything is written.
    let plan = StreetPlan::from_import(&parse_csv(PLAN_CSV.as_bytes())?);
    let h1 = plan.household("h-0001").context("h-0001 is in the plan")?;
    println!(
        "street plan: {} households; h-0001 lives at door {} of unit {} in building {} (grid {})",
        plan.household_count(),
        h1.door,
        h1.unit,
        h1.building,
        h1.grid
    );
    // The README's walkthrough relies on this placement of h-0001.
    ensure!(
        plan.household_count() == 60
            && (h1.grid.as_str(), h1.building.as_str(), h1.unit.as_str())
                == ("grid-017", "b-001", "u1"),
        "the sample plan places h-0001 in unit u1 of b-001 in grid-017"
    );
    let building = "b-001";

    // Each device holds its own copy of the building's document. Both copies start from
    // `genesis`: one change, made by a fixed all-zero actor at time 0, that creates the
    // top-level maps (`visits`, `deliveries`, ...). Because it is byte-identical everywhere,
    // the two devices share those maps without ever having met. (Had each device created its
    // own `visits` map, automerge would keep only one of the two maps after the merge, and
    // with it only one device's visits.)
    //
    // After genesis, each device writes under its own actor, derived from its node id, so
    // every change says which device made it.
    let vol_a = NodeId::parse("vol-0042")?;
    let vol_b = NodeId::parse("vol-0043")?;
    let mut doc_a = genesis(DocKind::Building).with_actor(actor_for(&vol_a));
    let mut doc_b = genesis(DocKind::Building).with_actor(actor_for(&vol_b));
    ensure!(
        doc_a.get_heads() == doc_b.get_heads(),
        "genesis must be identical on every device"
    );
    println!("both devices start from the same genesis change; now they go offline\n");

    // --- Offline, device A (vol-0042) -------------------------------------------------------
    // 09:00: h-0001 answers the door. An elderly person living alone who needs insulin.
    // Every record gets a fresh ULID minted on the device: that id is its key in the
    // document, so no two records can ever collide.
    let visit_h1 = Visit {
        id: new_id(),
        household: "h-0001".into(),
        volunteer: vol_a.to_string(),
        at_ms: NINE_AM,
        outcome: VisitOutcome::Contacted,
        people_seen: 1,
        flags: BTreeSet::from([SpecialNeed::ElderlyLivingAlone]),
        needs: BTreeMap::from([(NeedKind::Medicine, "insulin".into())]),
        note: "lives alone, 3rd floor".into(),
    };
    record_visit(&mut doc_a, &at(&plan, building, NINE_AM), &visit_h1)?;
    // 09:10: next door, nobody is home.
    let visit_h2 = Visit {
        id: new_id(),
        household: "h-0002".into(),
        volunteer: vol_a.to_string(),
        at_ms: NINE_AM + 10 * MINUTE,
        outcome: VisitOutcome::NotHome,
        people_seen: 0,
        flags: BTreeSet::new(),
        needs: BTreeMap::new(),
        note: String::new(),
    };
    record_visit(&mut doc_a, &at(&plan, building, visit_h2.at_ms), &visit_h2)?;
    // 09:45: vol-0042 picks up insulin at the pharmacy and marks it out for delivery. She
    // cannot know that someone else has already handed it over.
    let out_for_delivery = delivery(
        "h-0001",
        DeliveryItem::Medicine,
        DeliveryStatus::OutForDelivery,
        &vol_a,
        NINE_AM + 45 * MINUTE,
    );
    record_delivery(
        &mut doc_a,
        &at(&plan, building, out_for_delivery.at_ms),
        &out_for_delivery,
    )?;

    // --- Offline, device B (vol-0043) -------------------------------------------------------
    // 09:30: a courier who was sent by the hotline delivers the insulin to h-0001.
    let delivered = delivery(
        "h-0001",
        DeliveryItem::Medicine,
        DeliveryStatus::Delivered,
        &vol_b,
        NINE_AM + 30 * MINUTE,
    );
    record_delivery(
        &mut doc_b,
        &at(&plan, building, delivered.at_ms),
        &delivered,
    )?;
    // 09:40: and visits h-0003 on the way out.
    let visit_h3 = Visit {
        id: new_id(),
        household: "h-0003".into(),
        volunteer: vol_b.to_string(),
        at_ms: NINE_AM + 40 * MINUTE,
        outcome: VisitOutcome::Contacted,
        people_seen: 3,
        flags: BTreeSet::from([SpecialNeed::Child]),
        needs: BTreeMap::new(),
        note: String::new(),
    };
    record_visit(&mut doc_b, &at(&plan, building, visit_h3.at_ms), &visit_h3)?;

    // A write is validated against the plan: a household of another building is refused,
    // and the document is left untouched.
    let mut elsewhere = visit_h3.clone();
    elsewhere.id = new_id();
    elsewhere.household = "h-0030".into(); // lives in b-002
    let refused = record_visit(&mut doc_b, &at(&plan, building, NINE_AM + HOUR), &elsewhere);
    println!(
        "device B tries to file a visit to h-0030 under {building}: {}",
        refused
            .as_ref()
            .err()
            .map(ToString::to_string)
            .unwrap_or_default()
    );
    ensure!(
        refused.is_err(),
        "a household of another building is refused"
    );

    // What each device believes before they meet.
    let view_a = building_view(&doc_a, &plan, building);
    let view_b = building_view(&doc_b, &plan, building);
    print_view("device A (vol-0042), offline", &view_a);
    print_view("device B (vol-0043), offline", &view_b);
    ensure!(
        item_status(&view_a, "h-0001", DeliveryItem::Medicine)
            == Some(DeliveryStatus::OutForDelivery),
        "A alone sees the insulin out for delivery"
    );
    ensure!(
        !open_needs(&view_a, "h-0001").is_empty(),
        "A alone sees the insulin need open"
    );

    // --- They meet --------------------------------------------------------------------------
    // On site, devices sync through gridsync-proto sessions (see `sessions_by_hand`); what
    // the documents end up as is exactly an automerge merge, which we do directly here.
    // Merging is commutative and idempotent: both directions give the same document.
    doc_a.merge(&mut doc_b)?;
    doc_b.merge(&mut doc_a)?;
    ensure!(
        doc_a.get_heads() == doc_b.get_heads(),
        "both devices hold the same history after merging"
    );
    // Merging again changes nothing: replays are harmless.
    let heads = doc_a.get_heads();
    doc_a.merge(&mut doc_b.clone())?;
    ensure!(doc_a.get_heads() == heads, "a replayed merge is a no-op");

    let merged_a = building_view(&doc_a, &plan, building);
    let merged_b = building_view(&doc_b, &plan, building);
    print_view("after the merge (identical on both devices)", &merged_a);
    ensure!(merged_a == merged_b, "both devices derive the same view");

    // Nothing was lost: every visit from both devices is there, including the two "first
    // visits" written concurrently into maps neither device created.
    let visits: u32 = merged_a.households.iter().map(|h| h.visits).sum();
    ensure!(
        visits == 3,
        "all three visits survive the merge, found {visits}"
    );

    // Delivered wins: vol-0042's out-for-delivery is later (09:45) than the delivery (09:30),
    // yet the item stays delivered. Only a correction that retracts the delivery could undo
    // it. The later event is kept as history; nothing is overwritten.
    let insulin = merged_a
        .households
        .iter()
        .find(|h| h.household.id == "h-0001")
        .and_then(|h| {
            h.deliveries
                .iter()
                .find(|d| d.item == DeliveryItem::Medicine)
        })
        .context("h-0001 has a medicine line")?;
    ensure!(
        insulin.status == DeliveryStatus::Delivered && insulin.decided_by == delivered.id,
        "the delivered event decides the status"
    );
    ensure!(insulin.events == 2, "both delivery events are kept");
    // And the need for insulin, reported at 09:00, is met by the 09:30 delivery.
    ensure!(
        open_needs(&merged_a, "h-0001").is_empty(),
        "the insulin need is closed by the delivery"
    );
    println!(
        "merged: 3 visits kept, insulin for h-0001 is {} (decided by vol-0043's 09:30 event, \
         although vol-0042's out-for-delivery came later), no open needs",
        insulin.status
    );
    Ok(())
}

/// A fresh record id, as a device mints one.
fn new_id() -> RecordId {
    RecordId::from(ulid::Ulid::new())
}

/// What a write is checked against: the plan, the building of this document, and the device's
/// clock at the time of writing (a record may not claim a time in the future of it).
fn at<'a>(plan: &'a StreetPlan, building: &'a str, now_ms: i64) -> WriteContext<'a> {
    WriteContext {
        plan,
        building,
        now_ms,
    }
}

fn delivery(
    household: &str,
    item: DeliveryItem,
    status: DeliveryStatus,
    by: &NodeId,
    at_ms: i64,
) -> DeliveryEvent {
    DeliveryEvent {
        id: new_id(),
        household: household.into(),
        item,
        status,
        attempt: 1,
        detail: String::new(),
        by: by.to_string(),
        at_ms,
    }
}

fn item_status(view: &BuildingView, household: &str, item: DeliveryItem) -> Option<DeliveryStatus> {
    view.households
        .iter()
        .find(|h| h.household.id == household)?
        .deliveries
        .iter()
        .find(|d| d.item == item)
        .map(|d| d.status)
}

fn open_needs(view: &BuildingView, household: &str) -> BTreeMap<NeedKind, String> {
    view.households
        .iter()
        .find(|h| h.household.id == household)
        .map(|h| h.open_needs.clone())
        .unwrap_or_default()
}

/// Prints the households of the view that have any record.
fn print_view(title: &str, view: &BuildingView) {
    println!("{title}: building {}", view.building);
    for h in view
        .households
        .iter()
        .filter(|h| h.visits > 0 || !h.deliveries.is_empty())
    {
        let outcome = h.latest_visit.as_ref().map_or("-".to_string(), |v| {
            format!("{} by {}", v.outcome, v.volunteer)
        });
        let flags: Vec<&str> = h.flags.iter().map(|f| f.as_str()).collect();
        let needs: Vec<String> = h
            .open_needs
            .iter()
            .map(|(need, detail)| format!("{need}:{detail}"))
            .collect();
        let items: Vec<String> = h
            .deliveries
            .iter()
            .map(|d| format!("{} {}", d.item, d.status))
            .collect();
        println!(
            "  {}  visits {}  latest {outcome:<26} flags [{}]  open needs [{}]  deliveries [{}]",
            h.household.id,
            h.visits,
            flags.join(","),
            needs.join(","),
            items.join(", ")
        );
    }
    println!();
}
