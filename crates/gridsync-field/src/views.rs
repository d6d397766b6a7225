//! What the app's screens show, read from the replica under its lock: the buildings in this
//! device's write scope and their households, one household or building in full, this
//! device's own records with their sync markers, and the captain's review of a building.
//! Plain functions from a replica to JSON values, so they are tested without HTTP.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use automerge::Automerge;
use gridsync_model::{
    BuildingRecords, DeliveryStatus, HouseholdView, RecordKind, StreetPlan,
    building_view_of_records,
};
use gridsync_node::{Replica, ReplicaError};
use gridsync_proto::{DocPath, LocalIdentity, NodeId, Role};
use serde_json::{Value, json};

use crate::records::{RecordRow, RowCache, rows_of};
use crate::sync_marks::{DocMarks, SyncLevel};

/// Why a view could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error(
        "no street plan on this device yet: it arrives with the first sync with a captain or the office"
    )]
    NoPlan,
    #[error("no household {0:?} in the street plan")]
    UnknownHousehold(String),
    #[error("no building {0:?} in the street plan")]
    UnknownBuilding(String),
    #[error("building {0} is outside this device's scopes")]
    OutOfScope(String),
    #[error(transparent)]
    Replica(Box<ReplicaError>),
}

impl From<ReplicaError> for ViewError {
    fn from(e: ReplicaError) -> Self {
        ViewError::Replica(Box::new(e))
    }
}

/// Everything a view reads: the replica (locked by the caller), who this device is, the
/// roles of peers the directory may not name, and the current round.
pub struct ViewContext<'a> {
    pub replica: &'a mut Replica,
    pub identity: &'a LocalIdentity,
    /// Peer roles from the node's peer table (their certificates).
    pub peer_roles: BTreeMap<NodeId, Role>,
    /// Start of the current round (the street's local day), unix milliseconds.
    pub round_start_ms: i64,
    pub now_ms: i64,
    /// Rows of documents listed before, reused while unchanged.
    pub row_cache: &'a RowCache,
}

/// A building of the plan with its document path.
struct PlannedBuilding {
    id: String,
    grid: String,
    community: String,
    path: DocPath,
}

impl ViewContext<'_> {
    fn plan(&mut self) -> Result<Arc<StreetPlan>, ViewError> {
        self.replica.street_plan()?.ok_or(ViewError::NoPlan)
    }

    fn path_of(&self, grid: &str, building: &str) -> Option<DocPath> {
        gridsync_model::building_path(self.replica.street(), grid, building).ok()
    }

    /// The plan's buildings this device may write, in plan order.
    fn my_buildings(&mut self, plan: &StreetPlan) -> Vec<PlannedBuilding> {
        plan.buildings()
            .filter_map(|(id, b)| {
                let path = self.path_of(&b.grid, id)?;
                self.identity
                    .scopes
                    .may_write(&path)
                    .then(|| PlannedBuilding {
                        id: id.to_owned(),
                        grid: b.grid.clone(),
                        community: b.community.clone(),
                        path,
                    })
            })
            .collect()
    }

    fn building(&mut self, plan: &StreetPlan, id: &str) -> Result<PlannedBuilding, ViewError> {
        let b = plan
            .building(id)
            .ok_or_else(|| ViewError::UnknownBuilding(id.to_owned()))?;
        let path = self
            .path_of(&b.grid, id)
            .ok_or_else(|| ViewError::UnknownBuilding(id.to_owned()))?;
        if !self.identity.scopes.may_read(&path) {
            return Err(ViewError::OutOfScope(id.to_owned()));
        }
        Ok(PlannedBuilding {
            id: id.to_owned(),
            grid: b.grid.clone(),
            community: b.community.clone(),
            path,
        })
    }

    /// Every record of a building's document with its sync marker, newest first: from the
    /// row cache while the document and its acknowledgements are unchanged.
    fn rows(&mut self, b: &PlannedBuilding) -> Result<Arc<Vec<RecordRow>>, ViewError> {
        let marks = DocMarks::read(self.replica, &b.path, &self.peer_roles)?;
        let heads = self.replica.known_heads(&b.path).unwrap_or_default();
        if let Some(rows) = self.row_cache.get(&b.path, &heads, &marks) {
            return Ok(rows);
        }
        let rows = self.with_document(&b.path, |doc, marks| rows_of(doc, &b.id, marks))?;
        Ok(self.row_cache.put(&b.path, heads, marks, rows))
    }

    /// Reads a building's document (its genesis skeleton when nothing was recorded yet) with
    /// the peers' acknowledgements of it, in place: documents are not copied out of the
    /// replica's cache.
    fn with_document<T>(
        &mut self,
        path: &DocPath,
        read: impl FnOnce(&Automerge, &DocMarks) -> T,
    ) -> Result<T, ViewError> {
        let marks = DocMarks::read(self.replica, path, &self.peer_roles)?;
        Ok(match self.replica.doc(path)? {
            Some(doc) => read(doc, &marks),
            None => read(
                &gridsync_model::genesis(gridsync_model::DocKind::Building),
                &marks,
            ),
        })
    }
}

