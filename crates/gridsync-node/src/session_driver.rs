//! The one driver of a [`SyncSession`] against a [`Replica`]: what every contact of a node
//! does with the session's events, whoever owns the socket and the clock.
//!
//! The node's connection task (`connection.rs`, over QUIC, on the monotonic clock) and the
//! street-scale simulation (`gridsync-sim`'s contact tier, in virtual time) both run their
//! sessions through a [`SessionDriver`], so a simulated contact runs the code that ships.
//! It is sans-IO like the session it wraps: every call takes `now_ms` on the owner's clock,
//! the replica is borrowed for the call (the node holds its lock only that long), bytes are
//! pulled with [`SessionDriver::poll_transmit`], and what only the owner can do (announce a
//! change to its other sessions, update its peer table, count) comes back as
//! [`DriverOutcome`]s.
//!
//! The policy it owns:
//! - received changes are persisted at once with their provenance and signatures, and the
//!   owner is told to announce them (with the write ticket that makes them durable);
//! - sync states wait in memory ([`PendingSyncStates`]) and are written at most once per
//!   [`SYNC_STATE_WRITE_INTERVAL`] and when the session ends ([`SessionDriver::finish`]);
//! - the session's timer and the sync-state deadline are one timer
//!   ([`SessionDriver::poll_timeout`]).

use std::collections::BTreeMap;

use gridsync_proto::{
    CloseReason, DocPath, NodeId, PeerIdentity, RefusalReason, SessionConfig, SessionError,
    SessionEvent, SyncSession,
};
use tracing::warn;

use crate::replica::{Replica, ReplicaError};
use crate::store_writer::WriteTicket;

/// The longest a sync state waits in memory before it is written, in the driver's clock's
/// milliseconds.
///
/// Writing the states in the same flush as the change they follow cost a second fsync per
/// received message on every hop, which doubled live-edit latency (benchmark scenario 4).
/// A sync state only makes the next reconnection cheaper: losing the newest ones to a crash
/// costs one larger sync message then, never data. A second bounds that loss and the write
/// rate (one transaction per connection per second under load); the session's end writes
/// whatever is still pending.
pub const SYNC_STATE_WRITE_INTERVAL_MS: u64 = 1_000;

/// What the driver did that its owner must act on, in the order it happened.
#[derive(Debug)]
pub enum DriverOutcome {
    /// The peer's hello matched its certificate: the link is accepted.
    PeerVerified,
    /// Changes from the peer were persisted. Announce `path` to every other session (this is
    /// how records travel hop by hop); it is durable once `durable_after` settles.
    Stored {
        path: DocPath,
        from: NodeId,
        durable_after: Option<WriteTicket>,
    },
    /// Changes from the peer were applied in memory but could not be stored.
    StoreFailed { path: DocPath, error: ReplicaError },
    /// A sync message from the peer was not applied; the session goes on.
    Refused {
        path: DocPath,
        reason: RefusalReason,
    },
    /// The first inventory finished.
    InventoryDone { differing: usize, rounds: u32 },
    /// Nothing is pending in either direction as far as this side knows.
    UpToDate,
    /// The session ended.
    Closed { reason: CloseReason },
}

/// One session and the bookkeeping around it (see the module docs).
#[derive(Debug)]
pub struct SessionDriver {
    session: SyncSession,
    peer_id: NodeId,
    pending: PendingSyncStates,
    /// Whether this node keeps per-record acknowledgements (volunteers and captains: the
    /// field app shows how far their records travelled), see [`SessionEvent::UpToDate`].
    tracks_acknowledgements: bool,
    /// Documents in which the peer refused changes during this session.
    refused: std::collections::BTreeSet<DocPath>,
    /// Whether the documents the inventory found identical were acknowledged. Once is
    /// enough: after that every change either side makes is synced document by document,
    /// which stores its own sync state.
    identical_acknowledged: bool,
}

impl SessionDriver {
    /// A session with `peer` (as its certificate describes it), started at `now_ms`.
    pub fn new(config: SessionConfig, peer: PeerIdentity, now_ms: u64) -> SessionDriver {
        let peer_id = peer.node_id.clone();
        let tracks_acknowledgements = matches!(
            config.local.role,
            gridsync_proto::Role::Volunteer | gridsync_proto::Role::Captain
        );
        SessionDriver {
            session: SyncSession::new(config, peer, now_ms),
            peer_id,
            pending: PendingSyncStates::default(),
            tracks_acknowledgements,
            refused: std::collections::BTreeSet::new(),
            identical_acknowledged: false,
        }
    }

