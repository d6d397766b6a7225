//! The aggregation against an independent recount from the raw records of a generated street.
//!
//! The recount below re-implements the definitions of `summary` from the records as written
//! (`iter_visits`, `iter_deliveries`, ...), without the model's views, so a slip on either side
//! shows up as a differing figure.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use automerge::Automerge;
use gridsync_model::read::{iter_corrections, iter_deliveries, iter_sweeps, iter_visits};
use gridsync_model::{
    Correction, CorrectionAction, DeliveryEvent, DeliveryItem, DeliveryStatus, DocKind, FirstSight,
    Household, NeedKind, RecordId, RecordKind, SpecialNeed, StreetPlan, SweepResult, Visit,
    VisitOutcome, WriteContext, Zone, actor_for, building_path, genesis, record_correction,
    record_delivery, record_sweep, record_visit,
};
use gridsync_proto::{DocPath, NodeId};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::aggregate::Aggregator;
use crate::summary::{RoundWindow, Totals};

const STREET: &str = "panhuo";
const NOW: i64 = 1_649_554_200_000;
const HOUR: i64 = 3_600_000;

fn households(shape_grids: usize, moved: bool) -> Vec<Household> {
    let mut out = Vec::new();
    for g in 0..shape_grids {
        for b in 0..3 {
            for u in 0..2 {
                for h in 0..5 {
                    // With `moved`, building b-00-02 changes grid and community.
                    let (grid, community) = if moved && g == 0 && b == 1 {
                        ("grid-009".to_owned(), "c-9".to_owned())
                    } else {
                        (format!("grid-{g:03}"), format!("c-{}", g / 2))
                    };
                    out.push(Household {
                        id: format!("h-{g:02}-{b:02}-{u}{h}"),
                        community,
                        grid,
                        building: format!("b-{g:02}-{b:02}"),
                        unit: format!("u{u}"),
                        door: format!("room {u}{h}"),
                        residents: 1 + (h as u32 % 3),
                        zone: [Zone::Lockdown, Zone::Control, Zone::Prevention][g % 3],
                    });
                }
            }
        }
    }
    out
}

fn pick<T: Copy>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.random_range(0..items.len())]
}

fn id(rng: &mut StdRng, at: i64) -> RecordId {
    RecordId::from(ulid::Ulid::from_parts(at as u64, rng.random()))
}

/// Writes one random record into `doc`; returns whether a record was written.
fn random_write(rng: &mut StdRng, doc: &mut Automerge, plan: &StreetPlan, building: &str) {
    let ctx = WriteContext {
        plan,
        building,
        now_ms: NOW,
    };
    let b = plan.building(building).expect("planned building");
    let household = b.households[rng.random_range(0..b.households.len())].clone();
    let at = NOW - rng.random_range(0..48) * HOUR;
    let by = pick(rng, &["vol-1", "vol-2", "vol-3", "cap-1"]).to_owned();
    match rng.random_range(0..10) {
        0..=4 => {
            let mut flags = BTreeSet::new();
            let mut needs = BTreeMap::new();
            if rng.random_bool(0.3) {
                flags.insert(pick(rng, SpecialNeed::ALL));
            }
            if rng.random_bool(0.4) {
                needs.insert(pick(rng, NeedKind::ALL), "detail".to_owned());
            }
            let visit = Visit {
                id: id(rng, at),
                household,
                volunteer: by,
                at_ms: at,
                outcome: pick(rng, VisitOutcome::ALL),
                people_seen: 1,
                flags,
                needs,
                note: String::new(),
            };
            record_visit(doc, &ctx, &visit).expect("valid visit");
        }
        5..=7 => {
            let event = DeliveryEvent {
                id: id(rng, at),
                household,
                item: pick(rng, &DeliveryItem::ALL[..3]),
                status: pick(rng, DeliveryStatus::ALL),
                attempt: 1,
                detail: String::new(),
                by,
                at_ms: at,
            };
            record_delivery(doc, &ctx, &event).expect("valid delivery");
        }
        8 => {
            let units: Vec<String> = b.units.iter().cloned().collect();
            let sweep = SweepResult {
                id: id(rng, at),
                round: rng.random_range(1..4),
                units_covered: [units[rng.random_range(0..units.len())].clone()]
                    .into_iter()
                    .collect(),
                reached: 3,
                not_home: 1,
                refused: 0,
                issues: Vec::new(),
                by,
                at_ms: at,
            };
            record_sweep(doc, &ctx, &sweep).expect("valid sweep");
        }
        _ => {
            let visits: Vec<Visit> = iter_visits(&*doc).filter_map(Result::ok).collect();
            let deliveries: Vec<RecordId> = iter_deliveries(&*doc)
                .filter_map(Result::ok)
                .map(|e| e.id)
                .collect();
            let (target, kind, action) = if !visits.is_empty() && rng.random_bool(0.6) {
                let v = visits[rng.random_range(0..visits.len())].clone();
                let action = if rng.random_bool(0.5) {
                    CorrectionAction::Retract
                } else {
                    CorrectionAction::ReplaceVisit(Box::new(Visit {
                        outcome: pick(rng, VisitOutcome::ALL),
                        ..v.clone()
                    }))
                };
                (v.id, RecordKind::Visit, action)
            } else if !deliveries.is_empty() {
                let d = deliveries[rng.random_range(0..deliveries.len())].clone();
                (d, RecordKind::Delivery, CorrectionAction::Retract)
            } else {
                return;
            };
            let correction = Correction {
                id: id(rng, at),
                target,
                target_kind: kind,
                action,
                reason: "mistake".into(),
                by,
                at_ms: at,
            };
            record_correction(doc, &ctx, &correction).expect("valid correction");
        }
    }
}

