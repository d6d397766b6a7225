//! The app's write routes: each turns its JSON body into a [`FieldWrite`] (the same value the
//! CLI and the control socket apply, so all three validate identically) and answers 201 once
//! the record is durable on this device.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gridsync_node::ReplicaError;
use gridsync_node::ops::{FieldWrite, WriteError};
use gridsync_web::json_error;
use serde::Deserialize;
use serde_json::json;

use super::FieldApp;

/// Longest note or reason accepted from the app (the field model bounds them too).
const MAX_TEXT_CHARS: usize = 2_000;

#[derive(Deserialize)]
pub(super) struct NeedInput {
    need: String,
    #[serde(default)]
    detail: String,
}

#[derive(Deserialize)]
pub(super) struct VisitInput {
    household: String,
    outcome: String,
    #[serde(default = "one")]
    people: u16,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    needs: Vec<NeedInput>,
    #[serde(default)]
    note: String,
}

fn one() -> u16 {
    1
}

#[derive(Deserialize)]
pub(super) struct DeliveryInput {
    household: String,
    item: String,
    status: String,
    #[serde(default)]
    note: String,
}

#[derive(Deserialize)]
pub(super) struct SweepInput {
    building: String,
    round: u32,
    #[serde(default)]
    units: Vec<String>,
    #[serde(default)]
    reached: u32,
    #[serde(default)]
    not_home: u32,
    #[serde(default)]
    refused: u32,
    #[serde(default)]
    issues: Vec<String>,
}

#[derive(Deserialize)]
pub(super) struct CorrectionInput {
    building: String,
    record: String,
    reason: String,
    /// A replacement outcome for a visit; absent or null retracts the record.
    outcome: Option<String>,
}

fn optional(text: String) -> Option<String> {
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// A JSON body; one that is not the expected JSON is a 400 `{"error"}` saying what is wrong,
/// like every other error of the API.
pub(super) struct Body<T>(pub T);

impl<T, S> FromRequest<S> for Body<T>
where
    Json<T>: FromRequest<S, Rejection = JsonRejection>,
    S: Send + Sync,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Body(value)),
            Err(rejection) => Err(json_error(StatusCode::BAD_REQUEST, &rejection.body_text())),
        }
    }
}

pub(super) async fn visit(State(app): State<FieldApp>, Body(input): Body<VisitInput>) -> Response {
    let needs = input
        .needs
        .into_iter()
        .map(|n| match optional(n.detail) {
            Some(detail) => format!("{}:{detail}", n.need),
            None => n.need,
        })
        .collect();
    apply(
        &app,
        FieldWrite::Visit {
            household: input.household,
            outcome: input.outcome,
            people: input.people,
            flags: input.flags,
            needs,
            note: optional(input.note),
            volunteer: None,
            at_ms: None,
        },
    )
    .await
}

pub(super) async fn delivery(
    State(app): State<FieldApp>,
    Body(input): Body<DeliveryInput>,
) -> Response {
    apply(
        &app,
        FieldWrite::Delivery {
            household: input.household,
            item: input.item,
            status: input.status,
            note: optional(input.note),
        },
    )
    .await
}

pub(super) async fn sweep(State(app): State<FieldApp>, Body(input): Body<SweepInput>) -> Response {
    apply(
        &app,
        FieldWrite::Sweep {
            building: input.building,
            round: input.round,
            units: input.units,
            reached: input.reached,
            not_home: input.not_home,
            refused: input.refused,
            issues: input.issues.into_iter().filter_map(optional).collect(),
        },
    )
    .await
}

pub(super) async fn correction(
    State(app): State<FieldApp>,
    Body(input): Body<CorrectionInput>,
) -> Response {
    if input.reason.trim().is_empty() {
        return json_error(StatusCode::BAD_REQUEST, "a correction needs a reason");
    }
    apply(
        &app,
        FieldWrite::Correction {
            building: input.building,
            record: input.record,
            reason: input.reason.trim().to_owned(),
            outcome: input.outcome.and_then(optional),
        },
    )
    .await
}

/// Applies `write` through the node (durable before it answers) off the async workers.
async fn apply(app: &FieldApp, write: FieldWrite) -> Response {
    if let Some(text) = too_long(&write) {
        return json_error(
            StatusCode::BAD_REQUEST,
            &format!("{text} is longer than {MAX_TEXT_CHARS} characters"),
        );
    }
    let node = app.inner.node.clone();
    // Boxed: a refused write's error is large, and only its message travels on.
    match tokio::task::spawn_blocking(move || node.write(write).map_err(Box::new)).await {
        Ok(Ok(receipt)) => (
            StatusCode::CREATED,
            Json(json!({
                "record_id": receipt.record_id,
                "document": receipt.document.as_str(),
                "message": receipt.message,
                "sync": "device",
            })),
        )
            .into_response(),
        Ok(Err(e)) => json_error(write_status(&e), &e.to_string()),
        Err(_) => json_error(StatusCode::INTERNAL_SERVER_ERROR, "the write failed"),
    }
}

fn too_long(write: &FieldWrite) -> Option<&'static str> {
    let long = |s: &str| s.chars().count() > MAX_TEXT_CHARS;
    match write {
        FieldWrite::Visit { note: Some(n), .. } if long(n) => Some("the note"),
        FieldWrite::Delivery { note: Some(n), .. } if long(n) => Some("the note"),
        FieldWrite::Correction { reason, .. } if long(reason) => Some("the reason"),
        _ => None,
    }
}

/// What a refused write tells the app: the user's mistake (400), a record or place that does
/// not exist (404), outside this device's scopes (403), no plan yet (409), a full device
/// (507), or the node's own failure (500). Nothing was written in every case.
fn write_status(e: &WriteError) -> StatusCode {
    match e {
        WriteError::BadValue(_)
        | WriteError::Record(_)
        | WriteError::ReplaceNotVisit
        | WriteError::PlanImport(_)
        | WriteError::PlanApply(_) => StatusCode::BAD_REQUEST,
        WriteError::UnknownHousehold(_)
        | WriteError::UnknownBuilding(_)
        | WriteError::UnknownRecord { .. } => StatusCode::NOT_FOUND,
        WriteError::NoPlan => StatusCode::CONFLICT,
        WriteError::Replica(ReplicaError::OutsideWriteScope { .. }) => StatusCode::FORBIDDEN,
        WriteError::Replica(ReplicaError::StorageCap { .. }) => StatusCode::INSUFFICIENT_STORAGE,
        WriteError::Replica(ReplicaError::Record(_)) => StatusCode::BAD_REQUEST,
        WriteError::Replica(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}
