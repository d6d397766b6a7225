//! The ledger of acknowledged writes: a write enters it only after the node returned its
//! receipt (the change was durable), so every entry must survive crashes and reach every
//! replica that may hold its document.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use gridsync_proto::DocPath;

/// One write a node acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckedWrite {
    /// Host name of the node that acknowledged it.
    pub host: String,
    /// The document written.
    pub document: DocPath,
    /// The record id the node returned.
    pub record_id: String,
    /// Simulated time of the acknowledgement.
    pub at: Duration,
}

/// Shared between the hosts (which append) and the driver (which checks).
#[derive(Debug, Clone, Default)]
pub struct AckLedger {
    entries: Arc<Mutex<Vec<AckedWrite>>>,
}

impl AckLedger {
    pub fn record(&self, write: AckedWrite) {
        // Nothing panics while holding this lock; recover the data should it ever be poisoned.
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries.push(write);
    }

    /// Every acknowledged write, in acknowledgement order.
    pub fn entries(&self) -> Vec<AckedWrite> {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many writes `host` acknowledged.
    pub fn count_by(&self, host: &str) -> usize {
        self.entries
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|w| w.host == host)
            .count()
    }
}
