//! Streaming exports of every record as written: CSV with a header line, or one JSON array.
//!
//! A blocking task walks the building documents in path order, copies one document at a time
//! out of the replica (the lock is held only for the copy, never while writing to the socket),
//! and writes its rows into chunks of [`CHUNK_BYTES`] sent over a channel of [`CHUNKS_IN_FLIGHT`]
//! chunks. A slow client makes the task wait, so memory stays at one document plus a few
//! chunks however large the street is; a client that goes away ends the task.

use std::io::Write;

use automerge::Automerge;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use gridsync_model::{ExportRow, FirstSight};
use gridsync_proto::DocPath;
use tokio::sync::mpsc;

use super::AppState;
use super::events::ReceiverStream;
use crate::aggregate::is_building_path;

/// Size of one chunk of the response body.
const CHUNK_BYTES: usize = 32 * 1024;
/// Chunks queued ahead of the client.
const CHUNKS_IN_FLIGHT: usize = 4;

type Chunk = Result<Bytes, std::io::Error>;

/// A `Write` that hands full chunks to the response body; fails once the client is gone.
struct ChunkSink {
    buf: Vec<u8>,
    tx: mpsc::Sender<Chunk>,
}

impl ChunkSink {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(CHUNK_BYTES),
        ));
        self.tx
            .blocking_send(Ok(chunk))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl Write for ChunkSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Json,
}

pub(crate) async fn csv(State(state): State<AppState>) -> Response {
    stream(state, Format::Csv)
}

pub(crate) async fn json(State(state): State<AppState>) -> Response {
    stream(state, Format::Json)
}

fn stream(state: AppState, format: Format) -> Response {
    let (tx, rx) = mpsc::channel::<Chunk>(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        let sink = ChunkSink {
            buf: Vec::with_capacity(CHUNK_BYTES),
            tx,
        };
        if let Err(e) = write_all(&state, format, sink) {
            tracing::debug!(error = %e, "export ended early");
        }
    });
    let (content_type, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "gridsync-export.csv"),
        Format::Json => ("application/json", "gridsync-export.json"),
    };
    let mut resp = Body::from_stream(ReceiverStream(rx)).into_response();
    let headers = resp.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, v);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// Building documents held, in path order.
fn building_paths(state: &AppState) -> Vec<DocPath> {
    let replica = state.office.node().lock_replica();
    let street = replica.street().to_owned();
    match replica.doc_paths() {
        Ok(paths) => paths
            .into_iter()
            .filter(|p| is_building_path(&street, p))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the documents to export");
            Vec::new()
        }
    }
}

/// Calls `each` for every well-formed record of every building document, one document at a
/// time.
fn for_each_row(
    state: &AppState,
    mut each: impl FnMut(&ExportRow) -> std::io::Result<()>,
) -> std::io::Result<u64> {
    let mut rows = 0u64;
    for path in building_paths(state) {
        // Copy one document out (loading it if need be) and let go of the lock before
        // writing anything.
        let Some((doc, sight)) = copy_document(state, &path) else {
            continue;
        };
        for row in gridsync_model::export_rows(&doc, &path, &sight).filter_map(Result::ok) {
            rows += 1;
            each(&row)?;
        }
    }
    Ok(rows)
}

/// A copy of the document at `path`, loaded from the store if it is not in memory, with when
/// the office first saw each of its records; `None` when it is gone or cannot be loaded
/// (logged: one unreadable document does not stop an export or a records page).
pub(crate) fn copy_document(state: &AppState, path: &DocPath) -> Option<(Automerge, FirstSight)> {
    let now = state.office.inner.now_ms();
    let mut replica = state.office.node().lock_replica();
    crate::state::copy_seen(&mut replica, path, now).map(|(_, doc, sight)| (doc, sight))
}

fn write_all(state: &AppState, format: Format, mut sink: ChunkSink) -> std::io::Result<()> {
    let rows = match format {
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut sink);
            let rows = for_each_row(state, |row| w.serialize(row).map_err(std::io::Error::other))?;
            if rows == 0 {
                // The header comes with the first row; an empty export still gets one.
                w.write_record(gridsync_model::ExportRow::COLUMNS)
                    .map_err(std::io::Error::other)?;
            }
            w.flush()?;
            rows
        }
        Format::Json => {
            let mut first = true;
            let rows = for_each_row(state, |row| {
                sink.write_all(if first { b"[\n" } else { b",\n" })?;
                first = false;
                serde_json::to_writer(&mut sink, row).map_err(std::io::Error::other)
            })?;
            sink.write_all(if rows == 0 { b"[]\n" } else { b"\n]\n" })?;
            rows
        }
    };
    sink.flush()?;
    tracing::info!(rows, "export streamed");
    Ok(())
}
