//! How a device drives the sessions of its contacts: through the node's own
//! [`gridsync_node::session_driver::SessionDriver`], as its connection task does. After every
//! input (bytes delivered, a timer, a local change) the driver carries out the session's
//! events (changes persisted with their provenance, sync states batched), the changed
//! documents are announced to the device's other sessions (what the node's change feed
//! does), the bytes are handed to the contact's pipe, and the timer is re-armed.

use gridsync_node::session_driver::DriverOutcome;
use gridsync_proto::{CloseReason, DocPath};

use super::{EPOCH_MS, Event, StreetSim, ms};
use crate::contact::device::Device;
use crate::contact::{ContactError, ContactId, SimTime};

/// Most immediate timer rounds one input may trigger before the rest is deferred by a
/// millisecond (a guard against a session that keeps asking to run now).
const MAX_IMMEDIATE_ROUNDS: u32 = 10_000;

impl StreetSim {
    pub(super) fn deliver(
        &mut self,
        now: SimTime,
        contact: ContactId,
        to: usize,
        bytes: &[u8],
    ) -> Result<(), ContactError> {
        let Some(live) = self.contacts.get(&contact) else {
            return Ok(());
        };
        let index = live.devices[to];
        let Device {
            sessions, replica, ..
        } = &mut self.devices[index];
        let Some(side) = sessions.get_mut(&contact) else {
            return Ok(());
        };
        side.up_to_date = false;
        if side.driver.is_closed() {
            return Ok(());
        }
        // An error closes the session; its `Closed` event is counted when drained.
        let _ = side.driver.handle_bytes(ms(now), bytes, replica);
        self.service(now, index, vec![contact])
    }

    pub(super) fn timer(
        &mut self,
        now: SimTime,
        contact: ContactId,
        side_index: usize,
        generation: u64,
    ) -> Result<(), ContactError> {
        let Some(live) = self.contacts.get(&contact) else {
            return Ok(());
        };
        let index = live.devices[side_index];
        let Device {
            sessions, replica, ..
        } = &mut self.devices[index];
        let Some(side) = sessions.get_mut(&contact) else {
            return Ok(());
        };
        if side.timer_generation != generation {
            return Ok(());
        }
        side.driver.handle_timeout(ms(now), replica);
        self.service(now, index, vec![contact])
    }

    /// After inputs to sessions of device `index`: carries out their events, announces
    /// changed documents to the device's other sessions, sends their bytes and re-arms their
    /// timers, until nothing more is pending now.
    pub(super) fn service(
        &mut self,
        now: SimTime,
        index: usize,
        mut work: Vec<ContactId>,
    ) -> Result<(), ContactError> {
        let mut rounds = 0;
        while let Some(contact) = work.pop() {
            let changed = self.drain_events(now, index, contact)?;
            if !changed.is_empty() {
                let Device {
                    sessions, replica, ..
                } = &mut self.devices[index];
                for (other, side) in sessions.iter_mut() {
                    if *other == contact {
                        continue;
                    }
                    for path in &changed {
                        side.driver.local_change(ms(now), path, replica);
                    }
                    side.up_to_date = false;
                    if !work.contains(other) {
                        work.push(*other);
                    }
                }
            }
            self.transmit(now, index, contact);
            rounds += 1;
            if self.arm_timer(now, index, contact, rounds > MAX_IMMEDIATE_ROUNDS)
                && !work.contains(&contact)
            {
                work.push(contact);
            }
        }
        Ok(())
    }

    /// Carries out one session's events; returns the documents that changed.
    fn drain_events(
        &mut self,
        now: SimTime,
        index: usize,
        contact: ContactId,
    ) -> Result<Vec<DocPath>, ContactError> {
        let Device {
            sessions, replica, ..
        } = &mut self.devices[index];
        let Some(side) = sessions.get_mut(&contact) else {
            return Ok(Vec::new());
        };
        let mut outcomes = Vec::new();
        side.driver.process_events(ms(now), replica, &mut outcomes);
        let mut changed = Vec::new();
        for outcome in outcomes {
            match outcome {
                DriverOutcome::Stored { path, .. } => {
                    self.counters.documents_received += 1;
                    side.up_to_date = false;
                    changed.push(path);
                }
                // A device that cannot store what it received has a broken disk: the run
                // fails rather than measure a street on it.
                DriverOutcome::StoreFailed { error, .. } => return Err(error.into()),
                DriverOutcome::Refused { path, reason } => {
                    self.counters.refused_changes += 1;
                    self.counters.note(format!(
                        "{} refused {path}: {reason}",
                        side.driver.peer().node_id
                    ));
                }
                DriverOutcome::UpToDate => side.up_to_date = true,
                DriverOutcome::Closed { reason } => {
                    if let CloseReason::Error(error) = reason {
                        self.counters.session_errors += 1;
                        self.counters.note(format!(
                            "{} closed its session with {} at {}: {error}",
                            self.layout.devices[index].node_id,
                            side.driver.peer().node_id,
                            now
                        ));
                    }
                }
                DriverOutcome::PeerVerified | DriverOutcome::InventoryDone { .. } => {}
            }
        }
        Ok(changed)
    }

    /// Hands a session's queued bytes to its contact's pipe.
    fn transmit(&mut self, now: SimTime, index: usize, contact: ContactId) {
        let Some(live) = self.contacts.get_mut(&contact) else {
            return;
        };
        let side_index = usize::from(live.devices[1] == index);
        let to = 1 - side_index;
        let Some(side) = self.devices[index].sessions.get_mut(&contact) else {
            return;
        };
        let mut deliveries = Vec::new();
        while let Some(bytes) = side.driver.poll_transmit() {
            deliveries.extend(live.pipes[side_index].send(now, &bytes, &mut self.link_rng));
        }
        for (at, bytes) in deliveries {
            self.push(at, Event::Deliver { contact, to, bytes });
        }
    }

    /// Re-arms a session's timer. Returns true when it ran the timer at once (its deadline
    /// had passed) and the session needs servicing again.
    fn arm_timer(&mut self, now: SimTime, index: usize, contact: ContactId, defer: bool) -> bool {
        let Some(live) = self.contacts.get(&contact) else {
            return false;
        };
        let side_index = usize::from(live.devices[1] == index);
        let Device {
            sessions, replica, ..
        } = &mut self.devices[index];
        let Some(side) = sessions.get_mut(&contact) else {
            return false;
        };
        if side.driver.is_closed() {
            // As the node's connection task ends: the pending sync states are written.
            side.driver.finish(replica);
            sessions.remove(&contact);
            return false;
        }
        let Some(deadline) = side.driver.poll_timeout() else {
            return false;
        };
        if deadline <= ms(now) && !defer {
            side.driver.handle_timeout(ms(now), replica);
            return true;
        }
        side.timer_generation += 1;
        let generation = side.timer_generation;
        let at = (deadline.max(ms(now) + u64::from(defer)) - EPOCH_MS) * 1000;
        self.push(
            at.max(now),
            Event::Timer {
                contact,
                side: side_index,
                generation,
            },
        );
        false
    }
}
