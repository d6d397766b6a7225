//! The street office's HTTP API: a volunteer's records arrive over QUIC, and an official
//! reads the street's figures with a plain HTTP client.
//!
//! The office node holds every building of the street. `gridsync-office` keeps the figures
//! officials watch (coverage, outcomes, special needs, open needs, deliveries, sweeps)
//! current as documents change, one building at a time, and serves them as JSON under
//! `/api/v1` behind the office token. Here we wire it as `gridsync run --http ADDR` does,
//! let a volunteer's node send records, and query the API with `ureq` as any script would.
//!
//! What it shows:
//! - starting an office: the token (`load_or_create_token`), the guard against public
//!   addresses (`check_bind_address`), `OfficeState` fed by the running node, `serve`;
//! - `/healthz` needs no token, everything else does (`Authorization: Bearer TOKEN`);
//! - `/api/v1/summary` (the street's totals), `/api/v1/buildings/{id}` (one building with a
//!   line per household), `/api/v1/needs` (who needs what);
//! - figures updating live: a delivery closes the household's open need.
//!
//! Run it with (it takes a couple of seconds):
//!
//! ```sh
//! cargo run -p gridsync-examples --example office_api
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use gridsync_net::StreetCa;
use gridsync_node::Replica;
use gridsync_node::node::unix_ms;
use gridsync_node::ops::FieldWrite;
use gridsync_office::{OfficeOptions, OfficeState, check_bind_address, load_or_create_token};
use gridsync_proto::Role;
use serde_json::Value;

// The street every example stands on: enrollment, joining and starting nodes as the CLI
// does them (examples/street.rs).
mod street;
use street::{PATIENCE, PLAN_CSV, STREET, enroll, join, loopback, start, wait_for, write};

