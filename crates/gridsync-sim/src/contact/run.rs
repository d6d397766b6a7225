//! The event loop of a street simulation: a discrete-event queue in virtual time over the
//! devices, their contacts and the schedule. Nothing sleeps and nothing reads the clock for
//! the simulation; a seed decides the schedule and every lost segment. How each device
//! drives its sessions is in `drive`.
//!
//! **Reproducibility.** The seed decides the street, the schedule (writes, contacts, links,
//! partitions, restarts), each segment's loss, and each device's record ids and store
//! incarnations (its replica's seeded `gridsync_node::clock::Sources`); every replica reads the simulation's
//! clock. Two runs of one seed with the same credentials therefore handle the same events
//! and leave the same stores (see `fingerprint` for the two exceptions of the cryptography;
//! the suite runs a seed twice and compares).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};
use std::path::Path;
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use gridsync_node::clock::Clock;
use gridsync_node::ops::{FieldWrite, plan_doc_path};
use gridsync_node::session_driver::SessionDriver;
use gridsync_proto::{DocPath, SessionConfig};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tempfile::TempDir;

use crate::contact::device::{Device, SessionSide, StreetDocSeed, install, mix};
use crate::contact::enroll::{StreetCredentials, peer_from_cert};
use crate::contact::fingerprint::EventLog;
use crate::contact::link::{LinkProfile, Pipe, PipeStats};
use crate::contact::report::{Counters, RunTimes, StreetReport};
use crate::contact::schedule::{DAY, DayPlanner, MINUTE, Planned, ScheduleConfig};
use crate::contact::street::{OFFICE, StreetLayout, StreetShape};
use crate::contact::verify::{ConvergenceProbe, verify};
use crate::contact::{ContactError, ContactId, SimTime};
use crate::ledger::{AckLedger, AckedWrite};

mod drive;

/// Unix milliseconds of simulated time zero: records must be dated after 2020, and sessions
/// take any monotonic millisecond clock.
pub const EPOCH_MS: u64 = 1_780_000_000_000;

/// Simulated time as the node's millisecond clock.
fn ms(now: SimTime) -> u64 {
    EPOCH_MS + now / 1000
}

/// Everything that decides a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StreetConfig {
    pub shape: StreetShape,
    pub schedule: ScheduleConfig,
    /// Days after the last writing day within which the street must converge.
    pub settle_days: u32,
    /// How often, after the last write, the replicas are compared.
    pub check_every: SimTime,
    /// Reopen every store from disk at the end and check it too (else only the office's,
    /// the captains' and those of devices that restarted).
    pub disk_check_all: bool,
    /// Every device starts with the whole device directory, as if the office handed it out
    /// with the plan at enrollment; otherwise each device starts with its own entry only and
    /// the directory spreads by sync like any document.
    pub directory_at_enrollment: bool,
    /// Keep a log of every event and digest every store at the end
    /// ([`StreetReport::fingerprint`]), to compare two runs of one seed.
    pub fingerprint: bool,
}

impl StreetConfig {
    /// The reduced street for the test suite.
    pub fn reduced(seed: u64) -> StreetConfig {
        StreetConfig {
            shape: StreetShape::reduced(),
            schedule: ScheduleConfig::new(seed),
            settle_days: 4,
            check_every: 10 * MINUTE,
            disk_check_all: true,
            directory_at_enrollment: true,
            fingerprint: false,
        }
    }

    /// The reference street at full size.
    pub fn full(seed: u64) -> StreetConfig {
        StreetConfig {
            shape: StreetShape::full(),
            schedule: ScheduleConfig::new(seed),
            settle_days: 4,
            check_every: 10 * MINUTE,
            disk_check_all: false,
            directory_at_enrollment: true,
            fingerprint: false,
        }
    }
}

