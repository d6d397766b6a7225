//! Writing records into a building document, each validated and each in its own change.
//!
//! A write creates exactly one new map object, under the record's fresh id, in one of the
//! top-level maps that genesis made. No write ever creates any other object, so two devices
//! can never create the "same" object concurrently.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{Automerge, AutomergeError, ChangeHash, ObjId, ObjType, ReadDoc};

use crate::check::{self, FieldProblem};
use crate::codec;
use crate::plan::StreetPlan;
use crate::read::top_map;
use crate::records::{
    Correction, CorrectionAction, DeliveryEvent, RecordId, SweepResult, Visit, map_for,
};
use crate::vocab::RecordKind;

/// What a write is checked against: the plan, the building this document is for, and the
/// caller's clock.
#[derive(Debug, Clone, Copy)]
pub struct WriteContext<'a> {
    /// The street plan, for household and unit membership.
    pub plan: &'a StreetPlan,
    /// The building id of the document being written.
    pub building: &'a str,
    /// The caller's current time, unix milliseconds; also the change's timestamp.
    pub now_ms: i64,
}

/// Why a record was not written; the document is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Field(#[from] FieldProblem),
    #[error("record id {0} is already used in this document")]
    DuplicateId(RecordId),
    #[error("building {0:?} is not in the street plan")]
    UnknownBuilding(String),
    #[error("household {0:?} is not in the street plan")]
    UnknownHousehold(String),
    #[error("household {household:?} is in building {actual:?}, not in {building:?}")]
    HouseholdInOtherBuilding {
        household: String,
        building: String,
        actual: String,
    },
    #[error("unit {unit:?} is not a unit of building {building:?}")]
    UnknownUnit { unit: String, building: String },
    #[error("no {kind} record {id} to correct in this document")]
    UnknownRecord { kind: RecordKind, id: RecordId },
    #[error("a correction cannot target a correction; correct the original record")]
    CorrectionOfCorrection,
    #[error("only visits can be replaced; retract the {0} record and write a new one")]
    ReplacementNotAllowed(RecordKind),
    #[error("a replacement visit must carry the id of the visit it replaces")]
    ReplacementIdMismatch,
    #[error("document has no top-level map {0:?}; is it a building document?")]
    NotABuildingDocument(&'static str),
    #[error("the write produced no change")]
    EmptyChange,
    #[error("automerge refused the write: {0}")]
    Automerge(#[from] AutomergeError),
}

fn household_here(ctx: &WriteContext<'_>, household: &str) -> Result<(), RecordError> {
    let h = ctx
        .plan
        .household(household)
        .ok_or_else(|| RecordError::UnknownHousehold(household.to_owned()))?;
    if h.building != ctx.building {
        return Err(RecordError::HouseholdInOtherBuilding {
            household: household.to_owned(),
            building: ctx.building.to_owned(),
            actual: h.building.clone(),
        });
    }
    Ok(())
}

fn record_map(doc: &Automerge, kind: RecordKind) -> Result<ObjId, RecordError> {
    top_map(doc, map_for(kind)).ok_or(RecordError::NotABuildingDocument(map_for(kind)))
}

fn record_exists(doc: &Automerge, kind: RecordKind, id: &RecordId) -> bool {
    top_map(doc, map_for(kind)).is_some_and(|map| matches!(doc.get(&map, id.as_str()), Ok(Some(_))))
}

/// Checks the id is unused in every record map, then writes the record in one change. An
/// `urgent` change (a visit reporting special needs) is marked with
/// [`gridsync_proto::URGENT_CHANGE`] as its commit message, so that the sync engine moves its
/// document first on a short contact, on every hop.
fn insert(
    doc: &mut Automerge,
    ctx: &WriteContext<'_>,
    kind: RecordKind,
    id: &RecordId,
    urgent: bool,
    write: impl FnOnce(
        &mut automerge::transaction::Transaction<'_>,
        &ObjId,
    ) -> Result<(), AutomergeError>,
) -> Result<ChangeHash, RecordError> {
    let map = record_map(doc, kind)?;
    if RecordKind::ALL.iter().any(|k| record_exists(doc, *k, id)) {
        return Err(RecordError::DuplicateId(id.clone()));
    }
    let result = doc.transact_with(
        |_| {
            let options = CommitOptions::default().with_time(ctx.now_ms);
            if urgent {
                options.with_message(gridsync_proto::URGENT_CHANGE.to_owned())
            } else {
                options
            }
        },
        |tx| {
            let obj = tx.put_object(&map, id.as_str(), ObjType::Map)?;
            write(tx, &obj)
        },
    );
    match result {
        Ok(success) => success.hash.ok_or(RecordError::EmptyChange),
        Err(failure) => Err(failure.error.into()),
    }
}

fn check_visit(ctx: &WriteContext<'_>, v: &Visit) -> Result<(), RecordError> {
    codec::visit_shape(v)?;
    check::time_now(v.at_ms, ctx.now_ms)?;
    household_here(ctx, &v.household)
}

fn check_building(ctx: &WriteContext<'_>) -> Result<(), RecordError> {
    ctx.plan
        .building(ctx.building)
        .map(|_| ())
        .ok_or_else(|| RecordError::UnknownBuilding(ctx.building.to_owned()))
}

/// Records a household visit.
pub fn record_visit(
    doc: &mut Automerge,
    ctx: &WriteContext<'_>,
    visit: &Visit,
) -> Result<ChangeHash, RecordError> {
    check_building(ctx)?;
    check_visit(ctx, visit)?;
    let urgent = !visit.needs.is_empty();
    insert(doc, ctx, RecordKind::Visit, &visit.id, urgent, |tx, obj| {
        codec::put_visit(tx, obj, visit)
    })
}

/// Records one delivery status event (an append-only event, see the delivery merge rule).
pub fn record_delivery(
    doc: &mut Automerge,
    ctx: &WriteContext<'_>,
    event: &DeliveryEvent,
) -> Result<ChangeHash, RecordError> {
    check_building(ctx)?;
    codec::delivery_shape(event)?;
    check::time_now(event.at_ms, ctx.now_ms)?;
    household_here(ctx, &event.household)?;
    insert(
        doc,
        ctx,
        RecordKind::Delivery,
        &event.id,
        false,
        |tx, obj| codec::put_delivery(tx, obj, event),
    )
}

/// Records the result of one sweep round through this building.
pub fn record_sweep(
    doc: &mut Automerge,
    ctx: &WriteContext<'_>,
    sweep: &SweepResult,
) -> Result<ChangeHash, RecordError> {
    check_building(ctx)?;
    codec::sweep_shape(sweep)?;
    check::time_now(sweep.at_ms, ctx.now_ms)?;
    if let Some(building) = ctx.plan.building(ctx.building)
        && let Some(unit) = sweep
            .units_covered
            .iter()
            .find(|u| !building.units.contains(*u))
    {
        return Err(RecordError::UnknownUnit {
            unit: unit.clone(),
            building: ctx.building.to_owned(),
        });
    }
    insert(doc, ctx, RecordKind::Sweep, &sweep.id, false, |tx, obj| {
        codec::put_sweep(tx, obj, sweep)
    })
}

/// Records a correction of an earlier record of this document; the original stays readable.
pub fn record_correction(
    doc: &mut Automerge,
    ctx: &WriteContext<'_>,
    correction: &Correction,
) -> Result<ChangeHash, RecordError> {
    check_building(ctx)?;
    codec::correction_shape(correction)?;
    check::time_now(correction.at_ms, ctx.now_ms)?;
    if correction.target_kind == RecordKind::Correction {
        return Err(RecordError::CorrectionOfCorrection);
    }
    if !record_exists(doc, correction.target_kind, &correction.target) {
        if record_exists(doc, RecordKind::Correction, &correction.target) {
            return Err(RecordError::CorrectionOfCorrection);
        }
        return Err(RecordError::UnknownRecord {
            kind: correction.target_kind,
            id: correction.target.clone(),
        });
    }
    if let CorrectionAction::ReplaceVisit(v) = &correction.action {
        if correction.target_kind != RecordKind::Visit {
            return Err(RecordError::ReplacementNotAllowed(correction.target_kind));
        }
        if v.id != correction.target {
            return Err(RecordError::ReplacementIdMismatch);
        }
        check_visit(ctx, v)?;
    }
    let urgent =
        matches!(&correction.action, CorrectionAction::ReplaceVisit(v) if !v.needs.is_empty());
    insert(
        doc,
        ctx,
        RecordKind::Correction,
        &correction.id,
        urgent,
        |tx, obj| codec::put_correction(tx, obj, correction),
    )
}
