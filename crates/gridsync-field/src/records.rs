//! One building document's records as the app lists them: every record with its sync marker
//! and whether a correction changed or retracted it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use automerge::{Automerge, ChangeHash};
use gridsync_model::{
    BuildingRecords, Correction, CorrectionAction, DeliveryEvent, RecordId, RecordKind,
    SweepResult, Visit,
};
use gridsync_proto::DocPath;
use serde_json::{Value, json};

use crate::sync_marks::{DocMarks, SyncLevel};

/// One record, ready to show.
#[derive(Debug, Clone)]
pub struct RecordRow {
    pub id: RecordId,
    pub kind: RecordKind,
    pub household: Option<String>,
    /// Who recorded it (node id).
    pub by: String,
    pub at_ms: i64,
    pub sync: SyncLevel,
    pub json: Value,
}

/// The rows of each building document last listed, kept while neither the document's heads
/// nor what peers acknowledged of it change: after a save only the document written is read
/// again, so listing a volunteer's week of records stays cheap.
#[derive(Debug, Default)]
pub struct RowCache {
    by_document: Mutex<HashMap<DocPath, CachedRows>>,
}

/// Most documents whose rows are kept: a volunteer's or captain's scope fits many times
/// over; a device with a whole street in scope (the office) starts again past it rather than
/// holding every document's rows.
const MAX_CACHED_DOCUMENTS: usize = 512;

#[derive(Debug)]
struct CachedRows {
    heads: Vec<ChangeHash>,
    marks: DocMarks,
    rows: Arc<Vec<RecordRow>>,
}

impl RowCache {
    /// The rows listed for `path` at `heads` with `marks`, if nothing changed since.
    pub fn get(
        &self,
        path: &DocPath,
        heads: &[ChangeHash],
        marks: &DocMarks,
    ) -> Option<Arc<Vec<RecordRow>>> {
        let cache = self.by_document.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .get(path)
            .filter(|cached| cached.heads == heads && cached.marks == *marks)
            .map(|cached| cached.rows.clone())
    }

    /// Keeps `rows`, read from `path` at `heads` with `marks`.
    pub fn put(
        &self,
        path: &DocPath,
        heads: Vec<ChangeHash>,
        marks: DocMarks,
        rows: Vec<RecordRow>,
    ) -> Arc<Vec<RecordRow>> {
        let rows = Arc::new(rows);
        let cached = CachedRows {
            heads,
            marks,
            rows: rows.clone(),
        };
        let mut cache = self.by_document.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED_DOCUMENTS && !cache.contains_key(path) {
            cache.clear();
        }
        cache.insert(path.clone(), cached);
        rows
    }
}

/// Every record of a building document, newest first.
pub fn rows_of(doc: &Automerge, building: &str, marks: &DocMarks) -> Vec<RecordRow> {
    let records = BuildingRecords::read(doc);
    let mut rows = Vec::new();
    let visit_fixes = records.effective_corrections(RecordKind::Visit);
    for visit in &records.visits {
        let fix = visit_fixes.get(&visit.id).copied();
        rows.push(visit_row(doc, building, marks, visit, fix));
    }
    let delivery_fixes = records.effective_corrections(RecordKind::Delivery);
    for event in &records.deliveries {
        let retracted = delivery_fixes.contains_key(&event.id);
        rows.push(delivery_row(doc, building, marks, event, retracted));
    }
    let sweep_fixes = records.effective_corrections(RecordKind::Sweep);
    for sweep in &records.sweeps {
        let retracted = sweep_fixes.contains_key(&sweep.id);
        rows.push(sweep_row(doc, building, marks, sweep, retracted));
    }
    for correction in &records.corrections {
        rows.push(correction_row(doc, building, marks, correction));
    }
    rows.sort_by(|a, b| (b.at_ms, &b.id).cmp(&(a.at_ms, &a.id)));
    rows
}

fn base(
    kind: RecordKind,
    id: &RecordId,
    building: &str,
    household: Option<&str>,
    by: &str,
    at_ms: i64,
    sync: SyncLevel,
) -> Value {
    json!({
        "id": id.as_str(),
        "kind": kind.as_str(),
        "building": building,
        "household": household,
        "by": by,
        "at_ms": at_ms,
        "sync": sync,
        "corrected": false,
        "retracted": false,
    })
}

fn extend(value: &mut Value, fields: Value) {
    if let (Some(target), Value::Object(fields)) = (value.as_object_mut(), fields) {
        target.extend(fields);
    }
}

fn visit_fields(visit: &Visit) -> Value {
    json!({
        "outcome": visit.outcome.as_str(),
        "people_seen": visit.people_seen,
        "flags": visit.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
        "needs": visit.needs.iter().map(|(k, d)| json!({"need": k.as_str(), "detail": d})).collect::<Vec<_>>(),
        "note": visit.note,
    })
}

