//! The software a turmoil host runs: one gridsync node and its role's workload.
//!
//! [`run_host`] is called afresh each time the host starts (first start and every restart
//! after a crash). It reopens the node's data directory, binds quinn to turmoil's UDP, starts
//! the node's tasks, and then does what the role does: the office imports the street plan
//! (once: it is durable), a volunteer logs a visit every few seconds while writes are open,
//! and a captain only relays.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use gridsync_net::{NetEndpoint, NodeCredentials, RevocationList};
use gridsync_node::clock::{Clock, Sources};
use gridsync_node::node::{NodeParts, RunningNode};
use gridsync_node::ops::{FieldWrite, WriteError};
use gridsync_node::{NodeConfig, Replica, ReplicaError};
use gridsync_store::StoreError;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::ledger::{AckLedger, AckedWrite};
use crate::nodes::faults::between;
use crate::nodes::live::LiveNodes;
use crate::nodes::street::{NodeRole, NodeSpec};

/// The UDP port every simulated node listens on (each host has its own address).
pub const PORT: u16 = 7700;

/// What a volunteer does while writes are open.
#[derive(Debug, Clone)]
pub struct VisitWorkload {
    /// Households the volunteer visits (cycled through in a seeded random order).
    pub households: Vec<String>,
    /// Time between two visits, drawn uniformly from this range.
    pub every: (Duration, Duration),
    /// Stop after this many acknowledged visits (across restarts); `None` for no limit.
    pub limit: Option<usize>,
}

/// Everything a host needs to (re)start its node; shared by all its incarnations.
#[derive(Debug)]
pub struct HostContext {
    pub spec: NodeSpec,
    pub credentials: NodeCredentials,
    /// The node's data directory; survives crashes.
    pub dir: PathBuf,
    pub street: String,
    /// The plan CSV the office imports.
    pub plan_csv: String,
    /// Set for volunteers.
    pub visits: Option<VisitWorkload>,
    pub ledger: AckLedger,
    pub live: LiveNodes,
    /// Volunteers write only while this is set; the driver clears it to let the network
    /// settle.
    pub writes_open: Arc<AtomicBool>,
    /// The simulation seed, mixed into every seeded choice of this host.
    pub seed: u64,
    /// Counts starts, so that each incarnation draws fresh (but seeded) randomness.
    pub incarnation: AtomicU32,
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
}

/// Why a host's software stopped with an error (which fails the simulation).
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{host}: cannot open the replica: {source}")]
    Replica {
        host: String,
        source: Box<ReplicaError>,
    },
    #[error("{host}: cannot bind: {source}")]
    Bind {
        host: String,
        source: Box<gridsync_net::NetError>,
    },
    #[error("{host}: cannot start the node: {source}")]
    Start {
        host: String,
        source: Box<gridsync_node::NodeError>,
    },
    #[error("{host}: write refused: {source}")]
    Write {
        host: String,
        source: Box<WriteError>,
    },
}

/// 32 bytes of seed for quinn, from the simulation seed, the host and its incarnation.
fn quinn_seed(seed: u64, host: &str, incarnation: u32) -> [u8; 32] {
    let mut rng = StdRng::seed_from_u64(mix(seed, host, incarnation));
    rng.random()
}

/// A per-host, per-incarnation seed (FNV-1a over the host name, mixed with the rest).
fn mix(seed: u64, host: &str, incarnation: u32) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in host.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash ^ seed.rotate_left(17) ^ (u64::from(incarnation) << 48)
}

/// Unix milliseconds of simulated time zero: records must be dated after 2020.
pub const EPOCH_MS: u64 = 1_780_000_000_000;

/// What a host's replica reads time and draws randomness from: turmoil's simulated time, and
/// a generator seeded by the simulation seed, the host and its incarnation. So a rerun of a
/// seed writes the same records under the same actors at the same times.
fn sources(ctx: &HostContext, incarnation: u32) -> Sources {
    let clock = Clock::from_fn(|| EPOCH_MS + turmoil::elapsed().as_millis() as u64);
    Sources::seeded(
        clock,
        mix(ctx.seed, &ctx.spec.host, incarnation) ^ 0x0072_6570_6c69_6361,
    )
}

fn open_or_init(ctx: &HostContext, incarnation: u32) -> Result<Replica, Box<ReplicaError>> {
    let opened = match Replica::open_with(&ctx.dir, sources(ctx, incarnation)) {
        Err(ReplicaError::Store(StoreError::Missing(_))) => Replica::init_with(
            &ctx.dir,
            &ctx.spec.node_id,
            &ctx.street,
            sources(ctx, incarnation),
        ),
        other => other,
    };
    opened.map_err(Box::new)
}

