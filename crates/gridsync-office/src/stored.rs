//! Building summaries kept in the store, so that a restarted office does not summarize every
//! building again.
//!
//! A summary is a pure function of the building document, the street plan, the round window
//! and the code of [`crate::summary::summarize`]. Each stored summary therefore carries a
//! [`SummaryBasis::source_key`]: a SHA-256 over the building document's heads, the plan
//! document's heads, the round's start and [`SUMMARY_FORMAT`]. At start the office derives the
//! key it would store now from heads alone (no document loaded) and reuses the stored summary
//! when the keys are equal; otherwise it loads the document and summarizes it again.
//!
//! Encoding: JSON of `(summary, authors, hourly)` (serde_json; the per-author tallies and the
//! hour-by-hour figures are not part of the API's view of a summary, so they travel beside
//! it). The vocabulary fields that the API
//! reports as `&'static str` are read back through the field model's closed vocabularies, so
//! a stored name that is not one of them makes the value undecodable, and an undecodable
//! value is recomputed, never trusted. Bump [`SUMMARY_FORMAT`] whenever `summarize` counts
//! differently or the encoding changes: every stored summary then misses and is recomputed.

use std::collections::BTreeMap;
use std::str::FromStr;

use automerge::ChangeHash;
use gridsync_model::{DeliveryItem, DeliveryStatus, NeedKind, SpecialNeed, VisitOutcome, Zone};
use gridsync_proto::DocPath;
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};

use crate::hourly::HourlyTotals;
use crate::summary::{AuthorTally, BuildingSummary, RoundWindow};

/// The `kind` of the office's building summaries in the store's `derived` table.
pub const SUMMARY_KIND: &str = "office.building-summary/1";

/// Version of what a stored summary means and how it is encoded; part of every source key.
pub const SUMMARY_FORMAT: u32 = 3;

/// What every summary of one aggregation was derived from besides its own document: the plan
/// (by its document's heads) and the round. Captured together with the plan the aggregation
/// uses, so that a summary is never stored under the key of a newer plan than it was
/// computed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryBasis {
    /// Heads of the street plan document (empty when the street has none), sorted.
    pub plan_heads: Vec<ChangeHash>,
    /// The round the aggregation counts.
    pub round: RoundWindow,
}

impl SummaryBasis {
    /// The basis of an aggregation over the plan whose document has `plan_heads`.
    pub fn new(mut plan_heads: Vec<ChangeHash>, round: RoundWindow) -> Self {
        plan_heads.sort();
        SummaryBasis { plan_heads, round }
    }

    /// The source key of the summary of the building document at `path` with heads
    /// `building_heads` (in any order).
    pub fn source_key(&self, path: &DocPath, building_heads: &[ChangeHash]) -> [u8; 32] {
        let mut heads = building_heads.to_vec();
        heads.sort();
        let mut hash = Sha256::new();
        hash.update(b"gridsync-office building summary\0");
        hash.update(SUMMARY_FORMAT.to_be_bytes());
        hash.update((path.as_str().len() as u64).to_be_bytes());
        hash.update(path.as_str().as_bytes());
        for list in [&heads, &self.plan_heads] {
            hash.update((list.len() as u64).to_be_bytes());
            for head in list {
                hash.update(head.0);
            }
        }
        hash.update(self.round.start_ms.to_be_bytes());
        hash.finalize().into()
    }
}

/// Why a stored summary cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoredSummaryError {
    #[error("stored summary does not decode")]
    Decode(#[source] serde_json::Error),
    #[error("stored summary names document {found:?}, not {expected}")]
    OtherDocument {
        expected: DocPath,
        found: Option<String>,
    },
}

/// The stored form of `summary`.
pub fn encode(summary: &BuildingSummary) -> Vec<u8> {
    // Invariant: every field serializes (strings, integers and maps with string keys), so
    // serializing into memory cannot fail.
    serde_json::to_vec(&(summary, &summary.authors, &summary.totals.hourly))
        .expect("a summary serializes to JSON")
}

