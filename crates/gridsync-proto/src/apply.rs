//! Applying a received sync message that inspection admitted, guarded against automerge.
//!
//! Inspection (`authorize`) and the sequence check (`sequence`) refuse what is known to make
//! automerge 0.12 fail badly, but automerge still has `unwrap`s on paths a crafted change
//! can reach (its `import_ops` on an operation naming an actor it does not know, found by
//! fuzzing). A peer must never take a node down, so the apply itself runs under
//! `catch_unwind`: a panic becomes a refusal, and the caller throws the in-memory document
//! away (it may be half-updated) and reloads it from what is durable.

use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::Automerge;
use automerge::sync::{Message, State, SyncDoc as _};

/// Why a received message was not applied.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// Automerge refused it; the document is unchanged.
    #[error("automerge refused the message: {0}")]
    Refused(#[from] automerge::AutomergeError),
    /// Automerge panicked on it; the document and the sync state may be half-updated and
    /// must be discarded.
    #[error("automerge panicked on the message")]
    Panicked,
}

/// `doc.receive_sync_message(state, message)`, with a panic turned into
/// [`ApplyError::Panicked`].
pub fn receive_guarded(
    doc: &mut Automerge,
    state: &mut State,
    message: Message,
) -> Result<(), ApplyError> {
    match catch_unwind(AssertUnwindSafe(|| {
        doc.receive_sync_message(state, message)
    })) {
        Ok(result) => result.map_err(ApplyError::from),
        Err(_) => Err(ApplyError::Panicked),
    }
}
