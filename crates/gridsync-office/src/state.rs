//! [`OfficeState`]: the aggregator kept current from the node's change feed, plus what the
//! HTTP handlers share (credentials, sessions, counters, the notice of new figures).
//!
//! One task listens to `NodeShared::changes` (every local write and every change a peer
//! brought). It collects the paths of a burst, then folds each changed building into the
//! aggregation one at a time, holding the replica lock only while that one building is
//! summarized, so sync sessions keep running during a flood. A change of the plan document, a
//! lagging feed or the start of a new daily round rebuilds everything instead (in chunks of
//! buildings summarized on every core). After each batch the aggregation's version is
//! published on a `watch` channel, which the event stream of the dashboard follows.
//!
//! Lock order: the replica lock before the aggregator lock, never the other way round.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gridsync_node::node::{NodeShared, unix_ms};
use gridsync_proto::DocPath;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::aggregate::{Aggregator, is_building_path};
use crate::auth::{OfficeToken, Sessions};
use crate::summary::{BuildingSummary, RoundWindow};

/// How the office is set up.
#[derive(Debug, Clone)]
pub struct OfficeOptions {
    /// The office token (see [`crate::load_or_create_token`]).
    pub token: OfficeToken,
    /// Where the street's day starts, minutes east of UTC (Ningbo: 480): rounds are daily.
    pub utc_offset_minutes: i32,
    /// A fixed start of the current round instead of daily rounds (tests, special sweeps).
    pub round_start_ms: Option<i64>,
}

impl OfficeOptions {
    /// Daily rounds at local midnight `utc_offset_minutes` east of UTC.
    pub fn daily(token: OfficeToken, utc_offset_minutes: i32) -> Self {
        OfficeOptions {
            token,
            utc_offset_minutes,
            round_start_ms: None,
        }
    }

