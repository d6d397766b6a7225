//! [`SyncSession`]: the per-connection state machine.
//!
//! A session goes through three phases: it waits for the peer's hello (sending its own at
//! once), reconciles the inventory of shared documents, then syncs the differing documents
//! and pushes live changes until closed. See [`SyncSession`] for the driving contract.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use automerge::sync::{Message, State, SyncDoc};
use automerge::{ActorId, Automerge};

use crate::authorize::{PeerAccess, check_carried, is_shared};
use crate::frame::{
    Frame, FrameDecoder, GoodbyeReason, Hello, PROTOCOL_VERSION, RangeSummary, RefusalReason,
    encode_frame,
};
use crate::inventory::{InventorySnapshot, TurnOutcome, heads_digest};
use crate::path::DocPath;

mod config;
mod events;

pub use config::{DocumentSet, Limits, LocalIdentity, PeerIdentity, SessionConfig};
pub use events::{CloseReason, SessionError, SessionEvent, SessionStats};

/// Where the inventory stands.
#[derive(Debug)]
enum InventoryPhase {
    /// Waiting for the peer's hello; nothing sent yet.
    NotStarted,
    /// Root sent; `snapshot` is what we summarised; `root_received` once the peer's root came.
    Running {
        snapshot: InventorySnapshot,
        root_received: bool,
    },
    Done,
}

/// Per-document sync bookkeeping for this peer.
#[derive(Debug)]
struct TrackedDoc {
    state: State,
    /// The encoded state last handed to the node, to emit `SyncStateUpdated` only on change.
    persisted: Vec<u8>,
}

/// The sync engine for one connection to one peer, without IO.
///
/// # Driving contract
///
/// The driver (gridsync-net / gridsync-node) owns the stream and the clock; times are
/// milliseconds on any monotonic scale, passed as `now`. After creating the session:
///
/// 1. Call [`poll_transmit`](Self::poll_transmit) until `None` and write the bytes to the
///    stream (the hello is queued by [`new`](Self::new)).
/// 2. On every event source, call the matching input:
///    - bytes read from the stream: [`handle_bytes`](Self::handle_bytes);
///    - a document changed locally or through another session:
///      [`local_change`](Self::local_change);
///    - the deadline from [`poll_timeout`](Self::poll_timeout) passed:
///      [`handle_timeout`](Self::handle_timeout).
/// 3. After each input, drain in this order: [`poll_event`](Self::poll_event) until `None`
///    (persist documents and sync states, notify other sessions), then `poll_transmit` until
///    `None`, then re-read `poll_timeout` and re-arm the timer. `poll_timeout` may return a
///    time already past: that means "call `handle_timeout` now", which is how deferred work
///    resumes once the outgoing buffer has drained.
/// 4. When [`is_closed`](Self::is_closed) is true and `poll_transmit` is drained, finish the
///    stream and drop the session.
///
/// `handle_bytes` returns the error that closed the session, if one did; the same error is
/// also reported as [`SessionEvent::Closed`].
///
/// Nothing is sent about documents (no inventory, no sync message) until the peer's hello
/// has been verified against `PeerIdentity`, and nothing is ever sent about a document outside
/// the intersection of both nodes' scopes.
#[derive(Debug)]
pub struct SyncSession {
    config: SessionConfig,
    peer: PeerIdentity,
    peer_actor: ActorId,
    decoder: FrameDecoder,
    /// Encoded frames waiting for `poll_transmit`, with their total size.
    outgoing: VecDeque<Vec<u8>>,
    outgoing_bytes: usize,
    events: VecDeque<SessionEvent>,
    verified: bool,
    inventory: InventoryPhase,
    inventory_rounds: u32,
    inventory_differing: usize,
    tracked: BTreeMap<DocPath, TrackedDoc>,
    /// Documents to start syncing, waiting for an in-flight slot.
    to_start: BTreeSet<DocPath>,
    /// Tracked documents that need a `generate_sync_message`.
    dirty: BTreeSet<DocPath>,
    /// Documents this side is actively syncing and that have not settled.
    in_flight: BTreeSet<DocPath>,
    last_now: u64,
    last_progress: u64,
    up_to_date_reported: bool,
    closed: bool,
    stats: SessionStats,
    /// One span per peer connection; every input is handled inside it.
    span: tracing::Span,
}

