//! In-process gridsync nodes for the benchmarks: real QUIC on 127.0.0.1 with mutual TLS
//! under a freshly generated street CA, and durable SQLite stores in a temporary directory.
//!
//! A scenario goes through these steps, each one function or method here:
//!
//! 1. [`BenchStreet::new`]: a street CA and a temporary root directory (removed on drop).
//! 2. [`BenchStreet::enroll`]: credentials for a node id, role and grants (the street-wide
//!    read/carry grants on the plan and revocation list are added, as `gridsync` does), and an
//!    empty replica at `root/<node id>`.
//! 3. Population before start: [`StreetLayout`] names buildings and households the way the
//!    reference street does (18 households a building); [`building_docs`] builds building
//!    documents with visits written through the field model (one change per visit, as a
//!    volunteer logs them); [`store_docs`] stores them with `Store::append_batch` (one
//!    transaction per batch) and loads them into the replica; [`import_plan`] writes the
//!    street plan document when a node must validate its own field writes.
//! 4. [`start_node`] inside a tokio runtime ([`runtime`]): binds a QUIC endpoint on an
//!    ephemeral loopback port and starts the node, dialing the given peers. The node's
//!    address is `RunningNode::local_addr`.
//! 5. [`wait_until`]: polls a condition until it holds or a timeout passes.
//! 6. `RunningNode::shutdown` (or [`stop_all`]) closes connections cleanly; a replica can
//!    then be reopened from disk with [`BenchStreet::reopen`].
//!
//! Generated records are reproducible: record ids derive from the building and visit number
//! ([`visit_id`]) and visit times from the clock at generation, so two runs store documents
//! of the same shape and size; only the CA's keys and the times differ.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use automerge::{Automerge, ChangeHash};
use gridsync_model::{
    DocKind, Household, RecordId, StreetPlan, Visit, VisitOutcome, WriteContext, Zone,
};
use gridsync_net::{NodeCredentials, StreetCa};
use gridsync_node::Replica;
use gridsync_node::node::{RunningNode, unix_ms};
use gridsync_node::ops::FieldWrite;
use gridsync_proto::{Access, DocPath, NodeId, Role, ScopeGrant};

use crate::progress::Progress;

/// The street every benchmark node belongs to.
pub const STREET: &str = "panhuo";

/// Buildings in one micro-grid of the generated street.
pub const BUILDINGS_PER_GRID: usize = 20;

/// Documents stored per `append_batch` transaction by [`store_docs`]: large enough that the
/// fsync per batch costs nothing that matters, small enough to bound the batch's memory.
const STORE_BATCH_DOCS: usize = 500;

/// A street for one scenario: its certificate authority and the temporary directory where
/// every node's store lives. Dropping it removes the directory, so keep it alive until the
/// nodes have shut down.
pub struct BenchStreet {
    ca: StreetCa,
    dir: tempfile::TempDir,
}

/// A node's identity and its (not yet running) replica, as [`BenchStreet::enroll`] makes them.
pub struct Enrolled {
    /// The node id the certificate names.
    pub node_id: NodeId,
    /// Certificate, key and street CA, for [`start_node`].
    pub credentials: NodeCredentials,
    /// The node's durable replica, empty after enrollment; populate it before starting.
    pub replica: Replica,
}

impl BenchStreet {
    /// Generates a street CA and a temporary root directory.
    pub fn new() -> anyhow::Result<BenchStreet> {
        let ca = gridsync_testkit::street_ca(STREET).context("cannot create street CA")?;
        let dir = tempfile::Builder::new()
            .prefix("gridsync-bench-")
            .tempdir()
            .context("cannot create a temporary directory")?;
        Ok(BenchStreet { ca, dir })
    }

    /// The street CA, to issue more credentials or sign revocations.
    pub fn ca(&self) -> &StreetCa {
        &self.ca
    }

    /// The temporary root directory; node `n` keeps its store in `root/n`.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Where node `node_id` keeps its store.
    pub fn node_dir(&self, node_id: &NodeId) -> PathBuf {
        self.root().join(node_id.as_str())
    }

    /// Issues credentials for `name` with `role` and `grants` (plus the street-wide grants
    /// every device gets on the plan and the revocation list), and creates its empty replica.
    /// The replica is not restricted to its write scopes, so a scenario can populate it with
    /// any documents before start (the peers still enforce the certificate's scopes).
    pub fn enroll(
        &self,
        name: &str,
        role: Role,
        grants: &[ScopeGrant],
    ) -> anyhow::Result<Enrolled> {
        let node_id = NodeId::parse(name).with_context(|| format!("bad node id {name:?}"))?;
        let scopes = gridsync_testkit::street_scopes(STREET, grants.to_vec())?;
        let (credentials, replica) =
            gridsync_testkit::enroll(&self.ca, self.root(), name, role, scopes)
                .with_context(|| format!("cannot enroll {name}"))?;
        Ok(Enrolled {
            node_id,
            credentials,
            replica,
        })
    }

