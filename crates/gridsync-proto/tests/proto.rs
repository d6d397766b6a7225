//! Deterministic, in-memory tests of the sync engine: two sessions driven step by step over a
//! virtual link with a fixed latency and a virtual clock (the shape of quinn-proto's
//! `tests/util.rs`), with the crate's harness, `gridsync_proto::testing`.

#[path = "proto/authorization.rs"]
mod authorization;
#[path = "proto/bounded.rs"]
mod bounded;
#[path = "proto/clock.rs"]
mod clock;
#[path = "proto/convergence.rs"]
mod convergence;
#[path = "proto/hostile.rs"]
mod hostile;
#[path = "proto/partial_frame.rs"]
mod partial_frame;
#[path = "proto/reconnect.rs"]
mod reconnect;
#[path = "proto/short_contact.rs"]
mod short_contact;