/// The summary stored for the document at `path`, if `bytes` is a well-formed one of it.
pub fn decode(path: &DocPath, bytes: &[u8]) -> Result<BuildingSummary, StoredSummaryError> {
    let (mut summary, authors, hourly): (
        BuildingSummary,
        BTreeMap<String, AuthorTally>,
        HourlyTotals,
    ) = serde_json::from_slice(bytes).map_err(StoredSummaryError::Decode)?;
    if summary.document.as_deref() != Some(path.as_str()) {
        return Err(StoredSummaryError::OtherDocument {
            expected: path.clone(),
            found: summary.document,
        });
    }
    summary.authors = authors;
    summary.totals.hourly = hourly;
    Ok(summary)
}

/// A closed vocabulary of the field model whose names the summaries hold as `&'static str`.
pub(crate) trait VocabName: FromStr + Copy {
    fn static_name(self) -> &'static str;
}

macro_rules! vocab_name_impl {
    ($($vocab:ty),+) => {
        $(impl VocabName for $vocab {
            fn static_name(self) -> &'static str {
                self.as_str()
            }
        })+
    };
}

vocab_name_impl!(
    DeliveryItem,
    DeliveryStatus,
    NeedKind,
    SpecialNeed,
    VisitOutcome,
    Zone
);

fn static_name<V: VocabName, E: serde::de::Error>(name: &str) -> Result<&'static str, E> {
    name.parse::<V>().map(V::static_name).map_err(|_| {
        E::custom(format!(
            "unknown name {:?}",
            name.chars().take(40).collect::<String>()
        ))
    })
}

/// Reads one name of the vocabulary `V`.
pub(crate) fn vocab_name<'de, D: Deserializer<'de>, V: VocabName>(
    d: D,
) -> Result<&'static str, D::Error> {
    static_name::<V, D::Error>(&String::deserialize(d)?)
}

/// Reads an optional name of the vocabulary `V`.
pub(crate) fn vocab_option<'de, D: Deserializer<'de>, V: VocabName>(
    d: D,
) -> Result<Option<&'static str>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|name| static_name::<V, D::Error>(&name))
        .transpose()
}

/// Reads a list of names of the vocabulary `V`.
pub(crate) fn vocab_list<'de, D: Deserializer<'de>, V: VocabName>(
    d: D,
) -> Result<Vec<&'static str>, D::Error> {
    Vec::<String>::deserialize(d)?
        .iter()
        .map(|name| static_name::<V, D::Error>(name))
        .collect()
}

/// Reads a map keyed by names of the vocabulary `V`.
pub(crate) fn vocab_keys<'de, D: Deserializer<'de>, V: VocabName, T: Deserialize<'de>>(
    d: D,
) -> Result<BTreeMap<&'static str, T>, D::Error> {
    BTreeMap::<String, T>::deserialize(d)?
        .into_iter()
        .map(|(name, value)| Ok((static_name::<V, D::Error>(&name)?, value)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> DocPath {
        DocPath::parse(text).expect("valid test path")
    }

    #[test]
    fn the_key_ignores_head_order_and_changes_with_every_input() {
        let (a, b, c) = (
            ChangeHash([1; 32]),
            ChangeHash([2; 32]),
            ChangeHash([3; 32]),
        );
        let round = RoundWindow::starting_at(1_000);
        let basis = SummaryBasis::new(vec![c], round);
        let p = path("s/g/b1");
        let key = basis.source_key(&p, &[a, b]);
        assert_eq!(key, basis.source_key(&p, &[b, a]));
        assert_eq!(
            key,
            SummaryBasis::new(vec![c], round).source_key(&p, &[a, b])
        );
        let others = [
            basis.source_key(&p, &[a]),
            basis.source_key(&path("s/g/b2"), &[a, b]),
            SummaryBasis::new(vec![a], round).source_key(&p, &[a, b]),
            SummaryBasis::new(vec![], round).source_key(&p, &[a, b]),
            SummaryBasis::new(vec![c], RoundWindow::starting_at(1_001)).source_key(&p, &[a, b]),
        ];
        for other in others {
            assert_ne!(key, other);
        }
    }

    #[test]
    fn garbage_and_foreign_names_do_not_decode() {
        let p = path("s/g/b1");
        assert!(matches!(
            decode(&p, b"not json"),
            Err(StoredSummaryError::Decode(_))
        ));
        assert!(matches!(
            decode(&p, b""),
            Err(StoredSummaryError::Decode(_))
        ));
    }
}
