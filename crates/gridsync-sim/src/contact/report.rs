//! What a street simulation measured: simulated and wall time to convergence, bytes moved per
//! acknowledged record, the share of changes the office received relayed, and the faults the
//! run went through. Printed for people; serialized as JSON for scripts.

use std::time::Duration;

use gridsync_store::ArrivalCounts;

use crate::contact::SimTime;
use crate::contact::run::StreetConfig;
use crate::contact::schedule::{HOUR, MINUTE, SECOND};
use crate::contact::street::{DeviceRole, StreetLayout};
use crate::contact::verify::Verified;
use crate::ledger::AckedWrite;

/// Running counts kept by the event loop.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counters {
    pub contacts: u64,
    /// Contacts that ended (or lost a side to a restart) before both sides were up to date.
    pub contacts_cut: u64,
    /// Contacts that did not happen because a partition covered them.
    pub contacts_prevented: u64,
    pub partitions: u64,
    pub restarts: u64,
    /// Bytes the sessions sent (both directions, all contacts).
    pub session_bytes: u64,
    /// Bytes put on the links, retransmissions included.
    pub wire_bytes: u64,
    pub lost_segments: u64,
    /// Sync messages that changed a document on the receiving side.
    pub documents_received: u64,
    pub refused_changes: u64,
    /// Sessions closed by an error (a timeout, a protocol violation).
    pub session_errors: u64,
    pub checks: u64,
    pub visits: u64,
    pub deliveries: u64,
    pub sweeps: u64,
    /// The first few refusals and session errors, for the report.
    pub notes: Vec<String>,
}

/// Most notes kept.
const MAX_NOTES: usize = 12;

impl Counters {
    /// Keeps `note` if there is room.
    pub fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        }
    }
}

/// The devices of the run by role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeviceCounts {
    pub office: usize,
    pub captains: usize,
    pub volunteers: usize,
    pub couriers: usize,
}

/// The figures of one run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreetReport {
    pub seed: u64,
    pub config: StreetConfig,
    pub devices: DeviceCounts,
    /// Acknowledged records (visits, deliveries, sweeps).
    pub records: usize,
    /// Simulated seconds from the start to the last write.
    pub last_write_s: f64,
    /// Simulated seconds from the start to convergence.
    pub converged_s: f64,
    /// Simulated seconds from the last write to convergence.
    pub converged_after_last_write_s: f64,
    /// Wall seconds: setting up the devices, running, verifying.
    pub wall_setup_s: f64,
    pub wall_run_s: f64,
    pub wall_verify_s: f64,
    pub session_bytes_per_record: f64,
    pub wire_bytes_per_record: f64,
    /// Changes the office received from a peer that did not author them.
    pub office_relayed: u64,
    /// Changes the office received from their author.
    pub office_direct: u64,
    pub relayed_share: f64,
    pub counters: Counters,
    pub verified: Verified,
    /// `/proc/loadavg`'s first three fields at the end of the run.
    pub load_average: Option<String>,
    /// Peak resident memory of the process, kB (`VmHWM`).
    pub peak_rss_kb: Option<u64>,
    /// The event log and store digest, when the config asked for them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<crate::contact::RunFingerprint>,
}

fn secs(t: SimTime) -> f64 {
    t as f64 / SECOND as f64
}

fn load_average() -> Option<String> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// When things happened in a run, simulated and real.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTimes {
    pub last_write: SimTime,
    pub converged_at: SimTime,
    /// Wall time setting up the devices.
    pub setup: Duration,
    /// Wall time running the event loop to convergence.
    pub run: Duration,
    /// Wall time of the final checks.
    pub verify: Duration,
}

