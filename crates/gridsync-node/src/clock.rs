//! The node's clocks: the one module of gridsync-node that reads time.
//!
//! Two clocks with two jobs. Wall time ([`unix_ms`]) is what is recorded and shown: record
//! times, provenance, status. Monotonic time ([`monotonic_ms`]) is what times things: sync
//! sessions' idle and partial-frame timeouts and deferred work, which a wall clock jumping
//! (a phone setting its time from the network) must not disturb.

use std::time::{SystemTime, UNIX_EPOCH};

/// Unix time in milliseconds: the wall clock, for what is
/// recorded or shown (record times, status); sync sessions are timed by [`monotonic_ms`].
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Milliseconds on a monotonic clock, counted from the first call in this process: what sync
/// sessions are timed by (idle and partial-frame timeouts, deferred work). A wall clock that
/// jumps (a phone setting its time from the network, an operator fixing a wrong date) must
/// neither close every session at once nor stall their timers for hours; wall time is only
/// recorded for display (`unix_ms`), never used to time a session.
pub fn monotonic_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let elapsed = START.get_or_init(std::time::Instant::now).elapsed();
    u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
}
