//! [`SimWorld`]: builds a turmoil simulation of gridsync nodes, drives a fault schedule with
//! message loss while volunteers write, heals the network, and runs until every replica
//! agrees and holds every acknowledged record. Then it checks the same again on what is
//! durable on disk.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use gridsync_node::Replica;
use gridsync_node::clock::{Clock, Sources};
use gridsync_node::ops::{FieldWrite, plan_doc_path};
use gridsync_proto::NodeId;
use tempfile::TempDir;

use crate::SimError;
use crate::check::{ReplicaSnapshot, check_acknowledged, check_converged};
use crate::ledger::{AckLedger, AckedWrite};
use crate::nodes::faults::{Fault, FaultSchedule};
use crate::nodes::host::{EPOCH_MS, HostContext, VisitWorkload, run_host};
use crate::nodes::live::LiveNodes;
use crate::nodes::plan::SyntheticPlan;
use crate::nodes::street::{NodeSpec, SimStreet};

/// Knobs of one simulation run.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seeds turmoil (latency, loss, delivery order), quinn, and the workloads.
    pub seed: u64,
    /// Simulated time per step. Smaller is finer-grained and slower to run.
    pub tick: Duration,
    /// Chance that a datagram starts a loss burst while chaos lasts (turmoil's `fail_rate`
    /// with `repair_rate` 1: the datagram and whatever is in flight on its link are lost,
    /// and the next datagram repairs the link). 0 after healing.
    pub loss: f64,
    /// One-way latency range of every link.
    pub latency: (Duration, Duration),
    /// How long after healing the replicas have to agree.
    pub converge_within: Duration,
    /// How often (simulated) the driver compares the live replicas after healing.
    pub check_every: Duration,
    /// Reconnect backoff of every node.
    pub backoff: (Duration, Duration),
}

impl SimConfig {
    /// Defaults for `seed`: 1 ms ticks, 20 % loss, 1-40 ms latency, 3 minutes to converge.
    pub fn new(seed: u64) -> SimConfig {
        SimConfig {
            seed,
            tick: Duration::from_millis(1),
            loss: 0.2,
            latency: (Duration::from_millis(1), Duration::from_millis(40)),
            converge_within: Duration::from_secs(180),
            check_every: Duration::from_secs(1),
            backoff: (Duration::from_millis(250), Duration::from_secs(4)),
        }
    }
}

/// A failed run, with the seed that reproduces its schedule.
#[derive(Debug, thiserror::Error)]
#[error(
    "simulation with seed {seed} failed {phase}: {message} (rerun with GRIDSYNC_SIM_SEED={seed})"
)]
pub struct SimFailure {
    pub seed: u64,
    /// When it failed: "during chaos", "while converging", "on the disk check".
    pub phase: &'static str,
    pub message: String,
}

/// What a successful run showed.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub seed: u64,
    /// Faults applied (partitions, repairs, crashes, restarts).
    pub faults_applied: usize,
    /// Simulated time from the start to healing.
    pub chaos: Duration,
    /// Simulated time from healing until the live replicas agreed.
    pub converged_after: Duration,
    /// Every acknowledged write.
    pub acked: Vec<AckedWrite>,
    /// The replicas as reopened from disk after the run.
    pub replicas: BTreeMap<String, ReplicaSnapshot>,
    /// SHA-256 over every host's store rows (hosts in name order, signatures left out):
    /// equal for two runs of one seed on one street.
    pub stores_sha256: String,
    /// Real time the run took.
    pub wall: Duration,
}

impl std::fmt::Display for RunReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let docs: usize = self.replicas.values().map(|r| r.docs.len()).sum();
        write!(
            f,
            "seed {}: {} faults in {:?} of chaos, {} acknowledged writes, converged {:?} after \
             healing, {} documents across {} replicas, {:?} wall",
            self.seed,
            self.faults_applied,
            self.chaos,
            self.acked.len(),
            self.converged_after,
            docs,
            self.replicas.len(),
            self.wall
        )
    }
}

/// One node of the world: its (re)start context and its data directory.
struct SimNode {
    ctx: Arc<HostContext>,
    /// Owns the data directory; removed when the world is dropped.
    _dir: TempDir,
}

/// A set of gridsync nodes about to be simulated.
pub struct SimWorld {
    config: SimConfig,
    street: Arc<SimStreet>,
    nodes: BTreeMap<String, SimNode>,
    /// Pairs of hosts partitioned for the whole run (healing does not join them).
    kept_apart: Vec<(String, String)>,
    ledger: AckLedger,
    live: LiveNodes,
    writes_open: Arc<AtomicBool>,
}

