//! `gridsync show building ID`.

use std::path::Path;

use anyhow::Result;
use serde_json::json;

use crate::cli::ShowCommand;
use crate::commands::field::{format_time, open_replica};
use crate::output::Output;

pub fn run(data: &Path, cmd: ShowCommand, out: Output) -> Result<()> {
    let ShowCommand::Building { id } = cmd;
    let mut replica = open_replica(data)?;
    let (plan, path) = gridsync_node::ops::locate_building(&mut replica, &id)?;
    let view = match replica.doc(&path)? {
        Some(doc) => gridsync_model::building_view(doc, &plan, &id),
        None => gridsync_model::building_view(
            &gridsync_model::genesis(gridsync_model::DocKind::Building),
            &plan,
            &id,
        ),
    };
    let households: Vec<_> = view
        .households
        .iter()
        .map(|h| {
            json!({
                "household": h.household.id,
                "unit": h.household.unit,
                "door": h.household.door,
                "zone": h.household.zone.as_str(),
                "visits": h.visits,
                "latest_outcome": h.latest_visit.as_ref().map(|v| v.outcome.as_str()),
                "latest_visit_at": h.latest_visit.as_ref().map(|v| format_time(v.at_ms)),
                "flags": h.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
                "open_needs": h.open_needs.iter().map(|(k, d)| json!({"need": k.as_str(), "detail": d})).collect::<Vec<_>>(),
                "deliveries": h.deliveries.iter().map(|d| json!({"item": d.item.as_str(), "status": d.status.as_str(), "failed_attempts": d.failed_attempts})).collect::<Vec<_>>(),
            })
        })
        .collect();
    let sweeps: Vec<_> = view
        .sweeps
        .iter()
        .map(|s| json!({"round": s.round, "units": s.units_covered, "reached": s.reached, "not_home": s.not_home, "refused": s.refused, "issues": s.issues, "by": s.by, "at": format_time(s.at_ms)}))
        .collect();
    let value = json!({
        "building": id,
        "document": path,
        "households": households,
        "sweeps": sweeps,
        "unplanned_households": view.unplanned_households,
        "malformed_records": view.malformed.len(),
    });
    out.emit(&value, || {
        let visited = view.households.iter().filter(|h| h.visits > 0).count();
        let mut text = format!(
            "building {id} ({path}): {} households, {visited} visited\n",
            view.households.len()
        );
        for h in &view.households {
            let latest = h
                .latest_visit
                .as_ref()
                .map(|v| format!("{} at {}", v.outcome.as_str(), format_time(v.at_ms)))
                .unwrap_or_else(|| "never visited".to_owned());
            text.push_str(&format!(
                "  {:<10} unit {:<6} {latest}",
                h.household.id, h.household.unit
            ));
            if !h.flags.is_empty() {
                let flags: Vec<_> = h.flags.iter().map(|f| f.as_str()).collect();
                text.push_str(&format!("  flags: {}", flags.join(",")));
            }
            if !h.open_needs.is_empty() {
                let needs: Vec<_> = h.open_needs.keys().map(|k| k.as_str()).collect();
                text.push_str(&format!("  OPEN NEEDS: {}", needs.join(",")));
            }
            for d in &h.deliveries {
                text.push_str(&format!("  {}: {}", d.item.as_str(), d.status.as_str()));
            }
            text.push('\n');
        }
        for s in &view.sweeps {
            text.push_str(&format!(
                "  sweep round {} by {}: reached {}, not home {}, refused {}\n",
                s.round, s.by, s.reached, s.not_home, s.refused
            ));
        }
        if !view.malformed.is_empty() {
            text.push_str(&format!(
                "  warning: {} malformed records skipped\n",
                view.malformed.len()
            ));
        }
        text
    })
}
