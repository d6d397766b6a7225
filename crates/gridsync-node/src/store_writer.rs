//! The store writer of a running node: one thread with its own store connection that commits
//! what the replica staged, many stagings per transaction (group commit).
//!
//! Why: a durable commit costs one fsync (about 3-4 ms on the machines gridsync was measured
//! on). Committed under the replica lock, it stopped every session for that long per received
//! document, and each hop of a relay waited for its own fsync before forwarding. With the
//! writer, the replica applies a change in memory, stages its bytes here and goes on: the
//! node forwards the change at once while the fsync runs, and everything staged during one
//! fsync is committed by the next, together. This is the order replicated logs use too (a
//! Raft leader sends entries to followers while it writes them to its own disk): a copy that
//! crashes before its write is durable gets the change again from a peer that holds it.
//!
//! What waits for durability still waits: a local write is acknowledged to its author only
//! once its ticket is settled ([`StoreWriterHandle::wait`]), and sync states are staged
//! after the documents they describe, so they are never committed ahead of them.

use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use gridsync_proto::DocPath;
use gridsync_store::{Store, StoreError, WriteBatch};
use tokio::sync::watch;

/// Failed commits remembered for waiters that look later. A waiter checks within
/// milliseconds of its commit; this only bounds memory on a disk that keeps failing.
const FAILURES_KEPT: usize = 256;

/// A staged write's place in the writer's order: settled once the writer has committed
/// (or failed to commit) every staging up to and including it.
pub type WriteTicket = u64;

/// Why a staged write did not become durable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the store could not commit the write: {0}")]
pub struct NotDurable(pub String);

/// Where the writer stands, shared with the replica and whoever waits.
#[derive(Debug, Default)]
struct Progress {
    /// Every ticket up to this one is settled.
    settled_through: WriteTicket,
    /// Failed commits: the tickets they covered (first, last) and why.
    failures: VecDeque<(WriteTicket, WriteTicket, String)>,
}

#[derive(Debug)]
struct Shared {
    progress: Mutex<Progress>,
    settled: Condvar,
    /// Set when a commit failed and its documents still need reloading by the replica.
    failed_documents_pending: AtomicBool,
    failed_documents: Mutex<BTreeSet<DocPath>>,
    /// The settled ticket, for async waiters (and benchmarks that time durability).
    settled_watch: watch::Sender<WriteTicket>,
}

impl Shared {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        // Invariant: nothing panics while holding this lock; the data stays consistent.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The replica's side of the writer: stages batches and hands out tickets. Kept inside the
/// replica, so tickets are issued in the replica's own order of changes.
#[derive(Debug)]
pub struct StoreWriterHandle {
    jobs: mpsc::Sender<(WriteTicket, WriteBatch)>,
    next_ticket: WriteTicket,
    shared: Arc<Shared>,
}

/// The writer thread, owned by the node; [`StoreWriter::finish`] waits for everything staged.
#[derive(Debug)]
pub struct StoreWriter {
    thread: Option<JoinHandle<()>>,
}

impl StoreWriter {
    /// Starts the writer thread on a second connection to `store`. Returns the writer and
    /// the handle the replica stages through.
    pub fn start(store: &Store) -> Result<(StoreWriter, StoreWriterHandle), StoreError> {
        let connection = store.open_another_connection()?;
        let (jobs, receiver) = mpsc::channel();
        let (settled_watch, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::default()),
            settled: Condvar::new(),
            failed_documents_pending: AtomicBool::new(false),
            failed_documents: Mutex::new(BTreeSet::new()),
            settled_watch,
        });
        let thread_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("gridsync-store-writer".into())
            .spawn(move || run(connection, receiver, &thread_shared))
            .map_err(|source| StoreError::Io {
                path: store.db_path().to_owned(),
                source,
            })?;
        let handle = StoreWriterHandle {
            jobs,
            next_ticket: 0,
            shared,
        };
        Ok((
            StoreWriter {
                thread: Some(thread),
            },
            handle,
        ))
    }

    /// Waits until the writer thread has committed everything staged and ended; it ends
    /// once the replica (holding the handle) is dropped.
    pub fn finish(mut self) {
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the store writer thread panicked");
        }
    }
}

impl StoreWriterHandle {
    /// Queues `batch` for the next commit and returns its ticket. Never blocks.
    pub fn stage(&mut self, batch: WriteBatch) -> WriteTicket {
        self.next_ticket += 1;
        let ticket = self.next_ticket;
        if self.jobs.send((ticket, batch)).is_err() {
            // The thread is gone (it only ends when this handle is dropped, or by a panic):
            // settle the ticket as failed so no waiter hangs.
            settle(
                &self.shared,
                ticket,
                ticket,
                Err("the store writer has stopped".into()),
                &[],
            );
        }
        ticket
    }

    /// The last ticket handed out (0 before any).
    pub fn last_ticket(&self) -> WriteTicket {
        self.next_ticket
    }

