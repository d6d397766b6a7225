//! What every task of a running node shares: the replica behind its lock, the change feed
//! that carries changed documents from one session to the others, the peer table, and the
//! node's identity and configuration. Orchestration (starting and stopping the tasks) is in
//! `node`; other crates see this state only through [`crate::NodeHandle`].

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use gridsync_net::RevocationList;
use gridsync_proto::{DocPath, LocalIdentity, NodeId};
use tokio::sync::{broadcast, watch};
use tracing::warn;

use crate::config::{NodeConfig, StorageCaps};
use crate::conn_slots::ConnectionSlots;
use crate::ops::{FieldWrite, WriteError, WriteReceipt};
use crate::peers::PeerTable;
use crate::replica::{Replica, ReplicaError};
use crate::store_writer::{DurabilityWaiter, WriteTicket};

/// A document changed: by a local write (`from` is None) or by a peer's message.
///
/// Announced as soon as the change is in memory, so that sessions forward it while it is
/// being made durable here; it is durable once the store writer has settled `durable_after`
/// (see [`NodeShared::durability`]).
#[derive(Debug, Clone)]
pub struct DocChange {
    pub path: DocPath,
    pub from: Option<NodeId>,
    /// The store writer's ticket that makes this change durable (`None`: already durable).
    pub durable_after: Option<WriteTicket>,
}

/// State shared by every task of a running node; other crates see it through
/// [`crate::NodeHandle`].
pub(crate) struct NodeShared {
    /// The replica; locked briefly by sessions and control requests, never across an await.
    pub(crate) replica: Mutex<Replica>,
    /// Notices of changed documents, fanned out to every connection.
    pub changes: broadcast::Sender<DocChange>,
    pub peers: PeerTable,
    /// This node's identity as the sync engine presents it.
    pub identity: LocalIdentity,
    pub config: NodeConfig,
    pub revocations: RevocationList,
    /// The street CA certificate, to verify revocations found in the revocation document.
    pub ca_cert_der: Vec<u8>,
    /// Path of the street's revocation document (fixed for the node's life), so telling
    /// whether a change concerns revocations takes no lock.
    pub revocations_path: DocPath,
    /// Flips to true once when the node starts shutting down.
    pub shutdown: watch::Receiver<bool>,
    /// Unix milliseconds when the node started.
    pub started_ms: u64,
    /// The node's wall clock (the replica's): what status times are read from.
    pub clock: crate::clock::Clock,
    /// The node's monotonic clock: what sessions are timed by.
    pub monotonic: crate::clock::Monotonic,
    /// Draws reconnection jitter; seeded from the replica's generator, so a simulation
    /// replays its dials.
    pub jitter: Mutex<rand::rngs::StdRng>,
    /// How long acknowledged local writes took (apply + durable append), for /metrics.
    pub write_timings: WriteTimings,
    /// Tells when staged writes are durable (see [`DocChange::durable_after`]).
    pub durability: DurabilityWaiter,
    /// Links open per peer and in total, against the configured caps.
    pub slots: ConnectionSlots,
    /// The storage caps in force (the configuration's, or a volunteer's defaults).
    pub storage_caps: StorageCaps,
}

/// Running totals of local write latency: count, sum and maximum, in microseconds.
#[derive(Debug, Default)]
pub struct WriteTimings {
    pub count: std::sync::atomic::AtomicU64,
    pub total_micros: std::sync::atomic::AtomicU64,
    pub max_micros: std::sync::atomic::AtomicU64,
}

impl WriteTimings {
    pub fn record(&self, took: Duration) {
        use std::sync::atomic::Ordering::Relaxed;
        let micros = took.as_micros() as u64;
        self.count.fetch_add(1, Relaxed);
        self.total_micros.fetch_add(micros, Relaxed);
        self.max_micros.fetch_max(micros, Relaxed);
    }
}

impl NodeShared {
    /// Applies every valid entry of the revocation document to the revocation list, which
    /// the TLS verifiers consult on each handshake. Returns the newly revoked node ids.
    pub fn refresh_revocations(&self) -> Vec<NodeId> {
        let mut replica = self.lock_replica();
        match replica.doc(&self.revocations_path) {
            Ok(Some(doc)) => {
                let newly =
                    crate::revocations::apply_document(doc, &self.ca_cert_der, &self.revocations);
                for node in &newly {
                    warn!(%node, "node revoked by the street office; refusing it from now on");
                }
                newly
            }
            Ok(None) => Vec::new(),
            Err(e) => {
                warn!(error = %e, "cannot read the revocation document");
                Vec::new()
            }
        }
    }

    /// Applies a field write, announces it to the sessions (which forward it while it is
    /// being made durable) and returns once it is durable: what `gridsync visit add` and
    /// the other field commands do on a running node. Blocks; call it off the async workers.
    pub fn write(&self, write: FieldWrite) -> Result<WriteReceipt, WriteError> {
        let started = std::time::Instant::now();
        let (receipt, ticket) = {
            let mut replica = self.lock_replica();
            let now_ms = replica.clock().unix_ms();
            let receipt = write.apply(&mut replica, now_ms)?;
            (receipt, replica.last_write_ticket())
        };
        self.announce_change(receipt.document.clone(), None, ticket);
        if let Some(ticket) = ticket {
            self.durability.wait(ticket).map_err(ReplicaError::from)?;
        }
        self.write_timings.record(started.elapsed());
        Ok(receipt)
    }

    /// A changed document, to be pushed to every peer but `from`; durable once the store
    /// writer settles `durable_after`. A change to the revocation document is applied to
    /// the revocation list first, so no session forwards to a device it just revoked.
    pub fn announce_change(
        &self,
        path: DocPath,
        from: Option<NodeId>,
        durable_after: Option<WriteTicket>,
    ) {
        if path == self.revocations_path {
            self.refresh_revocations();
        }
        let _ = self.changes.send(DocChange {
            path,
            from,
            durable_after,
        });
    }

    pub fn lock_replica(&self) -> MutexGuard<'_, Replica> {
        // A panic while holding the lock would be a bug; the replica's state is still
        // consistent (writes are atomic), so keep serving rather than cascade.
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }
}