/// A failed run, with the seed that reproduces it.
#[derive(Debug, thiserror::Error)]
#[error(
    "street simulation with seed {seed} failed: {message} (rerun with GRIDSYNC_SIM_SEED={seed})"
)]
pub struct StreetFailure {
    pub seed: u64,
    pub message: String,
}

/// What can happen next.
#[derive(Debug)]
enum Event {
    /// Plan day `n` and queue its events.
    Day(u32),
    Planned(Planned),
    /// Bytes reach side `to` of a contact.
    Deliver {
        contact: ContactId,
        to: usize,
        bytes: Vec<u8>,
    },
    /// A session's timer, valid if its generation is still current.
    Timer {
        contact: ContactId,
        side: usize,
        generation: u64,
    },
    ContactEnd(ContactId),
    /// Compare the replicas.
    Check,
}

/// A queued event, ordered by time and then by insertion.
#[derive(Debug)]
struct Queued {
    at: SimTime,
    seq: u64,
    event: Event,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// A contact in progress: side 0 and side 1, each with the pipe it sends on.
#[derive(Debug)]
struct LiveContact {
    devices: [usize; 2],
    pipes: [Pipe; 2],
}

/// A street of devices on disk, ready to run.
pub struct StreetSim {
    config: StreetConfig,
    layout: StreetLayout,
    devices: Vec<Device>,
    /// Holds every data directory; removed when the simulation is dropped.
    _root: TempDir,
    queue: BinaryHeap<Reverse<Queued>>,
    next_seq: u64,
    contacts: BTreeMap<ContactId, LiveContact>,
    next_contact: ContactId,
    link_rng: StdRng,
    ledger: AckLedger,
    /// Every acknowledged change, to look for at the office.
    acked_changes: Vec<(DocPath, ChangeHash)>,
    counters: Counters,
    /// Time of the last scheduled write, known once the last writing day is planned.
    last_write: SimTime,
    converged_at: Option<SimTime>,
    probe: Option<ConvergenceProbe>,
    restarted: BTreeSet<usize>,
    setup: Duration,
    /// The virtual clock every replica reads, set to each event's time before it is handled.
    clock: Clock,
    /// Kept when [`StreetConfig::fingerprint`] is set.
    events: Option<EventLog>,
}

impl std::fmt::Debug for StreetSim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreetSim")
            .field("seed", &self.config.schedule.seed)
            .field("devices", &self.devices.len())
            .finish_non_exhaustive()
    }
}

/// Where data directories go: `/dev/shm` when it exists (fsync is free there; durability
/// is tested elsewhere), else the system temporary directory.
fn data_root() -> std::io::Result<TempDir> {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("gridsync-street-");
        b
    };
    if shm.is_dir() {
        builder.tempdir_in(shm)
    } else {
        builder.tempdir()
    }
}

impl StreetSim {
    /// Lays out the street, enrolls every device, creates its store, imports the plan at the
    /// office and installs it on every other device.
    pub fn new(config: StreetConfig) -> Result<StreetSim, ContactError> {
        let layout = StreetLayout::new(config.shape.clone())?;
        let credentials = StreetCredentials::issue(&layout)?;
        Self::with_credentials(config, &credentials)
    }

