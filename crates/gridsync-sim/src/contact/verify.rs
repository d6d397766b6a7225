//! Has the street converged? A cheap probe the run asks every few simulated minutes after
//! the last write, and the full verification once it says yes.
//!
//! The probe compares heads only: every acknowledged change is in the office's copy of its
//! document, and every device that may hold a document holds it with the office's heads.
//! The verification then applies the simulation's general checks (`crate::check`) to every
//! replica: convergence, and every acknowledged record present by id wherever its document
//! may be held; and it reopens stores from disk to check that what the replicas hold in
//! memory is what they made durable.

use std::collections::{BTreeMap, BTreeSet};

use automerge::{ChangeHash, ReadDoc};
use gridsync_proto::DocPath;

use crate::check::{ReplicaSnapshot, check_acknowledged, check_converged};
use crate::contact::device::Device;
use crate::contact::street::OFFICE;
use crate::ledger::AckedWrite;

/// Every document that exists anywhere, with the devices that may hold it. Built once the
/// last write is done (no document is created after it).
#[derive(Debug)]
pub struct ConvergenceProbe {
    docs: Vec<(DocPath, Vec<usize>)>,
}

fn sorted_heads(device: &Device, path: &DocPath) -> Option<Vec<ChangeHash>> {
    let mut heads = device.replica.loaded_docs().get(path)?.get_heads();
    heads.sort();
    Some(heads)
}

impl ConvergenceProbe {
    pub fn new(devices: &[Device]) -> ConvergenceProbe {
        let paths: BTreeSet<&DocPath> = devices
            .iter()
            .flat_map(|d| d.replica.loaded_docs().keys())
            .collect();
        let docs = paths
            .into_iter()
            .map(|path| {
                let holders = (0..devices.len())
                    .filter(|i| devices[*i].spec.scopes.may_hold(path))
                    .collect();
                (path.clone(), holders)
            })
            .collect();
        ConvergenceProbe { docs }
    }

    /// Drops from `pending` the acknowledged changes the office now holds; true when none is
    /// left and every holder of every document has the office's heads.
    pub fn converged(&self, devices: &[Device], pending: &mut Vec<(DocPath, ChangeHash)>) -> bool {
        let office = devices[OFFICE].replica.loaded_docs();
        pending.retain(|(path, change)| {
            office
                .get(path)
                .and_then(|doc| doc.get_change_by_hash(change))
                .is_none()
        });
        if !pending.is_empty() {
            return false;
        }
        self.docs.iter().all(|(path, holders)| {
            let reference = sorted_heads(&devices[OFFICE], path);
            reference.is_some()
                && holders
                    .iter()
                    .all(|h| sorted_heads(&devices[*h], path) == reference)
        })
    }

    /// The first reason the street has not converged, for a failure message.
    pub fn first_difference(
        &self,
        devices: &[Device],
        pending: &[(DocPath, ChangeHash)],
    ) -> String {
        if let Some((path, _)) = pending.first() {
            return format!(
                "{} acknowledged change(s) not at the office, the first in {path}",
                pending.len()
            );
        }
        for (path, holders) in &self.docs {
            let reference = sorted_heads(&devices[OFFICE], path);
            for holder in holders {
                let heads = sorted_heads(&devices[*holder], path);
                if heads != reference {
                    let lagging = holders
                        .iter()
                        .filter(|h| sorted_heads(&devices[**h], path) != reference)
                        .count();
                    return format!(
                        "{path}: {} holds {} head(s), the office {} ({lagging} of {} holders differ)",
                        devices[*holder].spec.node_id,
                        heads.map_or(0, |h| h.len()),
                        reference.map_or(0, |h| h.len()),
                        holders.len()
                    );
                }
            }
        }
        "no difference left".into()
    }
}

/// What the final verification covered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Verified {
    /// Replicas compared in memory.
    pub replicas: usize,
    /// Document copies compared (a document held by five devices counts five).
    pub document_copies: usize,
    /// Replicas reopened from disk and found equal to memory.
    pub reopened_from_disk: usize,
}

/// Checks every replica in memory (convergence, no acknowledged record lost), then reopens
/// from disk the office, every captain, every device that restarted, and (with `all`) every
/// other device, and checks that each holds on disk exactly what it holds in memory.
pub fn verify(
    devices: &[Device],
    acked: &[AckedWrite],
    restarted: &BTreeSet<usize>,
    all: bool,
) -> Result<Verified, String> {
    let mut replicas = BTreeMap::new();
    for device in devices {
        let snapshot =
            ReplicaSnapshot::of(device.spec.scopes.clone(), device.replica.loaded_docs());
        replicas.insert(device.spec.node_id.to_string(), snapshot);
    }
    let mut divergences = check_converged(&replicas);
    divergences.extend(check_acknowledged(acked, &replicas));
    if !divergences.is_empty() {
        return Err(format!(
            "in memory: {}",
            crate::check::describe(&divergences)
        ));
    }
    let mut verified = Verified {
        replicas: replicas.len(),
        document_copies: replicas.values().map(|r| r.docs.len()).sum(),
        reopened_from_disk: 0,
    };
    for (index, device) in devices.iter().enumerate() {
        let reopen = all
            || index == OFFICE
            || restarted.contains(&index)
            || device.spec.role.role() == gridsync_proto::Role::Captain;
        if !reopen {
            continue;
        }
        let name = device.spec.node_id.to_string();
        let on_disk = ReplicaSnapshot::from_disk(device.spec.scopes.clone(), &device.dir)
            .map_err(|e| format!("{name}: cannot reopen the store: {e}"))?;
        if replicas.get(&name) != Some(&on_disk) {
            return Err(format!(
                "{name}: the store on disk differs from the replica in memory"
            ));
        }
        verified.reopened_from_disk += 1;
    }
    Ok(verified)
}
