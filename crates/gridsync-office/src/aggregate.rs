//! The office's live aggregation: one cached [`BuildingSummary`] per building and the
//! [`Totals`] of every grid, community and the street, kept current one document at a time.
//!
//! Driving contract: [`Aggregator::rebuild`] once with the plan and every held document (and
//! again whenever the plan or the round changes: both re-key or re-scope every building), or,
//! for a rebuild that reuses stored summaries, [`Aggregator::with_plan`] then
//! [`Aggregator::install_rebuilt`] with every building's summary; then
//! [`Aggregator::update_document`] for each building document that changed. An update
//! recomputes that one building from its document, then re-sums only its grid from the grid's
//! cached building summaries, its community from its grids, and the street from its
//! communities, so the cost of an update does not grow with the number of records in the
//! street. Pure: no IO, no clock (the round window is passed in).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use automerge::{Automerge, ReadDoc};
use gridsync_model::{DocKind, FirstSight, StreetPlan, genesis};
use gridsync_proto::DocPath;

use crate::summary::{
    AuthorTally, BuildingSummary, Placement, RoundWindow, Totals, UNPLANNED_COMMUNITY, summarize,
};

/// One grid's roll-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GridRollup {
    pub community: String,
    pub buildings: BTreeSet<String>,
    pub totals: Totals,
}

/// One community's roll-up.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CommunityRollup {
    pub grids: BTreeSet<String>,
    pub totals: Totals,
}

/// Live aggregation of a street's building documents.
pub struct Aggregator {
    street: String,
    plan: Arc<StreetPlan>,
    round: RoundWindow,
    /// Summaries by building id (unique street-wide in the plan).
    buildings: BTreeMap<String, BuildingSummary>,
    grids: BTreeMap<String, GridRollup>,
    communities: BTreeMap<String, CommunityRollup>,
    street_totals: Totals,
    /// Per author, over all buildings: records are kept by adding and subtracting building
    /// tallies; the newest record time is re-scanned only when a building held the maximum.
    authors: BTreeMap<String, AuthorTally>,
    /// Bumped by every change to the figures, so readers can tell a fresh snapshot.
    version: u64,
    /// The skeleton summarized for planned buildings that have no document yet.
    empty: Automerge,
}

impl std::fmt::Debug for Aggregator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Aggregator")
            .field("street", &self.street)
            .field("buildings", &self.buildings.len())
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Whether `path` names a building document of `street`: `{street}/{grid}/{building}`.
pub fn is_building_path(street: &str, path: &DocPath) -> bool {
    let mut segments = path.segments();
    segments.next() == Some(street) && path.segments().count() == 3
}

impl Aggregator {
    /// An empty aggregation of `street` (no plan yet) for the given round.
    pub fn new(street: &str, round: RoundWindow) -> Self {
        Aggregator {
            street: street.to_owned(),
            plan: Arc::new(StreetPlan::default()),
            round,
            buildings: BTreeMap::new(),
            grids: BTreeMap::new(),
            communities: BTreeMap::new(),
            street_totals: Totals::default(),
            authors: BTreeMap::new(),
            version: 0,
            empty: genesis(DocKind::Building),
        }
    }

    pub fn street(&self) -> &str {
        &self.street
    }
    pub fn plan(&self) -> &Arc<StreetPlan> {
        &self.plan
    }
    pub fn round(&self) -> RoundWindow {
        self.round
    }
    pub fn version(&self) -> u64 {
        self.version
    }
    pub fn street_totals(&self) -> &Totals {
        &self.street_totals
    }
    pub fn building(&self, id: &str) -> Option<&BuildingSummary> {
        self.buildings.get(id)
    }
    pub fn buildings(&self) -> &BTreeMap<String, BuildingSummary> {
        &self.buildings
    }
    pub fn grids(&self) -> &BTreeMap<String, GridRollup> {
        &self.grids
    }
    pub fn communities(&self) -> &BTreeMap<String, CommunityRollup> {
        &self.communities
    }
    pub fn authors(&self) -> &BTreeMap<String, AuthorTally> {
        &self.authors
    }

    fn placement(&self, building: &str, path: Option<&DocPath>) -> Placement {
        match self.plan.building(building) {
            Some(b) => Placement {
                building: building.to_owned(),
                grid: b.grid.clone(),
                community: b.community.clone(),
            },
            None => Placement {
                building: building.to_owned(),
                grid: path
                    .and_then(|p| p.segments().nth(1))
                    .unwrap_or("")
                    .to_owned(),
                community: UNPLANNED_COMMUNITY.to_owned(),
            },
        }
    }

