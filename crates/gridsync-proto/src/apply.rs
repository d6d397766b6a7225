//! Parsing and applying what a peer sent, guarded against panics inside automerge.
//!
//! Inspection (`authorize`) and the sequence check (`sequence`) refuse what is known to make
//! automerge 0.12 fail badly, but automerge still has `unwrap`s on paths a crafted change
//! can reach (its `import_ops` on an operation naming an actor it does not know, found by
//! fuzzing). A peer must never take a node down, so the apply itself runs under
//! `catch_unwind`: a panic becomes a refusal, and the caller throws the in-memory document
//! away (it may be half-updated) and reloads it from what is durable.

use std::panic::{AssertUnwindSafe, catch_unwind};

use automerge::sync::{Message, State, SyncDoc as _};
use automerge::{Automerge, Change};

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

/// `Automerge::load(bytes)`, `None` if automerge refuses the bytes or panics on them (a
/// crafted column can make its decoder panic: found by fuzzing).
pub fn load_document(bytes: &[u8]) -> Option<Automerge> {
    catch_unwind(|| Automerge::load(bytes).ok()).ok().flatten()
}

/// `Change::try_from(bytes)`, `None` if automerge refuses the bytes or panics on them.
pub fn parse_change(bytes: &[u8]) -> Option<Change> {
    catch_unwind(|| Change::try_from(bytes).ok()).ok().flatten()
}

/// `Message::decode(bytes)`, `None` if automerge refuses the bytes or panics on them.
pub fn decode_message(bytes: &[u8]) -> Option<Message> {
    catch_unwind(|| Message::decode(bytes).ok()).ok().flatten()
}

/// `change.decode()` (its operations, for content rules), `None` if automerge panics on it:
/// a crafted change can name an actor its own table lacks (found by fuzzing).
pub fn decode_change(change: &Change) -> Option<automerge::ExpandedChange> {
    catch_unwind(AssertUnwindSafe(|| change.decode())).ok()
}