impl std::fmt::Debug for SimWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimWorld")
            .field("seed", &self.config.seed)
            .field("nodes", &self.nodes.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl SimWorld {
    /// A world on a street laid out as `plan`, with a fresh street CA.
    pub fn new(config: SimConfig, plan: SyntheticPlan) -> Result<SimWorld, SimError> {
        Ok(SimWorld::on_street(config, Arc::new(SimStreet::new(plan)?)))
    }

    /// A world on `street`, whose CA issued each node's credentials once: two worlds on one
    /// street give their nodes the same keys and certificates (a seed run twice is then
    /// comparable).
    pub fn on_street(config: SimConfig, street: Arc<SimStreet>) -> SimWorld {
        SimWorld {
            config,
            street,
            nodes: BTreeMap::new(),
            kept_apart: Vec::new(),
            ledger: AckLedger::default(),
            live: LiveNodes::default(),
            writes_open: Arc::new(AtomicBool::new(true)),
        }
    }

    /// The street plan of this world.
    pub fn plan(&self) -> &SyntheticPlan {
        &self.street.plan
    }

    /// Adds a node (enrolled for its role, with an empty data directory); `visits` makes a
    /// volunteer log visits.
    pub fn add_node(
        &mut self,
        spec: NodeSpec,
        visits: Option<VisitWorkload>,
    ) -> Result<(), SimError> {
        if self.nodes.contains_key(&spec.host) {
            return Err(SimError::DuplicateHost(spec.host));
        }
        let dir = tempfile::Builder::new()
            .prefix(&format!("gs-sim-{}-", spec.host))
            .tempdir()?;
        let ctx = HostContext {
            credentials: self.street.credentials(&spec)?,
            dir: dir.path().join("node"),
            street: self.street.plan.street.clone(),
            plan_csv: self.street.plan.csv(),
            visits,
            ledger: self.ledger.clone(),
            live: self.live.clone(),
            writes_open: self.writes_open.clone(),
            seed: self.config.seed,
            incarnation: AtomicU32::new(0),
            backoff_initial_ms: self.config.backoff.0.as_millis() as u64,
            backoff_max_ms: self.config.backoff.1.as_millis() as u64,
            spec: spec.clone(),
        };
        self.nodes.insert(
            spec.host.clone(),
            SimNode {
                ctx: Arc::new(ctx),
                _dir: dir,
            },
        );
        Ok(())
    }

    /// Partitions `a` and `b` for the whole run, healing included.
    pub fn keep_apart(&mut self, a: &str, b: &str) {
        self.kept_apart.push((a.to_owned(), b.to_owned()));
    }

    /// Gives every node the street plan before it starts, as if installed from a file at
    /// enrollment: one plan document, made once by the office's actor, merged into each
    /// replica. Call after adding the nodes.
    pub fn preload_plan(&mut self) -> Result<(), SimError> {
        let scratch = tempfile::tempdir()?;
        let office = NodeId::parse("office").map_err(|e| SimError::BadName(e.to_string()))?;
        // Seeded and dated at simulated time zero, so every run of a seed makes the same
        // plan document.
        let seeded = |n: u64| Sources::seeded(Clock::manual(EPOCH_MS), self.config.seed ^ n);
        let mut source =
            Replica::init_with(scratch.path(), &office, &self.street.plan.street, seeded(0))?;
        // The plan is the office's: signed with its key, so every device can relay it.
        if let Some(office_node) = self.nodes.values().find(|n| n.ctx.spec.node_id == office) {
            source.set_signing_key(&office_node.ctx.credentials.key_der)?;
        }
        FieldWrite::PlanImport {
            csv: self.street.plan.csv(),
        }
        .apply(&mut source, EPOCH_MS)
        .map_err(|e| SimError::Plan(e.to_string()))?;
        let path = plan_doc_path(&source).map_err(|e| SimError::Plan(e.to_string()))?;
        let plan_doc = source
            .doc(&path)?
            .cloned()
            .ok_or_else(|| SimError::Plan("the import wrote no plan document".into()))?;
        let signed_heads = source.signatures_for(&path);
        for (n, node) in (1..).zip(self.nodes.values()) {
            let ctx = &node.ctx;
            let mut replica =
                Replica::init_with(&ctx.dir, &ctx.spec.node_id, &ctx.street, seeded(n))?;
            replica.merge_doc(&path, &plan_doc, signed_heads.clone())?;
        }
        Ok(())
    }

    /// The acknowledged writes so far.
    pub fn ledger(&self) -> &AckLedger {
        &self.ledger
    }

    /// SHA-256 over the rows of every host's store, hosts in name order.
    fn stores_digest(&self) -> Result<String, gridsync_store::StoreError> {
        use sha2::Digest as _;
        let mut digest = sha2::Sha256::new();
        for (host, (dir, _)) in self.data_dirs() {
            digest.update(host.as_bytes());
            let store = gridsync_store::Store::open(&dir)?;
            crate::check::digest_store(&store, &mut digest)?;
        }
        Ok(hex::encode(digest.finalize()))
    }

    fn data_dirs(&self) -> BTreeMap<String, (PathBuf, gridsync_proto::Scopes)> {
        self.nodes
            .iter()
            .map(|(host, node)| {
                let scopes = node.ctx.credentials.identity.scopes.clone();
                (host.clone(), (node.ctx.dir.clone(), scopes))
            })
            .collect()
    }

    /// Runs the world: `schedule` and message loss for `chaos` of simulated time while
    /// volunteers write; then heals (stops writes, ends loss, repairs links, restarts crashed
    /// hosts) and steps until the live replicas agree and hold every acknowledged record;
    /// then reopens every store from disk and checks the same there.
    pub fn run(self, schedule: &FaultSchedule, chaos: Duration) -> Result<RunReport, SimFailure> {
        let started = Instant::now();
        let seed = self.config.seed;
        let fail = |phase: &'static str, message: String| SimFailure {
            seed,
            phase,
            message,
        };
        for (host, node) in &self.nodes {
            for peer in &node.ctx.spec.dials {
                if !self.nodes.contains_key(peer) {
                    let e = SimError::UnknownPeer {
                        host: host.clone(),
                        peer: peer.clone(),
                    };
                    return Err(fail("to start", e.to_string()));
                }
            }
        }

        let mut sim = turmoil::Builder::new()
            .rng_seed(seed)
            .tick_duration(self.config.tick)
            .simulation_duration(chaos + self.config.converge_within + Duration::from_secs(60))
            .min_message_latency(self.config.latency.0)
            .max_message_latency(self.config.latency.1)
            .fail_rate(self.config.loss)
            .repair_rate(1.0)
            .udp_capacity(4096)
            .build();
        for (host, node) in &self.nodes {
            let ctx = node.ctx.clone();
            sim.host(host.as_str(), move || {
                let ctx = ctx.clone();
                async move {
                    run_host(ctx)
                        .await
                        .map_err(|e| Box::new(e) as Box<dyn std::error::Error>)
                }
            });
        }
        for (a, b) in &self.kept_apart {
            sim.partition(a.as_str(), b.as_str());
        }

        // Chaos: faults on schedule, loss on every link, volunteers writing.
        let mut faults = schedule.faults.iter().peekable();
        let mut crashed: BTreeSet<String> = BTreeSet::new();
        let mut partitioned: BTreeSet<(String, String)> = BTreeSet::new();
        let mut faults_applied = 0;
        while sim.elapsed() < chaos {
            while let Some(scheduled) = faults.next_if(|f| f.at <= sim.elapsed()) {
                faults_applied += 1;
                match &scheduled.fault {
                    Fault::Partition(a, b) => {
                        sim.partition(a.as_str(), b.as_str());
                        partitioned.insert((a.clone(), b.clone()));
                    }
                    Fault::Repair(a, b) => {
                        sim.repair(a.as_str(), b.as_str());
                        partitioned.remove(&(a.clone(), b.clone()));
                    }
                    Fault::Crash(host) => {
                        sim.crash(host.as_str());
                        crashed.insert(host.clone());
                    }
                    Fault::Restart(host) => {
                        sim.bounce(host.as_str());
                        crashed.remove(host);
                    }
                }
                tracing::info!(at = ?sim.elapsed(), fault = ?scheduled.fault, "fault");
            }
            sim.step()
                .map_err(|e| fail("during chaos", e.to_string()))?;
        }

        // Heal.
        self.writes_open.store(false, Ordering::Relaxed);
        sim.set_fail_rate(0.0);
        for (a, b) in &partitioned {
            sim.repair(a.as_str(), b.as_str());
        }
        for host in &crashed {
            sim.bounce(host.as_str());
        }
        let healed_at = sim.elapsed();
        tracing::info!(at = ?healed_at, "healed");

        // Converge.
        let mut next_check = healed_at;
        let converged_after = loop {
            sim.step()
                .map_err(|e| fail("while converging", e.to_string()))?;
            let now = sim.elapsed();
            if now < next_check {
                continue;
            }
            next_check = now + self.config.check_every;
            let replicas = self.live.snapshots();
            let mut divergences = check_converged(&replicas);
            divergences.extend(check_acknowledged(&self.ledger.entries(), &replicas));
            let all_running = replicas.len() == self.nodes.len();
            if all_running && divergences.is_empty() {
                break now - healed_at;
            }
            if now - healed_at > self.config.converge_within {
                let message = format!(
                    "no convergence {:?} after healing; running: {:?}; {}",
                    self.config.converge_within,
                    self.live.hosts(),
                    crate::check::describe(&divergences)
                );
                return Err(fail("while converging", message));
            }
        };
        drop(sim);

        // Digested before the check reopens them (opening a replica starts an incarnation).
        let stores_sha256 = self.stores_digest().map_err(|e| {
            fail(
                "on the disk check",
                format!("cannot digest the stores: {e}"),
            )
        })?;
        // What is durable must agree too: reopen every store.
        let mut replicas = BTreeMap::new();
        for (host, (dir, scopes)) in self.data_dirs() {
            let snapshot = ReplicaSnapshot::from_disk(scopes, &dir)
                .map_err(|e| fail("on the disk check", format!("{host}: {e}")))?;
            replicas.insert(host, snapshot);
        }
        let acked = self.ledger.entries();
        let mut divergences = check_converged(&replicas);
        divergences.extend(check_acknowledged(&acked, &replicas));
        if !divergences.is_empty() {
            return Err(fail(
                "on the disk check",
                crate::check::describe(&divergences),
            ));
        }
        Ok(RunReport {
            seed,
            faults_applied,
            chaos,
            converged_after,
            acked,
            replicas,
            stores_sha256,
            wall: started.elapsed(),
        })
    }
}
