//! `GET /metrics` in the Prometheus text format: peer sessions, bytes and sync lag per peer,
//! the share of records that reached the office through another device, store size, the
//! aggregation's update cost, and the street's headline figures.

use std::collections::BTreeSet;
use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::AppState;

/// Escapes a label value (backslash, double quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Text(String);

impl Text {
    fn head(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }
    fn value(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{labels}}} {value}");
        }
    }
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.head(name, kind, help);
        self.value(name, "", value);
    }
}

pub(crate) async fn render(State(state): State<AppState>) -> Response {
    let now = state.office.inner.now_ms() as u64;
    let node = state.office.node();
    let peers = node.peers();
    let mut t = Text(String::new());

    t.one(
        "gridsync_peer_sessions",
        "gauge",
        "Peer sessions currently connected.",
        peers.iter().filter(|p| p.connected).count(),
    );
    let per_peer: [(&str, &str, &str); 5] = [
        (
            "gridsync_peer_connected",
            "gauge",
            "1 while the peer is connected.",
        ),
        (
            "gridsync_peer_bytes_sent_total",
            "counter",
            "Bytes sent to the peer.",
        ),
        (
            "gridsync_peer_bytes_received_total",
            "counter",
            "Bytes received from the peer.",
        ),
        (
            "gridsync_peer_sync_lag_seconds",
            "gauge",
            "Seconds since the peer and this node last had nothing to send (0 while up to date).",
        ),
        (
            "gridsync_peer_documents_received_total",
            "counter",
            "Documents changed by the peer's messages since the node started.",
        ),
    ];
    for (i, (name, kind, help)) in per_peer.iter().enumerate() {
        t.head(name, kind, help);
        for p in &peers {
            let l = format!("peer=\"{}\",role=\"{}\"", label(p.node_id.as_str()), p.role);
            match i {
                0 => t.value(name, &l, u8::from(p.connected)),
                1 => t.value(name, &l, p.bytes_sent),
                2 => t.value(name, &l, p.bytes_received),
                3 => {
                    let lag = if p.connected && p.up_to_date {
                        Some(0.0)
                    } else {
                        p.last_sync_ms
                            .map(|s| now.saturating_sub(s) as f64 / 1000.0)
                    };
                    if let Some(lag) = lag {
                        t.value(name, &l, lag);
                    }
                }
                _ => t.value(name, &l, p.documents_received),
            }
        }
    }

    // Relayed share: records whose author is neither this node nor one of its direct peers
    // reached the office by being carried through another device.
    let direct: BTreeSet<String> = peers
        .iter()
        .map(|p| p.node_id.to_string())
        .chain([node.node_id().to_string()])
        .collect();
    let (records, relayed, totals) = state.office.with_aggregator(|agg| {
        let mut all = 0u64;
        let mut relayed = 0u64;
        for (who, tally) in agg.authors() {
            all += u64::from(tally.records);
            if !direct.contains(who) {
                relayed += u64::from(tally.records);
            }
        }
        (all, relayed, agg.street_totals().clone())
    });
    t.one(
        "gridsync_records_relayed_ratio",
        "gauge",
        "Share of records held whose author is not a direct peer of this node (carried by relay).",
        if records == 0 {
            0.0
        } else {
            relayed as f64 / records as f64
        },
    );
    t.head(
        "gridsync_records",
        "gauge",
        "Records held, as written, by kind.",
    );
    let r = &totals.records;
    for (kind, n) in [
        ("visit", r.visits),
        ("delivery", r.deliveries),
        ("sweep", r.sweeps),
        ("correction", r.corrections),
        ("malformed", r.malformed),
    ] {
        t.value("gridsync_records", &format!("kind=\"{kind}\""), n);
    }

    // Devices caught signing two different changes with one sequence number: each should be
    // revoked (`gridsync status` names them and the evidence).
    let equivocating: Vec<String> = node
        .lock_replica()
        .equivocators()
        .map(|e| e.node_id.clone())
        .collect();
    t.one(
        "gridsync_equivocating_devices",
        "gauge",
        "Devices caught signing two different changes with one sequence number (revoke them).",
        equivocating.len(),
    );
    if !equivocating.is_empty() {
        t.head(
            "gridsync_equivocating_device",
            "gauge",
            "1 for each device caught equivocating.",
        );
    }
    for device in &equivocating {
        t.value(
            "gridsync_equivocating_device",
            &format!("device=\"{}\"", label(device)),
            1,
        );
    }

    let stats = node.lock_replica().store().stats();
    match stats {
        Ok(s) => {
            t.one(
                "gridsync_store_documents",
                "gauge",
                "Documents in the store.",
                s.documents,
            );
            t.one(
                "gridsync_store_file_bytes",
                "gauge",
                "Size on disk of the store (database plus write-ahead log).",
                s.file_bytes,
            );
            t.one(
                "gridsync_store_pending_chunks",
                "gauge",
                "Incremental chunks not yet compacted.",
                s.chunks,
            );
        }
        Err(e) => tracing::warn!(error = %e, "cannot read store statistics"),
    }

    let c = &state.office.inner.counters;
    t.head(
        "gridsync_document_changes_total",
        "counter",
        "Document changes seen by the office, by source.",
    );
    t.value(
        "gridsync_document_changes_total",
        "source=\"local\"",
        c.local_changes.load(Ordering::Relaxed),
    );
    t.value(
        "gridsync_document_changes_total",
        "source=\"peer\"",
        c.peer_changes.load(Ordering::Relaxed),
    );
    let updates = c.building_updates.load(Ordering::Relaxed);
    t.head(
        "gridsync_office_update_seconds",
        "summary",
        "Time to fold one changed building document into the aggregation.",
    );
    t.value(
        "gridsync_office_update_seconds_sum",
        "",
        c.building_update_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    t.value("gridsync_office_update_seconds_count", "", updates);
    t.one(
        "gridsync_office_update_max_seconds",
        "gauge",
        "Longest single building update.",
        c.building_update_max_micros.load(Ordering::Relaxed) as f64 / 1e6,
    );
    {
        use std::sync::atomic::Ordering::Relaxed;
        let w = node.write_timings();
        t.head(
            "gridsync_write_seconds",
            "summary",
            "Local writes, from request to durable on disk (apply and fsynced append).",
        );
        t.value(
            "gridsync_write_seconds_sum",
            "",
            w.total_micros.load(Relaxed) as f64 / 1e6,
        );
        t.value("gridsync_write_seconds_count", "", w.count.load(Relaxed));
        t.one(
            "gridsync_write_max_seconds",
            "gauge",
            "Slowest single local write.",
            w.max_micros.load(Relaxed) as f64 / 1e6,
        );
    }
    // Provenance: every change received, by the peer it came through and whether that peer
    // wrote it (direct) or carried it for another node (relayed).
    let arrivals = node
        .lock_replica()
        .store()
        .arrival_counts()
        .unwrap_or_default();
    t.head(
        "gridsync_changes_received_total",
        "counter",
        "Changes received, by arrival peer, direct from their author or relayed.",
    );
    for (via, counts) in &arrivals {
        t.value(
            "gridsync_changes_received_total",
            &format!("via=\"{via}\",arrival=\"direct\""),
            counts.direct,
        );
        t.value(
            "gridsync_changes_received_total",
            &format!("via=\"{via}\",arrival=\"relayed\""),
            counts.relayed,
        );
    }
    t.one(
        "gridsync_office_rebuilds_total",
        "counter",
        "Full rebuilds of the aggregation (plan change, new round, lagging feed).",
        c.rebuilds.load(Ordering::Relaxed),
    );
    t.one(
        "gridsync_office_summaries_reused_total",
        "counter",
        "Building summaries rebuilds took from the store, their documents unchanged.",
        c.summaries_reused.load(Ordering::Relaxed),
    );
    t.one(
        "gridsync_office_summaries_computed_total",
        "counter",
        "Building summaries rebuilds computed from documents.",
        c.summaries_computed.load(Ordering::Relaxed),
    );
    t.one(
        "gridsync_office_unauthorized_total",
        "counter",
        "Requests refused for want of office credentials.",
        c.unauthorized.load(Ordering::Relaxed),
    );

    for (name, help, value) in [
        (
            "gridsync_households",
            "Households in the plan.",
            totals.households,
        ),
        (
            "gridsync_households_visited",
            "Households visited in the current round.",
            totals.visited,
        ),
        (
            "gridsync_households_never_reached",
            "Households no visit ever resolved.",
            totals.never_reached,
        ),
        (
            "gridsync_households_open_needs",
            "Households with an open need.",
            totals.open_needs_households,
        ),
        (
            "gridsync_deliveries_pending",
            "Checklist items requested or out for delivery.",
            totals.deliveries.pending,
        ),
    ] {
        t.one(name, "gauge", help, value);
    }

    let mut resp = t.0.into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    resp
}
