//! Checks of translation tables (flat JSON objects of key -> text), for the tests of the
//! pages that use them (the field app, the office dashboard).

use std::collections::BTreeSet;

/// The keys of the table of language `lang` among `tables` (language code, JSON text), as
/// the pages' crates embed them. Panics, failing the test, if there is none, or if it is not a
/// JSON object of non-empty texts.
#[track_caller]
pub fn table_keys(tables: &[(&str, &str)], lang: &str) -> BTreeSet<String> {
    let (_, body) = tables
        .iter()
        .find(|(code, _)| *code == lang)
        .unwrap_or_else(|| panic!("no translation table for {lang}"));
    let table: serde_json::Map<String, serde_json::Value> = serde_json::from_str(body)
        .unwrap_or_else(|e| panic!("{lang}: the translation table is not a JSON object: {e}"));
    let empty: Vec<&String> = table
        .iter()
        .filter(|(_, v)| v.as_str().is_none_or(|s| s.trim().is_empty()))
        .map(|(k, _)| k)
        .collect();
    assert!(empty.is_empty(), "{lang}: keys without a text: {empty:?}");
    table.keys().cloned().collect()
}

/// The keys every page showing field records needs: one per value of the field vocabulary
/// (`outcome.contacted`, `flag.pregnant`, `need.medicine`, `item.food-pack`,
/// `status.delivered`, ...), so a value added to the model fails the pages' tests until it is
/// translated.
pub fn vocabulary_keys() -> Vec<String> {
    use gridsync_model::{DeliveryItem, DeliveryStatus, NeedKind, SpecialNeed, VisitOutcome};
    let mut keys: Vec<String> = Vec::new();
    keys.extend(VisitOutcome::ALL.iter().map(|v| format!("outcome.{v}")));
    keys.extend(SpecialNeed::ALL.iter().map(|v| format!("flag.{v}")));
    keys.extend(NeedKind::ALL.iter().map(|v| format!("need.{v}")));
    keys.extend(DeliveryItem::ALL.iter().map(|v| format!("item.{v}")));
    keys.extend(DeliveryStatus::ALL.iter().map(|v| format!("status.{v}")));
    keys
}

/// Asserts that two languages' tables hold the same keys.
#[track_caller]
pub fn assert_same_keys(a: (&str, &BTreeSet<String>), b: (&str, &BTreeSet<String>)) {
    let only_a: Vec<_> = a.1.difference(b.1).collect();
    let only_b: Vec<_> = b.1.difference(a.1).collect();
    assert!(only_a.is_empty(), "missing in {}: {only_a:?}", b.0);
    assert!(only_b.is_empty(), "missing in {}: {only_b:?}", a.0);
}