/// Runs one incarnation of the host's software until the host is crashed (the future is
/// dropped) or something fails.
pub async fn run_host(ctx: Arc<HostContext>) -> Result<(), HostError> {
    let host = ctx.spec.host.clone();
    let incarnation = ctx.incarnation.fetch_add(1, Ordering::Relaxed);
    let replica = open_or_init(&ctx, incarnation).map_err(|source| HostError::Replica {
        host: host.clone(),
        source,
    })?;
    let listen = SocketAddr::from(([0, 0, 0, 0], PORT));
    let revocations = RevocationList::new();
    let endpoint = NetEndpoint::bind_turmoil(
        listen,
        &ctx.credentials,
        revocations.clone(),
        quinn_seed(ctx.seed, &host, incarnation),
    )
    .await
    .map_err(|source| HostError::Bind {
        host: host.clone(),
        source: Box::new(source),
    })?;
    let config = NodeConfig {
        listen,
        peers: ctx
            .spec
            .dials
            .iter()
            .map(|peer| SocketAddr::new(turmoil::lookup(peer.as_str()), PORT))
            .collect(),
        mdns: false,
        backoff_initial_ms: ctx.backoff_initial_ms,
        backoff_max_ms: ctx.backoff_max_ms,
        http: None,
        max_documents: None,
        max_store_bytes: None,
        ..NodeConfig::default()
    };
    let parts = NodeParts {
        replica,
        credentials: ctx.credentials.clone(),
        config,
        control_socket: false,
    };
    let node =
        RunningNode::start(parts, endpoint, revocations).map_err(|source| HostError::Start {
            host: host.clone(),
            source: Box::new(source),
        })?;
    let _registration = ctx.live.register(&host, node.handle().clone());
    tracing::info!(%host, incarnation, "node started");

    match ctx.spec.role {
        NodeRole::Office => import_plan_once(&ctx, &node)?,
        NodeRole::Captain { .. } => {}
        NodeRole::Volunteer { .. } => {
            if let Some(workload) = &ctx.visits {
                log_visits(&ctx, &node, workload, incarnation).await?;
            }
        }
    }
    // The node runs until the host is crashed or the simulation ends.
    std::future::pending::<()>().await;
    Ok(())
}

/// The office imports the plan on its first start; after a restart it is already durable.
fn import_plan_once(ctx: &HostContext, node: &RunningNode) -> Result<(), HostError> {
    let has_plan = {
        let mut replica = node.handle().lock_replica();
        replica.street_plan().ok().flatten().is_some()
    };
    if has_plan {
        return Ok(());
    }
    node.write(FieldWrite::PlanImport {
        csv: ctx.plan_csv.clone(),
    })
    .map_err(|source| HostError::Write {
        host: ctx.spec.host.clone(),
        source: Box::new(source),
    })?;
    Ok(())
}

/// Logs a visit every few seconds while writes are open. Before the plan has reached the
/// volunteer there is nothing to visit: such a refused write is not acknowledged and not an
/// error. Any other refusal fails the simulation.
async fn log_visits(
    ctx: &HostContext,
    node: &RunningNode,
    workload: &VisitWorkload,
    incarnation: u32,
) -> Result<(), HostError> {
    let host = &ctx.spec.host;
    let mut rng = StdRng::seed_from_u64(mix(ctx.seed, host, incarnation) ^ 0x0076_6973_6974);
    loop {
        tokio::time::sleep(between(&mut rng, workload.every)).await;
        if !ctx.writes_open.load(Ordering::Relaxed) {
            return Ok(());
        }
        if workload
            .limit
            .is_some_and(|limit| ctx.ledger.count_by(host) >= limit)
        {
            return Ok(());
        }
        let Some(household) = workload
            .households
            .get(rng.random_range(0..workload.households.len().max(1)))
        else {
            return Ok(());
        };
        let write = FieldWrite::Visit {
            household: household.clone(),
            outcome: ["contacted", "not-home", "refused"][rng.random_range(0..3)].into(),
            people: rng.random_range(0..5),
            flags: Vec::new(),
            needs: Vec::new(),
            note: None,
            volunteer: None,
            at_ms: None,
        };
        match node.write(write) {
            Ok(receipt) => {
                if let Some(record_id) = receipt.record_id {
                    ctx.ledger.record(AckedWrite {
                        host: host.clone(),
                        document: receipt.document,
                        record_id,
                        at: turmoil::elapsed(),
                    });
                }
            }
            Err(WriteError::NoPlan) => tracing::debug!(%host, "no plan yet; visit not logged"),
            Err(source) => {
                return Err(HostError::Write {
                    host: host.clone(),
                    source: Box::new(source),
                });
            }
        }
    }
}