    /// The peer, as its certificate describes it.
    pub fn peer(&self) -> &PeerIdentity {
        self.session.peer()
    }

    /// Bytes from the peer. An error closes the session (its goodbye is queued to send).
    pub fn handle_bytes(
        &mut self,
        now_ms: u64,
        bytes: &[u8],
        replica: &mut Replica,
    ) -> Result<(), SessionError> {
        self.session.handle_bytes(now_ms, bytes, replica)
    }

    /// The peer finished its stream; an error if it stopped inside a frame.
    pub fn handle_stream_end(&mut self) -> Result<(), SessionError> {
        self.session.handle_stream_end()
    }

    /// `path` changed here (a local write, or changes from another peer): offer it.
    pub fn local_change(&mut self, now_ms: u64, path: &DocPath, replica: &mut Replica) {
        self.session.local_change(now_ms, path, replica);
    }

    /// When [`SessionDriver::handle_timeout`] must run next: the session's own deadline or
    /// the pending sync states', whichever is first.
    pub fn poll_timeout(&self) -> Option<u64> {
        match (self.session.poll_timeout(), self.pending.due_at()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs what is due at `now_ms`: the session's timers (a stalled peer, a resend) and the
    /// write of the pending sync states.
    pub fn handle_timeout(&mut self, now_ms: u64, replica: &mut Replica) {
        if self.session.poll_timeout().is_some_and(|at| at <= now_ms) {
            self.session.handle_timeout(now_ms, replica);
        }
        if self.pending.is_due(now_ms) {
            self.write_sync_states(replica);
        }
    }

    /// The next bytes to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.session.poll_transmit()
    }

    /// Carries out the session's events against `replica` (received changes persisted, sync
    /// states kept for their write) and appends what the owner must act on to `outcomes`.
    pub fn process_events(
        &mut self,
        now_ms: u64,
        replica: &mut Replica,
        outcomes: &mut Vec<DriverOutcome>,
    ) {
        while let Some(event) = self.session.poll_event() {
            let outcome = match event {
                SessionEvent::PeerVerified { .. } => DriverOutcome::PeerVerified,
                SessionEvent::DocumentChanged {
                    path,
                    before_heads,
                    from,
                    received_whole,
                    signed_heads,
                } => match replica.persist_received(
                    &path,
                    &before_heads,
                    Some(&from),
                    received_whole,
                    signed_heads,
                ) {
                    Ok(()) => DriverOutcome::Stored {
                        path,
                        from,
                        durable_after: replica.last_write_ticket(),
                    },
                    Err(error) => DriverOutcome::StoreFailed { path, error },
                },
                SessionEvent::SyncStateUpdated { path, state } => {
                    // Written later, so always after the documents it describes (persisted
                    // above, in the order the session reported them).
                    self.pending.insert(path, state, now_ms);
                    continue;
                }
                SessionEvent::ChangeRefused { path, reason } => {
                    self.refused.insert(path.clone());
                    DriverOutcome::Refused { path, reason }
                }
                SessionEvent::InventoryDone { differing, rounds } => {
                    DriverOutcome::InventoryDone { differing, rounds }
                }
                SessionEvent::UpToDate => {
                    self.acknowledge_identical(now_ms, replica);
                    DriverOutcome::UpToDate
                }
                SessionEvent::Closed { reason } => DriverOutcome::Closed { reason },
            };
            outcomes.push(outcome);
        }
    }

    /// First up to date: the documents the inventory found identical are acknowledged too
    /// (their sync states pend with the others). A failure to read a stored state loses only
    /// an acknowledgement, which the next contact makes again.
    fn acknowledge_identical(&mut self, now_ms: u64, replica: &mut Replica) {
        if !self.tracks_acknowledgements || self.identical_acknowledged {
            return;
        }
        self.identical_acknowledged = true;
        match replica.states_when_up_to_date(self.session.peer(), &self.refused) {
            Ok(states) => {
                for (path, state) in states {
                    self.pending.insert(path, state, now_ms);
                }
            }
            Err(error) => {
                tracing::warn!(peer = %self.peer_id, %error, "cannot record what the peer acknowledged")
            }
        }
    }

    /// The session ended (or its owner is dropping it in order): writes the pending sync
    /// states. A crash skips this, and loses only those states.
    pub fn finish(&mut self, replica: &mut Replica) {
        self.write_sync_states(replica);
    }

    /// Whether sync states wait to be written.
    pub fn has_pending_sync_states(&self) -> bool {
        self.pending.due_at().is_some()
    }

    pub fn is_closed(&self) -> bool {
        self.session.is_closed()
    }

    /// The error a timer closed the session with, if it did.
    pub fn close_error(&self) -> Option<SessionError> {
        self.session.close_error()
    }

    /// Stages every pending state with the replica (with a store writer, committed with the
    /// next group, after the documents they describe). A failure is logged and the states
    /// dropped: they are a cache, and the session keeps the live ones in memory.
    fn write_sync_states(&mut self, replica: &mut Replica) {
        let states = self.pending.take();
        if states.is_empty() {
            return;
        }
        let count = states.len();
        if let Err(e) = replica.store_sync_states(&self.peer_id, states) {
            warn!(error = %e, documents = count, "cannot persist sync states");
        }
    }
}

/// Sync states received for one peer and not yet written: the latest per document, and when
/// the oldest of them is due. Pure bookkeeping, so the write policy is testable without IO.
#[derive(Debug, Default)]
struct PendingSyncStates {
    states: BTreeMap<DocPath, Vec<u8>>,
    /// [`SYNC_STATE_WRITE_INTERVAL_MS`] after the first state of the batch arrived; `None`
    /// while nothing is pending.
    due_at: Option<u64>,
}

impl PendingSyncStates {
    /// Keeps `state` as the one to write for `path`, replacing an older unwritten one.
    fn insert(&mut self, path: DocPath, state: Vec<u8>, now_ms: u64) {
        self.states.insert(path, state);
        // Counted from the batch's first state, not pushed back by later ones: a session
        // that never goes quiet still writes once per interval.
        self.due_at
            .get_or_insert(now_ms.saturating_add(SYNC_STATE_WRITE_INTERVAL_MS));
    }

