//! gridsync's benchmarks, behind one command (`cargo run --release -p gridsync-bench`).
//!
//! Every scenario of the benchmark issue lives in its own file under [`scenarios`] and returns
//! a [`report::ScenarioReport`]: figures, each beside the reference it is compared against,
//! measured in the same run so that ratios hold on a noisy shared machine. [`table`] prints
//! the human-readable table; the same report is written as JSON. [`scale::Scale`] picks the
//! issue's sizes (`full`) or a seconds-long `smoke` run that CI uses to check that every
//! scenario completes.

pub mod harness;
mod node_office;
mod node_street;
pub mod office_street;
pub mod progress;
pub mod report;
pub mod scale;
pub mod scenarios;
pub mod sync_relay;
pub mod sync_run;
pub mod table;
