//! Clocks that lie: a record's time is checked against when the reading node first saw it.
//!
//! Every record carries the time its device's clock gave it (`at_ms`). A device whose clock
//! runs hours ahead would, trusted as it is, pin "the latest visit" of a household for hours,
//! win every correction race and move its records into a round that has not started. The
//! rule, applied wherever records are ordered or placed in a round:
//!
//! - A node knows when it first held each change (its provenance: the arrival time of a
//!   received change). A record cannot have been written after the node first held the change
//!   that created it.
//! - A record whose claimed time is more than [`CLOCK_AHEAD_TOLERANCE_MS`] after that first
//!   sight is **clock-ahead**: it is ordered and placed in rounds at the first-sight time (the
//!   one time known not to be earlier than the truth) and flagged; its claimed time is kept
//!   beside it for display and exports. The tolerance absorbs ordinary drift between phones.
//! - There is no lower bound: a record that reaches the office days after it claims to have
//!   been written is the normal case for a device that was offline, and is kept as claimed.
//! - A record whose first sight the node does not know (written on this node, or received so
//!   recently that its arrival is not recorded yet) is taken as first seen "now", when the
//!   reader was built: it cannot be later than that either.
//!
//! [`FirstSight`] holds a document's first-sight times per change, keyed the way automerge
//! names objects (actor and op counter), so the reader can find the change that created a
//! record from the record's object id alone.

use std::collections::{BTreeMap, HashMap};

use automerge::{ActorId, Automerge, ObjId};

/// How far a record's claimed time may run ahead of its first sight before it is flagged.
pub const CLOCK_AHEAD_TOLERANCE_MS: i64 = 10 * 60_000;

/// A record whose claimed time ran ahead of its first sight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClockAhead {
    /// The time its device claimed, unix milliseconds.
    pub claimed_ms: i64,
    /// When the reading node first held it, unix milliseconds: the time it is ordered at.
    pub seen_ms: i64,
}

/// The ops `start_op..=max_op` of one change, first held at `seen_ms`.
#[derive(Debug, Clone, Copy)]
struct SeenOps {
    max_op: u64,
    seen_ms: i64,
}

/// When the reading node first saw the changes of one document (see the module docs).
#[derive(Debug, Clone, Default)]
pub struct FirstSight {
    /// Per actor, changes by their first op.
    by_actor: HashMap<ActorId, BTreeMap<u64, SeenOps>>,
    /// First sight of a change not added: `None` trusts claimed times.
    unrecorded_ms: Option<i64>,
}

impl FirstSight {
    /// A reader that takes every claimed time as it is (the device's own views, tests).
    pub fn trust_claimed() -> Self {
        FirstSight::default()
    }

    /// A reader built at `now_ms`: changes not added with [`FirstSight::add_change`] are
    /// taken as first seen then.
    pub fn as_of(now_ms: i64) -> Self {
        FirstSight {
            by_actor: HashMap::new(),
            unrecorded_ms: Some(now_ms),
        }
    }

    /// Records that the change of `actor` holding ops `start_op..=max_op` was first held at
    /// `seen_ms`.
    pub fn add_change(&mut self, actor: &ActorId, start_op: u64, max_op: u64, seen_ms: i64) {
        self.by_actor
            .entry(actor.clone())
            .or_default()
            .insert(start_op, SeenOps { max_op, seen_ms });
    }

    /// The first sight of `doc`'s changes from a node's record of arrivals (change hash and
    /// when it was first held); changes with no arrival count as seen at `now_ms`.
    pub fn of_document(
        doc: &Automerge,
        arrivals: impl IntoIterator<Item = ([u8; 32], i64)>,
        now_ms: i64,
    ) -> Self {
        let arrivals: HashMap<[u8; 32], i64> = arrivals.into_iter().collect();
        let mut sight = FirstSight::as_of(now_ms);
        if arrivals.is_empty() {
            return sight;
        }
        for change in doc.get_changes_meta(&[]) {
            if let Some(seen_ms) = arrivals.get(&change.hash.0) {
                sight.add_change(&change.actor, change.start_op, change.max_op, *seen_ms);
            }
        }
        sight
    }

