//! Field writes: what `visit add`, `deliver`, `sweep record`, `correct` and `plan import` do
//! to a replica. The CLI applies them directly when no node runs, and a running node applies
//! the same values received on its control socket, so both paths validate identically.
//!
//! Requests carry plain strings (they come from flags or JSON); `apply` parses them into the
//! field model's types, mints the record id, finds the building document from the street
//! plan, and writes through [`Replica::write`]. Without a store writer (the CLI with no node
//! running) the change is durable when `apply` returns Ok; on a running node the write is
//! staged with the store writer and durable once its ticket settles
//! ([`Replica::last_write_ticket`]): `NodeShared::write` waits for that before it answers.

use std::collections::{BTreeMap, BTreeSet};

use gridsync_model::{
    Correction, CorrectionAction, DeliveryEvent, DeliveryItem, DeliveryStatus, DocKind, NeedKind,
    RecordId, RecordKind, SpecialNeed, StreetPlan, SweepResult, Visit, VisitOutcome, WriteContext,
};
use gridsync_proto::DocPath;
use serde::{Deserialize, Serialize};

use crate::replica::{Replica, ReplicaError};

/// One field write, as it travels from the CLI (flags) or over the control socket (JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FieldWrite {
    /// Import (or re-import) the street plan from CSV text.
    PlanImport { csv: String },
    /// Set the street's time zone in its plan (`+08:00`, `-05:30`, `+8`).
    PlanTimeZone { utc_offset: String },
    Visit {
        household: String,
        outcome: String,
        people: u16,
        flags: Vec<String>,
        /// `need` or `need:detail`.
        needs: Vec<String>,
        note: Option<String>,
        /// Defaults to the node id.
        volunteer: Option<String>,
        /// Defaults to now.
        at_ms: Option<i64>,
    },
    Delivery {
        household: String,
        item: String,
        status: String,
        note: Option<String>,
    },
    Sweep {
        building: String,
        round: u32,
        units: Vec<String>,
        reached: u32,
        not_home: u32,
        refused: u32,
        issues: Vec<String>,
    },
    Correction {
        building: String,
        record: String,
        reason: String,
        /// A replacement outcome for a visit; `None` retracts the record.
        outcome: Option<String>,
    },
    /// Add a CA-signed revocation to the street's revocation document (office).
    Revocation {
        revocation: gridsync_net::SignedRevocation,
    },
}

/// What a successful write reports back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteReceipt {
    /// The document written.
    pub document: DocPath,
    /// The new record's id (absent for a plan import).
    pub record_id: Option<String>,
    /// One human-readable sentence.
    pub message: String,
}

