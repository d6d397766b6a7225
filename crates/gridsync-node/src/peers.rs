//! The table of peers a running node knows: how each was found, whether it is connected,
//! bytes each way and when it last synced. `gridsync status` prints it.

use std::collections::BTreeMap;
use std::sync::Mutex;

use gridsync_proto::{NodeId, Role};
use serde::{Deserialize, Serialize};

/// How the node came to talk to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FoundBy {
    /// Listed in the config or the invite's office addresses.
    Static,
    /// Found on the LAN by mDNS.
    Mdns,
    /// The peer dialed us.
    Inbound,
}

/// What `gridsync status` shows for one peer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeerStatus {
    pub node_id: NodeId,
    pub role: Role,
    pub address: String,
    pub found_by: FoundBy,
    /// At least one link to the peer is open and its hello verified.
    pub connected: bool,
    /// Links open to the peer right now (normally one; two for a while when both sides
    /// dialed at once or a restarted peer's old link has not timed out yet).
    pub links: u32,
    /// Unix milliseconds when the current (or last) connection was accepted.
    pub connected_since_ms: Option<u64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Unix milliseconds of the last moment both sides had nothing left to send.
    pub last_sync_ms: Option<u64>,
    /// True while connected and nothing is pending either way.
    pub up_to_date: bool,
    /// Documents changed by this peer's messages since the node started.
    pub documents_received: u64,
    /// Changes this peer sent that were refused (outside its write scope).
    pub refused_changes: u64,
    /// Changes (ever) received through this peer that it authored itself.
    #[serde(default)]
    pub changes_direct: u64,
    /// Changes (ever) received through this peer that others authored: relayed.
    #[serde(default)]
    pub changes_relayed: u64,
}

/// Shared, lock-protected peer table. Held briefly; never across an await.
#[derive(Debug, Default)]
pub struct PeerTable {
    peers: Mutex<BTreeMap<NodeId, PeerStatus>>,
}

impl PeerTable {
    pub fn update(&self, node_id: &NodeId, f: impl FnOnce(&mut PeerStatus)) {
        // Invariant: no code panics while holding this lock, so it is never poisoned;
        // recover the data anyway rather than propagate a panic.
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(status) = peers.get_mut(node_id) {
            f(status);
        }
    }

    /// A new link to a peer was opened (not yet verified). Keeps the counters of an
    /// existing row, so totals survive reconnects.
    pub fn link_opened(&self, status: PeerStatus) {
        let mut peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        match peers.get_mut(&status.node_id) {
            Some(existing) => {
                existing.links += 1;
                existing.address = status.address;
                existing.found_by = status.found_by;
                existing.role = status.role;
            }
            None => {
                peers.insert(status.node_id.clone(), PeerStatus { links: 1, ..status });
            }
        }
    }

    /// A link ended; the peer stays listed as disconnected once its last link is gone.
    pub fn link_closed(&self, node_id: &NodeId) {
        self.update(node_id, |s| {
            s.links = s.links.saturating_sub(1);
            if s.links == 0 {
                s.connected = false;
                s.up_to_date = false;
            }
        });
    }

    pub fn snapshot(&self) -> Vec<PeerStatus> {
        let peers = self.peers.lock().unwrap_or_else(|p| p.into_inner());
        peers.values().cloned().collect()
    }
}