    /// Reopens the replica of a node enrolled earlier (after its node shut down), as a
    /// restarted node would.
    pub fn reopen(&self, node_id: &NodeId) -> anyhow::Result<Replica> {
        Replica::open(&self.node_dir(node_id))
            .with_context(|| format!("cannot reopen the replica of {node_id}"))
    }
}

/// A grant of `access` on `prefix` (a document path or path prefix such as `panhuo/grid-001`).
pub fn grant(access: Access, prefix: &str) -> anyhow::Result<ScopeGrant> {
    Ok(ScopeGrant {
        access,
        prefix: DocPath::parse(prefix).with_context(|| format!("bad scope prefix {prefix:?}"))?,
    })
}

/// Write access to the whole street: what the office and a relay-free captain test need.
pub fn street_write() -> ScopeGrant {
    ScopeGrant {
        access: Access::Write,
        // Invariant: STREET is a valid one-segment path.
        prefix: DocPath::parse(STREET).expect("the street name is a valid path"),
    }
}

/// A multi-threaded tokio runtime for the nodes of one scenario (two workers: the machine
/// the figures are quoted for has two cores).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")
}

/// Runs `future` to completion on a fresh [`runtime`].
pub fn block_on<F: Future>(future: F) -> anyhow::Result<F::Output> {
    Ok(runtime()?.block_on(future))
}

/// Starts a node on an ephemeral port of 127.0.0.1 that keeps dialing `peers` (reconnecting
/// after 50-500 ms), without mDNS or control socket (the test kit's loopback node). Must be
/// called inside a tokio runtime.
pub fn start_node(
    credentials: NodeCredentials,
    replica: Replica,
    peers: Vec<SocketAddr>,
) -> anyhow::Result<RunningNode> {
    gridsync_testkit::start_loopback_node(credentials, replica, peers).context("cannot start node")
}

/// Shuts nodes down one after the other (each closes its connections with a goodbye).
pub async fn stop_all(nodes: Vec<RunningNode>) {
    for node in nodes {
        node.shutdown().await;
    }
}

/// Polls `condition` every `interval` until it returns true, and returns how long that took;
/// fails after `timeout` (or as soon as the condition itself fails), naming `what`.
pub async fn wait_until(
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut condition: impl FnMut() -> anyhow::Result<bool>,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    loop {
        if condition()? {
            return Ok(started.elapsed());
        }
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(interval).await;
    }
}

/// How many of `expected`'s documents `node` holds at exactly the expected heads.
pub fn docs_at_heads(node: &RunningNode, expected: &BTreeMap<DocPath, Vec<ChangeHash>>) -> usize {
    let replica = node.handle().lock_replica();
    expected
        .iter()
        .filter(|(path, heads)| replica.known_heads(path).as_ref() == Some(*heads))
        .count()
}

/// The heads of every document, sorted, as [`docs_at_heads`] compares them.
pub fn heads_of(docs: &[(DocPath, Automerge)]) -> BTreeMap<DocPath, Vec<ChangeHash>> {
    docs.iter()
        .map(|(path, doc)| (path.clone(), doc.get_heads()))
        .collect()
}

/// A generated street: `buildings` building documents in micro-grids of
/// [`BUILDINGS_PER_GRID`], each with `units` stairwells of `households_per_unit` households.
///
/// Building `k` is `b-{k:05}` in grid `grid-{k / 20:03}`, its document
/// `panhuo/grid-GGG/b-KKKKK`; its households are `h-{k:05}-{unit}{door}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreetLayout {
    /// Building documents.
    pub buildings: usize,
    /// Stairwells per building (at most 10).
    pub units: usize,
    /// Households per stairwell (at most 10).
    pub households_per_unit: usize,
}

impl StreetLayout {
    /// The reference street's shape (scenario.md): 18 households a building, in 2 units of 9.
    pub fn reference(buildings: usize) -> StreetLayout {
        StreetLayout {
            buildings,
            units: 2,
            households_per_unit: 9,
        }
    }

    /// Households in one building.
    pub fn households_per_building(&self) -> usize {
        self.units * self.households_per_unit
    }

    /// Grid id of building `k`.
    pub fn grid(&self, k: usize) -> String {
        format!("grid-{:03}", k / BUILDINGS_PER_GRID)
    }

    /// Building id of building `k`.
    pub fn building(&self, k: usize) -> String {
        format!("b-{k:05}")
    }

    /// Document path of building `k`.
    pub fn building_path(&self, k: usize) -> anyhow::Result<DocPath> {
        Ok(gridsync_model::building_path(
            STREET,
            &self.grid(k),
            &self.building(k),
        )?)
    }

