//! Running `gridsync run` nodes as child processes, and setting up a street of devices.
//!
//! [`NodeProcess`] owns one node process: it reads the listening address from the node's
//! first JSON value on stdout, sends stderr (at `RUST_LOG=info`) to `node.log` in the data
//! directory, and on drop stops the node with SIGTERM, then SIGKILL after a grace period, so
//! no process outlives its test, failed or not. A test that panics prints the tail of every
//! log it still holds. [`wait_until`] polls a condition with a deadline: tests assert on
//! what eventually holds, never on fixed sleeps. [`Street`] builds an office and enrolled,
//! joined devices from the real CLI.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Device, gridsync_bin};

/// How long a node may take to print its listening address.
const START_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a node may take to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(8);
/// Interval between two checks of a [`wait_until`] condition.
const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// Name of the node's log file inside its data directory (appended to across restarts).
pub const LOG_FILE: &str = "node.log";

/// The street every test street is named after.
pub const STREET: &str = "panhuo";

/// A small street plan: two grids of one building each, two households per building.
pub const PLAN_CSV: &str = "household_id,community,grid,building,unit,door,residents,zone\n\
h-1,c-1,grid-001,bldg-1,u-1,101,3,lockdown\n\
h-2,c-1,grid-001,bldg-1,u-1,102,2,lockdown\n\
h-3,c-1,grid-002,bldg-2,u-1,201,4,control\n\
h-4,c-1,grid-002,bldg-2,u-2,202,1,control\n";

/// Document path of the street plan.
pub const PLAN_DOC: &str = "panhuo/plan";
/// The device directory: every node publishes its own certificate there when it starts.
pub const DEVICES_DOC: &str = "panhuo/devices";
/// Document path of building bldg-1 (grid-001).
pub const BLDG_1_DOC: &str = "panhuo/grid-001/bldg-1";
/// Document path of building bldg-2 (grid-002).
pub const BLDG_2_DOC: &str = "panhuo/grid-002/bldg-2";

/// Polls `condition` every [`POLL_INTERVAL`] until it holds (true) or `timeout` passes
/// (false). The condition runs at least once.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// A `gridsync run` child process. Stopped (SIGTERM, then SIGKILL) when dropped.
pub struct NodeProcess {
    /// Node id, for messages.
    pub name: String,
    /// The address the node's QUIC endpoint listens on.
    pub addr: SocketAddr,
    /// Where the node's stderr goes.
    pub log_path: PathBuf,
    /// Where the node serves its field app, when started with it.
    pub ui: Option<SocketAddr>,
    /// `None` once the process was waited for.
    child: Option<Child>,
    /// Kept open so that the node never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl NodeProcess {
    /// Starts `gridsync --data DIR run --listen 127.0.0.1:0 --no-mdns --json --peer ...` and
    /// waits for its listening address.
    #[track_caller]
    pub fn start(device: &Device, name: &str, peers: &[SocketAddr]) -> NodeProcess {
        NodeProcess::start_logging(device, name, peers, "info")
    }

    /// Like [`NodeProcess::start`] with `rust_log` as the node's `RUST_LOG` filter.
    #[track_caller]
    pub fn start_logging(
        device: &Device,
        name: &str,
        peers: &[SocketAddr],
        rust_log: &str,
    ) -> NodeProcess {
        NodeProcess::spawn(device, name, peers, rust_log, false)
    }

    /// Starts a node on every interface with mDNS on and no configured peer: it must find
    /// the nodes of its street on the LAN by itself.
    #[track_caller]
    pub fn start_on_lan(device: &Device, name: &str) -> NodeProcess {
        NodeProcess::spawn(device, name, &[], "info", true)
    }

    /// Like [`NodeProcess::start`], with `config_toml` written to `node.toml` in the data
    /// directory and passed as `--config` (flags still set listen, peers and mDNS).
    #[track_caller]
    pub fn start_with_config(
        device: &Device,
        name: &str,
        peers: &[SocketAddr],
        config_toml: &str,
    ) -> NodeProcess {
        let config = device.path().join("node.toml");
        std::fs::write(&config, config_toml).expect("write node config");
        NodeProcess::spawn_with(device, name, peers, "info", false, Some(&config), &[])
    }

    /// Like [`NodeProcess::start`], serving the field app on a free loopback port
    /// (`--ui 127.0.0.1:0`; [`NodeProcess::ui`] says where).
    #[track_caller]
    pub fn start_with_ui(device: &Device, name: &str, peers: &[SocketAddr]) -> NodeProcess {
        NodeProcess::spawn_with(
            device,
            name,
            peers,
            "info",
            false,
            None,
            &["--ui", "127.0.0.1:0"],
        )
    }

    /// The node's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    #[track_caller]
    fn spawn(
        device: &Device,
        name: &str,
        peers: &[SocketAddr],
        rust_log: &str,
        mdns: bool,
    ) -> NodeProcess {
        NodeProcess::spawn_with(device, name, peers, rust_log, mdns, None, &[])
    }