fn visit_row(
    doc: &Automerge,
    building: &str,
    marks: &DocMarks,
    visit: &Visit,
    fix: Option<&Correction>,
) -> RecordRow {
    let sync = marks.level(doc, RecordKind::Visit, &visit.id);
    let mut json = base(
        RecordKind::Visit,
        &visit.id,
        building,
        Some(&visit.household),
        &visit.volunteer,
        visit.at_ms,
        sync,
    );
    match fix.map(|c| &c.action) {
        None => extend(&mut json, visit_fields(visit)),
        Some(CorrectionAction::Retract) => {
            extend(&mut json, visit_fields(visit));
            extend(&mut json, json!({"retracted": true}));
        }
        // What the visit says now, with the original outcome kept beside it.
        Some(CorrectionAction::ReplaceVisit(new)) => {
            extend(&mut json, visit_fields(new));
            extend(
                &mut json,
                json!({"corrected": true, "original_outcome": visit.outcome.as_str()}),
            );
        }
    }
    RecordRow {
        id: visit.id.clone(),
        kind: RecordKind::Visit,
        household: Some(visit.household.clone()),
        by: visit.volunteer.clone(),
        at_ms: visit.at_ms,
        sync,
        json,
    }
}

fn delivery_row(
    doc: &Automerge,
    building: &str,
    marks: &DocMarks,
    event: &DeliveryEvent,
    retracted: bool,
) -> RecordRow {
    let sync = marks.level(doc, RecordKind::Delivery, &event.id);
    let mut json = base(
        RecordKind::Delivery,
        &event.id,
        building,
        Some(&event.household),
        &event.by,
        event.at_ms,
        sync,
    );
    extend(
        &mut json,
        json!({
            "item": event.item.as_str(),
            "status": event.status.as_str(),
            "attempt": event.attempt,
            "detail": event.detail,
            "retracted": retracted,
        }),
    );
    RecordRow {
        id: event.id.clone(),
        kind: RecordKind::Delivery,
        household: Some(event.household.clone()),
        by: event.by.clone(),
        at_ms: event.at_ms,
        sync,
        json,
    }
}

fn sweep_row(
    doc: &Automerge,
    building: &str,
    marks: &DocMarks,
    sweep: &SweepResult,
    retracted: bool,
) -> RecordRow {
    let sync = marks.level(doc, RecordKind::Sweep, &sweep.id);
    let mut json = base(
        RecordKind::Sweep,
        &sweep.id,
        building,
        None,
        &sweep.by,
        sweep.at_ms,
        sync,
    );
    extend(
        &mut json,
        json!({
            "round": sweep.round,
            "units": sweep.units_covered,
            "reached": sweep.reached,
            "not_home": sweep.not_home,
            "refused": sweep.refused,
            "issues": sweep.issues,
            "retracted": retracted,
        }),
    );
    RecordRow {
        id: sweep.id.clone(),
        kind: RecordKind::Sweep,
        household: None,
        by: sweep.by.clone(),
        at_ms: sweep.at_ms,
        sync,
        json,
    }
}

fn correction_row(
    doc: &Automerge,
    building: &str,
    marks: &DocMarks,
    correction: &Correction,
) -> RecordRow {
    let sync = marks.level(doc, RecordKind::Correction, &correction.id);
    let mut json = base(
        RecordKind::Correction,
        &correction.id,
        building,
        None,
        &correction.by,
        correction.at_ms,
        sync,
    );
    let (action, outcome) = match &correction.action {
        CorrectionAction::Retract => ("retract", None),
        CorrectionAction::ReplaceVisit(v) => ("replace", Some(v.outcome.as_str())),
    };
    extend(
        &mut json,
        json!({
            "target": correction.target.as_str(),
            "target_kind": correction.target_kind.as_str(),
            "action": action,
            "outcome": outcome,
            "reason": correction.reason,
        }),
    );
    RecordRow {
        id: correction.id.clone(),
        kind: RecordKind::Correction,
        household: None,
        by: correction.by.clone(),
        at_ms: correction.at_ms,
        sync,
        json,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cached_rows_are_reused_only_while_heads_and_acknowledgements_hold() {
        let cache = RowCache::default();
        let path = DocPath::parse("panhuo/grid-001/b-1").expect("path");
        let heads = vec![ChangeHash([1; 32])];
        let marks = DocMarks::default();
        assert!(cache.get(&path, &heads, &marks).is_none());
        cache.put(&path, heads.clone(), marks.clone(), Vec::new());
        assert!(cache.get(&path, &heads, &marks).is_some());
        assert!(
            cache.get(&path, &[ChangeHash([2; 32])], &marks).is_none(),
            "a new change in the document"
        );
        let other = DocPath::parse("panhuo/grid-001/b-2").expect("path");
        assert!(cache.get(&other, &heads, &marks).is_none());
    }
}
