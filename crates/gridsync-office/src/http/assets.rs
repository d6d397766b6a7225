//! The pages' own files, embedded in the binary and served to anyone (they hold no data):
//! scripts, styles and the vendored chart library (uPlot, MIT, `vendor/LICENSE-uPlot`), under
//! `/assets/`; and the headers every answer carries. The pages hold no inline script or style,
//! so the content security policy allows only the office's own files: nothing is fetched from
//! elsewhere, and an injected `<script>` would not run.

use axum::extract::{Path, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// `/assets/{name}`: content type and body.
const ASSETS: &[(&str, &str, &str)] = &[
    ("dashboard.js", JS, include_str!("dashboard.js")),
    ("dashboard.css", CSS, include_str!("dashboard.css")),
    ("charts.js", JS, include_str!("charts.js")),
    ("login.js", JS, include_str!("login.js")),
    ("login.css", CSS, include_str!("login.css")),
    ("uplot.js", JS, include_str!("vendor/uPlot.iife.min.js")),
    ("uplot.css", CSS, include_str!("vendor/uPlot.min.css")),
];

/// The pages' own scripts (the translation test reads the keys they use).
#[cfg(test)]
pub(crate) fn page_scripts() -> impl Iterator<Item = (&'static str, &'static str)> {
    ASSETS
        .iter()
        .filter(|(name, kind, _)| *kind == JS && !name.starts_with("uplot"))
        .map(|(name, _, body)| (*name, *body))
}

/// `GET /assets/{name}`.
pub(crate) async fn asset(Path(name): Path<String>) -> Response {
    match ASSETS.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, body)) => (
            [
                (header::CONTENT_TYPE, *kind),
                // Revalidated on every load, so a new binary's files win at once.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => super::api::error(StatusCode::NOT_FOUND, "no such file"),
    }
}

/// What the browser may load and run for the office's pages: only the office's own files.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Adds the security headers to every answer: the content security policy, no sniffing of
/// content types, no referrer sent elsewhere.
pub(crate) async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}
