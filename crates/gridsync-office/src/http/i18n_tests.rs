//! The dashboard's and login page's translations: both languages hold every key, every key
//! the pages use is in them, and every value of the field vocabulary the pages show.

use std::collections::BTreeSet;

use gridsync_model::{DeliveryItem, DeliveryStatus, NeedKind, SpecialNeed, VisitOutcome};

use super::{DASHBOARD_HTML, LOGIN_HTML, TRANSLATIONS};

fn keys(lang: &str) -> BTreeSet<String> {
    let (_, body) = TRANSLATIONS
        .iter()
        .find(|(code, _)| *code == lang)
        .expect("language");
    let table: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(body).expect("a translation table is a JSON object");
    assert!(
        table
            .values()
            .all(|v| v.as_str().is_some_and(|s| !s.trim().is_empty())),
        "{lang}: every translation is non-empty text"
    );
    table.keys().cloned().collect()
}

/// Every key a page names: `data-i18n="k"`, `data-i18n-placeholder="k"`,
/// `data-i18n-title="k"`, and `t("k"` in its script.
fn keys_used(page: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for marker in [
        "data-i18n=\"",
        "data-i18n-placeholder=\"",
        "data-i18n-title=\"",
        "t(\"",
    ] {
        for rest in page.split(marker).skip(1) {
            if let Some((key, _)) = rest.split_once('"') {
                used.insert(key.to_owned());
            }
        }
    }
    used
}

#[test]
fn both_languages_hold_every_key_the_pages_use() {
    let (zh, en) = (keys("zh"), keys("en"));
    let only_zh: Vec<_> = zh.difference(&en).collect();
    let only_en: Vec<_> = en.difference(&zh).collect();
    assert!(only_zh.is_empty(), "missing in English: {only_zh:?}");
    assert!(only_en.is_empty(), "missing in Chinese: {only_en:?}");
    for (name, page) in [("dashboard", DASHBOARD_HTML), ("login", LOGIN_HTML)] {
        let used = keys_used(page);
        assert!(used.len() > 3, "{name}: no translation keys found");
        let missing: Vec<_> = used.difference(&en).collect();
        assert!(
            missing.is_empty(),
            "{name} uses keys in no table: {missing:?}"
        );
    }
    assert!(
        keys_used(DASHBOARD_HTML).len() > 40,
        "the dashboard is translated"
    );
}

#[test]
fn every_value_of_the_field_vocabulary_is_translated() {
    let mut wanted: Vec<String> = Vec::new();
    wanted.extend(VisitOutcome::ALL.iter().map(|v| format!("outcome.{v}")));
    wanted.extend(SpecialNeed::ALL.iter().map(|v| format!("flag.{v}")));
    wanted.extend(NeedKind::ALL.iter().map(|v| format!("need.{v}")));
    wanted.extend(DeliveryItem::ALL.iter().map(|v| format!("item.{v}")));
    wanted.extend(DeliveryStatus::ALL.iter().map(|v| format!("status.{v}")));
    for lang in ["zh", "en"] {
        let table = keys(lang);
        let missing: Vec<_> = wanted.iter().filter(|k| !table.contains(*k)).collect();
        assert!(missing.is_empty(), "{lang} lacks {missing:?}");
    }
}
