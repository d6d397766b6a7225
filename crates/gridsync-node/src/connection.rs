//! Drives one peer connection: a [`SessionDriver`] fed by the link's bytes, the node's
//! local changes and its timer, over QUIC and on the monotonic clock.
//!
//! One task per connection runs [`drive`]. It holds the replica lock only while the driver
//! handles an input or carries out events, never across an await. What the driver does with
//! a session's events (persist received changes, batch sync states) is the driver's, shared
//! with the street-scale simulation; what only a running node does (send bytes, update the
//! peer table, announce changes on the node's feed) is here.

use std::sync::Arc;
use std::time::Duration;

use gridsync_net::PeerLink;
use gridsync_proto::{NodeId, PeerIdentity, SessionConfig};
use tokio::sync::broadcast::error::RecvError;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::peers::{FoundBy, PeerStatus};
use crate::session_driver::{DriverOutcome, SessionDriver};
use crate::shared::NodeShared;

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionEnd {
    #[error("peer closed the connection")]
    PeerClosed,
    #[error("node is shutting down")]
    Shutdown,
    #[error("transport: {0}")]
    Transport(#[from] gridsync_net::NetError),
    #[error("protocol: {0}")]
    Protocol(#[from] gridsync_proto::SessionError),
    #[error("peer was revoked by the street office")]
    Revoked,
    #[error("refused: {0}")]
    Refused(#[from] crate::conn_slots::SlotRefused),
}

/// Runs one connection until it ends; records its status in the peer table.
pub(crate) async fn drive(
    shared: Arc<NodeShared>,
    link: PeerLink,
    found_by: FoundBy,
) -> ConnectionEnd {
    let peer = link.peer.clone();
    let span = info_span!("peer", node = %peer.node_id, role = %peer.role, addr = %link.remote);
    async move {
        // Over a cap, the link is refused before its session starts: no hello, no
        // inventory, no entry in the peer table, and the links already open go on.
        let _slot = match shared.slots.try_acquire(&peer.node_id) {
            Ok(slot) => slot,
            Err(refused) => {
                warn!(reason = %refused, "refusing connection");
                link.close(&refused.to_string());
                return ConnectionEnd::Refused(refused);
            }
        };
        // Two links to one peer can coexist for a while (both dialed at once, or the old one
        // of a restarted peer not yet timed out); each syncs correctly on its own, so up to
        // the per-peer cap none is refused. The table counts them.
        shared.peers.link_opened(PeerStatus {
            node_id: peer.node_id.clone(),
            role: peer.role,
            address: link.remote.to_string(),
            found_by,
            // Not yet: a link counts as accepted only once the peer's hello matched its
            // certificate (a server's refusal of our certificate shows only on first use).
            connected: false,
            links: 0,
            connected_since_ms: None,
            bytes_sent: 0,
            bytes_received: 0,
            last_sync_ms: None,
            up_to_date: false,
            documents_received: 0,
            refused_changes: 0,
            changes_direct: 0,
            changes_relayed: 0,
        });
        let end = run_session(&shared, link).await;
        shared.peers.link_closed(&peer.node_id);
        info!(reason = %end, "connection ended");
        end
    }
    .instrument(span)
    .await
}

async fn run_session(shared: &Arc<NodeShared>, link: PeerLink) -> ConnectionEnd {
    let peer = PeerIdentity {
        node_id: link.peer.node_id.clone(),
        role: link.peer.role,
        scopes: link.peer.scopes.clone(),
    };
    let mut config = SessionConfig::new(shared.identity.clone());
    config.limits.frame_timeout_ms = shared.config.frame_timeout_ms;
    // Timed by the node's monotonic clock: a wall-clock jump must not close or stall it.
    // Only what is shown (`connected_since_ms`, `last_sync_ms`) is wall time.
    let mut driver = FinishOnDrop {
        shared,
        driver: SessionDriver::new(config, peer, shared.monotonic.now_ms()),
    };
    // Every way out of the session (orderly close, protocol or transport error, peer gone,
    // revocation, node shutdown) ends in the drop, which writes the pending sync states; so
    // does a task aborted at node shutdown.
    drive_session(shared, link, &mut driver.driver).await
}

async fn drive_session(
    shared: &Arc<NodeShared>,
    mut link: PeerLink,
    driver: &mut SessionDriver,
) -> ConnectionEnd {
    let peer_id = link.peer.node_id.clone();
    let mut changes = shared.changes.subscribe();
    let mut shutdown = shared.shutdown.clone();

    loop {
        if let Err(e) = flush(shared, driver, &mut link).await {
            return e;
        }
        if driver.is_closed() {
            return ConnectionEnd::PeerClosed;
        }
        // The driver's deadlines are on the node's monotonic clock, so they are compared with
        // that clock only; a past deadline sleeps zero ("run the timer now").
        let sleep_for = driver
            .poll_timeout()
            .map(|at| Duration::from_millis(at.saturating_sub(shared.monotonic.now_ms())))
            .unwrap_or(Duration::from_secs(3600));

        // Biased, in this order, so that a run is reproducible under a simulation (an unbiased
        // select draws its branch order from an unseeded generator): shutdown first, then a
        // due timer (cheap, and it must not wait behind a busy link), then the peer's bytes,
        // then local changes (if they ever wait too long, the feed lags and every document is
        // offered again).
        tokio::select! {
            biased;
            _ = shutdown.changed() => {
                link.close("node shutting down");
                return ConnectionEnd::Shutdown;
            }
            _ = tokio::time::sleep(sleep_for) => {
                {
                    let mut replica = shared.lock_replica();
                    driver.handle_timeout(shared.monotonic.now_ms(), &mut replica);
                }
                if let Some(error) = driver.close_error() {
                    // A timer closed it (a stalled hello or inventory, a partial frame left
                    // incomplete): send the goodbye, then close with the reason, which the
                    // peer sees even if the goodbye is lost.
                    warn!(%error, "closing session: peer too slow");
                    let _ = flush(shared, driver, &mut link).await;
                    link.close(&error.to_string());
                    return ConnectionEnd::Protocol(error);
                }
            }
            received = link.recv() => match received {
                Ok(Some(bytes)) => {
                    let result = {
                        let mut replica = shared.lock_replica();
                        driver.handle_bytes(shared.monotonic.now_ms(), &bytes, &mut replica)
                    };
                    if let Err(e) = result {
                        warn!(error = %e, "closing session: peer sent invalid data");
                        // Send the session's goodbye, if it queued one, before closing.
                        let _ = flush(shared, driver, &mut link).await;
                        link.close(&e.to_string());
                        return ConnectionEnd::Protocol(e);
                    }
                }
                Ok(None) => {
                    if let Err(e) = driver.handle_stream_end() {
                        warn!(error = %e, "closing session: peer sent invalid data");
                        link.close(&e.to_string());
                        return ConnectionEnd::Protocol(e);
                    }
                    return ConnectionEnd::PeerClosed;
                }
                Err(e) => return ConnectionEnd::Transport(e),
            },
            change = changes.recv() => match change {
                Ok(change) => {
                    if shared.revocations.is_revoked(&peer_id) {
                        warn!("peer has been revoked; closing");
                        link.close("revoked by the street office");
                        return ConnectionEnd::Revoked;
                    }
                    // Do not echo a change back to the peer it came from. Forwarded at once,
                    // even while it is being made durable here (see `store_writer`).
                    if change.from.as_ref() != Some(&peer_id) {
                        let mut replica = shared.lock_replica();
                        driver.local_change(shared.monotonic.now_ms(), &change.path, &mut replica);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // Too many changes at once for this connection to follow one by one:
                    // offer every document again; the engine skips those the peer has.
                    warn!(missed, "change feed lagged; re-offering all documents");
                    let mut replica = shared.lock_replica();
                    for path in gridsync_proto::DocumentSet::paths(&*replica) {
                        driver.local_change(shared.monotonic.now_ms(), &path, &mut replica);
                    }
                }
                Err(RecvError::Closed) => return ConnectionEnd::Shutdown,
            },
        }
    }
}

/// Sends what the session queued, then has the driver carry out its events and acts on
/// their outcomes.
///
/// Bytes go out before the received documents are stored, and received changes are staged
/// with the store writer and announced to the other sessions at once, so neither the reply
/// to the sender nor the next hop waits for an fsync. That is safe: the sender still holds
/// what it sent, and should this node lose a staged change to a crash, the next message
/// from whoever holds it names a change this node lacks, automerge answers with a sync
/// reset, and the change comes again.
///
/// A failed send still lets the events be carried out: the received changes are already in
/// the in-memory replica and must reach the store (and their sync states the pending batch)
/// before the error ends the session.
async fn flush(
    shared: &Arc<NodeShared>,
    driver: &mut SessionDriver,
    link: &mut PeerLink,
) -> Result<(), ConnectionEnd> {
    let mut sent = Ok(());
    while let Some(bytes) = driver.poll_transmit() {
        if let Err(e) = link.send(&bytes).await {
            sent = Err(ConnectionEnd::Transport(e));
            break;
        }
    }
    let stats = link.stats();
    let peer_id = &link.peer.node_id;
    shared.peers.update(peer_id, |s| {
        s.bytes_sent = stats.bytes_sent;
        s.bytes_received = stats.bytes_received;
    });
    let mut outcomes = Vec::new();
    {
        let mut replica = shared.lock_replica();
        driver.process_events(shared.monotonic.now_ms(), &mut replica, &mut outcomes);
    }
    for outcome in outcomes {
        act_on(shared, peer_id, outcome);
    }
    sent
}

/// What the node does with a driver's outcome: its peer table, logs and change feed.
fn act_on(shared: &Arc<NodeShared>, peer_id: &NodeId, outcome: DriverOutcome) {
    match outcome {
        DriverOutcome::PeerVerified => {
            info!("peer hello verified; connection accepted");
            let now = shared.clock.unix_ms();
            shared.peers.update(peer_id, |s| {
                if !s.connected {
                    s.connected = true;
                    s.connected_since_ms = Some(now);
                }
            });
        }
        DriverOutcome::Stored {
            path,
            from,
            durable_after,
        } => {
            shared.peers.update(peer_id, |s| s.documents_received += 1);
            debug!(%path, "stored changes from peer");
            // Other sessions push it on: this is how records travel hop by hop.
            shared.announce_change(path, Some(from), durable_after);
        }
        DriverOutcome::StoreFailed { path, error } => {
            warn!(%path, %error, "cannot store changes from peer");
        }
        DriverOutcome::Refused { path, reason } => {
            shared.peers.update(peer_id, |s| s.refused_changes += 1);
            warn!(%path, %reason, "refused a change from peer");
        }
        DriverOutcome::InventoryDone { differing, rounds } => {
            info!(differing, rounds, "inventory finished");
        }
        DriverOutcome::UpToDate => {
            let now = shared.clock.unix_ms();
            shared.peers.update(peer_id, |s| {
                s.up_to_date = true;
                s.last_sync_ms = Some(now);
            });
        }
        DriverOutcome::Closed { reason } => {
            info!(%reason, "session closed");
        }
    }
}

/// A connection's driver, whose pending sync states are written however the connection
/// task ends, an abort at node shutdown included.
struct FinishOnDrop<'a> {
    shared: &'a NodeShared,
    driver: SessionDriver,
}

impl Drop for FinishOnDrop<'_> {
    fn drop(&mut self) {
        // While unwinding from a panic, skip the write rather than risk a second panic (an
        // abort); losing sync states costs only a larger next sync.
        if !std::thread::panicking() {
            let mut replica = self.shared.lock_replica();
            self.driver.finish(&mut replica);
        }
    }
}
