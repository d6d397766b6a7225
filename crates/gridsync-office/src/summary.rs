//! One building's figures, derived from its document and the street plan by the field
//! model's own rules ([`gridsync_model::building_view_of_records`], [`BuildingRecords`]), and the
//! additive [`Totals`] that roll up to grids, communities and the street.
//!
//! Definitions (they are what the API reports and what the tests recount):
//! - **visited**: a planned household with at least one visit (after corrections, retracted
//!   visits left out) at or after the round's start ([`RoundWindow`]).
//! - **contacted / not home / refused / moved out / vacant**: visited households by the outcome
//!   of their latest visit in the round, by (`at_ms`, id). `unvisited` = households − visited.
//! - **never reached**: households that no visit, in any round, found resolved: none of their
//!   visits has the outcome `contacted`, `moved-out` or `vacant`.
//! - **special needs / open needs**: flags and open needs of the building view (latest
//!   contacted visit; a need is open until its item is delivered at or after that visit).
//! - **deliveries**: one per (household, checklist item), by its derived status: `pending`
//!   (requested or out for delivery), `delivered`, `failed` (latest event failed, no retry
//!   yet), `cancelled`; `failed_attempts` counts every live failed event.
//! - **clock ahead**: records whose claimed time ran more than ten minutes ahead of the
//!   office's first sight of them; every figure above places them at that first sight
//!   (`gridsync_model::clock`), and the household line keeps the claimed time beside it.
//! - **sweep coverage**: for the building's latest sweep round, the plan units named by any
//!   live sweep result of that round, against the building's units in the plan.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ReadDoc;
use gridsync_model::{
    BuildingRecords, DeliveryItem, DeliveryStatus, FirstSight, NeedKind, RecordId, SpecialNeed,
    StreetPlan, VisitOutcome, Zone, building_view_of_records,
};
use serde::{Deserialize, Serialize};

use crate::hourly::HourlyTotals;
use crate::stored::{vocab_keys, vocab_list, vocab_name, vocab_option};

/// Which visits count for the current round: those at or after `start_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RoundWindow {
    /// Start of the current round, unix milliseconds.
    pub start_ms: i64,
}

impl RoundWindow {
    /// A round that started at `start_ms`.
    pub fn starting_at(start_ms: i64) -> Self {
        RoundWindow { start_ms }
    }

    /// The daily round that contains `now_ms`, for a street whose day starts at local midnight
    /// `utc_offset_minutes` east of UTC (Ningbo: +480).
    pub fn daily(now_ms: i64, utc_offset_minutes: i32) -> Self {
        RoundWindow {
            start_ms: gridsync_model::daily_round_start(now_ms, utc_offset_minutes),
        }
    }
}

/// Delivery checklist items by derived status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryTotals {
    /// Requested or out for delivery.
    pub pending: u32,
    /// Handed over.
    pub delivered: u32,
    /// The latest event is a failure and no retry followed.
    pub failed: u32,
    /// No longer needed.
    pub cancelled: u32,
    /// Every live `failed` event, whatever the item's status now.
    pub failed_attempts: u32,
}

/// Sweep coverage summed over buildings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepTotals {
    /// Units (stairwells) in the plan.
    pub units: u32,
    /// Units covered by each building's latest sweep round.
    pub units_covered: u32,
    /// Buildings with at least one live sweep result.
    pub buildings_swept: u32,
    /// Lowest latest round among swept buildings (which building lags).
    pub min_round: Option<u32>,
    /// Highest latest round among swept buildings.
    pub max_round: Option<u32>,
}

/// Records held, as written (before corrections), by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordTotals {
    pub visits: u32,
    pub deliveries: u32,
    pub sweeps: u32,
    pub corrections: u32,
    /// Records skipped because they do not parse.
    pub malformed: u32,
}

impl RecordTotals {
    /// Well-formed records of every kind.
    pub fn all(&self) -> u32 {
        self.visits + self.deliveries + self.sweeps + self.corrections
    }
}

