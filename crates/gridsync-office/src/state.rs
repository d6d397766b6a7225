//! [`OfficeState`]: the aggregator kept current from the node's change feed, plus what the
//! HTTP handlers share (credentials, sessions, counters, the notice of new figures).
//!
//! One task listens to the node's change feed (`NodeHandle::subscribe`: every local write
//! and every change a peer brought). It collects the paths of a burst, then folds each changed building into the
//! aggregation one at a time, holding the replica lock only while that one building is
//! summarized, so sync sessions keep running during a flood; the burst's new summaries are
//! then stored in one transaction. A change of the plan document, a lagging feed or the start
//! of a new daily round rebuilds everything instead (in chunks of buildings). After each batch
//! the aggregation's version is published on a `watch` channel, which the event stream of the
//! dashboard follows.
//!
//! A rebuild (the start included) does not need every document in memory: each building's
//! summary is kept in the store under a key derived from heads (see [`crate::stored`]), and
//! only buildings whose document, plan or round changed since are loaded and summarized (on
//! every core). A restart with nothing changed therefore reads no building document at all.
//!
//! Lock order: the replica lock before the aggregator lock, never the other way round; the
//! summary basis lock is taken last and only under the aggregator lock.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use automerge::ChangeHash;
use gridsync_model::{FirstSight, StreetPlan};
use gridsync_node::NodeHandle;
use gridsync_node::Replica;
use gridsync_proto::DocPath;
use gridsync_store::DerivedEntry;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::aggregate::{Aggregator, is_building_path};
use crate::auth::OfficeToken;
use crate::stored::{SUMMARY_KIND, SummaryBasis, decode, encode};
use crate::stored_plan::{PLAN_KIND, decode_plan, encode_plan, plan_key};
use crate::summary::{BuildingSummary, RoundWindow};
use gridsync_web::SignedSessions;

/// How the office is set up.
#[derive(Debug, Clone)]
pub struct OfficeOptions {
    /// The office token (see [`crate::load_or_create_token`]).
    pub token: OfficeToken,
    /// Where the street's day starts, minutes east of UTC, when its plan names no time zone
    /// (`gridsync plan time-zone`; the plan's wins): rounds are daily.
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

    /// The street's time zone: the plan's, else this default.
    pub fn utc_offset_for(&self, plan: &StreetPlan) -> i32 {
        plan.utc_offset_minutes().unwrap_or(self.utc_offset_minutes)
    }