    /// Recomputes everything from `plan` and every document held (plan changed, round
    /// changed, or start-up). Documents that are not building documents are ignored. Their
    /// records' claimed times are taken as they are (documents held in memory only, with no
    /// first sight recorded: simulations and recounts).
    pub fn rebuild<'a, R: ReadDoc + 'a>(
        &mut self,
        plan: Arc<StreetPlan>,
        round: RoundWindow,
        docs: impl IntoIterator<Item = (&'a DocPath, &'a R)>,
    ) {
        self.plan = plan;
        self.round = round;
        let summaries: Vec<BuildingSummary> = docs
            .into_iter()
            .filter_map(|(path, doc)| {
                self.summarize_document(path, doc, &FirstSight::trust_claimed())
            })
            .collect();
        self.install_rebuilt(summaries);
    }

    /// An aggregation of `street` under `plan` for `round` that holds no building yet: the
    /// start of a rebuild that makes its summaries itself (with
    /// [`Aggregator::summarize_document`], or taken from the store) and hands them all to
    /// [`Aggregator::install_rebuilt`].
    pub fn with_plan(street: &str, plan: Arc<StreetPlan>, round: RoundWindow) -> Self {
        let mut aggregator = Aggregator::new(street, round);
        aggregator.plan = plan;
        aggregator
    }

    /// Replaces every building with `summaries` (made under this aggregation's plan and
    /// round; a later one of the same building wins), adds the planned buildings that have
    /// none, and sums every roll-up once: the same figures as [`Aggregator::rebuild`] from
    /// the documents the summaries were made of.
    pub fn install_rebuilt(&mut self, summaries: impl IntoIterator<Item = BuildingSummary>) {
        self.buildings.clear();
        self.grids.clear();
        self.communities.clear();
        self.authors.clear();
        for summary in summaries {
            self.buildings.insert(summary.building.clone(), summary);
        }
        let missing: Vec<String> = self
            .plan
            .buildings()
            .map(|(id, _)| id.to_owned())
            .filter(|id| !self.buildings.contains_key(id))
            .collect();
        for id in missing {
            let place = self.placement(&id, None);
            let summary = summarize(
                &self.empty,
                &FirstSight::trust_claimed(),
                None,
                &self.plan,
                &place,
                self.round,
            );
            self.buildings.insert(id, summary);
        }
        for (id, s) in &self.buildings {
            let grid = self.grids.entry(s.grid.clone()).or_default();
            grid.community = s.community.clone();
            grid.buildings.insert(id.clone());
            self.communities
                .entry(s.community.clone())
                .or_default()
                .grids
                .insert(s.grid.clone());
            for (author, tally) in &s.authors {
                let t = self.authors.entry(author.clone()).or_default();
                t.records += tally.records;
                t.last_record_ms = t.last_record_ms.max(tally.last_record_ms);
                t.clock_ahead += tally.clock_ahead;
            }
        }
        let grids: Vec<String> = self.grids.keys().cloned().collect();
        for g in &grids {
            self.resum_grid(g);
        }
        let communities: Vec<String> = self.communities.keys().cloned().collect();
        for c in &communities {
            self.resum_community(c);
        }
        self.resum_street();
        self.version += 1;
    }

    /// The summary of one building document under the current plan and round, without
    /// installing it (`None` for a document that is not a building of this street). Pure and
    /// `&self`, so that a rebuild can summarize many documents on several threads and install
    /// them afterwards with [`Aggregator::install_rebuilt`] (or one at a time with
    /// [`Aggregator::replace_building`]).
    ///
    /// `sight` says when the office first saw each record, for the clock rule.
    pub fn summarize_document<R: ReadDoc>(
        &self,
        path: &DocPath,
        doc: &R,
        sight: &FirstSight,
    ) -> Option<BuildingSummary> {
        if !is_building_path(&self.street, path) {
            return None;
        }
        let building = path.segments().nth(2)?;
        let place = self.placement(building, Some(path));
        Some(summarize(
            doc,
            sight,
            Some(path.as_str()),
            &self.plan,
            &place,
            self.round,
        ))
    }

    /// Makes this aggregation's version greater than `previous`, so that a rebuilt
    /// aggregation swapped in for an older one still reads as newer.
    pub fn advance_version_past(&mut self, previous: u64) {
        self.version = self.version.max(previous) + 1;
    }

