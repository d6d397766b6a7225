//! A street office, a building captain and a volunteer as real gridsync nodes on loopback
//! QUIC, with a visit travelling from the volunteer to the office through the captain.
//!
//! On site, a volunteer's phone rarely reaches the street office: it meets the building
//! captain's laptop over the building's Wi-Fi, and the captain's laptop reaches the office.
//! gridsync does not need an end-to-end path. Every node stores what it receives durably and
//! passes it on to whoever it meets next (store and forward), checking at every hop that each
//! change is signed by its author and that the author may write the document.
//!
//! What it shows:
//! - the enrollment flow of `gridsync office init`, `gridsync enroll` and `gridsync join`: a
//!   street CA, an invite per device carrying its certificate and key, a store per device;
//! - three `RunningNode`s (SQLite store, QUIC endpoint with mutual TLS) started from their
//!   stores as `gridsync run` starts them, each dialing only its upstream: the volunteer its
//!   captain, the captain the office;
//! - the street plan flowing down from the office, and a visit flowing up;
//! - store and forward: with the office down, the visit waits in the captain's store, and
//!   reaches the office when it comes back; the office counts it as relayed by the captain.
//!
//! Run it with (it takes a couple of seconds):
//!
//! ```sh
//! cargo run -p gridsync-examples --example street_over_quic
//! ```

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, ensure};
use gridsync_net::StreetCa;
use gridsync_node::Replica;
use gridsync_node::node::unix_ms;
use gridsync_node::ops::FieldWrite;
use gridsync_proto::Role;

// The street every example stands on: enrollment, joining and starting nodes as the CLI
// does them (examples/street.rs).
mod street;
use street::{
    PLAN_CSV, STREET, enroll, join, loopback, start, visits_held, visits_in, wait_for, write,
};

