//! The street-scale simulation: the reference street (about 1,000 buildings, 18,563
//! households, 638 micro-grids, about 1,000 volunteer devices, 60 captains, one office, a few
//! couriers) as real replicas on disk, synced by the real sans-IO engine over simulated
//! contacts in virtual time.
//!
//! The turmoil tier (`crate::nodes::world`) runs whole nodes and steps every host on every tick,
//! which cannot reach a thousand devices. Here each device is a `gridsync_node::Replica` in
//! its own directory, written through the node's field-write path, and a contact is two
//! `gridsync_node::session_driver::SessionDriver`s, the driver the node's connections run,
//! over a simulated pipe with bandwidth, latency and 20 % segment loss, dropped mid-way when
//! the contact's time is up. Only the transport and the clock are simulated.
//!
//! Layout:
//! - `street`: the street's shape, its layout (buildings in grids, grids under captains,
//!   remote grids under couriers), the plan CSV and every device's scopes.
//! - `enroll`: the street CA issuing each device its certificate and invite.
//! - `schedule`: the seeded schedule, a day at a time: writes (a sweep round a day),
//!   contacts, partitions, restarts.
//! - `link`: the simulated byte pipe of a contact.
//! - `device`: one device, its replica and its sessions.
//! - `run`: [`StreetSim`], the event loop; `run::drive`, how a device drives its sessions.
//! - `verify`: the convergence probe and the final checks (on top of `crate::check`).
//! - `report`: [`StreetReport`], the figures.
//! - `fingerprint`: the event log and store digest two runs of one seed are compared by.

pub mod device;
pub mod enroll;
pub mod fingerprint;
pub mod link;
pub mod report;
pub mod run;
pub mod schedule;
pub mod street;
pub mod verify;

pub use enroll::StreetCredentials;
pub use fingerprint::RunFingerprint;
pub use report::StreetReport;
pub use run::{StreetConfig, StreetFailure, StreetSim};
pub use schedule::ScheduleConfig;
pub use street::{StreetLayout, StreetShape};

/// Simulated time, microseconds since the start of the run.
pub type SimTime = u64;

/// Identifies one contact of a run.
pub type ContactId = u64;

/// Why a street simulation could not be set up or run.
#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error("street shape is not valid: {0}")]
    Shape(String),
    #[error("cannot enroll a device: {0}")]
    Enroll(String),
    #[error("cannot prepare a data directory: {0}")]
    DataDir(#[from] std::io::Error),
    #[error("replica: {0}")]
    Replica(#[source] Box<gridsync_node::ReplicaError>),
    #[error("store: {0}")]
    Store(#[from] gridsync_store::StoreError),
    #[error("{device} refused a field write: {message}")]
    Write { device: String, message: String },
}

impl From<gridsync_node::ReplicaError> for ContactError {
    fn from(e: gridsync_node::ReplicaError) -> ContactError {
        ContactError::Replica(Box::new(e))
    }
}
