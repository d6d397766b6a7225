//! Reading records back from a building document, and applying corrections.
//!
//! Readers never trust the document: a record that does not parse is skipped and reported as a
//! [`MalformedRecord`], never a panic. Iteration is lazy and in key (record id) order, so an
//! export can stream one document at a time.

use std::collections::BTreeMap;

use automerge::{ObjId, ObjType, ROOT, ReadDoc, Value, ValueRef};

use crate::check::FieldProblem;
use crate::clock::{ClockAhead, FirstSight};
use crate::codec;
use crate::records::{
    Correction, CorrectionAction, DeliveryEvent, MalformedRecord, ReadRecords, RecordId,
    SweepResult, Visit, map_for,
};
use crate::vocab::RecordKind;

/// The object id of a top-level map, if the document has it as a map.
pub(crate) fn top_map<R: ReadDoc>(doc: &R, name: &str) -> Option<ObjId> {
    match doc.get(ROOT, name) {
        Ok(Some((Value::Object(ObjType::Map), id))) => Some(id),
        _ => None,
    }
}

type Parser<R, T> = fn(&R, &ObjId, RecordId) -> Result<T, FieldProblem>;

fn malformed(kind: RecordKind, key: &str, problem: impl ToString) -> MalformedRecord {
    MalformedRecord {
        kind,
        key: key.chars().take(80).collect(),
        problem: problem.to_string(),
    }
}

/// The records of one kind with the object id each is stored as (which names the change that
/// created it, see [`crate::clock`]).
pub(crate) fn iter_kind_objects<'a, R: ReadDoc, T: 'a>(
    doc: &'a R,
    kind: RecordKind,
    parse: Parser<R, T>,
) -> impl Iterator<Item = Result<(ObjId, T), MalformedRecord>> + 'a {
    let map = top_map(doc, map_for(kind));
    let missing = map.is_none().then(|| {
        Err(malformed(
            kind,
            map_for(kind),
            "top-level map is missing or not a map",
        ))
    });
    // One pass over the kind's map: its entries with their object ids (a `get` per record
    // would search the document's op columns once per record).
    let records = map.into_iter().flat_map(move |map| {
        doc.map_range(&map, ..)
            .map(|item| {
                let obj = matches!(item.value, ValueRef::Object(ObjType::Map)).then(|| item.id());
                (item.key.into_owned(), obj)
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(move |(key, obj)| {
                let id = RecordId::parse(&key).map_err(|e| malformed(kind, &key, e))?;
                match obj {
                    Some(obj) => parse(doc, &obj, id)
                        .map(|record| (obj, record))
                        .map_err(|e| malformed(kind, &key, e)),
                    None => Err(malformed(kind, &key, "record is not a map")),
                }
            })
    });
    missing.into_iter().chain(records)
}

/// Whether record `id` of `kind` was in the document as it stood at `heads`: with a peer's
/// acknowledged heads, whether the record has reached that peer. Heads this document does not
/// hold answer false.
pub fn record_present_at<R: ReadDoc>(
    doc: &R,
    kind: RecordKind,
    id: &RecordId,
    heads: &[automerge::ChangeHash],
) -> bool {
    if heads.is_empty() {
        return false;
    }
    top_map(doc, map_for(kind))
        .is_some_and(|map| matches!(doc.get_at(&map, id.as_str(), heads), Ok(Some(_))))
}

fn iter_kind<'a, R: ReadDoc, T: 'a>(
    doc: &'a R,
    kind: RecordKind,
    parse: Parser<R, T>,
) -> impl Iterator<Item = Result<T, MalformedRecord>> + 'a {
    iter_kind_objects(doc, kind, parse).map(|r| r.map(|(_, record)| record))
}

/// Streams the visits of a building document in id order (as written, uncorrected).
pub fn iter_visits<R: ReadDoc>(
    doc: &R,
) -> impl Iterator<Item = Result<Visit, MalformedRecord>> + '_ {
    iter_kind(doc, RecordKind::Visit, codec::read_visit::<R>)
}

/// Streams the delivery events of a building document in id order.
pub fn iter_deliveries<R: ReadDoc>(
    doc: &R,
) -> impl Iterator<Item = Result<DeliveryEvent, MalformedRecord>> + '_ {
    iter_kind(doc, RecordKind::Delivery, codec::read_delivery::<R>)
}

/// Streams the sweep results of a building document in id order.
pub fn iter_sweeps<R: ReadDoc>(
    doc: &R,
) -> impl Iterator<Item = Result<SweepResult, MalformedRecord>> + '_ {
    iter_kind(doc, RecordKind::Sweep, codec::read_sweep::<R>)
}

/// Streams the corrections of a building document in id order.
pub fn iter_corrections<R: ReadDoc>(
    doc: &R,
) -> impl Iterator<Item = Result<Correction, MalformedRecord>> + '_ {
    iter_kind(doc, RecordKind::Correction, codec::read_correction::<R>)
}

fn collect<T>(iter: impl Iterator<Item = Result<T, MalformedRecord>>) -> ReadRecords<T> {
    let mut out = ReadRecords::default();
    for item in iter {
        match item {
            Ok(record) => out.records.push(record),
            Err(bad) => out.malformed.push(bad),
        }
    }
    out
}

/// A visit as it reads after corrections, with the original kept alongside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorrectedVisit {
    /// What the visit says now: the latest replacement, or the original.
    pub current: Visit,
    /// The visit as first written.
    pub original: Visit,
    /// The correction that produced `current`, if any.
    pub corrected_by: Option<RecordId>,
}