/// `GET /api/v1/me`.
pub fn me(cx: &ViewContext<'_>, utc_offset_minutes: i32) -> Value {
    json!({
        "node_id": cx.identity.node_id.as_str(),
        "role": cx.identity.role.as_str(),
        "street": cx.replica.street(),
        "scopes": cx.identity.scopes.0.iter().map(|g| g.to_string()).collect::<Vec<_>>(),
        "utc_offset_minutes": utc_offset_minutes,
        "round_start_ms": cx.round_start_ms,
        "now_ms": cx.now_ms,
    })
}

fn household_json(h: &HouseholdView, round_start_ms: i64) -> Value {
    let visited = h
        .latest_visit
        .as_ref()
        .is_some_and(|v| v.at_ms >= round_start_ms);
    json!({
        "household": h.household.id,
        "building": h.household.building,
        "unit": h.household.unit,
        "door": h.household.door,
        "zone": h.household.zone.as_str(),
        "residents": h.household.residents,
        "visited_this_round": visited,
        "latest_outcome": h.latest_visit.as_ref().map(|v| v.outcome.as_str()),
        "latest_visit_ms": h.latest_visit.as_ref().map(|v| v.at_ms),
        "flags": h.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        "open_needs": h.open_needs.iter().map(|(k, d)| json!({"need": k.as_str(), "detail": d})).collect::<Vec<_>>(),
        "deliveries": h.deliveries.iter().map(|d| json!({"item": d.item.as_str(), "status": d.status.as_str(), "failed_attempts": d.failed_attempts})).collect::<Vec<_>>(),
    })
}

/// The households of one building as views, with the records read for them.
fn building_households(
    doc: &Automerge,
    plan: &StreetPlan,
    building: &str,
) -> (BuildingRecords, Vec<HouseholdView>) {
    let records = BuildingRecords::read(doc);
    let view = building_view_of_records(&records, plan, building);
    (records, view.households)
}

/// `GET /api/v1/assignments`: every building in this device's write scope, its households
/// and this round's progress.
pub fn assignments(cx: &mut ViewContext<'_>) -> Result<Value, ViewError> {
    let plan = match cx.plan() {
        Ok(plan) => plan,
        Err(ViewError::NoPlan) => {
            return Ok(
                json!({"plan": false, "round_start_ms": cx.round_start_ms, "buildings": []}),
            );
        }
        Err(e) => return Err(e),
    };
    let mut buildings = Vec::new();
    for b in cx.my_buildings(&plan) {
        let households =
            cx.with_document(&b.path, |doc, _| building_households(doc, &plan, &b.id).1)?;
        let rows: Vec<Value> = households
            .iter()
            .map(|h| household_json(h, cx.round_start_ms))
            .collect();
        buildings.push(json!({
            "building": b.id,
            "grid": b.grid,
            "community": b.community,
            "document": b.path.as_str(),
            "households_total": households.len(),
            "visited_this_round": rows.iter().filter(|h| h["visited_this_round"] == true).count(),
            "special_needs": households.iter().filter(|h| !h.flags.is_empty()).count(),
            "open_needs": households.iter().filter(|h| !h.open_needs.is_empty()).count(),
            "households": rows,
        }));
    }
    Ok(json!({"plan": true, "round_start_ms": cx.round_start_ms, "buildings": buildings}))
}

/// Most households a search returns.
const SEARCH_LIMIT: usize = 50;

