//! What the driver hands a session: identities, limits, and access to the node's documents.

use automerge::{ActorId, Automerge, Change, ChangeHash};

use crate::frame::{MAX_FRAME_LEN, RefusalReason};
use crate::identity::{NodeId, Role, Scopes};
use crate::path::DocPath;
use crate::signature::{ChangeSignature, SignatureClaim, SignedHead};

/// Who this node is, as its own certificate says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalIdentity {
    pub node_id: NodeId,
    pub role: Role,
    pub scopes: Scopes,
}

/// What the peer's certificate says; the transport verified the certificate, the session
/// checks that the hello agrees with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerIdentity {
    pub node_id: NodeId,
    pub role: Role,
    pub scopes: Scopes,
}

/// Bounds on what one session may hold or have in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Documents this side has started syncing and not yet seen settle. Bounds the work
    /// pipelined onto the connection at once.
    pub max_docs_in_flight: usize,
    /// Outgoing bytes buffered inside the session. Above it, no new sync messages are
    /// generated until the driver drains [`SyncSession::poll_transmit`](super::SyncSession::poll_transmit).
    pub max_outgoing_bytes: usize,
    /// Largest frame accepted from the peer (at most [`MAX_FRAME_LEN`]).
    pub max_frame_len: usize,
    /// Documents with a sync state in this session. The peer can name documents inside the
    /// shared scopes that neither side holds; this caps the state that can create.
    pub max_tracked_docs: usize,
    /// Heads (and needs) accepted in one sync message.
    pub max_heads_per_doc: usize,
    /// Inventory turns before the peer is considered to stall the reconciliation.
    pub max_inventory_rounds: u32,
    /// Milliseconds without progress before a session still in hello or inventory is closed.
    pub idle_timeout_ms: u64,
    /// How long a begun frame may go without enough progress, in milliseconds, before the
    /// session is closed with [`SessionError::FrameTimeout`](super::SessionError::FrameTimeout).
    ///
    /// The rule: while a frame is incomplete, every window of `frame_timeout_ms` must bring
    /// at least `min_frame_bytes_per_sec * frame_timeout_ms / 1000` bytes of it. The window
    /// opens when the frame's first byte arrives and opens again each time it has brought
    /// that many; a window that closes short of it closes the session. So a peer sending at
    /// the minimum rate or faster never times out (a 32 MiB frame over a slow link is
    /// fine), while one that sends a header, or a burst, and then trickles a byte every few
    /// seconds is closed `frame_timeout_ms` after its last window opened. A rule on the
    /// average rate since the frame began would let a burst buy an hour of trickling.
    /// Without any rule such a peer holds a connection and a buffer for as long as it
    /// likes once the idle timeout stopped applying (after the inventory).
    pub frame_timeout_ms: u64,
    /// The sending rate that keeps a begun frame alive (see `frame_timeout_ms`). Zero is
    /// taken as one byte per second.
    pub min_frame_bytes_per_sec: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_docs_in_flight: 256,
            max_outgoing_bytes: 4 * 1024 * 1024,
            max_frame_len: MAX_FRAME_LEN,
            max_tracked_docs: 100_000,
            max_heads_per_doc: 1024,
            max_inventory_rounds: 64,
            idle_timeout_ms: 30_000,
            frame_timeout_ms: 30_000,
            // 1 KiB/s: below a bad 2G link; a 1 MiB document still arrives in 17 minutes.
            min_frame_bytes_per_sec: 1024,
        }
    }
}

/// Everything a session needs to know about its own side.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    pub local: LocalIdentity,
    pub limits: Limits,
}

impl SessionConfig {
    /// A configuration with the default [`Limits`].
    pub fn new(local: LocalIdentity) -> Self {
        SessionConfig {
            local,
            limits: Limits::default(),
        }
    }
}

/// How urgently a document should move when two devices meet, most urgent first (the derived
/// order is the start order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SyncPriority {
    /// The documents every author check depends on: the device directory and the
    /// revocation list. They go before anything they vouch for.
    Trust,
    /// Street-wide control documents: revocations, the device directory, the plan. Small,
    /// and what every other document's checks depend on.
    Street,
    /// A document holding an urgent change ([`URGENT_CHANGE`]: open special needs) the peer
    /// lacks.
    OpenNeeds,
    /// Everything else.
    Routine,
}

/// The commit message that marks a change as urgent: information someone in the field is
/// waiting on (a visit reporting special needs). A document holding such a change that the
/// peer lacks starts in [`SyncPriority::OpenNeeds`]. The mark travels inside the change, so
/// every relay on the way gives it the same precedence; the engine reads it from change
/// metadata, without decoding any record.
pub const URGENT_CHANGE: &str = "gridsync:urgent";

/// Whether the author of a relayed change may write the document, as far as this node knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthorStanding {
    /// The author's grants include writing the document.
    MayWrite,
    /// The author is known and may not write it: the changes are refused.
    MayNotWrite,
    /// The author is not known here yet: the changes are refused for now and offered again
    /// on a later sync.
    Unknown,
}

/// Whether a change signature is its author's, as far as this node can tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureCheck {
    /// Made by the key of the author's CA-issued certificate.
    Valid,
    /// Not made by the author's key (or not a signature at all): the changes are refused.
    Invalid,
    /// The author's certificate is not known here yet: refused for now, asked for again
    /// once the device directory has caught up.
    UnknownAuthor,
}

