//! `gridsync demo`: a narrated walkthrough on a generated street, with nothing to install.
//!
//! It creates an office and two volunteer devices in a temporary directory, has both
//! volunteers log visits and deliveries offline in the same building (neither has seen it
//! before), exchanges documents between the devices the way a captain's laptop would, and
//! shows that every record survived on every replica.

use anyhow::{Context, Result, ensure};
use gridsync_node::Replica;
use gridsync_node::node::unix_ms;
use gridsync_node::ops::FieldWrite;
use gridsync_proto::NodeId;
use serde_json::json;

use crate::cli::DemoArgs;
use crate::commands::street::{self, StreetShape};
use crate::output::Output;

const STREET: &str = "panhuo";

pub fn run(args: DemoArgs, out: Output) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("gridsync-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let say = |text: &str| {
        if !out.json {
            println!("{text}");
        }
    };
    let shape = StreetShape {
        grids: 2,
        buildings_per_grid: 3,
        units_per_building: 2,
        households_per_unit: 4,
    };
    say(&format!("gridsync demo in {}", dir.path().display()));

    // The office imports the street plan.
    let mut office = Replica::init(
        &dir.path().join("office"),
        &NodeId::parse("office")?,
        STREET,
    )?;
    let receipt = FieldWrite::PlanImport {
        csv: street::plan_csv(shape),
    }
    .apply(&mut office, unix_ms())?;
    say(&format!("office: {}", receipt.message));

    // Two volunteers receive the plan from the office before going out.
    let mut volunteers = Vec::new();
    for name in ["vol-0001", "vol-0002"] {
        let mut v = Replica::init(&dir.path().join(name), &NodeId::parse(name)?, STREET)?;
        exchange(&mut office, &mut v)?;
        volunteers.push(v);
    }
    say("volunteers vol-0001 and vol-0002 copied the plan and went offline");

    // Both log the first visits to the same building, which neither device has seen.
    let building = street::building_id(0, 0);
    let mut saved = Vec::new();
    for (i, v) in volunteers.iter_mut().enumerate() {
        for u in 0..shape.units_per_building {
            let household = street::household_id(&building, u, i);
            let needs = if i == 0 {
                vec!["medicine:insulin".to_owned()]
            } else {
                vec![]
            };
            let flags = if i == 0 {
                vec!["elderly-living-alone".to_owned()]
            } else {
                vec!["child".to_owned()]
            };
            let receipt = FieldWrite::Visit {
                household,
                outcome: "contacted".into(),
                people: 1 + i as u16,
                flags,
                needs,
                note: Some(format!("logged offline by {}", v.node_id())),
                volunteer: None,
                at_ms: None,
            }
            .apply(v, unix_ms())?;
            say(&format!("{}: {}", v.node_id(), receipt.message));
            saved.extend(receipt.record_id);
        }
    }
    // A delivery raced offline: one volunteer delivered, the other still thinks it is on the way.
    let household = street::household_id(&building, 0, 0);
    for (v, status) in volunteers.iter_mut().zip(["delivered", "out-for-delivery"]) {
        let receipt = FieldWrite::Delivery {
            household: household.clone(),
            item: "medicine".into(),
            status: status.into(),
            note: None,
        }
        .apply(v, unix_ms())?;
        say(&format!("{}: {}", v.node_id(), receipt.message));
    }

    // Back in range: the volunteers meet each other, then the office.
    say("devices meet and merge (volunteer <-> volunteer, then volunteer <-> office)");
    let (a, b) = volunteers.split_at_mut(1);
    exchange(&mut a[0], &mut b[0])?;
    for v in volunteers.iter_mut() {
        exchange(v, &mut office)?;
    }
    for v in volunteers.iter_mut() {
        exchange(&mut office, v)?;
    }

    // Every replica holds every record exactly once and reads the same.
    let mut summaries = Vec::new();
    for replica in std::iter::once(&mut office).chain(volunteers.iter_mut()) {
        let (plan, path) = gridsync_node::ops::locate_building(replica, &building)?;
        let node = replica.node_id().clone();
        let doc = replica
            .doc(&path)?
            .context("building document missing after merge")?;
        let records = gridsync_model::BuildingRecords::read(doc);
        let ids: Vec<String> = records.visits.iter().map(|v| v.id.to_string()).collect();
        for id in &saved {
            ensure!(
                ids.iter().filter(|x| *x == id).count() == 1,
                "visit {id} is not on {node} exactly once"
            );
        }
        let view = gridsync_model::building_view(doc, &plan, &building);
        let delivery = view
            .households
            .iter()
            .find(|h| h.household.id == household)
            .and_then(|h| h.deliveries.first().map(|d| d.status.as_str()))
            .unwrap_or("none");
        say(&format!(
            "{:<9} {} visits in {building}, heads {}, medicine for {household}: {delivery}",
            node,
            ids.len(),
            gridsync_node::status::heads_digest(&doc.get_heads()),
        ));
        summaries.push(json!({ "node": node, "visits": ids.len(), "heads": gridsync_node::status::heads_digest(&doc.get_heads()), "delivery": delivery }));
    }
    let heads: Vec<_> = summaries.iter().map(|s| s["heads"].clone()).collect();
    ensure!(
        heads.windows(2).all(|w| w[0] == w[1]),
        "replicas did not converge"
    );
    say(
        "all replicas are identical; no record was lost or hidden, and \"delivered\" survived the concurrent \"out-for-delivery\"",
    );

    let kept = if args.keep { Some(dir.keep()) } else { None };
    if let Some(path) = &kept {
        say(&format!("data kept in {}", path.display()));
    }
    if out.json {
        out.emit(
            &json!({ "replicas": summaries, "converged": true, "kept": kept }),
            String::new,
        )?;
    }
    Ok(())
}

/// Copies every document `from` holds into `to` (one direction of an offline exchange).
fn exchange(from: &mut Replica, to: &mut Replica) -> Result<()> {
    from.load_all()?;
    let paths: Vec<_> = from.loaded_docs().keys().cloned().collect();
    for path in paths {
        let doc = from.doc(&path)?.context("document vanished")?.fork();
        to.merge_doc(&path, &doc)?;
    }
    Ok(())
}
