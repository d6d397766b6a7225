//! Flat rows for CSV/JSON export, streamed one document at a time.
//!
//! Rows are the records as written (the audit trail): corrections are rows of their own that
//! name their target, so nothing is hidden. An exporter walks documents one by one and writes
//! each row as it comes, so memory stays flat however many documents there are.

use automerge::{ObjId, ReadDoc};
use gridsync_proto::DocPath;
use serde::Serialize;

use crate::clock::FirstSight;
use crate::codec;
use crate::read::iter_kind_objects;
use crate::records::{
    Correction, CorrectionAction, DeliveryEvent, MalformedRecord, SweepResult, Visit,
};
use crate::vocab::RecordKind;

/// One record as a flat row; fields that do not apply to the record's kind are `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct ExportRow {
    /// Path of the building document.
    pub document: String,
    /// `visit`, `delivery`, `sweep` or `correction`.
    pub kind: String,
    /// The record id.
    pub id: String,
    /// Who wrote it (volunteer for visits).
    pub by: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
    /// Household (visits, deliveries, replacement visits).
    pub household: Option<String>,
    /// Visit outcome or delivery status.
    pub status: Option<String>,
    /// Delivery item.
    pub item: Option<String>,
    /// Delivery attempt number.
    pub attempt: Option<u32>,
    /// People seen at a visit.
    pub people_seen: Option<u16>,
    /// Special-needs flags, `;`-separated.
    pub flags: Option<String>,
    /// Needs as `need` or `need:detail`, `;`-separated.
    pub needs: Option<String>,
    /// Visit note, delivery detail or correction reason.
    pub text: Option<String>,
    /// Sweep round.
    pub round: Option<u32>,
    /// Units covered by a sweep, `;`-separated.
    pub units: Option<String>,
    /// Households reached in a sweep.
    pub reached: Option<u32>,
    /// Households not at home in a sweep.
    pub not_home: Option<u32>,
    /// Households refusing in a sweep.
    pub refused: Option<u32>,
    /// Sweep issues, `;`-separated.
    pub issues: Option<String>,
    /// A correction's target id.
    pub target: Option<String>,
    /// A correction's action: `retract` or `replace`.
    pub action: Option<String>,
    /// `clock-ahead` when the record's claimed time (`at_ms`, kept as written) ran ahead of
    /// when the exporting node first saw it (see [`crate::clock`]).
    pub clock: Option<String>,
    /// For a clock-ahead record, when the exporting node first saw it: the time its figures
    /// use.
    pub seen_ms: Option<i64>,
}

impl ExportRow {
    /// The field names in serialization order: the CSV header. Written up front by every
    /// exporter, so an export with no records still names its columns (the csv crate writes
    /// a header only with the first row). A test keeps it equal to the serialized fields.
    pub const COLUMNS: [&'static str; 23] = [
        "document",
        "kind",
        "id",
        "by",
        "at_ms",
        "household",
        "status",
        "item",
        "attempt",
        "people_seen",
        "flags",
        "needs",
        "text",
        "round",
        "units",
        "reached",
        "not_home",
        "refused",
        "issues",
        "target",
        "action",
        "clock",
        "seen_ms",
    ];
}

fn visit_fields(row: &mut ExportRow, v: &Visit) {
    row.household = Some(v.household.clone());
    row.status = Some(v.outcome.as_str().to_owned());
    row.people_seen = Some(v.people_seen);
    row.flags = Some(
        v.flags
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(";"),
    );
    row.needs = Some(
        v.needs
            .iter()
            .map(|(n, d)| {
                if d.is_empty() {
                    n.to_string()
                } else {
                    format!("{n}:{d}")
                }
            })
            .collect::<Vec<_>>()
            .join(";"),
    );
}

fn visit_row(document: &str, v: Visit) -> ExportRow {
    let mut row = ExportRow {
        document: document.to_owned(),
        kind: RecordKind::Visit.as_str().to_owned(),
        id: v.id.to_string(),
        by: v.volunteer.clone(),
        at_ms: v.at_ms,
        ..ExportRow::default()
    };
    visit_fields(&mut row, &v);
    row.text = Some(v.note);
    row
}

