//! The field app's HTTP server: [`serve`] takes a bound listener, the app and a shutdown
//! signal, like the office's.
//!
//! Routes (all under `/api/v1/` but `login` need the session cookie a login sets):
//! - `GET /` and the app's assets (`assets`), served to anyone: they hold no data;
//! - `POST /api/v1/login` `{"pin"}` -> 204 and the cookie; 401 wrong PIN; 429 paused;
//!   409 no PIN set; `POST /api/v1/logout`;
//! - `GET /api/v1/{me,assignments,search?q=,households/{id},buildings/{id},records,sync}`
//!   (`read`);
//! - `POST /api/v1/{visits,deliveries,sweeps,corrections}` -> 201 with the new record's id
//!   once it is durable on this device (`write`);
//! - `GET /api/v1/review`, `GET /api/v1/review/{building}` (captains and the office).

pub mod assets;
mod read;
mod write;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use gridsync_node::NodeHandle;
use gridsync_web::{LoginThrottle, SignedSessions, cookie, is_address_host, json_error};
use serde::Deserialize;

use crate::pin::PinHash;
use crate::views::ViewError;

/// Name of the session cookie.
const SESSION_COOKIE: &str = "gridsync_field";
/// How long a login lasts: a day, so a volunteer signs in once per shift at most.
pub const SESSION_LIFETIME_MS: u64 = 24 * 3_600_000;

/// Settings of the app that are not the node's.
#[derive(Debug, Clone)]
pub struct FieldOptions {
    /// The street's time zone, minutes east of UTC, while the street plan names none (the
    /// plan's, set at the office with `gridsync plan time-zone`, wins): rounds start at its
    /// local midnight and the pages show its times.
    pub utc_offset_minutes: i32,
    /// Captains see volunteers not heard from for this many hours.
    pub quiet_after_hours: u32,
}

impl Default for FieldOptions {
    fn default() -> Self {
        FieldOptions {
            utc_offset_minutes: gridsync_model::DEFAULT_UTC_OFFSET_MINUTES,
            quiet_after_hours: 6,
        }
    }
}

/// The app: the node it serves, the PIN and the sessions.
#[derive(Clone)]
pub struct FieldApp {
    inner: Arc<AppInner>,
}

struct AppInner {
    node: NodeHandle,
    pin: Option<PinHash>,
    sessions: SignedSessions,
    throttle: LoginThrottle,
    options: FieldOptions,
    row_cache: crate::records::RowCache,
}

impl FieldApp {
    /// The street's time zone: the plan's when it names one (the plan is cached by the
    /// replica, so this reads no document once it is loaded), else the app's default.
    pub(crate) fn utc_offset_minutes(&self, replica: &mut gridsync_node::Replica) -> i32 {
        match replica.street_plan() {
            Ok(Some(plan)) => plan.utc_offset_minutes(),
            _ => None,
        }
        .unwrap_or(self.inner.options.utc_offset_minutes)
    }

    /// The app for `node`, reading the PIN from its store. Without a PIN nobody can log in
    /// (the login says how to set one).
    pub fn new(node: NodeHandle, options: FieldOptions) -> Result<Self, crate::PinError> {
        let (pin, sessions) = {
            let mut replica = node.lock_replica();
            let pin = PinHash::load(&replica)?;
            let key = crate::pin::session_key(&mut replica)?;
            (pin, SignedSessions::new(key, SESSION_LIFETIME_MS))
        };
        Ok(FieldApp {
            inner: Arc::new(AppInner {
                node,
                pin,
                sessions,
                throttle: LoginThrottle::default(),
                options,
                row_cache: Default::default(),
            }),
        })
    }

    /// Whether a PIN is set (the app can be logged into).
    pub fn has_pin(&self) -> bool {
        self.inner.pin.is_some()
    }

    fn now_ms(&self) -> u64 {
        self.inner.node.clock().unix_ms()
    }
}