    /// When the pending batch must be written; `None` when nothing is pending.
    fn due_at(&self) -> Option<u64> {
        self.due_at
    }

    fn is_due(&self, now_ms: u64) -> bool {
        self.due_at.is_some_and(|due| now_ms >= due)
    }

    /// Everything pending, in path order, leaving nothing behind.
    fn take(&mut self) -> Vec<(DocPath, Vec<u8>)> {
        self.due_at = None;
        std::mem::take(&mut self.states).into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INTERVAL: u64 = SYNC_STATE_WRITE_INTERVAL_MS;

    fn path(text: &str) -> DocPath {
        // Invariant: the test paths are valid hierarchical paths.
        DocPath::parse(text).expect("valid test path")
    }

    #[test]
    fn nothing_pending_is_never_due() {
        let pending = PendingSyncStates::default();
        assert_eq!(pending.due_at(), None);
        assert!(!pending.is_due(u64::MAX));
    }

    #[test]
    fn a_batch_is_due_one_interval_after_its_first_state() {
        let start = 5_000;
        let mut pending = PendingSyncStates::default();
        pending.insert(path("panhuo/grid-017/bldg-12"), vec![1], start);
        // Later states join the batch without pushing its deadline back.
        pending.insert(
            path("panhuo/grid-017/bldg-13"),
            vec![2],
            start + INTERVAL / 2,
        );
        assert_eq!(pending.due_at(), Some(start + INTERVAL));
        assert!(!pending.is_due(start + INTERVAL - 1));
        assert!(pending.is_due(start + INTERVAL));
    }

    #[test]
    fn take_returns_the_latest_state_per_document_and_clears_the_batch() {
        let start = 5_000;
        let mut pending = PendingSyncStates::default();
        let a = path("panhuo/grid-017/bldg-12");
        let b = path("panhuo/grid-017/bldg-13");
        pending.insert(b.clone(), vec![1], start);
        pending.insert(a.clone(), vec![2], start);
        pending.insert(b.clone(), vec![3], start);
        assert_eq!(pending.take(), vec![(a.clone(), vec![2]), (b, vec![3])]);
        assert_eq!(pending.take(), Vec::new());
        assert_eq!(pending.due_at(), None);

        // The next batch gets a fresh deadline from its own first state.
        let later = start + 5_000;
        pending.insert(a, vec![4], later);
        assert_eq!(pending.due_at(), Some(later + INTERVAL));
    }
}

/// The driver on real replicas, keys and certificates (the street of `test_street`).
#[cfg(test)]
mod on_replicas {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::test_street::{Member, office_writes_plan, peer_of, plan_path, street};

