//! A running node: the QUIC endpoint, one task per connection, dialers with backoff, mDNS,
//! the control socket, and a clean shutdown that drains connections and flushes the store.
//!
//! [`RunningNode::start`] takes already-bound resources (the shape of mini-redis's server):
//! the caller opens the store and binds the endpoint, this wires the tasks; the caller
//! decides when to call [`RunningNode::shutdown`] (on SIGINT/SIGTERM in `gridsync run`).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use gridsync_net::{NetEndpoint, NodeCredentials, RevocationList};
use gridsync_proto::LocalIdentity;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinSet;
use tracing::{info, warn};

use crate::config::NodeConfig;
use crate::conn_slots::ConnectionSlots;
use crate::connection;
use crate::dialer::dial_loop;
use crate::ops::{FieldWrite, WriteError, WriteReceipt};
use crate::peers::{FoundBy, PeerTable};
use crate::replica::{Replica, ReplicaError};
use crate::shared::{NodeShared, WriteTimings};
use crate::status::NodeStatus;
use crate::store_writer::StoreWriter;

/// How many document-change notices may queue per connection before it falls back to
/// re-offering everything.
const CHANGE_FEED_CAPACITY: usize = 16_384;

/// Most documents a running node keeps loaded; the rest stay in the store with their heads
/// indexed. An office's 20,000 buildings take about 45 KiB each in memory when loaded.
pub const CACHED_DOCUMENTS: usize = 4_096;

pub use crate::clock::unix_ms;

/// Everything a node is made of before it starts.
pub struct NodeParts {
    pub replica: Replica,
    pub credentials: NodeCredentials,
    pub config: NodeConfig,
    /// Serve the CLI's control socket in the data directory (off in simulations, where many
    /// nodes share one process and no CLI runs).
    pub control_socket: bool,
}

/// A started node. Dropping it without [`RunningNode::shutdown`] aborts its tasks.
pub struct RunningNode {
    shared: Arc<NodeShared>,
    /// The same state, as other crates see it.
    handle: crate::NodeHandle,
    pub local_addr: SocketAddr,
    endpoint: Arc<NetEndpoint>,
    tasks: JoinSet<()>,
    shutdown_tx: watch::Sender<bool>,
    /// Commits what the replica stages; its thread ends when the replica is dropped.
    _writer: StoreWriter,
}