#[tokio::main]
async fn main() -> Result<()> {
    let root = tempfile::tempdir()?;

    // --- The office node, with its plan and its token ----------------------------------------
    let ca = StreetCa::generate(STREET, unix_ms() / 1000)?;
    let office_dir = join(
        root.path(),
        &enroll(&ca, "office", Role::Office, "write:panhuo")?,
    )?;
    let token = {
        let mut replica = Replica::open(&office_dir)?;
        FieldWrite::PlanImport {
            csv: PLAN_CSV.into(),
        }
        .apply_now(&mut replica)?;
        // The officials' password: created once, kept in the office's store, and printed by
        // `gridsync run --http` on first start only.
        let (token, created) = load_or_create_token(&mut replica)?;
        ensure!(created, "a new office has a new token");
        token
    };
    let bearer = format!("Bearer {}", token.reveal());

    // The dashboard shows personal data: it refuses a public address unless told otherwise.
    let http_addr = SocketAddr::from(([127, 0, 0, 1], 0));
    check_bind_address(http_addr, false)?;
    ensure!(
        check_bind_address(SocketAddr::from(([0, 0, 0, 0], 7780)), false).is_err(),
        "all interfaces count as public"
    );

    let office = start(&office_dir, loopback(0), vec![])?;
    // The aggregator reads every building once at start: off the async threads. Rounds are
    // daily, from local midnight in Ningbo (480 minutes east of UTC).
    let shared = office.handle().clone();
    let state = tokio::task::spawn_blocking(move || {
        OfficeState::new(shared, OfficeOptions::daily(token, 480))
    })
    .await?;
    let listener = tokio::net::TcpListener::bind(http_addr).await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gridsync_office::serve(listener, state, async move {
        http_stopped.await.ok();
    }));
    println!("office node on {} (QUIC), API on {base}", office.local_addr);

    // --- An official's first look ------------------------------------------------------------
    let client = Client {
        base: base.clone(),
        bearer: bearer.clone(),
    };
    let health = client.get_text("/healthz", false).await?;
    println!("GET /healthz (no token) -> {}", health.trim());
    ensure!(
        health.trim() == "ok",
        "the health check answers without a token"
    );
    // Without the token, figures are refused.
    let refused = client.get_text("/api/v1/summary", false).await;
    let status = match refused {
        Err(e) => match e.downcast_ref::<ureq::Error>() {
            Some(ureq::Error::StatusCode(code)) => *code,
            _ => return Err(e),
        },
        Ok(body) => bail!("the summary was served without a token: {body}"),
    };
    println!("GET /api/v1/summary (no token) -> HTTP {status}");
    ensure!(status == 401, "no token, no figures");

    let summary = client.get_json("/api/v1/summary").await?;
    let totals = &summary["totals"];
    println!(
        "GET /api/v1/summary -> street {}: {} households in {} buildings, {} visited",
        text(&summary["street"]),
        totals["households"],
        totals["buildings"],
        totals["visited"]
    );
    ensure!(totals["households"] == 60 && totals["visited"] == 0);

    // --- A volunteer's day ---------------------------------------------------------------------
    // vol-0042 (grid-017) connects to the office and records what the README's walkthrough
    // records: a visit to h-0001 (elderly, living alone, needs insulin), a food pack
    // delivered, nobody home at h-0002, and the sweep of unit u1 of b-001.
    let vol_dir = join(
        root.path(),
        &enroll(&ca, "vol-0042", Role::Volunteer, "write:panhuo/grid-017")?,
    )?;
    let volunteer = start(&vol_dir, loopback(0), vec![office.local_addr])?;
    wait_for("the plan to reach vol-0042", || {
        Ok(volunteer.handle().lock_replica().street_plan()?.is_some())
    })
    .await?;
    let writes = [
        street::visit_to_mrs_chen(),
        FieldWrite::Delivery {
            household: "h-0001".into(),
            item: "food-pack".into(),
            status: "delivered".into(),
            note: None,
        },
        FieldWrite::Visit {
            household: "h-0002".into(),
            outcome: "not-home".into(),
            people: 0,
            flags: vec![],
            needs: vec![],
            note: None,
            volunteer: None,
            at_ms: None,
        },
        FieldWrite::Sweep {
            building: "b-001".into(),
            round: 1,
            units: vec!["u1".into()],
            reached: 15,
            not_home: 2,
            refused: 1,
            issues: vec![],
        },
    ];
    for w in writes {
        let receipt = write(&volunteer, w).await?;
        println!("vol-0042: {}", receipt.message);
    }

    // The records reach the office over QUIC; the aggregation folds the building in as the
    // node's change feed reports it. Poll the summary until all four records are counted.
    let summary = client
        .wait_for_json("/api/v1/summary", |s| {
            s["totals"]["records"]["visits"] == 2
                && s["totals"]["records"]["deliveries"] == 1
                && s["totals"]["records"]["sweeps"] == 1
        })
        .await?;
    let totals = &summary["totals"];
    println!(
        "GET /api/v1/summary -> visited {}, contacted {}, not home {}, special-needs households {}, \
         households with open needs {}, delivered {}, units swept {}/{}",
        totals["visited"],
        totals["contacted"],
        totals["not_home"],
        totals["special_needs_households"],
        totals["open_needs_households"],
        totals["deliveries"]["delivered"],
        totals["sweep"]["units_covered"],
        totals["sweep"]["units"]
    );
    ensure!(totals["visited"] == 2 && totals["contacted"] == 1 && totals["not_home"] == 1);
    ensure!(totals["special_needs_households"] == 1 && totals["open_needs_households"] == 1);
    ensure!(totals["deliveries"]["delivered"] == 1 && totals["sweep"]["units_covered"] == 1);

    // One building, a line per household of the plan.
    let building = client.get_json("/api/v1/buildings/b-001").await?;
    let h1 = household(&building, "h-0001")?;
    let deliveries: Vec<String> = h1["deliveries"]
        .as_array()
        .context("deliveries")?
        .iter()
        .map(|d| format!("{} {}", text(&d["item"]), text(&d["status"])))
        .collect();
    println!(
        "GET /api/v1/buildings/b-001 -> {} households; h-0001 (door {}): {} by {}, flags {}, \
         open needs {}, deliveries [{}]",
        building["households"].as_array().map_or(0, Vec::len),
        text(&h1["door"]),
        text(&h1["round_outcome"]),
        text(&h1["latest_visit"]["volunteer"]),
        h1["flags"],
        h1["open_needs"],
        deliveries.join(", ")
    );
    ensure!(building["grid"] == "grid-017" && building["sweep_round"] == 1);
    ensure!(h1["round_outcome"] == "contacted" && h1["latest_visit"]["volunteer"] == "vol-0042");
    ensure!(h1["flags"] == serde_json::json!(["elderly-living-alone"]));
    ensure!(h1["open_needs"]["medicine"] == "insulin");

    // Who needs what: the list an official works from.
    let needs = client.get_json("/api/v1/needs").await?;
    let first = &needs["households"][0];
    println!(
        "GET /api/v1/needs -> {} household(s); first: {} in {}/{}, open needs {}",
        needs["total"],
        text(&first["id"]),
        text(&first["grid"]),
        text(&first["building"]),
        first["open_needs"]
    );
    ensure!(needs["total"] == 1 && first["id"] == "h-0001");

    // --- The insulin is delivered ----------------------------------------------------------------
    // The need stays open until the item that fulfils it (medicine) is delivered at or after
    // the visit that reported it. The food pack did not close it; this does.
    let receipt = write(
        &volunteer,
        FieldWrite::Delivery {
            household: "h-0001".into(),
            item: "medicine".into(),
            status: "delivered".into(),
            note: Some("insulin".into()),
        },
    )
    .await?;
    println!("vol-0042: {}", receipt.message);
    let summary = client
        .wait_for_json("/api/v1/summary", |s| {
            s["totals"]["records"]["deliveries"] == 2
        })
        .await?;
    println!(
        "GET /api/v1/summary -> households with open needs {}, delivered {}",
        summary["totals"]["open_needs_households"], summary["totals"]["deliveries"]["delivered"]
    );
    ensure!(summary["totals"]["open_needs_households"] == 0);
    let building = client.get_json("/api/v1/buildings/b-001").await?;
    ensure!(
        household(&building, "h-0001")?["open_needs"] == serde_json::json!({}),
        "h-0001 has no open need left"
    );

    // --- Stop: the HTTP server drains, then the nodes --------------------------------------------
    let _ = stop_http.send(());
    server.await??;
    let mut stopping = tokio::task::JoinSet::new();
    for node in [volunteer, office] {
        stopping.spawn(node.shutdown());
    }
    while stopping.join_next().await.is_some() {}
    println!("office and volunteer stopped");
    Ok(())
}

