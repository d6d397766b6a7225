//! `GET /api/v1/events`: server-sent events. The first event is the current summary; then a
//! `summary` event follows every batch of changes to the aggregation (the `watch` channel
//! coalesces bursts: a slow client gets the newest summary, not a backlog). The stream ends
//! when the server or the node shuts down.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::Response;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::mpsc;

use super::AppState;
use super::api::summary_of;

/// A `Stream` over an mpsc receiver (the body and SSE types of axum take streams).
pub(crate) struct ReceiverStream<T>(pub mpsc::Receiver<T>);

impl<T> futures_core::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

fn summary_event(state: &AppState) -> Event {
    let summary = summary_of(state);
    let event = Event::default()
        .event("summary")
        .id(summary.version.to_string());
    match serde_json::to_string(&summary) {
        Ok(data) => event.data(data),
        Err(e) => event.data(format!("{{\"error\":\"{e}\"}}")),
    }
}

pub(crate) async fn stream(State(state): State<AppState>) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(8);
    let mut versions = state.office.subscribe();
    let mut closing = state.closing.clone();
    let mut node_shutdown = state.office.node().shutdown_signal();
    tokio::spawn(async move {
        if tx.send(Ok(summary_event(&state))).await.is_err() {
            return;
        }
        versions.borrow_and_update();
        loop {
            tokio::select! {
                changed = versions.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    versions.borrow_and_update();
                    if tx.send(Ok(summary_event(&state))).await.is_err() {
                        return;
                    }
                }
                _ = closing.changed() => return,
                _ = node_shutdown.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Sse::new(ReceiverStream(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