    #[track_caller]
    fn spawn_with(
        device: &Device,
        name: &str,
        peers: &[SocketAddr],
        rust_log: &str,
        mdns: bool,
        config: Option<&Path>,
        extra: &[&str],
    ) -> NodeProcess {
        let log_path = device.path().join(LOG_FILE);
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open node log");
        let mut command = Command::new(gridsync_bin());
        command
            .arg("--data")
            .arg(device.path())
            .arg("run")
            .arg("--json");
        if let Some(config) = config {
            command.arg("--config").arg(config);
        }
        if mdns {
            command.args(["--listen", "0.0.0.0:0"]);
        } else {
            command.args(["--listen", "127.0.0.1:0", "--no-mdns"]);
        }
        for peer in peers {
            command.arg("--peer").arg(peer.to_string());
        }
        command.args(extra);
        let mut child = command
            .env("RUST_LOG", rust_log)
            .env("NO_COLOR", "1")
            .env_remove("GRIDSYNC_DATA")
            .envs(device.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn gridsync run");
        let started = first_json_value(&mut child).and_then(|(value, reader)| {
            match value["listening"]
                .as_str()
                .and_then(|a| a.parse::<SocketAddr>().ok())
            {
                Some(addr) => {
                    let ui = value["ui"].as_str().and_then(|a| a.parse().ok());
                    Ok((addr, ui, reader))
                }
                None => Err(format!("no listening address in {value}")),
            }
        });
        match started {
            Ok((addr, ui, reader)) => NodeProcess {
                name: name.to_owned(),
                addr,
                ui,
                log_path,
                child: Some(child),
                _stdout: reader,
            },
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("node {name} did not start: {why}\n{}", read_log(&log_path));
            }
        }
    }

    /// Everything the node logged so far (all runs on this data directory).
    pub fn log(&self) -> String {
        read_log(&self.log_path)
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the node with SIGTERM (a clean shutdown) and returns its exit status; kills it
    /// if it does not exit within [`STOP_GRACE`].
    pub fn stop(mut self) -> ExitStatus {
        self.terminate()
            .unwrap_or_else(|| panic!("node {} was already reaped", self.name))
    }

    /// Kills the node with SIGKILL: no shutdown code runs, as in a crash or power loss.
    pub fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("SIGKILL the node");
            child.wait().expect("reap the node");
        }
    }

    fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        signal(child.id(), "TERM");
        let deadline = Instant::now() + STOP_GRACE;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => std::thread::sleep(POLL_INTERVAL),
                _ => {
                    eprintln!("node {} ignored SIGTERM; killing it", self.name);
                    let _ = child.kill();
                    return child.wait().ok();
                }
            }
        }
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        let running = self.is_running();
        self.terminate();
        if std::thread::panicking() {
            eprintln!(
                "---- log of node {} ({}, {}) ----\n{}",
                self.name,
                self.log_path.display(),
                if running { "was running" } else { "had exited" },
                tail(&read_log(&self.log_path), 80)
            );
        }
    }
}

/// Sends a signal by name with the system's `kill` (no libc binding needed in tests).
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status();
    if !matches!(status, Ok(s) if s.success()) {
        eprintln!("kill -{name} {pid} failed: {status:?}");
    }
}