/// The hour of the round `at_ms` (at or after its start) falls in, counted afresh.
fn hour_in(round: RoundWindow, at_ms: i64) -> u32 {
    ((at_ms - round.start_ms) / HOUR) as u32
}

/// Independent recount of one building's totals from its raw records.
fn recount(doc: &Automerge, plan: &StreetPlan, building: &str, round: RoundWindow) -> Totals {
    let mut t = Totals {
        buildings: 1,
        ..Totals::default()
    };
    let visits: Vec<Visit> = iter_visits(doc).filter_map(Result::ok).collect();
    let deliveries: Vec<DeliveryEvent> = iter_deliveries(doc).filter_map(Result::ok).collect();
    let sweeps: Vec<SweepResult> = iter_sweeps(doc).filter_map(Result::ok).collect();
    let corrections: Vec<Correction> = iter_corrections(doc).filter_map(Result::ok).collect();
    t.records.visits = visits.len() as u32;
    t.records.deliveries = deliveries.len() as u32;
    t.records.sweeps = sweeps.len() as u32;
    t.records.corrections = corrections.len() as u32;
    let times = visits
        .iter()
        .map(|v| v.at_ms)
        .chain(deliveries.iter().map(|e| e.at_ms))
        .chain(sweeps.iter().map(|s| s.at_ms))
        .chain(corrections.iter().map(|c| c.at_ms));
    t.last_record_ms = times.max();

    // The correction in force per target: greatest (at, id).
    let mut winner: BTreeMap<RecordId, &Correction> = BTreeMap::new();
    for c in &corrections {
        let replace = match winner.get(&c.target) {
            None => true,
            Some(w) => (c.at_ms, &c.id) > (w.at_ms, &w.id),
        };
        if replace {
            winner.insert(c.target.clone(), c);
        }
    }
    let live_visits: Vec<Visit> = visits
        .iter()
        .filter_map(|v| match winner.get(&v.id).map(|c| &c.action) {
            None => Some(v.clone()),
            Some(CorrectionAction::Retract) => None,
            Some(CorrectionAction::ReplaceVisit(r)) => Some(Visit {
                id: v.id.clone(),
                ..(**r).clone()
            }),
        })
        .collect();
    let live_deliveries: Vec<&DeliveryEvent> = deliveries
        .iter()
        .filter(|e| !winner.contains_key(&e.id))
        .collect();
    let live_sweeps: Vec<&SweepResult> = sweeps
        .iter()
        .filter(|s| !winner.contains_key(&s.id))
        .collect();

    let planned = plan.building(building).expect("planned building");
    for hid in &planned.households {
        let h = plan.household(hid).expect("planned household");
        t.households += 1;
        t.residents += h.residents;
        let mine: Vec<&Visit> = live_visits.iter().filter(|v| &v.household == hid).collect();
        let in_round = mine
            .iter()
            .filter(|v| v.at_ms >= round.start_ms)
            .max_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        // Hour by hour: the household at its first visit of the round, each need at the first
        // visit of the round that reported it.
        let round_visits = || mine.iter().filter(|v| v.at_ms >= round.start_ms);
        if let Some(first) = round_visits().map(|v| v.at_ms).min() {
            *t.hourly.visited.entry(hour_in(round, first)).or_default() += 1;
        }
        for need in NeedKind::ALL {
            let reported = round_visits().filter(|v| v.needs.contains_key(need));
            if let Some(first) = reported.map(|v| v.at_ms).min() {
                *t.hourly
                    .needs_reported
                    .entry(hour_in(round, first))
                    .or_default() += 1;
            }
        }
        match in_round.map(|v| v.outcome) {
            None => t.unvisited += 1,
            Some(o) => {
                t.visited += 1;
                *match o {
                    VisitOutcome::Contacted => &mut t.contacted,
                    VisitOutcome::NotHome => &mut t.not_home,
                    VisitOutcome::Refused => &mut t.refused,
                    VisitOutcome::MovedOut => &mut t.moved_out,
                    VisitOutcome::Vacant => &mut t.vacant,
                } += 1;
            }
        }
        if !mine.iter().any(|v| {
            matches!(
                v.outcome,
                VisitOutcome::Contacted | VisitOutcome::MovedOut | VisitOutcome::Vacant
            )
        }) {
            t.never_reached += 1;
        }
        // Delivery states of this household's items.
        let mut states: BTreeMap<DeliveryItem, (DeliveryStatus, i64)> = BTreeMap::new();
        for item in DeliveryItem::ALL {
            let evs: Vec<&&DeliveryEvent> = live_deliveries
                .iter()
                .filter(|e| &e.household == hid && e.item == *item)
                .collect();
            if evs.is_empty() {
                continue;
            }
            t.deliveries.failed_attempts += evs
                .iter()
                .filter(|e| e.status == DeliveryStatus::Failed)
                .count() as u32;
            let delivered = evs
                .iter()
                .filter(|e| e.status == DeliveryStatus::Delivered)
                .min_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
            let latest = evs
                .iter()
                .max_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)))
                .expect("non-empty");
            let decider = delivered.unwrap_or(latest);
            states.insert(*item, (decider.status, decider.at_ms));
            match decider.status {
                DeliveryStatus::Requested | DeliveryStatus::OutForDelivery => {
                    t.deliveries.pending += 1
                }
                DeliveryStatus::Delivered => {
                    t.deliveries.delivered += 1;
                    if decider.at_ms >= round.start_ms {
                        *t.hourly
                            .delivered
                            .entry(hour_in(round, decider.at_ms))
                            .or_default() += 1;
                    }
                }
                DeliveryStatus::Failed => t.deliveries.failed += 1,
                DeliveryStatus::Cancelled => t.deliveries.cancelled += 1,
            }
        }
        let contacted = mine
            .iter()
            .filter(|v| v.outcome == VisitOutcome::Contacted)
            .max_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)));
        if let Some(v) = contacted {
            if !v.flags.is_empty() {
                t.special_needs_households += 1;
            }
            for f in &v.flags {
                *t.special_needs.entry(f.as_str()).or_default() += 1;
            }
            let open: Vec<NeedKind> = v
                .needs
                .keys()
                .copied()
                .filter(|n| {
                    !n.fulfilled_by().is_some_and(|item| {
                        states.get(&item).is_some_and(|(s, at)| {
                            *s == DeliveryStatus::Delivered && *at >= v.at_ms
                        })
                    })
                })
                .collect();
            if !open.is_empty() {
                t.open_needs_households += 1;
            }
            for n in open {
                *t.open_needs.entry(n.as_str()).or_default() += 1;
            }
        }
    }
    t.sweep.units = planned.units.len() as u32;
    if let Some(max) = live_sweeps.iter().map(|s| s.round).max() {
        let covered: BTreeSet<&String> = live_sweeps
            .iter()
            .filter(|s| s.round == max)
            .flat_map(|s| s.units_covered.iter())
            .collect();
        t.sweep.units_covered = covered.len() as u32;
        t.sweep.buildings_swept = 1;
        t.sweep.min_round = Some(max);
        t.sweep.max_round = Some(max);
    }
    t
}

