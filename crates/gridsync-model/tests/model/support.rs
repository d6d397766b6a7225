//! Shared fixtures: a small street plan, devices, record builders and merging.

use std::collections::{BTreeMap, BTreeSet};

use automerge::Automerge;
use gridsync_model::{
    Correction, CorrectionAction, DeliveryEvent, DeliveryItem, DeliveryStatus, DocKind, NeedKind,
    RecordId, RecordKind, SpecialNeed, StreetPlan, SweepResult, Visit, VisitOutcome, WriteContext,
    actor_for, genesis, parse_csv,
};
use gridsync_model::{PlanCsv, PlanRow};
use gridsync_proto::NodeId;

/// A fixed "now" for tests: 2026-05-28 or so.
/// Every delivery status, to draw from.
pub const STATUSES: [DeliveryStatus; 5] = [
    DeliveryStatus::Requested,
    DeliveryStatus::OutForDelivery,
    DeliveryStatus::Delivered,
    DeliveryStatus::Failed,
    DeliveryStatus::Cancelled,
];

pub const NOW: i64 = 1_780_000_000_000;

/// The building most tests write to.
pub const BUILDING: &str = "bldg-12";

/// The test street: `bldg-12` (grid-017) with six households in two units, `bldg-13` with two.
pub fn plan_csv() -> String {
    let mut csv = PlanCsv::new();
    for n in 1..=6u32 {
        let unit = if n <= 3 { "u1" } else { "u2" };
        let (household, door) = (format!("h-{n}"), format!("{unit}-{n}01"));
        csv.row(row(&household, "bldg-12", unit, &door, n, "lockdown"));
    }
    csv.row(row("h-7", "bldg-13", "u1", "101", 2, "control"));
    csv.row(row("h-8", "bldg-13", "u1", "102", 1, "prevention"));
    csv.finish()
}

/// A household of grid-017 in community c-1.
fn row<'a>(
    household: &'a str,
    building: &'a str,
    unit: &'a str,
    door: &'a str,
    residents: u32,
    zone: &'a str,
) -> PlanRow<'a> {
    PlanRow {
        household,
        community: "c-1",
        grid: "grid-017",
        building,
        unit,
        door,
        residents,
        zone,
    }
}

pub fn plan() -> StreetPlan {
    StreetPlan::from_import(&parse_csv(plan_csv().as_bytes()).expect("test plan parses"))
}

pub fn ctx(plan: &StreetPlan) -> WriteContext<'_> {
    WriteContext {
        plan,
        building: BUILDING,
        now_ms: NOW,
    }
}

pub fn node(name: &str) -> NodeId {
    NodeId::parse(name).expect("valid node id")
}

/// A device's copy of a building document: genesis plus the device's actor.
pub fn device(name: &str) -> Automerge {
    genesis(DocKind::Building).with_actor(actor_for(&node(name)))
}

/// A unique record id: time `at_ms`, random part `n`.
pub fn rid(at_ms: i64, n: u128) -> RecordId {
    RecordId::from(ulid::Ulid::from_parts(at_ms as u64, n))
}

pub fn visit(id: RecordId, household: &str, at_ms: i64) -> Visit {
    Visit {
        id,
        household: household.to_owned(),
        volunteer: "vol-1".to_owned(),
        at_ms,
        outcome: VisitOutcome::Contacted,
        people_seen: 2,
        flags: BTreeSet::from([SpecialNeed::ElderlyLivingAlone]),
        needs: BTreeMap::from([(NeedKind::Medicine, "insulin".to_owned())]),
        note: "asked for insulin".to_owned(),
    }
}

pub fn delivery(
    id: RecordId,
    household: &str,
    status: DeliveryStatus,
    at_ms: i64,
) -> DeliveryEvent {
    DeliveryEvent {
        id,
        household: household.to_owned(),
        item: DeliveryItem::FoodPack,
        status,
        attempt: 1,
        detail: String::new(),
        by: "vol-1".to_owned(),
        at_ms,
    }
}

pub fn sweep(id: RecordId, round: u32, at_ms: i64) -> SweepResult {
    SweepResult {
        id,
        round,
        units_covered: BTreeSet::from(["u1".to_owned()]),
        reached: 2,
        not_home: 1,
        refused: 0,
        issues: vec!["stairwell light broken".to_owned()],
        by: "vol-1".to_owned(),
        at_ms,
    }
}

pub fn retraction(id: RecordId, target: &RecordId, kind: RecordKind, at_ms: i64) -> Correction {
    Correction {
        id,
        target: target.clone(),
        target_kind: kind,
        action: CorrectionAction::Retract,
        reason: "entered by mistake".to_owned(),
        by: "vol-2".to_owned(),
        at_ms,
    }
}

/// Merges `docs[from]` into `docs[into]`.
pub fn merge_into(docs: &mut [Automerge], into: usize, from: usize) {
    if into == from {
        return;
    }
    let (low, high) = docs.split_at_mut(into.max(from));
    let (a, b) = if into < from {
        (&mut low[into], &mut high[0])
    } else {
        (&mut high[0], &mut low[from])
    };
    a.merge(b).expect("merging well-formed documents succeeds");
}