/// Largest batch returned by one `poll_transmit`.
const TRANSMIT_BATCH: usize = 64 * 1024;

impl SyncSession {
    /// Starts a session and queues the hello.
    pub fn new(config: SessionConfig, peer: PeerIdentity, now: u64) -> Self {
        let peer_actor = peer.node_id.actor_id();
        let max_frame_len = config.limits.max_frame_len;
        let span = tracing::info_span!("sync_session", peer = %peer.node_id, role = %peer.role);
        let mut session = SyncSession {
            config,
            peer,
            peer_actor,
            decoder: FrameDecoder::new(max_frame_len),
            outgoing: VecDeque::new(),
            outgoing_bytes: 0,
            events: VecDeque::new(),
            verified: false,
            inventory: InventoryPhase::NotStarted,
            inventory_rounds: 0,
            inventory_differing: 0,
            tracked: BTreeMap::new(),
            to_start: BTreeSet::new(),
            dirty: BTreeSet::new(),
            in_flight: BTreeSet::new(),
            last_now: now,
            last_progress: now,
            up_to_date_reported: false,
            closed: false,
            stats: SessionStats::default(),
            span,
        };
        let hello = Frame::Hello(Hello {
            protocol_version: PROTOCOL_VERSION,
            node_id: session.config.local.node_id.clone(),
            role: session.config.local.role,
            scopes: session.config.local.scopes.clone(),
        });
        session.queue(&hello);
        session
    }

    /// The peer as its certificate describes it.
    pub fn peer(&self) -> &PeerIdentity {
        &self.peer
    }

    /// Whether `path` is in the intersection of both nodes' scopes.
    pub fn is_shared(&self, path: &DocPath) -> bool {
        is_shared(&self.config.local.scopes, &self.peer.scopes, path)
    }

    /// Encoded bytes waiting for `poll_transmit`.
    pub fn buffered_outgoing(&self) -> usize {
        self.outgoing_bytes
    }

    /// Documents this side is syncing that have not settled (at most
    /// `Limits::max_docs_in_flight`).
    pub fn docs_in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Byte and frame counters so far.
    pub fn stats(&self) -> SessionStats {
        self.stats
    }

