//! JSON handlers under `/api/v1`. Figures come from the live aggregation (never a recount per
//! request); only `records` reads documents, one at a time, and only the page asked for.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridsync_model::{ExportRow, RecordKind, export_rows};
use gridsync_proto::DocPath;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::AppState;
use crate::summary::{HouseholdLine, RecordTotals, Totals};

/// Default and largest page sizes.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1_000;

pub(crate) use gridsync_web::json_error as error;

/// The street overview: what the dashboard's top line and the event stream carry.
#[derive(Debug, Serialize)]
pub(crate) struct Summary {
    pub street: String,
    /// Aggregation version; grows with every change.
    pub version: u64,
    pub round_start_ms: i64,
    /// The street's time zone, minutes east of UTC: the pages show times in it.
    pub utc_offset_minutes: i32,
    pub generated_ms: u64,
    pub totals: Totals,
}

pub(crate) fn summary_of(state: &AppState) -> Summary {
    state.office.with_aggregator(|agg| Summary {
        street: agg.street().to_owned(),
        version: agg.version(),
        round_start_ms: agg.round().start_ms,
        utc_offset_minutes: state.office.inner.options.utc_offset_for(agg.plan()),
        generated_ms: state.office.inner.now_ms() as u64,
        totals: agg.street_totals().clone(),
    })
}

pub(crate) async fn summary(State(state): State<AppState>) -> Json<Summary> {
    Json(summary_of(&state))
}

#[derive(Serialize)]
struct BuildingNode<'a> {
    id: &'a str,
    document: Option<&'a str>,
    sweep_round: Option<u32>,
    totals: &'a Totals,
}

#[derive(Serialize)]
struct GridNode<'a> {
    id: &'a str,
    totals: &'a Totals,
    buildings: Vec<BuildingNode<'a>>,
}

#[derive(Serialize)]
struct CommunityNode<'a> {
    id: &'a str,
    totals: &'a Totals,
    grids: Vec<GridNode<'a>>,
}

/// `?community=&grid=` narrow the tree to one branch.
#[derive(Deserialize)]
pub(crate) struct PlaceFilter {
    community: Option<String>,
    grid: Option<String>,
}

