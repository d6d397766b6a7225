//! The node's clocks and randomness: the one module of gridsync-node that reads time or
//! draws entropy.
//!
//! Two clocks with two jobs. Wall time ([`unix_ms`]) is what is recorded and shown: record
//! times, provenance, status. Monotonic time ([`monotonic_ms`]) is what times things: sync
//! sessions' idle and partial-frame timeouts and deferred work, which a wall clock jumping
//! (a phone setting its time from the network) must not disturb.
//!
//! A [`Replica`](crate::Replica) takes its wall time and its randomness (record ids, store
//! incarnations) from the [`Sources`] it is opened with: the system's in a node, a
//! [`Clock::manual`] and a seeded generator in a simulation, which then replays byte for byte.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

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

/// A wall clock in Unix milliseconds: the system's, or one its owner sets (a simulation's
/// virtual time). Clones share one time.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    /// `None`: the system clock.
    manual: Option<Arc<AtomicU64>>,
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock { manual: None }
    }

    /// A clock that reads `start_ms` until [`Clock::set`] moves it.
    pub fn manual(start_ms: u64) -> Clock {
        Clock {
            manual: Some(Arc::new(AtomicU64::new(start_ms))),
        }
    }

    /// Unix time in milliseconds on this clock.
    pub fn unix_ms(&self) -> u64 {
        match &self.manual {
            Some(now) => now.load(Ordering::Relaxed),
            None => unix_ms(),
        }
    }

    /// Sets a manual clock (and every clone of it) to `now_ms`; the system clock ignores it.
    pub fn set(&self, now_ms: u64) {
        if let Some(now) = &self.manual {
            now.store(now_ms, Ordering::Relaxed);
        }
    }
}

/// Where a replica takes wall time and randomness from.
#[derive(Debug)]
pub struct Sources {
    pub clock: Clock,
    /// Record ids and store incarnations are drawn from it. Seeded only in simulations: an
    /// incarnation must never repeat on a real device, so a node draws from the OS.
    pub rng: StdRng,
}

impl Sources {
    /// The system clock and a generator seeded from the operating system: what a node uses.
    pub fn system() -> Sources {
        Sources {
            clock: Clock::system(),
            rng: StdRng::from_os_rng(),
        }
    }

    /// `clock`, and a generator seeded with `seed`: the same seed draws the same ids.
    pub fn seeded(clock: Clock, seed: u64) -> Sources {
        Sources {
            clock,
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A record id minted at `at_ms`: a ULID whose time part is the record's time and whose
    /// 80 random bits come from this generator.
    pub fn record_ulid(&mut self, at_ms: u64) -> ulid::Ulid {
        let random: u128 = self.rng.random();
        ulid::Ulid::from_parts(at_ms, random)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_is_shared_by_its_clones_and_the_system_clock_ignores_set() {
        let clock = Clock::manual(5);
        let clone = clock.clone();
        clock.set(1_780_000_000_000);
        assert_eq!(clone.unix_ms(), 1_780_000_000_000);

        let system = Clock::system();
        system.set(5);
        assert!(system.unix_ms() > 1_700_000_000_000);
    }

    #[test]
    fn the_same_seed_mints_the_same_record_ids_and_another_seed_others() {
        let ids = |seed| {
            let mut sources = Sources::seeded(Clock::manual(0), seed);
            (0..3)
                .map(|i| sources.record_ulid(1_780_000_000_000 + i))
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(7), ids(7));
        assert_ne!(ids(7), ids(8));
        // The time part is the record's time, so ids still sort by it.
        assert_eq!(ids(7)[2].timestamp_ms(), 1_780_000_000_002);
    }
}
