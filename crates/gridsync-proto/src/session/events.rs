//! What a session hands back: events for the node, the errors that close it, and counters.

use automerge::ChangeHash;

use crate::frame::{FrameError, GoodbyeReason, RefusalReason};
use crate::identity::{NodeId, Role};
use crate::path::DocPath;
use crate::signature::SignedHead;

/// Effects for the node to carry out, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum SessionEvent {
    /// The peer's hello matched its certificate; documents may now flow.
    PeerVerified { node_id: NodeId, role: Role },
    /// Changes from the peer were applied. Persist `doc.save_after(&before_heads)` and tell
    /// other sessions (`local_change`).
    DocumentChanged {
        path: DocPath,
        before_heads: Vec<ChangeHash>,
        from: NodeId,
        /// When the document was new here and arrived whole: its bytes as received (a valid
        /// save of the document at `heads`), which the node may store as they are rather
        /// than encode the document again.
        received_whole: Option<ReceivedWhole>,
        /// Verified signatures on each author's newest received change: store them beside
        /// the changes (same transaction) and hand them onward with them.
        signed_heads: Vec<SignedHead>,
    },
    /// Persist this sync state for (peer, path); it makes the next reconnect cheap. Emitted
    /// after a received message whenever the persistent part of the state (the heads both
    /// sides are known to share) changed, so the last one of an exchange is the settled state.
    SyncStateUpdated { path: DocPath, state: Vec<u8> },
    /// A sync message from the peer was not applied (logged; the session continues).
    ChangeRefused {
        path: DocPath,
        reason: RefusalReason,
    },
    /// The first inventory finished: `differing` documents found here, after `rounds`
    /// inventory frames received.
    InventoryDone { differing: usize, rounds: u32 },
    /// Nothing is pending in either direction as far as this side knows.
    UpToDate,
    /// The session ended.
    Closed { reason: CloseReason },
}

/// A document received whole, as saved by the peer (see [`SessionEvent::DocumentChanged`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ReceivedWhole {
    /// The saved document, exactly as received.
    pub bytes: Vec<u8>,
    /// Its heads: the bytes are the document only while its heads are still these.
    pub heads: Vec<ChangeHash>,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReason {
    /// An orderly goodbye, from either side.
    Orderly,
    /// An error closed it (the same one `handle_bytes` returned, if it came from there).
    Error(SessionError),
}

impl std::fmt::Display for CloseReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CloseReason::Orderly => f.write_str("orderly goodbye"),
            CloseReason::Error(error) => error.fmt(f),
        }
    }
}

/// Why a session closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("malformed frame from peer: {0}")]
    Frame(#[from] FrameError),
    #[error("peer speaks protocol version {theirs}, we speak {ours}")]
    UnsupportedVersion { ours: u16, theirs: u16 },
    #[error("peer hello does not match its certificate: {0} differs")]
    IdentityMismatch(&'static str),
    #[error("peer sent a {0} frame before its hello")]
    BeforeHello(&'static str),
    #[error("peer violated the protocol: {0}")]
    ProtocolViolation(&'static str),
    #[error("peer named more than {0} documents in one session")]
    TooManyDocs(usize),
    #[error("peer closed the session ({reason:?}): {detail}")]
    PeerClosed {
        reason: GoodbyeReason,
        detail: String,
    },
    #[error("peer made no progress for {0} ms")]
    Timeout(u64),
    #[error("peer left a frame incomplete for {elapsed_ms} ms ({received} bytes of it received)")]
    FrameTimeout { elapsed_ms: u64, received: usize },
    #[error("session is closed")]
    Closed,
}

impl SessionError {
    pub(crate) fn goodbye_reason(&self) -> GoodbyeReason {
        match self {
            SessionError::UnsupportedVersion { .. } => GoodbyeReason::UnsupportedVersion,
            SessionError::IdentityMismatch(_) => GoodbyeReason::IdentityMismatch,
            SessionError::TooManyDocs(_) => GoodbyeReason::LimitExceeded,
            SessionError::Timeout(_) | SessionError::FrameTimeout { .. } => GoodbyeReason::Timeout,
            SessionError::Closed | SessionError::PeerClosed { .. } => GoodbyeReason::Normal,
            SessionError::Frame(_)
            | SessionError::BeforeHello(_)
            | SessionError::ProtocolViolation(_) => GoodbyeReason::ProtocolViolation,
        }
    }
}

/// Byte and frame counters, for tests and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SessionStats {
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub frames_sent: u64,
    pub frames_received: u64,
    /// Document sync frames among the frames sent.
    pub doc_frames_sent: u64,
}