/// Recounted totals per building, per grid, per community, and for the street.
type Recounted = (
    BTreeMap<String, Totals>,
    BTreeMap<String, Totals>,
    BTreeMap<String, Totals>,
    Totals,
);

struct Street {
    plan: Arc<StreetPlan>,
    docs: BTreeMap<DocPath, Automerge>,
}

impl Street {
    /// Every building's id, in the plan's order.
    fn building_ids(&self) -> Vec<String> {
        self.plan.buildings().map(|(id, _)| id.to_owned()).collect()
    }

    fn new(grids: usize, moved: bool) -> Self {
        Street {
            plan: Arc::new(StreetPlan::from_households(households(grids, moved))),
            docs: BTreeMap::new(),
        }
    }

    fn path_of(&self, building: &str) -> DocPath {
        let b = self.plan.building(building).expect("planned building");
        building_path(STREET, &b.grid, building).expect("valid path")
    }

    /// Recount of every planned building, and its grid and community sums.
    fn recount_all(&self, round: RoundWindow) -> Recounted {
        let empty = genesis(DocKind::Building);
        let (mut buildings, mut grids, mut communities) =
            (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
        let mut street = Totals::default();
        for (id, b) in self.plan.buildings() {
            let doc = self.docs.get(&self.path_of(id)).unwrap_or(&empty);
            let t = recount(doc, &self.plan, id, round);
            grids
                .entry(b.grid.clone())
                .or_insert_with(Totals::default)
                .add(&t);
            communities
                .entry(b.community.clone())
                .or_insert_with(Totals::default)
                .add(&t);
            street.add(&t);
            buildings.insert(id.to_owned(), t);
        }
        (buildings, grids, communities, street)
    }
}

fn assert_matches_recount(agg: &Aggregator, street: &Street, round: RoundWindow) {
    let (buildings, grids, communities, total) = street.recount_all(round);
    for (id, t) in &buildings {
        assert_eq!(
            &agg.building(id).expect("building").totals,
            t,
            "building {id}"
        );
    }
    assert_eq!(agg.buildings().len(), buildings.len());
    for (id, t) in &grids {
        assert_eq!(&agg.grids()[id].totals, t, "grid {id}");
    }
    assert_eq!(agg.grids().len(), grids.len());
    for (id, t) in &communities {
        assert_eq!(&agg.communities()[id].totals, t, "community {id}");
    }
    assert_eq!(agg.communities().len(), communities.len());
    assert_eq!(agg.street_totals(), &total);
}

#[test]
fn incremental_figures_equal_a_recount_from_raw_records() {
    for seed in [1u64, 2, 3] {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut street = Street::new(5, false);
        let round = RoundWindow::starting_at(NOW - 24 * HOUR);
        let mut agg = Aggregator::new(STREET, round);
        agg.rebuild(street.plan.clone(), round, street.docs.iter());
        assert_matches_recount(&agg, &street, round);
        let (ids, actor) = (street.building_ids(), volunteer());
        for step in 0..600 {
            let building = ids[rng.random_range(0..ids.len())].clone();
            let path = street.path_of(&building);
            let doc = street
                .docs
                .entry(path.clone())
                .or_insert_with(|| genesis(DocKind::Building).with_actor(actor.clone()));
            random_write(&mut rng, doc, &street.plan, &building);
            assert!(agg.update_document(&path, &street.docs[&path], &FirstSight::trust_claimed()));
            if step % 150 == 0 {
                assert_matches_recount(&agg, &street, round);
            }
        }
        assert_matches_recount(&agg, &street, round);
        // The generator exercised every rule the figures depend on.
        let t = agg.street_totals();
        assert!(t.records.visits > 100, "seed {seed}");
        assert!(t.records.corrections > 10, "seed {seed}");
        assert!(t.open_needs_households > 0 && t.special_needs_households > 0);
        assert!(t.deliveries.delivered > 0 && t.deliveries.failed_attempts > 0);
        assert!(t.visited > 0 && t.unvisited > 0 && t.never_reached > 0);
        assert!(t.sweep.units_covered > 0);
        // The hours of the round add up to the round's figures, and every series has data.
        let hourly = &t.hourly;
        assert_eq!(hourly.visited.values().sum::<u32>(), t.visited);
        assert!(hourly.visited.len() > 5, "visits spread over hours");
        assert!(!hourly.needs_reported.is_empty() && !hourly.delivered.is_empty());

        // Incremental state equals a from-scratch rebuild, authors included.
        let mut fresh = Aggregator::new(STREET, round);
        fresh.rebuild(street.plan.clone(), round, street.docs.iter());
        assert_eq!(fresh.authors(), agg.authors());
        assert_eq!(fresh.street_totals(), agg.street_totals());
        let written: u32 = agg.authors().values().map(|a| a.records).sum();
        assert_eq!(written, agg.street_totals().records.all());

        // A new round: visits of the previous day no longer count as visited.
        let next = RoundWindow::starting_at(NOW - 2 * HOUR);
        agg.rebuild(street.plan.clone(), next, street.docs.iter());
        assert_matches_recount(&agg, &street, next);
    }
}

/// The actor of `vol-1`, who writes the random records.
fn volunteer() -> automerge::ActorId {
    actor_for(&NodeId::parse("vol-1").expect("valid id"))
}

/// `writes` random records by `vol-1` into random buildings of `street`.
fn write_randomly(street: &mut Street, rng: &mut StdRng, writes: usize) {
    let (ids, actor) = (street.building_ids(), volunteer());
    for _ in 0..writes {
        let building = ids[rng.random_range(0..ids.len())].clone();
        let path = street.path_of(&building);
        let doc = street
            .docs
            .entry(path)
            .or_insert_with(|| genesis(DocKind::Building).with_actor(actor.clone()));
        random_write(rng, doc, &street.plan, &building);
    }
}

#[test]
fn plan_change_rekeys_buildings_into_their_new_grid_and_community() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut street = Street::new(4, false);
    let round = RoundWindow::starting_at(0);
    write_randomly(&mut street, &mut rng, 200);
    let mut agg = Aggregator::new(STREET, round);
    agg.rebuild(street.plan.clone(), round, street.docs.iter());
    assert_matches_recount(&agg, &street, round);

