//! Provenance: for every change a node holds, who wrote it and through which peer it
//! arrived (the author itself: direct; anyone else: relayed). The office uses it to show
//! how records travel; `gridsync status` shows the direct and relayed shares per peer.

use gridsync_proto::DocPath;
use rusqlite::TransactionBehavior;

use crate::{Store, StoreError};

/// One change's origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeOrigin {
    pub path: DocPath,
    /// The automerge change hash.
    pub change_hash: [u8; 32],
    /// The node that authored the change (from its actor id), `genesis` for a skeleton, or
    /// the actor id in hex when it names no node.
    pub author: String,
    /// The peer it arrived from, or this node's own id for a local write.
    pub via: String,
    /// When it arrived, unix milliseconds.
    pub received_ms: i64,
}

/// How many changes arrived through one peer, split by whether that peer wrote them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ArrivalCounts {
    /// Changes the peer authored itself.
    pub direct: u64,
    /// Changes authored by others that the peer carried here.
    pub relayed: u64,
}

impl Store {
    /// Records where changes came from; a change already recorded keeps its first origin.
    pub fn record_origins(&mut self, origins: &[ChangeOrigin]) -> Result<(), StoreError> {
        if origins.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_origins(&tx, origins)?;
        tx.commit()?;
        Ok(())
    }

    /// Per peer (`via`), how many changes arrived direct from their author and how many
    /// relayed.
    pub fn arrival_counts(&self) -> Result<Vec<(String, ArrivalCounts)>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT via, SUM(author = via), SUM(author != via) FROM provenance
             WHERE author != 'genesis' GROUP BY via ORDER BY via",
        )?;
        let rows = statement.query_map((), |row| {
            Ok((
                row.get::<_, String>(0)?,
                ArrivalCounts {
                    direct: row.get::<_, i64>(1)? as u64,
                    relayed: row.get::<_, i64>(2)? as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// When each change of the document at `path` that arrived from a peer was first held,
    /// unix milliseconds (changes written here have no row).
    pub fn first_received(&self, path: &DocPath) -> Result<Vec<([u8; 32], i64)>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached("SELECT change_hash, received_ms FROM provenance WHERE path = ?1")?;
        let rows = statement.query_map([path.as_str()], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, i64>(1)?))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (hash, received_ms) = row?;
            // A hash of another length cannot name a change; the row is ignored, not trusted.
            if let Ok(hash) = <[u8; 32]>::try_from(hash.as_slice()) {
                out.push((hash, received_ms));
            }
        }
        Ok(out)
    }

    /// The recorded origin of one change, if any.
    pub fn change_origin(
        &self,
        path: &DocPath,
        change_hash: &[u8; 32],
    ) -> Result<Option<(String, String)>, StoreError> {
        use rusqlite::OptionalExtension;
        Ok(self
            .conn
            .prepare_cached(
                "SELECT author, via FROM provenance WHERE path = ?1 AND change_hash = ?2",
            )?
            .query_row((path.as_str(), &change_hash[..]), |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .optional()?)
    }
}

/// Inserts origins inside a caller's transaction; a change already recorded keeps its first.
pub(crate) fn insert_origins(
    tx: &rusqlite::Transaction<'_>,
    origins: &[ChangeOrigin],
) -> Result<(), StoreError> {
    let mut statement = tx.prepare_cached(
        "INSERT OR IGNORE INTO provenance (path, change_hash, author, via, received_ms)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for o in origins {
        statement.execute((
            o.path.as_str(),
            &o.change_hash[..],
            &o.author,
            &o.via,
            o.received_ms,
        ))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_direct_and_relayed_arrivals_once_per_change() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::create(dir.path()).unwrap();
        let path = DocPath::parse("panhuo/grid-001/b-1").unwrap();
        let origin = |hash: u8, author: &str, via: &str| ChangeOrigin {
            path: path.clone(),
            change_hash: [hash; 32],
            author: author.into(),
            via: via.into(),
            received_ms: 1,
        };
        store
            .record_origins(&[
                origin(1, "vol-1", "cap-1"),
                origin(2, "cap-1", "cap-1"),
                origin(3, "vol-2", "cap-1"),
            ])
            .unwrap();
        // The same change arriving again through another peer keeps its first origin.
        store
            .record_origins(&[origin(1, "vol-1", "vol-1")])
            .unwrap();
        let counts = store.arrival_counts().unwrap();
        assert_eq!(
            counts,
            vec![(
                "cap-1".to_owned(),
                ArrivalCounts {
                    direct: 1,
                    relayed: 2
                }
            )]
        );
        assert_eq!(
            store.change_origin(&path, &[1; 32]).unwrap(),
            Some(("vol-1".into(), "cap-1".into()))
        );
        assert_eq!(store.change_origin(&path, &[9; 32]).unwrap(), None);
    }
}
