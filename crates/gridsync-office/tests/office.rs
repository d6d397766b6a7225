//! The office server on a real in-process node: figures against a recount of the raw records,
//! credentials on every route, live events after a write, streamed exports, and restarts that
//! reuse the stored building summaries.
//!
//! The HTTP client is a few lines over a TCP stream on purpose: the tests see the exact status
//! lines, headers and chunked framing the server sends.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use automerge::Automerge;
use gridsync_model::read::{iter_deliveries, iter_sweeps, iter_visits};
use gridsync_model::{DeliveryStatus, StreetPlan, VisitOutcome};
use gridsync_net::{NodeCredentials, StreetCa};
use gridsync_node::Replica;
use gridsync_node::node::{RunningNode, unix_ms};
use gridsync_node::ops::FieldWrite;
use gridsync_office::aggregate::{CommunityRollup, GridRollup, is_building_path};
use gridsync_office::stored::{SUMMARY_KIND, SummaryBasis};
use gridsync_office::stored_plan::{PLAN_KIND, decode_plan, plan_key};
use gridsync_office::summary::AuthorTally;
use gridsync_office::{
    Aggregator, BuildingSummary, OfficeOptions, OfficeState, OfficeToken, RoundWindow, Totals,
};
use gridsync_proto::{DocPath, NodeId, Role};
use gridsync_testkit::http::Reply;
use gridsync_testkit::{enroll_street_writer as enroll, start_loopback_node as start_node};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const STREET: &str = "panhuo";
const TOKEN: &str = "test-office-token-0123456789";

/// A street of `grids` grids of 3 buildings of 2 units of 4 households, as plan CSV.
fn plan_csv(grids: usize) -> String {
    let mut csv = gridsync_model::PlanCsv::new();
    for g in 0..grids {
        for b in 0..3 {
            for u in 0..2 {
                for h in 0..4 {
                    csv.row(gridsync_model::PlanRow {
                        household: &format!("h-{g}{b}-{u}{h}"),
                        community: &format!("c-{}", g / 2),
                        grid: &format!("grid-{g:03}"),
                        building: &format!("b-{g}{b}"),
                        unit: &format!("u{u}"),
                        door: &format!("room {u}{h}"),
                        residents: 1 + h % 3,
                        zone: ["lockdown", "control", "prevention"][g % 3],
                    });
                }
            }
        }
    }
    csv.finish()
}

/// One office node with its HTTP server on loopback.
struct Office {
    /// The street CA, to enroll more devices.
    ca: StreetCa,
    /// The office's own credentials, to start it again on the same store.
    credentials: NodeCredentials,
    node: Option<RunningNode>,
    state: OfficeState,
    http: SocketAddr,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    dir: tempfile::TempDir,
    round_start_ms: i64,
}

/// An office shut down with its store kept, to be changed while it is down and restarted.
struct StoppedOffice {
    ca: StreetCa,
    credentials: NodeCredentials,
    dir: tempfile::TempDir,
    round_start_ms: i64,
}

impl StoppedOffice {
    /// The office's data directory.
    fn replica_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("office")
    }

    /// Starts the office again on its store, in the same way as the first time.
    async fn restart(self) -> Result<Office> {
        let replica = Replica::open(&self.replica_dir())?;
        Office::serve(
            self.ca,
            self.credentials,
            replica,
            self.dir,
            self.round_start_ms,
        )
        .await
    }
}

impl Office {
    async fn start(grids: usize, round_start_ms: i64) -> Result<Office> {
        let dir = tempfile::tempdir()?;
        let ca = gridsync_testkit::street_ca(STREET)?;
        let (credentials, mut replica) = enroll(&ca, dir.path(), "office", Role::Office)?;
        FieldWrite::PlanImport {
            csv: plan_csv(grids),
        }
        .apply_now(&mut replica)?;
        Office::serve(ca, credentials, replica, dir, round_start_ms).await
    }

    /// Starts the node and the office on `replica` and serves HTTP on loopback.
    async fn serve(
        ca: StreetCa,
        credentials: NodeCredentials,
        replica: Replica,
        dir: tempfile::TempDir,
        round_start_ms: i64,
    ) -> Result<Office> {
        let node = start_node(credentials.clone(), replica, Vec::new())?;
        let options = OfficeOptions {
            token: OfficeToken::parse(TOKEN)?,
            utc_offset_minutes: 480,
            round_start_ms: Some(round_start_ms),
        };
        let state = OfficeState::new(node.handle().clone(), options);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let http = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(gridsync_office::serve(
            listener,
            state.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Ok(Office {
            ca,
            credentials,
            node: Some(node),
            state,
            http,
            server,
            stop: Some(stop),
            dir,
            round_start_ms,
        })
    }

    fn node(&self) -> &RunningNode {
        self.node.as_ref().expect("node running until shutdown")
    }

    fn write(&self, write: FieldWrite) -> Result<()> {
        self.node().write(write)?;
        Ok(())
    }

    /// Waits until the aggregation holds `records` records.
    async fn settle(&self, records: u64) -> Result<Value> {
        for _ in 0..400 {
            let s = get_json(self.http, "/api/v1/summary").await?;
            let r = &s["totals"]["records"];
            let held = ["visits", "deliveries", "sweeps", "corrections"]
                .iter()
                .map(|k| r[k].as_u64().unwrap_or(0))
                .sum::<u64>();
            if held == records {
                return Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("aggregation never reached {records} records")
    }

    async fn shutdown(self) -> Result<()> {
        self.stop().await.map(drop)
    }

    /// Shuts the server and the node down, keeping the store.
    async fn stop(mut self) -> Result<StoppedOffice> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(5), &mut self.server)
            .await
            .context("server did not drain")???;
        if let Some(node) = self.node.take() {
            node.shutdown().await;
        }
        Ok(StoppedOffice {
            ca: self.ca,
            credentials: self.credentials,
            dir: self.dir,
            round_start_ms: self.round_start_ms,
        })
    }
}

/// Opens a raw HTTP/1.1 exchange: `request` (the request line and headers, without the
/// blank line that ends them) is written as it is, for what the test kit's client does not
/// expose (an event stream read line by line).
async fn send_raw(addr: SocketAddr, request: &str) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(addr).await?;
    stream
        .write_all(format!("{request}\r\nHost: office\r\nConnection: close\r\n\r\n").as_bytes())
        .await?;
    Ok(stream)
}

/// `method path` through the test kit's HTTP client, on a blocking thread (the server under
/// test shares this runtime).
async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Reply> {
    let (method, path, body) = (method.to_owned(), path.to_owned(), body.to_owned());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let headers: Vec<(&str, &str)> = headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        gridsync_testkit::http::request(addr, &method, &path, &headers, &body)
    })
    .await?
}