    // The office moves b-00-01 to grid-009 of community c-9; its document stays at its old
    // path, the figures follow the plan.
    let moved = Arc::new(StreetPlan::from_households(households(4, true)));
    let old_path = street.path_of("b-00-01");
    street.plan = moved.clone();
    let doc = street.docs.remove(&old_path).expect("document written");
    let new_path = street.path_of("b-00-01");
    street.docs.insert(new_path, doc);
    let mut docs_at_old_paths: BTreeMap<DocPath, Automerge> = street.docs.clone();
    let doc = docs_at_old_paths
        .remove(&street.path_of("b-00-01"))
        .expect("moved doc");
    docs_at_old_paths.insert(old_path, doc);
    agg.rebuild(moved, round, docs_at_old_paths.iter());
    assert_matches_recount(&agg, &street, round);
    assert_eq!(agg.building("b-00-01").expect("building").grid, "grid-009");
    assert_eq!(agg.communities()["c-9"].totals.buildings, 1);
}

#[test]
fn documents_that_are_not_buildings_are_ignored_and_unplanned_ones_counted() {
    let street = Street::new(1, false);
    let round = RoundWindow::starting_at(0);
    let mut agg = Aggregator::new(STREET, round);
    agg.rebuild(street.plan.clone(), round, street.docs.iter());
    let plan_doc = genesis(DocKind::StreetPlan);
    let plan_path = DocPath::parse("panhuo/plan").expect("valid path");
    assert!(!agg.update_document(&plan_path, &plan_doc, &FirstSight::trust_claimed()));
    let other_street = DocPath::parse("other/grid-000/b-00-00").expect("valid path");
    assert!(!agg.update_document(
        &other_street,
        &genesis(DocKind::Building),
        &FirstSight::trust_claimed()
    ));
    let stray = DocPath::parse("panhuo/grid-077/b-77-00").expect("valid path");
    assert!(agg.update_document(
        &stray,
        &genesis(DocKind::Building),
        &FirstSight::trust_claimed()
    ));
    let s = agg.building("b-77-00").expect("stray building");
    assert_eq!(s.community, crate::summary::UNPLANNED_COMMUNITY);
    assert_eq!(s.grid, "grid-077");
    assert_eq!(agg.street_totals().buildings, 4);
    assert_eq!(agg.street_totals().households, 30);
}