    /// The `i`-th household of building `k` (wrapping around the building's households), so
    /// consecutive visits walk the building door by door.
    pub fn household(&self, k: usize, i: usize) -> String {
        let n = i % self.households_per_building();
        format!(
            "h-{k:05}-{}{}",
            n / self.households_per_unit,
            n % self.households_per_unit
        )
    }

    /// Every household of the street, for the plan.
    pub fn households(&self) -> Vec<Household> {
        let mut all = Vec::with_capacity(self.buildings * self.households_per_building());
        for k in 0..self.buildings {
            for i in 0..self.households_per_building() {
                all.push(Household {
                    id: self.household(k, i),
                    community: format!("c-{}", k / (BUILDINGS_PER_GRID * 8)),
                    grid: self.grid(k),
                    building: self.building(k),
                    unit: format!("u{}", i / self.households_per_unit),
                    door: format!("room {}", i + 1),
                    residents: 2,
                    zone: Zone::Prevention,
                });
            }
        }
        all
    }

    /// The street plan in memory, to validate writes without a plan document.
    pub fn street_plan(&self) -> StreetPlan {
        StreetPlan::from_households(self.households())
    }

    /// The plan as the CSV file the office imports.
    pub fn plan_csv(&self) -> String {
        let mut csv = gridsync_model::PlanCsv::new();
        for h in self.households() {
            csv.row(gridsync_model::PlanRow {
                household: &h.id,
                community: &h.community,
                grid: &h.grid,
                building: &h.building,
                unit: &h.unit,
                door: &h.door,
                residents: h.residents,
                zone: h.zone.as_str(),
            });
        }
        csv.finish()
    }
}

/// Imports `layout`'s plan into `replica`'s plan document (durably), so that the node can
/// validate its own field writes (`RunningNode::write`).
pub fn import_plan(replica: &mut Replica, layout: &StreetLayout) -> anyhow::Result<()> {
    FieldWrite::PlanImport {
        csv: layout.plan_csv(),
    }
    .apply_now(replica)
    .context("cannot import the plan")?;
    Ok(())
}

/// Gives each of `to` the street plan `from` holds (signed by its importer), as their first
/// sync would.
pub fn copy_plan<'a>(
    from: &mut Replica,
    to: impl IntoIterator<Item = &'a mut Replica>,
) -> anyhow::Result<()> {
    let plan_path = gridsync_model::plan_path(STREET)?;
    let plan_doc = from
        .doc(&plan_path)?
        .context("the replica holds no plan to copy")?
        .clone();
    let signatures = from.signatures_for(&plan_path);
    for replica in to {
        replica.merge_doc(&plan_path, &plan_doc, signatures.clone())?;
    }
    Ok(())
}

/// A deterministic record id for visit `i` of building `k` written at `at_ms`: a ULID whose
/// time part is the visit's time and whose random part encodes (k, i).
pub fn visit_id(k: usize, i: usize, at_ms: i64) -> RecordId {
    let random = ((k as u128) << 32) | i as u128;
    RecordId::from(ulid::Ulid::from_parts(at_ms.max(0) as u64, random))
}

/// The reference street's first `buildings` building documents with `visits_each` visits
/// each, written by the captain `cap-01` (the author the scenarios sync from), with the
/// step announced.
pub fn captain_buildings(
    buildings: usize,
    visits_each: usize,
    progress: &Progress,
) -> anyhow::Result<(NodeId, Vec<(DocPath, Automerge)>)> {
    let layout = StreetLayout::reference(buildings);
    let author = NodeId::parse("cap-01")?;
    progress.step(&format!(
        "building {buildings} documents with {visits_each} visits each"
    ));
    let docs = building_docs(&layout, 0..buildings, visits_each, &author, progress)?;
    Ok((author, docs))
}