    /// Moves bytes both ways at `now_ms` until neither side sends; returns every outcome of
    /// `b`'s driver.
    fn exchange(
        a: &mut Member,
        da: &mut SessionDriver,
        b: &mut Member,
        db: &mut SessionDriver,
        now_ms: u64,
    ) -> Vec<DriverOutcome> {
        let mut outcomes_b = Vec::new();
        let mut ignored = Vec::new();
        loop {
            let mut moved = false;
            while let Some(bytes) = da.poll_transmit() {
                moved = true;
                let _ = db.handle_bytes(now_ms, &bytes, &mut b.replica);
                db.process_events(now_ms, &mut b.replica, &mut outcomes_b);
            }
            while let Some(bytes) = db.poll_transmit() {
                moved = true;
                let _ = da.handle_bytes(now_ms, &bytes, &mut a.replica);
                da.process_events(now_ms, &mut a.replica, &mut ignored);
            }
            if !moved {
                return outcomes_b;
            }
        }
    }

    fn drivers(a: &Member, b: &Member, now_ms: u64) -> (SessionDriver, SessionDriver) {
        (
            SessionDriver::new(SessionConfig::new(a.identity.clone()), peer_of(b), now_ms),
            SessionDriver::new(SessionConfig::new(b.identity.clone()), peer_of(a), now_ms),
        )
    }

    #[test]
    fn received_changes_are_stored_at_once_and_sync_states_when_their_batch_is_due() {
        let (_ca, mut office, mut relay, _volunteer) = street();
        office_writes_plan(&mut office, "households");
        let start = 10_000;
        let (mut d_office, mut d_relay) = drivers(&office, &relay, start);
        let outcomes = exchange(&mut office, &mut d_office, &mut relay, &mut d_relay, start);

        // The plan was stored as it arrived, and the owner is told to announce it.
        assert!(outcomes.iter().any(|o| matches!(o,
            DriverOutcome::Stored { path, from, .. }
                if *path == plan_path() && *from == office.identity.node_id)));
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, DriverOutcome::PeerVerified))
        );
        let office_id = office.identity.node_id.clone();
        let stored_state = |relay: &Member| {
            relay
                .replica
                .store()
                .sync_state(&office_id, &plan_path())
                .unwrap()
        };

        // Its sync state waits for the batch: not written yet, and the timer says when.
        assert!(d_relay.has_pending_sync_states());
        assert_eq!(stored_state(&relay), None);
        let due = d_relay.poll_timeout().unwrap();
        assert!(due <= start + SYNC_STATE_WRITE_INTERVAL_MS, "due {due}");
        d_relay.handle_timeout(start + SYNC_STATE_WRITE_INTERVAL_MS - 1, &mut relay.replica);
        assert_eq!(
            stored_state(&relay),
            None,
            "written before its batch was due"
        );

        d_relay.handle_timeout(start + SYNC_STATE_WRITE_INTERVAL_MS, &mut relay.replica);
        assert!(stored_state(&relay).is_some());
        assert!(!d_relay.has_pending_sync_states());
    }

    #[test]
    fn finishing_a_session_writes_its_pending_sync_states() {
        let (_ca, mut office, mut relay, _volunteer) = street();
        office_writes_plan(&mut office, "households");
        let (mut d_office, mut d_relay) = drivers(&office, &relay, 0);
        exchange(&mut office, &mut d_office, &mut relay, &mut d_relay, 0);
        assert!(d_relay.has_pending_sync_states());

        d_relay.finish(&mut relay.replica);
        let office_id = office.identity.node_id.clone();
        let state = relay.replica.store().sync_state(&office_id, &plan_path());
        assert!(state.unwrap().is_some());
        assert!(!d_relay.has_pending_sync_states());
    }
}
