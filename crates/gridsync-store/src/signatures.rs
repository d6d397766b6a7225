//! Change signatures kept beside the documents: for each document and actor, the signature
//! on that actor's newest change held here. One such signature vouches for every earlier
//! change of the actor in the document (gridsync-proto's `signature` module), so it is all a
//! node needs to hand onward with the changes it relays. Written in the same transaction as
//! the changes they sign.

use automerge::{ActorId, ChangeHash};
use gridsync_proto::{ChangeSignature, DocPath, SIGNATURE_LEN, SignedHead};
use rusqlite::TransactionBehavior;

use crate::{Store, StoreError};

impl Store {
    /// The signatures held for `path`: one per actor, on its newest change held.
    pub fn signatures(&self, path: &DocPath) -> Result<Vec<SignedHead>, StoreError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT actor, seq, hash, signature FROM change_signatures WHERE path = ?1",
        )?;
        let rows = statement.query_map([path.as_str()], |row| {
            Ok((
                row.get::<_, Vec<u8>>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, Vec<u8>>(2)?,
                row.get::<_, Vec<u8>>(3)?,
            ))
        })?;
        let mut heads = Vec::new();
        for row in rows {
            let (actor, seq, hash, signature) = row?;
            // A row that does not decode is skipped, as if absent: the worst outcome is a
            // peer refusing the unsigned changes, never a wrong signature handed on.
            let (Ok(hash), Ok(signature)) = (
                ChangeHash::try_from(hash.as_slice()),
                <[u8; SIGNATURE_LEN]>::try_from(signature.as_slice()),
            ) else {
                tracing::warn!(%path, "skipping a stored change signature that does not decode");
                continue;
            };
            heads.push(SignedHead {
                actor: ActorId::from(actor),
                seq: u64::try_from(seq).unwrap_or(0),
                signature: ChangeSignature { hash, signature },
            });
        }
        Ok(heads)
    }

    /// Stores signatures for `path`, each replacing the one held for its actor only when it
    /// signs a newer change.
    pub fn put_signatures(
        &mut self,
        path: &DocPath,
        heads: &[SignedHead],
    ) -> Result<(), StoreError> {
        if heads.is_empty() {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        insert_signatures(&tx, path, heads)?;
        tx.commit()?;
        Ok(())
    }
}

pub(crate) fn insert_signatures(
    tx: &rusqlite::Transaction<'_>,
    path: &DocPath,
    heads: &[SignedHead],
) -> Result<(), StoreError> {
    let mut statement = tx.prepare_cached(
        "INSERT INTO change_signatures (path, actor, seq, hash, signature)
         VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (path, actor) DO UPDATE SET
             seq = excluded.seq, hash = excluded.hash, signature = excluded.signature
         WHERE excluded.seq > change_signatures.seq",
    )?;
    for head in heads {
        statement.execute((
            path.as_str(),
            head.actor.to_bytes(),
            i64::try_from(head.seq).unwrap_or(i64::MAX),
            &head.signature.hash.0[..],
            &head.signature.signature[..],
        ))?;
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn head(actor: &str, seq: u64, byte: u8) -> SignedHead {
        SignedHead {
            actor: ActorId::from(actor.as_bytes()),
            seq,
            signature: ChangeSignature {
                hash: ChangeHash([byte; 32]),
                signature: [byte; SIGNATURE_LEN],
            },
        }
    }

    #[test]
    fn only_a_newer_signature_replaces_an_actors_and_they_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = DocPath::parse("panhuo/grid-001/b-1").unwrap();
        let mut store = Store::create(dir.path()).unwrap();
        store
            .put_signatures(&path, &[head("vol-1", 3, 3), head("vol-2", 1, 1)])
            .unwrap();
        // An older one (a relay that held less) does not replace the newer one.
        store.put_signatures(&path, &[head("vol-1", 2, 2)]).unwrap();
        store.put_signatures(&path, &[head("vol-2", 5, 5)]).unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        let mut held = store.signatures(&path).unwrap();
        held.sort_by_key(|h| h.seq);
        assert_eq!(held, vec![head("vol-1", 3, 3), head("vol-2", 5, 5)]);
        let other = DocPath::parse("panhuo/grid-001/b-2").unwrap();
        assert!(store.signatures(&other).unwrap().is_empty());
    }
}
