//! The inventory: which shared documents differ, by range-based set reconciliation.
//!
//! Each side summarises the shared documents it holds as items `(path, digest of sorted
//! heads)`. The fingerprint of a range of paths is the XOR of `sha256(path || 0 || digest)`
//! over the items in it, truncated to 16 bytes, so both sides can compare any range cheaply. The protocol
//! follows Aljoscha Meyer's "Range-Based Set Reconciliation" (as iroh-docs does):
//!
//! - Both sides open with the fingerprint of the whole shared set. Equal: done, after one
//!   small frame each way.
//! - Otherwise the *leader* (the side with the smaller node id) answers the root, and from
//!   then on the sides take turns. Answering a fingerprint that differs: a range with at most
//!   [`ITEMS_THRESHOLD`] local items is answered with its item list; a larger one is split
//!   into [`SPLIT_PARTS`] sub-ranges by local item count, each sent as a fingerprint (or as
//!   an item list when tiny).
//! - Receiving an item list settles that range: the receiver compares it with its own items
//!   and records every path whose digest differs or that exists on one side only. It then
//!   starts automerge sync for those paths; the other side simply answers those messages.
//! - A turn that produces nothing to say is sent as an empty inventory frame; receiving an
//!   empty frame, or sending one, ends the inventory.
//!
//! Only items inside the shared set are ever summarised, and incoming items outside it are
//! ignored, so the inventory reveals nothing about other documents.

use std::collections::{BTreeMap, BTreeSet};

use automerge::ChangeHash;
use sha2::{Digest as _, Sha256};

use crate::frame::{Digest, Fingerprint, PathRange, RangePart, RangeSummary};
use crate::path::DocPath;

/// Ranges with at most this many local items are answered with their item list.
pub const ITEMS_THRESHOLD: usize = 16;
/// How many sub-ranges a differing large range is split into.
pub const SPLIT_PARTS: usize = 16;
/// Sub-ranges with at most this many items are sent as item lists rather than fingerprints.
const TINY_RANGE: usize = 2;

/// The digest of a document's heads, independent of their order.
pub fn heads_digest(heads: &[ChangeHash]) -> Digest {
    let mut sorted = heads.to_vec();
    sorted.sort_unstable();
    let mut hasher = Sha256::new();
    for head in &sorted {
        hasher.update(head.0);
    }
    hasher.finalize().into()
}

/// One item's share of every range fingerprint containing it: `sha256(path || 0 || digest)`
/// truncated to 16 bytes.
pub fn item_fingerprint(path: &DocPath, digest: &Digest) -> Fingerprint {
    let mut hasher = Sha256::new();
    hasher.update(path.as_str().as_bytes());
    hasher.update([0u8]);
    hasher.update(digest);
    let hash: Digest = hasher.finalize().into();
    let mut fingerprint = [0u8; 16];
    fingerprint.copy_from_slice(&hash[..16]);
    fingerprint
}

/// A document as the inventory summarises it: its heads digest, and that item's
/// fingerprint (see [`item_fingerprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InventoryItem {
    pub digest: Digest,
    pub fingerprint: Fingerprint,
}

impl InventoryItem {
    /// The item of a document at `path` with `heads`: two hashes. A node may keep it
    /// (keyed by the heads it was made from) rather than hash every document again at
    /// every session start.
    pub fn of(path: &DocPath, heads: &[ChangeHash]) -> Self {
        let digest = heads_digest(heads);
        InventoryItem {
            digest,
            fingerprint: item_fingerprint(path, &digest),
        }
    }
}

/// One side's view of the shared set at the start of the inventory.
///
/// Each item's fingerprint is computed once, when the snapshot is made (or by the node
/// before), so a range's fingerprint is a XOR over the range, not a hash per item.
#[derive(Debug, Clone, Default)]
pub struct InventorySnapshot {
    items: BTreeMap<DocPath, InventoryItem>,
}

/// What answering one inventory turn produced.
#[derive(Debug, Default)]
pub struct TurnOutcome {
    /// Parts to send back (empty: nothing more to say).
    pub replies: Vec<RangePart>,
    /// Paths found to differ in ranges settled by this turn.
    pub differing: BTreeSet<DocPath>,
}

