//! The street office revokes a lost device; the revocation travels through the mesh, and the
//! device is refused everywhere it reaches.
//!
//! A volunteer's phone is lost, with a valid certificate on it. The office cannot reach every
//! device to tell it, and certificates are checked offline. So a revocation is data: the office
//! signs it with the street CA's key and writes it into the street's revocation document,
//! which every device carries and syncs like any other document. Each node that receives it
//! checks the CA's signature, adds the device to the revocation list its TLS verifiers
//! consult on every handshake, and closes any open session with it.
//!
//! What it shows:
//! - `gridsync revoke`: the CA-signed revocation written at the office (`FieldWrite::Revocation`);
//! - the revocation reaching the captain as document data, like any record, and going on
//!   to an honest volunteer beyond it;
//! - the captain closing its link with the revoked phone and refusing it in the TLS handshake
//!   from then on, with the reason given to the phone;
//! - what the phone writes afterwards reaching no one, while the honest volunteer's visits
//!   still flow.
//!
//! Run it with (it takes a couple of seconds):
//!
//! ```sh
//! cargo run -p gridsync-examples --example revoke_a_device
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use gridsync_net::{NetEndpoint, RevocationList, StreetCa};
use gridsync_node::Replica;
use gridsync_node::credentials;
use gridsync_node::node::{RunningNode, unix_ms};
use gridsync_node::ops::{FieldWrite, WriteReceipt};
use gridsync_proto::{NodeId, Role};

// The street every example stands on: enrollment, joining and starting nodes as the CLI
// does them (examples/street.rs).
mod street;
use street::{
    PATIENCE, PLAN_CSV, STREET, enroll, join, loopback, start, visits_held, wait_for, write,
};

