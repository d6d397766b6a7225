//! Progress on stderr for long runs: what each scenario is doing, with elapsed time, and
//! counters that print at most a few times a second.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Progress reporter for one scenario. Output goes to stderr so stdout stays the table.
#[derive(Debug)]
pub struct Progress {
    scenario: u32,
    started: Instant,
    last_counter: Mutex<Option<Instant>>,
    quiet: bool,
}

/// Minimum time between two counter lines.
const COUNTER_INTERVAL: Duration = Duration::from_millis(500);

impl Progress {
    /// A reporter for scenario `scenario`; `quiet` silences it (tests).
    pub fn new(scenario: u32, quiet: bool) -> Progress {
        Progress {
            scenario,
            started: Instant::now(),
            last_counter: Mutex::new(None),
            quiet,
        }
    }

    /// Announces a step ("populating 1,000 documents").
    pub fn step(&self, what: &str) {
        if !self.quiet {
            eprintln!(
                "[{} {:>6.1}s] {what}",
                self.scenario,
                self.started.elapsed().as_secs_f64()
            );
        }
    }

    /// Reports `done` of `total` items of `what`; prints only every half second and at the
    /// end, so it can be called in a tight loop.
    pub fn count(&self, what: &str, done: u64, total: u64) {
        if self.quiet {
            return;
        }
        let now = Instant::now();
        let mut last = self
            .last_counter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = last.is_none_or(|at| now.duration_since(at) >= COUNTER_INTERVAL);
        if due || done == total {
            *last = Some(now);
            eprintln!(
                "[{} {:>6.1}s] {what}: {done}/{total}",
                self.scenario,
                self.started.elapsed().as_secs_f64()
            );
        }
    }
}