impl RunningNode {
    /// Starts the node's tasks on an already-bound endpoint: accept loop, a dialer per
    /// configured peer, the control socket, mDNS. Must be called within a tokio runtime.
    pub fn start(
        parts: NodeParts,
        endpoint: NetEndpoint,
        revocations: RevocationList,
    ) -> Result<RunningNode, crate::NodeError> {
        let NodeParts {
            mut replica,
            credentials,
            config,
            control_socket,
        } = parts;
        // Documents load on demand (sessions list them from the heads index), and writes are
        // committed by the store writer instead of under the replica lock.
        let (writer, writer_handle) =
            StoreWriter::start(replica.store()).map_err(ReplicaError::from)?;
        let durability = writer_handle.waiter();
        // A fresh actor for this run, recorded before anything is written under it: this
        // node forwards changes before they are durable (see `Replica::begin_node_incarnation`).
        replica.begin_node_incarnation()?;
        replica.set_signing_key(&credentials.key_der)?;
        replica.use_store_writer(writer_handle);
        replica.set_cache_limit(Some(CACHED_DOCUMENTS));
        let storage_caps = config.storage_caps(credentials.identity.role);
        replica.set_limits(storage_caps.max_documents, storage_caps.max_store_bytes);
        info!(
            max_documents = ?storage_caps.max_documents,
            max_store_bytes = ?storage_caps.max_store_bytes,
            role_default = storage_caps.defaulted,
            max_connections_per_peer = config.max_connections_per_peer,
            max_connections = config.max_connections,
            "caps in force"
        );
        replica.set_trust_root(credentials.ca_cert_der.clone());
        // Before any sync, so that whoever relays this device's changes can vouch for them.
        let clock = replica.clock().clone();
        let now_ms = clock.unix_ms();
        let jitter_seed = replica.draw_seed();
        if replica.publish_device_certificate(&credentials.cert_der, now_ms)? {
            info!(node = %credentials.identity.node_id, "published this device's certificate in the device directory");
        }
        let identity = LocalIdentity {
            node_id: credentials.identity.node_id.clone(),
            role: credentials.identity.role,
            scopes: credentials.identity.scopes.clone(),
        };
        let revocations_path = crate::revocations::revocations_path(replica.street())
            .map_err(ReplicaError::BadStreet)?;
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
            ca_cert_der: credentials.ca_cert_der.clone(),
            revocations_path,
            shutdown: shutdown_rx,
            started_ms: now_ms,
            clock: clock.clone(),
            monotonic: crate::clock::Monotonic::start(),
            jitter: Mutex::new(rand::SeedableRng::seed_from_u64(jitter_seed)),
            write_timings: WriteTimings::default(),
            durability,
            slots: ConnectionSlots::new(config.max_connections_per_peer, config.max_connections),
            storage_caps,
        });
        shared.refresh_revocations();
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
        if control_socket {
            let control = crate::control::ControlServer::bind(shared.clone())?;
            tasks.spawn(control.serve());
        }
        if config.mdns {
            tasks.spawn(crate::discovery::discover_and_dial(
                shared.clone(),
                endpoint.clone(),
                local_addr.port(),
            ));
        }
        info!(addr = %local_addr, node = %shared.identity.node_id, "node running");
        Ok(RunningNode {
            handle: crate::NodeHandle::new(shared.clone()),
            shared,
            local_addr,
            endpoint,
            tasks,
            shutdown_tx,
            _writer: writer,
        })
    }

    /// A handle on this node for other crates (the office, simulations, benchmarks): it
    /// stays valid after the node shut down, with nothing more happening.
    pub fn handle(&self) -> &crate::NodeHandle {
        &self.handle
    }

    /// Applies a field write on this node, pushes it to connected peers and returns once it
    /// is durable (see `NodeShared::write`).
    pub fn write(&self, write: FieldWrite) -> Result<WriteReceipt, WriteError> {
        self.shared.write(write)
    }

    pub fn status(&self) -> NodeStatus {
        NodeStatus::collect(&self.shared)
    }

    /// Stops the node: closes connections with a goodbye, stops the tasks, removes the
    /// control socket. Every acknowledged write was already durable.
    pub async fn shutdown(mut self) {
        info!("shutting down: closing connections");
        let _ = self.shutdown_tx.send(true);
        self.endpoint.close();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(Duration::from_secs(3), drain)
            .await
            .is_err()
        {
            warn!("some tasks did not stop in time; aborting them");
            self.tasks.abort_all();
        }
        tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle())
            .await
            .ok();
        // Everything staged (received changes, sync states) is committed before stopping.
        let last = self.shared.lock_replica().last_write_ticket();
        if let Some(ticket) = last {
            let durability = self.shared.durability.clone();
            let _ = tokio::task::spawn_blocking(move || durability.wait(ticket)).await;
        }
        crate::control::remove_socket(&self.shared);
        info!("node stopped");
    }
}

/// Accepts connections until shutdown, one task each, then waits for those tasks: they see
/// the same shutdown signal and close their sessions, so [`RunningNode::shutdown`] (which
/// waits for this loop) waits for every connection too.
async fn accept_loop(shared: Arc<NodeShared>, endpoint: Arc<NetEndpoint>) {
    let mut shutdown = shared.shutdown.clone();
    let mut connections = JoinSet::new();
    loop {
        // Reap finished connections so the set holds only live ones (without racing the
        // accept below against them).
        while connections.try_join_next().is_some() {}
        // Biased (shutdown first) so that a simulated run is reproducible.
        let incoming = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            incoming = endpoint.accept() => incoming,
        };
        match incoming {
            None => break,
            Some(Ok(link)) => {
                let shared = shared.clone();
                connections.spawn(async move {
                    connection::drive(shared, link, FoundBy::Inbound).await;
                });
            }
            Some(Err(e)) => warn!(error = %e, "refused an incoming connection"),
        }
    }
    while connections.join_next().await.is_some() {}
}