async fn get_authed(addr: SocketAddr, path: &str) -> Result<Reply> {
    let auth = format!("Bearer {TOKEN}");
    request(addr, "GET", path, &[("Authorization", &auth)], "").await
}

async fn get_json(addr: SocketAddr, path: &str) -> Result<Value> {
    let reply = get_authed(addr, path).await?;
    if reply.status != 200 {
        bail!("{path}: status {}", reply.status);
    }
    reply.json()
}

/// Figures recounted from the raw records of the office's documents (no corrections are
/// written by these tests, so every record is live).
#[derive(Debug, Default, PartialEq, Eq)]
struct Recount {
    households: u64,
    visited: u64,
    contacted: u64,
    not_home: u64,
    refused: u64,
    never_reached: u64,
    special_needs_households: u64,
    open_needs_households: u64,
    pending: u64,
    delivered: u64,
    failed: u64,
    visits: u64,
    deliveries: u64,
    sweeps: u64,
    units_covered: u64,
}

/// Every document the replica holds, loaded from the store where need be.
fn held_documents(replica: &mut Replica) -> Result<BTreeMap<DocPath, Automerge>> {
    let mut docs = BTreeMap::new();
    for path in replica.doc_paths()? {
        if let Some(doc) = replica.doc(&path)? {
            docs.insert(path, doc.clone());
        }
    }
    Ok(docs)
}

fn recount(
    docs: &BTreeMap<DocPath, Automerge>,
    plan: &StreetPlan,
    round_start: i64,
    only_grid: Option<&str>,
) -> Recount {
    let mut r = Recount::default();
    for (id, b) in plan.buildings() {
        if only_grid.is_some_and(|g| g != b.grid) {
            continue;
        }
        let path = gridsync_model::building_path(STREET, &b.grid, id).expect("valid path");
        let empty = gridsync_model::genesis(gridsync_model::DocKind::Building);
        let doc = docs.get(&path).unwrap_or(&empty);
        let visits: Vec<_> = iter_visits(doc).filter_map(Result::ok).collect();
        let deliveries: Vec<_> = iter_deliveries(doc).filter_map(Result::ok).collect();
        let sweeps: Vec<_> = iter_sweeps(doc).filter_map(Result::ok).collect();
        r.visits += visits.len() as u64;
        r.deliveries += deliveries.len() as u64;
        r.sweeps += sweeps.len() as u64;
        for h in &b.households {
            r.households += 1;
            let mine: Vec<_> = visits.iter().filter(|v| &v.household == h).collect();
            let latest = mine
                .iter()
                .filter(|v| v.at_ms >= round_start)
                .max_by_key(|v| (v.at_ms, v.id.clone()));
            if let Some(v) = latest {
                r.visited += 1;
                match v.outcome {
                    VisitOutcome::Contacted => r.contacted += 1,
                    VisitOutcome::NotHome => r.not_home += 1,
                    VisitOutcome::Refused => r.refused += 1,
                    _ => {}
                }
            }
            if !mine.iter().any(|v| {
                matches!(
                    v.outcome,
                    VisitOutcome::Contacted | VisitOutcome::MovedOut | VisitOutcome::Vacant
                )
            }) {
                r.never_reached += 1;
            }
            let mut items: BTreeMap<_, Vec<_>> = BTreeMap::new();
            for e in deliveries.iter().filter(|e| &e.household == h) {
                items.entry(e.item).or_default().push(e);
            }
            let mut delivered_at = BTreeMap::new();
            for (item, evs) in &items {
                let d = evs
                    .iter()
                    .filter(|e| e.status == DeliveryStatus::Delivered)
                    .min_by_key(|e| (e.at_ms, e.id.clone()));
                let l = evs
                    .iter()
                    .max_by_key(|e| (e.at_ms, e.id.clone()))
                    .expect("non-empty");
                let decider = d.unwrap_or(l);
                match decider.status {
                    DeliveryStatus::Requested | DeliveryStatus::OutForDelivery => r.pending += 1,
                    DeliveryStatus::Delivered => {
                        r.delivered += 1;
                        delivered_at.insert(*item, decider.at_ms);
                    }
                    DeliveryStatus::Failed => r.failed += 1,
                    DeliveryStatus::Cancelled => {}
                }
            }
            if let Some(v) = mine
                .iter()
                .filter(|v| v.outcome == VisitOutcome::Contacted)
                .max_by_key(|v| (v.at_ms, v.id.clone()))
            {
                if !v.flags.is_empty() {
                    r.special_needs_households += 1;
                }
                // A need is open unless its item was delivered at or after the visit.
                let open = v.needs.keys().any(|n| {
                    n.fulfilled_by()
                        .is_none_or(|i| delivered_at.get(&i).is_none_or(|at| *at < v.at_ms))
                });
                if open {
                    r.open_needs_households += 1;
                }
            }
        }
        if let Some(max) = sweeps.iter().map(|s| s.round).max() {
            let units: BTreeSet<_> = sweeps
                .iter()
                .filter(|s| s.round == max)
                .flat_map(|s| s.units_covered.iter())
                .collect();
            r.units_covered += units.len() as u64;
        }
    }
    r
}

fn from_api(t: &Value) -> Recount {
    let n = |v: &Value| v.as_u64().unwrap_or(u64::MAX);
    Recount {
        households: n(&t["households"]),
        visited: n(&t["visited"]),
        contacted: n(&t["contacted"]),
        not_home: n(&t["not_home"]),
        refused: n(&t["refused"]),
        never_reached: n(&t["never_reached"]),
        special_needs_households: n(&t["special_needs_households"]),
        open_needs_households: n(&t["open_needs_households"]),
        pending: n(&t["deliveries"]["pending"]),
        delivered: n(&t["deliveries"]["delivered"]),
        failed: n(&t["deliveries"]["failed"]),
        visits: n(&t["records"]["visits"]),
        deliveries: n(&t["records"]["deliveries"]),
        sweeps: n(&t["records"]["sweeps"]),
        units_covered: n(&t["sweep"]["units_covered"]),
    }
}