/// The node's documents, as the session sees them. Implemented by the node over its document
/// cache and store; the session never keeps a document itself.
pub trait DocumentSet {
    /// Every document held, in any order.
    fn paths(&self) -> Vec<DocPath>;
    /// A document's current heads, `None` if it is not held.
    fn heads(&self, path: &DocPath) -> Option<Vec<ChangeHash>>;
    /// A held document's inventory item (its heads' digest and fingerprint), `None` if it
    /// is not held. Asked for every shared document when a session starts, while the node
    /// holds its documents' lock: a node with many documents keeps the items made from
    /// unchanged heads rather than hash them all again.
    fn inventory_item(&mut self, path: &DocPath) -> Option<crate::inventory::InventoryItem> {
        self.heads(path)
            .map(|heads| crate::inventory::InventoryItem::of(path, &heads))
    }
    /// The inventory items of every held document `shared` accepts, in any order: what a
    /// session summarises when it starts. A node may list them from an index of its own
    /// rather than look each path up.
    fn inventory_items(
        &mut self,
        shared: &dyn Fn(&DocPath) -> bool,
    ) -> Vec<(DocPath, crate::inventory::InventoryItem)> {
        let mut items = Vec::new();
        for path in self.paths() {
            if shared(&path)
                && let Some(item) = self.inventory_item(&path)
            {
                items.push((path, item));
            }
        }
        items
    }
    /// A document, `None` if it is not held. Takes `&mut self` so that a node can load
    /// documents on demand rather than keep every one in memory.
    fn doc(&mut self, path: &DocPath) -> Option<&Automerge>;
    /// A document, created empty if absent (the node seeds genesis itself).
    fn doc_mut_or_create(&mut self, path: &DocPath) -> &mut Automerge;
    /// Takes `doc` as the document at `path`, which this node did not hold: a document a
    /// peer sent whole, already loaded to inspect it. The node's own actor is kept.
    fn adopt(&mut self, path: &DocPath, doc: Automerge) {
        let slot = self.doc_mut_or_create(path);
        let actor = slot.get_actor().clone();
        *slot = doc.with_actor(actor);
    }
    /// The persisted `sync::State` bytes for this peer and document, if any.
    fn load_sync_state(&mut self, peer: &NodeId, path: &DocPath) -> Option<Vec<u8>>;
    /// May changes for `path` be stored here? `new_document` is true when this node does
    /// not hold the document yet. A node at its storage cap answers false; the changes are
    /// then refused with [`crate::RefusalReason::CapacityExceeded`] and the session goes on.
    fn may_store(&self, path: &DocPath, new_document: bool) -> bool {
        let _ = (path, new_document);
        true
    }
    /// The class `path` starts in when a session begins or the document changes (street-wide
    /// documents first); the session itself raises a routine document holding an unsynced
    /// urgent change to [`SyncPriority::OpenNeeds`], and within a class sends the document
    /// with the oldest unsynced change first.
    fn sync_priority(&mut self, path: &DocPath) -> SyncPriority {
        let _ = path;
        SyncPriority::Routine
    }
    /// May the device whose actor id is `author` write `path`? Asked for every change a peer
    /// relays (authored by someone other than the peer itself) before any of it is applied;
    /// `change` is the change's hash (the node recognises its deterministic genesis changes by
    /// it). Answered from the node's device directory: there is no default, so that no
    /// document set skips the check by omission.
    fn author_standing(
        &mut self,
        author: &ActorId,
        change: &ChangeHash,
        path: &DocPath,
    ) -> AuthorStanding;
    /// Is `signature` the signature of the device behind `author` over `signed` (the
    /// [`crate::signature::signed_bytes`] of a change in `path`)? Answered from the author's
    /// CA-issued certificate; no default, so that no document set skips the check.
    fn verify_signature(&mut self, path: &DocPath, claim: SignatureClaim<'_>) -> SignatureCheck;
    /// The stored signatures on the newest change of each author of `path`, which the
    /// session attaches to outgoing messages carrying those changes. No default: a node
    /// that hands out no signatures has its relayed changes refused everywhere.
    fn signatures(&mut self, path: &DocPath) -> Vec<ChangeSignature>;
    /// Checks a verified signature on an author's newest change in a message received for
    /// `path` against the signatures held: two different changes signed for one (actor,
    /// seq) are evidence that the author equivocates ([`RefusalReason::Equivocation`]).
    fn check_signed_head(
        &mut self,
        path: &DocPath,
        head: &SignedHead,
    ) -> Result<(), RefusalReason> {
        let _ = (path, head);
        Ok(())
    }
    /// Throws away the in-memory copy of `path` (automerge panicked while applying to it, so
    /// it may be half-updated): the next use reloads what is durable. The default does
    /// nothing, for document sets that are memory only.
    fn discard_unsaved(&mut self, path: &DocPath) {
        let _ = path;
    }
    /// The verified signatures of a message whose changes were just applied to `path`:
    /// the node must hand them onward from now on, before any other session can send the
    /// changes (the `DocumentChanged` event that also carries them comes later, once the
    /// driver drains events). No default, so that no document set drops them by omission.
    fn signatures_received(&mut self, path: &DocPath, heads: &[SignedHead]);
    /// Whether changes to `path` must obey content rules ([`DocumentSet::check_content`]):
    /// the node's add-only street documents.
    fn has_content_rules(&self, path: &DocPath) -> bool {
        let _ = path;
        false
    }
    /// Checks one received change to `path` against the document's rules, before its
    /// signature is verified and before anything is applied.
    fn check_content(&mut self, path: &DocPath, change: &Change) -> Result<(), RefusalReason> {
        let _ = (path, change);
        Ok(())
    }
}
