//! `gridsync demo`: a street in miniature, live, with nothing to install.
//!
//! It starts an office, two building captains and four volunteers as real gridsync nodes
//! (each with its own durable store and QUIC endpoint, mutual TLS against a freshly created
//! street CA) on loopback, in one process. Volunteers reach only their captain, captains
//! only the office, as on site. The volunteers log visits while their links drop and come
//! back; the demo shows records flowing towards the office as it happens, and ends when every
//! replica of every document is identical and every acknowledged record reached the office.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use gridsync_net::{DeviceIdentity, NetEndpoint, NodeCredentials, RevocationList, StreetCa};
use gridsync_node::node::{NodeParts, RunningNode, unix_ms};
use gridsync_node::ops::FieldWrite;
use gridsync_node::{NodeConfig, Replica};
use gridsync_proto::{Access, DocPath, NodeId, Role, ScopeGrant, Scopes};
use serde_json::json;

use crate::cli::DemoArgs;
use crate::commands::street::{self, StreetShape};
use crate::output::Output;

const STREET: &str = "panhuo";
const SHAPE: StreetShape = StreetShape {
    grids: 2,
    buildings_per_grid: 3,
    units_per_building: 2,
    households_per_unit: 4,
};
/// Rounds of door-to-door visits; in each, some volunteers are out of range.
const ROUNDS: usize = 4;
/// How long the demo waits for convergence before it calls it a failure.
const CONVERGENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// One device of the demo street.
struct Device {
    name: NodeId,
    dir: PathBuf,
    credentials: NodeCredentials,
    /// Who this device dials (its captain, or the office for a captain).
    upstream: Option<NodeId>,
    /// The grid it works in (volunteers and captains).
    grid: Option<usize>,
    running: Option<RunningNode>,
    /// Fixed listen address for nodes others dial, so a restart keeps it.
    listen: SocketAddr,
}

pub fn run(args: DemoArgs, out: Output) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run_demo(args, out))
}

async fn run_demo(args: DemoArgs, out: Output) -> Result<()> {
    let dir = tempfile::Builder::new()
        .prefix("gridsync-demo-")
        .tempdir()
        .context("cannot create a temporary directory")?;
    let say = |text: String| {
        if !out.json {
            println!("{text}");
        }
    };
    let started = Instant::now();
    say(format!(
        "gridsync demo: a street office, 2 captains and 4 volunteers on loopback (data in {})",
        dir.path().display()
    ));

    let mut devices = create_devices(dir.path())?;
    let names: Vec<String> = devices.iter().map(|d| d.name.to_string()).collect();
    say(format!("street CA created; enrolled {}", names.join(", ")));

    // The office imports the plan, then everyone starts.
    {
        let office = &mut devices[0];
        let mut replica = Replica::open(&office.dir)?;
        // Signed with the office's key, as every change is, so that every device takes it.
        replica.set_signing_key(&office.credentials.key_der)?;
        let receipt = FieldWrite::PlanImport {
            csv: street::plan_csv(SHAPE),
        }
        .apply_now(&mut replica)?;
        say(format!("office: {}", receipt.message));
    }
    for i in 0..devices.len() {
        start(&mut devices, i)?;
    }
    say("all nodes running; volunteers dial their captain, captains dial the office".into());
    // Before going door to door every device picks up the plan (and whatever else the
    // office holds) from its captain.
    wait_converged(&devices, &BTreeMap::new(), &say).await?;
    say(format!(
        "every device holds the street plan ({:.1}s)",
        started.elapsed().as_secs_f64()
    ));

    let mut acknowledged: BTreeMap<String, DocPath> = BTreeMap::new();
    for round in 1..=ROUNDS {
        // Each round, one volunteer per grid walks out of Wi-Fi range and keeps working.
        let offline: BTreeSet<usize> = [3 + (round % 2), 5 + ((round + 1) % 2)]
            .into_iter()
            .collect();
        for &i in &offline {
            if let Some(node) = devices[i].running.take() {
                node.shutdown().await;
            }
        }
        let offline_names: Vec<String> = offline
            .iter()
            .map(|&i| devices[i].name.to_string())
            .collect();
        say(format!(
            "round {round}: {} out of range",
            offline_names.join(" and ")
        ));
        for volunteer in &devices[3..] {
            let (count, path) = log_visits(volunteer, round, &mut acknowledged)?;
            let how = if volunteer.running.is_some() {
                "live"
            } else {
                "offline"
            };
            say(format!(
                "  {} saved {count} visits ({how}) in {path}",
                volunteer.name
            ));
        }
        tokio::time::sleep(Duration::from_millis(400)).await;
        say(format!(
            "  office holds {}/{} acknowledged visits",
            count_at_office(&devices[0], &acknowledged)?,
            acknowledged.len()
        ));
        for &i in &offline {
            start(&mut devices, i)?;
        }
        say(format!("  {} back in range", offline_names.join(" and ")));
    }

    wait_converged(&devices, &acknowledged, &say).await?;

    // The final table: every node, what it holds.
    let mut table = Vec::new();
    say(format!(
        "converged after {:.1}s:",
        started.elapsed().as_secs_f64()
    ));
    for d in &devices {
        let status = d
            .running
            .as_ref()
            .map(|n| n.status())
            .context("node stopped")?;
        let visits = visits_held(d)?;
        let connected = status.peers.iter().filter(|p| p.connected).count();
        say(format!(
            "  {:<9} {:<9} {:>2} documents {:>3} visits  {} peers connected",
            d.name.as_str(),
            status.role,
            status.documents.len(),
            visits,
            connected
        ));
        table.push(json!({ "node": d.name, "role": status.role, "documents": status.documents.len(), "visits": visits, "peers_connected": connected }));
    }
    say(format!(
        "every replica of every document is identical, and all {} acknowledged visits reached the office by way of the captains",
        acknowledged.len()
    ));

    if let Some(bind) = args.dashboard {
        serve_dashboard(&devices[0], bind, &out).await?;
    }

    let mut stopping = tokio::task::JoinSet::new();
    for d in devices.iter_mut() {
        if let Some(node) = d.running.take() {
            stopping.spawn(node.shutdown());
        }
    }
    while stopping.join_next().await.is_some() {}
    let kept = if args.keep { Some(dir.keep()) } else { None };
    if let Some(path) = &kept {
        say(format!("data kept in {}", path.display()));
    }
    if out.json {
        out.emit(
            &json!({ "converged": true, "acknowledged_visits": acknowledged.len(), "seconds": started.elapsed().as_secs_f64(), "nodes": table, "kept": kept }),
            String::new,
        )?;
    }
    Ok(())
}

