//! [`SyncSession`]: the per-connection state machine.
//!
//! A session goes through three phases: it waits for the peer's hello (sending its own at
//! once), reconciles the inventory of shared documents, then syncs the differing documents
//! and pushes live changes until closed. See [`SyncSession`] for the driving contract.
//!
//! This module holds the session's state and its driving contract (the inputs, the polls);
//! the work is split by invariant: `frames` (decoding within the partial-frame window,
//! dispatch, the hello, queueing under backpressure), `inventory` (which shared documents
//! differ), `scheduler` (the per-document sets and what starts when, within the bounds),
//! `doc_sync` (one document's received message inspected, applied and answered), beside
//! `config`, `events` and `start_queue`.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use automerge::sync::{Message, State, SyncDoc};
use automerge::{ActorId, Automerge, ReadDoc as _};

use crate::authorize::{
    ChangeJudge, PeerAccess, inspect_changes, is_shared, outgoing_change_facts,
};
use crate::frame::{
    Frame, FrameDecoder, GoodbyeReason, Hello, PROTOCOL_VERSION, RangeSummary, RefusalReason,
    encode_frame,
};
use crate::inventory::{InventorySnapshot, TurnOutcome};
use crate::path::DocPath;

mod config;
mod doc_sync;
mod events;
mod frames;
mod inventory;
mod scheduler;
mod start_queue;

use crate::signature::{ChangeSignature, SignatureClaim, newest_per_actor};
pub use config::{
    AuthorStanding, DocumentSet, Limits, LocalIdentity, PeerIdentity, SessionConfig,
    SignatureCheck, SyncPriority, URGENT_CHANGE,
};
pub use events::{CloseReason, ReceivedWhole, SessionError, SessionEvent, SessionStats};
use start_queue::{NOTHING_TO_SEND, StartKey, StartQueue};

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

/// The progress window of a partial frame (see `Limits::frame_timeout_ms`).
#[derive(Debug, Clone, Copy)]
struct FrameWindow {
    /// When the window opened: the frame's first byte, or the last time it brought enough.
    opened: u64,
    /// The frame's bytes received since.
    bytes: u64,
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
/// 3. After each input, drain [`poll_event`](Self::poll_event) until `None` (persist
///    documents and sync states, notify other sessions) and `poll_transmit` until `None`,
///    then re-read `poll_timeout` and re-arm the timer. `poll_timeout` may return a time
///    already past: that means "call `handle_timeout` now", which is how deferred work
///    resumes once the outgoing buffer has drained.
///
///    The two drains may come in either order. Transmitting first (as gridsync-node does,
///    so a reply need not wait for an fsync) lets the peer learn our heads before a received
///    change is durable here; that is safe, because should the append be lost, the peer's
///    next message names a change we lack and automerge answers with a sync reset, so the
///    peer sends it again. What the driver must order: store a `DocumentChanged` document
///    durably before telling other sessions about it, and persist a `SyncStateUpdated` state
///    only after the documents reported before it are stored. Sync states may wait in memory
///    and be written in batches: losing one costs a larger sync message on the next
///    reconnection, never data.
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
    /// Documents to start syncing, most useful first, waiting for an in-flight slot.
    to_start: StartQueue,
    /// Tracked documents that need a `generate_sync_message`.
    /// Ordered like the start queue, so replies also go out most useful first.
    dirty: BTreeSet<(StartKey, DocPath)>,
    /// The start key each document was queued with (documents the peer started: routine).
    keys: HashMap<DocPath, StartKey>,
    /// Documents this side is actively syncing and that have not settled.
    in_flight: BTreeSet<DocPath>,
    /// Documents whose changes were refused because an author was unknown here: asked for
    /// again (automerge's sync reset) as soon as another document changes, which is how the
    /// device directory catching up shows.
    awaiting_authors: BTreeSet<DocPath>,
    /// The pulls among `in_flight` (started with nothing to send). They do not count against
    /// `max_docs_in_flight`: a pull is a small message, and the peer can order what it sends
    /// only for documents it knows differ.
    pulls: BTreeSet<DocPath>,
    last_now: u64,
    last_progress: u64,
    /// While the decoder holds a partial frame: when its current progress window opened
    /// and how many of its bytes arrived since. See `Limits::frame_timeout_ms`.
    frame_window: Option<FrameWindow>,
    up_to_date_reported: bool,
    closed: bool,
    /// The error that closed the session, if one did (for drivers woken by a timer).
    close_error: Option<SessionError>,
    stats: SessionStats,
    /// One span per peer connection; every input is handled inside it.
    span: tracing::Span,
}

/// The stored signatures an outgoing message must carry: those on each author's newest
/// change in it. A whole saved document carries every author's newest change, so all of
/// the document's stored signatures go with it.
fn signatures_for(message: &Message, stored: Vec<ChangeSignature>) -> Vec<ChangeSignature> {
    let Some(facts) = outgoing_change_facts(message) else {
        return stored;
    };
    let newest = newest_per_actor(&facts);
    stored
        .into_iter()
        .filter(|s| newest.contains(&s.hash))
        .collect()
}