#[tokio::main]
async fn main() -> Result<()> {
    let started = Instant::now();
    let root = tempfile::tempdir()?;
    let say = |text: String| println!("[{:>5} ms] {text}", started.elapsed().as_millis());

    // --- Enrollment --------------------------------------------------------------------------
    // `gridsync office init`: the office creates the street's certificate authority, the only
    // trust root of every device of the street, and its own identity.
    let (ca, office_dir) = office_init(root.path())?;
    // `gridsync enroll` at the office, `gridsync join` on each device: the invite holds the
    // device's certificate (node id, role, scopes) and its private key, so it is handed over
    // privately. The captain and the volunteer may both write grid-017's buildings.
    let captain_dir = join(
        root.path(),
        &enroll(&ca, "cap-01", Role::Captain, "write:panhuo/grid-017")?,
    )?;
    let volunteer_dir = join(
        root.path(),
        &enroll(&ca, "vol-0042", Role::Volunteer, "write:panhuo/grid-017")?,
    )?;
    say("street CA created; office, cap-01 and vol-0042 enrolled".into());

    // `gridsync plan import street-plan.csv` at the office: one change to the plan document,
    // signed with the office's key like every change.
    {
        let mut replica = Replica::open(&office_dir)?;
        let receipt = FieldWrite::PlanImport {
            csv: PLAN_CSV.into(),
        }
        .apply_now(&mut replica)?;
        say(format!("office: {}", receipt.message));
    }

    // --- Three nodes on loopback -------------------------------------------------------------
    // Each node listens on a port of its own (port 0: the system picks) and dials only its
    // upstream. The volunteer never learns the office's address.
    let office = start(&office_dir, loopback(0), vec![])?;
    let office_addr = office.local_addr;
    let captain = start(&captain_dir, loopback(0), vec![office_addr])?;
    let volunteer = start(&volunteer_dir, loopback(0), vec![captain.local_addr])?;
    say(format!(
        "office on {office_addr}, cap-01 on {} (dials the office), vol-0042 on {} (dials cap-01)",
        captain.local_addr, volunteer.local_addr
    ));

    // The plan is street-wide: every device carries it, so it reaches the volunteer through
    // the captain. The volunteer needs it before writing: a visit is checked against it.
    wait_for("the street plan to reach vol-0042", || {
        Ok(volunteer.handle().lock_replica().street_plan()?.is_some())
    })
    .await?;
    say("vol-0042 holds the street plan (relayed by cap-01)".into());

    // --- The office goes dark -----------------------------------------------------------------
    // The office's uplink is down for a while. Nothing in the field stops: the captain keeps
    // trying to reach it, with capped exponential backoff.
    office.shutdown().await;
    say("the office is down".into());

    // `gridsync visit add --household h-0001 ...` on the volunteer's running node: durable in
    // the volunteer's store when `write` returns, and pushed at once to connected peers.
    let receipt = write(&volunteer, street::visit_to_mrs_chen()).await?;
    let visit_id = receipt.record_id.clone().context("a visit has an id")?;
    let building = receipt.document.clone();
    say(format!("vol-0042 saved visit {visit_id} in {building}"));

    // It reaches the captain, whose store keeps it.
    wait_for("the visit to reach cap-01", || {
        Ok(visits_held(&captain, &building)?.contains(&visit_id))
    })
    .await?;
    say("cap-01 holds the visit in its store; the office is still unreachable".into());
    // The office's store, opened while the office is down, does not have it.
    ensure!(
        !visits_in(&mut Replica::open(&office_dir)?, &building)?.contains(&visit_id),
        "the office cannot hold the visit while it is down"
    );

    // --- The office comes back ----------------------------------------------------------------
    // Same store, same address: the captain's dialer finds it again and the two reconcile.
    // The visit arrives, though the volunteer and the office have never been connected.
    let office = start(&office_dir, office_addr, vec![])?;
    say("the office is back".into());
    wait_for("the visit to reach the office", || {
        Ok(visits_held(&office, &building)?.contains(&visit_id))
    })
    .await?;
    say(format!("the office holds visit {visit_id}"));

    // How it got there, from the office's provenance: every change the office received is
    // recorded with its author and the peer it arrived through. The visit's author is
    // vol-0042, but the office only ever spoke to cap-01.
    let status = office.status();
    let via_captain = status
        .peers
        .iter()
        .find(|p| p.node_id.as_str() == "cap-01")
        .context("the office knows cap-01")?;
    ensure!(
        via_captain.changes_relayed > 0,
        "the office counts changes relayed by cap-01"
    );
    ensure!(
        status
            .peers
            .iter()
            .all(|p| p.node_id.as_str() != "vol-0042"),
        "the office never had a link to vol-0042"
    );
    say(format!(
        "office's peers: {}; cap-01 relayed {} change(s) authored by others",
        status
            .peers
            .iter()
            .map(|p| p.node_id.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        via_captain.changes_relayed
    ));

    // Everyone stops cleanly, all at once: connections closed with a goodbye, stores flushed.
    let mut stopping = tokio::task::JoinSet::new();
    for node in [volunteer, captain, office] {
        stopping.spawn(node.shutdown());
    }
    while stopping.join_next().await.is_some() {}
    say("all nodes stopped".into());
    Ok(())
}

// --- The street office, as `gridsync office init` sets it up (enrollment, joining and
// --- starting nodes are in street.rs) --------------------------------------------------------------

/// `gridsync office init`: the street CA and the office's own identity, kept in its store.
fn office_init(root: &Path) -> Result<(StreetCa, PathBuf)> {
    let now = unix_ms() / 1000;
    let ca = StreetCa::generate(STREET, now)?;
    let invite = enroll(&ca, "office", Role::Office, "write:panhuo")?;
    let dir = join(root, &invite)?;
    // Only the office keeps the CA (its key signs certificates and revocations).
    let mut replica = Replica::open(&dir)?;
    replica.save_street_ca(&ca)?;
    Ok((ca, dir))
}