/// Serves the office dashboard of the demo's office node on `bind` until ctrl-c (or SIGTERM),
/// while the whole street keeps running.
async fn serve_dashboard(office: &Device, bind: SocketAddr, out: &Output) -> Result<()> {
    let node = office.running.as_ref().context("the office node stopped")?;
    let handle = node.handle().clone();
    let ca = gridsync_node::credentials::load_street_ca(handle.lock_replica().store())?;
    let (token, _) = gridsync_office::load_or_create_token(&mut handle.lock_replica())?;
    let state = gridsync_office::OfficeState::start(
        handle,
        gridsync_office::OfficeOptions::daily(
            token.clone(),
            gridsync_model::DEFAULT_UTC_OFFSET_MINUTES,
        ),
    )
    .await?;
    let bound = crate::commands::dashboard::bind(bind, false, &ca).await?;
    let (listener, url) = (bound.listener, bound.url);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gridsync_office::serve(listener, state, async move {
        stopped.await.ok();
    }));
    out.emit(
        &json!({ "dashboard": url, "token": token.reveal() }),
        || {
            format!(
                "office dashboard on {url} (sign in with the token {}); the street keeps running until ctrl-c",
                token.reveal()
            )
        },
    )?;
    crate::commands::run::wait_for_shutdown_signal().await?;
    let _ = stop.send(());
    server.await??;
    Ok(())
}