/// Makes an incremental message carry every change the peer lacks after the heads it last
/// told us, rather than automerge's Bloom-filter estimate of them.
///
/// One signature on an author's newest change vouches for the author's earlier changes only
/// through an unbroken chain of changes the receiver holds or receives; a change the filter
/// wrongly says the peer has (about 1 % per change) would break the chain, and the changes
/// before it could not be verified. Whole saved documents are complete already; messages
/// before the peer's heads are known are left as automerge made them.
fn complete_author_chains(doc: &Automerge, state: &State, message: &mut Message) {
    if message.changes.is_empty() {
        return;
    }
    let Some(sent) = outgoing_change_facts(message) else {
        return;
    };
    let Some(their_heads) = &state.their_heads else {
        return;
    };
    // Heads we do not know would make automerge list everything: keep only known ones.
    let known: Vec<_> = their_heads
        .iter()
        .filter(|h| doc.get_change_meta_by_hash(h).is_some())
        .copied()
        .collect();
    let missing = doc.get_changes(&known);
    if missing.len() > sent.len() {
        message.changes = automerge::sync::ChunkList::from(
            missing
                .iter()
                .map(|change| change.raw_bytes().to_vec())
                .collect::<Vec<_>>(),
        );
    }
}

/// Largest batch returned by one `poll_transmit`.
const TRANSMIT_BATCH: usize = 64 * 1024;

impl SyncSession {
    /// Starts a session and queues the hello.
    pub fn new(config: SessionConfig, peer: PeerIdentity, now: u64) -> Self {
        let max_frame_len = config.limits.max_frame_len;
        let span = tracing::info_span!("sync_session", peer = %peer.node_id, role = %peer.role);
        let mut session = SyncSession {
            config,
            peer,
            decoder: FrameDecoder::new(max_frame_len),
            outgoing: VecDeque::new(),
            outgoing_bytes: 0,
            events: VecDeque::new(),
            verified: false,
            inventory: InventoryPhase::NotStarted,
            inventory_rounds: 0,
            inventory_differing: 0,
            tracked: BTreeMap::new(),
            to_start: StartQueue::default(),
            dirty: BTreeSet::new(),
            keys: HashMap::new(),
            in_flight: BTreeSet::new(),
            pulls: BTreeSet::new(),
            awaiting_authors: BTreeSet::new(),
            last_now: now,
            last_progress: now,
            frame_window: None,
            up_to_date_reported: false,
            closed: false,
            close_error: None,
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
            // Whatever is still buffered after this frame starts a new one, timed from now.
            self.frame_window = None;
            if let Err(e) = self.handle_frame(frame, docs) {
                return Err(self.fail(e));
            }
            if self.closed {
                return Ok(());
            }
        }
        // Checked before these bytes count: a window that already closed short is not
        // saved by bytes arriving after its deadline.
        if let Err(e) = self.check_partial_frame(now) {
            return Err(self.fail(e));
        }
        let buffered = self.decoder.buffered() as u64;
        if buffered == 0 {
            self.frame_window = None;
        } else {
            let needed = self.window_bytes_needed();
            let window = self.frame_window.get_or_insert(FrameWindow {
                opened: now,
                bytes: 0,
            });
            // A frame begun in this chunk counts only its own bytes.
            window.bytes = window
                .bytes
                .saturating_add((bytes.len() as u64).min(buffered));
            if window.bytes >= needed {
                *window = FrameWindow {
                    opened: now,
                    bytes: 0,
                };
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
        if let Err(error) = self.retry_awaiting_authors(path, docs) {
            self.fail(error);
            return;
        }
        if self.is_started(path) {
            self.mark_dirty(path.clone());
        } else if let Err(error) = self.enqueue(path.clone(), docs) {
            self.fail(error);
            return;
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
        if let Err(e) = self.check_partial_frame(now) {
            self.fail(e);
            return;
        }
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
        let frame_deadline = self.partial_frame_deadline();
        let other = self.poll_other_timeouts();
        match (frame_deadline, other) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The timers other than the partial frame's: deferred work and the idle timeout.
    fn poll_other_timeouts(&self) -> Option<u64> {
        let has_deferred = !self.dirty.is_empty() || self.can_start_next();
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

    /// The error that closed the session, `None` while open or after an orderly close. A
    /// driver woken by its timer reads here why `handle_timeout` closed the session.
    pub fn close_error(&self) -> Option<SessionError> {
        self.close_error.clone()
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
            self.close_error = Some(error.clone());
            self.events.push_back(SessionEvent::Closed {
                reason: CloseReason::Error(error.clone()),
            });
        }
        error
    }
}