impl InventorySnapshot {
    /// A snapshot from `(path, heads digest)` items; callers pass only shared documents.
    pub fn new(items: impl IntoIterator<Item = (DocPath, Digest)>) -> Self {
        InventorySnapshot {
            items: items
                .into_iter()
                .map(|(path, digest)| {
                    let fingerprint = item_fingerprint(&path, &digest);
                    (
                        path,
                        InventoryItem {
                            digest,
                            fingerprint,
                        },
                    )
                })
                .collect(),
        }
    }

    /// A snapshot from items made by [`InventoryItem::of`] for each path (callers pass only
    /// shared documents). Nothing is hashed here.
    pub fn from_items(items: impl IntoIterator<Item = (DocPath, InventoryItem)>) -> Self {
        InventorySnapshot {
            items: items.into_iter().collect(),
        }
    }

    /// Number of documents summarised.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no documents are summarised.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn in_range<'a>(
        &'a self,
        range: &'a PathRange,
    ) -> impl Iterator<Item = (&'a DocPath, &'a InventoryItem)> + 'a {
        use std::ops::Bound;
        let lower = match &range.lower {
            Some(l) => Bound::Included(l),
            None => Bound::Unbounded,
        };
        let upper = match &range.upper {
            Some(u) => Bound::Excluded(u),
            None => Bound::Unbounded,
        };
        self.items.range::<DocPath, _>((lower, upper))
    }

    /// The fingerprint of the items in `range`.
    pub fn fingerprint(&self, range: &PathRange) -> Fingerprint {
        // XOR is bytewise, so any byte order gives the same bytes back; one u128 per item
        // rather than sixteen byte operations.
        let acc = self.in_range(range).fold(0u128, |acc, (_, item)| {
            acc ^ u128::from_le_bytes(item.fingerprint)
        });
        acc.to_le_bytes()
    }

    /// The opening part: the fingerprint of the whole shared set.
    pub fn root_part(&self) -> RangePart {
        let range = PathRange::full();
        RangePart {
            summary: RangeSummary::Fingerprint(self.fingerprint(&range)),
            range,
        }
    }

    /// Answers one part sent by the peer. `is_shared` filters the peer's items, which a
    /// hostile peer could fill with paths outside the shared set.
    pub fn answer(
        &self,
        part: &RangePart,
        is_shared: &dyn Fn(&DocPath) -> bool,
        outcome: &mut TurnOutcome,
    ) {
        match &part.summary {
            RangeSummary::Fingerprint(theirs) => {
                if self.fingerprint(&part.range) == *theirs {
                    return;
                }
                let ours: Vec<(&DocPath, &Digest)> = self
                    .in_range(&part.range)
                    .map(|(path, item)| (path, &item.digest))
                    .collect();
                if ours.len() <= ITEMS_THRESHOLD {
                    outcome.replies.push(items_part(part.range.clone(), &ours));
                } else {
                    self.split(&part.range, &ours, &mut outcome.replies);
                }
            }
            RangeSummary::Items(theirs) => {
                let theirs: BTreeMap<&DocPath, &Digest> = theirs
                    .iter()
                    .filter(|(p, _)| part.range.contains(p) && is_shared(p))
                    .map(|(p, d)| (p, d))
                    .collect();
                for (path, item) in self.in_range(&part.range) {
                    if theirs.get(path) != Some(&&item.digest) {
                        outcome.differing.insert(path.clone());
                    }
                }
                for path in theirs.keys() {
                    if !self.items.contains_key(*path) {
                        outcome.differing.insert((*path).clone());
                    }
                }
            }
        }
    }

    fn split(&self, range: &PathRange, ours: &[(&DocPath, &Digest)], out: &mut Vec<RangePart>) {
        let chunk_len = ours.len().div_ceil(SPLIT_PARTS);
        let chunks: Vec<&[(&DocPath, &Digest)]> = ours.chunks(chunk_len.max(1)).collect();
        for (i, chunk) in chunks.iter().enumerate() {
            let lower = if i == 0 {
                range.lower.clone()
            } else {
                chunk.first().map(|(p, _)| (*p).clone())
            };
            let upper = match chunks.get(i + 1) {
                Some(next) => next.first().map(|(p, _)| (*p).clone()),
                None => range.upper.clone(),
            };
            let sub = PathRange { lower, upper };
            if chunk.len() <= TINY_RANGE {
                out.push(items_part(sub, chunk));
            } else {
                let summary = RangeSummary::Fingerprint(self.fingerprint(&sub));
                out.push(RangePart {
                    range: sub,
                    summary,
                });
            }
        }
    }
}

