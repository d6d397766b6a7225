//! The records of a building document and how each is stored as an automerge map.
//!
//! Every record is one map object under its own ULID key in one of the top-level maps
//! ([`VISITS`], [`DELIVERIES`], [`SWEEPS`], [`CORRECTIONS`]); its fields are scalars. Nothing is
//! ever stored in a list, and a record's map is created only together with its fresh key.

use std::collections::{BTreeMap, BTreeSet};

use crate::vocab::{DeliveryItem, DeliveryStatus, NeedKind, RecordKind, SpecialNeed, VisitOutcome};

/// Top-level map of household visits.
pub const VISITS: &str = "visits";
/// Top-level map of delivery events.
pub const DELIVERIES: &str = "deliveries";
/// Top-level map of sweep results.
pub const SWEEPS: &str = "sweeps";
/// Top-level map of corrections.
pub const CORRECTIONS: &str = "corrections";

/// Longest visit note, in characters.
pub const MAX_NOTE_CHARS: usize = 500;
/// Longest short text (need detail, delivery detail, reason, issue), in characters.
pub const MAX_SHORT_TEXT_CHARS: usize = 200;
/// Longest name of whoever wrote a record, in characters.
pub const MAX_BY_CHARS: usize = 80;
/// Most issues in one sweep result.
pub const MAX_ISSUES: usize = 32;
/// Most units in one sweep result.
pub const MAX_UNITS: usize = 256;
/// Earliest accepted record time: 2000-01-01T00:00:00Z in unix milliseconds.
pub const MIN_TIME_MS: i64 = 946_684_800_000;
/// How far past the caller's "now" a record time may lie (clock skew allowance): 10 minutes.
pub const MAX_FUTURE_SKEW_MS: i64 = 10 * 60 * 1000;

/// The top-level map that holds records of `kind`.
pub fn map_for(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Visit => VISITS,
        RecordKind::Delivery => DELIVERIES,
        RecordKind::Sweep => SWEEPS,
        RecordKind::Correction => CORRECTIONS,
    }
}

/// A record id: a ULID in its canonical 26-character upper-case form, minted on the device.
///
/// The canonical form matters: it is the map key, so two spellings of one ULID would be two
/// records.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId(String);

/// Why a string is not a record id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIdError {
    #[error("record id is empty")]
    Empty,
    #[error("record id {0:?} is not a canonical ulid")]
    NotUlid(String),
}

impl RecordId {
    /// Parses a canonical ULID string.
    pub fn parse(s: &str) -> Result<Self, RecordIdError> {
        if s.is_empty() {
            return Err(RecordIdError::Empty);
        }
        match ulid::Ulid::from_string(s) {
            Ok(u) if u.to_string() == s => Ok(RecordId(s.to_owned())),
            _ => Err(RecordIdError::NotUlid(s.chars().take(40).collect())),
        }
    }

    /// The id as stored (the map key).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<ulid::Ulid> for RecordId {
    fn from(u: ulid::Ulid) -> Self {
        RecordId(u.to_string())
    }
}

impl std::fmt::Display for RecordId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One household visit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visit {
    /// Unique id minted on the device; also the map key.
    pub id: RecordId,
    /// The household visited (a plan household id in this building).
    pub household: String,
    /// Who visited: a node id or a volunteer's name.
    pub volunteer: String,
    /// When the visit happened, unix milliseconds.
    pub at_ms: i64,
    /// What happened at the door.
    pub outcome: VisitOutcome,
    /// How many people were seen.
    pub people_seen: u16,
    /// Vulnerabilities observed.
    pub flags: BTreeSet<SpecialNeed>,
    /// Needs expressed, each with an optional short detail (empty when none).
    pub needs: BTreeMap<NeedKind, String>,
    /// Free text, at most [`MAX_NOTE_CHARS`] characters.
    pub note: String,
}

/// One status change of one delivery checklist item; events are never edited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryEvent {
    /// Unique id minted on the device; also the map key and the final tie-breaker.
    pub id: RecordId,
    /// The household the item is for.
    pub household: String,
    /// Which checklist item.
    pub item: DeliveryItem,
    /// The status this event reports.
    pub status: DeliveryStatus,
    /// Attempt number as counted by the writer (1 for the first attempt).
    pub attempt: u32,
    /// Attempt information, e.g. why it failed (may be empty).
    pub detail: String,
    /// Who recorded it.
    pub by: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
}

/// The result of one sweep round through a building.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepResult {
    /// Unique id minted on the device; also the map key.
    pub id: RecordId,
    /// Sweep round number (1, 2, ...).
    pub round: u32,
    /// Units (stairwells) covered, by plan unit id.
    pub units_covered: BTreeSet<String>,
    /// Households reached.
    pub reached: u32,
    /// Households not at home.
    pub not_home: u32,
    /// Households that refused.
    pub refused: u32,
    /// Issues found, short strings.
    pub issues: Vec<String>,
    /// Who swept.
    pub by: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
}

/// What a correction does to its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CorrectionAction {
    /// The target no longer counts (for example a delivery marked by mistake).
    Retract,
    /// The target visit reads as this visit instead; its `id` equals the target's, and its
    /// time is the target's whatever it says (a correction never moves a visit in time).
    ReplaceVisit(Box<Visit>),
}

/// A new record that amends an older one; the older one stays readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correction {
    /// Unique id minted on the device; also the map key and the tie-breaker.
    pub id: RecordId,
    /// The record corrected (a visit, delivery event or sweep result, never a correction).
    pub target: RecordId,
    /// Which kind of record the target is.
    pub target_kind: RecordKind,
    /// Retraction or replacement.
    pub action: CorrectionAction,
    /// Why, required.
    pub reason: String,
    /// Who corrected.
    pub by: String,
    /// When, unix milliseconds.
    pub at_ms: i64,
}

/// A record read from a document that does not parse: skipped, and reported here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedRecord {
    /// Which map it was found in.
    pub kind: RecordKind,
    /// Its key in that map (truncated to 80 characters).
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Records of one kind read from a document, plus those that had to be skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadRecords<T> {
    /// Well-formed records, in key (id) order.
    pub records: Vec<T>,
    /// Records that could not be parsed.
    pub malformed: Vec<MalformedRecord>,
}

impl<T> Default for ReadRecords<T> {
    fn default() -> Self {
        ReadRecords {
            records: Vec::new(),
            malformed: Vec::new(),
        }
    }
}
