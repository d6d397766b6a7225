//! Storage caps: what a device may store, and the running estimate of how full it is.

use super::*;

/// A device's storage caps (from the node config) and the running byte estimate.
#[derive(Debug, Default)]
pub struct StorageLimits {
    pub max_documents: Option<usize>,
    pub max_store_bytes: Option<u64>,
    /// Store size on disk at open plus every chunk appended since: cheap to keep, close
    /// enough to warn and refuse on.
    pub(super) approx_bytes: u64,
    /// Whether the "nearing the cap" warning was logged (once per run).
    pub(super) warned: bool,
}

/// Share of a cap past which a warning is logged.
const WARN_AT: f64 = 0.9;

impl Replica {
    /// Sets the storage caps (from the node config).
    pub fn set_limits(&mut self, max_documents: Option<usize>, max_store_bytes: Option<u64>) {
        let approx_bytes = self.store.stats().map(|s| s.file_bytes).unwrap_or(0);
        self.limits = StorageLimits {
            max_documents,
            max_store_bytes,
            approx_bytes,
            warned: false,
        };
        self.check_nearing_caps();
    }

    /// May changes to `path` be stored under the caps? `new_document`: not held yet.
    pub fn may_store(&self, path: &DocPath, new_document: bool) -> bool {
        let _ = path;
        let docs_ok = !new_document
            || self
                .limits
                .max_documents
                .is_none_or(|max| self.held_count() < max);
        let bytes_ok = self
            .limits
            .max_store_bytes
            .is_none_or(|max| self.limits.approx_bytes < max);
        docs_ok && bytes_ok
    }

    /// Logs once when the store passes 90% of a cap.
    pub(super) fn check_nearing_caps(&mut self) {
        // Runs after every append: without caps (most devices) there is nothing to count.
        let no_caps = self.limits.max_documents.is_none() && self.limits.max_store_bytes.is_none();
        if self.limits.warned || no_caps {
            return;
        }
        let docs = self.held_count();
        let near_docs = self
            .limits
            .max_documents
            .is_some_and(|max| docs as f64 >= max as f64 * WARN_AT);
        let near_bytes = self
            .limits
            .max_store_bytes
            .is_some_and(|max| self.limits.approx_bytes as f64 >= max as f64 * WARN_AT);
        if near_docs || near_bytes {
            self.limits.warned = true;
            tracing::warn!(
                documents = docs,
                max_documents = ?self.limits.max_documents,
                bytes = self.limits.approx_bytes,
                max_bytes = ?self.limits.max_store_bytes,
                "storage is nearing this device's cap; past it new data is refused"
            );
        }
    }

    /// Restricts local writes to `scopes` (after installing an identity).
    pub fn set_write_scopes(&mut self, scopes: Option<Scopes>) {
        self.write_scopes = scopes;
    }

    pub(super) fn count_appended(&mut self, bytes: usize) {
        self.limits.approx_bytes += bytes as u64;
        self.check_nearing_caps();
    }

    pub(super) fn held_count(&self) -> usize {
        self.known_heads.len()
            + self
                .docs
                .keys()
                .filter(|p| !self.known_heads.contains_key(*p))
                .count()
    }
}