/// Figures that add up from buildings to grids, communities and the street.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub buildings: u32,
    pub households: u32,
    pub residents: u32,
    pub visited: u32,
    pub unvisited: u32,
    pub contacted: u32,
    pub not_home: u32,
    pub refused: u32,
    pub moved_out: u32,
    pub vacant: u32,
    pub never_reached: u32,
    /// Households with at least one special-needs flag.
    pub special_needs_households: u32,
    /// Households per flag.
    #[serde(deserialize_with = "vocab_keys::<_, SpecialNeed, _>")]
    pub special_needs: BTreeMap<&'static str, u32>,
    /// Households with at least one open need.
    pub open_needs_households: u32,
    /// Open needs per kind.
    #[serde(deserialize_with = "vocab_keys::<_, NeedKind, _>")]
    pub open_needs: BTreeMap<&'static str, u32>,
    pub deliveries: DeliveryTotals,
    pub sweep: SweepTotals,
    pub records: RecordTotals,
    /// Households that records mention but the plan does not place in their building.
    pub unplanned_households: u32,
    /// Time of the newest record, unix milliseconds.
    pub last_record_ms: Option<i64>,
    /// Records (as written) whose claimed time ran ahead of when the office first saw them:
    /// counted at that first sight instead (see `gridsync_model::clock`).
    pub clock_ahead: u32,
    /// The round hour by hour (the dashboard's charts). Not part of the figures' JSON (a
    /// street's places would carry it for every building); served by `/api/v1/timeline` and
    /// stored beside the summary.
    #[serde(skip)]
    pub hourly: HourlyTotals,
}

fn max_opt<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    a.max(b)
}

fn min_opt<T: Ord + Copy>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

impl Totals {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &Totals) {
        self.buildings += other.buildings;
        self.households += other.households;
        self.residents += other.residents;
        self.visited += other.visited;
        self.unvisited += other.unvisited;
        self.contacted += other.contacted;
        self.not_home += other.not_home;
        self.refused += other.refused;
        self.moved_out += other.moved_out;
        self.vacant += other.vacant;
        self.never_reached += other.never_reached;
        self.special_needs_households += other.special_needs_households;
        for (k, n) in &other.special_needs {
            *self.special_needs.entry(k).or_default() += n;
        }
        self.open_needs_households += other.open_needs_households;
        for (k, n) in &other.open_needs {
            *self.open_needs.entry(k).or_default() += n;
        }
        let (d, o) = (&mut self.deliveries, &other.deliveries);
        d.pending += o.pending;
        d.delivered += o.delivered;
        d.failed += o.failed;
        d.cancelled += o.cancelled;
        d.failed_attempts += o.failed_attempts;
        let (s, o) = (&mut self.sweep, &other.sweep);
        s.units += o.units;
        s.units_covered += o.units_covered;
        s.buildings_swept += o.buildings_swept;
        s.min_round = min_opt(s.min_round, o.min_round);
        s.max_round = max_opt(s.max_round, o.max_round);
        let (r, o) = (&mut self.records, &other.records);
        r.visits += o.visits;
        r.deliveries += o.deliveries;
        r.sweeps += o.sweeps;
        r.corrections += o.corrections;
        r.malformed += o.malformed;
        self.unplanned_households += other.unplanned_households;
        self.last_record_ms = max_opt(self.last_record_ms, other.last_record_ms);
        self.clock_ahead += other.clock_ahead;
        self.hourly.add(&other.hourly);
    }
}

/// A name from one of the field model's closed vocabularies (an outcome, an item, a zone).
///
/// An alias rather than `&'static str` written out, because serde would otherwise borrow such
/// a field from its input; stored summaries read the name through the vocabulary instead.
pub type VocabStr = &'static str;

/// The latest visit of a household, for the building detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisitLine {
    pub id: String,
    #[serde(deserialize_with = "vocab_name::<_, VisitOutcome>")]
    pub outcome: VocabStr,
    /// When it counts as having happened: the claimed time, or the office's first sight of a
    /// clock-ahead record.
    pub at_ms: i64,
    /// The time its device claimed.
    pub claimed_at_ms: i64,
    /// Its device's clock ran ahead of the office's first sight of it.
    pub clock_ahead: bool,
    pub volunteer: String,
}

