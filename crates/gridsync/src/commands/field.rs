//! `visit`, `deliver`, `sweep record`, `correct`: field writes, and `visit list`.
//!
//! A write goes to the running node through its control socket when one runs on this data
//! directory (so the node's peers get it at once), and straight into the store otherwise.
//! Either way "saved" is printed only after the change is durable.

use std::path::Path;

use anyhow::{Context, Result, bail};
use gridsync_node::control::{self, ControlRequest, ControlResponse};
use gridsync_node::ops::{FieldWrite, WriteReceipt};
use gridsync_node::{Replica, ReplicaError};
use gridsync_store::StoreError;
use serde::Serialize;

use crate::cli::{CorrectArgs, DeliverArgs, SweepCommand, VisitCommand};
use crate::output::Output;

/// Applies a write through the running node if there is one, else locally.
pub fn submit(data: &Path, write: FieldWrite) -> Result<WriteReceipt> {
    let request = ControlRequest::Write {
        write: write.clone(),
    };
    match control::request(data, &request)? {
        Some(ControlResponse::Written { receipt }) => Ok(receipt),
        Some(ControlResponse::Error { message }) => bail!("{message}"),
        Some(other) => bail!("the running node answered unexpectedly: {other:?}"),
        None => {
            let mut replica = open_replica(data)?;
            Ok(write.apply_now(&mut replica)?)
        }
    }
}

/// Opens this device's replica with an error that says what to do.
pub fn open_replica(data: &Path) -> Result<Replica> {
    match Replica::open(data) {
        Ok(replica) => Ok(replica),
        // The commonest first-run mistake: say which command fixes it, not just what is absent.
        Err(ReplicaError::Store(StoreError::Missing(_))) => bail!(
            "no gridsync store in {}: run `gridsync init --node-id ID` first (or pass --data DIR)",
            data.display()
        ),
        Err(err) => {
            Err(err).with_context(|| format!("cannot open the store in {}", data.display()))
        }
    }
}

fn print_receipt(out: Output, receipt: &WriteReceipt) -> Result<()> {
    out.emit(receipt, || receipt.message.clone())
}

pub fn visit(data: &Path, cmd: VisitCommand, out: Output) -> Result<()> {
    match cmd {
        VisitCommand::Add(args) => {
            let at_ms = match args.at.as_deref() {
                Some(text) => Some(parse_time(text)?),
                None => None,
            };
            let receipt = submit(
                data,
                FieldWrite::Visit {
                    household: args.household,
                    outcome: args.outcome,
                    people: args.people,
                    flags: args.flags,
                    needs: args.needs,
                    note: args.note,
                    volunteer: args.volunteer,
                    at_ms,
                },
            )?;
            print_receipt(out, &receipt)
        }
        VisitCommand::List {
            building,
            household,
        } => list_visits(data, building, household, out),
    }
}

pub fn deliver(data: &Path, args: DeliverArgs, out: Output) -> Result<()> {
    let receipt = submit(
        data,
        FieldWrite::Delivery {
            household: args.household,
            item: args.item,
            status: args.status,
            note: args.note,
        },
    )?;
    print_receipt(out, &receipt)
}

pub fn sweep(data: &Path, cmd: SweepCommand, out: Output) -> Result<()> {
    let SweepCommand::Record(args) = cmd;
    let receipt = submit(
        data,
        FieldWrite::Sweep {
            building: args.building,
            round: args.round,
            units: args.units,
            reached: args.reached,
            not_home: args.not_home,
            refused: args.refused,
            issues: args.issues,
        },
    )?;
    print_receipt(out, &receipt)
}

pub fn correct(data: &Path, args: CorrectArgs, out: Output) -> Result<()> {
    let receipt = submit(
        data,
        FieldWrite::Correction {
            building: args.building,
            record: args.record,
            reason: args.reason,
            outcome: args.outcome,
        },
    )?;
    print_receipt(out, &receipt)
}

