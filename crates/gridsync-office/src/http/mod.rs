//! The office's HTTP server: [`serve`] takes an already-bound listener, the office state and a
//! shutdown signal (the shape of mini-redis's server), and runs the axum router until the
//! signal fires; open event streams end then too, so the drain completes.
//!
//! Routes (all but `/healthz` and `/login` need credentials, see `crate::auth`):
//! - `GET /` the dashboard (without credentials: 401 with the login form);
//! - `GET|POST /login`, `POST /logout`; `GET /i18n/{zh,en}.json` the pages' translations;
//! - `GET /assets/{file}` the pages' scripts, styles and chart library (`assets`);
//! - `GET /api/v1/{summary,places,buildings/{id},needs,devices,records}` JSON (`api`);
//! - `GET /api/v1/timeline[?grid=]` the round hour by hour, for the charts (`timeline`);
//! - `GET /api/v1/export.csv`, `GET /api/v1/export.json` streamed (`export`);
//! - `GET /api/v1/events` server-sent events (`events`);
//! - `GET /metrics` Prometheus text (`metrics`); `GET /healthz`.

mod api;
mod assets;
mod events;
mod export;
#[cfg(test)]
mod i18n_tests;
mod metrics;
mod timeline;

use std::future::Future;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use gridsync_web::{WebListener, bearer, cookie, no_store};
use serde::Deserialize;
use tokio::sync::watch;

use crate::state::OfficeState;

/// Name of the session cookie.
const SESSION_COOKIE: &str = "gridsync_office";
const DASHBOARD_HTML: &str = include_str!("dashboard.html");
const LOGIN_HTML: &str = include_str!("login.html");
/// The pages' shared script: language choice and loading a translation table.
const I18N_JS: &str = include_str!("i18n.js");
/// The pages' translation tables, one per language, served to anyone (they hold no data).
pub(crate) const TRANSLATIONS: &[(&str, &str)] = &[
    ("zh", include_str!("i18n-zh.json")),
    ("en", include_str!("i18n-en.json")),
];

/// What the handlers get: the office plus the server's own closing signal.
#[derive(Clone)]
pub(crate) struct AppState {
    pub office: OfficeState,
    /// Flips to true when the server starts shutting down; long-lived streams end on it.
    pub closing: watch::Receiver<bool>,
    /// The server speaks HTTPS: session cookies are marked `Secure`.
    pub https: bool,
}

/// Serves the office API and dashboard on `listener` until `shutdown` completes, then drains
/// open connections. Bind the listener on a loopback or private address
/// ([`crate::check_bind_address`]).
pub async fn serve(
    listener: impl Into<WebListener>,
    state: OfficeState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.into();
    let (closing_tx, closing) = watch::channel(false);
    let app = router(AppState {
        office: state,
        closing,
        https: listener.is_https(),
    });
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            let _ = closing_tx.send(true);
        })
        .await
}

fn router(state: AppState) -> Router {
    let protected = Router::new()
        .route("/", get(dashboard))
        .route("/api/v1/summary", get(api::summary))
        .route("/api/v1/places", get(api::places))
        .route("/api/v1/buildings/{id}", get(api::building))
        .route("/api/v1/needs", get(api::needs))
        .route("/api/v1/devices", get(api::devices))
        .route("/api/v1/timeline", get(timeline::timeline))
        .route("/api/v1/records", get(api::records))
        .route("/api/v1/export.csv", get(export::csv))
        .route("/api/v1/export.json", get(export::json))
        .route("/api/v1/events", get(events::stream))
        .route("/metrics", get(metrics::render))
        .route("/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_credentials,
        ));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/login", get(login_page).post(login))
        .route("/i18n/{file}", get(translation))
        .route(
            "/i18n.js",
            get(|| async {
                (
                    [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
                    I18N_JS,
                )
            }),
        )
        .route("/assets/{file}", get(assets::asset))
        .merge(protected)
        .fallback(not_found)
        .layer(middleware::from_fn(assets::security_headers))
        .with_state(state)
}

/// `GET /i18n/{zh,en}.json`: a page's translation table.
async fn translation(axum::extract::Path(file): axum::extract::Path<String>) -> Response {
    let lang = file.strip_suffix(".json").unwrap_or(&file);
    match TRANSLATIONS.iter().find(|(code, _)| *code == lang) {
        Some((_, body)) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                // Revalidated on every load, so a new binary's tables win at once.
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => api::error(StatusCode::NOT_FOUND, "no such language (zh, en)"),
    }
}

async fn not_found() -> Response {
    api::error(StatusCode::NOT_FOUND, "no such route")
}

async fn dashboard() -> Response {
    let mut resp = Html(DASHBOARD_HTML).into_response();
    no_store(resp.headers_mut());
    resp
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    cookie(headers, SESSION_COOKIE)
}

/// Lets a request through with a valid bearer token or session cookie; answers 401 otherwise
/// (with the login form for a browser asking for the dashboard).
async fn require_credentials(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let inner = &state.office.inner;
    let headers = req.headers();
    let by_token = bearer(headers).is_some_and(|t| inner.options.token.matches(t));
    let by_session =
        session_cookie(headers).is_some_and(|s| inner.sessions.is_live(s, inner.now_ms() as u64));
    if by_token || by_session {
        return next.run(req).await;
    }
    inner.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
    let mut resp = if req.method() == Method::GET && req.uri().path() == "/" {
        (StatusCode::UNAUTHORIZED, Html(LOGIN_HTML)).into_response()
    } else {
        api::error(
            StatusCode::UNAUTHORIZED,
            "office credentials required: Authorization: Bearer TOKEN, or log in at /login",
        )
    };
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"gridsync office\""),
    );
    resp
}

async fn login_page() -> Response {
    let mut resp = Html(LOGIN_HTML).into_response();
    no_store(resp.headers_mut());
    resp
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

/// Checks the token from the login form and opens a browser session.
async fn login(State(state): State<AppState>, form: axum::Form<LoginForm>) -> Response {
    let inner = &state.office.inner;
    let now = inner.now_ms() as u64;
    if inner.login_throttle.wait(now).is_some() {
        inner.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        let page = LOGIN_HTML.replacen("<body", "<body data-login-throttled", 1);
        return (StatusCode::TOO_MANY_REQUESTS, Html(page)).into_response();
    }
    if !inner.options.token.matches(form.token.trim()) {
        inner.login_throttle.failed(now);
        inner.counters.unauthorized.fetch_add(1, Ordering::Relaxed);
        // The page shows its wrong-token message when its body carries this mark (a status
        // code is not something every browser lets a page read).
        let page = LOGIN_HTML.replacen("<body", "<body data-login-error", 1);
        return (StatusCode::UNAUTHORIZED, Html(page)).into_response();
    }
    inner.login_throttle.succeeded();
    let session = inner.sessions.open(now);
    let cookie = format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{}",
        crate::auth::SESSION_LIFETIME_MS / 1000,
        if state.https { "; Secure" } else { "" }
    );
    let mut resp = Redirect::to("/").into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, value);
    }
    resp
}

async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(session) = session_cookie(&headers) {
        state.office.inner.sessions.close(session);
    }
    let mut resp = Redirect::to("/login").into_response();
    let expired = if state.https {
        "gridsync_office=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure"
    } else {
        "gridsync_office=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"
    };
    resp.headers_mut()
        .insert(header::SET_COOKIE, HeaderValue::from_static(expired));
    resp
}
