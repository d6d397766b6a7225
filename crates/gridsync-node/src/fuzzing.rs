//! The street rules' entry points for gridsync-fuzz (not an API: hidden from the docs and
//! free to change). They forward to the crate-private checks the replica runs on every
//! received change to the device directory and the revocation list.

use automerge::Change;
use gridsync_proto::{NodeId, RefusalReason};

use crate::directory::DeviceDirectory;

/// [`crate::street_rules::check_directory_change`].
pub fn check_directory_change(
    change: &Change,
    directory: &mut DeviceDirectory,
) -> Result<(), RefusalReason> {
    crate::street_rules::check_directory_change(change, directory)
}

/// [`crate::street_rules::check_revocations_change`].
pub fn check_revocations_change(change: &Change) -> Result<(), RefusalReason> {
    crate::street_rules::check_revocations_change(change)
}

/// The node id and public key of the verified device behind `node_id` in `directory`.
pub fn directory_device(
    directory: &mut DeviceDirectory,
    node_id: &NodeId,
) -> Option<(NodeId, Vec<u8>)> {
    directory
        .device(node_id)
        .map(|device| (device.node_id, device.public_key))
}