    fn round_at(&self, now_ms: i64) -> RoundWindow {
        match self.round_start_ms {
            Some(start) => RoundWindow::starting_at(start),
            None => RoundWindow::daily(now_ms, self.utc_offset_minutes),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct OfficeCounters {
    /// Document changes written on this node.
    pub local_changes: AtomicU64,
    /// Document changes received from peers.
    pub peer_changes: AtomicU64,
    /// Buildings folded into the aggregation one by one.
    pub building_updates: AtomicU64,
    /// Time spent on them, microseconds.
    pub building_update_micros: AtomicU64,
    /// Longest single building update, microseconds.
    pub building_update_max_micros: AtomicU64,
    /// Full rebuilds (plan change, new round, lagging feed).
    pub rebuilds: AtomicU64,
    /// Requests refused for want of credentials.
    pub unauthorized: AtomicU64,
}

/// What every HTTP handler shares. Cheap to clone.
#[derive(Clone)]
pub struct OfficeState {
    pub(crate) inner: Arc<OfficeInner>,
}

impl std::fmt::Debug for OfficeState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfficeState").finish_non_exhaustive()
    }
}

pub(crate) struct OfficeInner {
    pub shared: Arc<NodeShared>,
    pub options: OfficeOptions,
    pub sessions: Sessions,
    pub counters: OfficeCounters,
    aggregator: Mutex<Aggregator>,
    /// The aggregation's version after each batch.
    pub version: watch::Sender<u64>,
}

impl OfficeInner {
    pub fn aggregator(&self) -> MutexGuard<'_, Aggregator> {
        // Invariant: nothing panics while holding this lock; recover the data regardless.
        self.aggregator.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl OfficeState {
    /// Builds the aggregation from every document the node holds and spawns the task that
    /// keeps it current. Must be called within a tokio runtime; the task ends when the node
    /// shuts down. The first build runs on the calling thread: on the reference street with
    /// 100,000 visits it takes seconds, so call it before serving, not from a request.
    pub fn new(shared: Arc<NodeShared>, options: OfficeOptions) -> OfficeState {
        // Subscribe before the first build so that no change falls between the two.
        let changes = shared.changes.subscribe();
        let street = shared.lock_replica().street().to_owned();
        let round = options.round_at(unix_ms() as i64);
        let (version, _) = watch::channel(0);
        let inner = Arc::new(OfficeInner {
            shared,
            options,
            sessions: Sessions::default(),
            counters: OfficeCounters::default(),
            aggregator: Mutex::new(Aggregator::new(&street, round)),
            version,
        });
        rebuild(&inner, round);
        tokio::spawn(follow_changes(inner.clone(), changes));
        OfficeState { inner }
    }

    /// The node this office runs on.
    pub fn node(&self) -> &Arc<NodeShared> {
        &self.inner.shared
    }

    /// Runs `f` on the current aggregation (held briefly: do not block inside).
    pub fn with_aggregator<T>(&self, f: impl FnOnce(&Aggregator) -> T) -> T {
        f(&self.inner.aggregator())
    }

    /// A receiver that sees the aggregation's version change after each batch of updates.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }
}

/// Builds a fresh aggregation beside the live one, [`REBUILD_CHUNK`] buildings at a time
/// summarized on every core (the replica lock is taken per chunk, so sync sessions keep
/// running on a large street), then swaps it in. Changes that arrive meanwhile wait in the
/// change feed and are folded in afterwards.
fn rebuild(inner: &OfficeInner, round: RoundWindow) {
    let started = Instant::now();
    let (street, plan, paths) = {
        let mut replica = inner.shared.lock_replica();
        let plan = match replica.street_plan() {
            Ok(plan) => plan.unwrap_or_default(),
            Err(e) => {
                warn!(error = %e, "cannot read the street plan; aggregating without it");
                Default::default()
            }
        };
        let street = replica.street().to_owned();
        let paths: Vec<DocPath> = replica
            .loaded_docs()
            .keys()
            .filter(|p| is_building_path(&street, p))
            .cloned()
            .collect();
        (street, plan, paths)
    };
    let mut fresh = Aggregator::new(&street, round);
    let no_documents: [(&DocPath, &automerge::Automerge); 0] = [];
    fresh.rebuild(plan, round, no_documents);
    // Reading a building's records is nearly all of the cost (about 2 ms for 50 visits), so
    // the documents are summarized on every core, a chunk at a time under the replica lock,
    // and installed one by one afterwards.
    let workers =
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_REBUILD_THREADS));
    for chunk in paths.chunks(REBUILD_CHUNK) {
        let summaries = {
            let replica = inner.shared.lock_replica();
            summarize_in_parallel(&fresh, replica.loaded_docs(), chunk, workers)
        };
        for summary in summaries {
            fresh.replace_building(summary);
        }
    }
    let version = {
        let mut live = inner.aggregator();
        let previous = live.version();
        *live = fresh;
        live.advance_version_past(previous);
        live.version()
    };
    inner.counters.rebuilds.fetch_add(1, Ordering::Relaxed);
    inner.version.send_replace(version);
    debug!(
        buildings = paths.len(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "aggregation rebuilt"
    );
}

/// Buildings summarized per hold of the replica lock during a rebuild: long enough to keep
/// every core busy, short enough (tens of milliseconds) that sync sessions barely wait.
const REBUILD_CHUNK: usize = 64;

/// Most threads a rebuild summarizes on.
const MAX_REBUILD_THREADS: usize = 8;

/// Summaries of the building documents `paths` (those held in `docs`), computed on up to
/// `workers` threads, in `paths` order.
pub(crate) fn summarize_in_parallel(
    aggregator: &Aggregator,
    docs: &std::collections::BTreeMap<DocPath, automerge::Automerge>,
    paths: &[DocPath],
    workers: usize,
) -> Vec<BuildingSummary> {
    let summarize = |part: &[DocPath]| -> Vec<BuildingSummary> {
        part.iter()
            .filter_map(|path| aggregator.summarize_document(path, docs.get(path)?))
            .collect()
    };
    if workers <= 1 || paths.len() < 2 {
        return summarize(paths);
    }
    let per_worker = paths.len().div_ceil(workers);
    std::thread::scope(|scope| {
        let handles: Vec<_> = paths
            .chunks(per_worker)
            .map(|part| scope.spawn(move || summarize(part)))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(summaries) => summaries,
                // A panic in the model's reader is a bug; re-raise it where it would have
                // happened without threads.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// [`rebuild`] on a blocking thread, for the async task.
async fn rebuild_off_runtime(inner: &Arc<OfficeInner>, round: RoundWindow) {
    let inner = inner.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || rebuild(&inner, round)).await {
        warn!(error = %e, "aggregation rebuild failed");
    }
}

fn update_one(inner: &OfficeInner, path: &DocPath) {
    let started = Instant::now();
    let mut replica = inner.shared.lock_replica();
    let doc = match replica.doc(path) {
        Ok(Some(doc)) => doc,
        Ok(None) => return,
        Err(e) => {
            warn!(%path, error = %e, "cannot load a changed document");
            return;
        }
    };
    let mut agg = inner.aggregator();
    if agg.update_document(path, doc) {
        drop(agg);
        drop(replica);
        let micros = started.elapsed().as_micros() as u64;
        let c = &inner.counters;
        c.building_updates.fetch_add(1, Ordering::Relaxed);
        c.building_update_micros
            .fetch_add(micros, Ordering::Relaxed);
        c.building_update_max_micros
            .fetch_max(micros, Ordering::Relaxed);
    }
}

async fn follow_changes(
    inner: Arc<OfficeInner>,
    mut changes: tokio::sync::broadcast::Receiver<gridsync_node::node::DocChange>,
) {
    let mut shutdown = inner.shared.shutdown.clone();
    let mut round_check = tokio::time::interval(Duration::from_secs(30));
    let plan_path = gridsync_model::plan_path(inner.aggregator().street()).ok();
    loop {
        let mut pending: BTreeSet<DocPath> = BTreeSet::new();
        let mut full = false;
        let note = |change: gridsync_node::node::DocChange, pending: &mut BTreeSet<DocPath>| {
            let counter = match change.from {
                Some(_) => &inner.counters.peer_changes,
                None => &inner.counters.local_changes,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            pending.insert(change.path);
        };
        tokio::select! {
            received = changes.recv() => match received {
                Ok(change) => note(change, &mut pending),
                Err(RecvError::Lagged(missed)) => {
                    warn!(missed, "office fell behind the change feed; rebuilding the aggregation");
                    full = true;
                }
                Err(RecvError::Closed) => return,
            },
            _ = round_check.tick() => {
                let round = inner.options.round_at(unix_ms() as i64);
                if round != inner.aggregator().round() {
                    rebuild_off_runtime(&inner, round).await;
                }
                continue;
            }
            _ = shutdown.changed() => return,
        }
        // Take the rest of the burst at once, so a document written many times is
        // summarized once.
        loop {
            match changes.try_recv() {
                Ok(change) => note(change, &mut pending),
                Err(TryRecvError::Lagged(_)) => full = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
        if full || plan_path.as_ref().is_some_and(|p| pending.contains(p)) {
            let round = inner.aggregator().round();
            rebuild_off_runtime(&inner, round).await;
        } else {
            for path in &pending {
                update_one(&inner, path);
                // Let sync sessions and requests in between buildings.
                tokio::task::yield_now().await;
            }
            let version = inner.aggregator().version();
            inner.version.send_replace(version);
        }
    }
}
