//! [`NodeHandle`]: what other crates get of a running node (the office, the simulations,
//! the benchmarks, the examples), in the shape of samod's `Repo`: subscribe to changes,
//! read, write, ask for status, wait until durable. The node's shared state behind it
//! ([`NodeShared`]) stays private to gridsync-node, so its invariants (the lock order, what
//! is written where and when) are kept in one crate.

use std::sync::{Arc, MutexGuard};

use gridsync_proto::{LocalIdentity, NodeId};
use tokio::sync::{broadcast, watch};

use crate::ops::{FieldWrite, WriteError, WriteReceipt};
use crate::peers::PeerStatus;
use crate::replica::Replica;
use crate::shared::{DocChange, NodeShared, WriteTimings};
use crate::status::NodeStatus;
use crate::store_writer::{NotDurable, WriteTicket};

/// A cheap, cloneable handle on a running node.
#[derive(Clone)]
pub struct NodeHandle {
    shared: Arc<NodeShared>,
}

impl NodeHandle {
    pub(crate) fn new(shared: Arc<NodeShared>) -> Self {
        NodeHandle { shared }
    }

    /// This node's id.
    pub fn node_id(&self) -> &NodeId {
        &self.shared.identity.node_id
    }

    /// This node's identity as the sync engine presents it (id, role, scopes).
    pub fn identity(&self) -> &LocalIdentity {
        &self.shared.identity
    }

    /// Every document change from now on: local writes and changes peers bring, announced
    /// as soon as they are in memory (see [`DocChange::durable_after`]).
    pub fn subscribe(&self) -> broadcast::Receiver<DocChange> {
        self.shared.changes.subscribe()
    }

    /// The replica, for reading. Hold it briefly and never across an await: every session
    /// of the node takes it. Writes go through [`NodeHandle::write`] (or the replica's own
    /// staged paths, such as `store_derived`), never a direct commit under this lock.
    pub fn lock_replica(&self) -> MutexGuard<'_, Replica> {
        self.shared.lock_replica()
    }

    /// Applies a field write, pushes it to connected peers and returns once it is durable.
    /// Blocks: call it off the async workers.
    pub fn write(&self, write: FieldWrite) -> Result<WriteReceipt, WriteError> {
        self.shared.write(write)
    }

    /// Peers, documents and caps, as `gridsync status` shows them.
    pub fn status(&self) -> NodeStatus {
        NodeStatus::collect(&self.shared)
    }

    /// Every peer this node knows of and its connection state.
    pub fn peers(&self) -> Vec<PeerStatus> {
        self.shared.peers.snapshot()
    }

    /// The node's wall clock (its replica's): what the office dates rounds, sessions and
    /// reports by, so that a simulation or a test can set it.
    pub fn clock(&self) -> &crate::clock::Clock {
        &self.shared.clock
    }

    /// What the peer table says of `node`, if it ever connected.
    pub fn peer(&self, node: &gridsync_proto::NodeId) -> Option<PeerStatus> {
        self.peers().into_iter().find(|p| p.node_id == *node)
    }

    /// Flips to true once, when the node starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shared.shutdown.clone()
    }

    /// Blocks until everything staged up to `ticket` is durable (or failed).
    pub fn wait_durable(&self, ticket: WriteTicket) -> Result<(), NotDurable> {
        self.shared.durability.wait(ticket)
    }

    /// The newest write ticket the store writer has settled, as it changes.
    pub fn durable_progress(&self) -> watch::Receiver<WriteTicket> {
        self.shared.durability.settled()
    }

    /// Whether the street office has revoked `node` (as this node has learnt it).
    pub fn is_revoked(&self, node: &NodeId) -> bool {
        self.shared.revocations.is_revoked(node)
    }

    /// Whether both handles are on the same running node (not merely the same node id: a
    /// restarted node is another one).
    pub fn is_same_node(&self, other: &NodeHandle) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// How long acknowledged local writes took, for `/metrics`.
    pub fn write_timings(&self) -> &WriteTimings {
        &self.shared.write_timings
    }
}