    /// [`StreetSim::new`] with credentials issued beforehand (two runs of one seed share
    /// them to be comparable).
    pub fn with_credentials(
        config: StreetConfig,
        credentials: &StreetCredentials,
    ) -> Result<StreetSim, ContactError> {
        let started = Instant::now();
        let layout = StreetLayout::new(config.shape.clone())?;
        if credentials.enrolled.len() != layout.devices.len() {
            return Err(ContactError::Enroll(format!(
                "{} credentials for {} devices",
                credentials.enrolled.len(),
                layout.devices.len()
            )));
        }
        let clock = Clock::manual(ms(0));
        let root = data_root()?;
        let mut devices: Vec<Device> = Vec::with_capacity(layout.devices.len());
        let mut plan: Option<StreetDocSeed> = None;
        let device_seed = config.schedule.seed ^ 0x6465_7669_6365;
        for (index, spec) in layout.devices.iter().enumerate() {
            let enrolled = credentials.enrolled[index].clone();
            let dir = root.path().join(spec.node_id.as_str());
            let mut device = Device::create(
                &dir,
                spec.clone(),
                enrolled,
                plan.as_ref(),
                clock.clone(),
                mix(device_seed, index as u64),
            )?;
            if index == OFFICE {
                device.write(
                    FieldWrite::PlanImport {
                        csv: layout.plan_csv(),
                    },
                    ms(0),
                )?;
                let path = plan_doc_path(&device.replica).map_err(|e| ContactError::Write {
                    device: spec.node_id.to_string(),
                    message: e.to_string(),
                })?;
                plan = Some(StreetDocSeed::of(&mut device.replica, path)?);
            }
            devices.push(device);
        }
        if config.directory_at_enrollment {
            let path = gridsync_node::directory::directory_path(&layout.shape.street)
                .map_err(|e| ContactError::Shape(e.to_string()))?;
            let mut directory = automerge::Automerge::new();
            let mut signed_heads = Vec::new();
            for device in &mut devices {
                if let Some(doc) = device.replica.doc(&path)? {
                    directory
                        .merge(&mut doc.clone())
                        .map_err(|e| ContactError::Shape(format!("device directory: {e}")))?;
                }
                // Each device signed its own entry; the seed carries every signature.
                signed_heads.extend(device.replica.signatures_for(&path));
            }
            let seed = StreetDocSeed::new(path, directory, signed_heads);
            for device in &mut devices {
                install(&mut device.replica, &seed)?;
            }
        }
        let link_rng = StdRng::seed_from_u64(config.schedule.seed ^ 0x6c69_6e6b);
        let mut sim = StreetSim {
            layout,
            devices,
            _root: root,
            queue: BinaryHeap::new(),
            next_seq: 0,
            contacts: BTreeMap::new(),
            next_contact: 0,
            link_rng,
            ledger: AckLedger::default(),
            acked_changes: Vec::new(),
            counters: Counters::default(),
            last_write: 0,
            converged_at: None,
            probe: None,
            restarted: BTreeSet::new(),
            setup: Duration::ZERO,
            clock,
            events: config.fingerprint.then(EventLog::default),
            config,
        };
        sim.push(0, Event::Day(0));
        sim.setup = started.elapsed();
        Ok(sim)
    }

    fn push(&mut self, at: SimTime, event: Event) {
        self.next_seq += 1;
        self.queue.push(Reverse(Queued {
            at,
            seq: self.next_seq,
            event,
        }));
    }

    /// Runs until the street has converged (or the settle days are over), then checks every
    /// replica in memory and reopened from disk.
    pub fn run(mut self) -> Result<StreetReport, StreetFailure> {
        let seed = self.config.schedule.seed;
        let fail = |message: String| StreetFailure { seed, message };
        let started = Instant::now();
        let deadline =
            SimTime::from(self.config.schedule.sweep_days + self.config.settle_days) * DAY;
        let mut now = 0;
        while let Some(Reverse(next)) = self.queue.pop() {
            now = next.at;
            if now > deadline {
                break;
            }
            self.clock.set(ms(now));
            if let Some(log) = &mut self.events {
                log.push(format!("{now} {}", describe(&next.event)));
            }
            self.handle(now, next.event)
                .map_err(|e| fail(e.to_string()))?;
            if self.converged_at.is_some() {
                break;
            }
        }
        let converged_at = self.converged_at.ok_or_else(|| {
            let detail = self
                .probe
                .as_ref()
                .map(|p| p.first_difference(&self.devices, &self.acked_changes))
                .unwrap_or_else(|| "the run ended before the last write".into());
            fail(format!(
                "no convergence within {} settle days: {detail}",
                self.config.settle_days
            ))
        })?;
        self.end_all_contacts(now);
        let run_wall = started.elapsed();
        let verify_started = Instant::now();
        let checked = verify(
            &self.devices,
            &self.ledger.entries(),
            &self.restarted,
            self.config.disk_check_all,
        )
        .map_err(fail)?;
        let relayed = self.devices[OFFICE]
            .replica
            .store()
            .arrival_counts()
            .map_err(|e| fail(format!("cannot read the office's provenance: {e}")))?;
        let fingerprint = self
            .events
            .take()
            .map(|log| log.finish(&self.devices))
            .transpose()
            .map_err(|e| fail(format!("cannot fingerprint the run: {e}")))?;
        let mut report = StreetReport::new(
            &self.config,
            &self.layout,
            &self.ledger.entries(),
            &self.counters,
            &relayed,
            RunTimes {
                last_write: self.last_write,
                converged_at,
                setup: self.setup,
                run: run_wall,
                verify: verify_started.elapsed(),
            },
            checked,
        );
        report.fingerprint = fingerprint;
        Ok(report)
    }

