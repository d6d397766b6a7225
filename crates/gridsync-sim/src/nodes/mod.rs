//! The turmoil tier: whole nodes (store, engine, quinn with mutual TLS) as hosts of a
//! simulated network. See the crate docs for its layout.

pub mod faults;
pub mod host;
pub mod live;
pub mod plan;
pub mod street;
pub mod world;