/// Every record of one building document, read once.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildingRecords {
    /// All visits as written.
    pub visits: Vec<Visit>,
    /// All delivery events.
    pub deliveries: Vec<DeliveryEvent>,
    /// All sweep results as written.
    pub sweeps: Vec<SweepResult>,
    /// All corrections.
    pub corrections: Vec<Correction>,
    /// Records skipped because they did not parse.
    pub malformed: Vec<MalformedRecord>,
    /// Records whose claimed time ran ahead of their first sight, by id: their `at_ms` above
    /// is already the first-sight time (see [`crate::clock`]).
    pub clock_ahead: BTreeMap<RecordId, ClockAhead>,
}

/// Bounds the time of one record by the clock rule, noting it when bounded.
fn bound_time(
    sight: &FirstSight,
    object: &ObjId,
    id: &RecordId,
    at_ms: &mut i64,
    clock_ahead: &mut BTreeMap<RecordId, ClockAhead>,
) {
    if let Some(ahead) = sight.check(object, *at_ms) {
        *at_ms = ahead.seen_ms;
        clock_ahead.insert(id.clone(), ahead);
    }
}

impl BuildingRecords {
    /// Reads all four record maps of a building document, taking every claimed time as it is.
    pub fn read<R: ReadDoc>(doc: &R) -> Self {
        Self::read_seen(doc, &FirstSight::trust_claimed())
    }

    /// Reads all four record maps of a building document, times bounded by when this node
    /// first saw each record ([`crate::clock`]).
    pub fn read_seen<R: ReadDoc>(doc: &R, sight: &FirstSight) -> Self {
        let mut ahead = BTreeMap::new();
        let visits = collect(
            iter_kind_objects(doc, RecordKind::Visit, codec::read_visit::<R>).map(|r| {
                r.map(|(object, mut v)| {
                    bound_time(sight, &object, &v.id, &mut v.at_ms, &mut ahead);
                    v
                })
            }),
        );
        let deliveries = collect(
            iter_kind_objects(doc, RecordKind::Delivery, codec::read_delivery::<R>).map(|r| {
                r.map(|(object, mut e)| {
                    bound_time(sight, &object, &e.id, &mut e.at_ms, &mut ahead);
                    e
                })
            }),
        );
        let sweeps = collect(
            iter_kind_objects(doc, RecordKind::Sweep, codec::read_sweep::<R>).map(|r| {
                r.map(|(object, mut s)| {
                    bound_time(sight, &object, &s.id, &mut s.at_ms, &mut ahead);
                    s
                })
            }),
        );
        let corrections = collect(
            iter_kind_objects(doc, RecordKind::Correction, codec::read_correction::<R>).map(|r| {
                r.map(|(object, mut c)| {
                    // Only the correction's own time: a replacement never moves the
                    // visit it replaces in time (see `corrected_visits`).
                    bound_time(sight, &object, &c.id, &mut c.at_ms, &mut ahead);
                    c
                })
            }),
        );
        let mut malformed = visits.malformed;
        malformed.extend(deliveries.malformed);
        malformed.extend(sweeps.malformed);
        malformed.extend(corrections.malformed);
        BuildingRecords {
            visits: visits.records,
            deliveries: deliveries.records,
            sweeps: sweeps.records,
            corrections: corrections.records,
            malformed,
            clock_ahead: ahead,
        }
    }

    /// The correction in force for each corrected record of `kind`: the latest by
    /// (`at_ms`, correction id). Corrections of other kinds are not considered.
    pub fn effective_corrections(&self, kind: RecordKind) -> BTreeMap<&RecordId, &Correction> {
        let mut winners: BTreeMap<&RecordId, &Correction> = BTreeMap::new();
        for c in self.corrections.iter().filter(|c| c.target_kind == kind) {
            let replace = winners
                .get(&c.target)
                .is_none_or(|w| (c.at_ms, &c.id) > (w.at_ms, &w.id));
            if replace {
                winners.insert(&c.target, c);
            }
        }
        winners
    }

    /// Visits with corrections applied; retracted visits are left out.
    pub fn corrected_visits(&self) -> Vec<CorrectedVisit> {
        let winners = self.effective_corrections(RecordKind::Visit);
        self.visits
            .iter()
            .filter_map(|v| match winners.get(&v.id) {
                None => Some(CorrectedVisit {
                    current: v.clone(),
                    original: v.clone(),
                    corrected_by: None,
                }),
                Some(c) => match &c.action {
                    CorrectionAction::Retract => None,
                    // A correction changes what a visit says, never when it happened: the
                    // time stays the original's (bounded by the clock rule like any record's),
                    // so a correction cannot move a visit into another round or make it the
                    // latest.
                    CorrectionAction::ReplaceVisit(new) => Some(CorrectedVisit {
                        current: Visit {
                            id: v.id.clone(),
                            at_ms: v.at_ms,
                            ..(**new).clone()
                        },
                        original: v.clone(),
                        corrected_by: Some(c.id.clone()),
                    }),
                },
            })
            .collect()
    }

    /// Delivery events that no correction retracts.
    pub fn live_deliveries(&self) -> Vec<&DeliveryEvent> {
        let winners = self.effective_corrections(RecordKind::Delivery);
        self.deliveries
            .iter()
            .filter(|e| !winners.contains_key(&e.id))
            .collect()
    }

    /// Sweep results that no correction retracts.
    pub fn live_sweeps(&self) -> Vec<&SweepResult> {
        let winners = self.effective_corrections(RecordKind::Sweep);
        self.sweeps
            .iter()
            .filter(|s| !winners.contains_key(&s.id))
            .collect()
    }
}
