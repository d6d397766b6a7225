//! What a street run is compared by when it is run twice with one seed: the log of every
//! event it handled and a digest of every device's store.
//!
//! Everything a run draws is seeded (the schedule, each segment's loss, each device's record
//! ids and store incarnations) and every clock is the simulation's, so two runs of one seed
//! with the same credentials handle the same events at the same virtual times and leave the
//! same rows in every store. Two things are left out, by design of the cryptography: the
//! bytes of ECDSA signatures (ring draws each signature's nonce from the operating system;
//! their length is fixed, so no size or timing depends on them), which is why the event log
//! records a delivery's length rather than its bytes and the store digest skips the
//! `change_signatures` table; and the credentials themselves, which a test issues once and
//! hands to both runs ([`crate::contact::enroll::StreetCredentials`]).

use sha2::{Digest, Sha256};

use crate::contact::ContactError;
use crate::contact::device::Device;

/// A run's event log and store digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct RunFingerprint {
    /// One line per event handled or record acknowledged, in order.
    #[serde(skip)]
    pub events: Vec<String>,
    /// SHA-256 of the event log.
    pub events_sha256: String,
    /// SHA-256 over every device's store rows (devices in order).
    pub stores_sha256: String,
}

impl RunFingerprint {
    /// The first line where two event logs differ, with its number, for a failure message.
    pub fn first_difference(&self, other: &RunFingerprint) -> Option<String> {
        let n = self
            .events
            .iter()
            .zip(&other.events)
            .position(|(a, b)| a != b)
            .unwrap_or(self.events.len().min(other.events.len()));
        (self.events.len() != other.events.len() || n < self.events.len()).then(|| {
            format!(
                "event {n}: {:?} vs {:?}",
                self.events.get(n),
                other.events.get(n)
            )
        })
    }
}

/// Records events as a run handles them.
#[derive(Debug, Default)]
pub struct EventLog {
    lines: Vec<String>,
}

impl EventLog {
    pub fn push(&mut self, line: String) {
        self.lines.push(line);
    }

    /// The fingerprint of the run: this log and a digest of `devices`' stores.
    pub fn finish(self, devices: &[Device]) -> Result<RunFingerprint, ContactError> {
        let mut events = Sha256::new();
        for line in &self.lines {
            events.update(line.as_bytes());
            events.update(b"\n");
        }
        let mut stores = Sha256::new();
        for device in devices {
            stores.update(device.spec.node_id.as_str().as_bytes());
            crate::check::digest_store(device.replica.store(), &mut stores)?;
        }
        Ok(RunFingerprint {
            events: self.lines,
            events_sha256: hex::encode(events.finalize()),
            stores_sha256: hex::encode(stores.finalize()),
        })
    }
}
