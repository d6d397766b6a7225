//! The child-process side of scenario 6 (office memory and cold start).
//!
//! The scenario generates a large office store, then re-executes the benchmark binary with
//! [`CHILD_MODE_VAR`] set, so that the resident memory measured is the office's own and not
//! the data generator's. The child never returns to the benchmark: it does one of two things
//! and exits.
//!
//! - [`ChildMode::Office`]: starts the office exactly as `gridsync run --http` does (open the
//!   replica, read the stored identity and dashboard token, bind QUIC, start the node, build
//!   the aggregation off the async threads, bind and serve HTTP on 127.0.0.1), writes an
//!   [`OfficeReady`] file with its HTTP port, phase timings and how many building summaries
//!   it reused from the store or computed, and serves until its stdin closes; then it shuts
//!   down cleanly. The scenario runs it twice on the same store: the first start computes and
//!   stores every building summary, the second (the restart) reuses them.
//! - [`ChildMode::LoadOnly`]: the reference. Opens the store and loads every document with
//!   automerge, nothing else, and writes a [`LoadReport`].

use std::io::Read as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::Context as _;
use gridsync_net::{NetEndpoint, RevocationList};
use gridsync_node::node::{NodeParts, RunningNode};
use gridsync_node::{NodeConfig, Replica};
use gridsync_store::Store;
use serde::{Deserialize, Serialize};

use crate::node_street::resident_memory;

/// Set in the child's environment: which [`ChildMode`] to run (`office` or `load-only`).
pub const CHILD_MODE_VAR: &str = "GRIDSYNC_BENCH_OFFICE_CHILD";
/// Set in the child's environment: the office's data directory.
pub const CHILD_DIR_VAR: &str = "GRIDSYNC_BENCH_OFFICE_DIR";
/// Set in the child's environment: where the child writes its JSON report.
pub const CHILD_REPORT_VAR: &str = "GRIDSYNC_BENCH_OFFICE_REPORT";

/// What a child process of scenario 6 does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildMode {
    /// Start and serve the office.
    Office,
    /// Load every document with automerge alone (the reference).
    LoadOnly,
}

impl ChildMode {
    /// The value of [`CHILD_MODE_VAR`].
    pub fn as_str(self) -> &'static str {
        match self {
            ChildMode::Office => "office",
            ChildMode::LoadOnly => "load-only",
        }
    }

    /// The mode this process was started in, if it is a child.
    pub fn from_env() -> Option<ChildMode> {
        match std::env::var(CHILD_MODE_VAR).ok()?.as_str() {
            "office" => Some(ChildMode::Office),
            "load-only" => Some(ChildMode::LoadOnly),
            _ => None,
        }
    }
}

/// What the office child writes once it serves the API.
#[derive(Debug, Serialize, Deserialize)]
pub struct OfficeReady {
    /// The HTTP port on 127.0.0.1.
    pub http_port: u16,
    /// `Replica::open` (file checks and `PRAGMA quick_check`).
    pub open_ms: f64,
    /// `RunningNode::start`.
    pub node_start_ms: f64,
    /// `OfficeState::new`: the first aggregation over every building (stored summaries reused
    /// where their documents did not change).
    pub aggregate_ms: f64,
    /// From the child's entry to the HTTP listener serving.
    pub total_ms: f64,
    /// Building summaries the first aggregation took from the store (documents unchanged
    /// since a previous start stored them).
    pub summaries_reused: u64,
    /// Building summaries the first aggregation computed from documents (and stored).
    pub summaries_computed: u64,
}

/// What the load-only child reports.
#[derive(Debug, Serialize, Deserialize)]
pub struct LoadReport {
    /// Documents loaded.
    pub documents: usize,
    /// From the child's entry until every document was loaded.
    pub load_ms: f64,
    /// VmRSS once everything was loaded, bytes.
    pub resident_bytes: u64,
    /// VmHWM, bytes.
    pub peak_bytes: u64,
}

/// Runs the child `mode` and exits the process (status 1 with the error on stderr).
pub fn run_child(mode: ChildMode) -> ! {
    let started = Instant::now();
    let result = (|| {
        let dir = PathBuf::from(std::env::var(CHILD_DIR_VAR).context("no data directory")?);
        let report = PathBuf::from(std::env::var(CHILD_REPORT_VAR).context("no report path")?);
        match mode {
            ChildMode::Office => run_office(&dir, &report, started),
            ChildMode::LoadOnly => run_load_only(&dir, &report, started),
        }
    })();
    match result {
        Ok(()) => std::process::exit(0),
        Err(error) => {
            eprintln!("error: office child ({}): {error:#}", mode.as_str());
            std::process::exit(1)
        }
    }
}

fn since(instant: Instant) -> f64 {
    instant.elapsed().as_secs_f64() * 1e3
}

/// Writes `value` as JSON to `path` through a temporary name, so a reader never sees half.
fn write_report(path: &Path, value: &impl Serialize) -> anyhow::Result<()> {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, serde_json::to_vec(value)?)?;
    std::fs::rename(&partial, path)?;
    Ok(())
}

fn run_load_only(dir: &Path, report: &Path, started: Instant) -> anyhow::Result<()> {
    let store = Store::open(dir)?;
    let mut docs = Vec::new();
    for path in store.doc_paths()? {
        docs.push(store.load_doc(&path)?);
    }
    let load_ms = since(started);
    let (resident_bytes, peak_bytes) = resident_memory("self")?;
    write_report(
        report,
        &LoadReport {
            documents: docs.len(),
            load_ms,
            resident_bytes,
            peak_bytes,
        },
    )
}

fn run_office(dir: &Path, report: &Path, started: Instant) -> anyhow::Result<()> {
    let mut replica = Replica::open(dir)?;
    let open_ms = since(started);
    let (_invite, credentials) = gridsync_node::credentials::load_credentials(replica.store())?;
    let (token, _created) = gridsync_office::load_or_create_token(&mut replica)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listen = SocketAddr::from(([127, 0, 0, 1], 0));
        let revocations = RevocationList::new();
        let endpoint = NetEndpoint::bind(listen, &credentials, revocations.clone())?;
        let config = NodeConfig {
            listen,
            mdns: false,
            ..NodeConfig::default()
        };
        let node_started = Instant::now();
        let node = RunningNode::start(
            NodeParts {
                replica,
                credentials,
                config,
                control_socket: false,
            },
            endpoint,
            revocations,
        )?;
        let node_start_ms = since(node_started);
        let aggregate_started = Instant::now();
        let state = gridsync_office::OfficeState::start(
            node.handle().clone(),
            gridsync_office::OfficeOptions::daily(token, 480),
        )
        .await?;
        let aggregate_ms = since(aggregate_started);
        let counters = state.counters();
        let summaries_reused = counters.summaries_reused.load(Ordering::Relaxed);
        let summaries_computed = counters.summaries_computed.load(Ordering::Relaxed);
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let http_port = listener.local_addr()?.port();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(gridsync_office::serve(listener, state, async move {
            stopped.await.ok();
        }));
        write_report(
            report,
            &OfficeReady {
                http_port,
                open_ms,
                node_start_ms,
                aggregate_ms,
                total_ms: since(started),
                summaries_reused,
                summaries_computed,
            },
        )?;
        // Serve until the parent closes our stdin.
        tokio::task::spawn_blocking(|| {
            let mut sink = Vec::new();
            std::io::stdin().read_to_end(&mut sink).ok();
        })
        .await?;
        let _ = stop.send(());
        server.await??;
        node.shutdown().await;
        Ok(())
    })
}
