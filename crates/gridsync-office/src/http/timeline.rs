//! `GET /api/v1/timeline[?grid=ID]`: the round hour by hour, for the dashboard's charts
//! (coverage over time, needs reported and items delivered per hour), from the live
//! aggregation's [`crate::hourly::HourlyTotals`] of the street or one grid.

use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::api::error;
use crate::hourly::{HOUR_MS, hour_of};

/// Most hours a timeline reports: a round longer than two weeks (a fixed round start) shows
/// its first two weeks.
pub(crate) const MAX_TIMELINE_HOURS: u32 = 14 * 24;

/// `?grid=` narrows the timeline to one grid.
#[derive(Deserialize)]
pub(crate) struct TimelineQuery {
    grid: Option<String>,
}

pub(crate) async fn timeline(
    State(state): State<AppState>,
    Query(query): Query<TimelineQuery>,
) -> Response {
    let now = state.office.inner.now_ms();
    state.office.with_aggregator(|agg| {
        let utc_offset_minutes = state.office.inner.options.utc_offset_for(agg.plan());
        let totals = match &query.grid {
            None => agg.street_totals(),
            Some(grid) => match agg.grids().get(grid) {
                Some(rollup) => &rollup.totals,
                None => return error(StatusCode::NOT_FOUND, "no such grid"),
            },
        };
        let round = agg.round();
        let hourly = &totals.hourly;
        // Up to the current hour, and past it if records claim later hours (a clock ahead,
        // within the clock rule's ten minutes), so no count is left out of the series.
        let newest_counted = [&hourly.visited, &hourly.needs_reported, &hourly.delivered]
            .into_iter()
            .filter_map(|series| series.keys().next_back().copied())
            .max()
            .unwrap_or(0);
        let last = hour_of(round, now)
            .unwrap_or(0)
            .max(newest_counted)
            .min(MAX_TIMELINE_HOURS - 1);
        Json(json!({
            "scope": { "grid": query.grid },
            "generated_ms": now,
            "round_start_ms": round.start_ms,
            "hour_ms": HOUR_MS,
            "utc_offset_minutes": utc_offset_minutes,
            "households": totals.households,
            "hours": hourly.series(round, last),
        }))
        .into_response()
    })
}