    /// Folds one changed document into the aggregation. Returns whether it was a building
    /// document (anything else, the plan included, is left to [`Aggregator::rebuild`]).
    pub fn update_document<R: ReadDoc>(
        &mut self,
        path: &DocPath,
        doc: &R,
        sight: &FirstSight,
    ) -> bool {
        match self.summarize_document(path, doc, sight) {
            Some(summary) => {
                self.replace_building(summary);
                true
            }
            None => false,
        }
    }

    /// Installs a building's new summary and re-sums the roll-ups above it.
    pub fn replace_building(&mut self, summary: BuildingSummary) {
        let id = summary.building.clone();
        let old = self.buildings.insert(id.clone(), summary);
        // Invariant: inserted just above.
        let new = self.buildings.get(&id).expect("summary present").clone();
        let mut rescan = Vec::new();
        if let Some(old) = &old {
            for (author, tally) in &old.authors {
                if let Some(t) = self.authors.get_mut(author) {
                    t.records = t.records.saturating_sub(tally.records);
                    t.clock_ahead = t.clock_ahead.saturating_sub(tally.clock_ahead);
                    if tally.last_record_ms >= t.last_record_ms {
                        rescan.push(author.clone());
                    }
                }
            }
            if old.grid != new.grid
                && let Some(g) = self.grids.get_mut(&old.grid)
            {
                g.buildings.remove(&id);
            }
        }
        for (author, tally) in &new.authors {
            let t = self.authors.entry(author.clone()).or_default();
            t.records += tally.records;
            t.last_record_ms = t.last_record_ms.max(tally.last_record_ms);
            t.clock_ahead += tally.clock_ahead;
        }
        for author in rescan {
            let last = self
                .buildings
                .values()
                .filter_map(|b| b.authors.get(&author))
                .map(|t| t.last_record_ms)
                .max();
            match last {
                Some(last) => {
                    if let Some(t) = self.authors.get_mut(&author) {
                        t.last_record_ms = last;
                    }
                }
                None => {
                    self.authors.remove(&author);
                }
            }
        }
        let grid = self.grids.entry(new.grid.clone()).or_default();
        grid.buildings.insert(id);
        let old_community = std::mem::replace(&mut grid.community, new.community.clone());
        self.communities
            .entry(new.community.clone())
            .or_default()
            .grids
            .insert(new.grid.clone());
        let mut grids = vec![new.grid.clone()];
        let mut communities = vec![new.community.clone()];
        if !old_community.is_empty() && old_community != new.community {
            communities.push(old_community);
        }
        if let Some(old) = old
            && old.grid != new.grid
        {
            grids.push(old.grid.clone());
            communities.push(old.community.clone());
        }
        for g in &grids {
            self.resum_grid(g);
        }
        for c in &communities {
            self.resum_community(c);
        }
        self.resum_street();
        self.version += 1;
    }

    fn resum_grid(&mut self, grid: &str) {
        let Some(g) = self.grids.get(grid) else {
            return;
        };
        if g.buildings.is_empty() {
            self.grids.remove(grid);
            for c in self.communities.values_mut() {
                c.grids.remove(grid);
            }
            return;
        }
        let mut totals = Totals::default();
        for b in &g.buildings {
            if let Some(s) = self.buildings.get(b) {
                totals.add(&s.totals);
            }
        }
        if let Some(g) = self.grids.get_mut(grid) {
            g.totals = totals;
        }
    }

    fn resum_community(&mut self, community: &str) {
        let Some(c) = self.communities.get(community) else {
            return;
        };
        // A grid belongs to the community its buildings now name.
        let grids: BTreeSet<String> = c
            .grids
            .iter()
            .filter(|g| self.grids.get(*g).is_some_and(|r| r.community == community))
            .cloned()
            .collect();
        if grids.is_empty() {
            self.communities.remove(community);
            return;
        }
        let mut totals = Totals::default();
        for g in &grids {
            if let Some(r) = self.grids.get(g) {
                totals.add(&r.totals);
            }
        }
        if let Some(c) = self.communities.get_mut(community) {
            c.grids = grids;
            c.totals = totals;
        }
    }

    fn resum_street(&mut self) {
        let mut totals = Totals::default();
        for c in self.communities.values() {
            totals.add(&c.totals);
        }
        self.street_totals = totals;
    }
}