/// The tree street -> communities -> grids -> buildings, with totals at every level.
pub(crate) async fn places(
    State(state): State<AppState>,
    Query(filter): Query<PlaceFilter>,
) -> Response {
    state.office.with_aggregator(|agg| {
        let communities: Vec<CommunityNode<'_>> = agg
            .communities()
            .iter()
            .filter(|(id, _)| filter.community.as_ref().is_none_or(|c| c == *id))
            .map(|(cid, c)| CommunityNode {
                id: cid,
                totals: &c.totals,
                grids: c
                    .grids
                    .iter()
                    .filter(|g| filter.grid.as_ref().is_none_or(|f| f == *g))
                    .filter_map(|gid| agg.grids().get(gid).map(|g| (gid, g)))
                    .map(|(gid, g)| GridNode {
                        id: gid,
                        totals: &g.totals,
                        buildings: g
                            .buildings
                            .iter()
                            .filter_map(|b| agg.building(b))
                            .map(|b| BuildingNode {
                                id: &b.building,
                                document: b.document.as_deref(),
                                sweep_round: b.sweep_round,
                                totals: &b.totals,
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .filter(|c| !c.grids.is_empty())
            .collect();
        Json(json!({
            "street": agg.street(),
            "version": agg.version(),
            "totals": agg.street_totals(),
            "communities": communities,
        }))
        .into_response()
    })
}

/// One building: its figures and every household line.
pub(crate) async fn building(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    state.office.with_aggregator(|agg| match agg.building(&id) {
        Some(b) => Json(b).into_response(),
        None => error(StatusCode::NOT_FOUND, "no such building"),
    })
}

/// `?community=&grid=&building=&need=&flag=&limit=&offset=`.
#[derive(Deserialize)]
pub(crate) struct NeedsQuery {
    community: Option<String>,
    grid: Option<String>,
    building: Option<String>,
    need: Option<String>,
    flag: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

#[derive(Serialize)]
struct NeedsLine<'a> {
    community: &'a str,
    grid: &'a str,
    building: &'a str,
    #[serde(flatten)]
    household: &'a HouseholdLine,
}

/// Special-needs households and households with open needs, open needs first.
pub(crate) async fn needs(State(state): State<AppState>, Query(q): Query<NeedsQuery>) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let offset = q.offset.unwrap_or(0);
    state.office.with_aggregator(|agg| {
        let mut lines: Vec<NeedsLine<'_>> = agg
            .buildings()
            .values()
            .filter(|b| q.community.as_ref().is_none_or(|c| *c == b.community))
            .filter(|b| q.grid.as_ref().is_none_or(|g| *g == b.grid))
            .filter(|b| q.building.as_ref().is_none_or(|x| *x == b.building))
            .flat_map(|b| {
                b.households.iter().map(move |h| NeedsLine {
                    community: &b.community,
                    grid: &b.grid,
                    building: &b.building,
                    household: h,
                })
            })
            .filter(|l| !l.household.flags.is_empty() || !l.household.open_needs.is_empty())
            .filter(|l| {
                q.need
                    .as_ref()
                    .is_none_or(|n| l.household.open_needs.contains_key(n.as_str()))
            })
            .filter(|l| {
                q.flag
                    .as_ref()
                    .is_none_or(|f| l.household.flags.contains(&f.as_str()))
            })
            .collect();
        // Open needs first; then by place, which the iteration order already gives.
        lines.sort_by_key(|l| l.household.open_needs.is_empty());
        let total = lines.len();
        let page: Vec<_> = lines.into_iter().skip(offset).take(limit).collect();
        Json(json!({ "total": total, "offset": offset, "limit": limit, "households": page }))
            .into_response()
    })
}

/// One device as the office sees it.
#[derive(Debug, Serialize)]
pub(crate) struct DeviceLine {
    pub device: String,
    /// Records it wrote that the office holds.
    pub records: u32,
    /// Newest of those, unix milliseconds.
    pub last_record_ms: Option<i64>,
    /// Whether it is a direct peer of this node, and its connection state.
    pub peer: Option<gridsync_node::peers::PeerStatus>,
    /// Latest evidence the office has of the device: its last sync with this node (now, if
    /// connected and up to date) or its newest record.
    pub last_contact_ms: Option<i64>,
    /// How long ago that was: how far behind the office's picture of this device may be.
    pub behind_ms: Option<i64>,
    /// The office node itself (its records are local, not received from anyone).
    pub local: bool,
    /// Its records whose claimed time ran ahead of the office's first sight (its clock is
    /// wrong: they are counted at that first sight).
    pub clock_ahead: u32,
    /// The office holds proof that it signed two different changes in one place of its
    /// history; what to do about it.
    pub equivocation: Option<String>,
}

impl DeviceLine {
    /// A device the office knows of but holds no record of.
    fn unseen(device: String) -> Self {
        DeviceLine {
            device,
            records: 0,
            last_record_ms: None,
            peer: None,
            last_contact_ms: None,
            behind_ms: None,
            local: false,
            clock_ahead: 0,
            equivocation: None,
        }
    }
}

pub(crate) fn device_lines(state: &AppState) -> Vec<DeviceLine> {
    let now = state.office.inner.now_ms();
    let mut lines: BTreeMap<String, DeviceLine> = BTreeMap::new();
    state.office.with_aggregator(|agg| {
        for (who, tally) in agg.authors() {
            lines.insert(
                who.clone(),
                DeviceLine {
                    device: who.clone(),
                    records: tally.records,
                    last_record_ms: Some(tally.last_record_ms),
                    peer: None,
                    last_contact_ms: None,
                    behind_ms: None,
                    local: false,
                    clock_ahead: tally.clock_ahead,
                    equivocation: None,
                },
            );
        }
    });
    for peer in state.office.node().peers() {
        let id = peer.node_id.to_string();
        lines
            .entry(id.clone())
            .or_insert_with(|| DeviceLine::unseen(id))
            .peer = Some(peer);
    }
    let equivocators =
        gridsync_node::status::equivocating_devices(&state.office.node().lock_replica());
    for e in equivocators {
        let line = lines
            .entry(e.node_id.clone())
            .or_insert_with(|| DeviceLine::unseen(e.node_id.clone()));
        line.equivocation = Some(e.advice);
    }
    let own_id = state.office.node().node_id().to_string();
    if let Some(line) = lines.get_mut(&own_id) {
        line.local = true;
    }
    for line in lines.values_mut() {
        if line.local {
            line.last_contact_ms = Some(now);
            line.behind_ms = Some(0);
            continue;
        }
        let synced = line.peer.as_ref().and_then(|p| {
            if p.connected && p.up_to_date {
                Some(now)
            } else {
                p.last_sync_ms.map(|t| t as i64)
            }
        });
        line.last_contact_ms = synced.max(line.last_record_ms);
        line.behind_ms = line.last_contact_ms.map(|t| now.saturating_sub(t).max(0));
    }
    lines.into_values().collect()
}

pub(crate) async fn devices(State(state): State<AppState>) -> Response {
    let generated_ms = state.office.inner.now_ms();
    Json(json!({ "generated_ms": generated_ms, "devices": device_lines(&state) })).into_response()
}

/// `?building=&household=&kind=&limit=&offset=`.
#[derive(Deserialize)]
pub(crate) struct RecordsQuery {
    building: Option<String>,
    household: Option<String>,
    kind: Option<String>,
    limit: Option<usize>,
    offset: Option<usize>,
}

fn count_of(records: &RecordTotals, kind: Option<RecordKind>) -> usize {
    (match kind {
        None => records.all(),
        Some(RecordKind::Visit) => records.visits,
        Some(RecordKind::Delivery) => records.deliveries,
        Some(RecordKind::Sweep) => records.sweeps,
        Some(RecordKind::Correction) => records.corrections,
    }) as usize
}

/// Rows of one document that pass the filters (the caller holds no lock).
fn matching_rows(
    state: &AppState,
    path: &DocPath,
    kind: Option<RecordKind>,
    household: Option<&str>,
) -> Vec<ExportRow> {
    let Some((doc, sight)) = super::export::copy_document(state, path) else {
        return Vec::new();
    };
    export_rows(&doc, path, &sight)
        .filter_map(Result::ok)
        .filter(|r| kind.is_none_or(|k| r.kind == k.as_str()))
        .filter(|r| household.is_none_or(|h| r.household.as_deref() == Some(h)))
        .collect()
}

/// Records as written (the audit trail), by document path, kind and id, a page at a time.
/// `total` counts every matching record; pages skip whole documents by the aggregation's
/// per-document counts, so a deep page reads only the documents it returns rows from.
pub(crate) async fn records(
    State(state): State<AppState>,
    Query(q): Query<RecordsQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT).min(MAX_LIMIT);
    let offset = q.offset.unwrap_or(0);
    let kind = match q.kind.as_deref().map(str::parse::<RecordKind>).transpose() {
        Ok(kind) => kind,
        Err(e) => return error(StatusCode::BAD_REQUEST, &e.to_string()),
    };
    // Which documents to read, with how many matching rows each holds (when known without
    // reading it).
    let plan_building = |h: &str| {
        state
            .office
            .with_aggregator(|agg| agg.plan().household(h).map(|h| h.building.clone()))
    };
    let building = match (&q.building, &q.household) {
        (_, Some(h)) => match plan_building(h) {
            Some(b) if q.building.as_ref().is_none_or(|x| *x == b) => Some(b),
            Some(_) => return Json(page_json(0, offset, limit, Vec::new())).into_response(),
            None => return error(StatusCode::NOT_FOUND, "no such household"),
        },
        (Some(b), None) => Some(b.clone()),
        (None, None) => None,
    };
    let docs: Vec<(DocPath, usize)> = state.office.with_aggregator(|agg| {
        agg.buildings()
            .values()
            .filter(|b| building.as_ref().is_none_or(|x| *x == b.building))
            .filter_map(|b| {
                let path = DocPath::parse(b.document.as_deref()?).ok()?;
                Some((path, count_of(&b.totals.records, kind)))
            })
            .collect::<BTreeMap<_, _>>()
            .into_iter()
            .collect()
    });
    if let Some(h) = q.household.as_deref() {
        // One building: read it and filter exactly.
        let rows: Vec<ExportRow> = docs
            .iter()
            .flat_map(|(path, _)| matching_rows(&state, path, kind, Some(h)))
            .collect();
        let total = rows.len();
        let page = rows.into_iter().skip(offset).take(limit).collect();
        return Json(page_json(total, offset, limit, page)).into_response();
    }
    let total: usize = docs.iter().map(|(_, n)| n).sum();
    let mut skip = offset;
    let mut page = Vec::new();
    for (path, count) in &docs {
        if page.len() >= limit {
            break;
        }
        if skip >= *count {
            skip -= count;
            continue;
        }
        let rows = matching_rows(&state, path, kind, None);
        page.extend(rows.into_iter().skip(skip).take(limit - page.len()));
        skip = 0;
    }
    Json(page_json(total, offset, limit, page)).into_response()
}

fn page_json(total: usize, offset: usize, limit: usize, rows: Vec<ExportRow>) -> serde_json::Value {
    json!({ "total": total, "offset": offset, "limit": limit, "records": rows })
}
