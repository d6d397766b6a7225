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
//!
//! A failed commit poisons its documents: the stagings of those documents queued behind it
//! were made from a memory that held the lost changes (an incremental chunk names them as
//! dependencies, a sync state claims them), so committing them would store a change whose
//! dependencies are missing (the document then fails to load or hides an acknowledged
//! record) or tell a peer we hold what we do not. The writer fails every such staging with
//! the same reason until the replica has reloaded the document from what is durable
//! ([`StoreWriterHandle::take_failed_documents`]); what is staged after that reload commits
//! as usual. Changes from peers lost this way are simply missing here, and peers send them
//! again.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

use gridsync_proto::DocPath;
use gridsync_store::{Store, StoreError, WriteBatch};
use tokio::sync::watch;

/// Failed runs of tickets remembered for waiters that look later. A waiter checks within
/// milliseconds of its commit; this only bounds memory on a disk that keeps failing (a
/// waiter too late to find its outcome is told the write is not known to be saved).
const FAILURES_KEPT: usize = 4096;

/// A staged write's place in the writer's order: settled once the writer has committed
/// (or failed to commit) every staging up to and including it. A write that returned a
/// ticket is in memory only: it may be shown or forwarded, but acknowledged to a person
/// only once the ticket settles ([`DurabilityWaiter::wait`]).
#[must_use = "a staged write is durable only once its ticket settles: wait for it or pass it on"]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WriteTicket(u64);

impl WriteTicket {
    /// The place before every staging: settled from the start.
    pub const NONE: WriteTicket = WriteTicket(0);

    /// The ticket after this one.
    fn next(self) -> WriteTicket {
        WriteTicket(self.0 + 1)
    }

    /// The ticket's number in the writer's order (1 for the first staging), for display and
    /// for figures.
    pub fn number(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for WriteTicket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "write #{}", self.0)
    }
}

/// Why a staged write did not become durable.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the store could not commit the write: {0}")]
pub struct NotDurable(pub String);

/// What became of one staging: committed, or not, and why.
type Outcome = Result<(), Arc<str>>;

/// Where the writer stands, shared with the replica and whoever waits.
#[derive(Debug, Default)]
struct Progress {
    /// Every ticket up to this one is settled.
    settled_through: WriteTicket,
    /// Runs of failed tickets (first, last) and why.
    failures: VecDeque<(WriteTicket, WriteTicket, Arc<str>)>,
    /// The last ticket of the runs dropped to bound memory: the outcome of a ticket up to
    /// this one, found in no kept run, is unknown.
    forgotten_through: WriteTicket,
}

impl Progress {
    /// Records the outcomes of one group (in ticket order), a failed ticket joining the run
    /// just before it when it fails for the same reason.
    fn record(&mut self, outcomes: &[(WriteTicket, Outcome)]) {
        for (ticket, outcome) in outcomes {
            let Err(why) = outcome else { continue };
            if let Some((_, last, previous)) = self.failures.back_mut()
                && last.next() == *ticket
                && previous == why
            {
                *last = *ticket;
                continue;
            }
            if self.failures.len() == FAILURES_KEPT
                && let Some((_, last, _)) = self.failures.pop_front()
            {
                self.forgotten_through = last;
            }
            self.failures.push_back((*ticket, *ticket, why.clone()));
        }
        if let Some((last, _)) = outcomes.last() {
            self.settled_through = self.settled_through.max(*last);
        }
    }

    /// The outcome of a settled ticket.
    fn outcome(&self, ticket: WriteTicket) -> Result<(), NotDurable> {
        if let Some((_, _, why)) = self
            .failures
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&ticket))
        {
            return Err(NotDurable(why.to_string()));
        }
        if ticket <= self.forgotten_through {
            return Err(NotDurable(format!(
                "its outcome was forgotten after more than {FAILURES_KEPT} failed commits, so it is not known to be saved"
            )));
        }
        Ok(())
    }
}

/// Documents whose staged bytes failed to commit, whose later stagings are refused until
/// the replica has reloaded them from what is durable.
#[derive(Debug, Default)]
struct Poisoned {
    documents: HashMap<DocPath, Poison>,
}