    /// Is every staging up to `ticket` committed or failed?
    pub fn is_settled(&self, ticket: WriteTicket) -> bool {
        self.shared.progress().settled_through >= ticket
    }

    /// A handle for waiting on tickets without holding the replica.
    pub fn waiter(&self) -> DurabilityWaiter {
        DurabilityWaiter {
            shared: self.shared.clone(),
        }
    }

    /// Documents whose staged bytes failed to commit since the last call: the replica must
    /// drop them from memory and reload what is durable.
    pub fn take_failed_documents(&self) -> BTreeSet<DocPath> {
        if !self
            .shared
            .failed_documents_pending
            .swap(false, Ordering::AcqRel)
        {
            return BTreeSet::new();
        }
        let mut failed = self
            .shared
            .failed_documents
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut *failed)
    }
}

/// Waits for tickets to settle; cheap to clone and independent of the replica lock.
#[derive(Debug, Clone)]
pub struct DurabilityWaiter {
    shared: Arc<Shared>,
}

impl DurabilityWaiter {
    /// A receiver of the settled ticket, for async code that waits for durability.
    pub fn settled(&self) -> watch::Receiver<WriteTicket> {
        self.shared.settled_watch.subscribe()
    }

    /// Blocks until `ticket` is settled; `Err` if its commit failed.
    pub fn wait(&self, ticket: WriteTicket) -> Result<(), NotDurable> {
        let mut progress = self.shared.progress();
        while progress.settled_through < ticket {
            progress = self
                .shared
                .settled
                .wait(progress)
                .unwrap_or_else(|p| p.into_inner());
        }
        match progress
            .failures
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&ticket))
        {
            Some((_, _, why)) => Err(NotDurable(why.clone())),
            None => Ok(()),
        }
    }
}

/// The writer thread: takes the first waiting batch, every batch queued behind it, commits
/// them in one transaction, settles their tickets; ends when the handle is dropped and the
/// queue is empty.
fn run(mut store: Store, jobs: mpsc::Receiver<(WriteTicket, WriteBatch)>, shared: &Shared) {
    while let Ok((first, mut batch)) = jobs.recv() {
        let mut last = first;
        while let Ok((ticket, more)) = jobs.try_recv() {
            batch.extend(more);
            last = ticket;
        }
        let result = store.write_batch(&batch).map_err(|e| e.to_string());
        let paths: Vec<DocPath> = batch.appends.iter().map(|a| a.path.clone()).collect();
        settle(shared, first, last, result, &paths);
    }
}

fn settle(
    shared: &Shared,
    first: WriteTicket,
    last: WriteTicket,
    result: Result<(), String>,
    paths: &[DocPath],
) {
    if let Err(why) = &result {
        tracing::error!(error = %why, documents = paths.len(), "cannot commit staged writes; the documents are reloaded from what is durable");
        shared
            .failed_documents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(paths.iter().cloned());
        shared
            .failed_documents_pending
            .store(true, Ordering::Release);
    }
    {
        let mut progress = shared.progress();
        if let Err(why) = result {
            if progress.failures.len() == FAILURES_KEPT {
                progress.failures.pop_front();
            }
            progress.failures.push_back((first, last, why));
        }
        progress.settled_through = progress.settled_through.max(last);
    }
    shared.settled.notify_all();
    shared.settled_watch.send_replace(last);
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use automerge::Automerge;
    use automerge::transaction::Transactable;
    use gridsync_store::DocumentAppend;

    use super::*;

    fn append(path: &DocPath, doc: &mut Automerge, value: i64) -> WriteBatch {
        let before = doc.get_heads();
        let mut tx = doc.transaction();
        tx.put(automerge::ROOT, "n", value).unwrap();
        tx.commit();
        WriteBatch {
            appends: vec![DocumentAppend {
                path: path.clone(),
                chunk: doc.save_after(&before),
                heads: doc.get_heads(),
                origins: Vec::new(),
                signed_heads: Vec::new(),
            }],
            sync_states: Vec::new(),
            derived: Vec::new(),
        }
    }

    #[test]
    fn staged_writes_settle_in_order_and_are_durable_after_finish() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::create(dir.path()).unwrap();
        let (writer, mut handle) = StoreWriter::start(&store).unwrap();
        let path = DocPath::parse("panhuo/grid-001/b-1").unwrap();
        let mut doc = Automerge::new();
        let waiter = handle.waiter();
        let tickets: Vec<_> = (0..50)
            .map(|n| handle.stage(append(&path, &mut doc, n)))
            .collect();
        assert_eq!(tickets, (1..=50).collect::<Vec<_>>());
        waiter.wait(50).unwrap();
        assert!(handle.is_settled(50));
        drop(handle);
        writer.finish();
        let loaded = store.load_doc(&path).unwrap().unwrap();
        assert_eq!(loaded.get_heads(), doc.get_heads());
    }
}
