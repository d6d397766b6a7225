//! The dashboard's and login page's translations: both languages hold every key, every key
//! the pages use is in them, and every value of the field vocabulary the pages show.

use std::collections::BTreeSet;

use gridsync_testkit::i18n::table_keys;

use super::{DASHBOARD_HTML, LOGIN_HTML, TRANSLATIONS};

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
    let (zh, en) = (
        table_keys(TRANSLATIONS, "zh"),
        table_keys(TRANSLATIONS, "en"),
    );
    gridsync_testkit::i18n::assert_same_keys(("Chinese", &zh), ("English", &en));
    let pages = [("dashboard", DASHBOARD_HTML), ("login", LOGIN_HTML)];
    for (name, page) in pages.into_iter().chain(super::assets::page_scripts()) {
        let used = keys_used(page);
        assert!(
            used.len() > 3 || name.ends_with(".js"),
            "{name}: no translation keys found"
        );
        let missing: Vec<_> = used.difference(&en).collect();
        assert!(
            missing.is_empty(),
            "{name} uses keys in no table: {missing:?}"
        );
    }
    let dashboard_keys = keys_used(DASHBOARD_HTML).len()
        + super::assets::page_scripts()
            .map(|(_, script)| keys_used(script).len())
            .sum::<usize>();
    assert!(dashboard_keys > 40, "the dashboard is translated");
}

#[test]
fn every_value_of_the_field_vocabulary_is_translated() {
    let wanted = gridsync_testkit::i18n::vocabulary_keys();
    for lang in ["zh", "en"] {
        let table = table_keys(TRANSLATIONS, lang);
        let missing: Vec<_> = wanted.iter().filter(|k| !table.contains(*k)).collect();
        assert!(missing.is_empty(), "{lang} lacks {missing:?}");
    }
}
