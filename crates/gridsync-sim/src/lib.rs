//! gridsync-sim: the simulated tiers of gridsync's tests, in two modules.
//!
//! - [`nodes`]: whole nodes over a simulated network (turmoil), described below.
//! - [`contact`]: the street-scale tier, the reference street's thousand devices as real
//!   replicas whose contacts run the node's session driver over simulated pipes in virtual
//!   time (see its docs).
//!
//! Both hold their replicas to account with `ledger` (every acknowledged write) and `check`
//! (convergence and durability).
//!
//! **`nodes`.** Whole gridsync nodes (store, sync engine, quinn with mutual TLS) run as hosts of a
//! [turmoil] simulation: quinn talks over turmoil's simulated UDP, so a seed decides packet
//! loss, latency, partitions and crashes, and minutes of network time pass in a second. The
//! node code is the production code; only the socket and the clock are simulated. Each node
//! keeps its automerge documents in a real SQLite store in its own temporary directory, which
//! survives a simulated crash, so a restart reopens what the node had acknowledged.
//!
//! Layout of `nodes`:
//! - `plan`: a small synthetic street plan (grids, buildings, households) as plan CSV.
//! - `street`: the street CA, node roles, and the scopes each role is enrolled with.
//! - `host`: the software a turmoil host runs: open the replica, bind quinn over turmoil,
//!   start the node, then the role's workload (the office imports the plan, volunteers log
//!   visits).
//! - `live`: the running nodes, so the driver can look into their replicas between steps.
//! - `faults`: a seeded schedule of partitions, repairs, crashes and restarts.
//! - `world`: [`SimWorld`], which builds the simulation, drives chaos, heals, and runs until
//!   convergence, reporting failures with the seed that reproduces them.
//!
//! **Reproducibility.** turmoil's network (latency, loss, delivery order), the fault schedule,
//! quinn's randomness and the volunteers' choices derive from the seed; each node's replica
//! reads turmoil's clock and draws its record ids and incarnations from a seeded generator
//! (`host::sources`), its sessions are timed by tokio's clock (simulated under turmoil), its
//! reconnection jitter is seeded from its replica, and its selects are biased. One seed run
//! twice on one street (the same credentials: `SimWorld::on_street`) acknowledges the same
//! writes at the same simulated times and leaves the same store rows, ECDSA signature bytes
//! aside (the suite checks it).

pub mod check;
pub mod contact;
pub mod ledger;
pub mod nodes;

pub use check::{Divergence, DocSnapshot, ReplicaSnapshot, check_acknowledged, check_converged};
pub use ledger::{AckLedger, AckedWrite};
pub use nodes::faults::{ChaosConfig, Fault, FaultSchedule, ScheduledFault};
pub use nodes::live::LiveNodes;
pub use nodes::plan::SyntheticPlan;
pub use nodes::street::{NodeRole, NodeSpec, SimStreet};
pub use nodes::world::{RunReport, SimConfig, SimFailure, SimWorld};

/// Why a simulation could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("cannot create the street ca: {0}")]
    Ca(#[from] gridsync_net::ca::CaError),
    #[error("not a valid node id or scope: {0}")]
    BadName(String),
    #[error("cannot prepare a data directory: {0}")]
    DataDir(#[from] std::io::Error),
    #[error("cannot prepare a replica: {0}")]
    Replica(#[source] Box<gridsync_node::ReplicaError>),
    #[error("cannot build the street plan: {0}")]
    Plan(String),
    #[error("host name {0:?} is used twice")]
    DuplicateHost(String),
    #[error("node {host} dials unknown host {peer:?}")]
    UnknownPeer { host: String, peer: String },
}

impl From<gridsync_node::ReplicaError> for SimError {
    fn from(e: gridsync_node::ReplicaError) -> SimError {
        SimError::Replica(Box::new(e))
    }
}