    fn round_at(&self, now_ms: i64, plan: &StreetPlan) -> RoundWindow {
        match self.round_start_ms {
            Some(start) => RoundWindow::starting_at(start),
            None => RoundWindow::daily(now_ms, self.utc_offset_for(plan)),
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
    /// Building summaries that rebuilds took from the store (their documents unchanged since
    /// the summary was stored), without loading the document.
    pub summaries_reused: AtomicU64,
    /// Building summaries that rebuilds computed from documents (new, changed, or no usable
    /// stored summary).
    pub summaries_computed: AtomicU64,
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

impl OfficeInner {
    /// Now, in Unix milliseconds, on the node's clock.
    pub(crate) fn now_ms(&self) -> i64 {
        self.node.clock().unix_ms() as i64
    }
}

pub(crate) struct OfficeInner {
    pub node: NodeHandle,
    pub options: OfficeOptions,
    pub sessions: SignedSessions,
    /// Wrong tokens at the login form pause it (`gridsync_web::LoginThrottle`).
    pub login_throttle: gridsync_web::LoginThrottle,
    pub counters: OfficeCounters,
    aggregator: Mutex<Aggregator>,
    /// What the live aggregation's summaries were derived from besides their documents, for
    /// the source keys of the summaries stored as buildings change; `None` when the plan could
    /// not be read (nothing is stored then). Replaced together with the aggregation, under its
    /// lock, so that the two always match.
    basis: Mutex<Option<SummaryBasis>>,
    /// The aggregation's version after each batch.
    pub version: watch::Sender<u64>,
}

impl OfficeInner {
    pub fn aggregator(&self) -> MutexGuard<'_, Aggregator> {
        // Invariant: nothing panics while holding this lock; recover the data regardless.
        self.aggregator.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn basis(&self) -> MutexGuard<'_, Option<SummaryBasis>> {
        // Invariant: nothing panics while holding this lock; recover the data regardless.
        self.basis.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl OfficeState {
    /// [`OfficeState::new`] on a blocking thread: the first aggregation reads every building
    /// document, which must not hold up the async workers.
    pub async fn start(
        node: NodeHandle,
        options: OfficeOptions,
    ) -> Result<OfficeState, tokio::task::JoinError> {
        tokio::task::spawn_blocking(move || OfficeState::new(node, options)).await
    }

    /// Builds the aggregation from every document the node holds and spawns the task that
    /// keeps it current. Must be called within a tokio runtime; the task ends when the node
    /// shuts down. The first build runs on the calling thread: on the reference street with
    /// 100,000 visits it takes seconds, so call it before serving, not from a request.
    pub fn new(node: NodeHandle, options: OfficeOptions) -> OfficeState {
        // Subscribe before the first build so that no change falls between the two.
        let changes = node.subscribe();
        let (street, session_key) = {
            let mut replica = node.lock_replica();
            let key = crate::auth::session_key(&mut replica);
            (replica.street().to_owned(), key)
        };
        let sessions = SignedSessions::new(session_key, crate::auth::SESSION_LIFETIME_MS);
        // A placeholder until the first rebuild has read the plan (and its time zone).
        let round = options.round_at(node.clock().unix_ms() as i64, &StreetPlan::default());
        let (version, _) = watch::channel(0);
        let inner = Arc::new(OfficeInner {
            node,
            options,
            sessions,
            login_throttle: Default::default(),
            counters: OfficeCounters::default(),
            aggregator: Mutex::new(Aggregator::new(&street, round)),
            basis: Mutex::new(None),
            version,
        });
        rebuild(&inner);
        tokio::spawn(follow_changes(inner.clone(), changes));
        tokio::spawn(follow_session_key(inner.clone()));
        OfficeState { inner }
    }

    /// The node this office runs on.
    pub fn node(&self) -> &NodeHandle {
        &self.inner.node
    }

    /// Runs `f` on the current aggregation (held briefly: do not block inside).
    pub fn with_aggregator<T>(&self, f: impl FnOnce(&Aggregator) -> T) -> T {
        f(&self.inner.aggregator())
    }

    /// The counters shown on `/metrics` (how many summaries a start reused, for instance).
    pub fn counters(&self) -> &OfficeCounters {
        &self.inner.counters
    }

    /// A receiver that sees the aggregation's version change after each batch of updates.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.version.subscribe()
    }
}

/// Builds a fresh aggregation beside the live one, [`REBUILD_CHUNK`] buildings at a time,
/// then swaps it in. Changes that arrive meanwhile wait in the change feed and are folded in
/// afterwards. The round is the plan's: its time zone decides where the day starts.
///
/// Per chunk: the buildings' heads and stored summaries are read under the replica lock (no
/// document is loaded for that); a stored summary whose source key matches is reused; the
/// others are read detached (`Replica::read_detached`: their stored bytes, under the lock for
/// microseconds) and loaded, summarized and encoded on every core outside it, without
/// filling the node's document cache; their new summaries are staged in one batch. Sync
/// sessions thus keep running on a large street, and a first start uses every core for the
/// loading that dominated it (see BENCHMARKS.md, scenario 6).
fn rebuild(inner: &OfficeInner) {
    let started = Instant::now();
    let (street, plan, basis, paths, round) = {
        let mut replica = inner.node.lock_replica();
        let street = replica.street().to_owned();
        // The plan and its heads are read in one hold of the lock, so the key of every
        // summary names the plan it was computed with. Without a readable plan nothing is
        // reused or stored.
        let (plan, plan_heads) = current_plan(&mut replica, &street);
        // The round, in the street's time zone as the plan now says.
        let round = inner.options.round_at(inner.now_ms(), &plan);
        let basis = plan_heads.map(|heads| SummaryBasis::new(heads, round));
        let paths: Option<Vec<DocPath>> = match replica.doc_paths() {
            Ok(paths) => Some(
                paths
                    .into_iter()
                    .filter(|p| is_building_path(&street, p))
                    .collect(),
            ),
            Err(e) => {
                warn!(error = %e, "cannot list the documents held; aggregating none");
                None
            }
        };
        (street, plan, basis, paths, round)
    };
    let mut fresh = Aggregator::with_plan(&street, plan, round);
    let workers =
        std::thread::available_parallelism().map_or(1, |n| n.get().min(MAX_REBUILD_THREADS));
    let all_paths = paths.as_deref().unwrap_or_default();
    let (mut reused, mut computed) = (0u64, 0u64);
    let mut summaries = Vec::with_capacity(all_paths.len());
    for chunk in all_paths.chunks(REBUILD_CHUNK) {
        let outcome = rebuild_chunk(inner, &fresh, basis.as_ref(), chunk, workers);
        reused += outcome.reused;
        computed += outcome.computed;
        summaries.extend(outcome.summaries);
    }
    // Summed once at the end: the same figures as a rebuild from every document.
    fresh.install_rebuilt(summaries);
    if let (Some(_), Some(paths)) = (&basis, &paths) {
        // Summaries of documents no longer held (or no longer buildings) would only grow the
        // store.
        let keep: BTreeSet<DocPath> = paths.iter().cloned().collect();
        let removed = inner
            .node
            .lock_replica()
            .retain_derived(SUMMARY_KIND, &keep);
        if let Err(e) = removed {
            warn!(error = %e, "cannot delete stale stored summaries");
        }
    }
    let version = {
        let mut live = inner.aggregator();
        let previous = live.version();
        *live = fresh;
        live.advance_version_past(previous);
        *inner.basis() = basis;
        live.version()
    };
    let c = &inner.counters;
    c.rebuilds.fetch_add(1, Ordering::Relaxed);
    c.summaries_reused.fetch_add(reused, Ordering::Relaxed);
    c.summaries_computed.fetch_add(computed, Ordering::Relaxed);
    inner.version.send_replace(version);
    debug!(
        buildings = all_paths.len(),
        reused,
        computed,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "aggregation rebuilt"
    );
}

/// The street plan, and its document's heads for the keys of what is derived from it (`None`
/// when the plan cannot be read: the office then aggregates without it and stores nothing).
/// The plan comes from the store's copy when the plan document did not change since it was
/// stored (see [`crate::stored_plan`]); otherwise it is read from the document and stored.
fn current_plan(replica: &mut Replica, street: &str) -> (Arc<StreetPlan>, Option<Vec<ChangeHash>>) {
    let unreadable = |e: &dyn std::fmt::Display| {
        warn!(error = %e, "cannot read the street plan; aggregating without it");
        (Arc::new(StreetPlan::default()), None)
    };
    let plan_path = match gridsync_model::plan_path(street) {
        Ok(path) => path,
        Err(e) => return unreadable(&e),
    };
    let heads = match replica.heads(&plan_path) {
        Ok(Some(heads)) => heads,
        // No plan yet: nothing to read, and an empty plan is what every summary depends on.
        Ok(None) => return (Arc::new(StreetPlan::default()), Some(Vec::new())),
        Err(e) => return unreadable(&e),
    };
    let key = plan_key(&heads);
    let stored = replica
        .store()
        .derived_entry(PLAN_KIND, &plan_path)
        .unwrap_or_else(|e| {
            warn!(error = %e, "cannot read the stored street plan");
            None
        });
    if let Some(stored) = stored.filter(|s| s.source_key == key) {
        match decode_plan(&stored.value) {
            Ok(plan) => return (Arc::new(plan), Some(heads)),
            Err(e) => debug!(error = %e, "stored street plan unusable; reading the document"),
        }
    }
    let plan = match replica.street_plan() {
        Ok(plan) => plan.unwrap_or_default(),
        Err(e) => return unreadable(&e),
    };
    let entry = DerivedEntry {
        path: plan_path,
        source_key: key.to_vec(),
        value: encode_plan(&plan),
    };
    if let Err(e) = replica.store_derived(PLAN_KIND, vec![entry]) {
        warn!(error = %e, "cannot store the street plan");
    }
    (plan, Some(heads))
}

/// Buildings handled per hold of the replica lock during a rebuild: long enough to keep every
/// core busy summarizing, short enough (tens of milliseconds) that sync sessions barely wait.
const REBUILD_CHUNK: usize = 64;

/// Most threads a rebuild summarizes on.
const MAX_REBUILD_THREADS: usize = 8;

/// A summary computed from its document, and its entry for the store (`None` when the
/// aggregation's plan could not be read: nothing is stored then).
type Computed = (BuildingSummary, Option<DerivedEntry>);

/// The summaries of one chunk of a rebuild, in path order, and where they came from.
struct ChunkOutcome {
    summaries: Vec<BuildingSummary>,
    reused: u64,
    computed: u64,
}

/// One chunk of [`rebuild`]: reuses the stored summaries that still match, summarizes the
/// rest from their documents and stores them.
fn rebuild_chunk(
    inner: &OfficeInner,
    aggregator: &Aggregator,
    basis: Option<&SummaryBasis>,
    chunk: &[DocPath],
    workers: usize,
) -> ChunkOutcome {
    // Heads and stored summaries, under the lock, without loading any document.
    let looked_up: Vec<(Vec<ChangeHash>, Option<DerivedEntry>)> = {
        let mut replica = inner.node.lock_replica();
        chunk
            .iter()
            .map(|path| {
                let heads = match replica.heads(path) {
                    Ok(heads) => heads.unwrap_or_default(),
                    Err(e) => {
                        warn!(%path, error = %e, "cannot read a document's heads");
                        Vec::new()
                    }
                };
                let stored = match basis {
                    Some(_) => replica
                        .store()
                        .derived_entry(SUMMARY_KIND, path)
                        .unwrap_or_else(|e| {
                            warn!(%path, error = %e, "cannot read a stored summary");
                            None
                        }),
                    None => None,
                };
                (heads, stored)
            })
            .collect()
    };
    // Outside the lock: decode the stored summaries whose key still matches.
    let candidates: Vec<(&DocPath, &Vec<ChangeHash>, &DerivedEntry)> = chunk
        .iter()
        .zip(&looked_up)
        .filter_map(|(path, (heads, stored))| Some((path, heads, stored.as_ref()?)))
        .collect();
    let decoded = in_parallel(&candidates, workers, |(path, heads, stored)| {
        let basis = basis?;
        if stored.source_key != basis.source_key(path, heads) {
            return None;
        }
        match decode(path, &stored.value) {
            Ok(summary) => Some(summary),
            Err(e) => {
                debug!(%path, error = %e, "stored summary unusable; summarizing again");
                None
            }
        }
    });
    let mut reused: BTreeMap<&DocPath, BuildingSummary> = candidates
        .iter()
        .zip(decoded)
        .filter_map(|((path, _, _), summary)| Some((*path, summary?)))
        .collect();
    let reused_count = reused.len() as u64;
    // The others, on every core: each worker takes what it needs to read one document under
    // the lock (its stored bytes, or a copy of a loaded one: nothing is loaded into the
    // cache), lets go, then loads, summarizes and encodes it. Nothing of this runs on one
    // thread while the others wait, and the lock is held for a few microseconds at a time.
    let now = inner.now_ms();
    let to_compute: Vec<&DocPath> = chunk.iter().filter(|p| !reused.contains_key(p)).collect();
    let fresh: Vec<(DocPath, Option<Computed>)> = in_parallel_owned(to_compute, workers, |path| {
        let read = inner.node.lock_replica().read_detached(path);
        let loaded = match read {
            Ok(Some(read)) => read.load(now).map_err(|e| e.to_string()),
            Ok(None) => return (path.clone(), None),
            Err(e) => Err(e.to_string()),
        };
        let (doc, sight) = match loaded {
            Ok(loaded) => loaded,
            Err(error) => {
                warn!(%path, %error, "cannot load a building document");
                return (path.clone(), None);
            }
        };
        let summary = aggregator
            .summarize_document(path, &doc, &sight)
            .map(|summary| {
                let entry = basis.map(|basis| DerivedEntry {
                    path: path.clone(),
                    source_key: basis.source_key(path, &doc.get_heads()).to_vec(),
                    value: encode(&summary),
                });
                (summary, entry)
            });
        (path.clone(), summary)
    });
    let mut entries = Vec::with_capacity(fresh.len());
    let mut fresh_summaries: BTreeMap<DocPath, BuildingSummary> = BTreeMap::new();
    for (path, summary) in fresh {
        if let Some((summary, entry)) = summary {
            entries.extend(entry);
            fresh_summaries.insert(path, summary);
        }
    }
    store_summaries(inner, entries);
    let computed = fresh_summaries.len() as u64;
    let mut fresh = fresh_summaries;
    // Installed in path order, as a rebuild from every document would.
    let summaries: Vec<BuildingSummary> = chunk
        .iter()
        .filter_map(|path| reused.remove(path).or_else(|| fresh.remove(path)))
        .collect();
    ChunkOutcome {
        reused: reused_count,
        computed,
        summaries,
    }
}

/// Stores new summaries: staged with the node's store writer (committed with whatever else
/// it commits next, no fsync under the replica lock). A failure costs a recomputation at the
/// next start, nothing else, so it is logged and otherwise ignored.
fn store_summaries(inner: &OfficeInner, entries: Vec<DerivedEntry>) {
    if entries.is_empty() {
        return;
    }
    let count = entries.len();
    let stored = inner
        .node
        .lock_replica()
        .store_derived(SUMMARY_KIND, entries);
    if let Err(e) = stored {
        warn!(error = %e, summaries = count, "cannot store building summaries");
    }
}

/// `f` over `items` on up to `workers` threads, results in `items` order.
fn in_parallel<T: Sync, R: Send>(
    items: &[T],
    workers: usize,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    in_parallel_owned(items.iter().collect(), workers, f)
}

/// `f` over `items` (taken by value) on up to `workers` threads, results in `items` order.
fn in_parallel_owned<T: Send, R: Send>(
    items: Vec<T>,
    workers: usize,
    f: impl Fn(T) -> R + Sync,
) -> Vec<R> {
    if workers <= 1 || items.len() < 2 {
        return items.into_iter().map(f).collect();
    }
    let per_worker = items.len().div_ceil(workers);
    let mut parts: Vec<Vec<T>> = Vec::new();
    let mut items = items.into_iter();
    loop {
        let part: Vec<T> = items.by_ref().take(per_worker).collect();
        if part.is_empty() {
            break;
        }
        parts.push(part);
    }
    let f = &f;
    std::thread::scope(|scope| {
        let handles: Vec<_> = parts
            .into_iter()
            .map(|part| scope.spawn(move || part.into_iter().map(f).collect::<Vec<R>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| match handle.join() {
                Ok(results) => results,
                // A panic in the model's reader is a bug; re-raise it where it would have
                // happened without threads.
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// A building document copied out of the replica, with when the office first saw each of
/// its changes (the clock rule's input).
pub(crate) type SeenDocument = (DocPath, automerge::Automerge, FirstSight);

/// A copy of the document at `path` with its first sight as of `now_ms`; `None` when it is
/// not held, or cannot be loaded (logged: one unreadable document does not stop a rebuild, an
/// export or a records page). Called under the replica lock.
pub(crate) fn copy_seen(
    replica: &mut Replica,
    path: &DocPath,
    now_ms: i64,
) -> Option<SeenDocument> {
    let sight = match replica.first_sight(path, now_ms) {
        Ok(sight) => sight?,
        Err(e) => {
            warn!(%path, error = %e, "cannot load a building document");
            return None;
        }
    };
    // Loaded by `first_sight` just above: this copies it out.
    match replica.doc(path) {
        Ok(doc) => Some((path.clone(), doc?.clone(), sight)),
        Err(e) => {
            warn!(%path, error = %e, "cannot load a building document");
            None
        }
    }
}

/// Summaries of the documents `docs` (`None` for one that is not a building of this street),
/// computed on up to `workers` threads, in `docs` order: what a rebuild does with the
/// documents it loads (the tests compare it with a sequential rebuild).
#[cfg(test)]
pub(crate) fn summarize_in_parallel(
    aggregator: &Aggregator,
    docs: &[SeenDocument],
    workers: usize,
) -> Vec<Option<BuildingSummary>> {
    in_parallel(docs, workers, |(path, doc, sight)| {
        aggregator.summarize_document(path, doc, sight)
    })
}

/// [`rebuild`] on a blocking thread, for the async task.
async fn rebuild_off_runtime(inner: &Arc<OfficeInner>) {
    let inner = inner.clone();
    if let Err(e) = tokio::task::spawn_blocking(move || rebuild(&inner)).await {
        warn!(error = %e, "aggregation rebuild failed");
    }
}

/// Folds one changed document into the aggregation. Returns the new summary to store, if the
/// document is a building and the aggregation's plan could be read.
fn update_one(inner: &OfficeInner, path: &DocPath) -> Option<DerivedEntry> {
    let started = Instant::now();
    let now = inner.now_ms();
    let mut replica = inner.node.lock_replica();
    let sight = match replica.first_sight(path, now) {
        Ok(Some(sight)) => sight,
        Ok(None) => return None,
        Err(e) => {
            warn!(%path, error = %e, "cannot load a changed document");
            return None;
        }
    };
    let doc = match replica.doc(path) {
        Ok(Some(doc)) => doc,
        Ok(None) => return None,
        Err(e) => {
            warn!(%path, error = %e, "cannot load a changed document");
            return None;
        }
    };
    let mut agg = inner.aggregator();
    let summary = agg.summarize_document(path, doc, &sight)?;
    let entry = inner.basis().as_ref().map(|basis| DerivedEntry {
        path: path.clone(),
        source_key: basis.source_key(path, &doc.get_heads()).to_vec(),
        value: encode(&summary),
    });
    agg.replace_building(summary);
    drop(agg);
    drop(replica);
    let micros = started.elapsed().as_micros() as u64;
    let c = &inner.counters;
    c.building_updates.fetch_add(1, Ordering::Relaxed);
    c.building_update_micros
        .fetch_add(micros, Ordering::Relaxed);
    c.building_update_max_micros
        .fetch_max(micros, Ordering::Relaxed);
    entry
}

/// Applies a session key replaced in the store while the office runs
/// ([`crate::auth::end_sessions`], `gridsync office end-sessions`): every dashboard session
/// signed with the old key ends within [`crate::auth::SESSION_KEY_CHECK`].
async fn follow_session_key(inner: Arc<OfficeInner>) {
    let mut shutdown = inner.node.shutdown_signal();
    let mut check = tokio::time::interval(crate::auth::SESSION_KEY_CHECK);
    loop {
        tokio::select! {
            _ = check.tick() => {}
            _ = shutdown.changed() => return,
        }
        let stored = crate::auth::stored_session_key(&inner.node.lock_replica());
        if let Some(key) = stored
            && inner.sessions.replace_key(key)
        {
            tracing::info!("the session key was replaced: every dashboard session ended");
        }
    }
}

async fn follow_changes(
    inner: Arc<OfficeInner>,
    mut changes: tokio::sync::broadcast::Receiver<gridsync_node::DocChange>,
) {
    let mut shutdown = inner.node.shutdown_signal();
    let mut round_check = tokio::time::interval(Duration::from_secs(30));
    let plan_path = gridsync_model::plan_path(inner.aggregator().street()).ok();
    loop {
        let mut pending: BTreeSet<DocPath> = BTreeSet::new();
        let mut full = false;
        let note = |change: gridsync_node::DocChange, pending: &mut BTreeSet<DocPath>| {
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
                let changed = {
                    let agg = inner.aggregator();
                    inner.options.round_at(inner.now_ms(), agg.plan()) != agg.round()
                };
                if changed {
                    rebuild_off_runtime(&inner).await;
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
            rebuild_off_runtime(&inner).await;
        } else {
            let mut entries = Vec::new();
            for path in &pending {
                entries.extend(update_one(&inner, path));
                // Let sync sessions and requests in between buildings.
                tokio::task::yield_now().await;
            }
            let version = inner.aggregator().version();
            inner.version.send_replace(version);
            // One transaction for the burst's summaries, off the async threads (it fsyncs).
            if !entries.is_empty() {
                let inner = inner.clone();
                let stored =
                    tokio::task::spawn_blocking(move || store_summaries(&inner, entries)).await;
                if let Err(e) = stored {
                    warn!(error = %e, "storing building summaries failed");
                }
            }
        }
    }
}
