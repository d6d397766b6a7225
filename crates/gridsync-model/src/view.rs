//! The building view: one building's households with what the field records say about them.
//!
//! Per household: the latest visit (after corrections) by (`at_ms`, id) gives the outcome;
//! the latest visit whose outcome is `contacted` gives the special-needs flags and the needs
//! (someone who was not at home tells nothing about needs); a need is open unless the
//! delivery item that fulfils it ([`NeedKind::fulfilled_by`]) is `delivered` by an event at or
//! after that visit.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ReadDoc;

use crate::clock::ClockAhead;
use crate::delivery::{ItemState, checklist};
use crate::plan::{Household, StreetPlan};
use crate::read::{BuildingRecords, CorrectedVisit};
use crate::records::{MalformedRecord, RecordId, SweepResult};
use crate::vocab::{DeliveryItem, DeliveryStatus, NeedKind, SpecialNeed, VisitOutcome};

/// The latest visit of a household, in short.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestVisit {
    /// The visit's id.
    pub id: RecordId,
    /// Its (corrected) outcome.
    pub outcome: VisitOutcome,
    /// When it happened, unix milliseconds.
    pub at_ms: i64,
    /// Who visited.
    pub volunteer: String,
    /// Set when the visit claimed a time ahead of this node's first sight of it; `at_ms` is
    /// then that first sight.
    pub clock_ahead: Option<ClockAhead>,
}

/// One household in a [`BuildingView`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HouseholdView {
    /// The plan's entry.
    pub household: Household,
    /// How many (non-retracted) visits it has had.
    pub visits: u32,
    /// The latest visit, if any.
    pub latest_visit: Option<LatestVisit>,
    /// Flags from the latest contacted visit.
    pub flags: BTreeSet<SpecialNeed>,
    /// Needs from the latest contacted visit not yet met by a delivery, with their detail.
    pub open_needs: BTreeMap<NeedKind, String>,
    /// Checklist items with their derived status.
    pub deliveries: Vec<ItemState>,
}

/// Everything the records of one building document say, laid over the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildingView {
    /// The building id.
    pub building: String,
    /// Households of the building in the plan, by id.
    pub households: Vec<HouseholdView>,
    /// Live sweep results, by (round, time, id).
    pub sweeps: Vec<SweepResult>,
    /// Household ids that records mention but the plan does not place in this building.
    pub unplanned_households: BTreeSet<String>,
    /// Records that were skipped because they did not parse.
    pub malformed: Vec<MalformedRecord>,
}

fn later(a: &CorrectedVisit, b: &CorrectedVisit) -> bool {
    (a.current.at_ms, &a.current.id) > (b.current.at_ms, &b.current.id)
}

/// The needs of `contacted` (a household's latest contacted visit) that no delivery in
/// `deliveries` (that household's checklist) has met: a need is met when the item that
/// fulfils it was delivered at or after the visit.
fn open_needs_after(
    contacted: &CorrectedVisit,
    deliveries: &[ItemState],
) -> BTreeMap<NeedKind, String> {
    contacted
        .current
        .needs
        .iter()
        .filter(|(need, _)| {
            !need.fulfilled_by().is_some_and(|item| {
                deliveries.iter().any(|d| {
                    d.item == item
                        && d.status == DeliveryStatus::Delivered
                        && d.decided_at_ms >= contacted.current.at_ms
                })
            })
        })
        .map(|(n, d)| (*n, d.clone()))
        .collect()
}