#[derive(Debug)]
struct Poison {
    /// Why the commit failed, repeated to every staging refused because of it.
    why: Arc<str>,
    /// The last ticket handed out when the replica reloaded the document: stagings up to
    /// it were made from the lost state and are refused, later ones are not. `None` until
    /// the replica has reloaded it.
    reloaded_after: Option<WriteTicket>,
}

impl Poisoned {
    /// Marks `paths` as having lost staged changes (again, if they already had).
    fn poison(&mut self, paths: impl IntoIterator<Item = DocPath>, why: &Arc<str>) {
        for path in paths {
            self.documents.insert(
                path,
                Poison {
                    why: why.clone(),
                    reloaded_after: None,
                },
            );
        }
    }

    /// The documents the replica has not reloaded yet, now counted as reloaded once every
    /// ticket up to `last_ticket` is settled.
    fn take_unreloaded(&mut self, last_ticket: WriteTicket) -> BTreeSet<DocPath> {
        self.documents
            .iter_mut()
            .filter(|(_, poison)| poison.reloaded_after.is_none())
            .map(|(path, poison)| {
                poison.reloaded_after = Some(last_ticket);
                path.clone()
            })
            .collect()
    }

    /// Why the staging `ticket` must not be committed, if it touches a document whose
    /// changes were lost before it was staged: a staging is all or nothing.
    fn refusal(&self, ticket: WriteTicket, batch: &WriteBatch) -> Option<Arc<str>> {
        if self.documents.is_empty() {
            return None;
        }
        let touched = batch
            .appends
            .iter()
            .map(|a| &a.path)
            .chain(batch.sync_states.iter().map(|s| &s.path))
            .chain(batch.derived.iter().map(|(_, d)| &d.path));
        for path in touched {
            if let Some(poison) = self.documents.get(path)
                && poison.reloaded_after.is_none_or(|after| ticket <= after)
            {
                return Some(
                    format!(
                        "{}; it builds on an earlier change of {path} that was not saved",
                        poison.why
                    )
                    .into(),
                );
            }
        }
        None
    }

    /// Forgets the documents reloaded before `ticket`: nothing staged from here on is
    /// refused because of them.
    fn forget_reloaded_through(&mut self, ticket: WriteTicket) {
        self.documents
            .retain(|_, poison| poison.reloaded_after.is_none_or(|after| after > ticket));
    }
}

#[derive(Debug)]
struct Shared {
    progress: Mutex<Progress>,
    settled: Condvar,
    /// Set when a commit failed and its documents still need reloading by the replica; a
    /// cheap check for the replica, which asks before every document it touches.
    failed_documents_pending: AtomicBool,
    poisoned: Mutex<Poisoned>,
    /// The settled ticket, for async waiters (and benchmarks that time durability).
    settled_watch: watch::Sender<WriteTicket>,
}

impl Shared {
    fn progress(&self) -> MutexGuard<'_, Progress> {
        // Invariant: nothing panics while holding this lock; the data stays consistent.
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn poisoned(&self) -> MutexGuard<'_, Poisoned> {
        // Invariant: nothing panics while holding this lock; the data stays consistent.
        self.poisoned.lock().unwrap_or_else(|p| p.into_inner())
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
        let (settled_watch, _) = watch::channel(WriteTicket::NONE);
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress::default()),
            settled: Condvar::new(),
            failed_documents_pending: AtomicBool::new(false),
            poisoned: Mutex::new(Poisoned::default()),
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
            next_ticket: WriteTicket::NONE,
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
        self.next_ticket = self.next_ticket.next();
        let ticket = self.next_ticket;
        if self.jobs.send((ticket, batch)).is_err() {
            // The thread is gone (it only ends when this handle is dropped, or by a panic):
            // settle the ticket as failed so no waiter hangs.
            settle(
                &self.shared,
                &[(ticket, Err("the store writer has stopped".into()))],
            );
        }
        ticket
    }

    /// The last ticket handed out ([`WriteTicket::NONE`] before any).
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
    /// drop them from memory and reload what is durable before it stages anything more.
    /// Until this call returns them, every staging of theirs fails (it was made from the
    /// lost state); stagings after it commit again.
    pub fn take_failed_documents(&self) -> BTreeSet<DocPath> {
        if !self
            .shared
            .failed_documents_pending
            .swap(false, Ordering::AcqRel)
        {
            return BTreeSet::new();
        }
        self.shared.poisoned().take_unreloaded(self.next_ticket)
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

    /// Blocks until `ticket` is settled; `Err` if it was not committed.
    pub fn wait(&self, ticket: WriteTicket) -> Result<(), NotDurable> {
        let mut progress = self.shared.progress();
        while progress.settled_through < ticket {
            progress = self
                .shared
                .settled
                .wait(progress)
                .unwrap_or_else(|p| p.into_inner());
        }
        progress.outcome(ticket)
    }
}

