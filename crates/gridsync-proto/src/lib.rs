//! gridsync-proto: the sans-IO sync engine.
//!
//! It replicates a set of automerge documents named by [`DocPath`]s between two peers, under
//! the intersection of their [`Scopes`]. It knows nothing of households or visits (that is
//! gridsync-model) and nothing of sockets, clocks or tasks (that is gridsync-net and
//! gridsync-node): callers feed it bytes and the current time and take back bytes to send and
//! documents to store.
//!
//! Layout: `path` (document names), `identity` (node ids, roles, scope grants), `frame` (wire
//! format and streaming decoder), `inventory` (range-based set reconciliation), `authorize`
//! (shared set and who may change what), `session` ([`SyncSession`], the per-connection state
//! machine; `session/config.rs` holds what the driver passes in, `session/events.rs` what
//! comes out).
//!
//! # Protocol flow
//!
//! 1. **Hello.** Each side sends a [`frame::Hello`] (protocol version, node id, role, scopes)
//!    as soon as the stream opens. The receiver checks it against the identity its transport
//!    verified from the peer's certificate ([`PeerIdentity`]); any mismatch, an unsupported
//!    version, or any other frame first closes the session with a [`SessionError`]. Nothing
//!    about documents is sent before the peer's hello is verified.
//! 2. **Inventory.** Each side then sends the fingerprint of its shared set (the documents both
//!    may hold, with the digest of their heads). Equal fingerprints end the inventory: an
//!    unchanged reconnect costs the hello and one small frame each way, about one round trip.
//!    Otherwise range-based set reconciliation ([`inventory`]) narrows down the differing
//!    documents in a logarithmic number of turns.
//! 3. **Document sync.** For each differing document, automerge's sync protocol runs with the
//!    sync state persisted from the last session, so only missing changes travel. Many
//!    documents are in flight at once, up to a bound.
//! 4. **Live push.** Afterwards, each local change to a shared document is pushed at once.
//!
//! Received changes are authorized per document ([`authorize`]): only writers' changes are
//! applied, carriers may relay but not author, and anything outside the shared set is refused
//! with the same answer whether or not the document exists.
//!
//! # Frame format
//!
//! `[u32 BE length][u8 type][payload]`, with `length` counting type and payload; see
//! [`frame`]. Types: hello (1), inventory (2), doc-sync (3: path and automerge sync message
//! bytes), refused (4: path and reason code), goodbye (5: reason code and detail).
//!
//! # What is bounded
//!
//! Frame size ([`frame::MAX_FRAME_LEN`], checked from the length prefix before buffering);
//! every count in a frame (scopes, inventory parts and items), against a fixed maximum and the
//! bytes actually present, before allocating; heads, needs and haves in a sync message;
//! inventory rounds; documents in flight, documents tracked per session and buffered outgoing
//! bytes ([`Limits`]); what the compressed chunks of one sync message inflate to
//! ([`MAX_INFLATED_BYTES`], checked by streaming before automerge inflates anything). Under
//! outgoing backpressure the session stops generating messages until the driver drains
//! `poll_transmit`.
//!
//! # Testing
//!
//! With the `testing` feature, [`testing`] holds the harness the crate's tests (and the
//! benchmarks) drive the engine with: an in-memory `DocumentSet` and a pair of sessions over
//! a virtual link and clock.

pub mod apply;
pub mod authorize;
pub mod frame;
pub mod identity;
mod inflate_limit;
pub mod inventory;
pub mod path;
pub mod sequence;
pub mod session;
pub mod signature;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use frame::{Frame, FrameDecoder, FrameError, RefusalReason};
pub use identity::{Access, NodeId, Role, ScopeGrant, Scopes};
pub use inflate_limit::MAX_INFLATED_BYTES;
pub use path::{DocPath, PathError};
pub use session::{
    AuthorStanding, CloseReason, DocumentSet, Limits, LocalIdentity, PeerIdentity, ReceivedWhole,
    SessionConfig, SessionError, SessionEvent, SessionStats, SignatureCheck, SyncPriority,
    SyncSession, URGENT_CHANGE,
};
pub use signature::{ChangeSignature, SIGNATURE_LEN, SignatureClaim, SignedHead};
