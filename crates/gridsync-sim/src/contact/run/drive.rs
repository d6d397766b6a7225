//! How a device drives the sessions of its contacts, as the node's connection task does
//! (`gridsync_node::connection`): after every input (bytes delivered, a timer, a local change)
//! the session's events are carried out (changes persisted with their provenance, sync
//! states stored, changed documents announced to the device's other sessions), then its
//! bytes are handed to the contact's pipe, then its timer is re-armed.

use gridsync_proto::{CloseReason, DocPath, SessionEvent};

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
        if side.session.is_closed() {
            return Ok(());
        }
        // An error closes the session; its `Closed` event is counted when drained.
        let _ = side.session.handle_bytes(ms(now), bytes, replica);
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
        side.session.handle_timeout(ms(now), replica);
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
                        side.session.local_change(ms(now), path, replica);
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
        let mut changed = Vec::new();
        while let Some(event) = side.session.poll_event() {
            match event {
                SessionEvent::DocumentChanged {
                    path,
                    before_heads,
                    from,
                    received_whole,
                    signed_heads,
                } => {
                    replica.persist_received(
                        &path,
                        &before_heads,
                        Some(&from),
                        received_whole,
                        signed_heads,
                    )?;
                    self.counters.documents_received += 1;
                    side.up_to_date = false;
                    changed.push(path);
                }
                SessionEvent::SyncStateUpdated { path, state } => {
                    let peer = side.session.peer().node_id.clone();
                    replica
                        .store_sync_states(&peer, vec![(path, state)])
                        .map_err(|e| ContactError::Replica(Box::new(e)))?;
                }
                SessionEvent::ChangeRefused { path, reason } => {
                    self.counters.refused_changes += 1;
                    self.counters.note(format!(
                        "{} refused {path}: {reason}",
                        side.session.peer().node_id
                    ));
                }
                SessionEvent::UpToDate => side.up_to_date = true,
                SessionEvent::Closed { reason } => {
                    if let CloseReason::Error(error) = reason {
                        self.counters.session_errors += 1;
                        self.counters.note(format!(
                            "{} closed its session with {} at {}: {error}",
                            self.layout.devices[index].node_id,
                            side.session.peer().node_id,
                            now
                        ));
                    }
                }
                SessionEvent::PeerVerified { .. } | SessionEvent::InventoryDone { .. } => {}
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
        while let Some(bytes) = side.session.poll_transmit() {
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
        if side.session.is_closed() {
            sessions.remove(&contact);
            return false;
        }
        let Some(deadline) = side.session.poll_timeout() else {
            return false;
        };
        if deadline <= ms(now) && !defer {
            side.session.handle_timeout(ms(now), replica);
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