/// Writes a deterministic mix of visits (some before the round), deliveries and sweeps.
/// Returns how many records were written.
async fn write_street(office: &Office, grids: usize, round_start: i64) -> Result<u64> {
    let outcomes = ["contacted", "not-home", "refused", "contacted", "vacant"];
    let items = ["food-pack", "medicine", "water"];
    let statuses = ["requested", "out-for-delivery", "delivered", "failed"];
    let mut written = 0u64;
    let mut step = 0i64;
    for g in 0..grids {
        for b in 0..3 {
            for u in 0..2 {
                for h in 0..4 {
                    let household = format!("h-{g}{b}-{u}{h}");
                    let n = g * 24 + b * 8 + u * 4 + h;
                    for k in 0..(n % 3) {
                        step += 1;
                        // The first visit of some households falls in the previous round.
                        let at = if k == 0 && n % 4 == 0 {
                            round_start - 3_600_000 + step
                        } else {
                            round_start + step * 7
                        };
                        office.write(FieldWrite::Visit {
                            household: household.clone(),
                            outcome: outcomes[(n + k) % outcomes.len()].into(),
                            people: 1,
                            flags: if n % 5 == 0 {
                                vec!["elderly-living-alone".into()]
                            } else {
                                vec![]
                            },
                            needs: if n % 3 == 1 {
                                vec!["medicine:insulin".into(), "food".into()]
                            } else {
                                vec![]
                            },
                            note: None,
                            volunteer: Some(format!("vol-{}", n % 4)),
                            at_ms: Some(at),
                        })?;
                        written += 1;
                    }
                    if n % 2 == 0 {
                        office.write(FieldWrite::Delivery {
                            household: household.clone(),
                            item: items[n % items.len()].into(),
                            status: statuses[n % statuses.len()].into(),
                            note: None,
                        })?;
                        written += 1;
                    }
                }
            }
            if (g + b) % 2 == 0 {
                office.write(FieldWrite::Sweep {
                    building: format!("b-{g}{b}"),
                    round: 1 + (b as u32 % 2),
                    units: vec!["u0".into()],
                    reached: 3,
                    not_home: 1,
                    refused: 0,
                    issues: vec![],
                })?;
                written += 1;
            }
        }
    }
    Ok(written)
}

/// Sums of one timeline's hours: (visited, needs reported, delivered).
fn timeline_sums(timeline: &Value) -> Result<(u64, u64, u64)> {
    let hours = timeline["hours"].as_array().context("hours")?;
    let sum = |key: &str| hours.iter().map(|h| h[key].as_u64().unwrap_or(0)).sum();
    Ok((sum("visited"), sum("needs_reported"), sum("delivered")))
}

