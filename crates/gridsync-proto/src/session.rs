//! [`SyncSession`]: the per-connection state machine.
//!
//! A session goes through three phases: it waits for the peer's hello (sending its own at
//! once), reconciles the inventory of shared documents, then syncs the differing documents
//! and pushes live changes until closed. See [`SyncSession`] for the driving contract.

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
mod events;
mod start_queue;

use crate::signature::{ChangeSignature, SIGNATURE_LEN, newest_per_actor};
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

/// The node's answers about one document's received changes, for [`inspect_changes`].
struct DocumentJudge<'a> {
    docs: &'a mut dyn DocumentSet,
    path: &'a DocPath,
}

impl ChangeJudge for DocumentJudge<'_> {
    fn author_standing(
        &mut self,
        author: &ActorId,
        change: &automerge::ChangeHash,
    ) -> AuthorStanding {
        self.docs.author_standing(author, change, self.path)
    }
    fn verify_signature(
        &mut self,
        author: &ActorId,
        signed: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> SignatureCheck {
        self.docs
            .verify_signature(author, self.path, signed, signature)
    }
    fn holds(&mut self, change: &automerge::ChangeHash) -> bool {
        // A graph lookup: no missing dependency means the change is in the document.
        self.docs
            .doc(self.path)
            .is_some_and(|doc| doc.get_missing_deps(&[*change]).is_empty())
    }
    fn has_content_rules(&self) -> bool {
        self.docs.has_content_rules(self.path)
    }
    fn check_signed_head(
        &mut self,
        head: &crate::signature::SignedHead,
    ) -> Result<(), RefusalReason> {
        self.docs.check_signed_head(self.path, head)
    }
    fn check_content(&mut self, change: &automerge::Change) -> Result<(), RefusalReason> {
        self.docs.check_content(self.path, change)
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

    /// Bytes a partial frame must bring per window (see `Limits::frame_timeout_ms`).
    fn window_bytes_needed(&self) -> u64 {
        let limits = &self.config.limits;
        (limits.min_frame_bytes_per_sec.max(1))
            .saturating_mul(limits.frame_timeout_ms)
            .div_ceil(1000)
            .max(1)
    }

    /// When the partial frame's current window closes, if there is a partial frame.
    fn partial_frame_deadline(&self) -> Option<u64> {
        let window = self.frame_window?;
        Some(
            window
                .opened
                .saturating_add(self.config.limits.frame_timeout_ms),
        )
    }

    fn check_partial_frame(&self, now: u64) -> Result<(), SessionError> {
        match (self.frame_window, self.partial_frame_deadline()) {
            (Some(window), Some(deadline)) if now >= deadline => Err(SessionError::FrameTimeout {
                elapsed_ms: now.saturating_sub(window.opened),
                received: self.decoder.buffered(),
            }),
            _ => Ok(()),
        }
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
            Frame::Inventory(parts) => self.handle_inventory(parts, docs),
            Frame::DocSync {
                path,
                message,
                signatures,
            } => self.handle_doc_sync(path, &message, &signatures, docs),
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
        let local = &self.config.local.scopes;
        let peer = &self.peer.scopes;
        let mut items = docs.inventory_items(&|path| is_shared(local, peer, path));
        // Checked again here: whatever the node's listing does, nothing outside the shared
        // set may reach the peer, not even as a share of a fingerprint.
        items.retain(|(path, _)| is_shared(local, peer, path));
        let snapshot = InventorySnapshot::from_items(items);
        self.queue(&Frame::Inventory(vec![snapshot.root_part()]));
        self.inventory = InventoryPhase::Running {
            snapshot,
            root_received: false,
        };
    }

    fn handle_inventory(
        &mut self,
        parts: Vec<crate::frame::RangePart>,
        docs: &mut dyn DocumentSet,
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
            if self.is_started(&path) {
                self.mark_dirty(path);
            } else {
                self.enqueue(path, docs)?;
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

    /// Whether the next queued document may start now: a pull always may; a document with
    /// changes to send needs a free slot among `max_docs_in_flight`.
    fn can_start_next(&self) -> bool {
        if self.to_start.is_empty() {
            return false;
        }
        if self.to_start.next_is_pull() {
            return true;
        }
        let pulls = self
            .pulls
            .iter()
            .filter(|p| self.in_flight.contains(*p))
            .count();
        self.in_flight.len() - pulls < self.config.limits.max_docs_in_flight
    }

    /// Whether `path` is being synced already (tracked and not waiting in the queue).
    fn is_started(&self, path: &DocPath) -> bool {
        self.tracked.contains_key(path) && !self.to_start.contains(path)
    }

    /// Queues `path` to start, placed by the node's priority class and then by the age of its
    /// oldest change the peer is not known to have.
    fn enqueue(&mut self, path: DocPath, docs: &mut dyn DocumentSet) -> Result<(), SessionError> {
        if self.to_start.contains(&path) {
            return Ok(());
        }
        let mut priority = docs.sync_priority(&path);
        self.track(&path, docs)?;
        let oldest_unsynced = match (docs.doc(&path), self.tracked.get(&path)) {
            (Some(doc), Some(tracked)) => {
                // A persisted state from before a restore may name heads this copy lacks.
                // (`get_missing_deps` is a graph lookup; looking a change up by hash scans.)
                let shared: Vec<_> = tracked
                    .state
                    .shared_heads
                    .iter()
                    .filter(|h| doc.get_missing_deps(&[**h]).is_empty())
                    .copied()
                    .collect();
                let unsynced = doc.get_changes_meta(&shared);
                if priority > SyncPriority::OpenNeeds
                    && unsynced
                        .iter()
                        .any(|meta| meta.message.as_deref() == Some(URGENT_CHANGE))
                {
                    priority = SyncPriority::OpenNeeds;
                }
                unsynced
                    .iter()
                    .map(|meta| meta.timestamp)
                    .min()
                    .unwrap_or(NOTHING_TO_SEND)
            }
            _ => NOTHING_TO_SEND,
        };
        let key = (priority, oldest_unsynced);
        self.keys.insert(path.clone(), key);
        self.to_start.push(path, key);
        Ok(())
    }

    /// After `changed` changed, asks the peer again for documents refused over an unknown
    /// author: the change may have been the device directory learning that author. The sync
    /// reset makes the peer forget what it believes it sent and offer the changes again.
    fn retry_awaiting_authors(
        &mut self,
        changed: &DocPath,
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        if self.awaiting_authors.is_empty() || self.awaiting_authors.contains(changed) {
            return Ok(());
        }
        for path in std::mem::take(&mut self.awaiting_authors) {
            self.track(&path, docs)?;
            if let Some(tracked) = self.tracked.get_mut(&path) {
                // A fresh state (only the shared heads survive) so that a message goes out
                // even while automerge believes one is in flight; the reset flag (or, before
                // the peer's capabilities are known, empty heads) makes the peer resend.
                let mut fresh = State::decode(&tracked.persisted).unwrap_or_default();
                fresh.read_only = tracked.state.read_only;
                fresh.needs_reset = true;
                tracked.state = fresh;
            }
            self.mark_dirty(path);
        }
        Ok(())
    }

    /// Marks `path` as needing a sync message, in its start key's order.
    fn mark_dirty(&mut self, path: DocPath) {
        let key = self
            .keys
            .get(&path)
            .copied()
            .unwrap_or((SyncPriority::Routine, NOTHING_TO_SEND));
        self.dirty.insert((key, path));
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
        signatures: &[ChangeSignature],
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        let _span = tracing::debug_span!("doc_sync", peer = %self.peer.node_id, %path).entered();
        self.up_to_date_reported = false;
        if !self.is_shared(&path) {
            self.refuse(path, RefusalReason::NotShared);
            return Ok(());
        }
        let Some(mut message) = crate::apply::decode_message(bytes) else {
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
        let mut whole_document = None;
        let mut signed_heads = Vec::new();
        match PeerAccess::of(&self.peer.scopes, &path) {
            PeerAccess::ReadOnly => {
                if !message.changes.is_empty() {
                    self.refuse(path.clone(), RefusalReason::NotWritable);
                    message.changes = automerge::sync::ChunkList::empty();
                }
            }
            access => {
                let mut judge = DocumentJudge { docs, path: &path };
                let checked = inspect_changes(
                    &path,
                    message,
                    signatures,
                    &self.peer.node_id,
                    access,
                    &mut judge,
                );
                match checked {
                    Ok(checked) => {
                        message = checked.message;
                        whole_document = checked.whole_document;
                        signed_heads = checked.signed_heads;
                    }
                    Err(reason) => {
                        if reason == RefusalReason::UnknownAuthor {
                            self.awaiting_authors.insert(path.clone());
                        }
                        self.refuse(path, reason);
                        return Ok(());
                    }
                }
            }
        }
        // automerge panics on a change out of its actor's sequence; refuse it first.
        if !message.changes.is_empty()
            && let Err(reason) = crate::sequence::check_sequences(docs.doc(&path), &message)
        {
            self.refuse(path, reason);
            return Ok(());
        }
        // A pull (the peer has nothing we lack, and lacks something of ours) of a document we
        // have not started is answered in our own order: it joins our queue, and our first
        // message for it carries the changes. The inventory may have told only the peer that
        // this document differs, so this is also how we learn it.
        let is_pull = message.changes.is_empty()
            && docs.doc(&path).is_some_and(|doc| {
                let mut ours = doc.get_heads();
                let mut theirs = message.heads.clone();
                ours.sort_unstable();
                theirs.sort_unstable();
                ours != theirs && doc.get_missing_deps(&theirs).is_empty()
            });
        if is_pull && !self.is_started(&path) {
            self.enqueue(path.clone(), docs)?;
        }
        let deferred = is_pull && self.to_start.holds_data_for(&path);
        if !deferred {
            self.to_start.remove(&path);
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
        let mut received_whole = None;
        let result = if message.changes.is_empty() && before.is_none() {
            // Nothing to store yet: answer from an empty document without creating one.
            Automerge::new().receive_sync_message(&mut tracked.state, message)
        } else if let Some(whole) = whole_document.filter(|_| before.is_none())
            && !tracked.state.read_only
        {
            // A document new here, sent whole, already loaded by the inspection: take it as
            // it is rather than load the same bytes again, then let automerge update the
            // sync state from the rest of the message. Seeing no changes and its own heads
            // equal to the peer's, automerge would conclude it had sent those heads itself;
            // it has not, so that one field is kept as it was (applying the changes instead
            // would not have touched it).
            let heads = whole.doc.get_heads();
            docs.adopt(&path, whole.doc);
            received_whole = Some(ReceivedWhole {
                bytes: whole.bytes,
                heads,
            });
            let last_sent_heads = tracked.state.last_sent_heads.clone();
            message.changes = automerge::sync::ChunkList::empty();
            let result = docs
                .doc_mut_or_create(&path)
                .receive_sync_message(&mut tracked.state, message);
            tracked.state.last_sent_heads = last_sent_heads;
            result
        } else {
            match crate::apply::receive_guarded(
                docs.doc_mut_or_create(&path),
                &mut tracked.state,
                message,
            ) {
                Ok(()) => Ok(()),
                Err(crate::apply::ApplyError::Refused(error)) => Err(error),
                Err(crate::apply::ApplyError::Panicked) => {
                    // The document and this sync state may be half-updated: both go, the
                    // document to be reloaded from what is durable.
                    tracing::warn!(peer = %self.peer.node_id, %path, "automerge panicked on a received message; the document is reloaded from the store");
                    docs.discard_unsaved(&path);
                    self.tracked.remove(&path);
                    self.in_flight.remove(&path);
                    self.refuse(path, RefusalReason::Malformed);
                    return Ok(());
                }
            }
        };
        if let Err(error) = result {
            tracing::info!(peer = %self.peer.node_id, %path, %error, "sync message did not apply");
            self.refuse(path, RefusalReason::Malformed);
            return Ok(());
        }
        if !signed_heads.is_empty() {
            docs.signatures_received(&path, &signed_heads);
        }
        let after = docs.heads(&path);
        let changed = after.is_some() && after != before;
        if changed {
            self.events.push_back(SessionEvent::DocumentChanged {
                path: path.clone(),
                before_heads: before.unwrap_or_default(),
                from: self.peer.node_id.clone(),
                received_whole,
                signed_heads,
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
        if !deferred {
            self.mark_dirty(path.clone());
        }
        if changed {
            self.retry_awaiting_authors(&path, docs)?;
        }
        Ok(())
    }

    /// Starts queued documents and generates sync messages while there is room.
    fn pump(&mut self, docs: &mut dyn DocumentSet) {
        if self.closed || !self.verified {
            return;
        }
        let max_outgoing = self.config.limits.max_outgoing_bytes;
        while self.outgoing_bytes < max_outgoing {
            let in_flight = &self.in_flight;
            self.pulls.retain(|p| in_flight.contains(p));
            if !self.can_start_next() {
                break;
            }
            let is_pull = self.to_start.next_is_pull();
            let Some(path) = self.to_start.pop() else {
                break;
            };
            if is_pull {
                self.pulls.insert(path.clone());
            }
            if let Err(error) = self.track(&path, docs) {
                self.fail(error);
                return;
            }
            // The peer's answer is awaited from now, not from its last frame.
            self.last_progress = self.last_now;
            self.in_flight.insert(path.clone());
            self.mark_dirty(path);
        }
        let empty = Automerge::new();
        while self.outgoing_bytes < max_outgoing {
            let Some((_, path)) = self.dirty.pop_first() else {
                break;
            };
            let Some(tracked) = self.tracked.get_mut(&path) else {
                continue;
            };
            let doc = docs.doc(&path).unwrap_or(&empty);
            match doc.generate_sync_message(&mut tracked.state) {
                Some(mut message) => {
                    complete_author_chains(doc, &tracked.state, &mut message);
                    let signatures = if message.changes.is_empty() {
                        Vec::new()
                    } else {
                        signatures_for(&message, docs.signatures(&path))
                    };
                    let frame = Frame::DocSync {
                        path: path.clone(),
                        message: message.encode(),
                        signatures,
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