#[test]
fn summaries_made_on_several_threads_equal_a_sequential_rebuild() {
    let mut rng = StdRng::seed_from_u64(7);
    let mut street = Street::new(4, false);
    let round = RoundWindow::starting_at(NOW - 24 * HOUR);
    write_randomly(&mut street, &mut rng, 300);
    let docs: Vec<crate::state::SeenDocument> = street
        .docs
        .iter()
        .map(|(path, doc)| (path.clone(), doc.clone(), FirstSight::trust_claimed()))
        .collect();
    assert!(docs.len() > 3, "several buildings written");
    for workers in [1, 2, 3] {
        let mut agg = Aggregator::new(STREET, round);
        let no_documents: [(&DocPath, &Automerge); 0] = [];
        agg.rebuild(street.plan.clone(), round, no_documents);
        let summaries = crate::state::summarize_in_parallel(&agg, &docs, workers);
        assert_eq!(summaries.len(), docs.len(), "{workers} workers");
        for summary in summaries.into_iter().flatten() {
            agg.replace_building(summary);
        }
        assert_matches_recount(&agg, &street, round);
    }
}

#[test]
fn stored_summaries_decode_to_exactly_what_was_encoded() {
    let mut rng = StdRng::seed_from_u64(11);
    let mut street = Street::new(4, false);
    let round = RoundWindow::starting_at(NOW - 24 * HOUR);
    write_randomly(&mut street, &mut rng, 300);
    let mut agg = Aggregator::new(STREET, round);
    let no_documents: [(&DocPath, &Automerge); 0] = [];
    agg.rebuild(street.plan.clone(), round, no_documents);
    let mut seen = Totals::default();
    for (path, doc) in &street.docs {
        let summary = agg
            .summarize_document(path, doc, &FirstSight::trust_claimed())
            .expect("a building");
        seen.add(&summary.totals);
        let bytes = crate::stored::encode(&summary);
        let decoded = crate::stored::decode(path, &bytes).expect("decodes");
        assert_eq!(decoded, summary, "{path}");
        assert!(
            !decoded.authors.is_empty(),
            "the authors travel beside the summary"
        );
        // A summary is never taken for another document's.
        let other = DocPath::parse("panhuo/grid-000/elsewhere").expect("valid path");
        assert!(crate::stored::decode(&other, &bytes).is_err());
        // A name outside the closed vocabularies is refused, not borrowed or defaulted.
        let text = String::from_utf8(bytes).expect("JSON is UTF-8");
        for (name, foreign) in [("\"lockdown\"", "\"quarantine\""), ("\"food\"", "\"cake\"")] {
            if text.contains(name) {
                let tampered = text.replace(name, foreign);
                assert!(crate::stored::decode(path, tampered.as_bytes()).is_err());
            }
        }
    }
    // The street exercised every kind of field the encoding carries.
    assert!(seen.special_needs_households > 0 && seen.open_needs_households > 0);
    assert!(seen.deliveries.delivered + seen.deliveries.pending > 0);
    assert!(seen.sweep.buildings_swept > 0 && seen.records.corrections > 0);
}