impl StreetReport {
    /// Assembles the report from what the run kept: its acknowledged writes, its counters,
    /// the office's arrival counts per peer, its times and what was verified.
    pub fn new(
        config: &StreetConfig,
        layout: &StreetLayout,
        acked: &[AckedWrite],
        counters: &Counters,
        arrivals: &[(String, ArrivalCounts)],
        times: RunTimes,
        verified: Verified,
    ) -> StreetReport {
        let mut devices = DeviceCounts::default();
        for device in &layout.devices {
            match device.role {
                DeviceRole::Office => devices.office += 1,
                DeviceRole::Captain { .. } => devices.captains += 1,
                DeviceRole::Volunteer { .. } => devices.volunteers += 1,
                DeviceRole::Courier { .. } => devices.couriers += 1,
            }
        }
        let records = acked.len();
        let per_record = |bytes: u64| bytes as f64 / records.max(1) as f64;
        let office_relayed = arrivals.iter().map(|(_, c)| c.relayed).sum::<u64>();
        let office_direct = arrivals.iter().map(|(_, c)| c.direct).sum::<u64>();
        StreetReport {
            seed: config.schedule.seed,
            config: config.clone(),
            devices,
            records,
            last_write_s: secs(times.last_write),
            converged_s: secs(times.converged_at),
            converged_after_last_write_s: secs(times.converged_at.saturating_sub(times.last_write)),
            wall_setup_s: times.setup.as_secs_f64(),
            wall_run_s: times.run.as_secs_f64(),
            wall_verify_s: times.verify.as_secs_f64(),
            session_bytes_per_record: per_record(counters.session_bytes),
            wire_bytes_per_record: per_record(counters.wire_bytes),
            office_relayed,
            office_direct,
            relayed_share: office_relayed as f64 / (office_relayed + office_direct).max(1) as f64,
            counters: counters.clone(),
            verified,
            load_average: load_average(),
            peak_rss_kb: peak_rss_kb(),
            fingerprint: None,
        }
    }

    /// Wall seconds from setup to the end of verification.
    pub fn wall_total_s(&self) -> f64 {
        self.wall_setup_s + self.wall_run_s + self.wall_verify_s
    }
}

/// `d`h`mm`m for simulated seconds.
fn clock(seconds: f64) -> String {
    let total = (seconds * SECOND as f64) as SimTime;
    format!("{}h{:02}m", total / HOUR, (total % HOUR) / MINUTE)
}

impl std::fmt::Display for StreetReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counters;
        let d = &self.devices;
        let shape = &self.config.shape;
        writeln!(
            f,
            "street simulation, seed {}: {} grids, {} buildings, {} households; {} office, {} captains, {} volunteers, {} couriers",
            self.seed,
            shape.grids,
            shape.buildings,
            shape.households,
            d.office,
            d.captains,
            d.volunteers,
            d.couriers
        )?;
        writeln!(
            f,
            "  records acknowledged: {} ({} visits, {} deliveries, {} sweeps); none lost",
            self.records, c.visits, c.deliveries, c.sweeps
        )?;
        writeln!(
            f,
            "  converged at simulated {} ({} after the last write at {})",
            clock(self.converged_s),
            clock(self.converged_after_last_write_s),
            clock(self.last_write_s)
        )?;
        writeln!(
            f,
            "  wall time: {:.1} s ({:.1} s setup, {:.1} s run, {:.1} s verification)",
            self.wall_total_s(),
            self.wall_setup_s,
            self.wall_run_s,
            self.wall_verify_s
        )?;
        writeln!(
            f,
            "  bytes moved per record: {:.0} by the sessions, {:.0} on the links with retransmissions ({} segments lost)",
            self.session_bytes_per_record, self.wire_bytes_per_record, c.lost_segments
        )?;
        writeln!(
            f,
            "  relayed share at the office: {:.1} % ({} relayed, {} direct from their author)",
            self.relayed_share * 100.0,
            self.office_relayed,
            self.office_direct
        )?;
        writeln!(
            f,
            "  contacts: {} ({} cut off, {} prevented by {} partitions); {} restarts; {} refused changes; {} session errors",
            c.contacts,
            c.contacts_cut,
            c.contacts_prevented,
            c.partitions,
            c.restarts,
            c.refused_changes,
            c.session_errors
        )?;
        writeln!(
            f,
            "  verified: {} replicas, {} document copies, {} reopened from disk",
            self.verified.replicas, self.verified.document_copies, self.verified.reopened_from_disk
        )?;
        if let Some(load) = &self.load_average {
            write!(f, "  load average at the end: {load}")?;
        }
        if let Some(rss) = self.peak_rss_kb {
            write!(f, "; peak memory {} MB", rss / 1024)?;
        }
        for note in &c.notes {
            write!(f, "\n  note: {note}")?;
        }
        Ok(())
    }
}
