//! `gridsync plan import|columns|show`.

use std::path::Path;

use anyhow::{Context, Result};
use gridsync_node::ops::FieldWrite;
use serde_json::json;

use crate::cli::PlanCommand;
use crate::commands::field::{open_replica, submit};
use crate::output::Output;

/// Largest plan file read (the model bounds it too; this stops a wrong file early).
const MAX_PLAN_FILE_BYTES: u64 = 64 * 1024 * 1024;

pub fn run(data: &Path, cmd: PlanCommand, out: Output) -> Result<()> {
    match cmd {
        PlanCommand::Import { file } => {
            let size = std::fs::metadata(&file)
                .with_context(|| format!("cannot read {}", file.display()))?
                .len();
            if size > MAX_PLAN_FILE_BYTES {
                anyhow::bail!("{} is {size} bytes; a plan file may be at most {MAX_PLAN_FILE_BYTES}", file.display());
            }
            let csv = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {} as UTF-8 text", file.display()))?;
            let receipt = submit(data, FieldWrite::PlanImport { csv })
                .with_context(|| format!("{} was not imported", file.display()))?;
            out.emit(&receipt, || receipt.message.clone())
        }
        PlanCommand::TimeZone { offset: Some(offset) } => {
            let receipt = submit(data, FieldWrite::PlanTimeZone { utc_offset: offset })?;
            out.emit(&receipt, || receipt.message.clone())
        }
        PlanCommand::TimeZone { offset: None } => {
            let mut replica = open_replica(data)?;
            let plan = gridsync_node::ops::street_plan(&mut replica)?;
            let named = plan.utc_offset_minutes();
            let minutes = named.unwrap_or(gridsync_model::DEFAULT_UTC_OFFSET_MINUTES);
            let zone = gridsync_model::format_utc_offset(minutes);
            out.emit(
                &json!({ "utc_offset_minutes": minutes, "utc_offset": zone, "set": named.is_some() }),
                || match named {
                    Some(_) => format!("UTC{zone}"),
                    None => format!("UTC{zone} (the default: no time zone is set in the plan)"),
                },
            )
        }
        PlanCommand::Columns => out.emit(&json!({ "header": gridsync_model::CSV_HEADER }), || {
            format!(
                "{}\n\nhousehold_id, community, grid, building, unit: ids (a-z 0-9 - _ .), at most 64 bytes\n\
                 door: free text up to 64 characters (quote it if it has commas)\n\
                 residents: 0 to 100\n\
                 zone: lockdown, control or prevention\n\
                 The first line must be the header above. One bad row and nothing is imported.",
                gridsync_model::CSV_HEADER
            )
        }),
        PlanCommand::Show => {
            let mut replica = open_replica(data)?;
            let plan = gridsync_node::ops::street_plan(&mut replica)?;
            let buildings: Vec<_> = plan
                .buildings()
                .map(|(id, b)| json!({ "building": id, "grid": b.grid, "community": b.community, "households": b.households.len(), "units": b.units.len() }))
                .collect();
            let households: usize = plan.buildings().map(|(_, b)| b.households.len()).sum();
            out.emit(&json!({ "street": replica.street(), "households": households, "buildings": buildings }), || {
                let mut text = format!("street {}: {} buildings, {households} households\n", replica.street(), buildings.len());
                for (id, b) in plan.buildings() {
                    text.push_str(&format!(
                        "  {id:<12} grid {:<10} community {:<10} {:>4} households, {} units\n",
                        b.grid,
                        b.community,
                        b.households.len(),
                        b.units.len()
                    ));
                }
                text
            })
        }
    }
}