/// RFC 3339 (`2026-11-29T09:30:00+08:00`) to unix milliseconds.
fn parse_time(text: &str) -> Result<i64> {
    // The parse error is folded into the message rather than chained: its own source repeats
    // the same text, which would print twice on the one error line.
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .map_err(|e| {
            anyhow::anyhow!(
                "--at {text:?} is not an RFC 3339 time such as 2026-11-29T09:30:00+08:00: {e}"
            )
        })?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Formats unix milliseconds as RFC 3339 UTC for people.
pub fn format_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// One row of `visit list`.
#[derive(Debug, Serialize)]
struct VisitRow {
    id: String,
    building: String,
    household: String,
    at: String,
    volunteer: String,
    outcome: String,
    people_seen: u16,
    flags: Vec<String>,
    needs: Vec<String>,
    note: String,
    corrected: bool,
}

fn list_visits(
    data: &Path,
    building: Option<String>,
    household: Option<String>,
    out: Output,
) -> Result<()> {
    let mut replica = open_replica(data)?;
    let plan = gridsync_node::ops::street_plan(&mut replica)?;
    if let Some(b) = &building {
        plan.building(b)
            .with_context(|| format!("building {b:?} is not in the street plan"))?;
    }
    // A household filter must name a planned household, in the building filter if both are
    // given: a typo must not read as "no visits".
    let household_building = match &household {
        Some(h) => {
            let planned = plan
                .household(h)
                .with_context(|| format!("household {h:?} is not in the street plan"))?;
            if let Some(b) = building.as_ref().filter(|b| **b != planned.building) {
                bail!(
                    "household {h:?} is in building {:?}, not in {b:?}",
                    planned.building
                );
            }
            Some(planned.building.clone())
        }
        None => None,
    };
    let buildings: Vec<String> = match (building, household_building) {
        (Some(b), _) | (None, Some(b)) => vec![b],
        (None, None) => plan.buildings().map(|(id, _)| id.to_owned()).collect(),
    };
    let mut rows = Vec::new();
    for b in buildings {
        let (_, path) = gridsync_node::ops::locate_building(&mut replica, &b)?;
        let Some(doc) = replica.doc(&path)? else {
            continue;
        };
        let records = gridsync_model::BuildingRecords::read(doc);
        for v in records.corrected_visits() {
            if household
                .as_ref()
                .is_some_and(|h| *h != v.current.household)
            {
                continue;
            }
            let c = &v.current;
            rows.push(VisitRow {
                id: c.id.to_string(),
                building: b.clone(),
                household: c.household.clone(),
                at: format_time(c.at_ms),
                volunteer: c.volunteer.clone(),
                outcome: c.outcome.as_str().to_owned(),
                people_seen: c.people_seen,
                flags: c.flags.iter().map(|f| f.as_str().to_owned()).collect(),
                needs: c
                    .needs
                    .iter()
                    .map(|(k, d)| {
                        if d.is_empty() {
                            k.as_str().to_owned()
                        } else {
                            format!("{}:{d}", k.as_str())
                        }
                    })
                    .collect(),
                note: c.note.clone(),
                corrected: v.corrected_by.is_some(),
            });
        }
    }
    rows.sort_by(|a, b| (&a.at, &a.id).cmp(&(&b.at, &b.id)));
    out.emit(&rows, || {
        if rows.is_empty() {
            return "no visits\n".to_owned();
        }
        let mut text = String::new();
        for r in &rows {
            text.push_str(&format!(
                "{}  {}  {:<10} {:<12} people={} {}{}{}{}\n",
                r.at,
                r.household,
                r.building,
                r.outcome,
                r.people_seen,
                if r.flags.is_empty() {
                    String::new()
                } else {
                    format!("flags={} ", r.flags.join(","))
                },
                if r.needs.is_empty() {
                    String::new()
                } else {
                    format!("needs={} ", r.needs.join(","))
                },
                if r.note.is_empty() {
                    String::new()
                } else {
                    format!("note={:?} ", r.note)
                },
                if r.corrected { "(corrected)" } else { "" },
            ));
        }
        text
    })
}
