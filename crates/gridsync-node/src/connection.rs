//! Drives one peer connection: a [`SyncSession`] fed by the link's bytes, the node's local
//! changes and its own timer, with every effect (bytes to send, documents to store, sync
//! states to persist) carried out here.
//!
//! One task per connection runs [`drive`]. It holds the replica lock only while the session
//! handles an input or a batch of sync states is written, never across an await. Received
//! changes are stored durably as they arrive; sync states only make the next reconnection
//! cheaper, so they wait in memory ([`PendingSyncStates`]) and are written at most once per
//! [`SYNC_STATE_WRITE_INTERVAL`] and when the session ends.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gridsync_net::PeerLink;
use gridsync_proto::{DocPath, NodeId, PeerIdentity, SessionConfig, SessionEvent, SyncSession};
use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::clock::{monotonic_ms, unix_ms};
use crate::node::{DocChange, NodeShared};
use crate::peers::{FoundBy, PeerStatus};

/// The longest a sync state waits in memory before it is written.
///
/// Writing the states in the same flush as the change they follow cost a second fsync per
/// received message on every hop, which doubled live-edit latency (benchmark scenario 4).
/// A sync state only makes the next reconnection cheaper: losing the newest ones to a crash
/// costs one larger sync message then, never data. A second bounds that loss and the write
/// rate (one transaction per connection per second under load); the session's end writes
/// whatever is still pending.
const SYNC_STATE_WRITE_INTERVAL: Duration = Duration::from_secs(1);

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
    let mut sync_states = SyncStateWriter {
        shared,
        peer_id: link.peer.node_id.clone(),
        pending: PendingSyncStates::default(),
    };
    let end = drive_session(shared, link, &mut sync_states).await;
    // Every way out of the session (orderly close, protocol or transport error, peer gone,
    // revocation, node shutdown) passes here; an aborted task is covered by the drop.
    sync_states.write_now();
    end
}