#[tokio::main]
async fn main() -> Result<()> {
    let started = Instant::now();
    let root = tempfile::tempdir()?;
    let say = |text: String| println!("[{:>5} ms] {text}", started.elapsed().as_millis());

    // --- A small street: office <- captain <- two volunteers ------------------------------------
    let ca = StreetCa::generate(STREET, unix_ms() / 1000)?;
    let office_dir = join(
        root.path(),
        &enroll(&ca, "office", Role::Office, "write:panhuo")?,
    )?;
    {
        // As `gridsync office init` does: only the office keeps the CA, in its store.
        let mut replica = Replica::open(&office_dir)?;
        replica.save_street_ca(&ca)?;
        FieldWrite::PlanImport {
            csv: PLAN_CSV.into(),
        }
        .apply_now(&mut replica)?;
    }
    drop(ca); // From here on, the CA is only in the office's store.
    let office_ca = |office: &RunningNode| -> Result<StreetCa> {
        Ok(credentials::load_street_ca(
            office.handle().lock_replica().store(),
        )?)
    };

    let office = start(&office_dir, loopback(0), vec![])?;
    let ca = office_ca(&office)?;
    let captain_dir = join(
        root.path(),
        &enroll(&ca, "cap-01", Role::Captain, "write:panhuo/grid-017")?,
    )?;
    let honest_dir = join(
        root.path(),
        &enroll(&ca, "vol-0042", Role::Volunteer, "write:panhuo/grid-017")?,
    )?;
    let lost_dir = join(
        root.path(),
        &enroll(&ca, "vol-0099", Role::Volunteer, "write:panhuo/grid-017")?,
    )?;
    let captain = start(&captain_dir, loopback(0), vec![office.local_addr])?;
    let honest = start(&honest_dir, loopback(0), vec![captain.local_addr])?;
    let lost = start(&lost_dir, loopback(0), vec![captain.local_addr])?;
    let lost_id = NodeId::parse("vol-0099")?;
    say("office, cap-01 (dials the office), vol-0042 and vol-0099 (dial cap-01) running".into());

    wait_for("both volunteers to hold the plan", || {
        Ok(honest.handle().lock_replica().street_plan()?.is_some()
            && lost.handle().lock_replica().street_plan()?.is_some())
    })
    .await?;

    // Before it is lost, vol-0099 works normally: its visit reaches the office.
    let before = write(&lost, visit("h-0002")).await?;
    let building = before.document.clone();
    wait_for("vol-0099's first visit to reach the office", || {
        Ok(visits_held(&office, &building)?.contains(&id(&before)?))
    })
    .await?;
    say("vol-0099's visit to h-0002 reached the office through cap-01".into());

    // --- The office revokes the lost phone ------------------------------------------------------
    // `gridsync revoke vol-0099`: the revocation names the node and is signed by the street
    // CA. No device can forge one, and the revocation document only ever grows: no change
    // that deletes or overwrites an entry is accepted.
    let revocation = office_ca(&office)?.sign_revocation(&lost_id, unix_ms() / 1000)?;
    let receipt = write(&office, FieldWrite::Revocation { revocation }).await?;
    say(format!("office: {}", receipt.message));

    // The revocation document reaches the captain, who verifies the CA's signature, starts
    // refusing vol-0099 and closes the link it has with it.
    wait_for("cap-01 to apply the revocation", || {
        Ok(captain.handle().is_revoked(&lost_id))
    })
    .await?;
    say("cap-01 received the revocation and refuses vol-0099 from now on".into());
    wait_for("cap-01 to drop its link with vol-0099", || {
        Ok(!connected(&captain, "vol-0099"))
    })
    .await?;
    say("cap-01 closed its link with vol-0099".into());
    // And it travels on: the honest volunteer carries the revocation document too, so any
    // device she meets later learns it from her, even one that never reaches the office.
    wait_for("vol-0042 to apply the revocation", || {
        Ok(honest.handle().is_revoked(&lost_id))
    })
    .await?;
    say("vol-0042 holds the revocation as well".into());

    // --- The lost phone is refused ----------------------------------------------------------------
    // Whoever holds the phone tries to connect to the captain with its certificate. In TLS
    // 1.3 the client finishes its handshake before the server judges the client's certificate,
    // so the refusal shows on first use of the link, carrying the captain's reason.
    let refusal = try_to_connect(&lost_dir, captain.local_addr).await?;
    say(format!("vol-0099 dials cap-01: {refusal}"));
    ensure!(
        refusal.contains("revoked"),
        "the captain refuses the revoked device, saying why: {refusal}"
    );

    // What the phone writes now is saved on the phone, and goes nowhere: its own node keeps
    // dialing the captain and is refused each time. Meanwhile the honest volunteer's visit
    // flows as before; once it is at the office, so would the phone's be, had it been let in.
    let after = write(&lost, visit("h-0003")).await?;
    let honest_visit = write(&honest, visit("h-0004")).await?;
    wait_for("vol-0042's visit to reach the office", || {
        Ok(visits_held(&office, &building)?.contains(&id(&honest_visit)?))
    })
    .await?;
    // Give the phone's dialer a few more attempts (its backoff is at most 500 ms).
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let at_office = visits_held(&office, &building)?;
    let at_captain = visits_held(&captain, &building)?;
    ensure!(
        !at_office.contains(&id(&after)?) && !at_captain.contains(&id(&after)?),
        "the revoked phone's new visit reached nobody"
    );
    ensure!(
        at_office.contains(&id(&before)?),
        "its visit from before the revocation is kept: revocation is not deletion"
    );
    ensure!(
        !connected(&captain, "vol-0099"),
        "the phone never got back in"
    );
    say(format!(
        "office holds {} visits in {building}: vol-0099's from before the revocation and \
         vol-0042's; vol-0099's visit to h-0003 stays on the phone",
        at_office.len()
    ));

    let mut stopping = tokio::task::JoinSet::new();
    for node in [lost, honest, captain, office] {
        stopping.spawn(node.shutdown());
    }
    while stopping.join_next().await.is_some() {}
    Ok(())
}

/// Dials `addr` with the credentials in the store at `dir`, as the device would, and returns
/// the error it ends with.
async fn try_to_connect(dir: &Path, addr: SocketAddr) -> Result<String> {
    let creds = {
        let replica = Replica::open(dir)?;
        credentials::load_credentials(replica.store())?.1
    };
    // The phone's own revocation list is empty: it is the captain's that counts.
    let endpoint = NetEndpoint::bind(loopback(0), &creds, RevocationList::new())?;
    let outcome = match tokio::time::timeout(PATIENCE, endpoint.connect(addr)).await? {
        Err(e) => e.to_string(),
        Ok(mut link) => {
            // The send may only buffer; the receive must fail.
            let sent = link.send(b"hello").await;
            match (sent, tokio::time::timeout(PATIENCE, link.recv()).await?) {
                (Err(e), _) | (Ok(()), Err(e)) => e.to_string(),
                (Ok(()), Ok(_)) => bail!("the captain let a revoked device in"),
            }
        }
    };
    endpoint.close();
    Ok(outcome)
}

fn visit(household: &str) -> FieldWrite {
    FieldWrite::Visit {
        household: household.into(),
        outcome: "contacted".into(),
        people: 2,
        flags: vec![],
        needs: vec![],
        note: None,
        volunteer: None,
        at_ms: None,
    }
}

fn id(receipt: &WriteReceipt) -> Result<String> {
    receipt.record_id.clone().context("a visit has an id")
}

/// Whether `node` has a verified link to `peer` right now.
fn connected(node: &RunningNode, peer: &str) -> bool {
    node.status()
        .peers
        .iter()
        .any(|p| p.node_id.as_str() == peer && p.connected)
}
