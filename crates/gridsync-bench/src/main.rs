//! `gridsync-bench`: runs the benchmark scenarios, prints the table and writes the JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Parser;
use gridsync_bench::progress::Progress;
use gridsync_bench::report::BenchReport;
use gridsync_bench::scale::Scale;
use gridsync_bench::{scenarios, table};

/// gridsync's benchmarks: each figure beside its reference, measured in the same run.
///
/// Examples:
///   cargo run --release -p gridsync-bench                 # every scenario at full size
///   cargo run --release -p gridsync-bench -- --only 1,4   # street sync and live latency
///   cargo run -p gridsync-bench -- --scale smoke          # seconds-long check (what CI runs)
///
/// Progress goes to stderr, the table to stdout, the JSON to --json. Run full-size benchmarks
/// in release on a machine that is otherwise idle; quote medians and ratios.
#[derive(Debug, Parser)]
#[command(name = "gridsync-bench", verbatim_doc_comment)]
struct Args {
    /// How big a run: `full` is the benchmark issue's sizes, `smoke` checks that every
    /// scenario completes.
    #[arg(long, value_enum, default_value = "full")]
    scale: Scale,
    /// Only these scenarios (numbers 1-8, comma separated).
    #[arg(long, value_delimiter = ',')]
    only: Vec<u32>,
    /// Where to write the JSON report [default: target/gridsync-bench-<scale>.json].
    #[arg(long)]
    json: Option<PathBuf>,
    /// No progress lines on stderr.
    #[arg(long, short)]
    quiet: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the selected scenarios; `Ok(false)` if any of them failed to run (a missed target is
/// reported in the table, not as a failure).
fn run(args: &Args) -> anyhow::Result<bool> {
    if let Some(unknown) = args
        .only
        .iter()
        .find(|n| !scenarios::ALL.iter().any(|s| s.number == **n))
    {
        anyhow::bail!("there is no scenario {unknown}; scenarios are numbered 1 to 8");
    }
    let mut report = BenchReport {
        scale: args.scale.name().to_string(),
        machine: machine_description(),
        started_at: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        scenarios: Vec::new(),
    };
    let mut all_ran = true;
    for scenario in scenarios::ALL {
        if !args.only.is_empty() && !args.only.contains(&scenario.number) {
            continue;
        }
        let progress = Progress::new(scenario.number, args.quiet);
        progress.step(&format!("{} ...", scenario.title));
        match (scenario.run)(args.scale, &progress) {
            Ok(result) => report.scenarios.push(result),
            Err(error) => {
                all_ran = false;
                eprintln!(
                    "error: scenario {} ({}): {error:#}",
                    scenario.number, scenario.title
                );
            }
        }
    }
    print!("{}", table::render(&report));
    let json_path = args.json.clone().unwrap_or_else(|| {
        PathBuf::from(format!("target/gridsync-bench-{}.json", args.scale.name()))
    });
    if let Some(parent) = json_path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let json = serde_json::to_string_pretty(&report).context("cannot encode the report")?;
    std::fs::write(&json_path, json)
        .with_context(|| format!("cannot write {}", json_path.display()))?;
    eprintln!("report written to {}", json_path.display());
    Ok(all_ran)
}

/// CPUs, kernel and load average, read from the system so the table says where it ran.
fn machine_description() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kib| kib.parse::<u64>().ok())
        })
        .map_or_else(
            || "? GiB".into(),
            |kib| format!("{:.0} GiB", kib as f64 / 1_048_576.0),
        );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|k| k.trim().to_string())
        .unwrap_or_else(|_| "unknown kernel".into());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    format!("{cpus} CPUs ({model}), {memory}, Linux {kernel}, load average {load} at start")
}