    fn handle(&mut self, now: SimTime, event: Event) -> Result<(), ContactError> {
        match event {
            Event::Day(day) => self.plan_day(now, day),
            Event::Planned(Planned::Contact {
                a,
                b,
                duration,
                link,
            }) => self.start_contact(now, [a, b], duration, link)?,
            Event::Planned(Planned::Write { device, write }) => self.write(now, device, write)?,
            Event::Planned(Planned::Restart { device }) => self.restart(now, device)?,
            Event::Deliver { contact, to, bytes } => self.deliver(now, contact, to, &bytes)?,
            Event::Timer {
                contact,
                side,
                generation,
            } => self.timer(now, contact, side, generation)?,
            Event::ContactEnd(contact) => self.end_contact(now, contact, false),
            Event::Check => self.check(now),
        }
        Ok(())
    }

    fn plan_day(&mut self, now: SimTime, day: u32) {
        let planned = DayPlanner::plan(&self.layout, &self.config.schedule, day);
        self.counters.partitions += planned.partitions.len() as u64;
        self.counters.contacts_prevented += planned.contacts_prevented as u64;
        for scheduled in planned.events {
            if matches!(scheduled.what, Planned::Write { .. }) {
                self.last_write = self.last_write.max(scheduled.at);
            }
            self.push(scheduled.at.max(now), Event::Planned(scheduled.what));
        }
        if day + 1 == self.config.schedule.sweep_days {
            self.push(self.last_write, Event::Check);
        }
        self.push(SimTime::from(day + 1) * DAY, Event::Day(day + 1));
    }

    fn write(&mut self, now: SimTime, index: usize, write: FieldWrite) -> Result<(), ContactError> {
        match &write {
            FieldWrite::Visit { .. } => self.counters.visits += 1,
            FieldWrite::Delivery { .. } => self.counters.deliveries += 1,
            FieldWrite::Sweep { .. } => self.counters.sweeps += 1,
            _ => {}
        }
        let device = &mut self.devices[index];
        let acked = device.write(write, ms(now))?;
        let path = acked.receipt.document.clone();
        if let Some(log) = &mut self.events {
            let id = acked.receipt.record_id.as_ref().map(|id| id.to_string());
            log.push(format!("{now} acked {path} {id:?} {:?}", acked.changes));
        }
        if let Some(record_id) = acked.receipt.record_id.clone() {
            self.ledger.record(AckedWrite {
                host: device.spec.node_id.to_string(),
                document: path.clone(),
                record_id,
                at: Duration::from_micros(now),
            });
        }
        for change in acked.changes {
            self.acked_changes.push((path.clone(), change));
        }
        // As the node's `announce_change`: every session of the device hears of it.
        let Device {
            sessions, replica, ..
        } = device;
        for side in sessions.values_mut() {
            side.driver.local_change(ms(now), &path, replica);
            side.up_to_date = false;
        }
        let contacts: Vec<ContactId> = device.sessions.keys().copied().collect();
        self.service(now, index, contacts)
    }

