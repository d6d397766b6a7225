//! The node's clocks and randomness: the one module of gridsync-node that reads time or
//! draws entropy.
//!
//! Two clocks with two jobs. Wall time ([`Clock`], the system's [`unix_ms`] in a node) is
//! what is recorded and shown: record times, provenance, status. Monotonic time
//! ([`Monotonic`]) is what times things: sync sessions' idle and partial-frame timeouts and
//! deferred work, which a wall clock jumping (a phone setting its time from the network, an
//! operator fixing a wrong date) must neither close at once nor stall for hours.
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

/// A wall clock in Unix milliseconds: the system's, one its owner sets (a street-scale
/// simulation's virtual time), or one read from a function (turmoil's simulated time).
/// Clones share one time.
#[derive(Clone, Default)]
pub struct Clock {
    kind: ClockKind,
}

#[derive(Clone, Default)]
enum ClockKind {
    #[default]
    System,
    Manual(Arc<AtomicU64>),
    Function(Arc<dyn Fn() -> u64 + Send + Sync>),
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.kind {
            ClockKind::System => "system",
            ClockKind::Manual(_) => "manual",
            ClockKind::Function(_) => "function",
        };
        write!(f, "Clock({kind}: {})", self.unix_ms())
    }
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock {
            kind: ClockKind::System,
        }
    }

    /// A clock that reads `start_ms` until [`Clock::set`] moves it.
    pub fn manual(start_ms: u64) -> Clock {
        Clock {
            kind: ClockKind::Manual(Arc::new(AtomicU64::new(start_ms))),
        }
    }

    /// A clock that reads `now()`: a simulation's time, for example.
    pub fn from_fn(now: impl Fn() -> u64 + Send + Sync + 'static) -> Clock {
        Clock {
            kind: ClockKind::Function(Arc::new(now)),
        }
    }

    /// Unix time in milliseconds on this clock.
    pub fn unix_ms(&self) -> u64 {
        match &self.kind {
            ClockKind::System => unix_ms(),
            ClockKind::Manual(now) => now.load(Ordering::Relaxed),
            ClockKind::Function(now) => now(),
        }
    }

    /// Sets a manual clock (and every clone of it) to `now_ms`; other clocks ignore it.
    pub fn set(&self, now_ms: u64) {
        if let ClockKind::Manual(now) = &self.kind {
            now.store(now_ms, Ordering::Relaxed);
        }
    }
}

/// A monotonic millisecond clock for one running node, counted from its start on tokio's
/// clock: real time in a node, the simulation's in turmoil (whose runtimes are paused and
/// advanced step by step), so a simulated session times out in simulated time.
#[derive(Debug, Clone, Copy)]
pub struct Monotonic {
    origin: tokio::time::Instant,
}

impl Monotonic {
    /// Starts counting now. Call within the node's runtime.
    pub fn start() -> Monotonic {
        Monotonic {
            origin: tokio::time::Instant::now(),
        }
    }

    /// Milliseconds since [`Monotonic::start`].
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
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

    /// A seed drawn from this generator, for another seeded generator (a node's reconnection
    /// jitter).
    pub fn draw_seed(&mut self) -> u64 {
        self.rng.random()
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