/// `GET /api/v1/search?q=`: households of my buildings whose door or id contains `q`.
pub fn search(cx: &mut ViewContext<'_>, query: &str) -> Result<Value, ViewError> {
    let query = query.trim().to_lowercase();
    let plan = cx.plan()?;
    let mut found = Vec::new();
    for b in cx.my_buildings(&plan) {
        let Some(building) = plan.building(&b.id) else {
            continue;
        };
        let matches: Vec<&str> = building
            .households
            .iter()
            .filter(|id| {
                plan.household(id).is_some_and(|h| {
                    h.door.to_lowercase().contains(&query) || h.id.to_lowercase().contains(&query)
                })
            })
            .map(String::as_str)
            .collect();
        if matches.is_empty() {
            continue;
        }
        let households =
            cx.with_document(&b.path, |doc, _| building_households(doc, &plan, &b.id).1)?;
        found.extend(
            households
                .iter()
                .filter(|h| matches.contains(&h.household.id.as_str()))
                .map(|h| household_json(h, cx.round_start_ms)),
        );
        if found.len() >= SEARCH_LIMIT {
            found.truncate(SEARCH_LIMIT);
            break;
        }
    }
    Ok(json!({ "households": found }))
}

/// `GET /api/v1/households/{id}`: one household with every visit and delivery event.
pub fn household(cx: &mut ViewContext<'_>, id: &str) -> Result<Value, ViewError> {
    let plan = cx.plan()?;
    let building = plan
        .household(id)
        .map(|h| h.building.clone())
        .ok_or_else(|| ViewError::UnknownHousehold(id.to_owned()))?;
    let b = cx.building(&plan, &building)?;
    let round_start_ms = cx.round_start_ms;
    let rows = cx.rows(&b)?;
    let view = cx.with_document(&b.path, |doc, _| {
        let (_, households) = building_households(doc, &plan, &b.id);
        households
            .iter()
            .find(|h| h.household.id == id)
            .map(|h| household_json(h, round_start_ms))
    })?;
    let mut value = view.ok_or_else(|| ViewError::UnknownHousehold(id.to_owned()))?;
    let of_kind = |kind: RecordKind| -> Vec<Value> {
        rows.iter()
            .filter(|r| r.kind == kind && r.household.as_deref() == Some(id))
            .map(|r| r.json.clone())
            .collect()
    };
    value["may_write"] = json!(cx.identity.scopes.may_write(&b.path));
    value["visits"] = json!(of_kind(RecordKind::Visit));
    value["delivery_events"] = json!(of_kind(RecordKind::Delivery));
    Ok(value)
}

/// `GET /api/v1/buildings/{id}`: a building's units, households and sweeps.
pub fn building(cx: &mut ViewContext<'_>, id: &str) -> Result<Value, ViewError> {
    let plan = cx.plan()?;
    let b = cx.building(&plan, id)?;
    let rows = cx.rows(&b)?;
    let households =
        cx.with_document(&b.path, |doc, _| building_households(doc, &plan, &b.id).1)?;
    let units: Vec<String> = plan
        .building(id)
        .map(|p| p.units.iter().cloned().collect())
        .unwrap_or_default();
    let sweeps: Vec<Value> = rows
        .iter()
        .filter(|r| r.kind == RecordKind::Sweep)
        .map(|r| r.json.clone())
        .collect();
    Ok(json!({
        "building": b.id,
        "grid": b.grid,
        "community": b.community,
        "document": b.path.as_str(),
        "units": units,
        "may_write": cx.identity.scopes.may_write(&b.path),
        "households": households.iter().map(|h| household_json(h, cx.round_start_ms)).collect::<Vec<_>>(),
        "sweeps": sweeps,
    }))
}

/// This device's own records across its buildings, newest first, with how many have not
/// reached the office and how many are only on this device.
pub struct MyRecords {
    pub rows: Vec<RecordRow>,
    pub not_at_office: usize,
    pub only_on_device: usize,
}

