//! One simulated device: a real [`Replica`] in its own data directory, its identity, and the
//! sync sessions of the contacts it is in right now.
//!
//! The replica is the node's: field writes go through [`FieldWrite::apply`] (durable on
//! return), changes from peers are persisted with their provenance, and a restart drops the
//! replica and every session and reopens the directory, keeping only what reached the disk.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use automerge::{Automerge, ChangeHash, ReadDoc};
use gridsync_node::Replica;
use gridsync_node::clock::{Clock, Sources};
use gridsync_node::ops::{FieldWrite, WriteReceipt};
use gridsync_node::session_driver::SessionDriver;
use gridsync_proto::{DocPath, LocalIdentity};
use gridsync_store::CompactionPolicy;

use crate::contact::enroll::Enrolled;
use crate::contact::street::DeviceSpec;
use crate::contact::{ContactError, ContactId};

/// A street-wide document every device receives at enrollment, installed from a file rather
/// than synced: the office's plan (18,563 households are a large first sync that says
/// nothing about field records), and the device directory as it stands once every device is
/// enrolled.
pub struct StreetDocSeed {
    pub path: DocPath,
    pub doc: Automerge,
    /// `doc.save()`, appended to every device's store.
    pub saved: Vec<u8>,
    /// The authors' signatures that vouch for the document's changes, installed with it so
    /// that devices can relay them.
    pub signed_heads: Vec<gridsync_proto::SignedHead>,
}

impl std::fmt::Debug for StreetDocSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreetDocSeed")
            .field("path", &self.path)
            .field("saved_bytes", &self.saved.len())
            .finish_non_exhaustive()
    }
}

impl StreetDocSeed {
    /// A seed of `doc` at `path`, with the signatures that vouch for its changes.
    pub fn new(
        path: DocPath,
        doc: Automerge,
        signed_heads: Vec<gridsync_proto::SignedHead>,
    ) -> StreetDocSeed {
        let saved = doc.save();
        StreetDocSeed {
            path,
            doc,
            saved,
            signed_heads,
        }
    }

    /// A seed of the document `replica` holds at `path`.
    pub fn of(replica: &mut Replica, path: DocPath) -> Result<StreetDocSeed, ContactError> {
        let doc = replica
            .doc(&path)?
            .cloned()
            .ok_or_else(|| ContactError::Shape(format!("{path} was not written")))?;
        let signed_heads = replica.signatures_for(&path);
        Ok(StreetDocSeed::new(path, doc, signed_heads))
    }
}

/// One side of a contact: the node's session driver and the bookkeeping the simulation
/// needs for it.
#[derive(Debug)]
pub struct SessionSide {
    pub driver: SessionDriver,
    /// Bumped whenever a timer is armed; a timer event with an older value is stale.
    pub timer_generation: u64,
    /// The last `UpToDate` has not been followed by new work (to tell settled contacts from
    /// cut-off ones).
    pub up_to_date: bool,
}

