//! The nodes currently running in a simulation, so the driver can look into their replicas
//! between simulation steps. A host registers its node once started; the registration is
//! withdrawn when the host's software is dropped (a crash), so a crashed node's stale
//! in-memory state is never mistaken for a live one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use gridsync_node::NodeHandle;

use crate::check::ReplicaSnapshot;

/// Host name to the running node's shared state.
#[derive(Clone, Default)]
pub struct LiveNodes {
    nodes: Arc<Mutex<BTreeMap<String, NodeHandle>>>,
}

impl std::fmt::Debug for LiveNodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.hosts()).finish()
    }
}

impl LiveNodes {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, NodeHandle>> {
        // Nothing panics while holding this lock; recover the data should it ever be poisoned.
        self.nodes.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers `host`'s running node until the returned registration is dropped.
    pub fn register(&self, host: &str, shared: NodeHandle) -> LiveRegistration {
        self.lock().insert(host.to_owned(), shared.clone());
        LiveRegistration {
            nodes: self.clone(),
            host: host.to_owned(),
            shared,
        }
    }

    /// Hosts with a running node.
    pub fn hosts(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// A snapshot of every running node's in-memory replica.
    pub fn snapshots(&self) -> BTreeMap<String, ReplicaSnapshot> {
        let nodes: Vec<(String, NodeHandle)> = self
            .lock()
            .iter()
            .map(|(host, shared)| (host.clone(), shared.clone()))
            .collect();
        nodes
            .into_iter()
            .map(|(host, shared)| {
                let mut replica = shared.lock_replica();
                // A running node loads documents on demand; the check compares all of them.
                if let Err(error) = replica.load_all() {
                    tracing::warn!(%error, "cannot load every document for the check");
                }
                let snapshot =
                    ReplicaSnapshot::of(shared.identity().scopes.clone(), replica.loaded_docs());
                (host, snapshot)
            })
            .collect()
    }
}

/// Keeps a node listed in [`LiveNodes`] while the host's software runs.
pub struct LiveRegistration {
    nodes: LiveNodes,
    host: String,
    shared: NodeHandle,
}

impl Drop for LiveRegistration {
    fn drop(&mut self) {
        let mut nodes = self.nodes.lock();
        // Only withdraw our own incarnation: a restarted host may have registered anew.
        if nodes
            .get(&self.host)
            .is_some_and(|s| s.is_same_node(&self.shared))
        {
            nodes.remove(&self.host);
        }
    }
}