/// The log file's text, lossy; an empty string if it does not exist.
pub fn read_log(path: &Path) -> String {
    let mut bytes = Vec::new();
    if let Ok(mut file) = File::open(path) {
        let _ = file.read_to_end(&mut bytes);
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The last `lines` lines of `text`.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// An office and the devices it enrolled, each joined in its own data directory.
pub struct Street {
    pub office: Device,
    /// Enrolled, joined devices by node id.
    pub devices: BTreeMap<String, Device>,
    /// Where the invite files are (`NAME.invite`).
    pub invites: tempfile::TempDir,
}

impl Street {
    /// `office init` for [`STREET`] and, for each `(name, scope)`, `enroll` as a volunteer
    /// with that write scope and `join` in a new directory. No plan is imported.
    pub fn new(volunteers: &[(&str, &str)]) -> Street {
        let office = Device::new();
        office.run(&["office", "init", "--street", STREET]).ok();
        let mut street = Street {
            office,
            devices: BTreeMap::new(),
            invites: tempfile::tempdir().expect("temp dir"),
        };
        for (name, scope) in volunteers {
            street.enroll(name, scope);
        }
        street
    }

    /// Like [`Street::new`], with the plan imported at the office before any node runs.
    pub fn with_plan(volunteers: &[(&str, &str)]) -> Street {
        let street = Street::new(volunteers);
        import_plan(&street.office);
        street
    }

    /// Enrolls a volunteer with write access to `scope` and joins it in a new directory.
    pub fn enroll(&mut self, name: &str, scope: &str) -> &Device {
        self.enroll_as(name, "volunteer", &[scope])
    }

    /// Enrolls a device with `role` and the given grants (`ACCESS:PREFIX`) and joins it in a
    /// new directory.
    pub fn enroll_as(&mut self, name: &str, role: &str, grants: &[&str]) -> &Device {
        let invite = self.invite_path(name);
        let mut args = vec!["enroll", "--name", name, "--role", role];
        for grant in grants {
            args.extend(["--scope", grant]);
        }
        args.extend(["--out", invite.to_str().expect("temp paths are UTF-8")]);
        self.office.run(&args).ok();
        let device = Device::new();
        device
            .run(&["join", invite.to_str().expect("temp paths are UTF-8")])
            .ok();
        self.devices.insert(name.to_owned(), device);
        &self.devices[name]
    }

    /// The invite file of an enrolled device.
    pub fn invite_path(&self, name: &str) -> PathBuf {
        self.invites.path().join(format!("{name}.invite"))
    }

    /// An enrolled device by node id.
    #[track_caller]
    pub fn device(&self, name: &str) -> &Device {
        self.devices
            .get(name)
            .unwrap_or_else(|| panic!("no device {name} in this street"))
    }
}

/// Imports [`PLAN_CSV`] into `device` (through its node if one runs).
pub fn import_plan(device: &Device) {
    let file = device.path().join("plan.csv");
    std::fs::write(&file, PLAN_CSV).expect("write plan file");
    device
        .run(&[
            "plan",
            "import",
            file.to_str().expect("temp paths are UTF-8"),
        ])
        .ok();
}

/// `status --json` of a device: `{"running": bool, "status": {...}}`.
pub fn status(device: &Device) -> Value {
    device.run(&["--json", "status"]).json()
}

/// Document path to heads digest, from a `status --json` value.
pub fn documents(status: &Value) -> BTreeMap<String, String> {
    status["status"]["documents"]
        .as_array()
        .map(|docs| {
            docs.iter()
                .map(|d| {
                    (
                        d["path"].as_str().unwrap_or_default().to_owned(),
                        d["heads_digest"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The entry for peer `node_id` in a `status --json` value, if listed.
pub fn peer<'a>(status: &'a Value, node_id: &str) -> Option<&'a Value> {
    status["status"]["peers"]
        .as_array()?
        .iter()
        .find(|p| p["node_id"] == node_id)
}

/// Whether peer `node_id` is connected and up to date in a `status --json` value.
pub fn peer_in_sync(status: &Value, node_id: &str) -> bool {
    peer(status, node_id).is_some_and(|p| p["connected"] == true && p["up_to_date"] == true)
}

/// Ids of the visits a device holds (`visit list --json`); empty if it has no plan yet.
pub fn visit_ids(device: &Device) -> BTreeSet<String> {
    let run = device.run(&["--json", "visit", "list"]);
    if run.code != 0 {
        return BTreeSet::new();
    }
    run.json()
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Adds a visit to `household` on `device` and returns the record id from the receipt.
#[track_caller]
pub fn add_visit(device: &Device, household: &str) -> String {
    let receipt = device
        .run(&[
            "--json",
            "visit",
            "add",
            "--household",
            household,
            "--outcome",
            "contacted",
        ])
        .json();
    receipt["record_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no record id in {receipt}"))
        .to_owned()
}

/// Ids as a set, for comparisons with [`visit_ids`].
pub fn ids<const N: usize>(ids: [&String; N]) -> BTreeSet<String> {
    ids.into_iter().cloned().collect()
}

/// Waits until every device holds the street plan (a volunteer cannot write before).
#[track_caller]
pub fn await_plan(devices: &[&Device], timeout: Duration) {
    assert!(
        wait_until(timeout, || devices
            .iter()
            .all(|d| documents(&status(d)).contains_key(PLAN_DOC))),
        "the plan did not reach every device"
    );
}

/// How many lines of `log` contain every one of `needles`.
pub fn count_lines(log: &str, needles: &[&str]) -> usize {
    log.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

/// The first JSON value `gridsync run --json` prints (its addresses, pretty-printed over
/// several lines), with the reader of the rest of its stdout, which must stay open. Read on a
/// thread, so that a node that hangs before printing fails the test after [`START_TIMEOUT`]
/// instead of blocking it forever.
pub fn first_json_value(child: &mut Child) -> Result<(Value, BufReader<ChildStdout>), String> {
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| "stdout is not piped".to_owned())?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let first = serde_json::Deserializer::from_reader(&mut reader)
            .into_iter::<Value>()
            .next();
        let _ = tx.send((first, reader));
    });
    match rx.recv_timeout(START_TIMEOUT) {
        Ok((Some(Ok(value)), reader)) => Ok((value, reader)),
        Ok((Some(Err(e)), _)) => Err(format!("stdout is not JSON: {e}")),
        Ok((None, _)) => Err("stdout closed before the addresses".to_owned()),
        Err(_) => Err(format!("no addresses within {START_TIMEOUT:?}")),
    }
}
