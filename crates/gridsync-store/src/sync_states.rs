//! Per-(peer, document) automerge sync states, so that a reconnection resumes instead of
//! resending a Bloom filter of every change.

use gridsync_proto::{DocPath, NodeId};
use rusqlite::{OptionalExtension, TransactionBehavior};

use crate::{Store, StoreError};

impl Store {
    /// The encoded sync state last stored for `peer` and `path`.
    pub fn sync_state(&self, peer: &NodeId, path: &DocPath) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT state FROM sync_states WHERE peer = ?1 AND path = ?2")?
            .query_row((peer.as_str(), path.as_str()), |row| row.get(0))
            .optional()?)
    }

    /// Every peer's encoded sync state for `path`, by peer id (an id that does not parse,
    /// which only a damaged store holds, is skipped).
    pub fn sync_states_of(&self, path: &DocPath) -> Result<Vec<(NodeId, Vec<u8>)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT peer, state FROM sync_states WHERE path = ?1 ORDER BY peer")?;
        let rows = stmt.query_map([path.as_str()], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        let mut states = Vec::new();
        for row in rows {
            let (peer, state) = row?;
            if let Ok(peer) = NodeId::parse(&peer) {
                states.push((peer, state));
            }
        }
        Ok(states)
    }

    /// Stores encoded sync states for one peer, replacing older ones, in one transaction.
    pub fn put_sync_states(
        &mut self,
        peer: &NodeId,
        states: &[(DocPath, Vec<u8>)],
    ) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        for (path, state) in states {
            insert_sync_state(&tx, peer, path, state)?;
        }
        tx.commit()?;
        Ok(())
    }
}

/// Writes (or replaces) one sync state inside the caller's transaction.
pub(crate) fn insert_sync_state(
    conn: &rusqlite::Connection,
    peer: &NodeId,
    path: &DocPath,
    state: &[u8],
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO sync_states (peer, path, state) VALUES (?1, ?2, ?3)
         ON CONFLICT (peer, path) DO UPDATE SET state = excluded.state",
    )?
    .execute((peer.as_str(), path.as_str(), state))?;
    Ok(())
}