/// An official's HTTP client: `ureq`, blocking, so each request runs on a blocking thread.
struct Client {
    base: String,
    bearer: String,
}

impl Client {
    async fn get_text(&self, path: &str, with_token: bool) -> Result<String> {
        let url = format!("{}{path}", self.base);
        let bearer = with_token.then(|| self.bearer.clone());
        tokio::task::spawn_blocking(move || -> Result<String> {
            let mut request = ureq::get(&url);
            if let Some(bearer) = bearer {
                request = request.header("Authorization", &bearer);
            }
            // A 4xx or 5xx status comes back as `ureq::Error::StatusCode`.
            let mut response = request.call()?;
            Ok(response.body_mut().read_to_string()?)
        })
        .await?
    }

    async fn get_json(&self, path: &str) -> Result<Value> {
        let text = self.get_text(path, true).await?;
        serde_json::from_str(&text).with_context(|| format!("{path} is not JSON"))
    }

    /// Polls `path` until `ready` holds for its JSON.
    async fn wait_for_json(&self, path: &str, ready: impl Fn(&Value) -> bool) -> Result<Value> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let value = self.get_json(path).await?;
            if ready(&value) {
                return Ok(value);
            }
            if Instant::now() > deadline {
                bail!("{path} never showed the expected figures: {value}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A JSON string without its quotes (other values as JSON).
fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

fn household<'a>(building: &'a Value, id: &str) -> Result<&'a Value> {
    building["households"]
        .as_array()
        .context("households")?
        .iter()
        .find(|h| h["id"] == id)
        .with_context(|| format!("household {id} in the building"))
}