    /// Feeds bytes read from the stream.
    pub fn handle_bytes(
        &mut self,
        now: u64,
        bytes: &[u8],
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        if self.closed {
            return Err(SessionError::Closed);
        }
        let span = self.span.clone();
        let _entered = span.enter();
        self.last_now = now;
        self.stats.bytes_received += bytes.len() as u64;
        self.decoder.push(bytes);
        loop {
            let frame = match self.decoder.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => break,
                Err(e) => return Err(self.fail(e.into())),
            };
            self.stats.frames_received += 1;
            self.last_progress = now;
            if let Err(e) = self.handle_frame(frame, docs) {
                return Err(self.fail(e));
            }
            if self.closed {
                return Ok(());
            }
        }
        self.pump(docs);
        Ok(())
    }

    /// Reports that the peer finished its stream. Ending in the middle of a frame is a
    /// protocol error (a truncated frame must not pass for an orderly close).
    pub fn handle_stream_end(&mut self) -> Result<(), SessionError> {
        if self.closed || self.decoder.buffered() == 0 {
            return Ok(());
        }
        Err(self.fail(SessionError::ProtocolViolation(
            "stream ended inside a frame",
        )))
    }

    /// Reports that `path` changed locally (or through another peer's session): its new
    /// changes are pushed to this peer if the document is shared.
    pub fn local_change(&mut self, now: u64, path: &DocPath, docs: &mut dyn DocumentSet) {
        if self.closed || !self.is_shared(path) {
            return;
        }
        let span = self.span.clone();
        let _entered = span.enter();
        self.last_now = now;
        if self.tracked.contains_key(path) {
            self.dirty.insert(path.clone());
        } else {
            self.to_start.insert(path.clone());
        }
        self.up_to_date_reported = false;
        self.pump(docs);
    }

    /// Runs timers: resumes deferred work, and closes a session whose hello or inventory made
    /// no progress for `idle_timeout_ms`. Documents still marked in flight after that long
    /// (a peer that stopped answering one document) are given up on rather than closing.
    pub fn handle_timeout(&mut self, now: u64, docs: &mut dyn DocumentSet) {
        if self.closed {
            return;
        }
        let span = self.span.clone();
        let _entered = span.enter();
        self.last_now = now;
        let idle = self.config.limits.idle_timeout_ms;
        if now >= self.last_progress.saturating_add(idle) {
            if !self.verified || !matches!(self.inventory, InventoryPhase::Done) {
                self.fail(SessionError::Timeout(idle));
                return;
            }
            if !self.in_flight.is_empty() {
                tracing::debug!(peer = %self.peer.node_id, docs = self.in_flight.len(), "giving up waiting on documents");
                self.in_flight.clear();
            }
        }
        self.pump(docs);
    }

    /// When to call `handle_timeout` next, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.closed {
            return None;
        }
        let has_deferred = !self.dirty.is_empty()
            || (!self.to_start.is_empty()
                && self.in_flight.len() < self.config.limits.max_docs_in_flight);
        if self.verified
            && has_deferred
            && self.outgoing_bytes < self.config.limits.max_outgoing_bytes
        {
            return Some(self.last_now);
        }
        let waiting = !self.verified
            || !matches!(self.inventory, InventoryPhase::Done)
            || !self.in_flight.is_empty();
        waiting.then(|| {
            self.last_progress
                .saturating_add(self.config.limits.idle_timeout_ms)
        })
    }

    /// Framed bytes to write to the stream, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        let mut batch = self.outgoing.pop_front()?;
        while let Some(next) = self.outgoing.front() {
            if batch.len() + next.len() > TRANSMIT_BATCH {
                break;
            }
            if let Some(next) = self.outgoing.pop_front() {
                batch.extend_from_slice(&next);
            }
        }
        self.outgoing_bytes = self.outgoing_bytes.saturating_sub(batch.len());
        self.stats.bytes_sent += batch.len() as u64;
        Some(batch)
    }

    /// The next effect for the node.
    pub fn poll_event(&mut self) -> Option<SessionEvent> {
        self.events.pop_front()
    }

    /// Whether the session has ended (drain `poll_transmit` for the goodbye, then drop it).
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// Ends the session in an orderly way.
    pub fn close(&mut self) {
        if self.closed {
            return;
        }
        self.queue(&Frame::Goodbye {
            reason: GoodbyeReason::Normal,
            detail: String::new(),
        });
        self.closed = true;
        self.events.push_back(SessionEvent::Closed {
            reason: CloseReason::Orderly,
        });
    }

    fn fail(&mut self, error: SessionError) -> SessionError {
        if !self.closed {
            tracing::warn!(peer = %self.peer.node_id, %error, "closing sync session");
            if !matches!(error, SessionError::PeerClosed { .. }) {
                self.queue(&Frame::Goodbye {
                    reason: error.goodbye_reason(),
                    detail: error.to_string(),
                });
            }
            self.closed = true;
            self.events.push_back(SessionEvent::Closed {
                reason: CloseReason::Error(error.clone()),
            });
        }
        error
    }

    fn queue(&mut self, frame: &Frame) -> bool {
        match encode_frame(frame) {
            Ok(bytes) => {
                self.stats.frames_sent += 1;
                if matches!(frame, Frame::DocSync { .. }) {
                    self.stats.doc_frames_sent += 1;
                }
                self.outgoing_bytes += bytes.len();
                self.outgoing.push_back(bytes);
                true
            }
            Err(error) => {
                tracing::warn!(peer = %self.peer.node_id, kind = frame.kind(), %error, "frame too large to send");
                false
            }
        }
    }

    fn handle_frame(
        &mut self,
        frame: Frame,
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        if let Frame::Goodbye { reason, detail } = frame {
            if reason == GoodbyeReason::Normal {
                self.closed = true;
                self.events.push_back(SessionEvent::Closed {
                    reason: CloseReason::Orderly,
                });
                return Ok(());
            }
            return Err(SessionError::PeerClosed { reason, detail });
        }
        if !self.verified {
            let Frame::Hello(hello) = frame else {
                return Err(SessionError::BeforeHello(frame.kind()));
            };
            self.verify_hello(&hello)?;
            self.verified = true;
            self.events.push_back(SessionEvent::PeerVerified {
                node_id: self.peer.node_id.clone(),
                role: self.peer.role,
            });
            self.start_inventory(docs);
            return Ok(());
        }
        match frame {
            Frame::Hello(_) => Err(SessionError::ProtocolViolation("second hello")),
            Frame::Inventory(parts) => self.handle_inventory(parts),
            Frame::DocSync { path, message } => self.handle_doc_sync(path, &message, docs),
            Frame::Refused { path, reason } => {
                // The peer keeps the session; nothing for the node to do but note it.
                tracing::info!(%path, %reason, "peer refused our sync message");
                self.in_flight.remove(&path);
                Ok(())
            }
            Frame::Goodbye { .. } => Ok(()),
        }
    }

    fn verify_hello(&self, hello: &Hello) -> Result<(), SessionError> {
        if hello.protocol_version != PROTOCOL_VERSION {
            return Err(SessionError::UnsupportedVersion {
                ours: PROTOCOL_VERSION,
                theirs: hello.protocol_version,
            });
        }
        if hello.node_id != self.peer.node_id {
            return Err(SessionError::IdentityMismatch("node id"));
        }
        if hello.role != self.peer.role {
            return Err(SessionError::IdentityMismatch("role"));
        }
        let mut claimed = hello.scopes.0.clone();
        let mut certified = self.peer.scopes.0.clone();
        claimed.sort();
        claimed.dedup();
        certified.sort();
        certified.dedup();
        if claimed != certified {
            return Err(SessionError::IdentityMismatch("scopes"));
        }
        Ok(())
    }

    fn start_inventory(&mut self, docs: &mut dyn DocumentSet) {
        let mut items = Vec::new();
        for path in docs.paths() {
            if self.is_shared(&path)
                && let Some(heads) = docs.heads(&path)
            {
                items.push((path, heads_digest(&heads)));
            }
        }
        let snapshot = InventorySnapshot::new(items);
        self.queue(&Frame::Inventory(vec![snapshot.root_part()]));
        self.inventory = InventoryPhase::Running {
            snapshot,
            root_received: false,
        };
    }

    fn handle_inventory(
        &mut self,
        parts: Vec<crate::frame::RangePart>,
    ) -> Result<(), SessionError> {
        let InventoryPhase::Running {
            snapshot,
            root_received,
        } = &mut self.inventory
        else {
            return Err(SessionError::ProtocolViolation(
                "inventory frame after the inventory ended",
            ));
        };
        self.inventory_rounds += 1;
        if self.inventory_rounds > self.config.limits.max_inventory_rounds {
            return Err(SessionError::ProtocolViolation(
                "inventory takes too many rounds",
            ));
        }
        if parts.iter().any(|p| !p.range.is_well_formed()) {
            return Err(SessionError::ProtocolViolation(
                "inventory range with lower >= upper",
            ));
        }
        let local = &self.config.local.scopes;
        let peer = &self.peer.scopes;
        let shared = |p: &DocPath| is_shared(local, peer, p);
        let mut outcome = TurnOutcome::default();
        let finished;
        if !*root_received {
            *root_received = true;
            let [root] = parts.as_slice() else {
                return Err(SessionError::ProtocolViolation(
                    "inventory must open with one root part",
                ));
            };
            if root.range.lower.is_some()
                || root.range.upper.is_some()
                || !matches!(root.summary, RangeSummary::Fingerprint(_))
            {
                return Err(SessionError::ProtocolViolation(
                    "inventory root is not a whole-set fingerprint",
                ));
            }
            let leader = self.config.local.node_id < self.peer.node_id;
            let RangeSummary::Fingerprint(theirs) = &root.summary else {
                return Err(SessionError::ProtocolViolation(
                    "inventory root is not a fingerprint",
                ));
            };
            if snapshot.fingerprint(&root.range) == *theirs {
                finished = true;
            } else if leader {
                snapshot.answer(root, &shared, &mut outcome);
                self.queue_inventory_turn(outcome.replies)?;
                finished = false;
            } else {
                finished = false;
            }
        } else if parts.is_empty() {
            finished = true;
        } else {
            for part in &parts {
                snapshot.answer(part, &shared, &mut outcome);
            }
            finished = outcome.replies.is_empty();
            self.queue_inventory_turn(outcome.replies)?;
        }
        self.inventory_differing += outcome.differing.len();
        for path in outcome.differing {
            if self.tracked.contains_key(&path) {
                self.dirty.insert(path);
            } else {
                self.to_start.insert(path);
            }
        }
        if finished {
            self.inventory = InventoryPhase::Done;
            tracing::debug!(peer = %self.peer.node_id, differing = self.inventory_differing, rounds = self.inventory_rounds, "inventory done");
            self.events.push_back(SessionEvent::InventoryDone {
                differing: self.inventory_differing,
                rounds: self.inventory_rounds,
            });
        }
        Ok(())
    }

    fn queue_inventory_turn(
        &mut self,
        replies: Vec<crate::frame::RangePart>,
    ) -> Result<(), SessionError> {
        if replies.len() > crate::frame::MAX_INVENTORY_PARTS {
            return Err(SessionError::ProtocolViolation(
                "inventory turn would exceed the part limit",
            ));
        }
        if self.queue(&Frame::Inventory(replies)) {
            Ok(())
        } else {
            Err(SessionError::ProtocolViolation(
                "inventory turn would exceed the frame limit",
            ))
        }
    }

    fn refuse(&mut self, path: DocPath, reason: RefusalReason) {
        tracing::info!(peer = %self.peer.node_id, %path, ?reason, "refused sync message");
        self.queue(&Frame::Refused {
            path: path.clone(),
            reason,
        });
        self.events
            .push_back(SessionEvent::ChangeRefused { path, reason });
    }

    /// Ensures a sync state for `path` exists, loading the persisted one.
    fn track(&mut self, path: &DocPath, docs: &mut dyn DocumentSet) -> Result<(), SessionError> {
        if self.tracked.contains_key(path) {
            return Ok(());
        }
        if self.tracked.len() >= self.config.limits.max_tracked_docs {
            return Err(SessionError::TooManyDocs(
                self.config.limits.max_tracked_docs,
            ));
        }
        let persisted = docs.load_sync_state(&self.peer.node_id, path);
        let mut state = persisted
            .as_deref()
            .and_then(|bytes| State::decode(bytes).ok())
            .unwrap_or_default();
        state.read_only = PeerAccess::of(&self.peer.scopes, path) == PeerAccess::ReadOnly;
        self.tracked.insert(
            path.clone(),
            TrackedDoc {
                persisted: state.encode(),
                state,
            },
        );
        Ok(())
    }

    fn handle_doc_sync(
        &mut self,
        path: DocPath,
        bytes: &[u8],
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        let _span = tracing::debug_span!("doc_sync", peer = %self.peer.node_id, %path).entered();
        self.up_to_date_reported = false;
        if !self.is_shared(&path) {
            self.refuse(path, RefusalReason::NotShared);
            return Ok(());
        }
        let Ok(mut message) = Message::decode(bytes) else {
            self.refuse(path, RefusalReason::Malformed);
            return Ok(());
        };
        let max_heads = self.config.limits.max_heads_per_doc;
        if message.heads.len() > max_heads
            || message.need.len() > max_heads
            || message.have.len() > max_heads
            || message.have.iter().any(|h| h.last_sync.len() > max_heads)
        {
            self.refuse(path, RefusalReason::Malformed);
            return Ok(());
        }
        match PeerAccess::of(&self.peer.scopes, &path) {
            PeerAccess::Write => {}
            PeerAccess::Carry => match check_carried(message, &self.peer_actor) {
                Ok(checked) => message = checked,
                Err(reason) => {
                    self.refuse(path, reason);
                    return Ok(());
                }
            },
            PeerAccess::ReadOnly => {
                if !message.changes.is_empty() {
                    self.refuse(path.clone(), RefusalReason::NotWritable);
                    message.changes = automerge::sync::ChunkList::empty();
                }
            }
        }
        self.track(&path, docs)?;
        let Some(tracked) = self.tracked.get_mut(&path) else {
            return Ok(());
        };
        let before = docs.heads(&path);
        if !message.changes.is_empty() && !docs.may_store(&path, before.is_none()) {
            self.refuse(path, RefusalReason::CapacityExceeded);
            return Ok(());
        }
        let result = if message.changes.is_empty() && before.is_none() {
            // Nothing to store yet: answer from an empty document without creating one.
            Automerge::new().receive_sync_message(&mut tracked.state, message)
        } else {
            docs.doc_mut_or_create(&path)
                .receive_sync_message(&mut tracked.state, message)
        };
        if let Err(error) = result {
            tracing::info!(peer = %self.peer.node_id, %path, %error, "sync message did not apply");
            self.refuse(path, RefusalReason::Malformed);
            return Ok(());
        }
        let after = docs.heads(&path);
        if after.is_some() && after != before {
            self.events.push_back(SessionEvent::DocumentChanged {
                path: path.clone(),
                before_heads: before.unwrap_or_default(),
                from: self.peer.node_id.clone(),
            });
        }
        let encoded = tracked.state.encode();
        if encoded != tracked.persisted {
            tracked.persisted = encoded.clone();
            self.events.push_back(SessionEvent::SyncStateUpdated {
                path: path.clone(),
                state: encoded,
            });
        }
        let ours = after.unwrap_or_default();
        if tracked.state.their_heads.as_ref() == Some(&ours) {
            self.in_flight.remove(&path);
        }
        self.dirty.insert(path);
        Ok(())
    }

    /// Starts queued documents and generates sync messages while there is room.
    fn pump(&mut self, docs: &mut dyn DocumentSet) {
        if self.closed || !self.verified {
            return;
        }
        let max_in_flight = self.config.limits.max_docs_in_flight;
        let max_outgoing = self.config.limits.max_outgoing_bytes;
        while self.in_flight.len() < max_in_flight && self.outgoing_bytes < max_outgoing {
            let Some(path) = self.to_start.pop_first() else {
                break;
            };
            if let Err(error) = self.track(&path, docs) {
                self.fail(error);
                return;
            }
            // The peer's answer is awaited from now, not from its last frame.
            self.last_progress = self.last_now;
            self.in_flight.insert(path.clone());
            self.dirty.insert(path);
        }
        let empty = Automerge::new();
        while self.outgoing_bytes < max_outgoing {
            let Some(path) = self.dirty.pop_first() else {
                break;
            };
            let Some(tracked) = self.tracked.get_mut(&path) else {
                continue;
            };
            let doc = docs.doc(&path).unwrap_or(&empty);
            match doc.generate_sync_message(&mut tracked.state) {
                Some(message) => {
                    let frame = Frame::DocSync {
                        path: path.clone(),
                        message: message.encode(),
                    };
                    if !self.queue(&frame) {
                        self.in_flight.remove(&path);
                    }
                }
                None => {
                    self.in_flight.remove(&path);
                }
            }
        }
        let idle = matches!(self.inventory, InventoryPhase::Done)
            && self.to_start.is_empty()
            && self.dirty.is_empty()
            && self.in_flight.is_empty();
        if idle && !self.up_to_date_reported {
            self.up_to_date_reported = true;
            self.events.push_back(SessionEvent::UpToDate);
        }
    }
}
