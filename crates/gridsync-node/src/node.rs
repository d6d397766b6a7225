//! A running node: the QUIC endpoint, one task per connection, dialers with backoff, mDNS,
//! the control socket, and a clean shutdown that drains connections and flushes the store.
//!
//! [`run`] is a function of already-bound resources and a shutdown signal (the shape of
//! mini-redis's server): the caller binds and loads, this wires tasks and returns when the
//! node has stopped.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gridsync_net::{NetEndpoint, RevocationList};
use gridsync_proto::{DocPath, LocalIdentity, NodeId};
use rand::Rng;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::connection;
use crate::peers::{FoundBy, PeerTable};
use crate::replica::Replica;

/// How many document-change notices may queue per connection before it falls back to
/// re-offering everything.
const CHANGE_FEED_CAPACITY: usize = 16_384;

/// A document changed: by a local write (`from` is None) or by a peer's message.
#[derive(Debug, Clone)]
pub struct DocChange {
    pub path: DocPath,
    pub from: Option<NodeId>,
}

/// State shared by every task of a running node.
pub struct NodeShared {
    /// The replica; locked briefly by sessions and control requests, never across an await.
    replica: Mutex<Replica>,
    /// Notices of changed documents, fanned out to every connection.
    pub changes: broadcast::Sender<DocChange>,
    pub peers: PeerTable,
    /// This node's identity as the sync engine presents it.
    pub identity: LocalIdentity,
    pub config: NodeConfig,
    pub revocations: RevocationList,
    /// Flips to true once when the node starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Unix milliseconds when the node started.
    pub started_ms: u64,
}

impl NodeShared {
    pub fn lock_replica(&self) -> MutexGuard<'_, Replica> {
        // A panic while holding the lock would be a bug; the replica's state is still
        // consistent (writes are atomic), so keep serving rather than cascade.
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Unix time in milliseconds: the one place the node reads the wall clock for the engine.
pub fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What a caller gets back while the node runs.
pub struct NodeHandle {
    pub shared: Arc<NodeShared>,
    pub local_addr: SocketAddr,
}

/// Starts the node's tasks on an already-bound endpoint and runs until `shutdown_signal`
/// resolves. Returns after connections drained and the store was flushed.
pub async fn run(
    replica: Replica,
    identity: LocalIdentity,
    config: NodeConfig,
    endpoint: NetEndpoint,
    revocations: RevocationList,
    shutdown_signal: impl std::future::Future<Output = ()>,
    on_ready: impl FnOnce(&NodeHandle),
) -> Result<(), crate::NodeError> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let (changes, _) = broadcast::channel(CHANGE_FEED_CAPACITY);
    let local_addr = endpoint.local_addr()?;
    let shared = Arc::new(NodeShared {
        replica: Mutex::new(replica),
        changes,
        peers: PeerTable::default(),
        identity,
        config: config.clone(),
        revocations,
        shutdown: shutdown_rx,
        started_ms: unix_ms(),
    });
    let endpoint = Arc::new(endpoint);
    let mut tasks = JoinSet::new();

    tasks.spawn(accept_loop(shared.clone(), endpoint.clone()));
    for addr in &config.peers {
        tasks.spawn(dial_loop(
            shared.clone(),
            endpoint.clone(),
            *addr,
            FoundBy::Static,
        ));
    }
    let control = crate::control::ControlServer::bind(shared.clone())?;
    tasks.spawn(control.serve());
    if config.mdns {
        tasks.spawn(crate::discovery::discover_and_dial(
            shared.clone(),
            endpoint.clone(),
            local_addr.port(),
        ));
    }

    let handle = NodeHandle {
        shared: shared.clone(),
        local_addr,
    };
    on_ready(&handle);
    info!(addr = %local_addr, node = %shared.identity.node_id, "node running");

    shutdown_signal.await;
    info!("shutting down: closing connections");
    let _ = shutdown_tx.send(true);
    endpoint.close();
    // Give connections a moment to say goodbye, then stop whatever is left.
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(3), drain)
        .await
        .is_err()
    {
        warn!("some tasks did not stop in time; aborting them");
        tasks.abort_all();
    }
    endpoint.wait_idle().await;
    crate::control::remove_socket(&shared);
    // Every acknowledged write was already durable; this just closes the store cleanly.
    drop(shared);
    info!("node stopped");
    Ok(())
}

async fn accept_loop(shared: Arc<NodeShared>, endpoint: Arc<NetEndpoint>) {
    let mut shutdown = shared.shutdown.clone();
    loop {
        let incoming = tokio::select! {
            incoming = endpoint.accept() => incoming,
            _ = shutdown.changed() => return,
        };
        match incoming {
            None => return,
            Some(Ok(link)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    connection::drive(shared, link, FoundBy::Inbound).await;
                });
            }
            Some(Err(e)) => warn!(error = %e, "refused an incoming connection"),
        }
    }
}

/// Keeps a connection to `addr` up: dial, run the session, and on any end wait a capped,
/// jittered, exponentially growing delay before dialing again.
pub(crate) async fn dial_loop(
    shared: Arc<NodeShared>,
    endpoint: Arc<NetEndpoint>,
    addr: SocketAddr,
    found_by: FoundBy,
) {
    let mut shutdown = shared.shutdown.clone();
    let initial = shared.config.backoff_initial();
    let max = shared.config.backoff_max();
    let mut delay = initial;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let started = tokio::time::Instant::now();
        let end = tokio::select! {
            link = endpoint.connect(addr) => match link {
                Ok(link) => Some(connection::drive(shared.clone(), link, found_by).await),
                Err(e) => {
                    tracing::debug!(%addr, error = %e, "dial failed");
                    None
                }
            },
            _ = shutdown.changed() => return,
        };
        if matches!(end, Some(connection::ConnectionEnd::Shutdown)) {
            return;
        }
        // A connection that lasted a while was healthy: start over from the short delay.
        if started.elapsed() > Duration::from_secs(10) {
            delay = initial;
        }
        let jitter = rand::rng().random_range(0.8..1.2);
        let wait = delay.mul_f64(jitter);
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        delay = (delay * 2).min(max);
    }
}