/// Reads every record this device wrote in the buildings it may write.
pub fn my_records(cx: &mut ViewContext<'_>) -> Result<MyRecords, ViewError> {
    let me = cx.identity.node_id.as_str().to_owned();
    let plan = match cx.plan() {
        Ok(plan) => plan,
        Err(ViewError::NoPlan) => {
            return Ok(MyRecords {
                rows: Vec::new(),
                not_at_office: 0,
                only_on_device: 0,
            });
        }
        Err(e) => return Err(e),
    };
    let mut rows = Vec::new();
    for b in cx.my_buildings(&plan) {
        // Documents never written are skipped without loading them.
        if cx.replica.known_heads(&b.path).is_none() {
            continue;
        }
        let all = cx.rows(&b)?;
        rows.extend(all.iter().filter(|r| r.by == me).cloned());
    }
    rows.sort_by(|a, b| (b.at_ms, &b.id).cmp(&(a.at_ms, &a.id)));
    let not_at_office = rows.iter().filter(|r| r.sync < SyncLevel::Office).count();
    let only_on_device = rows.iter().filter(|r| r.sync == SyncLevel::Device).count();
    Ok(MyRecords {
        rows,
        not_at_office,
        only_on_device,
    })
}

/// One conflict as the review shows it: its kind and the key of the rule that decides it,
/// the household (and delivery item), the record the rule keeps, and every record involved.
fn conflict(
    (kind, rule_key): (&str, &str),
    (household, item): (&str, Option<&str>),
    winner: &gridsync_model::RecordId,
    records: Vec<Value>,
) -> Value {
    json!({
        "kind": kind,
        "household": household,
        "item": item,
        "rule_key": rule_key,
        "winner": winner.as_str(),
        "records": records,
    })
}

/// A conflict the captain should look at, with the rule that decides it.
fn conflicts_of(records: &BuildingRecords, rows: &[RecordRow], round_start_ms: i64) -> Vec<Value> {
    let row_json =
        |id: &gridsync_model::RecordId| rows.iter().find(|r| r.id == *id).map(|r| r.json.clone());
    let mut conflicts = Vec::new();
    // Two devices reporting different outcomes for one household in this round: the latest
    // visit (by time, then id) is what the household's view shows.
    let mut by_household: BTreeMap<&str, Vec<&gridsync_model::Visit>> = BTreeMap::new();
    let visits = records.corrected_visits();
    for v in visits.iter().filter(|v| v.current.at_ms >= round_start_ms) {
        by_household
            .entry(v.current.household.as_str())
            .or_default()
            .push(&v.current);
    }
    for (household, visits) in by_household {
        let devices: BTreeSet<&str> = visits.iter().map(|v| v.volunteer.as_str()).collect();
        let outcomes: BTreeSet<&str> = visits.iter().map(|v| v.outcome.as_str()).collect();
        if devices.len() < 2 || outcomes.len() < 2 {
            continue;
        }
        let Some(winner) = visits
            .iter()
            .max_by(|a, b| (a.at_ms, &a.id).cmp(&(b.at_ms, &b.id)))
        else {
            continue;
        };
        conflicts.push(conflict(
            ("visit-outcomes", "rule.latest-visit-wins"),
            (household, None),
            &winner.id,
            visits.iter().filter_map(|v| row_json(&v.id)).collect(),
        ));
    }
    // One device says delivered, another failed: delivered wins, the failure stays history.
    let mut by_item: BTreeMap<(&str, &str), Vec<&gridsync_model::DeliveryEvent>> = BTreeMap::new();
    for e in records.live_deliveries() {
        by_item
            .entry((e.household.as_str(), e.item.as_str()))
            .or_default()
            .push(e);
    }
    for ((household, item), events) in by_item {
        let delivered: Vec<_> = events
            .iter()
            .filter(|e| e.status == DeliveryStatus::Delivered)
            .collect();
        let failed_by: BTreeSet<&str> = events
            .iter()
            .filter(|e| e.status == DeliveryStatus::Failed)
            .map(|e| e.by.as_str())
            .collect();
        let Some(winner) = delivered.first() else {
            continue;
        };
        if !delivered
            .iter()
            .any(|d| failed_by.iter().any(|f| *f != d.by))
        {
            continue;
        }
        conflicts.push(conflict(
            ("delivery-failed-and-delivered", "rule.delivered-wins"),
            (household, Some(item)),
            &winner.id,
            events.iter().filter_map(|e| row_json(&e.id)).collect(),
        ));
    }
    conflicts
}

/// What the captain's review shows of one building.
struct BuildingReview {
    volunteers: BTreeMap<String, Vec<RecordRow>>,
    not_reached: Vec<Value>,
    conflicts: Vec<Value>,
    households_total: usize,
}

