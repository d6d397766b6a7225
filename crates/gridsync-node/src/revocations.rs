//! The street's revocation list as a replicated document, `{street}/revocations`.
//!
//! The office writes one entry per revoked node: the CA-signed revocation, as JSON, under the
//! node id. Because the document travels through the mesh like any other, a revocation
//! reaches offline nodes by relay; every node verifies each entry's signature against the
//! street CA before it refuses the node, so no relay can forge or hide one undetected.
//!
//! The document's skeleton (the `revoked` map) comes from a deterministic genesis change, as
//! for the field model's documents, so two nodes never create two different `revoked` maps.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ObjType, ROOT, ReadDoc, Value};
use gridsync_net::{RevocationList, SignedRevocation};
use gridsync_proto::{DocPath, PathError};

/// Name of the document under the street.
pub const SEGMENT: &str = "revocations";
/// The one top-level map.
const REVOKED: &str = "revoked";
/// Largest entry accepted from a document (a signature and a few ids).
const MAX_ENTRY_BYTES: usize = 4096;

pub fn revocations_path(street: &str) -> Result<DocPath, PathError> {
    DocPath::from_segments(&[street, SEGMENT])
}

/// The revocation document's skeleton: byte-identical on every node.
pub fn genesis() -> Automerge {
    let mut doc = Automerge::new().with_actor(ActorId::from([0u8; 16]));
    // Invariant: putting one map into an empty document's root cannot fail.
    doc.transact_with(
        |_| CommitOptions::default().with_time(0),
        |tx| tx.put_object(ROOT, REVOKED, ObjType::Map).map(|_| ()),
    )
    .expect("genesis of the revocation document");
    doc
}

/// Adds a signed revocation (one change). Idempotent per node id.
pub fn add(
    doc: &mut Automerge,
    revocation: &SignedRevocation,
    now_ms: i64,
) -> Result<(), automerge::AutomergeError> {
    let Some((Value::Object(ObjType::Map), map)) = doc.get(ROOT, REVOKED)? else {
        return Err(automerge::AutomergeError::InvalidOp(ObjType::Map));
    };
    // The list is add-only (every node refuses a change that replaces an entry), so a node
    // already revoked is left as it is.
    if doc.get(&map, revocation.node_id.as_str())?.is_some() {
        return Ok(());
    }
    // Invariant: a SignedRevocation is plain data and always serializes.
    let json = serde_json::to_string(revocation).expect("revocation serializes");
    doc.transact_with(
        |_| CommitOptions::default().with_time(now_ms),
        |tx| tx.put(&map, revocation.node_id.as_str(), json.as_str()),
    )
    .map_err(|f| f.error)?;
    Ok(())
}

/// Every well-formed entry in the document. Malformed entries (a buggy or hostile writer)
/// are skipped with a warning.
pub fn read(doc: &Automerge) -> Vec<SignedRevocation> {
    let Ok(Some((Value::Object(ObjType::Map), map))) = doc.get(ROOT, REVOKED) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for item in doc.map_range(&map, ..) {
        let value = item.value.into_value();
        let parsed = match value.as_str() {
            Some(text) if text.len() <= MAX_ENTRY_BYTES => {
                serde_json::from_str::<SignedRevocation>(text).ok()
            }
            _ => None,
        };
        match parsed {
            Some(r) if r.node_id.as_str() == item.key => out.push(r),
            _ => tracing::warn!(key = %item.key, "skipping a malformed revocation entry"),
        }
    }
    out
}

/// Verifies every entry against the street CA and applies the valid ones to `list`.
/// Returns the node ids newly revoked.
pub fn apply_document(
    doc: &Automerge,
    ca_cert_der: &[u8],
    list: &RevocationList,
) -> Vec<gridsync_proto::NodeId> {
    let mut newly = Vec::new();
    for r in read(doc) {
        match list.apply(ca_cert_der, &r) {
            Ok(true) => newly.push(r.node_id.clone()),
            Ok(false) => {}
            Err(e) => {
                tracing::warn!(node = %r.node_id, error = %e, "ignoring a revocation that does not verify")
            }
        }
    }
    newly
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_is_identical_everywhere() {
        assert_eq!(genesis().get_heads(), genesis().get_heads());
        assert_eq!(genesis().save(), genesis().save());
    }
}