/// Serves the app on `listener` until `shutdown` completes. Bind it on a loopback or
/// private address (`gridsync_web::check_bind_address`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: FieldApp,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(app))
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(app: FieldApp) -> Router {
    let api = Router::new()
        .route("/api/v1/me", get(read::me))
        .route("/api/v1/assignments", get(read::assignments))
        .route("/api/v1/search", get(read::search))
        .route("/api/v1/households/{id}", get(read::household))
        .route("/api/v1/buildings/{id}", get(read::building))
        .route("/api/v1/records", get(read::records))
        .route("/api/v1/sync", get(read::sync))
        .route("/api/v1/review", get(read::review))
        .route("/api/v1/review/{building}", get(read::review_building))
        .route("/api/v1/visits", post(write::visit))
        .route("/api/v1/deliveries", post(write::delivery))
        .route("/api/v1/sweeps", post(write::sweep))
        .route("/api/v1/corrections", post(write::correction))
        .route("/api/v1/logout", post(logout))
        .route_layer(middleware::from_fn_with_state(app.clone(), require_session));
    Router::new()
        .route("/api/v1/login", post(login))
        .merge(api)
        .merge(assets::routes())
        .fallback(|| async { json_error(StatusCode::NOT_FOUND, "no such route") })
        .layer(middleware::from_fn(require_address_host))
        .with_state(app)
}

/// Answers only requests addressed to an IP address or `localhost`. A page elsewhere on the
/// web can point a name of its own at 127.0.0.1 (DNS rebinding) and have the phone's browser
/// send it requests that reach this server as same-origin to that page; they carry that
/// name in `Host`, and are refused here before any route (login included) sees them.
async fn require_address_host(req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if is_address_host(host) {
        next.run(req).await
    } else {
        json_error(
            StatusCode::MISDIRECTED_REQUEST,
            "the field app answers requests to its address (http://127.0.0.1:PORT/), not to a host name",
        )
    }
}

/// Lets a request through with a live session cookie; 401 otherwise.
async fn require_session(State(app): State<FieldApp>, req: Request, next: Next) -> Response {
    let live = cookie(req.headers(), SESSION_COOKIE)
        .is_some_and(|s| app.inner.sessions.is_live(s, app.now_ms()));
    if live {
        return next.run(req).await;
    }
    json_error(
        StatusCode::UNAUTHORIZED,
        "sign in with this device's PIN: POST /api/v1/login {\"pin\": \"...\"}",
    )
}

#[derive(Deserialize)]
struct Login {
    pin: String,
}

async fn login(State(app): State<FieldApp>, write::Body(body): write::Body<Login>) -> Response {
    let Some(pin) = app.inner.pin.clone() else {
        return json_error(
            StatusCode::CONFLICT,
            "no PIN is set on this device: run `gridsync pin set` on it first",
        );
    };
    let now = app.now_ms();
    if let Some(wait) = app.inner.throttle.wait(now) {
        return json_error(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "too many wrong PINs: try again in {} s",
                wait.as_secs().max(1)
            ),
        );
    }
    let candidate = body.pin;
    // Argon2 takes tens of milliseconds of CPU: off the async workers.
    let right = tokio::task::spawn_blocking(move || pin.verify(candidate.trim()))
        .await
        .unwrap_or(false);
    if !right {
        app.inner.throttle.failed(now);
        return json_error(StatusCode::UNAUTHORIZED, "wrong PIN");
    }
    app.inner.throttle.succeeded();
    let session = app.inner.sessions.open(now);
    let cookie = format!(
        "{SESSION_COOKIE}={session}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        SESSION_LIFETIME_MS / 1000
    );
    let mut resp = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, value);
    }
    resp
}

async fn logout(State(app): State<FieldApp>, req: Request) -> Response {
    if let Some(session) = cookie(req.headers(), SESSION_COOKIE) {
        app.inner.sessions.close(session);
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("gridsync_field=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
    );
    resp
}

/// A view's error as an HTTP answer.
fn view_error(e: &ViewError) -> Response {
    let status = match e {
        ViewError::NoPlan => StatusCode::CONFLICT,
        ViewError::UnknownHousehold(_) | ViewError::UnknownBuilding(_) => StatusCode::NOT_FOUND,
        ViewError::OutOfScope(_) => StatusCode::FORBIDDEN,
        ViewError::Replica(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    json_error(status, &e.to_string())
}
