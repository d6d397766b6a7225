//! The keys of the store's metadata that gridsync-node reads and writes.

/// The node id chosen at `gridsync init` or installed by `gridsync join`.
pub const NODE_ID: &str = "node_id";
/// The street this replica belongs to.
pub const STREET: &str = "street";
/// The incarnation (8 bytes) local changes are written under: see
/// [`crate::Replica::begin_node_incarnation`].
pub const INCARNATION: &str = "actor.incarnation";
/// Prefix of the evidence kept against each device caught equivocating (followed by
/// its node id).
pub const EQUIVOCATION_PREFIX: &str = "evidence.equivocation.";
/// Present once a running node has written under the stored incarnation: it forwards
/// changes before they are durable, so after it stops (or crashes) the incarnation is
/// never written under again.
pub const INCARNATION_USED_BY_NODE: &str = "actor.used_by_node";
