//! End-to-end tests: the real `gridsync` binary, run as separate processes.
//!
//! One integration-test binary made of modules (declared by the `gridsync` crate as the
//! `e2e` test), so the suite links once.

mod bounded_sessions;
mod browser;
mod cli;
mod dashboard;
mod dashboard_https;
mod deploy;
mod export_memory;
mod field_app;
mod field_browser;
mod layering;
mod netns;
mod node_support;
mod readme;
mod support;
mod sync;