/// Builds the documents of buildings `range`, each genesis plus `visits` visits written by
/// `author` through the field model, one change per visit (as a volunteer logs them). Visits
/// walk the building's households in order, a minute apart, ending an hour before now.
pub fn building_docs(
    layout: &StreetLayout,
    range: Range<usize>,
    visits: usize,
    author: &NodeId,
    progress: &Progress,
) -> anyhow::Result<Vec<(DocPath, Automerge)>> {
    let plan = layout.street_plan();
    let now_ms = unix_ms() as i64;
    let first_at = now_ms - 3_600_000 - visits as i64 * 60_000;
    let actor = gridsync_model::actor_for(author);
    let outcomes = [
        VisitOutcome::Contacted,
        VisitOutcome::NotHome,
        VisitOutcome::Contacted,
        VisitOutcome::Refused,
    ];
    let total = range.len() as u64;
    let mut docs = Vec::with_capacity(range.len());
    for (n, k) in range.enumerate() {
        let building = layout.building(k);
        let ctx = WriteContext {
            plan: &plan,
            building: &building,
            now_ms,
        };
        let mut doc = gridsync_model::genesis(DocKind::Building).with_actor(actor.clone());
        for i in 0..visits {
            let at_ms = first_at + i as i64 * 60_000;
            let visit = Visit {
                id: visit_id(k, i, at_ms),
                household: layout.household(k, i),
                volunteer: author.to_string(),
                at_ms,
                outcome: outcomes[i % outcomes.len()],
                people_seen: 2,
                flags: Default::default(),
                needs: Default::default(),
                note: "door-to-door sweep".into(),
            };
            gridsync_model::record_visit(&mut doc, &ctx, &visit)
                .with_context(|| format!("cannot write visit {i} of {building}"))?;
        }
        docs.push((layout.building_path(k)?, doc));
        progress.count("documents built", n as u64 + 1, total);
    }
    Ok(docs)
}

/// Stores `docs` in `replica` (whole saved documents, [`STORE_BATCH_DOCS`] per
/// `append_batch` transaction) and loads them into its memory; returns the bytes stored.
pub fn store_docs(
    replica: &mut Replica,
    docs: &[(DocPath, Automerge)],
    progress: &Progress,
) -> anyhow::Result<u64> {
    let mut bytes = 0u64;
    let total = docs.len() as u64;
    let mut done = 0u64;
    for batch in docs.chunks(STORE_BATCH_DOCS) {
        let items: Vec<gridsync_node::WholeDocument> = batch
            .iter()
            .map(|(path, doc)| gridsync_node::WholeDocument::of(path.clone(), doc))
            .collect();
        bytes += items.iter().map(|d| d.bytes.len() as u64).sum::<u64>();
        replica
            .append_whole_documents(&items)
            .context("cannot store documents")?;
        done += batch.len() as u64;
        progress.count("documents stored", done, total);
    }
    replica.load_all().context("cannot load stored documents")?;
    // Signed by the replica's own device key where it authored them, as its own writes
    // would have been (a peer refuses unsigned changes).
    for (path, _) in docs {
        replica
            .sign_own_changes(path)
            .context("cannot sign stored documents")?;
    }
    Ok(bytes)
}

/// Well-formed visits in `docs` (entries of their `visits` maps).
pub fn count_visits(docs: &[(DocPath, Automerge)]) -> usize {
    docs.iter()
        .map(|(_, doc)| {
            gridsync_model::read::iter_visits(doc)
                .filter(Result::is_ok)
                .count()
        })
        .sum()
}

/// Median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn layout_names_parse_and_the_plan_accepts_its_households() {
        let layout = StreetLayout::reference(25);
        assert_eq!(layout.grid(24), "grid-001");
        assert_eq!(
            layout.building_path(24).unwrap().as_str(),
            "panhuo/grid-001/b-00024"
        );
        assert_eq!(layout.household(3, 19), "h-00003-01");
        let import = gridsync_model::parse_csv(layout.plan_csv().as_bytes()).unwrap();
        assert_eq!(import.households.len(), 25 * 18);
        let plan = layout.street_plan();
        // Two units of nine doors: door 9 and unit 2 do not exist.
        assert_eq!(plan.household("h-00024-09"), None);
        assert_eq!(plan.household("h-00024-20"), None);
        assert_eq!(plan.household("h-00024-18").unwrap().building, "b-00024");
        assert_eq!(plan.household("h-00024-18").unwrap().unit, "u1");
    }

    #[test]
    fn built_documents_hold_their_visits_and_store_durably() {
        let layout = StreetLayout::reference(3);
        let author = NodeId::parse("cap-1").unwrap();
        let quiet = Progress::new(0, true);
        let docs = building_docs(&layout, 1..3, 5, &author, &quiet).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(count_visits(&docs), 10);
        let street = BenchStreet::new().unwrap();
        let enrolled = street
            .enroll("cap-1", Role::Captain, &[street_write()])
            .unwrap();
        let mut replica = enrolled.replica;
        store_docs(&mut replica, &docs, &quiet).unwrap();
        drop(replica);
        let mut reopened = street.reopen(&enrolled.node_id).unwrap();
        assert_eq!(reopened.load_all().unwrap(), 2);
        for (path, doc) in &docs {
            let stored = reopened.doc(path).unwrap().unwrap();
            assert_eq!(stored.get_heads(), doc.get_heads());
        }
    }

    #[test]
    fn visit_ids_are_distinct_and_canonical() {
        let a = visit_id(1, 2, 1_700_000_000_000);
        let b = visit_id(2, 1, 1_700_000_000_000);
        assert_ne!(a, b);
        assert!(RecordId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(&[]).is_nan());
    }
}