/// The writer thread: takes the first waiting staging and every staging queued behind it,
/// commits them in one transaction, settles their tickets; ends when the handle is dropped
/// and the queue is empty.
fn run(mut store: Store, jobs: mpsc::Receiver<(WriteTicket, WriteBatch)>, shared: &Shared) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while let Ok(more) = jobs.try_recv() {
            group.push(more);
        }
        let outcomes = commit_group(&mut store, group, shared);
        settle(shared, &outcomes);
    }
}

/// Commits, in one transaction, every staging of `group` that builds on no lost change,
/// fails the others, and poisons the documents of a failed commit. Returns each ticket's
/// outcome, in ticket order.
fn commit_group(
    store: &mut Store,
    group: Vec<(WriteTicket, WriteBatch)>,
    shared: &Shared,
) -> Vec<(WriteTicket, Outcome)> {
    let last = group
        .last()
        .map_or(WriteTicket::NONE, |(ticket, _)| *ticket);
    let mut refused = Vec::new();
    let mut committed = Vec::with_capacity(group.len());
    let mut batch = WriteBatch::default();
    {
        let poisoned = shared.poisoned();
        for (ticket, staged) in group {
            match poisoned.refusal(ticket, &staged) {
                Some(why) => refused.push((ticket, Err(why))),
                None => {
                    committed.push(ticket);
                    batch.extend(staged);
                }
            }
        }
    }
    if !refused.is_empty() {
        tracing::warn!(
            stagings = refused.len(),
            "not committing staged writes that build on changes whose commit failed"
        );
    }
    let result: Outcome = store
        .write_batch(&batch)
        .map_err(|e| Arc::from(e.to_string()));
    if let Err(why) = &result {
        poison_documents(shared, &batch, why);
    }
    shared.poisoned().forget_reloaded_through(last);
    let mut outcomes = refused;
    outcomes.extend(committed.into_iter().map(|ticket| (ticket, result.clone())));
    outcomes.sort_unstable_by_key(|(ticket, _)| *ticket);
    outcomes
}

/// After `batch` failed to commit: its documents lost changes that memory holds, so their
/// later stagings are refused and the replica is told to reload them.
fn poison_documents(shared: &Shared, batch: &WriteBatch, why: &Arc<str>) {
    tracing::error!(error = %why, documents = batch.appends.len(), "cannot commit staged writes; the documents are reloaded from what is durable");
    shared
        .poisoned()
        .poison(batch.appends.iter().map(|a| a.path.clone()), why);
    shared
        .failed_documents_pending
        .store(true, Ordering::Release);
}

