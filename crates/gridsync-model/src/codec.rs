//! Record <-> automerge map encoding, and the shape checks that both directions share.
//!
//! Field names (inside each record's map; a replacement visit inside a correction uses the
//! same names behind the prefix `new.`):
//! - visit: `household`, `volunteer`, `at`, `outcome`, `people_seen`, `flags`
//!   (comma-separated flag names), `need.<need>` (one key per need, value its detail), `note`
//! - delivery event: `household`, `item`, `status`, `attempt`, `detail`, `by`, `at`
//! - sweep result: `round`, `units` (comma-separated unit ids), `reached`, `not_home`,
//!   `refused`, `issue.<nn>` (one key per issue), `by`, `at`
//! - correction: `target`, `target_kind`, `action` (`retract` | `replace`), `reason`, `by`,
//!   `at`, plus `new.*` visit fields when replacing.

use std::collections::{BTreeMap, BTreeSet};

use automerge::transaction::Transactable;
use std::borrow::Cow;

use automerge::{AutomergeError, ObjId, ReadDoc, ScalarValueRef, ValueRef};

use crate::check::{self, FieldProblem};
use crate::records::{
    Correction, CorrectionAction, DeliveryEvent, MAX_BY_CHARS, MAX_ISSUES, MAX_NOTE_CHARS,
    MAX_SHORT_TEXT_CHARS, MAX_UNITS, RecordId, SweepResult, Visit,
};
use crate::vocab::{NeedKind, RecordKind, SpecialNeed};

/// Most keys a record map may have before a reader refuses to look at it.
const MAX_RECORD_KEYS: usize = 96;
const REPLACEMENT_PREFIX: &str = "new.";

// ---- shape checks (everything that does not need the plan or the clock) ----

pub(crate) fn visit_shape(v: &Visit) -> Result<(), FieldProblem> {
    check::segment_id("household", &v.household)?;
    check::short_text("volunteer", &v.volunteer, MAX_BY_CHARS, false)?;
    check::time_floor(v.at_ms)?;
    check::note_text("note", &v.note, MAX_NOTE_CHARS)?;
    for detail in v.needs.values() {
        check::short_text("need detail", detail, MAX_SHORT_TEXT_CHARS, true)?;
    }
    Ok(())
}

pub(crate) fn delivery_shape(e: &DeliveryEvent) -> Result<(), FieldProblem> {
    check::segment_id("household", &e.household)?;
    check::short_text("detail", &e.detail, MAX_SHORT_TEXT_CHARS, true)?;
    check::short_text("by", &e.by, MAX_BY_CHARS, false)?;
    check::time_floor(e.at_ms)
}

pub(crate) fn sweep_shape(s: &SweepResult) -> Result<(), FieldProblem> {
    if s.units_covered.len() > MAX_UNITS {
        return Err(FieldProblem::TooMany {
            field: "units",
            count: s.units_covered.len(),
            max: MAX_UNITS,
        });
    }
    for unit in &s.units_covered {
        check::segment_id("unit", unit)?;
    }
    if s.issues.len() > MAX_ISSUES {
        return Err(FieldProblem::TooMany {
            field: "issues",
            count: s.issues.len(),
            max: MAX_ISSUES,
        });
    }
    for issue in &s.issues {
        check::short_text("issue", issue, MAX_SHORT_TEXT_CHARS, false)?;
    }
    check::short_text("by", &s.by, MAX_BY_CHARS, false)?;
    check::time_floor(s.at_ms)
}

pub(crate) fn correction_shape(c: &Correction) -> Result<(), FieldProblem> {
    check::short_text("reason", &c.reason, MAX_SHORT_TEXT_CHARS, false)?;
    check::short_text("by", &c.by, MAX_BY_CHARS, false)?;
    check::time_floor(c.at_ms)?;
    if let CorrectionAction::ReplaceVisit(v) = &c.action {
        visit_shape(v)?;
    }
    Ok(())
}

// ---- writing ----

fn key(prefix: &str, name: &str) -> String {
    format!("{prefix}{name}")
}

fn put_visit_fields<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    prefix: &str,
    v: &Visit,
) -> Result<(), AutomergeError> {
    tx.put(obj, key(prefix, "household"), v.household.as_str())?;
    tx.put(obj, key(prefix, "volunteer"), v.volunteer.as_str())?;
    tx.put(obj, key(prefix, "at"), v.at_ms)?;
    tx.put(obj, key(prefix, "outcome"), v.outcome.as_str())?;
    tx.put(obj, key(prefix, "people_seen"), u64::from(v.people_seen))?;
    let flags: Vec<&str> = v.flags.iter().map(|f| f.as_str()).collect();
    tx.put(obj, key(prefix, "flags"), flags.join(","))?;
    for (need, detail) in &v.needs {
        tx.put(obj, key(prefix, &format!("need.{need}")), detail.as_str())?;
    }
    tx.put(obj, key(prefix, "note"), v.note.as_str())?;
    Ok(())
}

