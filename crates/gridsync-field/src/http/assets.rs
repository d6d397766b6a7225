//! The app's own files, embedded in the binary (no download at run time, nothing from a
//! CDN): served to anyone, since they hold no data. The service worker caches them so the
//! app opens with the node stopped too; API answers are never cached (`no-store`).

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use gridsync_web::json_error;

use super::FieldApp;

/// One embedded file: its URL path, content type and bytes.
pub struct Asset {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

/// Every file of the app, by URL path.
pub const ASSETS: &[Asset] = &[
    Asset {
        path: "/",
        content_type: "text/html; charset=utf-8",
        body: include_str!("../../assets/index.html"),
    },
    Asset {
        path: "/app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/app.js"),
    },
    Asset {
        path: "/app.css",
        content_type: "text/css; charset=utf-8",
        body: include_str!("../../assets/app.css"),
    },
    Asset {
        path: "/sw.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_str!("../../assets/sw.js"),
    },
    Asset {
        path: "/manifest.webmanifest",
        content_type: "application/manifest+json",
        body: include_str!("../../assets/manifest.webmanifest"),
    },
    Asset {
        path: "/icon.svg",
        content_type: "image/svg+xml",
        body: include_str!("../../assets/icon.svg"),
    },
];

/// The translation tables, one per language, by language code.
pub const TRANSLATIONS: &[(&str, &str)] = &[
    ("zh", include_str!("../../assets/i18n-zh.json")),
    ("en", include_str!("../../assets/i18n-en.json")),
];

fn answer(content_type: &'static str, body: &'static str) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Revalidated on every load: a new binary's assets win at once; the service worker
    // keeps a copy for when the node does not answer.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

async fn translation(Path(file): Path<String>) -> Response {
    let lang = file.strip_suffix(".json").unwrap_or(&file);
    match TRANSLATIONS.iter().find(|(code, _)| *code == lang) {
        Some((_, body)) => answer("application/json", body),
        None => json_error(StatusCode::NOT_FOUND, "no such language (zh, en)"),
    }
}

pub(super) fn routes() -> Router<FieldApp> {
    let mut router = Router::new().route("/i18n/{file}", get(translation));
    for asset in ASSETS {
        let (content_type, body) = (asset.content_type, asset.body);
        router = router.route(
            asset.path,
            get(move || async move { answer(content_type, body) }),
        );
    }
    router
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use gridsync_model::Zone;
    use gridsync_proto::Role;
    use gridsync_testkit::i18n::table_keys;

    use super::*;

    /// Every key the script asks for with `t('...')`.
    fn keys_used_by_the_script() -> BTreeSet<String> {
        let script = ASSETS
            .iter()
            .find(|a| a.path == "/app.js")
            .expect("app.js")
            .body;
        script
            .split("t('")
            .skip(1)
            .filter_map(|rest| rest.split_once('\'').map(|(key, _)| key.to_owned()))
            .collect()
    }

    #[test]
    fn both_languages_have_every_key() {
        let (zh, en) = (
            table_keys(TRANSLATIONS, "zh"),
            table_keys(TRANSLATIONS, "en"),
        );
        gridsync_testkit::i18n::assert_same_keys(("Chinese", &zh), ("English", &en));
        let used = keys_used_by_the_script();
        assert!(
            used.len() > 50,
            "the script's keys were not found: {used:?}"
        );
        let missing: Vec<_> = used.difference(&en).collect();
        assert!(
            missing.is_empty(),
            "used by app.js but in no table: {missing:?}"
        );
    }

    #[test]
    fn every_value_of_the_field_vocabulary_is_translated() {
        let mut wanted = gridsync_testkit::i18n::vocabulary_keys();
        wanted.extend(Zone::ALL.iter().map(|v| format!("zone.{v}")));
        wanted.extend(Role::ALL.iter().map(|r| format!("role.{}", r.as_str())));
        wanted.extend(["device", "captain", "office"].map(|s| format!("sync.{s}")));
        wanted.extend(["rule.latest-visit-wins", "rule.delivered-wins"].map(str::to_owned));
        for lang in ["zh", "en"] {
            let table = table_keys(TRANSLATIONS, lang);
            let missing: Vec<_> = wanted.iter().filter(|k| !table.contains(*k)).collect();
            assert!(missing.is_empty(), "{lang} lacks {missing:?}");
        }
    }
}