/// One checklist item of a household.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryLine {
    #[serde(deserialize_with = "vocab_name::<_, DeliveryItem>")]
    pub item: VocabStr,
    #[serde(deserialize_with = "vocab_name::<_, DeliveryStatus>")]
    pub status: VocabStr,
    pub decided_at_ms: i64,
    pub failed_attempts: u32,
    pub events: u32,
}

/// One household as the office sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HouseholdLine {
    pub id: String,
    pub unit: String,
    pub door: String,
    pub residents: u32,
    #[serde(deserialize_with = "vocab_name::<_, Zone>")]
    pub zone: VocabStr,
    /// Visits in all rounds (after corrections).
    pub visits: u32,
    /// Outcome of the latest visit in the current round, if visited in it.
    #[serde(deserialize_with = "vocab_option::<_, VisitOutcome>")]
    pub round_outcome: Option<VocabStr>,
    /// Latest visit in any round.
    pub latest_visit: Option<VisitLine>,
    /// Some visit found the household resolved (contacted, moved out or vacant).
    pub ever_reached: bool,
    #[serde(deserialize_with = "vocab_list::<_, SpecialNeed>")]
    pub flags: Vec<&'static str>,
    /// Open needs with their detail.
    #[serde(deserialize_with = "vocab_keys::<_, NeedKind, _>")]
    pub open_needs: BTreeMap<&'static str, String>,
    pub deliveries: Vec<DeliveryLine>,
}

/// What one author (device or volunteer) contributed to one building.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorTally {
    /// Records written (as written, before corrections).
    pub records: u32,
    /// Time of the newest of them, unix milliseconds (clock rule applied).
    pub last_record_ms: i64,
    /// Those whose claimed time ran ahead of the office's first sight.
    pub clock_ahead: u32,
}

impl AuthorTally {
    fn note(&mut self, at_ms: i64, clock_ahead: bool) {
        self.records += 1;
        self.last_record_ms = self.last_record_ms.max(at_ms);
        self.clock_ahead += u32::from(clock_ahead);
    }
}

/// A building's figures and household lines, computed from one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildingSummary {
    pub building: String,
    pub grid: String,
    pub community: String,
    /// The document the figures come from (`None`: no record yet).
    pub document: Option<String>,
    pub totals: Totals,
    /// Latest sweep round with a live result.
    pub sweep_round: Option<u32>,
    pub households: Vec<HouseholdLine>,
    /// Per author (the record's `volunteer`/`by`, which a node sets to its node id).
    #[serde(skip)]
    pub authors: BTreeMap<String, AuthorTally>,
}

/// Where a building lies: its grid and community, from the plan or else the document path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub building: String,
    pub grid: String,
    pub community: String,
}

/// Community reported for buildings the plan does not know.
pub const UNPLANNED_COMMUNITY: &str = "(unplanned)";