pub(crate) fn put_visit<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    v: &Visit,
) -> Result<(), AutomergeError> {
    put_visit_fields(tx, obj, "", v)
}

pub(crate) fn put_delivery<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    e: &DeliveryEvent,
) -> Result<(), AutomergeError> {
    tx.put(obj, "household", e.household.as_str())?;
    tx.put(obj, "item", e.item.as_str())?;
    tx.put(obj, "status", e.status.as_str())?;
    tx.put(obj, "attempt", u64::from(e.attempt))?;
    tx.put(obj, "detail", e.detail.as_str())?;
    tx.put(obj, "by", e.by.as_str())?;
    tx.put(obj, "at", e.at_ms)?;
    Ok(())
}

pub(crate) fn put_sweep<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    s: &SweepResult,
) -> Result<(), AutomergeError> {
    tx.put(obj, "round", u64::from(s.round))?;
    let units: Vec<&str> = s.units_covered.iter().map(String::as_str).collect();
    tx.put(obj, "units", units.join(","))?;
    tx.put(obj, "reached", u64::from(s.reached))?;
    tx.put(obj, "not_home", u64::from(s.not_home))?;
    tx.put(obj, "refused", u64::from(s.refused))?;
    for (n, issue) in s.issues.iter().enumerate() {
        tx.put(obj, format!("issue.{n:02}"), issue.as_str())?;
    }
    tx.put(obj, "by", s.by.as_str())?;
    tx.put(obj, "at", s.at_ms)?;
    Ok(())
}

pub(crate) fn put_correction<T: Transactable>(
    tx: &mut T,
    obj: &ObjId,
    c: &Correction,
) -> Result<(), AutomergeError> {
    tx.put(obj, "target", c.target.as_str())?;
    tx.put(obj, "target_kind", c.target_kind.as_str())?;
    match &c.action {
        CorrectionAction::Retract => tx.put(obj, "action", "retract")?,
        CorrectionAction::ReplaceVisit(v) => {
            tx.put(obj, "action", "replace")?;
            put_visit_fields(tx, obj, REPLACEMENT_PREFIX, v)?;
        }
    }
    tx.put(obj, "reason", c.reason.as_str())?;
    tx.put(obj, "by", c.by.as_str())?;
    tx.put(obj, "at", c.at_ms)?;
    Ok(())
}

// ---- reading ----

/// One record's fields, read in one pass over its map. Each `ReadDoc::get` searches the
/// document's op columns from the top, so reading a visit field by field costs ten such
/// searches; one `map_range` over the record's map walks its entries once (the office reads a
/// million records at a first start).
pub(crate) struct Fields<'a> {
    /// The record's keys in order, with their winning values.
    entries: Vec<(Cow<'a, str>, ValueRef<'a>)>,
}

impl<'a> Fields<'a> {
    /// The fields of the record map `obj`; refused when it holds more than
    /// [`MAX_RECORD_KEYS`] keys.
    pub(crate) fn read<R: ReadDoc>(doc: &'a R, obj: &ObjId) -> Result<Fields<'a>, FieldProblem> {
        let mut entries = Vec::new();
        for item in doc.map_range(obj, ..) {
            if entries.len() == MAX_RECORD_KEYS {
                return Err(FieldProblem::TooMany {
                    field: "record keys",
                    count: doc.length(obj),
                    max: MAX_RECORD_KEYS,
                });
            }
            entries.push((item.key, item.value));
        }
        Ok(Fields { entries })
    }

    /// Every key, in order.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    fn scalar(&self, key: &str, field: &'static str) -> Result<&ScalarValueRef<'a>, FieldProblem> {
        match self.entries.binary_search_by(|(k, _)| k.as_ref().cmp(key)) {
            Ok(at) => match &self.entries[at].1 {
                ValueRef::Scalar(s) => Ok(s),
                ValueRef::Object(_) => Err(FieldProblem::WrongType(field)),
            },
            Err(_) => Err(FieldProblem::Missing(field)),
        }
    }

    pub(crate) fn str(&self, key: &str, field: &'static str) -> Result<String, FieldProblem> {
        match self.scalar(key, field)? {
            ScalarValueRef::Str(s) => Ok(s.to_string()),
            _ => Err(FieldProblem::WrongType(field)),
        }
    }

    pub(crate) fn i64(&self, key: &str, field: &'static str) -> Result<i64, FieldProblem> {
        match self.scalar(key, field)? {
            ScalarValueRef::Int(n) | ScalarValueRef::Timestamp(n) => Ok(*n),
            ScalarValueRef::Uint(n) => {
                i64::try_from(*n).map_err(|_| FieldProblem::WrongType(field))
            }
            _ => Err(FieldProblem::WrongType(field)),
        }
    }