/// A device of the street.
pub struct Device {
    pub spec: DeviceSpec,
    pub cert_der: Vec<u8>,
    pub dir: PathBuf,
    pub replica: Replica,
    pub identity: LocalIdentity,
    /// Sessions of the contacts in progress.
    pub sessions: BTreeMap<ContactId, SessionSide>,
    /// The simulation's clock, which the replica dates what it records by.
    clock: Clock,
    /// Seeds the replica's record ids and incarnations, mixed with the restart count.
    seed: u64,
    restarts: u64,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device")
            .field("node_id", &self.spec.node_id)
            .field("dir", &self.dir)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// An acknowledged write: the receipt and the change it added.
#[derive(Debug, Clone)]
pub struct Acknowledged {
    pub receipt: WriteReceipt,
    /// Heads of the written document that were not there before: the new change.
    pub changes: Vec<ChangeHash>,
}

/// Installs a street-wide document in a replica: stored durably, and held in memory as a
/// clone of the same document (rather than re-parsed from the bytes).
pub fn install(replica: &mut Replica, seed: &StreetDocSeed) -> Result<(), ContactError> {
    let held_heads = replica.doc(&seed.path)?.map(Automerge::get_heads);
    if let Some(heads) = held_heads
        && heads
            .iter()
            .any(|h| seed.doc.get_change_by_hash(h).is_none())
    {
        // The device holds changes the seed lacks: merge rather than replace.
        replica.merge_doc(&seed.path, &seed.doc, seed.signed_heads.clone())?;
        return Ok(());
    }
    // The seed holds everything the device held (its own directory entry, say): store it
    // (loading skips the changes stored twice) and hold a clone of it. The saved bytes are
    // already a whole compressed document: the store's compaction would load and save it
    // again on each of a thousand devices for nothing, so it is held off for this append.
    replica.set_compaction_policy(CompactionPolicy {
        max_chunks: u64::MAX,
        snapshot_factor: u64::MAX,
        min_chunk_bytes: u64::MAX,
    });
    let installed = replica.install_document(
        &seed.path,
        seed.doc.clone(),
        seed.saved.clone(),
        seed.signed_heads.clone(),
    );
    replica.set_compaction_policy(CompactionPolicy::default());
    installed?;
    Ok(())
}

impl Device {
    /// Creates the device's store in `dir`, installs its invite and publishes its certificate
    /// in the device directory (as a node does before its first sync), and installs `plan`
    /// (every device but the office, which imports it).
    pub fn create(
        dir: &Path,
        spec: DeviceSpec,
        enrolled: Enrolled,
        plan: Option<&StreetDocSeed>,
        clock: Clock,
        seed: u64,
    ) -> Result<Device, ContactError> {
        let now_ms = clock.unix_ms();
        let mut replica = Replica::init_with(
            dir,
            &spec.node_id,
            &enrolled.invite.street,
            Sources::seeded(clock.clone(), seed),
        )?;
        replica
            .install_invite(&enrolled.invite)
            .map_err(|e| ContactError::Enroll(e.to_string()))?;
        // What `Replica::open` reads from the invite, for this first incarnation.
        replica.set_write_scopes(Some(spec.scopes.clone()));
        replica.set_trust_root(enrolled.ca_cert_der.clone());
        let credentials = enrolled
            .invite
            .credentials()
            .map_err(|e| ContactError::Enroll(e.to_string()))?;
        replica.set_signing_key(&credentials.key_der)?;
        replica.publish_device_certificate(&enrolled.cert_der, now_ms)?;
        if let Some(plan) = plan {
            install(&mut replica, plan)?;
        }
        let identity = LocalIdentity {
            node_id: spec.node_id.clone(),
            role: spec.role.role(),
            scopes: spec.scopes.clone(),
        };
        Ok(Device {
            spec,
            cert_der: enrolled.cert_der,
            dir: dir.to_owned(),
            replica,
            identity,
            sessions: BTreeMap::new(),
            clock,
            seed,
            restarts: 0,
        })
    }

    /// A crash and restart: every session is dropped mid-way and the replica is reopened
    /// from what its store made durable, as the node does at start. Returns the contacts
    /// whose sessions were dropped.
    pub fn restart(&mut self) -> Result<Vec<ContactId>, ContactError> {
        let dropped: Vec<ContactId> = self.sessions.keys().copied().collect();
        self.sessions.clear();
        // The old replica's memory is discarded; the new one sees exactly the committed
        // transactions (every write and persist commits before returning).
        self.restarts += 1;
        let seed = mix(self.seed, self.restarts);
        let mut reopened =
            Replica::open_with(&self.dir, Sources::seeded(self.clock.clone(), seed))?;
        reopened.load_all()?;
        reopened.set_limits(None, None);
        self.replica = reopened;
        Ok(dropped)
    }

    /// Applies a field write through the node's write path; `Ok` means durable.
    pub fn write(&mut self, write: FieldWrite, now_ms: u64) -> Result<Acknowledged, ContactError> {
        let receipt = write
            .apply(&mut self.replica, now_ms)
            .map_err(|e| ContactError::Write {
                device: self.spec.node_id.to_string(),
                message: e.to_string(),
            })?;
        let heads = self
            .replica
            .doc(&receipt.document)?
            .map(Automerge::get_heads);
        let changes = heads.unwrap_or_default();
        Ok(Acknowledged { receipt, changes })
    }
}

/// A seed for the `n`th generator drawn from `seed` (SplitMix64's finalizer: nearby inputs
/// give unrelated outputs).
pub fn mix(seed: u64, n: u64) -> u64 {
    let mut z = seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
