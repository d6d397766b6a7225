//! The app's read routes: each builds a [`ViewContext`] on a blocking thread (views may load
//! documents from the store) and answers the view's JSON.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridsync_proto::Role;
use gridsync_web::json_error;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{FieldApp, view_error};
use crate::views::{self, ViewContext, ViewError};

/// Most records `GET /api/v1/records` lists by default and at all.
const DEFAULT_RECORDS: usize = 100;
const MAX_RECORDS: usize = 1_000;

/// Runs `view` against the node's replica off the async workers.
pub(super) async fn with_view(
    app: &FieldApp,
    view: impl FnOnce(&mut ViewContext<'_>, &FieldApp) -> Result<Value, ViewError> + Send + 'static,
) -> Response {
    let app = app.clone();
    let answer = tokio::task::spawn_blocking(move || {
        let node = &app.inner.node;
        let peer_roles = node
            .peers()
            .into_iter()
            .map(|p| (p.node_id, p.role))
            .collect();
        let now_ms = app.now_ms() as i64;
        let mut replica = node.lock_replica();
        let utc_offset_minutes = app.utc_offset_minutes(&mut replica);
        let round_start_ms = gridsync_model::daily_round_start(now_ms, utc_offset_minutes);
        let mut cx = ViewContext {
            replica: &mut replica,
            identity: node.identity(),
            peer_roles,
            round_start_ms,
            now_ms,
            row_cache: &app.inner.row_cache,
        };
        view(&mut cx, &app)
    })
    .await;
    match answer {
        Ok(Ok(value)) => Json(value).into_response(),
        Ok(Err(e)) => view_error(&e),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "the view failed"),
    }
}

pub(super) async fn me(State(app): State<FieldApp>) -> Response {
    with_view(&app, |cx, app| {
        let utc_offset_minutes = app.utc_offset_minutes(cx.replica);
        Ok(views::me(cx, utc_offset_minutes))
    })
    .await
}

pub(super) async fn assignments(State(app): State<FieldApp>) -> Response {
    with_view(&app, |cx, _| views::assignments(cx)).await
}

#[derive(Deserialize)]
pub(super) struct SearchQuery {
    #[serde(default)]
    q: String,
}

pub(super) async fn search(State(app): State<FieldApp>, Query(q): Query<SearchQuery>) -> Response {
    if q.q.trim().is_empty() {
        return json_error(
            StatusCode::BAD_REQUEST,
            "search for a door or a household: ?q=101",
        );
    }
    with_view(&app, move |cx, _| views::search(cx, &q.q)).await
}

pub(super) async fn household(State(app): State<FieldApp>, Path(id): Path<String>) -> Response {
    with_view(&app, move |cx, _| views::household(cx, &id)).await
}

pub(super) async fn building(State(app): State<FieldApp>, Path(id): Path<String>) -> Response {
    with_view(&app, move |cx, _| views::building(cx, &id)).await
}

#[derive(Deserialize)]
pub(super) struct RecordsQuery {
    limit: Option<usize>,
}

pub(super) async fn records(
    State(app): State<FieldApp>,
    Query(q): Query<RecordsQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(DEFAULT_RECORDS).min(MAX_RECORDS);
    with_view(&app, move |cx, _| {
        let mine = views::my_records(cx)?;
        Ok(json!({
            "records": mine.rows.iter().take(limit).map(|r| r.json.clone()).collect::<Vec<_>>(),
            "total": mine.rows.len(),
            "not_at_office": mine.not_at_office,
            "only_on_device": mine.only_on_device,
        }))
    })
    .await
}

pub(super) async fn sync(State(app): State<FieldApp>) -> Response {
    with_view(&app, |cx, app| {
        let mine = views::my_records(cx)?;
        let peers: Vec<Value> = app
            .inner
            .node
            .peers()
            .into_iter()
            .map(|p| {
                json!({
                    "node_id": p.node_id.as_str(),
                    "role": p.role.as_str(),
                    "connected": p.connected,
                    "last_sync_ms": p.last_sync_ms,
                    "address": p.address,
                })
            })
            .collect();
        Ok(json!({
            "records": mine.rows.len(),
            "not_at_office": mine.not_at_office,
            "only_on_device": mine.only_on_device,
            "peers": peers,
        }))
    })
    .await
}

/// Captains (and the office) review buildings; a volunteer's device has nothing to merge.
fn may_review(app: &FieldApp) -> bool {
    matches!(app.inner.node.identity().role, Role::Captain | Role::Office)
}

fn not_a_captain() -> Response {
    json_error(
        StatusCode::FORBIDDEN,
        "reviewing a building's logs is for building captains",
    )
}

pub(super) async fn review(State(app): State<FieldApp>) -> Response {
    if !may_review(&app) {
        return not_a_captain();
    }
    with_view(&app, |cx, app| {
        let last_sync: BTreeMap<_, _> = app
            .inner
            .node
            .peers()
            .into_iter()
            .filter_map(|p| Some((p.node_id, p.last_sync_ms?)))
            .collect();
        views::review(cx, &last_sync, app.inner.options.quiet_after_hours)
    })
    .await
}

pub(super) async fn review_building(
    State(app): State<FieldApp>,
    Path(building): Path<String>,
) -> Response {
    if !may_review(&app) {
        return not_a_captain();
    }
    with_view(&app, move |cx, _| views::review_building(cx, &building)).await
}
