//! The order in which a session starts syncing documents.
//!
//! Two devices may meet for only a few seconds, so what moves first matters: street-wide
//! control documents (revocations, the device directory, the plan), then documents with open
//! special needs, then the rest; within a class, the document whose oldest unsynced change is
//! oldest goes first, so nothing waits behind fresher work forever. The class comes from the
//! node ([`DocumentSet::sync_priority`](super::DocumentSet::sync_priority)); the age from the
//! document's changes the peer is not known to have (its persisted sync state).
//!
//! A document this side has nothing to send for (key age [`NOTHING_TO_SEND`]) is a *pull*:
//! starting it only asks the peer for its changes. The side holding the data answers a pull
//! of a document it has not started in its own order rather than at once: the document joins
//! its queue, and its first message carries the changes (the pull told it the peer's heads).
//! So whoever holds the data decides what crosses a short contact first. Pulls do not wait
//! for an in-flight slot: the inventory may have told only the puller which documents
//! differ, and the holder can order only what it knows about.

use std::collections::{BTreeSet, HashMap};

use crate::path::DocPath;

use super::config::SyncPriority;

/// The age key of a document with no change the peer lacks.
pub(super) const NOTHING_TO_SEND: i64 = i64::MAX;

/// Where a document stands in the queue: its class, then the timestamp of its oldest change
/// the peer lacks (`i64::MAX` when it has none: such a document only fetches).
pub(crate) type StartKey = (SyncPriority, i64);

/// Documents waiting to start, most useful first.
#[derive(Debug, Default)]
pub(super) struct StartQueue {
    order: BTreeSet<(StartKey, DocPath)>,
    keys: HashMap<DocPath, StartKey>,
}

impl StartQueue {
    /// Queues `path` under `key`; a path already queued keeps its place.
    pub(super) fn push(&mut self, path: DocPath, key: StartKey) {
        if self.keys.contains_key(&path) {
            return;
        }
        self.keys.insert(path.clone(), key);
        self.order.insert((key, path));
    }

    /// Whether the most useful waiting document is a pull (nothing of ours to send).
    pub(super) fn next_is_pull(&self) -> bool {
        self.order
            .first()
            .is_some_and(|((_, age), _)| *age == NOTHING_TO_SEND)
    }

    /// The most useful waiting document.
    pub(super) fn pop(&mut self) -> Option<DocPath> {
        let (_, path) = self.order.pop_first()?;
        self.keys.remove(&path);
        Some(path)
    }

    /// Takes `path` out of the queue (the peer started it first).
    pub(super) fn remove(&mut self, path: &DocPath) {
        if let Some(key) = self.keys.remove(path) {
            self.order.remove(&(key, path.clone()));
        }
    }

    /// Whether `path` waits in the queue with changes of ours to send.
    pub(super) fn holds_data_for(&self, path: &DocPath) -> bool {
        self.keys
            .get(path)
            .is_some_and(|(_, age)| *age != NOTHING_TO_SEND)
    }

    pub(super) fn contains(&self, path: &DocPath) -> bool {
        self.keys.contains_key(path)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> DocPath {
        s.parse().expect("valid path")
    }

    #[test]
    fn class_first_then_oldest_unsynced_then_path() {
        let mut queue = StartQueue::default();
        queue.push(path("s/g/b-1"), (SyncPriority::Routine, 10));
        queue.push(path("s/g/b-2"), (SyncPriority::OpenNeeds, 500));
        queue.push(path("s/g/b-3"), (SyncPriority::Routine, 5));
        queue.push(path("s/g/b-4"), (SyncPriority::Routine, i64::MAX));
        queue.push(path("s/plan"), (SyncPriority::Street, i64::MAX));
        // Pushing again does not move a document.
        queue.push(path("s/g/b-4"), (SyncPriority::Street, 0));
        let order: Vec<String> = std::iter::from_fn(|| queue.pop())
            .map(|p| p.to_string())
            .collect();
        assert_eq!(
            order,
            ["s/plan", "s/g/b-2", "s/g/b-3", "s/g/b-1", "s/g/b-4"]
        );
        assert!(queue.is_empty());
    }

    #[test]
    fn removed_documents_do_not_start() {
        let mut queue = StartQueue::default();
        queue.push(path("s/g/b-1"), (SyncPriority::Routine, 1));
        queue.push(path("s/g/b-2"), (SyncPriority::Routine, 2));
        queue.remove(&path("s/g/b-1"));
        assert!(!queue.contains(&path("s/g/b-1")));
        assert_eq!(queue.pop(), Some(path("s/g/b-2")));
        assert_eq!(queue.pop(), None);
    }
}