/// Whether any household in a building document has an open special need, by the same rule
/// as [`building_view`] but without the plan (households are taken from the records). The
/// sync engine sends such documents first on a short contact.
pub fn has_open_needs<R: ReadDoc>(doc: &R) -> bool {
    let records = BuildingRecords::read(doc);
    let visits = records.corrected_visits();
    if visits.iter().all(|v| v.current.needs.is_empty()) {
        return false;
    }
    let mut contacted: BTreeMap<&str, &CorrectedVisit> = BTreeMap::new();
    for v in visits
        .iter()
        .filter(|v| v.current.outcome == VisitOutcome::Contacted)
    {
        let slot = contacted.entry(v.current.household.as_str()).or_insert(v);
        if later(v, slot) {
            *slot = v;
        }
    }
    let items = checklist(records.live_deliveries());
    contacted.iter().any(|(household, visit)| {
        if visit.current.needs.is_empty() {
            return false;
        }
        let deliveries: Vec<ItemState> = items
            .range((household.to_string(), DeliveryItem::FoodPack)..)
            .take_while(|((h, _), _)| h == household)
            .map(|(_, s)| s.clone())
            .collect();
        !open_needs_after(visit, &deliveries).is_empty()
    })
}

/// Builds the view of `building` from its document and the plan.
pub fn building_view<R: ReadDoc>(doc: &R, plan: &StreetPlan, building: &str) -> BuildingView {
    building_view_of_records(&BuildingRecords::read(doc), plan, building)
}

/// [`building_view`] from records already read, for callers that also need the records
/// themselves (reading a building's records is most of the cost of its view).
pub fn building_view_of_records(
    records: &BuildingRecords,
    plan: &StreetPlan,
    building: &str,
) -> BuildingView {
    let visits = records.corrected_visits();
    let live = records.live_deliveries();
    let items = checklist(live.iter().copied());

    let planned: BTreeSet<&str> = plan
        .building(building)
        .map(|b| b.households.iter().map(String::as_str).collect())
        .unwrap_or_default();
    let mut unplanned = BTreeSet::new();
    let mut by_household: BTreeMap<&str, Vec<&CorrectedVisit>> = BTreeMap::new();
    for v in &visits {
        by_household
            .entry(v.current.household.as_str())
            .or_default()
            .push(v);
    }
    for h in by_household
        .keys()
        .copied()
        .chain(live.iter().map(|e| e.household.as_str()))
    {
        if !planned.contains(h) {
            unplanned.insert(h.to_owned());
        }
    }

    let households = planned
        .iter()
        .filter_map(|id| plan.household(id))
        .map(|household| {
            let mine = by_household
                .get(household.id.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[]);
            let latest = mine
                .iter()
                .copied()
                .reduce(|a, b| if later(b, a) { b } else { a });
            let contacted = mine
                .iter()
                .copied()
                .filter(|v| v.current.outcome == VisitOutcome::Contacted)
                .reduce(|a, b| if later(b, a) { b } else { a });
            // FoodPack is the first variant, so the smallest item under the derived order.
            let deliveries: Vec<ItemState> = items
                .range((household.id.clone(), DeliveryItem::FoodPack)..)
                .take_while(|((h, _), _)| *h == household.id)
                .map(|(_, s)| s.clone())
                .collect();
            let open_needs = contacted
                .map(|v| open_needs_after(v, &deliveries))
                .unwrap_or_default();
            HouseholdView {
                household: household.clone(),
                visits: u32::try_from(mine.len()).unwrap_or(u32::MAX),
                latest_visit: latest.map(|v| LatestVisit {
                    id: v.current.id.clone(),
                    outcome: v.current.outcome,
                    at_ms: v.current.at_ms,
                    volunteer: v.current.volunteer.clone(),
                    clock_ahead: records.clock_ahead.get(&v.current.id).copied(),
                }),
                flags: contacted
                    .map(|v| v.current.flags.clone())
                    .unwrap_or_default(),
                open_needs,
                deliveries,
            }
        })
        .collect();

    let mut sweeps: Vec<SweepResult> = records.live_sweeps().into_iter().cloned().collect();
    sweeps.sort_by(|a, b| (a.round, a.at_ms, &a.id).cmp(&(b.round, b.at_ms, &b.id)));
    BuildingView {
        building: building.to_owned(),
        households,
        sweeps,
        unplanned_households: unplanned,
        malformed: records.malformed.clone(),
    }
}