    fn restart(&mut self, now: SimTime, index: usize) -> Result<(), ContactError> {
        self.counters.restarts += 1;
        self.restarted.insert(index);
        let dropped = self.devices[index].restart()?;
        for contact in dropped {
            self.end_contact(now, contact, true);
        }
        Ok(())
    }

    fn start_contact(
        &mut self,
        now: SimTime,
        devices: [usize; 2],
        duration: SimTime,
        link: LinkProfile,
    ) -> Result<(), ContactError> {
        if devices[0] == devices[1] {
            return Ok(());
        }
        let contact = self.next_contact;
        self.next_contact += 1;
        self.counters.contacts += 1;
        for side in 0..2 {
            let peer = peer_from_cert(&self.devices[devices[1 - side]].cert_der)?;
            let device = &mut self.devices[devices[side]];
            let config = SessionConfig::new(device.identity.clone());
            let driver = SessionDriver::new(config, peer, ms(now));
            device.sessions.insert(
                contact,
                SessionSide {
                    driver,
                    timer_generation: 0,
                    up_to_date: false,
                },
            );
        }
        self.contacts.insert(
            contact,
            LiveContact {
                devices,
                pipes: [Pipe::new(link), Pipe::new(link)],
            },
        );
        self.push(now + duration, Event::ContactEnd(contact));
        for device in devices {
            self.service(now, device, vec![contact])?;
        }
        Ok(())
    }

    /// Ends a contact: both sessions are dropped where they stand, with whatever is still in
    /// the pipes. `by_restart`: one side crashed (its session is already gone).
    fn end_contact(&mut self, now: SimTime, contact: ContactId, by_restart: bool) {
        let Some(live) = self.contacts.remove(&contact) else {
            return;
        };
        let mut settled = !by_restart;
        for side in 0..2 {
            let device = &mut self.devices[live.devices[side]];
            let removed = device.sessions.remove(&contact);
            settled &= removed
                .as_ref()
                .is_some_and(|s| s.up_to_date || s.driver.is_closed());
            // The link is gone: as the node's connection task does when it ends, the driver
            // writes its pending sync states (a restart dropped its side's already).
            if let Some(mut removed) = removed {
                removed.driver.finish(&mut device.replica);
            }
            settled &= !live.pipes[side].busy_at(now);
            self.counters.add_pipe(live.pipes[side].stats());
        }
        if !settled {
            self.counters.contacts_cut += 1;
        }
    }

    fn end_all_contacts(&mut self, now: SimTime) {
        let open: Vec<ContactId> = self.contacts.keys().copied().collect();
        for contact in open {
            self.end_contact(now, contact, false);
        }
    }

    fn check(&mut self, now: SimTime) {
        self.counters.checks += 1;
        let probe = self
            .probe
            .get_or_insert_with(|| ConvergenceProbe::new(&self.devices));
        if probe.converged(&self.devices, &mut self.acked_changes) {
            self.converged_at = Some(now);
        } else {
            self.push(now + self.config.check_every, Event::Check);
        }
    }
}

impl Counters {
    fn add_pipe(&mut self, stats: PipeStats) {
        self.session_bytes += stats.bytes;
        self.wire_bytes += stats.wire_bytes;
        self.lost_segments += stats.lost_segments;
    }
}

/// An event as the run's log records it: what and where, and a delivery's length (its bytes
/// carry ECDSA signatures, whose bytes are not reproducible; see `fingerprint`).
fn describe(event: &Event) -> String {
    match event {
        Event::Deliver { contact, to, bytes } => {
            format!("deliver c{contact} to {to} {} B", bytes.len())
        }
        Event::Planned(Planned::Write { device, .. }) => format!("write d{device}"),
        other => format!("{other:?}"),
    }
}