/// Derives a building's summary from its document (a genesis skeleton if it has none yet),
/// record times bounded by `sight` (when the office first saw each record).
pub fn summarize<R: ReadDoc>(
    doc: &R,
    sight: &FirstSight,
    document: Option<&str>,
    plan: &StreetPlan,
    place: &Placement,
    round: RoundWindow,
) -> BuildingSummary {
    // Read once: the view and the round figures both work from the same records.
    let records = BuildingRecords::read_seen(doc, sight);
    let view = building_view_of_records(&records, plan, &place.building);
    let corrected = records.corrected_visits();

    // Per household: latest visit in the round, and whether any visit resolved it; for the
    // hourly figures, its first visit in the round and when each need was first reported.
    let mut round_latest: BTreeMap<&str, (i64, &str, VisitOutcome)> = BTreeMap::new();
    let mut round_first: BTreeMap<&str, i64> = BTreeMap::new();
    let mut needs_first: BTreeMap<&str, BTreeMap<NeedKind, i64>> = BTreeMap::new();
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    for v in &corrected {
        let c = &v.current;
        if matches!(
            c.outcome,
            VisitOutcome::Contacted | VisitOutcome::MovedOut | VisitOutcome::Vacant
        ) {
            reached.insert(c.household.as_str());
        }
        if c.at_ms >= round.start_ms {
            let key = (c.at_ms, c.id.as_str(), c.outcome);
            let slot = round_latest.entry(c.household.as_str()).or_insert(key);
            if (key.0, key.1) > (slot.0, slot.1) {
                *slot = key;
            }
            let first = round_first.entry(c.household.as_str()).or_insert(c.at_ms);
            *first = (*first).min(c.at_ms);
            let needs = needs_first.entry(c.household.as_str()).or_default();
            for need in c.needs.keys() {
                let first = needs.entry(*need).or_insert(c.at_ms);
                *first = (*first).min(c.at_ms);
            }
        }
    }

    let mut totals = Totals {
        buildings: 1,
        ..Totals::default()
    };
    let mut households = Vec::with_capacity(view.households.len());
    for hv in &view.households {
        let h = &hv.household;
        totals.households += 1;
        totals.residents += h.residents;
        let round_outcome = round_latest.get(h.id.as_str()).map(|(_, _, o)| *o);
        if let Some(first) = round_first.get(h.id.as_str()) {
            HourlyTotals::note(&mut totals.hourly.visited, round, *first);
        }
        for at in needs_first
            .get(h.id.as_str())
            .into_iter()
            .flat_map(|n| n.values())
        {
            HourlyTotals::note(&mut totals.hourly.needs_reported, round, *at);
        }
        match round_outcome {
            None => totals.unvisited += 1,
            Some(o) => {
                totals.visited += 1;
                match o {
                    VisitOutcome::Contacted => totals.contacted += 1,
                    VisitOutcome::NotHome => totals.not_home += 1,
                    VisitOutcome::Refused => totals.refused += 1,
                    VisitOutcome::MovedOut => totals.moved_out += 1,
                    VisitOutcome::Vacant => totals.vacant += 1,
                }
            }
        }
        let ever_reached = reached.contains(h.id.as_str());
        if !ever_reached {
            totals.never_reached += 1;
        }
        if !hv.flags.is_empty() {
            totals.special_needs_households += 1;
        }
        for f in &hv.flags {
            *totals.special_needs.entry(f.as_str()).or_default() += 1;
        }
        if !hv.open_needs.is_empty() {
            totals.open_needs_households += 1;
        }
        for n in hv.open_needs.keys() {
            *totals.open_needs.entry(n.as_str()).or_default() += 1;
        }
        for d in &hv.deliveries {
            let t = &mut totals.deliveries;
            match d.status {
                DeliveryStatus::Requested | DeliveryStatus::OutForDelivery => t.pending += 1,
                DeliveryStatus::Delivered => {
                    t.delivered += 1;
                    HourlyTotals::note(&mut totals.hourly.delivered, round, d.decided_at_ms);
                }
                DeliveryStatus::Failed => t.failed += 1,
                DeliveryStatus::Cancelled => t.cancelled += 1,
            }
            t.failed_attempts += d.failed_attempts;
        }
        households.push(HouseholdLine {
            id: h.id.clone(),
            unit: h.unit.clone(),
            door: h.door.clone(),
            residents: h.residents,
            zone: h.zone.as_str(),
            visits: hv.visits,
            round_outcome: round_outcome.map(VisitOutcome::as_str),
            latest_visit: hv.latest_visit.as_ref().map(|v| VisitLine {
                id: v.id.to_string(),
                outcome: v.outcome.as_str(),
                at_ms: v.at_ms,
                claimed_at_ms: v.clock_ahead.map_or(v.at_ms, |a| a.claimed_ms),
                clock_ahead: v.clock_ahead.is_some(),
                volunteer: v.volunteer.clone(),
            }),
            ever_reached,
            flags: hv.flags.iter().map(|f| f.as_str()).collect(),
            open_needs: hv
                .open_needs
                .iter()
                .map(|(n, d)| (n.as_str(), d.clone()))
                .collect(),
            deliveries: hv
                .deliveries
                .iter()
                .map(|d| DeliveryLine {
                    item: d.item.as_str(),
                    status: d.status.as_str(),
                    decided_at_ms: d.decided_at_ms,
                    failed_attempts: d.failed_attempts,
                    events: d.events,
                })
                .collect(),
        });
    }

    // Sweep coverage of the latest round.
    let units: BTreeSet<&str> = plan
        .building(&place.building)
        .map(|b| b.units.iter().map(String::as_str).collect())
        .unwrap_or_default();
    totals.sweep.units = units.len() as u32;
    let sweep_round = view.sweeps.iter().map(|s| s.round).max();
    if let Some(round) = sweep_round {
        let covered: BTreeSet<&str> = view
            .sweeps
            .iter()
            .filter(|s| s.round == round)
            .flat_map(|s| s.units_covered.iter().map(String::as_str))
            .filter(|u| units.contains(u))
            .collect();
        totals.sweep.units_covered = covered.len() as u32;
        totals.sweep.buildings_swept = 1;
        totals.sweep.min_round = Some(round);
        totals.sweep.max_round = Some(round);
    }

    // Records as written, and who wrote them.
    let mut authors: BTreeMap<String, AuthorTally> = BTreeMap::new();
    let mut last: Option<i64> = None;
    let mut note = |who: &str, at: i64, id: &RecordId| {
        let ahead = records.clock_ahead.contains_key(id);
        authors.entry(who.to_owned()).or_default().note(at, ahead);
        last = last.max(Some(at));
    };
    for v in &records.visits {
        note(&v.volunteer, v.at_ms, &v.id);
    }
    for e in &records.deliveries {
        note(&e.by, e.at_ms, &e.id);
    }
    for s in &records.sweeps {
        note(&s.by, s.at_ms, &s.id);
    }
    for c in &records.corrections {
        note(&c.by, c.at_ms, &c.id);
    }
    totals.last_record_ms = last;
    totals.clock_ahead = records.clock_ahead.len() as u32;
    totals.records = RecordTotals {
        visits: records.visits.len() as u32,
        deliveries: records.deliveries.len() as u32,
        sweeps: records.sweeps.len() as u32,
        corrections: records.corrections.len() as u32,
        malformed: records.malformed.len() as u32,
    };
    totals.unplanned_households = view.unplanned_households.len() as u32;

    BuildingSummary {
        building: place.building.clone(),
        grid: place.grid.clone(),
        community: place.community.clone(),
        document: document.map(str::to_owned),
        totals,
        sweep_round,
        households,
        authors,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_round_starts_at_local_midnight() {
        // 2022-04-10T01:30:00Z is 09:30 in Ningbo (UTC+8); the local day began at
        // 2022-04-09T16:00:00Z.
        let now = 1_649_554_200_000;
        assert_eq!(RoundWindow::daily(now, 480).start_ms, 1_649_520_000_000);
        // In UTC the day began at 2022-04-10T00:00:00Z.
        assert_eq!(RoundWindow::daily(now, 0).start_ms, 1_649_548_800_000);
    }

    #[test]
    fn totals_add_sums_counts_and_keeps_extremes() {
        let mut a = Totals {
            households: 3,
            last_record_ms: Some(5),
            ..Totals::default()
        };
        a.special_needs.insert("child", 1);
        a.sweep.min_round = Some(2);
        let mut b = Totals {
            households: 4,
            last_record_ms: Some(9),
            ..Totals::default()
        };
        b.special_needs.insert("child", 2);
        b.special_needs.insert("pregnant", 1);
        b.sweep.min_round = Some(1);
        a.add(&b);
        assert_eq!(a.households, 7);
        assert_eq!(a.last_record_ms, Some(9));
        assert_eq!(a.special_needs.get("child"), Some(&3));
        assert_eq!(a.special_needs.get("pregnant"), Some(&1));
        assert_eq!(a.sweep.min_round, Some(1));
    }
}
