//! What peers have acknowledged: the heads each peer shares with this node for a document,
//! as the automerge sync state last stored with that peer records them. The field app's
//! per-record sync markers ("reached the captain", "reached the office") are read from these,
//! never guessed from a connection having been open.

use std::collections::BTreeSet;

use automerge::ChangeHash;
use automerge::sync::State;
use gridsync_proto::{DocPath, NodeId, PeerIdentity, Role};

use super::{Replica, ReplicaError};

/// One peer's acknowledgement of one document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledged {
    pub peer: NodeId,
    /// The peer's role as its directory entry certifies it; `None` when this node has no
    /// verified entry for it.
    pub role: Option<Role>,
    /// Heads both sides had the last time a sync state was stored.
    pub heads: Vec<ChangeHash>,
}

impl Replica {
    /// Every peer's acknowledged heads of `path` (peers without a stored state are absent).
    /// Staged states not yet committed count: they are what this node last learnt.
    pub fn acknowledged(&mut self, path: &DocPath) -> Result<Vec<Acknowledged>, ReplicaError> {
        let mut states = self.store.sync_states_of(path)?;
        for ((peer, staged_path), (_, state)) in &self.staged_sync_states {
            if staged_path == path {
                match states.iter_mut().find(|(p, _)| p == peer) {
                    Some(entry) => entry.1 = state.clone(),
                    None => states.push((peer.clone(), state.clone())),
                }
            }
        }
        self.refresh_directory();
        Ok(states
            .into_iter()
            .filter_map(|(peer, bytes)| {
                // A state that does not decode is a lost cache entry: that peer acknowledged
                // nothing we can show.
                let heads = State::decode(&bytes).ok()?.shared_heads;
                let role = self.directory.device(&peer).map(|d| d.role);
                Some(Acknowledged { peer, role, heads })
            })
            .collect())
    }

    /// When a session with `peer` is up to date (both sides had nothing left to send), the
    /// peer holds exactly this node's heads of every shared document, including those the
    /// inventory found identical and so never synced one by one, which no sync state records.
    /// Returns, for each document this device writes that the peer may hold (but those in
    /// `refused`, where the peer turned changes away), a sync state acknowledging the current
    /// heads, where the one last stored says less. An encoded automerge sync state is exactly
    /// its shared heads, so this is the state a per-document sync would have left.
    pub fn states_when_up_to_date(
        &mut self,
        peer: &PeerIdentity,
        refused: &BTreeSet<DocPath>,
    ) -> Result<Vec<(DocPath, Vec<u8>)>, ReplicaError> {
        let Some(mine) = self.write_scopes.clone() else {
            return Ok(Vec::new());
        };
        let mut states = Vec::new();
        for path in self.known_heads.keys().cloned().collect::<Vec<_>>() {
            if !mine.may_write(&path) || !peer.scopes.may_hold(&path) || refused.contains(&path) {
                continue;
            }
            let Some(heads) = self.known_heads(&path) else {
                continue;
            };
            let stored = self
                .sync_state(&peer.node_id, &path)?
                .and_then(|bytes| State::decode(&bytes).ok())
                .map(|state| state.shared_heads);
            if stored.as_ref() != Some(&heads) {
                let mut state = State::new();
                state.shared_heads = heads;
                states.push((path, state.encode()));
            }
        }
        Ok(states)
    }

    /// The role the directory certifies for `node`, if this node holds its entry.
    pub fn device_role(&mut self, node: &NodeId) -> Option<Role> {
        self.refresh_directory();
        self.directory.device(node).map(|d| d.role)
    }
}
