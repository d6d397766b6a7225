//! How big a run is: `full` is the sizes, `smoke` a small run that checks every
//! scenario completes (CI runs it from the test suite, in a debug build).

use clap::ValueEnum;

/// The size of a benchmark run. Each scenario chooses its own numbers for each scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scale {
    /// Small enough to finish in seconds in a debug build; figures are not meaningful.
    Smoke,
    /// The sizes the benchmark issue names (run in release).
    Full,
}

impl Scale {
    /// Picks the smoke or the full value.
    pub fn pick<T>(self, smoke: T, full: T) -> T {
        match self {
            Scale::Smoke => smoke,
            Scale::Full => full,
        }
    }

    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Scale::Smoke => "smoke",
            Scale::Full => "full",
        }
    }
}