/// Publishes the outcomes of settled tickets (in ticket order) and wakes their waiters.
fn settle(shared: &Shared, outcomes: &[(WriteTicket, Outcome)]) {
    let Some((last, _)) = outcomes.last() else {
        return;
    };
    shared.progress().record(outcomes);
    shared.settled.notify_all();
    // The previous value is of no interest: the watch only ever moves forward.
    let _previous = shared.settled_watch.send_replace(*last);
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
            ..WriteBatch::default()
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
        assert_eq!(tickets, (1..=50).map(WriteTicket).collect::<Vec<_>>());
        waiter.wait(WriteTicket(50)).unwrap();
        assert!(handle.is_settled(WriteTicket(50)));
        drop(handle);
        writer.finish();
        let loaded = store.load_doc(&path).unwrap().unwrap();
        assert_eq!(loaded.get_heads(), doc.get_heads());
    }

    fn sync_state_of(path: &DocPath) -> WriteBatch {
        WriteBatch {
            sync_states: vec![gridsync_store::SyncStateWrite {
                peer: gridsync_proto::NodeId::parse("cap-1").unwrap(),
                path: path.clone(),
                state: vec![1],
            }],
            ..WriteBatch::default()
        }
    }

    #[test]
    fn a_poisoned_document_refuses_what_was_staged_before_its_reload_and_only_that() {
        let lost = DocPath::parse("panhuo/grid-001/b-1").unwrap();
        let other = DocPath::parse("panhuo/grid-001/b-2").unwrap();
        let mut doc = Automerge::new();
        let mut poisoned = Poisoned::default();
        poisoned.poison([lost.clone()], &Arc::from("database or disk is full"));

        // Before the reload: every later staging of the document is refused, with the reason;
        // other documents are not affected.
        let why = poisoned
            .refusal(WriteTicket(7), &append(&lost, &mut doc, 1))
            .unwrap();
        assert!(why.contains("full") && why.contains(lost.as_str()), "{why}");
        assert!(
            poisoned
                .refusal(WriteTicket(7), &sync_state_of(&lost))
                .is_some()
        );
        assert!(
            poisoned
                .refusal(WriteTicket(7), &append(&other, &mut doc, 2))
                .is_none()
        );

        // The replica reloads it when ticket 9 is the last handed out: up to 9 is refused,
        // later stagings are made from the durable state and pass.
        assert_eq!(
            poisoned.take_unreloaded(WriteTicket(9)),
            BTreeSet::from([lost.clone()])
        );
        assert!(
            poisoned.take_unreloaded(WriteTicket(12)).is_empty(),
            "reloaded once"
        );
        assert!(
            poisoned
                .refusal(WriteTicket(9), &append(&lost, &mut doc, 3))
                .is_some()
        );
        assert!(
            poisoned
                .refusal(WriteTicket(10), &append(&lost, &mut doc, 4))
                .is_none()
        );
        poisoned.forget_reloaded_through(WriteTicket(8));
        assert!(
            poisoned
                .refusal(WriteTicket(9), &sync_state_of(&lost))
                .is_some()
        );
        poisoned.forget_reloaded_through(WriteTicket(9));
        assert!(poisoned.documents.is_empty());
    }

    #[test]
    fn failed_tickets_are_kept_as_runs_and_a_forgotten_outcome_is_not_reported_saved() {
        let full: Arc<str> = Arc::from("database or disk is full");
        let mut progress = Progress::default();
        progress.record(&[
            (WriteTicket(1), Ok(())),
            (WriteTicket(2), Err(full.clone())),
            (WriteTicket(3), Err(full.clone())),
        ]);
        progress.record(&[
            (WriteTicket(4), Err(full.clone())),
            (WriteTicket(5), Ok(())),
        ]);
        assert_eq!(progress.failures.len(), 1, "{:?}", progress.failures);
        assert_eq!(progress.settled_through, WriteTicket(5));
        assert!(progress.outcome(WriteTicket(1)).is_ok());
        assert!(
            progress
                .outcome(WriteTicket(4))
                .unwrap_err()
                .to_string()
                .contains("full")
        );
        assert!(progress.outcome(WriteTicket(5)).is_ok());

        // Past the bound, the oldest runs are dropped: their tickets are no longer reported
        // saved, whatever became of them.
        let mut ticket = 5;
        for _ in 0..FAILURES_KEPT {
            ticket += 2;
            progress.record(&[
                (WriteTicket(ticket - 1), Ok(())),
                (WriteTicket(ticket), Err(full.clone())),
            ]);
        }
        assert!(progress.outcome(WriteTicket(1)).is_err());
        assert!(progress.outcome(WriteTicket(ticket - 1)).is_ok());
    }
}
