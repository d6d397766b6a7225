//! The street every example after `two_devices_offline` and `sessions_by_hand` stands on:
//! what `gridsync office init`, `gridsync enroll`, `gridsync join` and `gridsync run` do,
//! in process, so that each example can show what it is about.
//!
//! - [`enroll`] issues a device its certificate from the street CA, with the scopes it
//!   writes in plus the street-wide documents every device carries (plan, revocation list,
//!   device directory), and packs it into an invite: the file an official hands over.
//! - [`join`] creates the device's store from the invite (its key never leaves it).
//! - [`start`] starts a node from a store, on loopback, dialing the peers it is told about;
//!   mDNS is off so that each example decides who meets whom.
//! - [`write`] is a field write on a running node: it returns once the change is durable.

// Each example uses its own subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use gridsync_model::read::iter_visits;
use gridsync_net::{DeviceIdentity, Invite, NetEndpoint, RevocationList, StreetCa};
use gridsync_node::credentials;
use gridsync_node::node::{NodeParts, RunningNode, unix_ms};
use gridsync_node::ops::{FieldWrite, WriteReceipt};
use gridsync_node::{NodeConfig, Replica};
use gridsync_proto::{DocPath, NodeId, Role, Scopes};

/// The reference street (Panhuo, in Ningbo).
pub const STREET: &str = "panhuo";
/// The sample plan of the street: 60 households in 6 buildings.
pub const PLAN_CSV: &str = include_str!("street-plan.csv");
/// How long an example waits for something to happen before it fails.
pub const PATIENCE: Duration = Duration::from_secs(15);

/// `gridsync enroll --name NAME --role ROLE --scope SCOPE`: the invite file's bytes.
pub fn enroll(ca: &StreetCa, name: &str, role: Role, scope: &str) -> Result<Vec<u8>> {
    let now = unix_ms() / 1000;
    let mut scopes = Scopes(vec![scope.parse().map_err(anyhow::Error::msg)?]);
    // Every device also reads and carries the plan and the revocation list, and publishes its
    // certificate in the device directory.
    credentials::add_street_wide_grants(STREET, &mut scopes)?;
    let issued = ca.issue(&DeviceIdentity {
        street: STREET.into(),
        node_id: NodeId::parse(name)?,
        role,
        scopes,
        not_before: now - 600,
        not_after: now + 86_400,
    })?;
    // No office address in the invite: each node here is told whom to dial when it starts.
    Ok(Invite::new(ca, &issued, Vec::new()).to_bytes())
}

/// `gridsync join INVITE`: a new store for the device, holding its credentials.
pub fn join(root: &Path, invite: &[u8]) -> Result<PathBuf> {
    let invite = Invite::parse(invite)?;
    let dir = root.join(invite.identity.node_id.as_str());
    let mut replica = Replica::init(&dir, &invite.identity.node_id, &invite.street)?;
    replica.install_invite(&invite)?;
    Ok(dir)
}

/// `gridsync run --listen ADDR --peer PEER --no-mdns`, in process.
pub fn start(dir: &Path, listen: SocketAddr, peers: Vec<SocketAddr>) -> Result<RunningNode> {
    let replica = Replica::open(dir)?;
    let (_invite, creds) = credentials::load_credentials(replica.store())?;
    let config = NodeConfig {
        listen,
        peers,
        // Discovery by mDNS is off: the example decides who meets whom.
        mdns: false,
        backoff_initial_ms: 100,
        backoff_max_ms: 500,
        ..NodeConfig::default()
    };
    // One list, shared by the node (which fills it from the revocation document) and the TLS
    // verifiers of its endpoint (which consult it on every handshake).
    let revocations = RevocationList::new();
    let endpoint = NetEndpoint::bind(listen, &creds, revocations.clone())?;
    let parts = NodeParts {
        replica,
        credentials: creds,
        config,
        // The CLI's control socket is not needed: the example holds the node.
        control_socket: false,
    };
    Ok(RunningNode::start(parts, endpoint, revocations)?)
}

/// A field write on a running node. It blocks until the change is durable, so it runs on a
/// blocking thread, off the async workers.
pub async fn write(node: &RunningNode, write: FieldWrite) -> Result<WriteReceipt> {
    let node = node.handle().clone();
    tokio::task::spawn_blocking(move || Ok(node.write(write)?)).await?
}

/// The ids of the visits a running node holds in one building document.
pub fn visits_held(node: &RunningNode, path: &DocPath) -> Result<BTreeSet<String>> {
    visits_in(&mut node.handle().lock_replica(), path)
}

/// The ids of the visits in one building document of a replica.
pub fn visits_in(replica: &mut Replica, path: &DocPath) -> Result<BTreeSet<String>> {
    Ok(match replica.doc(path)? {
        Some(doc) => iter_visits(doc)
            .filter_map(Result::ok)
            .map(|v| v.id.to_string())
            .collect(),
        None => BTreeSet::new(),
    })
}

/// Polls `done` until it holds, or fails after [`PATIENCE`].
pub async fn wait_for(what: &str, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + PATIENCE;
    while !done()? {
        if Instant::now() > deadline {
            bail!("gave up waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The visit the examples' volunteer logs first: Mrs. Chen at h-0001, elderly and living
/// alone, who needs insulin.
pub fn visit_to_mrs_chen() -> FieldWrite {
    FieldWrite::Visit {
        household: "h-0001".into(),
        outcome: "contacted".into(),
        people: 1,
        flags: vec!["elderly-living-alone".into()],
        needs: vec!["medicine:insulin".into()],
        note: Some("lives alone, 3rd floor".into()),
        volunteer: None,
        at_ms: None,
    }
}

/// 127.0.0.1:`port` (0: any free port).
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}