    /// When the change that created object `record` was first held, if known.
    fn seen_ms(&self, record: &ObjId) -> Option<i64> {
        let ObjId::Id(counter, actor, _) = record else {
            return None;
        };
        let recorded = self
            .by_actor
            .get(actor)
            .and_then(|changes| changes.range(..=*counter).next_back())
            .filter(|(_, ops)| *counter <= ops.max_op)
            .map(|(_, ops)| ops.seen_ms);
        recorded.or(self.unrecorded_ms)
    }

    /// The rule for the record created as object `record` claiming `claimed_ms`: `None` when
    /// the claim stands, the bound otherwise.
    pub fn check(&self, record: &ObjId, claimed_ms: i64) -> Option<ClockAhead> {
        let seen_ms = self.seen_ms(record)?;
        (claimed_ms > seen_ms.saturating_add(CLOCK_AHEAD_TOLERANCE_MS)).then_some(ClockAhead {
            claimed_ms,
            seen_ms,
        })
    }
}

/// Start of the street's daily round that contains `now_ms`: local midnight in a street whose
/// time zone is `utc_offset_minutes` east of UTC (Ningbo: +480), in unix milliseconds.
pub fn daily_round_start(now_ms: i64, utc_offset_minutes: i32) -> i64 {
    const DAY_MS: i64 = 86_400_000;
    let offset = i64::from(utc_offset_minutes) * 60_000;
    let local = now_ms.saturating_add(offset);
    local - local.rem_euclid(DAY_MS) - offset
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    fn object(counter: u64, actor: &ActorId) -> ObjId {
        ObjId::Id(counter, actor.clone(), 0)
    }

    #[test]
    fn a_record_claiming_a_time_far_after_its_first_sight_is_bounded_by_it() {
        let actor = ActorId::from(&[1u8; 16][..]);
        let mut sight = FirstSight::as_of(100 * HOUR);
        sight.add_change(&actor, 1, 10, 10 * HOUR);
        sight.add_change(&actor, 11, 20, 12 * HOUR);
        // Within the tolerance: the claim stands.
        assert_eq!(
            sight.check(&object(5, &actor), 10 * HOUR + 9 * 60_000),
            None
        );
        // Six hours ahead of the change that created it.
        assert_eq!(
            sight.check(&object(5, &actor), 16 * HOUR),
            Some(ClockAhead {
                claimed_ms: 16 * HOUR,
                seen_ms: 10 * HOUR
            })
        );
        // The second change was first held two hours later: four hours ahead of it is still
        // ahead, its own first sight is not.
        assert!(sight.check(&object(15, &actor), 16 * HOUR).is_some());
        assert_eq!(sight.check(&object(15, &actor), 12 * HOUR), None);
        // Behind: never bounded.
        assert_eq!(sight.check(&object(5, &actor), HOUR), None);
    }

    #[test]
    fn unrecorded_changes_count_as_seen_when_the_reader_was_built() {
        let actor = ActorId::from(&[2u8; 16][..]);
        let sight = FirstSight::as_of(10 * HOUR);
        assert!(sight.check(&object(3, &actor), 16 * HOUR).is_some());
        assert_eq!(sight.check(&object(3, &actor), 10 * HOUR), None);
        // An op past a recorded change's range is not that change's.
        let mut sight = FirstSight::trust_claimed();
        sight.add_change(&actor, 1, 2, HOUR);
        assert_eq!(sight.check(&object(3, &actor), 16 * HOUR), None);
        assert!(sight.check(&object(2, &actor), 16 * HOUR).is_some());
        assert_eq!(sight.check(&ObjId::Root, i64::MAX), None);
    }
}