fn review_of(
    cx: &mut ViewContext<'_>,
    plan: &StreetPlan,
    b: &PlannedBuilding,
) -> Result<BuildingReview, ViewError> {
    let rows = cx.rows(b)?;
    let (records, households) =
        cx.with_document(&b.path, |doc, _| building_households(doc, plan, &b.id))?;
    let conflicts = conflicts_of(&records, &rows, cx.round_start_ms);
    let not_reached = households
        .iter()
        .filter(|h| {
            h.latest_visit
                .as_ref()
                .is_none_or(|v| v.at_ms < cx.round_start_ms)
        })
        .map(|h| household_json(h, cx.round_start_ms))
        .collect();
    let mut volunteers: BTreeMap<String, Vec<RecordRow>> = BTreeMap::new();
    for row in rows.iter() {
        volunteers
            .entry(row.by.clone())
            .or_default()
            .push(row.clone());
    }
    Ok(BuildingReview {
        volunteers,
        not_reached,
        conflicts,
        households_total: households.len(),
    })
}

/// `GET /api/v1/review/{building}` (captains): every volunteer's records side by side,
/// households not reached this round, conflicting reports with their rule.
pub fn review_building(cx: &mut ViewContext<'_>, id: &str) -> Result<Value, ViewError> {
    let plan = cx.plan()?;
    let b = cx.building(&plan, id)?;
    let review = review_of(cx, &plan, &b)?;
    let volunteers: Vec<Value> = review
        .volunteers
        .iter()
        .map(|(volunteer, rows)| {
            json!({
                "volunteer": volunteer,
                "records": rows.iter().map(|r| r.json.clone()).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(json!({
        "building": b.id,
        "round_start_ms": cx.round_start_ms,
        "households_total": review.households_total,
        "volunteers": volunteers,
        "not_reached": review.not_reached,
        "conflicts": review.conflicts,
    }))
}

/// `GET /api/v1/review` (captains): my buildings with what needs attention, and the
/// volunteers not heard from for `quiet_after_hours` (last seen: the newest of their last
/// sync with this node and their newest record in my buildings).
pub fn review(
    cx: &mut ViewContext<'_>,
    last_sync_ms: &BTreeMap<NodeId, u64>,
    quiet_after_hours: u32,
) -> Result<Value, ViewError> {
    let plan = cx.plan()?;
    let mut buildings = Vec::new();
    let mut last_seen: BTreeMap<String, Option<i64>> = BTreeMap::new();
    for (peer, role) in &cx.peer_roles {
        if *role == Role::Volunteer {
            let seen = last_sync_ms.get(peer).map(|ms| *ms as i64);
            last_seen.insert(peer.as_str().to_owned(), seen);
        }
    }
    for b in cx.my_buildings(&plan) {
        let review = review_of(cx, &plan, &b)?;
        for (volunteer, rows) in &review.volunteers {
            if volunteer == cx.identity.node_id.as_str() {
                continue;
            }
            let is_volunteer = NodeId::parse(volunteer)
                .ok()
                .and_then(|n| cx.replica.device_role(&n))
                .is_none_or(|r| r == Role::Volunteer);
            if !is_volunteer {
                continue;
            }
            let newest = rows.iter().map(|r| r.at_ms).max();
            let slot = last_seen.entry(volunteer.clone()).or_default();
            *slot = (*slot).max(newest);
        }
        buildings.push(json!({
            "building": b.id,
            "households_total": review.households_total,
            "not_reached": review.not_reached.len(),
            "conflicts": review.conflicts.len(),
            "volunteers": review.volunteers.keys().filter(|v| *v != cx.identity.node_id.as_str()).count(),
        }));
    }
    let quiet_ms = i64::from(quiet_after_hours) * 3_600_000;
    let quiet: Vec<Value> = last_seen
        .iter()
        .filter(|(_, seen)| seen.is_none_or(|s| cx.now_ms - s >= quiet_ms))
        .map(|(volunteer, seen)| {
            let hours = seen.map(|s| ((cx.now_ms - s) as f64 / 360_000.0).round() / 10.0);
            json!({"volunteer": volunteer, "last_seen_ms": seen, "hours": hours})
        })
        .collect();
    Ok(json!({
        "buildings": buildings,
        "quiet_volunteers": quiet,
        "quiet_after_hours": quiet_after_hours,
    }))
}