fn delivery_row(document: &str, e: DeliveryEvent) -> ExportRow {
    ExportRow {
        document: document.to_owned(),
        kind: RecordKind::Delivery.as_str().to_owned(),
        id: e.id.to_string(),
        by: e.by,
        at_ms: e.at_ms,
        household: Some(e.household),
        status: Some(e.status.as_str().to_owned()),
        item: Some(e.item.as_str().to_owned()),
        attempt: Some(e.attempt),
        text: Some(e.detail),
        ..ExportRow::default()
    }
}

fn sweep_row(document: &str, s: SweepResult) -> ExportRow {
    ExportRow {
        document: document.to_owned(),
        kind: RecordKind::Sweep.as_str().to_owned(),
        id: s.id.to_string(),
        by: s.by,
        at_ms: s.at_ms,
        round: Some(s.round),
        units: Some(s.units_covered.into_iter().collect::<Vec<_>>().join(";")),
        reached: Some(s.reached),
        not_home: Some(s.not_home),
        refused: Some(s.refused),
        issues: Some(s.issues.join(";")),
        ..ExportRow::default()
    }
}

fn correction_row(document: &str, c: Correction) -> ExportRow {
    let mut row = ExportRow {
        document: document.to_owned(),
        kind: RecordKind::Correction.as_str().to_owned(),
        id: c.id.to_string(),
        by: c.by,
        at_ms: c.at_ms,
        text: Some(c.reason),
        target: Some(c.target.to_string()),
        ..ExportRow::default()
    };
    match c.action {
        CorrectionAction::Retract => row.action = Some("retract".to_owned()),
        CorrectionAction::ReplaceVisit(v) => {
            row.action = Some("replace".to_owned());
            visit_fields(&mut row, &v);
        }
    }
    row
}

/// Marks a row whose record ran ahead of its first sight; the claimed time stays in `at_ms`.
fn with_clock(mut row: ExportRow, sight: &FirstSight, object: &ObjId) -> ExportRow {
    if let Some(ahead) = sight.check(object, row.at_ms) {
        row.clock = Some("clock-ahead".to_owned());
        row.seen_ms = Some(ahead.seen_ms);
    }
    row
}

/// Streams every record of one building document as export rows (visits, then deliveries,
/// sweeps and corrections, each in id order), as written, with the clock rule's flag from
/// `sight` ([`FirstSight::trust_claimed`] for none). Malformed records come through as `Err`.
pub fn export_rows<'a, R: ReadDoc>(
    doc: &'a R,
    path: &'a DocPath,
    sight: &'a FirstSight,
) -> impl Iterator<Item = Result<ExportRow, MalformedRecord>> + 'a {
    let p = path.as_str();
    let marked = move |object: ObjId, row: ExportRow| with_clock(row, sight, &object);
    iter_kind_objects(doc, RecordKind::Visit, codec::read_visit::<R>)
        .map(move |r| r.map(|(o, v)| marked(o, visit_row(p, v))))
        .chain(
            iter_kind_objects(doc, RecordKind::Delivery, codec::read_delivery::<R>)
                .map(move |r| r.map(|(o, e)| marked(o, delivery_row(p, e)))),
        )
        .chain(
            iter_kind_objects(doc, RecordKind::Sweep, codec::read_sweep::<R>)
                .map(move |r| r.map(|(o, s)| marked(o, sweep_row(p, s)))),
        )
        .chain(
            iter_kind_objects(doc, RecordKind::Correction, codec::read_correction::<R>)
                .map(move |r| r.map(|(o, c)| marked(o, correction_row(p, c)))),
        )
}

#[cfg(test)]
mod columns_tests {
    use super::ExportRow;

    #[test]
    fn columns_match_the_serialized_fields() {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.serialize(ExportRow::default()).expect("serializes");
        let bytes = writer.into_inner().expect("flushes");
        let text = String::from_utf8(bytes).expect("utf-8");
        let header = text.lines().next().expect("a header line");
        assert_eq!(header, ExportRow::COLUMNS.join(","));
    }
}