    pub(crate) fn u32(&self, key: &str, field: &'static str) -> Result<u32, FieldProblem> {
        let n = match self.scalar(key, field)? {
            ScalarValueRef::Uint(n) => *n,
            ScalarValueRef::Int(n) => {
                u64::try_from(*n).map_err(|_| FieldProblem::WrongType(field))?
            }
            _ => return Err(FieldProblem::WrongType(field)),
        };
        u32::try_from(n).map_err(|_| FieldProblem::WrongType(field))
    }
}

fn read_visit_fields(
    fields: &Fields<'_>,
    id: RecordId,
    prefix: &str,
) -> Result<Visit, FieldProblem> {
    let people = fields.u32(&key(prefix, "people_seen"), "people_seen")?;
    let flags_text = fields.str(&key(prefix, "flags"), "flags")?;
    let mut flags = BTreeSet::new();
    for name in flags_text.split(',').filter(|s| !s.is_empty()) {
        flags.insert(name.parse::<SpecialNeed>()?);
    }
    let need_prefix = key(prefix, "need.");
    let mut needs = BTreeMap::new();
    for k in fields.keys() {
        if let Some(name) = k.strip_prefix(&need_prefix) {
            let need: NeedKind = name.parse()?;
            needs.insert(need, fields.str(k, "need detail")?);
        }
    }
    let visit = Visit {
        id,
        household: fields.str(&key(prefix, "household"), "household")?,
        volunteer: fields.str(&key(prefix, "volunteer"), "volunteer")?,
        at_ms: fields.i64(&key(prefix, "at"), "at")?,
        outcome: fields.str(&key(prefix, "outcome"), "outcome")?.parse()?,
        people_seen: u16::try_from(people).map_err(|_| FieldProblem::WrongType("people_seen"))?,
        flags,
        needs,
        note: fields.str(&key(prefix, "note"), "note")?,
    };
    visit_shape(&visit)?;
    Ok(visit)
}

pub(crate) fn read_visit<R: ReadDoc>(
    doc: &R,
    obj: &ObjId,
    id: RecordId,
) -> Result<Visit, FieldProblem> {
    read_visit_fields(&Fields::read(doc, obj)?, id, "")
}

pub(crate) fn read_delivery<R: ReadDoc>(
    doc: &R,
    obj: &ObjId,
    id: RecordId,
) -> Result<DeliveryEvent, FieldProblem> {
    let f = Fields::read(doc, obj)?;
    let event = DeliveryEvent {
        id,
        household: f.str("household", "household")?,
        item: f.str("item", "item")?.parse()?,
        status: f.str("status", "status")?.parse()?,
        attempt: f.u32("attempt", "attempt")?,
        detail: f.str("detail", "detail")?,
        by: f.str("by", "by")?,
        at_ms: f.i64("at", "at")?,
    };
    delivery_shape(&event)?;
    Ok(event)
}

pub(crate) fn read_sweep<R: ReadDoc>(
    doc: &R,
    obj: &ObjId,
    id: RecordId,
) -> Result<SweepResult, FieldProblem> {
    let f = Fields::read(doc, obj)?;
    let units_text = f.str("units", "units")?;
    let units_covered: BTreeSet<String> = units_text
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    // Keys come back sorted, and `issue.NN` is zero-padded, so issues keep their order.
    let mut issues = Vec::new();
    for k in f.keys().filter(|k| k.starts_with("issue.")) {
        issues.push(f.str(k, "issue")?);
    }
    let sweep = SweepResult {
        id,
        round: f.u32("round", "round")?,
        units_covered,
        reached: f.u32("reached", "reached")?,
        not_home: f.u32("not_home", "not_home")?,
        refused: f.u32("refused", "refused")?,
        issues,
        by: f.str("by", "by")?,
        at_ms: f.i64("at", "at")?,
    };
    sweep_shape(&sweep)?;
    Ok(sweep)
}

pub(crate) fn read_correction<R: ReadDoc>(
    doc: &R,
    obj: &ObjId,
    id: RecordId,
) -> Result<Correction, FieldProblem> {
    let f = Fields::read(doc, obj)?;
    let target = RecordId::parse(&f.str("target", "target")?)?;
    let target_kind: RecordKind = f.str("target_kind", "target_kind")?.parse()?;
    let action = match f.str("action", "action")?.as_str() {
        "retract" => CorrectionAction::Retract,
        "replace" if target_kind == RecordKind::Visit => CorrectionAction::ReplaceVisit(Box::new(
            read_visit_fields(&f, target.clone(), REPLACEMENT_PREFIX)?,
        )),
        _ => return Err(FieldProblem::WrongType("action")),
    };
    if target_kind == RecordKind::Correction {
        return Err(FieldProblem::WrongType("target_kind"));
    }
    let correction = Correction {
        id,
        target,
        target_kind,
        action,
        reason: f.str("reason", "reason")?,
        by: f.str("by", "by")?,
        at_ms: f.i64("at", "at")?,
    };
    correction_shape(&correction)?;
    Ok(correction)
}
