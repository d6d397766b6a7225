//! `gridsync init`: create this device's store.

use std::path::Path;

use anyhow::{Context, Result};
use gridsync_node::Replica;
use gridsync_proto::NodeId;
use serde_json::json;

use crate::cli::InitArgs;
use crate::output::Output;

pub fn run(data: &Path, args: InitArgs, out: Output) -> Result<()> {
    let node_id =
        NodeId::parse(&args.node_id).with_context(|| format!("node id {:?}", args.node_id))?;
    let replica = Replica::init(data, &node_id, &args.street)
        .with_context(|| format!("cannot initialize {}", data.display()))?;
    out.emit(
        &json!({ "data": data, "node_id": node_id, "street": replica.street() }),
        || {
            format!(
                "initialized {} as node {} of street {}",
                data.display(),
                node_id,
                replica.street()
            )
        },
    )
}