/// The timeline of the street and of every grid adds up to the recounted round: every
/// household visited this round once, every (household, need) reported this round once,
/// every item delivered (the test's deliveries are all written in this round).
async fn assert_timeline_matches(
    office: &Office,
    docs: &BTreeMap<DocPath, Automerge>,
    plan: &StreetPlan,
    round_start: i64,
    expected: &Recount,
) -> Result<()> {
    let needs_reported = |only_grid: Option<&str>| -> u64 {
        let mut pairs = BTreeSet::new();
        for (path, doc) in docs {
            if only_grid.is_some_and(|g| path.segments().nth(1) != Some(g)) {
                continue;
            }
            for v in iter_visits(doc).filter_map(Result::ok) {
                if v.at_ms >= round_start && plan.household(&v.household).is_some() {
                    pairs.extend(v.needs.keys().map(|n| (v.household.clone(), *n)));
                }
            }
        }
        pairs.len() as u64
    };
    let street = get_json(office.http, "/api/v1/timeline").await?;
    assert_eq!(street["round_start_ms"].as_i64(), Some(round_start));
    assert_eq!(street["households"].as_u64(), Some(expected.households));
    assert_eq!(
        timeline_sums(&street)?,
        (expected.visited, needs_reported(None), expected.delivered)
    );
    assert!(needs_reported(None) > 0, "the street reported needs");
    let grid_ids: BTreeSet<String> = plan.buildings().map(|(_, b)| b.grid.clone()).collect();
    for id in grid_ids {
        let grid = get_json(office.http, &format!("/api/v1/timeline?grid={id}")).await?;
        let recounted = recount(docs, plan, round_start, Some(&id));
        assert_eq!(grid["households"].as_u64(), Some(recounted.households));
        assert_eq!(
            timeline_sums(&grid)?,
            (
                recounted.visited,
                needs_reported(Some(&id)),
                recounted.delivered
            ),
            "grid {id}"
        );
    }
    let unknown = get_authed(office.http, "/api/v1/timeline?grid=nope").await?;
    assert_eq!(unknown.status, 404);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_figures_equal_a_recount_from_the_raw_records() -> Result<()> {
    let grids = 4;
    let round_start = unix_ms() as i64 - 300_000;
    let office = Office::start(grids, round_start).await?;
    let written = write_street(&office, grids, round_start).await?;
    let summary = office.settle(written).await?;

    let (docs, plan) = {
        let mut replica = office.node().handle().lock_replica();
        let plan = replica.street_plan()?.context("plan")?;
        (held_documents(&mut replica)?, plan)
    };
    let expected = recount(&docs, &plan, round_start, None);
    assert_eq!(from_api(&summary["totals"]), expected);
    assert!(expected.visited > 0 && expected.visited < expected.households);
    assert!(expected.open_needs_households > 0 && expected.delivered > 0);

    // Every grid of the tree, and every building's detail.
    let places = get_json(office.http, "/api/v1/places").await?;
    let mut grids_seen = 0;
    for c in places["communities"].as_array().context("communities")? {
        for g in c["grids"].as_array().context("grids")? {
            let id = g["id"].as_str().context("grid id")?;
            assert_eq!(
                from_api(&g["totals"]),
                recount(&docs, &plan, round_start, Some(id)),
                "grid {id}"
            );
            grids_seen += 1;
            for b in g["buildings"].as_array().context("buildings")? {
                let bid = b["id"].as_str().context("building id")?;
                let detail = get_json(office.http, &format!("/api/v1/buildings/{bid}")).await?;
                assert_eq!(detail["totals"], b["totals"], "building {bid}");
                assert_eq!(detail["households"].as_array().map(Vec::len), Some(8));
            }
        }
    }
    assert_eq!(grids_seen, grids);
    assert_timeline_matches(&office, &docs, &plan, round_start, &expected).await?;
    assert_eq!(
        get_authed(office.http, "/api/v1/buildings/nope")
            .await?
            .status,
        404
    );

    // The needs list holds exactly the households with flags or open needs.
    let needs = get_json(office.http, "/api/v1/needs?limit=1000").await?;
    let listed = needs["households"].as_array().context("needs")?;
    assert_eq!(needs["total"].as_u64(), Some(listed.len() as u64));
    let open = listed
        .iter()
        .filter(|h| h["open_needs"].as_object().is_some_and(|m| !m.is_empty()))
        .count() as u64;
    assert_eq!(open, expected.open_needs_households);

    // Records, page by page, add up to every visit exactly once.
    let mut ids = BTreeSet::new();
    let mut offset = 0;
    loop {
        let page = get_json(
            office.http,
            &format!("/api/v1/records?kind=visit&limit=37&offset={offset}"),
        )
        .await?;
        assert_eq!(page["total"].as_u64(), Some(expected.visits));
        let rows = page["records"].as_array().context("records")?;
        if rows.is_empty() {
            break;
        }
        for r in rows {
            assert_eq!(r["kind"], "visit");
            assert!(ids.insert(r["id"].as_str().context("id")?.to_owned()));
        }
        offset += rows.len();
    }
    assert_eq!(ids.len() as u64, expected.visits);
    let one = get_json(office.http, "/api/v1/records?household=h-00-02").await?;
    for r in one["records"].as_array().context("records")? {
        assert_eq!(r["household"], "h-00-02");
    }
    // Two visits and one delivery event were written for it.
    assert_eq!(one["total"].as_u64(), Some(3));
    assert_eq!(
        get_authed(office.http, "/api/v1/records?kind=bogus")
            .await?
            .status,
        400
    );

    // Devices: every volunteer named in the records, with its record count.
    let devices = get_json(office.http, "/api/v1/devices").await?;
    let total: u64 = devices["devices"]
        .as_array()
        .context("devices")?
        .iter()
        .map(|d| d["records"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, written);

    let metrics = get_authed(office.http, "/metrics").await?;
    let text = String::from_utf8(metrics.body)?;
    assert!(text.contains("# TYPE gridsync_peer_sessions gauge"));
    assert!(text.contains(&format!(
        "gridsync_records{{kind=\"visit\"}} {}",
        expected.visits
    )));
    assert!(text.contains("gridsync_store_file_bytes "));
    // Every write went through the node: the write-latency summary counts them all.
    assert!(
        text.contains(&format!("gridsync_write_seconds_count {written}")),
        "{text}"
    );
    office.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_but_health_and_login_refuses_without_credentials() -> Result<()> {
    let office = Office::start(1, 0).await?;
    let routes = [
        ("GET", "/"),
        ("GET", "/api/v1/summary"),
        ("GET", "/api/v1/places"),
        ("GET", "/api/v1/buildings/b-00"),
        ("GET", "/api/v1/needs"),
        ("GET", "/api/v1/devices"),
        ("GET", "/api/v1/timeline"),
        ("GET", "/api/v1/records"),
        ("GET", "/api/v1/export.csv"),
        ("GET", "/api/v1/export.json"),
        ("GET", "/api/v1/events"),
        ("GET", "/metrics"),
        ("POST", "/logout"),
    ];
    for (method, path) in routes {
        let none = request(office.http, method, path, &[], "").await?;
        assert_eq!(none.status, 401, "{method} {path} without credentials");
        assert!(none.header("www-authenticate").is_some());
        let wrong = request(
            office.http,
            method,
            path,
            &[("Authorization", "Bearer not-the-token-at-all")],
            "",
        )
        .await?;
        assert_eq!(wrong.status, 401, "{method} {path} with a wrong token");
        let forged = request(
            office.http,
            method,
            path,
            &[("Cookie", "gridsync_office=0123456789abcdef")],
            "",
        )
        .await?;
        assert_eq!(forged.status, 401, "{method} {path} with a forged session");
    }
    // The browser without credentials gets the login form with its 401.
    let page = request(office.http, "GET", "/", &[], "").await?;
    assert!(String::from_utf8_lossy(&page.body).contains("id=\"login-form\""));

    assert_eq!(
        request(office.http, "GET", "/healthz", &[], "")
            .await?
            .status,
        200
    );
    assert_eq!(
        request(office.http, "GET", "/login", &[], "").await?.status,
        200
    );
    let form = [("Content-Type", "application/x-www-form-urlencoded")];
    let bad = request(office.http, "POST", "/login", &form, "token=guess").await?;
    assert_eq!(bad.status, 401);
    assert!(bad.header("set-cookie").is_none());
    let good = request(
        office.http,
        "POST",
        "/login",
        &form,
        &format!("token={TOKEN}"),
    )
    .await?;
    assert_eq!(good.status, 303);
    let cookie = good.header("set-cookie").context("session cookie")?;
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let session = cookie.split(';').next().context("cookie pair")?.to_owned();
    let with_cookie = [("Cookie", session.as_str())];
    let dash = request(office.http, "GET", "/", &with_cookie, "").await?;
    assert_eq!(dash.status, 200);
    let html = String::from_utf8_lossy(&dash.body);
    for id in [
        "visited-count",
        "event-log",
        "grid-table",
        "needs-list",
        "devices-table",
    ] {
        assert!(
            html.contains(&format!("id=\"{id}\"")),
            "dashboard lacks #{id}"
        );
    }
    let summary = request(office.http, "GET", "/api/v1/summary", &with_cookie, "").await?;
    assert_eq!(summary.status, 200);
    assert_eq!(
        get_authed(office.http, "/api/v1/summary").await?.status,
        200
    );
    // Logging out ends the session.
    let out = request(office.http, "POST", "/logout", &with_cookie, "").await?;
    assert_eq!(out.status, 303);
    let after = request(office.http, "GET", "/api/v1/summary", &with_cookie, "").await?;
    assert_eq!(after.status, 401);
    office.shutdown().await
}

/// Reads server-sent events until the next `data:` line and parses it. Chunked framing lines
/// and other fields are skipped; axum writes each event's data line whole.
async fn next_summary(reader: &mut BufReader<TcpStream>) -> Result<Value> {
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            bail!("event stream ended");
        }
        if let Some(data) = line.trim_end().strip_prefix("data: ") {
            return Ok(serde_json::from_str(data)?);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_deliver_a_new_summary_after_a_write() -> Result<()> {
    let office = Office::start(1, 0).await?;
    let auth = format!("Bearer {TOKEN}");
    let stream = send_raw(
        office.http,
        &format!(
            "GET /api/v1/events HTTP/1.1\r\nAuthorization: {auth}\r\nAccept: text/event-stream"
        ),
    )
    .await?;
    let mut reader = BufReader::new(stream);
    let first = tokio::time::timeout(Duration::from_secs(10), next_summary(&mut reader)).await??;
    assert_eq!(first["totals"]["visited"], 0);
    office.write(FieldWrite::Visit {
        household: "h-00-00".into(),
        outcome: "contacted".into(),
        people: 2,
        flags: vec!["pregnant".into()],
        needs: vec!["baby-supplies".into()],
        note: None,
        volunteer: None,
        at_ms: None,
    })?;
    let next = tokio::time::timeout(Duration::from_secs(10), next_summary(&mut reader)).await??;
    assert_eq!(next["totals"]["visited"], 1);
    assert_eq!(next["totals"]["open_needs"]["baby-supplies"], 1);
    assert!(next["version"].as_u64() > first["version"].as_u64());
    // The open stream does not hold up shutdown.
    office.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_stream_every_record_in_chunks() -> Result<()> {
    let grids = 4;
    let office = Office::start(grids, 0).await?;
    let mut written = write_street(&office, grids, unix_ms() as i64 - 60_000).await?;
    // Enough rows for several 32 KiB chunks.
    for i in 0..300 {
        office.write(FieldWrite::Visit {
            household: format!("h-{}{}-{}{}", i % grids, i % 3, i % 2, i % 4),
            outcome: "not-home".into(),
            people: 0,
            flags: vec![],
            needs: vec![],
            note: Some("a longer note so that the export spans several chunks of the body".into()),
            volunteer: None,
            at_ms: None,
        })?;
        written += 1;
    }
    office.settle(written).await?;

    let csv = get_authed(office.http, "/api/v1/export.csv").await?;
    assert_eq!(csv.status, 200);
    assert!(
        csv.header("transfer-encoding")
            .is_some_and(|v| v.contains("chunked"))
    );
    // Streamed: chunked, and longer than the two 32 KiB chunks the office sends first.
    assert!(csv.body.len() > 2 * 32 * 1024, "{} bytes", csv.body.len());
    let mut reader = csv::Reader::from_reader(csv.body.as_slice());
    assert_eq!(
        reader.headers()?.iter().take(3).collect::<Vec<_>>(),
        ["document", "kind", "id"]
    );
    assert_eq!(reader.records().count() as u64, written);

    let json = get_authed(office.http, "/api/v1/export.json").await?;
    assert_eq!(json.status, 200);
    let rows = json.json()?;
    let rows = rows.as_array().context("array")?;
    assert_eq!(rows.len() as u64, written);
    let ids: BTreeSet<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), rows.len());
    office.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_from_a_peer_and_a_new_plan_reach_the_aggregation() -> Result<()> {
    let office = Office::start(1, 0).await?;
    let before = get_json(office.http, "/api/v1/summary").await?;
    assert_eq!(before["totals"]["households"], 24);

    // A captain syncs the plan from the office, then logs a visit on site.
    let (credentials, replica) = enroll(&office.ca, office.dir.path(), "cap-1", Role::Captain)?;
    let captain = start_node(credentials, replica, vec![office.node().local_addr])?;
    let mut has_plan = false;
    for _ in 0..200 {
        if captain.handle().lock_replica().street_plan()?.is_some() {
            has_plan = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(has_plan, "captain never received the plan");
    captain.write(FieldWrite::Visit {
        household: "h-01-12".into(),
        outcome: "contacted".into(),
        people: 1,
        flags: vec!["disability".into()],
        needs: vec!["water".into()],
        note: None,
        volunteer: None,
        at_ms: None,
    })?;
    let summary = office.settle(1).await?;
    assert_eq!(summary["totals"]["visited"], 1);
    assert_eq!(summary["totals"]["open_needs"]["water"], 1);
    let devices = get_json(office.http, "/api/v1/devices").await?;
    let cap = devices["devices"]
        .as_array()
        .context("devices")?
        .iter()
        .find(|d| d["device"] == "cap-1")
        .context("captain listed")?
        .clone();
    assert_eq!(cap["records"], 1);
    assert_eq!(cap["peer"]["connected"], true);
    assert!(cap["behind_ms"].as_i64().is_some());
    // The captain's visit, and its entry in the device directory published at start, arrived
    // direct from their author (counted from the store, where the writer thread puts them
    // once durable: polled).
    let direct = "gridsync_changes_received_total{via=\"cap-1\",arrival=\"direct\"} 2";
    let mut metrics = String::new();
    for _ in 0..200 {
        metrics = String::from_utf8(get_authed(office.http, "/metrics").await?.body)?;
        if metrics.contains(direct) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(metrics.contains("gridsync_peer_sessions 1"), "{metrics}");
    assert!(
        metrics.contains("gridsync_equivocating_devices 0"),
        "{metrics}"
    );
    assert!(metrics.contains("gridsync_document_changes_total{source=\"peer\"}"));
    assert!(metrics.contains(direct), "{metrics}");

    // The office re-imports a larger plan: the aggregation is re-keyed to it.
    office.write(FieldWrite::PlanImport { csv: plan_csv(3) })?;
    let mut households = 0;
    for _ in 0..200 {
        let s = get_json(office.http, "/api/v1/summary").await?;
        households = s["totals"]["households"].as_u64().unwrap_or(0);
        if households == 72 {
            assert_eq!(s["totals"]["visited"], 1, "records survive the re-key");
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(households, 72);
    captain.shutdown().await;
    office.shutdown().await
}

/// Everything the aggregation reports, for comparing two aggregations exactly.
#[derive(Debug, PartialEq)]
struct Figures {
    buildings: BTreeMap<String, BuildingSummary>,
    grids: BTreeMap<String, GridRollup>,
    communities: BTreeMap<String, CommunityRollup>,
    street: Totals,
    authors: BTreeMap<String, AuthorTally>,
}

impl Figures {
    fn of(aggregator: &Aggregator) -> Figures {
        Figures {
            buildings: aggregator.buildings().clone(),
            grids: aggregator.grids().clone(),
            communities: aggregator.communities().clone(),
            street: aggregator.street_totals().clone(),
            authors: aggregator.authors().clone(),
        }
    }
}

impl Office {
    /// The live aggregation's figures.
    fn figures(&self) -> Figures {
        self.state.with_aggregator(Figures::of)
    }

    /// The figures of an aggregation built from scratch out of every document the node holds.
    fn figures_from_scratch(&self) -> Result<Figures> {
        let round = RoundWindow::starting_at(self.round_start_ms);
        let (docs, plan) = {
            let mut replica = self.node().handle().lock_replica();
            let plan = replica.street_plan()?.context("plan")?;
            (held_documents(&mut replica)?, plan)
        };
        let mut scratch = Aggregator::new(STREET, round);
        scratch.rebuild(plan, round, docs.iter());
        Ok(Figures::of(&scratch))
    }

    /// `(reused, computed)` building summaries of the office's rebuilds so far.
    fn summary_sources(&self) -> (u64, u64) {
        let c = self.state.counters();
        (
            c.summaries_reused.load(Ordering::Relaxed),
            c.summaries_computed.load(Ordering::Relaxed),
        )
    }

    /// Waits until every building document's stored summary is keyed by its current heads
    /// (the live updates store theirs once per burst, after the figures are published).
    async fn stored_summaries_current(&self) -> Result<usize> {
        let basis = |replica: &mut Replica| -> Result<SummaryBasis> {
            let plan_path = gridsync_model::plan_path(STREET)?;
            Ok(SummaryBasis::new(
                replica.heads(&plan_path)?.unwrap_or_default(),
                RoundWindow::starting_at(self.round_start_ms),
            ))
        };
        for _ in 0..200 {
            let (buildings, current) = {
                let mut replica = self.node().handle().lock_replica();
                let basis = basis(&mut replica)?;
                let paths: Vec<DocPath> = replica
                    .doc_paths()?
                    .into_iter()
                    .filter(|p| is_building_path(STREET, p))
                    .collect();
                let mut current = 0;
                for path in &paths {
                    let heads = replica.heads(path)?.unwrap_or_default();
                    let stored = replica.store().derived_entry(SUMMARY_KIND, path)?;
                    if stored.is_some_and(|e| e.source_key == basis.source_key(path, &heads)) {
                        current += 1;
                    }
                }
                (paths.len(), current)
            };
            if current == buildings {
                return Ok(buildings);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        bail!("stored summaries never caught up with the building documents")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_office_reuses_stored_summaries_and_recomputes_what_changed() -> Result<()> {
    let grids = 2;
    let round_start = unix_ms() as i64 - 300_000;
    let office = Office::start(grids, round_start).await?;
    let written = write_street(&office, grids, round_start).await?;
    office.settle(written).await?;
    // Live updates stored a summary for every building they folded in.
    let documents = office.stored_summaries_current().await?;
    assert!(documents >= 3, "{documents} building documents");
    let before = office.figures();
    assert_eq!(before, office.figures_from_scratch()?);

    // A restart with nothing changed summarizes no building from its document.
    let office = office.stop().await?.restart().await?;
    {
        // The plan it aggregated with came from the store's copy, keyed by the plan's heads.
        let mut replica = office.node().handle().lock_replica();
        let plan_path = gridsync_model::plan_path(STREET)?;
        let heads = replica.heads(&plan_path)?.context("a plan")?;
        let stored = replica
            .store()
            .derived_entry(PLAN_KIND, &plan_path)?
            .context("a stored plan")?;
        assert_eq!(stored.source_key, plan_key(&heads));
        assert_eq!(
            decode_plan(&stored.value)?,
            *replica.street_plan()?.context("a plan")?
        );
    }
    assert_eq!(office.summary_sources(), (documents as u64, 0));
    assert_eq!(office.figures(), before);
    assert_eq!(office.figures(), office.figures_from_scratch()?);
    let metrics = String::from_utf8(get_authed(office.http, "/metrics").await?.body)?;
    assert!(
        metrics.contains(&format!(
            "gridsync_office_summaries_reused_total {documents}"
        )),
        "{metrics}"
    );
    assert!(metrics.contains("gridsync_office_summaries_computed_total 0"));

    // While the office is down, one building gets a visit and another's stored summary is
    // damaged.
    let stopped = office.stop().await?;
    let (changed, damaged) = {
        let mut replica = Replica::open(&stopped.replica_dir())?;
        let receipt = FieldWrite::Visit {
            household: "h-00-00".into(),
            outcome: "contacted".into(),
            people: 2,
            flags: vec![],
            needs: vec!["water".into()],
            note: None,
            volunteer: Some("vol-late".into()),
            at_ms: Some(round_start + 1),
        }
        .apply_now(&mut replica)?;
        let changed = receipt.document;
        let entries = replica.store().derived(SUMMARY_KIND)?;
        let mut victim = entries
            .into_iter()
            .find(|e| e.path != changed)
            .context("another stored summary")?;
        victim.value = b"{\"building\": 12, truncated".to_vec();
        replica.store_derived(SUMMARY_KIND, vec![victim.clone()])?;
        (changed, victim.path)
    };
    let office = stopped.restart().await?;
    assert_eq!(office.summary_sources(), (documents as u64 - 2, 2));
    let after = office.figures();
    assert_eq!(after, office.figures_from_scratch()?);
    let building = changed.segments().nth(2).context("building id")?;
    assert_eq!(
        after.buildings[building].totals.records.visits,
        before.buildings[building].totals.records.visits + 1
    );
    assert!(after.authors.contains_key("vol-late"));
    let damaged = damaged.segments().nth(2).context("building id")?;
    assert_eq!(after.buildings[damaged], before.buildings[damaged]);
    // Both were stored again: the next start reuses everything.
    office.stored_summaries_current().await?;
    let office = office.stop().await?.restart().await?;
    assert_eq!(office.summary_sources(), (documents as u64, 0));
    office.shutdown().await
}

const HOUR_MS: i64 = 3_600_000;

/// A visit to `household` by this device's node id, at the device's own clock.
fn visit(household: &str, outcome: &str) -> FieldWrite {
    FieldWrite::visit(household, outcome)
}

/// A replacement of visit `record` of building `b-00` with `outcome`.
fn replace(record: &str, outcome: &str) -> FieldWrite {
    FieldWrite::Correction {
        building: "b-00".into(),
        record: record.into(),
        reason: "wrong outcome".into(),
        outcome: Some(outcome.into()),
    }
}

/// Waits until `node` holds the plan and its copy of building `b-00` holds `visits` visits.
async fn wait_for_visits(node: &RunningNode, visits: usize) -> Result<()> {
    let path = DocPath::parse(&format!("{STREET}/grid-000/b-00"))?;
    for _ in 0..400 {
        {
            let mut replica = node.handle().lock_replica();
            let held = match replica.doc(&path)? {
                Some(doc) => iter_visits(doc).count(),
                None => 0,
            };
            if replica.street_plan()?.is_some() && held == visits {
                return Ok(());
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    bail!("the device never received {visits} visits")
}

/// A device enrolled, given the plan and building `b-00` as they are at the office by a first
/// contact, then stopped: its replica, to write on with a clock of its own.
async fn device_with_building(
    office: &Office,
    name: &str,
    visits: usize,
) -> Result<(NodeCredentials, Replica)> {
    let (credentials, replica) = enroll(&office.ca, office.dir.path(), name, Role::Volunteer)?;
    let node = start_node(credentials.clone(), replica, vec![office.node().local_addr])?;
    wait_for_visits(&node, visits).await?;
    node.shutdown().await;
    let mut replica = Replica::open(&office.dir.path().join(name))?;
    replica.set_signing_key(&credentials.key_der)?;
    replica.set_trust_root(office.ca.cert_der().to_vec());
    Ok((credentials, replica))
}

fn household<'a>(building: &'a Value, id: &str) -> Result<&'a Value> {
    gridsync_testkit::http::entry(building, "households", "id", id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteer_whose_clock_is_6_hours_ahead_neither_moves_nor_pins_records() -> Result<()> {
    let now = unix_ms() as i64;
    let office = Office::start(1, now - HOUR_MS).await?;
    // An honest captain, connected to the office, has visited h-00-01.
    let (credentials, replica) = enroll(&office.ca, office.dir.path(), "cap-1", Role::Captain)?;
    let captain = start_node(credentials, replica, vec![office.node().local_addr])?;
    wait_for_visits(&captain, 0).await?;
    let honest = captain.write(visit("h-00-01", "contacted"))?;
    let honest_id = honest.record_id.context("a visit id")?;
    office.settle(1).await?;

    // A volunteer whose clock runs 6 hours ahead logs two visits and corrects the captain's.
    let (credentials, mut fast) = device_with_building(&office, "vol-fast", 1).await?;
    let fast_now = unix_ms() + 6 * HOUR_MS as u64;
    let fast_h0 = visit("h-00-00", "not-home").apply(&mut fast, fast_now)?;
    visit("h-00-02", "not-home").apply(&mut fast, fast_now)?;
    replace(&honest_id, "refused").apply(&mut fast, fast_now)?;
    let fast = start_node(credentials, fast, vec![office.node().local_addr])?;
    office.settle(4).await?;
    fast.shutdown().await;

    // Later, by the true time, the captain visits h-00-00 and corrects his own visit.
    tokio::time::sleep(Duration::from_millis(20)).await;
    captain.write(visit("h-00-00", "contacted"))?;
    captain.write(replace(&honest_id, "moved-out"))?;
    office.settle(6).await?;

    let building = get_json(office.http, "/api/v1/buildings/b-00").await?;
    // "The latest visit" of h-00-00 is the captain's, which is later by the office's clock.
    let h0 = household(&building, "h-00-00")?;
    assert_eq!(h0["latest_visit"]["volunteer"], "cap-1", "{h0}");
    assert_eq!(h0["round_outcome"], "contacted", "{h0}");
    assert_eq!(h0["visits"], 2);
    // The captain's correction of his visit is in force, not the fast device's.
    let h1 = household(&building, "h-00-01")?;
    assert_eq!(h1["latest_visit"]["outcome"], "moved-out", "{h1}");
    // h-00-02, visited only by the fast device, counts in the current round, at the time the
    // office first saw the visit, flagged.
    let h2 = household(&building, "h-00-02")?;
    assert_eq!(h2["round_outcome"], "not-home", "{h2}");
    let seen = h2["latest_visit"]["at_ms"].as_i64().context("at_ms")?;
    assert!(seen < unix_ms() as i64 + 1000, "{h2}");
    assert_eq!(h2["latest_visit"]["clock_ahead"], true, "{h2}");
    assert!(h2["latest_visit"]["claimed_at_ms"].as_i64() > Some(now + 5 * HOUR_MS));
    // Flagged in the figures and per device: two visits and a correction.
    assert_eq!(building["totals"]["clock_ahead"], 3, "{building}");
    let summary = get_json(office.http, "/api/v1/summary").await?;
    assert_eq!(summary["totals"]["clock_ahead"], 3);
    assert_eq!(summary["totals"]["visited"], 3);
    let devices = get_json(office.http, "/api/v1/devices").await?;
    let line = devices["devices"]
        .as_array()
        .context("devices")?
        .iter()
        .find(|d| d["device"] == "vol-fast")
        .context("the fast device listed")?
        .clone();
    assert_eq!(line["clock_ahead"], 3, "{line}");
    assert!(line["last_record_ms"].as_i64() < Some(unix_ms() as i64 + 1000));
    // The export keeps the claimed time and says when the office first saw the record.
    let export = String::from_utf8(get_authed(office.http, "/api/v1/export.csv").await?.body)?;
    let fast_id = fast_h0.record_id.context("a visit id")?;
    let row = export
        .lines()
        .find(|l| l.contains(&fast_id))
        .context("the fast visit exported")?;
    assert!(row.contains("clock-ahead"), "{row}");
    captain.shutdown().await;

    // The next round starts after the visits truly happened but before the fast device's
    // clock said they did: they are not counted in it.
    let mut stopped = office.stop().await?;
    stopped.round_start_ms = now + 3 * HOUR_MS;
    let office = stopped.restart().await?;
    let building = get_json(office.http, "/api/v1/buildings/b-00").await?;
    let h2 = household(&building, "h-00-02")?;
    assert_eq!(h2["round_outcome"], Value::Null, "{h2}");
    assert_eq!(building["totals"]["visited"], 0, "{building}");
    office.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_volunteer_whose_clock_is_6_hours_behind_loses_no_record() -> Result<()> {
    let now = unix_ms() as i64;
    let office = Office::start(1, now - 7 * HOUR_MS).await?;
    let (credentials, mut slow) = device_with_building(&office, "vol-slow", 0).await?;
    let slow_now = unix_ms() - 6 * HOUR_MS as u64;
    visit("h-00-03", "contacted").apply(&mut slow, slow_now)?;
    let slow = start_node(credentials, slow, vec![office.node().local_addr])?;
    office.settle(1).await?;
    slow.shutdown().await;
    let building = get_json(office.http, "/api/v1/buildings/b-00").await?;
    let h3 = household(&building, "h-00-03")?;
    // Held, counted and shown at the time its device claims: nothing bounds it from below.
    assert_eq!(h3["visits"], 1);
    assert_eq!(h3["round_outcome"], "contacted", "{h3}");
    assert_eq!(h3["latest_visit"]["at_ms"], slow_now, "{h3}");
    assert_eq!(h3["latest_visit"]["clock_ahead"], false, "{h3}");
    assert_eq!(building["totals"]["visited"], 1);
    assert_eq!(building["totals"]["clock_ahead"], 0);
    office.shutdown().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_device_list_marks_a_device_caught_signing_two_histories() -> Result<()> {
    use automerge::transaction::Transactable;
    use gridsync_proto::signature::signed_bytes;
    use gridsync_proto::{ChangeSignature, RefusalReason, SignedHead};

    let office = Office::start(1, unix_ms() as i64 - HOUR_MS).await?;
    let (credentials, mut replica) = device_with_building(&office, "vol-twin", 0).await?;
    let path = DocPath::parse(&format!("{STREET}/grid-000/b-00"))?;
    let before = replica.heads(&path)?.unwrap_or_default();
    visit("h-00-00", "contacted").apply_now(&mut replica)?;
    let node = start_node(credentials.clone(), replica, vec![office.node().local_addr])?;
    office.settle(1).await?;
    node.shutdown().await;

    // The same key signs another change under the same actor and sequence number.
    let mut replica = Replica::open(&office.dir.path().join("vol-twin"))?;
    let held = replica.doc(&path)?.context("held")?;
    let actor = held
        .get_changes_meta(&before)
        .into_iter()
        .map(|c| c.actor.into_owned())
        .find(|a| NodeId::from_actor(a).is_some_and(|n| n.as_str() == "vol-twin"))
        .context("the visit's change")?;
    let mut fork = held.fork_at(&before)?;
    fork.set_actor(actor);
    let mut tx = fork.transaction();
    tx.put(automerge::ROOT, "other", "forked")?;
    tx.commit();
    let twin = fork.get_last_local_change().context("the twin")?;
    let signer = gridsync_net::ChangeSigner::from_pkcs8(&credentials.key_der)?;
    let head = SignedHead {
        actor: twin.actor_id().clone(),
        seq: twin.seq(),
        signature: ChangeSignature {
            hash: twin.hash(),
            signature: signer.sign(&signed_bytes(&path, &twin.hash()))?,
        },
    };
    let checked = office
        .node()
        .handle()
        .lock_replica()
        .check_signed_head(&path, &head);
    assert_eq!(checked, Err(RefusalReason::Equivocation));

    let devices = get_json(office.http, "/api/v1/devices").await?;
    let line = devices["devices"]
        .as_array()
        .context("devices")?
        .iter()
        .find(|d| d["device"] == "vol-twin")
        .context("the device listed")?
        .clone();
    let advice = line["equivocation"].as_str().context("marked")?;
    assert!(advice.contains("gridsync revoke vol-twin"), "{line}");
    let honest = devices["devices"]
        .as_array()
        .context("devices")?
        .iter()
        .filter(|d| d["device"] != "vol-twin")
        .all(|d| d["equivocation"].is_null());
    assert!(honest, "{devices}");
    office.shutdown().await
}

/// The street's time zone is a setting of its plan: the office starts its daily rounds at the
/// plan's midnight as soon as the plan says so, and a restarted office reads it back from the
/// stored copy of the plan.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_time_zone_in_the_plan_sets_the_daily_round() -> Result<()> {
    use gridsync_office::RoundWindow;
    let dir = tempfile::tempdir()?;
    let ca = gridsync_testkit::street_ca(STREET)?;
    let (credentials, mut replica) = enroll(&ca, dir.path(), "office", Role::Office)?;
    FieldWrite::PlanImport { csv: plan_csv(1) }.apply_now(&mut replica)?;
    let node = start_node(credentials, replica, Vec::new())?;
    let options = OfficeOptions::daily(OfficeToken::parse(TOKEN)?, 480);
    let round_in = |state: &OfficeState, minutes: i32| {
        let now = node.handle().clock().unix_ms() as i64;
        state.with_aggregator(|agg| agg.round()) == RoundWindow::daily(now, minutes)
    };
    let state = OfficeState::new(node.handle().clone(), options.clone());
    assert!(
        round_in(&state, 480),
        "no time zone in the plan: the default"
    );
    assert_eq!(
        state.with_aggregator(|agg| agg.plan().utc_offset_minutes()),
        None
    );

    // Kathmandu, +05:45: a round that starts at a quarter past the hour in UTC.
    node.write(FieldWrite::PlanTimeZone {
        utc_offset: "+05:45".into(),
    })?;
    let mut moved = false;
    for _ in 0..400 {
        if round_in(&state, 345) {
            moved = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert!(moved, "the round did not follow the plan's time zone");
    assert_eq!(
        state.with_aggregator(|agg| agg.plan().utc_offset_minutes()),
        Some(345)
    );

    // A second office state on the same store reads the plan's stored copy.
    let again = OfficeState::new(node.handle().clone(), options);
    assert!(round_in(&again, 345), "the stored plan lost its time zone");
    let bad = node.write(FieldWrite::PlanTimeZone {
        utc_offset: "+25:00".into(),
    });
    assert!(bad.is_err(), "an offset no time zone has was accepted");
    node.shutdown().await;
    Ok(())
}
