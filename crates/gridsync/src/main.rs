//! `gridsync`, the command-line front of a gridsync node.
//!
//! Flags are parsed by clap in `cli`, turned into calls on the library crates in
//! `commands/`, and every error ends as one line on stderr with a non-zero exit code.
//! This is the only place that uses `anyhow`: the libraries return typed errors.

mod cli;
mod commands;
mod output;

use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // The demo narrates on stdout; its nodes' routine warnings (a handshake cut short by a
    // node going out of range) would only clutter it unless asked for with -v.
    let quiet = matches!(cli.command, cli::Command::Demo(_));
    init_tracing(cli.global.verbose, quiet);
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line: the error and its causes, outermost first.
            let chain: Vec<String> = err.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr so that stdout stays clean for `--json` and exports.
fn init_tracing(verbose: u8, quiet: bool) {
    let default_level = match verbose {
        0 if quiet => "error",
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_level));
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .init();
}
