//! Drives one peer connection: a [`SyncSession`] fed by the link's bytes, the node's local
//! changes and its own timer, with every effect (bytes to send, documents to store, sync
//! states to persist) carried out here.
//!
//! One task per connection runs [`drive`]. It holds the replica lock only while the session
//! handles an input, never across an await.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use gridsync_net::PeerLink;
use gridsync_proto::{DocPath, NodeId, PeerIdentity, SessionConfig, SessionEvent, SyncSession};
use tokio::sync::broadcast::error::RecvError;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::node::{DocChange, NodeShared, unix_ms};
use crate::peers::{FoundBy, PeerStatus};

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
}

/// Runs one connection until it ends; records its status in the peer table.
pub async fn drive(shared: Arc<NodeShared>, link: PeerLink, found_by: FoundBy) -> ConnectionEnd {
    let peer = link.peer.clone();
    let span = info_span!("peer", node = %peer.node_id, role = %peer.role, addr = %link.remote);
    async move {
        // Two links to one peer can coexist for a while (both dialed at once, or the old one
        // of a restarted peer not yet timed out); each syncs correctly on its own, so none
        // is refused. The table counts them.
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

async fn run_session(shared: &Arc<NodeShared>, mut link: PeerLink) -> ConnectionEnd {
    let peer_id = link.peer.node_id.clone();
    let peer = PeerIdentity {
        node_id: link.peer.node_id.clone(),
        role: link.peer.role,
        scopes: link.peer.scopes.clone(),
    };
    let config = SessionConfig::new(shared.identity.clone());
    let mut session = SyncSession::new(config, peer, unix_ms());
    let mut changes = shared.changes.subscribe();
    let mut shutdown = shared.shutdown.clone();

    loop {
        if let Err(e) = flush(shared, &mut session, &mut link, &peer_id).await {
            return e;
        }
        if session.is_closed() {
            return ConnectionEnd::PeerClosed;
        }
        let sleep_for = session
            .poll_timeout()
            .map(|at| Duration::from_millis(at.saturating_sub(unix_ms())))
            .unwrap_or(Duration::from_secs(3600));

        tokio::select! {
            received = link.recv() => match received {
                Ok(Some(bytes)) => {
                    let result = {
                        let mut replica = shared.lock_replica();
                        session.handle_bytes(unix_ms(), &bytes, &mut *replica)
                    };
                    if let Err(e) = result {
                        warn!(error = %e, "closing session: peer sent invalid data");
                        // Send the session's goodbye, if it queued one, before closing.
                        let _ = flush(shared, &mut session, &mut link, &peer_id).await;
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
                    // Do not echo a change back to the peer it came from.
                    if change.from.as_ref() != Some(&peer_id) {
                        let mut replica = shared.lock_replica();
                        session.local_change(unix_ms(), &change.path, &mut *replica);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    // Too many changes at once for this connection to follow one by one:
                    // offer every document again; the engine skips those the peer has.
                    warn!(missed, "change feed lagged; re-offering all documents");
                    let mut replica = shared.lock_replica();
                    for path in gridsync_proto::DocumentSet::paths(&*replica) {
                        session.local_change(unix_ms(), &path, &mut *replica);
                    }
                }
                Err(RecvError::Closed) => return ConnectionEnd::Shutdown,
            },
            _ = tokio::time::sleep(sleep_for) => {
                let mut replica = shared.lock_replica();
                session.handle_timeout(unix_ms(), &mut *replica);
            }
            _ = shutdown.changed() => {
                link.close("node shutting down");
                return ConnectionEnd::Shutdown;
            }
        }
    }
}

/// Sends what the session queued and carries out its events.
async fn flush(
    shared: &Arc<NodeShared>,
    session: &mut SyncSession,
    link: &mut PeerLink,
    peer_id: &NodeId,
) -> Result<(), ConnectionEnd> {
    while let Some(bytes) = session.poll_transmit() {
        link.send(&bytes).await?;
    }
    let stats = link.stats();
    shared.peers.update(peer_id, |s| {
        s.bytes_sent = stats.bytes_sent;
        s.bytes_received = stats.bytes_received;
    });
    // Sync states are kept for one transaction at the end: a busy exchange updates one per
    // document per message, and a commit (with its fsync) for each took a tenth of the CPU
    // of an initial street sync (benchmark scenario 1). They are written after the documents
    // they describe.
    let mut sync_states: BTreeMap<DocPath, Vec<u8>> = BTreeMap::new();
    while let Some(event) = session.poll_event() {
        match event {
            SessionEvent::SyncStateUpdated { path, state } => {
                sync_states.insert(path, state);
            }
            event => handle_event(shared, peer_id, event),
        }
    }
    if !sync_states.is_empty() {
        let states: Vec<(DocPath, Vec<u8>)> = sync_states.into_iter().collect();
        let mut replica = shared.lock_replica();
        if let Err(e) = replica.store_mut().put_sync_states(peer_id, &states) {
            warn!(error = %e, documents = states.len(), "cannot persist sync states");
        }
    }
    Ok(())
}

fn handle_event(shared: &Arc<NodeShared>, peer_id: &NodeId, event: SessionEvent) {
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
        } => {
            let persisted = {
                let mut replica = shared.lock_replica();
                replica.persist_from(&path, &before_heads, Some(&from))
            };
            match persisted {
                Ok(()) => {
                    shared.peers.update(peer_id, |s| s.documents_received += 1);
                    debug!(%path, "stored changes from peer");
                    if is_revocations_doc(shared, &path) {
                        shared.refresh_revocations();
                    }
                    // Other sessions push it on: this is how records travel hop by hop.
                    let _ = shared.changes.send(DocChange {
                        path,
                        from: Some(from),
                    });
                }
                Err(e) => warn!(%path, error = %e, "cannot store changes from peer"),
            }
        }
        SessionEvent::SyncStateUpdated { path, state } => {
            // `flush` batches these; a lone one is stored the same way.
            let mut replica = shared.lock_replica();
            if let Err(e) = replica
                .store_mut()
                .put_sync_states(peer_id, &[(path, state)])
            {
                warn!(error = %e, "cannot persist sync state");
            }
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

/// A change made on this node (not received from a peer), to be pushed to every peer.
pub fn announce_local_change(shared: &NodeShared, path: DocPath) {
    if is_revocations_doc(shared, &path) {
        shared.refresh_revocations();
    }
    let _ = shared.changes.send(DocChange { path, from: None });
}

fn is_revocations_doc(shared: &NodeShared, path: &DocPath) -> bool {
    *path == shared.revocations_path
}