async fn drive_session(
    shared: &Arc<NodeShared>,
    mut link: PeerLink,
    sync_states: &mut SyncStateWriter<'_>,
) -> ConnectionEnd {
    let peer_id = link.peer.node_id.clone();
    let peer = PeerIdentity {
        node_id: link.peer.node_id.clone(),
        role: link.peer.role,
        scopes: link.peer.scopes.clone(),
    };
    let mut config = SessionConfig::new(shared.identity.clone());
    config.limits.frame_timeout_ms = shared.config.frame_timeout_ms;
    // Timed by the monotonic clock: a wall-clock jump must not close or stall the session.
    // Only what is shown (`connected_since_ms`, `last_sync_ms`) is wall time.
    let mut session = SyncSession::new(config, peer, monotonic_ms());
    let mut changes = shared.changes.subscribe();
    let mut shutdown = shared.shutdown.clone();

    loop {
        if let Err(e) = flush(shared, &mut session, &mut link, sync_states).await {
            return e;
        }
        if session.is_closed() {
            return ConnectionEnd::PeerClosed;
        }
        if sync_states.pending.is_due(Instant::now()) {
            sync_states.write_now();
        }
        // The session's deadlines are on `monotonic_ms`'s scale, so they are compared with
        // that clock only; a past deadline sleeps zero ("run the timer now").
        let sleep_for = session
            .poll_timeout()
            .map(|at| Duration::from_millis(at.saturating_sub(monotonic_ms())))
            .unwrap_or(Duration::from_secs(3600));
        // Armed only while states wait, so a quiet session still writes them on time.
        let states_due = sync_states.pending.due_at();

        tokio::select! {
            received = link.recv() => match received {
                Ok(Some(bytes)) => {
                    let result = {
                        let mut replica = shared.lock_replica();
                        session.handle_bytes(monotonic_ms(), &bytes, &mut *replica)
                    };
                    if let Err(e) = result {
                        warn!(error = %e, "closing session: peer sent invalid data");
                        // Send the session's goodbye, if it queued one, before closing.
                        let _ = flush(shared, &mut session, &mut link, sync_states).await;
                        link.close(&e.to_string());
                        return ConnectionEnd::Protocol(e);
                    }
                }
                Ok(None) => {
                    if let Err(e) = session.handle_stream_end() {
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
                        session.local_change(monotonic_ms(), &change.path, &mut *replica);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // Too many changes at once for this connection to follow one by one:
                    // offer every document again; the engine skips those the peer has.
                    warn!(missed, "change feed lagged; re-offering all documents");
                    let mut replica = shared.lock_replica();
                    for path in gridsync_proto::DocumentSet::paths(&*replica) {
                        session.local_change(monotonic_ms(), &path, &mut *replica);
                    }
                }
                Err(RecvError::Closed) => return ConnectionEnd::Shutdown,
            },
            _ = tokio::time::sleep(sleep_for) => {
                {
                    let mut replica = shared.lock_replica();
                    session.handle_timeout(monotonic_ms(), &mut *replica);
                }
                if let Some(error) = session.close_error() {
                    // A timer closed it (a stalled hello or inventory, a partial frame left
                    // incomplete): send the goodbye, then close with the reason, which the
                    // peer sees even if the goodbye is lost.
                    warn!(%error, "closing session: peer too slow");
                    let _ = flush(shared, &mut session, &mut link, sync_states).await;
                    link.close(&error.to_string());
                    return ConnectionEnd::Protocol(error);
                }
            }
            // The fallback instant is never awaited: the branch is disabled without a deadline.
            _ = tokio::time::sleep_until(states_due.unwrap_or_else(Instant::now)),
                if states_due.is_some() => {
                sync_states.write_now();
            }
            _ = shutdown.changed() => {
                link.close("node shutting down");
                return ConnectionEnd::Shutdown;
            }
        }
    }
}

/// Sends what the session queued and carries out its events.
///
/// Bytes go out before the received documents are stored, and received changes are staged
/// with the store writer and announced to the other sessions at once, so neither the reply
/// to the sender nor the next hop waits for an fsync. That is safe: the sender still holds
/// what it sent, and should this node lose a staged change to a crash, the next message
/// from whoever holds it names a change this node lacks, automerge answers with a sync
/// reset, and the change comes again. Sync states are staged after the changes they follow.
///
/// A failed send still lets the events be carried out: the received changes are already in
/// the in-memory replica and must reach the store (and their sync states the pending batch)
/// before the error ends the session.
async fn flush(
    shared: &Arc<NodeShared>,
    session: &mut SyncSession,
    link: &mut PeerLink,
    sync_states: &mut SyncStateWriter<'_>,
) -> Result<(), ConnectionEnd> {
    let mut sent = Ok(());
    while let Some(bytes) = session.poll_transmit() {
        if let Err(e) = link.send(&bytes).await {
            sent = Err(ConnectionEnd::Transport(e));
            break;
        }
    }
    let stats = link.stats();
    let peer_id = &sync_states.peer_id;
    shared.peers.update(peer_id, |s| {
        s.bytes_sent = stats.bytes_sent;
        s.bytes_received = stats.bytes_received;
    });
    let now = Instant::now();
    while let Some(event) = session.poll_event() {
        handle_event(shared, peer_id, event, &mut sync_states.pending, now);
    }
    sent
}

fn handle_event(
    shared: &Arc<NodeShared>,
    peer_id: &NodeId,
    event: SessionEvent,
    pending: &mut PendingSyncStates,
    now: Instant,
) {
    match event {
        SessionEvent::PeerVerified { .. } => {
            info!("peer hello verified; connection accepted");
            let now = unix_ms();
            shared.peers.update(peer_id, |s| {
                if !s.connected {
                    s.connected = true;
                    s.connected_since_ms = Some(now);
                }
            });
        }
        SessionEvent::DocumentChanged {
            path,
            before_heads,
            from,
            received_whole,
            signed_heads,
        } => {
            let persisted = {
                let mut replica = shared.lock_replica();
                replica
                    .persist_received(
                        &path,
                        &before_heads,
                        Some(&from),
                        received_whole,
                        signed_heads,
                    )
                    .map(|()| replica.last_write_ticket())
            };
            match persisted {
                Ok(ticket) => {
                    shared.peers.update(peer_id, |s| s.documents_received += 1);
                    debug!(%path, "stored changes from peer");
                    if is_revocations_doc(shared, &path) {
                        shared.refresh_revocations();
                    }
                    // Other sessions push it on: this is how records travel hop by hop.
                    let _ = shared.changes.send(DocChange {
                        path,
                        from: Some(from),
                        durable_after: ticket,
                    });
                }
                Err(e) => warn!(%path, error = %e, "cannot store changes from peer"),
            }
        }
        SessionEvent::SyncStateUpdated { path, state } => {
            // Written later, so always after the documents it describes are durable (stored
            // above, in the order the session reported them).
            pending.insert(path, state, now);
        }
        SessionEvent::ChangeRefused { path, reason } => {
            shared.peers.update(peer_id, |s| s.refused_changes += 1);
            warn!(%path, %reason, "refused a change from peer");
        }
        SessionEvent::InventoryDone { differing, rounds } => {
            info!(differing, rounds, "inventory finished");
        }
        SessionEvent::UpToDate => {
            let now = unix_ms();
            shared.peers.update(peer_id, |s| {
                s.up_to_date = true;
                s.last_sync_ms = Some(now);
            });
        }
        SessionEvent::Closed { reason } => {
            info!(%reason, "session closed");
        }
    }
}

/// A changed document, to be pushed to every peer but `from`; durable once the store
/// writer settles `durable_after`.
pub(crate) fn announce_change(
    shared: &NodeShared,
    path: DocPath,
    from: Option<NodeId>,
    durable_after: Option<crate::store_writer::WriteTicket>,
) {
    if is_revocations_doc(shared, &path) {
        shared.refresh_revocations();
    }
    let _ = shared.changes.send(DocChange {
        path,
        from,
        durable_after,
    });
}

fn is_revocations_doc(shared: &NodeShared, path: &DocPath) -> bool {
    *path == shared.revocations_path
}

/// Sync states received for one peer and not yet written: the latest per document, and when
/// the oldest of them is due. Pure bookkeeping, so the write policy is testable without IO.
#[derive(Debug, Default)]
struct PendingSyncStates {
    states: BTreeMap<DocPath, Vec<u8>>,
    /// [`SYNC_STATE_WRITE_INTERVAL`] after the first state of the batch arrived; `None` while
    /// nothing is pending.
    due_at: Option<Instant>,
}

impl PendingSyncStates {
    /// Keeps `state` as the one to write for `path`, replacing an older unwritten one.
    fn insert(&mut self, path: DocPath, state: Vec<u8>, now: Instant) {
        self.states.insert(path, state);
        // Counted from the batch's first state, not pushed back by later ones: a session
        // that never goes quiet still writes once per interval.
        self.due_at.get_or_insert(now + SYNC_STATE_WRITE_INTERVAL);
    }

    /// When the pending batch must be written; `None` when nothing is pending.
    fn due_at(&self) -> Option<Instant> {
        self.due_at
    }

    fn is_due(&self, now: Instant) -> bool {
        self.due_at.is_some_and(|due| now >= due)
    }

    /// Everything pending, in path order, leaving nothing behind.
    fn take(&mut self) -> Vec<(DocPath, Vec<u8>)> {
        self.due_at = None;
        std::mem::take(&mut self.states).into_iter().collect()
    }
}

/// One connection's pending sync states and where they go. Dropping it writes what is left,
/// so a connection task aborted at node shutdown loses none.
struct SyncStateWriter<'a> {
    shared: &'a NodeShared,
    peer_id: NodeId,
    pending: PendingSyncStates,
}

