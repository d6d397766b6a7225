//! Runs the street-scale simulation once and prints its figures.
//!
//! The full reference street (about 1,000 buildings, 18,563 households, 1,067 devices):
//!
//! ```sh
//! cargo run --release -p gridsync-sim --bin street-sim -- --scale full
//! ```
//!
//! `--scale reduced` runs the test suite's street; `--seed` picks the schedule;
//! `--out-json FILE` also writes the report as JSON. Exits non-zero, naming the seed, when
//! the street does not converge or an acknowledged record is lost.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};
use gridsync_sim::contact::{StreetConfig, StreetSim};

/// Which street to simulate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scale {
    /// 20 grids, 30 buildings, 34 devices: what the test suite runs.
    Reduced,
    /// The reference street of scenario.md.
    Full,
}

/// Simulate a street of gridsync devices syncing over seeded contacts.
#[derive(Debug, Parser)]
#[command(name = "street-sim")]
struct Flags {
    /// Seed of the schedule and of every lost segment.
    #[arg(long, default_value_t = 1, env = "GRIDSYNC_SIM_SEED")]
    seed: u64,
    /// Street size.
    #[arg(long, value_enum, default_value_t = Scale::Reduced)]
    scale: Scale,
    /// Sweep rounds (days with writes).
    #[arg(long)]
    sweep_days: Option<u32>,
    /// Also write the report as JSON to this file.
    #[arg(long)]
    out_json: Option<PathBuf>,
}

impl Flags {
    fn config(&self) -> StreetConfig {
        let mut config = match self.scale {
            Scale::Reduced => StreetConfig::reduced(self.seed),
            Scale::Full => StreetConfig::full(self.seed),
        };
        if let Some(days) = self.sweep_days {
            config.schedule.sweep_days = days.max(1);
        }
        config
    }
}

fn main() -> ExitCode {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    let flags = Flags::parse();
    let config = flags.config();
    eprintln!(
        "setting up {} devices on {} buildings (seed {})...",
        1 + config.shape.captains + config.shape.volunteers + config.shape.couriers,
        config.shape.buildings,
        config.schedule.seed
    );
    let sim = match StreetSim::new(config) {
        Ok(sim) => sim,
        Err(e) => {
            eprintln!("street-sim: cannot set up the street: {e}");
            return ExitCode::FAILURE;
        }
    };
    let report = match sim.run() {
        Ok(report) => report,
        Err(failure) => {
            eprintln!("street-sim: {failure}");
            return ExitCode::FAILURE;
        }
    };
    println!("{report}");
    if let Some(path) = &flags.out_json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|json| std::fs::write(path, json).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("street-sim: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    }
    ExitCode::SUCCESS
}
