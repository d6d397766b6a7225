//! Evidence against a device that equivocates: two different changes it signed with one
//! (actor, seq). Honest devices never do this (every store incarnation writes under its own
//! actor), so the two signatures prove a tampered device or a stolen key. The evidence is
//! kept in the store's metadata, the device's changes are refused from then on, and
//! `gridsync status` and the office's `/metrics` show it with the advice to revoke it.

use gridsync_proto::{DocPath, NodeId, SignedHead};
use gridsync_store::{Store, StoreError};
use serde::{Deserialize, Serialize};

use crate::meta_keys::EQUIVOCATION_PREFIX;

/// Two different changes one device signed with one sequence number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Equivocation {
    pub node_id: String,
    pub path: String,
    /// The actor (hex) and sequence number both changes claim.
    pub actor: String,
    pub seq: u64,
    /// Each change's hash and the device's signature on it (hex).
    pub first_change: String,
    pub first_signature: String,
    pub second_change: String,
    pub second_signature: String,
    /// When this node saw the second one (unix milliseconds).
    pub detected_ms: u64,
}

impl Equivocation {
    pub fn new(
        node_id: &NodeId,
        path: &DocPath,
        first: &SignedHead,
        second: &SignedHead,
        detected_ms: u64,
    ) -> Equivocation {
        Equivocation {
            node_id: node_id.to_string(),
            path: path.to_string(),
            actor: first.actor.to_hex_string(),
            seq: first.seq,
            first_change: first.signature.hash.to_string(),
            first_signature: hex::encode(first.signature.signature),
            second_change: second.signature.hash.to_string(),
            second_signature: hex::encode(second.signature.signature),
            detected_ms,
        }
    }

    /// What the office should do about it.
    pub fn advice(&self) -> String {
        format!(
            "device {} signed two different changes with one sequence number: revoke it (`gridsync revoke {}`)",
            self.node_id, self.node_id
        )
    }
}

/// Stores `evidence` (the first evidence against a device is kept).
pub fn save(store: &mut Store, evidence: &Equivocation) -> Result<(), StoreError> {
    let key = format!("{EQUIVOCATION_PREFIX}{}", evidence.node_id);
    if store.get_meta(&key)?.is_some() {
        return Ok(());
    }
    // Invariant: plain strings and numbers always serialize.
    let json = serde_json::to_vec(evidence).expect("evidence serializes");
    store.put_meta(&key, &json)
}

/// Every device with stored evidence against it. An entry that does not decode is skipped
/// with a warning (the device is then not refused on its account).
pub fn load(store: &Store) -> Result<std::collections::BTreeMap<NodeId, Equivocation>, StoreError> {
    let mut out = std::collections::BTreeMap::new();
    for (key, value) in store.meta_with_prefix(EQUIVOCATION_PREFIX)? {
        match serde_json::from_slice::<Equivocation>(&value)
            .ok()
            .and_then(|e| NodeId::parse(&e.node_id).ok().map(|n| (n, e)))
        {
            Some((node, evidence)) => {
                out.insert(node, evidence);
            }
            None => tracing::warn!(%key, "skipping equivocation evidence that does not decode"),
        }
    }
    Ok(out)
}