fn items_part(range: PathRange, items: &[(&DocPath, &Digest)]) -> RangePart {
    RangePart {
        range,
        summary: RangeSummary::Items(items.iter().map(|(p, d)| ((*p).clone(), **d)).collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(n: usize, changed: &[usize], missing: &[usize]) -> InventorySnapshot {
        InventorySnapshot::new((0..n).filter(|i| !missing.contains(i)).map(|i| {
            let path = DocPath::parse(&format!("s/bldg-{i:04}")).expect("valid");
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(i as u64).to_be_bytes());
            if changed.contains(&i) {
                digest[31] = 1;
            }
            (path, digest)
        }))
    }

    /// Runs the ping-pong from the root and returns (differing on a, differing on b, turns).
    fn reconcile(
        a: &InventorySnapshot,
        b: &InventorySnapshot,
    ) -> (BTreeSet<DocPath>, BTreeSet<DocPath>, usize) {
        let all = |_: &DocPath| true;
        let mut found = [BTreeSet::new(), BTreeSet::new()];
        let sides = [a, b];
        let mut parts = vec![b.root_part()];
        let mut turn = 0;
        loop {
            let me = turn % 2;
            let mut outcome = TurnOutcome::default();
            for p in &parts {
                sides[me].answer(p, &all, &mut outcome);
            }
            found[me].extend(outcome.differing);
            turn += 1;
            if outcome.replies.is_empty() {
                break;
            }
            parts = outcome.replies;
        }
        let [fa, fb] = found;
        (fa, fb, turn)
    }

    #[test]
    fn equal_sets_settle_at_the_root() {
        let a = snapshot(1000, &[], &[]);
        let (da, db, turns) = reconcile(&a, &a.clone());
        assert!(da.is_empty() && db.is_empty());
        assert_eq!(turns, 1);
    }

    #[test]
    fn finds_exactly_the_changed_and_missing_documents() {
        let a = snapshot(1000, &[17, 600], &[999]);
        let b = snapshot(1000, &[], &[3]);
        let (da, db, turns) = reconcile(&a, &b);
        let all: BTreeSet<String> = da.union(&db).map(|p| p.to_string()).collect();
        let expected: BTreeSet<String> = [3, 17, 600, 999]
            .iter()
            .map(|i| format!("s/bldg-{i:04}"))
            .collect();
        assert_eq!(all, expected);
        assert!(turns <= 5, "took {turns} turns");
    }

    #[test]
    fn items_made_ahead_give_the_same_fingerprints_as_hashing_at_the_snapshot() {
        let items: Vec<(DocPath, Vec<ChangeHash>)> = (0..300)
            .map(|i| {
                let path = DocPath::parse(&format!("s/bldg-{i:04}")).expect("valid");
                let heads = (0..(i % 3))
                    .map(|h| ChangeHash([(i * 7 + h) as u8; 32]))
                    .collect();
                (path, heads)
            })
            .collect();
        let hashed_here = InventorySnapshot::new(
            items
                .iter()
                .map(|(p, heads)| (p.clone(), heads_digest(heads))),
        );
        let made_ahead = InventorySnapshot::from_items(
            items
                .iter()
                .map(|(p, heads)| (p.clone(), InventoryItem::of(p, heads))),
        );
        let bound = |i: usize| Some(DocPath::parse(&format!("s/bldg-{i:04}")).expect("valid"));
        for range in [
            PathRange::full(),
            PathRange {
                lower: bound(10),
                upper: bound(200),
            },
            PathRange {
                lower: None,
                upper: bound(1),
            },
        ] {
            assert_eq!(
                hashed_here.fingerprint(&range),
                made_ahead.fingerprint(&range)
            );
        }
        let (da, db, turns) = reconcile(&hashed_here, &made_ahead);
        assert!(da.is_empty() && db.is_empty());
        assert_eq!(turns, 1);
    }

    #[test]
    fn empty_side_learns_everything() {
        let a = snapshot(0, &[], &[]);
        let b = snapshot(40, &[], &[]);
        let (da, db, _) = reconcile(&a, &b);
        assert_eq!(da.len() + db.len(), 40);
    }
}
