//! `gridsync backup` and `gridsync restore`.

use std::path::Path;

use anyhow::{Context, Result};
use gridsync_node::Replica;
use gridsync_store::Store;
use serde_json::json;

use crate::commands::field::open_replica;
use crate::output::Output;

pub fn backup(data: &Path, file: &Path, out: Output) -> Result<()> {
    let replica = open_replica(data)?;
    replica
        .store()
        .backup_to(file)
        .with_context(|| format!("cannot back up {} to {}", data.display(), file.display()))?;
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    out.emit(
        &json!({ "backup": file, "bytes": bytes, "node_id": replica.node_id() }),
        || {
            format!(
                "backed up node {} ({bytes} bytes) to {}",
                replica.node_id(),
                file.display()
            )
        },
    )
}

pub fn restore(data: &Path, file: &Path, out: Output) -> Result<()> {
    let mut store = Store::restore(file, data)
        .with_context(|| format!("cannot restore {} into {}", file.display(), data.display()))?;
    // The backup's incarnation may have written changes after the backup was taken; writing
    // under it again would fork those documents for good. The next open draws a new one.
    gridsync_node::replica::retire_incarnation(&mut store)
        .context("cannot mark the restored store's actor as retired")?;
    drop(store);
    // Opening as a replica checks that the backup holds a node identity, not just a store.
    let mut replica = Replica::open(data)?;
    let documents = replica.load_all()?;
    out.emit(
        &json!({ "data": data, "node_id": replica.node_id(), "documents": documents }),
        || {
            format!(
                "restored node {} of street {} ({documents} documents) into {}",
                replica.node_id(),
                replica.street(),
                data.display()
            )
        },
    )
}
