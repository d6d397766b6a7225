//! gridsync-proto: the sans-IO sync engine.
//!
//! It replicates a set of automerge documents named by [`DocPath`]s between two peers, under
//! the intersection of their [`Scopes`]. It knows nothing of households or visits (that is
//! gridsync-model) and nothing of sockets, clocks or tasks (that is gridsync-net and
//! gridsync-node): callers feed it bytes and the current time and take back bytes to send and
//! documents to store.
//!
//! Layout: `path` (document names), `identity` (node ids, roles, scope grants).

pub mod identity;
pub mod path;

pub use identity::{Access, NodeId, Role, ScopeGrant, Scopes};
pub use path::{DocPath, PathError};
