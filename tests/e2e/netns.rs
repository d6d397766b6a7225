//! A real network: office, captain and volunteer as separate `gridsync run` processes in
//! separate network namespaces, linked only volunteer <-> captain and captain <-> office,
//! with 20% UDP loss on every link (nftables, netdev egress) and links flapping while the
//! volunteer works. Every acknowledged record must reach the office.
//!
//! Needs root, iproute2 and nftables (`.ci/run` installs them); skips with a message
//! otherwise. The namespaces are removed when the test ends, also when it fails.

use std::fs::File;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::node_support::{Street, add_visit, await_plan, read_log, tail, visit_ids, wait_until};
use crate::support::{Device, gridsync_bin};

const SYNC_TIMEOUT: Duration = Duration::from_secs(90);
/// Percentage of UDP datagrams dropped on every link, each way.
const LOSS_PERCENT: u32 = 20;

/// Runs a command that must succeed.
#[track_caller]
fn sh(args: &[&str]) {
    let output = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        output.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

fn can_run() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| e.to_string())?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root".into());
    }
    for tool in ["ip", "nft"] {
        if Command::new(tool).arg("-V").output().is_err() {
            return Err(format!(
                "{tool} is not installed (apt-get install iproute2 nftables)"
            ));
        }
    }
    Ok(())
}

/// Network namespaces and veth pairs made by this test; all deleted on drop.
struct Lab {
    prefix: String,
    namespaces: Vec<String>,
}

impl Lab {
    fn new() -> Lab {
        Lab {
            prefix: format!("gs{}", std::process::id() % 100_000),
            namespaces: Vec::new(),
        }
    }

    fn namespace(&mut self, role: &str) -> String {
        let name = format!("{}{role}", self.prefix);
        sh(&["ip", "netns", "add", &name]);
        sh(&["ip", "-n", &name, "link", "set", "lo", "up"]);
        self.namespaces.push(name.clone());
        name
    }

    /// A veth pair between two namespaces with an address on each end and `LOSS_PERCENT`
    /// random UDP loss leaving each end. Returns the two interface names.
    fn link(
        &self,
        (ns_a, addr_a): (&str, &str),
        (ns_b, addr_b): (&str, &str),
        tag: &str,
    ) -> (String, String) {
        let if_a = format!("{}{tag}a", self.prefix);
        let if_b = format!("{}{tag}b", self.prefix);
        sh(&[
            "ip", "link", "add", &if_a, "type", "veth", "peer", "name", &if_b,
        ]);
        for (ns, iface, addr) in [(ns_a, &if_a, addr_a), (ns_b, &if_b, addr_b)] {
            sh(&["ip", "link", "set", iface, "netns", ns]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                iface,
            ]);
            sh(&["ip", "-n", ns, "link", "set", iface, "up"]);
            let table = format!("gs_loss_{iface}");
            sh(&[
                "ip", "netns", "exec", ns, "nft", "add", "table", "netdev", &table,
            ]);
            let chain = format!(
                "{{ type filter hook egress device \"{iface}\" priority 0; policy accept; }}"
            );
            sh(&[
                "ip", "netns", "exec", ns, "nft", "add", "chain", "netdev", &table, "egress",
                &chain,
            ]);
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "nft",
                "add",
                "rule",
                "netdev",
                &table,
                "egress",
                "meta",
                "l4proto",
                "udp",
                "numgen",
                "random",
                "mod",
                "100",
                "<",
                &LOSS_PERCENT.to_string(),
                "counter",
                "drop",
            ]);
        }
        (if_a, if_b)
    }

    fn set_link(&self, ns: &str, iface: &str, up: bool) {
        sh(&[
            "ip",
            "-n",
            ns,
            "link",
            "set",
            iface,
            if up { "up" } else { "down" },
        ]);
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Deleting a namespace deletes its veth ends and nft tables with it.
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A `gridsync run` inside a namespace; killed on drop.
struct NsNode {
    child: Child,
    log: std::path::PathBuf,
}

impl NsNode {
    fn start(ns: &str, device: &Device, listen: &str, peers: &[&str]) -> NsNode {
        let log = device.path().join("node.log");
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", ns])
            .arg(gridsync_bin())
            .arg("--data")
            .arg(device.path());
        command.args(["run", "--listen", listen, "--no-mdns"]);
        for peer in peers {
            command.args(["--peer", peer]);
        }
        let child = command
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn gridsync in a namespace");
        NsNode { child, log }
    }
}

impl Drop for NsNode {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        for _ in 0..50 {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!(
                "--- {} ---\n{}",
                self.log.display(),
                tail(&read_log(&self.log), 40)
            );
        }
    }
}

#[test]
fn records_cross_lossy_flapping_links_to_the_office() {
    if let Err(why) = can_run() {
        eprintln!("skipping the network-namespace test: {why}");
        return;
    }
    let mut street = Street::with_plan(&[("vol-1", "panhuo/grid-001")]);
    street.enroll("cap-1", "panhuo/grid-001");
    let (v1, cap) = (street.device("vol-1"), street.device("cap-1"));

    let mut lab = Lab::new();
    let ns_office = lab.namespace("o");
    let ns_captain = lab.namespace("c");
    let ns_volunteer = lab.namespace("v");
    let (_, cap_to_office) = lab.link(
        (&ns_office, "198.18.1.1"),
        (&ns_captain, "198.18.1.2"),
        "oc",
    );
    let (vol_to_cap, _) = lab.link(
        (&ns_volunteer, "198.18.0.1"),
        (&ns_captain, "198.18.0.2"),
        "vc",
    );

    let _office = NsNode::start(&ns_office, &street.office, "198.18.1.1:7700", &[]);
    let _captain = NsNode::start(&ns_captain, cap, "0.0.0.0:7700", &["198.18.1.1:7700"]);
    let _volunteer = NsNode::start(&ns_volunteer, v1, "198.18.0.1:7700", &["198.18.0.2:7700"]);
    await_plan(&[v1], SYNC_TIMEOUT);

    // The volunteer works while each link goes down and comes back, twice.
    let households = ["h-1", "h-2"];
    let mut acknowledged = std::collections::BTreeSet::new();
    for round in 0..4 {
        let (ns, iface) = if round % 2 == 0 {
            (&ns_volunteer, &vol_to_cap)
        } else {
            (&ns_captain, &cap_to_office)
        };
        lab.set_link(ns, iface, false);
        for household in households {
            acknowledged.insert(add_visit(v1, household));
        }
        std::thread::sleep(Duration::from_millis(700));
        lab.set_link(ns, iface, true);
        acknowledged.insert(add_visit(v1, households[round % 2]));
    }
    assert!(
        wait_until(SYNC_TIMEOUT, || acknowledged
            .is_subset(&visit_ids(&street.office))),
        "the office holds {} of {} acknowledged visits",
        visit_ids(&street.office)
            .intersection(&acknowledged)
            .count(),
        acknowledged.len()
    );
}