/// Why a field write was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(
        "no street plan on this device yet: import one with `gridsync plan import FILE.csv` (or sync with the office)"
    )]
    NoPlan,
    #[error("{0}")]
    BadValue(String),
    #[error(transparent)]
    Record(#[from] gridsync_model::RecordError),
    #[error(transparent)]
    PlanImport(#[from] gridsync_model::PlanImportError),
    #[error("cannot apply the plan: {0}")]
    PlanApply(#[from] gridsync_model::plan::PlanApplyError),
    #[error("household {0:?} is not in the street plan")]
    UnknownHousehold(String),
    #[error("building {0:?} is not in the street plan")]
    UnknownBuilding(String),
    #[error("no record {record} in building {building}")]
    UnknownRecord { record: String, building: String },
    #[error("only visits can be given a replacement outcome; omit --outcome to retract the record")]
    ReplaceNotVisit,
}

fn parse<T: std::str::FromStr>(what: &str, value: &str) -> Result<T, WriteError>
where
    T::Err: std::fmt::Display,
{
    value
        .parse::<T>()
        .map_err(|e| WriteError::BadValue(format!("{what} {value:?}: {e}")))
}

impl FieldWrite {
    /// A visit to `household` with `outcome` (`contacted`, `not-home`, ...), one person
    /// seen, no flag, need or note, by this device at its own clock: the plain record most
    /// tests, examples and benchmarks write.
    pub fn visit(household: impl Into<String>, outcome: impl Into<String>) -> FieldWrite {
        FieldWrite::Visit {
            household: household.into(),
            outcome: outcome.into(),
            people: 1,
            flags: Vec::new(),
            needs: Vec::new(),
            note: None,
            volunteer: None,
            at_ms: None,
        }
    }

    /// [`FieldWrite::apply`] at the replica's own clock (the system's, but for a simulation).
    pub fn apply_now(self, replica: &mut Replica) -> Result<WriteReceipt, WriteError> {
        let now_ms = replica.clock().unix_ms();
        self.apply(replica, now_ms)
    }

    /// Validates and applies the write. Durable when it returns Ok only without a store
    /// writer; with one, wait on [`Replica::last_write_ticket`] (as `NodeShared::write` does).
    pub fn apply(self, replica: &mut Replica, now_ms: u64) -> Result<WriteReceipt, WriteError> {
        let now = now_ms as i64;
        let by = replica.node_id().to_string();
        match self {
            FieldWrite::Revocation { revocation } => {
                let path = crate::revocations::revocations_path(replica.street())
                    .map_err(|e| WriteError::BadValue(e.to_string()))?;
                let node = revocation.node_id.clone();
                replica.write_with_genesis(&path, crate::revocations::genesis, |doc| {
                    crate::revocations::add(doc, &revocation, now)
                })?;
                Ok(WriteReceipt {
                    message: format!(
                        "revoked {node}; the revocation travels to every node with {path}"
                    ),
                    document: path,
                    record_id: None,
                })
            }
            FieldWrite::PlanImport { csv } => {
                let import = gridsync_model::parse_csv(csv.as_bytes())?;
                let path = plan_doc_path(replica)?;
                let households = import.households.len();
                let changed = replica.write(&path, DocKind::StreetPlan, |doc| {
                    gridsync_model::apply_import(doc, &import, now)
                })?;
                let message = match changed {
                    Some(_) => format!("imported {households} households into {path}"),
                    None => format!("plan unchanged: all {households} households already present"),
                };
                Ok(WriteReceipt {
                    document: path,
                    record_id: None,
                    message,
                })
            }
            FieldWrite::PlanTimeZone { utc_offset } => {
                let minutes = gridsync_model::parse_utc_offset(&utc_offset)
                    .map_err(|e| WriteError::BadValue(e.to_string()))?;
                let path = plan_doc_path(replica)?;
                let changed = replica.write(&path, DocKind::StreetPlan, |doc| {
                    gridsync_model::set_utc_offset(doc, minutes, now)
                })?;
                let zone = gridsync_model::format_utc_offset(minutes);
                let message = match changed {
                    Some(_) => format!(
                        "the street's time zone is now UTC{zone}: rounds start at its midnight, on every device the plan reaches"
                    ),
                    None => format!("the street's time zone already is UTC{zone}"),
                };
                Ok(WriteReceipt {
                    document: path,
                    record_id: None,
                    message,
                })
            }
            FieldWrite::Visit {
                household,
                outcome,
                people,
                flags,
                needs,
                note,
                volunteer,
                at_ms,
            } => {
                let outcome: VisitOutcome = parse("outcome", &outcome)?;
                let flags = flags
                    .iter()
                    .map(|f| parse::<SpecialNeed>("flag", f))
                    .collect::<Result<BTreeSet<_>, _>>()?;
                let mut need_map = BTreeMap::new();
                for need in &needs {
                    let (kind, detail) = need.split_once(':').unwrap_or((need.as_str(), ""));
                    need_map.insert(parse::<NeedKind>("need", kind)?, detail.to_owned());
                }
                let visit = Visit {
                    id: RecordId::from(replica.mint_record_ulid(now_ms)),
                    household: household.clone(),
                    volunteer: volunteer.unwrap_or_else(|| by.clone()),
                    at_ms: at_ms.unwrap_or(now),
                    outcome,
                    people_seen: people,
                    flags,
                    needs: need_map,
                    note: note.unwrap_or_default(),
                };
                let at = locate_household(replica, &household)?;
                let path = at.path.clone();
                at.write(replica, now, &visit, gridsync_model::record_visit)?;
                Ok(WriteReceipt {
                    message: format!("saved visit {} to household {household} ({path})", visit.id),
                    document: path,
                    record_id: Some(visit.id.to_string()),
                })
            }
            FieldWrite::Delivery {
                household,
                item,
                status,
                note,
            } => {
                let item: DeliveryItem = parse("item", &item)?;
                let status: DeliveryStatus = parse("status", &status)?;
                let at = locate_household(replica, &household)?;
                let path = at.path.clone();
                // The attempt number counts earlier failed attempts at this item, so a retry
                // after a failure is visibly attempt 2.
                let failed_before = match replica.doc(&path)? {
                    Some(doc) => gridsync_model::read::iter_deliveries(doc)
                        .filter_map(Result::ok)
                        .filter(|e| {
                            e.household == household
                                && e.item == item
                                && e.status == DeliveryStatus::Failed
                        })
                        .count() as u32,
                    None => 0,
                };
                let event = DeliveryEvent {
                    id: RecordId::from(replica.mint_record_ulid(now_ms)),
                    household: household.clone(),
                    item,
                    status,
                    attempt: failed_before + 1,
                    detail: note.unwrap_or_default(),
                    by,
                    at_ms: now,
                };
                at.write(replica, now, &event, gridsync_model::record_delivery)?;
                Ok(WriteReceipt {
                    // The id is in the sentence so that a wrong entry can be corrected
                    // (`gridsync correct --record ID`) without re-reading it in JSON.
                    message: format!(
                        "saved delivery {}: {} for household {household} is {} (attempt {})",
                        event.id,
                        item.as_str(),
                        status.as_str(),
                        event.attempt
                    ),
                    document: path,
                    record_id: Some(event.id.to_string()),
                })
            }
            FieldWrite::Sweep {
                building,
                round,
                units,
                reached,
                not_home,
                refused,
                issues,
            } => {
                let at = locate_building_record(replica, &building)?;
                let path = at.path.clone();
                let sweep = SweepResult {
                    id: RecordId::from(replica.mint_record_ulid(now_ms)),
                    round,
                    units_covered: units.into_iter().collect(),
                    reached,
                    not_home,
                    refused,
                    issues,
                    by,
                    at_ms: now,
                };
                at.write(replica, now, &sweep, gridsync_model::record_sweep)?;
                Ok(WriteReceipt {
                    message: format!(
                        "saved sweep {}: round {round} of building {building}",
                        sweep.id
                    ),
                    document: path,
                    record_id: Some(sweep.id.to_string()),
                })
            }
            FieldWrite::Correction {
                building,
                record,
                reason,
                outcome,
            } => {
                let at = locate_building_record(replica, &building)?;
                let path = at.path.clone();
                let target = RecordId::parse(&record)
                    .map_err(|e| WriteError::BadValue(format!("record {record:?}: {e}")))?;
                let unknown = || WriteError::UnknownRecord {
                    record: record.clone(),
                    building: building.clone(),
                };
                let doc = replica.doc(&path)?.ok_or_else(unknown)?;
                let target_kind = find_record_kind(doc, &target).ok_or_else(unknown)?;
                let action = match outcome {
                    None => CorrectionAction::Retract,
                    Some(outcome) => {
                        if target_kind != RecordKind::Visit {
                            return Err(WriteError::ReplaceNotVisit);
                        }
                        let outcome: VisitOutcome = parse("outcome", &outcome)?;
                        let original = gridsync_model::read::iter_visits(doc)
                            .filter_map(Result::ok)
                            .find(|v| v.id == target)
                            .ok_or_else(unknown)?;
                        CorrectionAction::ReplaceVisit(Box::new(Visit {
                            outcome,
                            ..original
                        }))
                    }
                };
                let correction = Correction {
                    id: RecordId::from(replica.mint_record_ulid(now_ms)),
                    target,
                    target_kind,
                    action,
                    reason,
                    by,
                    at_ms: now,
                };
                at.write(replica, now, &correction, gridsync_model::record_correction)?;
                Ok(WriteReceipt {
                    message: format!("saved correction {} of {record}", correction.id),
                    document: path,
                    record_id: Some(correction.id.to_string()),
                })
            }
        }
    }
}

/// Where a record goes: the street plan it is checked against, and its building's document.
struct Location {
    plan: std::sync::Arc<StreetPlan>,
    path: DocPath,
    building: String,
}

impl Location {
    /// Writes `record` into the building's document with the model's `write` (which checks
    /// it against the plan), at `now_ms`.
    fn write<T>(
        &self,
        replica: &mut Replica,
        now_ms: i64,
        record: &T,
        write: fn(
            &mut automerge::Automerge,
            &WriteContext<'_>,
            &T,
        ) -> Result<automerge::ChangeHash, gridsync_model::RecordError>,
    ) -> Result<(), WriteError> {
        let ctx = WriteContext {
            plan: &self.plan,
            building: &self.building,
            now_ms,
        };
        replica.write(&self.path, DocKind::Building, |doc| {
            write(doc, &ctx, record)
        })?;
        Ok(())
    }
}

/// Which kind of record `id` is in this document, if any (corrections are not searched:
/// a correction cannot be corrected).
fn find_record_kind(doc: &automerge::Automerge, id: &RecordId) -> Option<RecordKind> {
    use gridsync_model::read::{iter_deliveries, iter_sweeps, iter_visits};
    if iter_visits(doc).filter_map(Result::ok).any(|r| &r.id == id) {
        Some(RecordKind::Visit)
    } else if iter_deliveries(doc)
        .filter_map(Result::ok)
        .any(|r| &r.id == id)
    {
        Some(RecordKind::Delivery)
    } else if iter_sweeps(doc).filter_map(Result::ok).any(|r| &r.id == id) {
        Some(RecordKind::Sweep)
    } else {
        None
    }
}

/// The street plan document's path for this replica's street.
pub fn plan_doc_path(replica: &Replica) -> Result<DocPath, WriteError> {
    gridsync_model::plan_path(replica.street()).map_err(|e| WriteError::BadValue(e.to_string()))
}

/// The street plan this replica holds.
pub fn street_plan(replica: &mut Replica) -> Result<std::sync::Arc<StreetPlan>, WriteError> {
    replica.street_plan()?.ok_or(WriteError::NoPlan)
}

/// Plan, building document path and building id of a household.
fn locate_household(replica: &mut Replica, household: &str) -> Result<Location, WriteError> {
    let plan = street_plan(replica)?;
    let h = plan
        .household(household)
        .ok_or_else(|| WriteError::UnknownHousehold(household.to_owned()))?;
    let building = h.building.clone();
    let path = gridsync_model::building_path(replica.street(), &h.grid, &building)
        .map_err(|e| WriteError::BadValue(e.to_string()))?;
    Ok(Location {
        plan,
        path,
        building,
    })
}

/// Where records of `building` go.
fn locate_building_record(replica: &mut Replica, building: &str) -> Result<Location, WriteError> {
    let (plan, path) = locate_building(replica, building)?;
    Ok(Location {
        plan,
        path,
        building: building.to_owned(),
    })
}

/// Plan and document path of a building.
pub fn locate_building(
    replica: &mut Replica,
    building: &str,
) -> Result<(std::sync::Arc<StreetPlan>, DocPath), WriteError> {
    let plan = street_plan(replica)?;
    let b = plan
        .building(building)
        .ok_or_else(|| WriteError::UnknownBuilding(building.to_owned()))?;
    let path = gridsync_model::building_path(replica.street(), &b.grid, building)
        .map_err(|e| WriteError::BadValue(e.to_string()))?;
    Ok((plan, path))
}
