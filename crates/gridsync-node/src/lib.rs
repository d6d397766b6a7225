//! gridsync-node: the composition root of a gridsync node.
//!
//! It joins the durable store (gridsync-store), the field model (gridsync-model), the sans-IO
//! sync engine (gridsync-proto) and the transport (gridsync-net) into a running node.
//!
//! Layout:
//! - `replica`: store plus in-memory documents; the single path by which writes become durable.
//! - `ops`: the field writes a CLI command or a control request performs.
//! - `docset`: the sync engine's view of a replica.
//! - `config`: the node's validated configuration (TOML plus flags).
//! - `shared`: the state every task of a running node shares (replica lock, change feed,
//!   peer table), private to the crate; `handle`: the one view other crates get of it.
//! - `node`: the running node: starts its tasks (accept loop, dialers, control, mDNS) and
//!   stops them, waiting for each.
//! - `dialer`: keeps a connection to one address up, with backoff.
//! - `session_driver`: what a contact does with its sync session's events (shared with the
//!   street-scale simulation).
//! - `connection`: drives one peer connection's session driver over QUIC.
//! - `conn_slots`: the caps on links per peer and in total.
//! - `control`: the owner-only unix socket through which the CLI reaches a running node.
//! - `discovery`: mDNS advertisement and dialing of LAN peers of the same street.
//! - `peers`, `status`: what `gridsync status` shows.

// Errors here carry paths and causes for one-line messages; they are built only on the
// failure path, where their size costs nothing that matters.
#![allow(clippy::result_large_err)]

pub mod clock;
pub mod config;
pub mod conn_slots;
pub mod connection;
pub mod control;
#[cfg(test)]
mod control_tests;
pub mod credentials;
pub(crate) mod dialer;
pub mod directory;
pub mod discovery;
pub mod docset;
pub mod evidence;
#[doc(hidden)]
pub mod fuzzing;
pub mod handle;
#[cfg(test)]
mod inventory_lock_tests;
pub mod meta_keys;
pub mod node;
pub mod ops;
pub mod peers;
pub mod replica;
pub mod revocations;
pub mod session_driver;
pub(crate) mod shared;
pub mod status;
pub mod store_writer;
pub(crate) mod street_rules;
#[cfg(test)]
mod test_street;
#[cfg(test)]
mod trust_tests;

pub use config::NodeConfig;
pub use handle::NodeHandle;
pub use replica::{Acknowledged, DetachedRead, Replica, ReplicaError, WholeDocument};
pub use shared::DocChange;

/// Why a node could not start or keep running.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Replica(#[from] ReplicaError),
    #[error(transparent)]
    Net(#[from] gridsync_net::NetError),
    #[error("another node is already running on this data directory (control socket {0})")]
    AlreadyRunning(std::path::PathBuf),
    #[error("cannot set up the control socket {path}")]
    Control {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Credentials(#[from] credentials::CredentialsError),
}