/// Waits until the office has every acknowledged visit and every shared document is
/// identical on every node, reporting progress once a second.
async fn wait_converged(
    devices: &[Device],
    acknowledged: &BTreeMap<String, DocPath>,
    say: &impl Fn(String),
) -> Result<()> {
    let deadline = Instant::now() + CONVERGENCE_TIMEOUT;
    let mut last_report = Instant::now();
    loop {
        let at_office = count_at_office(&devices[0], acknowledged)?;
        let divergent = divergent_documents(devices);
        if at_office == acknowledged.len() && divergent.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "replicas did not converge within {}s: office holds {at_office}/{} visits; divergent documents: {divergent:?}",
                CONVERGENCE_TIMEOUT.as_secs(),
                acknowledged.len()
            );
        }
        if last_report.elapsed() > Duration::from_secs(1) {
            say(format!(
                "  converging: office holds {at_office}/{} visits, {} documents still differ",
                acknowledged.len(),
                divergent.len()
            ));
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Name, role, write grants, the device it dials, and its grid.
type DeviceSpec = (String, Role, Vec<ScopeGrant>, Option<String>, Option<usize>);

/// The office, two captains (one per grid) and two volunteers per grid, each with a store
/// and credentials issued by a new street CA.
fn create_devices(root: &Path) -> Result<Vec<Device>> {
    let now = unix_ms() / 1000;
    let ca = StreetCa::generate(STREET, now)?;
    let street = DocPath::parse(STREET)?;
    let grid_path = |g: usize| street.join(&format!("grid-{:03}", g + 1));
    let mut specs: Vec<DeviceSpec> = vec![(
        "office".into(),
        Role::Office,
        vec![ScopeGrant {
            access: Access::Write,
            prefix: street.clone(),
        }],
        None,
        None,
    )];
    for g in 0..SHAPE.grids {
        specs.push((
            format!("cap-{}", g + 1),
            Role::Captain,
            vec![ScopeGrant {
                access: Access::Write,
                prefix: grid_path(g)?,
            }],
            Some("office".into()),
            Some(g),
        ));
    }
    for g in 0..SHAPE.grids {
        for v in 0..2 {
            specs.push((
                format!("vol-{}{}", g + 1, v + 1),
                Role::Volunteer,
                vec![ScopeGrant {
                    access: Access::Write,
                    prefix: grid_path(g)?,
                }],
                Some(format!("cap-{}", g + 1)),
                Some(g),
            ));
        }
    }
    let mut devices = Vec::new();
    for (name, role, grants, upstream, grid) in specs {
        let node_id = NodeId::parse(&name)?;
        let mut scopes = Scopes(grants);
        gridsync_node::credentials::add_street_wide_grants(STREET, &mut scopes)?;
        let identity = DeviceIdentity {
            street: STREET.into(),
            node_id: node_id.clone(),
            role,
            scopes,
            not_before: now.saturating_sub(600),
            not_after: now + 86_400,
        };
        let issued = ca.issue(&identity)?;
        let dir = root.join(&name);
        let mut replica = Replica::init(&dir, &node_id, STREET)?;
        if role == Role::Office {
            // As `office init` does: the office keeps the CA (its dashboard's HTTPS
            // certificate comes from it).
            replica.save_street_ca(&ca)?;
        }
        drop(replica);
        // Nodes that others dial get a fixed port so that a restart keeps their address.
        let listen = if role == Role::Volunteer {
            SocketAddr::from(([127, 0, 0, 1], 0))
        } else {
            free_loopback_addr()?
        };
        devices.push(Device {
            name: node_id,
            dir,
            credentials: NodeCredentials::new(ca.cert_der(), &issued),
            upstream: upstream.map(|u| NodeId::parse(&u)).transpose()?,
            grid,
            running: None,
            listen,
        });
    }
    Ok(devices)
}

fn free_loopback_addr() -> Result<SocketAddr> {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0")?;
    Ok(socket.local_addr()?)
}

/// Starts (or restarts) device `i` on its store.
fn start(devices: &mut [Device], i: usize) -> Result<()> {
    let peers = match &devices[i].upstream {
        Some(up) => vec![
            devices
                .iter()
                .find(|d| &d.name == up)
                .context("upstream device")?
                .listen,
        ],
        None => Vec::new(),
    };
    let d = &mut devices[i];
    let config = NodeConfig {
        listen: d.listen,
        peers,
        mdns: false,
        backoff_initial_ms: 100,
        backoff_max_ms: 1_000,
        http: None,
        max_documents: None,
        max_store_bytes: None,
        ..NodeConfig::default()
    };
    let revocations = RevocationList::new();
    let endpoint = NetEndpoint::bind(d.listen, &d.credentials, revocations.clone())?;
    let parts = NodeParts {
        replica: Replica::open(&d.dir)?,
        credentials: d.credentials.clone(),
        config,
        control_socket: false,
    };
    d.running = Some(RunningNode::start(parts, endpoint, revocations)?);
    Ok(())
}

/// A volunteer logs one visit per household of "its" building for this round: through its
/// running node (pushed at once), or straight into its store while out of range.
fn log_visits(
    device: &Device,
    round: usize,
    acknowledged: &mut BTreeMap<String, DocPath>,
) -> Result<(usize, DocPath)> {
    let grid = device.grid.context("volunteer without grid")?;
    // The volunteer's position in its grid picks the building; both volunteers of a grid
    // share building 0 in the first round, to show concurrent first visits merging.
    let index: usize = device
        .name
        .as_str()
        .chars()
        .last()
        .and_then(|c| c.to_digit(10))
        .unwrap_or(1) as usize
        - 1;
    let building_index = if round == 1 {
        0
    } else {
        (index + round) % SHAPE.buildings_per_grid
    };
    let building = street::building_id(grid, building_index);
    let outcomes = ["contacted", "not-home", "contacted", "refused"];
    let mut path = None;
    let mut count = 0;
    let mut offline_replica = match device.running {
        Some(_) => None,
        None => {
            // Offline writes are signed with the device key too (the demo's stores hold no
            // invite, so the key is set here).
            let mut replica = Replica::open(&device.dir)?;
            replica.set_signing_key(&device.credentials.key_der)?;
            Some(replica)
        }
    };
    for u in 0..SHAPE.units_per_building {
        for h in 0..SHAPE.households_per_unit {
            // In round 1 the two volunteers split the households of the shared building.
            if round == 1 && h % 2 != index % 2 {
                continue;
            }
            let write = FieldWrite::Visit {
                household: street::household_id(&building, u, h),
                outcome: outcomes[(h + round) % outcomes.len()].into(),
                people: (1 + h % 3) as u16,
                flags: if h == 0 {
                    vec!["elderly-living-alone".into()]
                } else {
                    vec![]
                },
                needs: if h == 0 {
                    vec!["medicine:blood pressure".into()]
                } else {
                    vec![]
                },
                note: None,
                volunteer: None,
                at_ms: None,
            };
            let receipt = match (&device.running, offline_replica.as_mut()) {
                (Some(node), _) => node.write(write)?,
                (None, Some(replica)) => write.apply_now(replica)?,
                (None, None) => bail!("no replica to write to"),
            };
            acknowledged.insert(
                receipt.record_id.clone().context("visit id")?,
                receipt.document.clone(),
            );
            path = Some(receipt.document);
            count += 1;
        }
    }
    Ok((count, path.context("no visits logged")?))
}

/// How many of the acknowledged visits the office holds.
fn count_at_office(office: &Device, acknowledged: &BTreeMap<String, DocPath>) -> Result<usize> {
    let ids = visit_ids(office)?;
    Ok(acknowledged.keys().filter(|id| ids.contains(*id)).count())
}

fn visit_ids(device: &Device) -> Result<BTreeSet<String>> {
    let node = device.running.as_ref().context("office stopped")?;
    let mut replica = node.handle().lock_replica();
    let mut ids = BTreeSet::new();
    for path in replica.held_paths() {
        if let Some(doc) = replica.doc(&path)? {
            for visit in gridsync_model::read::iter_visits(doc).flatten() {
                ids.insert(visit.id.to_string());
            }
        }
    }
    Ok(ids)
}

fn visits_held(device: &Device) -> Result<usize> {
    Ok(visit_ids(device)?.len())
}

/// Documents whose heads differ between two running nodes that both hold them, plus
/// documents a node should hold (in its scope, held by the office) but does not.
fn divergent_documents(devices: &[Device]) -> Vec<String> {
    let mut heads: BTreeMap<DocPath, BTreeSet<String>> = BTreeMap::new();
    let mut missing = Vec::new();
    let office_docs: Vec<DocPath> = match devices[0].running.as_ref() {
        Some(n) => n.handle().lock_replica().held_paths(),
        None => return vec!["office stopped".into()],
    };
    for d in devices {
        let Some(node) = d.running.as_ref() else {
            missing.push(format!("{} stopped", d.name));
            continue;
        };
        let replica = node.handle().lock_replica();
        for path in &office_docs {
            match replica.known_heads(path) {
                Some(doc_heads) => {
                    heads
                        .entry(path.clone())
                        .or_default()
                        .insert(gridsync_node::status::heads_digest(&doc_heads));
                }
                None if d.credentials.identity.scopes.may_hold(path) => {
                    missing.push(format!("{path} on {}", d.name))
                }
                None => {}
            }
        }
    }
    missing.extend(
        heads
            .into_iter()
            .filter(|(_, h)| h.len() > 1)
            .map(|(p, _)| p.to_string()),
    );
    missing
}
