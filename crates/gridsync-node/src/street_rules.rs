//! What a change to the street's control documents may contain: the device directory
//! (`{street}/devices`) and the revocation list (`{street}/revocations`). Every node checks
//! these rules on every received change before its signature and before applying it, so a
//! device that may write these documents (every device publishes its own directory entry)
//! still cannot break them for anyone:
//!
//! - **Directory.** Each operation puts a certificate (bytes, at most 16 KiB) into the
//!   `devices` map under a node id; the certificate must be issued by the street CA to that
//!   node id, and the author must be that node (a device publishes itself) or the office.
//!   Nothing is ever deleted, and an entry is only replaced by its own device (a re-issued
//!   certificate).
//! - **Revocations.** Each operation adds a text entry to the `revoked` map, never over an
//!   existing one and never deleting one: the list is add-only, so a revocation holds
//!   whatever a peer sends later. (Each entry is also signed by the street CA; entries that
//!   do not verify are ignored when the list is read.)
//!
//! Both maps come from a deterministic genesis change (operation 1 of the all-zero actor);
//! no operation may touch any other object.

use automerge::legacy::{Key, ObjectId, OpId, OpType};
use automerge::{Change, ScalarValue};
use gridsync_proto::{NodeId, RefusalReason, Role};

use crate::directory::{DeviceDirectory, MAX_CERT_BYTES};

/// Largest revocation entry accepted (a signature and a few ids).
const MAX_REVOCATION_BYTES: usize = 4096;

/// The object id of a control document's one map: the genesis change's first operation.
fn genesis_map() -> ObjectId {
    ObjectId::Id(OpId(1, gridsync_model::genesis_actor()))
}

/// Checks a change to the device directory; records each certificate it adds with
/// `directory` (so the change's own signature can be verified against it).
pub(crate) fn check_directory_change(
    change: &Change,
    directory: &mut DeviceDirectory,
) -> Result<(), RefusalReason> {
    let author = NodeId::from_actor(change.actor_id()).ok_or(RefusalReason::BadContent)?;
    let expanded = gridsync_proto::apply::decode_change(change).ok_or(RefusalReason::BadContent)?;
    let map = genesis_map();
    for op in &expanded.operations {
        let (Key::Map(key), OpType::Put(ScalarValue::Bytes(der))) = (&op.key, &op.action) else {
            return Err(RefusalReason::BadContent);
        };
        if op.obj != map || op.insert || der.len() > MAX_CERT_BYTES {
            return Err(RefusalReason::BadContent);
        }
        let named = NodeId::parse(key).map_err(|_| RefusalReason::BadContent)?;
        let device = directory.verify(der).ok_or(RefusalReason::BadContent)?;
        if device.node_id != named {
            return Err(RefusalReason::BadContent);
        }
        let own_entry = named == author;
        if !own_entry {
            // Only the office files entries for others, and never over an existing one.
            let author_is_office = directory
                .device(&author)
                .is_some_and(|d| d.role == Role::Office);
            if !author_is_office || !op.pred.is_empty() {
                return Err(RefusalReason::BadContent);
            }
        }
        directory.introduce(&named, der);
    }
    Ok(())
}

/// Checks a change to the revocation list: additions of new text entries only.
pub(crate) fn check_revocations_change(change: &Change) -> Result<(), RefusalReason> {
    let expanded = gridsync_proto::apply::decode_change(change).ok_or(RefusalReason::BadContent)?;
    let map = genesis_map();
    for op in &expanded.operations {
        let (Key::Map(key), OpType::Put(ScalarValue::Str(text))) = (&op.key, &op.action) else {
            return Err(RefusalReason::BadContent);
        };
        let well_formed = op.obj == map
            && !op.insert
            && op.pred.is_empty()
            && text.len() <= MAX_REVOCATION_BYTES
            && NodeId::parse(key).is_ok();
        if !well_formed {
            return Err(RefusalReason::BadContent);
        }
    }
    Ok(())
}
