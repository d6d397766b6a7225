//! What `gridsync status` reports about a running node.

use serde::{Deserialize, Serialize};

use crate::peers::PeerStatus;
use crate::shared::NodeShared;

/// A snapshot of a running node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeStatus {
    pub node_id: String,
    pub role: String,
    pub street: String,
    /// Unix milliseconds when the node started.
    pub started_ms: u64,
    pub peers: Vec<PeerStatus>,
    /// Every document held, with a short digest of its heads so two nodes' listings can be
    /// compared by eye or by script.
    pub documents: Vec<DocumentStatus>,
    /// Devices caught signing two different changes with one sequence number: their changes
    /// are refused; the office should revoke them.
    #[serde(default)]
    pub equivocating_devices: Vec<EquivocatingDevice>,
    /// The caps the running node enforces (`None` when no node runs).
    #[serde(default)]
    pub limits: Option<LimitsStatus>,
}

/// The storage and connection caps a running node enforces, and its open links.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LimitsStatus {
    pub max_documents: Option<usize>,
    pub max_store_bytes: Option<u64>,
    /// True when a storage cap is the role's default (a volunteer's phone) rather than the
    /// configuration's.
    pub storage_caps_defaulted: bool,
    pub max_connections_per_peer: usize,
    pub max_connections: usize,
    pub open_connections: usize,
}

/// A device this node holds equivocation evidence against.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EquivocatingDevice {
    pub node_id: String,
    pub path: String,
    pub seq: u64,
    pub detected_ms: u64,
    pub advice: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DocumentStatus {
    pub path: String,
    /// Number of changes in the document's history; `None` when the running node does not
    /// have the document loaded (counting would load it).
    pub changes: Option<usize>,
    /// First 12 hex digits of the hash of the sorted heads.
    pub heads_digest: String,
}

impl NodeStatus {
    pub(crate) fn collect(shared: &NodeShared) -> NodeStatus {
        let replica = shared.lock_replica();
        let documents = replica
            .held_paths()
            .into_iter()
            .map(|path| {
                let loaded = replica.loaded_docs().get(&path);
                DocumentStatus {
                    changes: loaded.map(|doc| {
                        usize::try_from(automerge::ReadDoc::stats(doc).num_changes)
                            .unwrap_or(usize::MAX)
                    }),
                    heads_digest: heads_digest(&replica.known_heads(&path).unwrap_or_default()),
                    path: path.to_string(),
                }
            })
            .collect();
        let arrivals: std::collections::BTreeMap<String, gridsync_store::ArrivalCounts> =
            match replica.store().arrival_counts() {
                Ok(counts) => counts.into_iter().collect(),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot read provenance counts");
                    Default::default()
                }
            };
        let mut peers = shared.peers.snapshot();
        for peer in &mut peers {
            if let Some(counts) = arrivals.get(peer.node_id.as_str()) {
                peer.changes_direct = counts.direct;
                peer.changes_relayed = counts.relayed;
            }
        }
        let equivocating_devices = equivocating_devices(&replica);
        NodeStatus {
            equivocating_devices,
            node_id: shared.identity.node_id.to_string(),
            role: shared.identity.role.to_string(),
            street: replica.street().to_owned(),
            started_ms: shared.started_ms,
            peers,
            documents,
            limits: Some(LimitsStatus {
                max_documents: shared.storage_caps.max_documents,
                max_store_bytes: shared.storage_caps.max_store_bytes,
                storage_caps_defaulted: shared.storage_caps.defaulted,
                max_connections_per_peer: shared.config.max_connections_per_peer,
                max_connections: shared.config.max_connections,
                open_connections: shared.slots.total(),
            }),
        }
    }
}

/// The devices `replica` holds equivocation evidence against.
pub fn equivocating_devices(replica: &crate::replica::Replica) -> Vec<EquivocatingDevice> {
    replica
        .equivocators()
        .map(|e| EquivocatingDevice {
            node_id: e.node_id.clone(),
            path: e.path.clone(),
            seq: e.seq,
            detected_ms: e.detected_ms,
            advice: e.advice(),
        })
        .collect()
}

/// A short, order-independent digest of a document's heads.
pub fn heads_digest(heads: &[automerge::ChangeHash]) -> String {
    use sha2::{Digest, Sha256};
    let mut sorted: Vec<_> = heads.iter().map(|h| h.0).collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for h in sorted {
        hasher.update(h);
    }
    hex::encode(&hasher.finalize()[..6])
}