impl SyncStateWriter<'_> {
    /// Stages every pending state with the store writer (committed with the next group,
    /// after the documents they describe). A failure is logged and the states dropped: they
    /// are a cache, and the session keeps the live ones in memory.
    fn write_now(&mut self) {
        let states = self.pending.take();
        if states.is_empty() {
            return;
        }
        let count = states.len();
        let mut replica = self.shared.lock_replica();
        if let Err(e) = replica.store_sync_states(&self.peer_id, states) {
            warn!(error = %e, documents = count, "cannot persist sync states");
        }
    }
}

impl Drop for SyncStateWriter<'_> {
    fn drop(&mut self) {
        // While unwinding from a panic, skip the write rather than risk a second panic (an
        // abort); losing sync states costs only a larger next sync.
        if !std::thread::panicking() {
            self.write_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(text: &str) -> DocPath {
        // Invariant: the test paths are valid hierarchical paths.
        DocPath::parse(text).expect("valid test path")
    }

    #[test]
    fn nothing_pending_is_never_due() {
        let pending = PendingSyncStates::default();
        assert_eq!(pending.due_at(), None);
        assert!(!pending.is_due(Instant::now() + Duration::from_secs(3600)));
    }

    #[test]
    fn a_batch_is_due_one_interval_after_its_first_state() {
        let start = Instant::now();
        let mut pending = PendingSyncStates::default();
        pending.insert(path("panhuo/grid-017/bldg-12"), vec![1], start);
        // Later states join the batch without pushing its deadline back.
        pending.insert(
            path("panhuo/grid-017/bldg-13"),
            vec![2],
            start + SYNC_STATE_WRITE_INTERVAL / 2,
        );
        assert_eq!(pending.due_at(), Some(start + SYNC_STATE_WRITE_INTERVAL));
        assert!(!pending.is_due(start + SYNC_STATE_WRITE_INTERVAL - Duration::from_millis(1)));
        assert!(pending.is_due(start + SYNC_STATE_WRITE_INTERVAL));
    }

    #[test]
    fn take_returns_the_latest_state_per_document_and_clears_the_batch() {
        let start = Instant::now();
        let mut pending = PendingSyncStates::default();
        let a = path("panhuo/grid-017/bldg-12");
        let b = path("panhuo/grid-017/bldg-13");
        pending.insert(b.clone(), vec![1], start);
        pending.insert(a.clone(), vec![2], start);
        pending.insert(b.clone(), vec![3], start);
        assert_eq!(pending.take(), vec![(a.clone(), vec![2]), (b, vec![3])]);
        assert_eq!(pending.take(), Vec::new());
        assert_eq!(pending.due_at(), None);

        // The next batch gets a fresh deadline from its own first state.
        let later = start + Duration::from_secs(5);
        pending.insert(a, vec![4], later);
        assert_eq!(pending.due_at(), Some(later + SYNC_STATE_WRITE_INTERVAL));
    }
}
