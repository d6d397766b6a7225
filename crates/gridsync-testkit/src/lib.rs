//! Test support shared by the office's tests, the benchmarks and the examples: what every
//! one of them needs before it can test anything.
//!
//! - [`enroll`]: a device of a street, issued its certificate by the street CA and given a
//!   replica that signs what it writes, as `gridsync enroll` + `gridsync join` would.
//! - [`start_loopback_node`]: a [`RunningNode`] on loopback QUIC that dials its peers with a
//!   short backoff and serves no control socket (many nodes share one process).
//! - [`http`]: requests to the office's HTTP API through ureq, not a hand-written client.
//! - [`browser`]: headless Chromium through chromedriver, for pages and their figures.
//! - [`i18n`]: checks of the pages' translation tables.
//!
//! Not published; nothing here is used by a shipped binary.

pub mod browser;
pub mod http;
pub mod i18n;

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Result;
use gridsync_net::{DeviceIdentity, NetEndpoint, NodeCredentials, RevocationList, StreetCa};
use gridsync_node::node::{NodeParts, RunningNode, unix_ms};
use gridsync_node::{NodeConfig, Replica};
use gridsync_proto::{Access, DocPath, NodeId, Role, ScopeGrant, Scopes};

/// How long an issued test certificate stays valid.
const VALIDITY_SECS: u64 = 86_400;

/// A street CA for `street`, valid from now.
pub fn street_ca(street: &str) -> Result<StreetCa> {
    Ok(StreetCa::generate(street, unix_ms() / 1000)?)
}

/// Scopes writing everything under `prefix` (a path of the street), plus the street-wide
/// documents every device carries (plan, revocations, device directory).
pub fn write_scopes(street: &str, prefix: &str) -> Result<Scopes> {
    street_scopes(
        street,
        vec![ScopeGrant {
            access: Access::Write,
            prefix: DocPath::parse(prefix)?,
        }],
    )
}

/// `grants` plus the street-wide documents every device carries, as `gridsync enroll`
/// issues them.
pub fn street_scopes(street: &str, grants: Vec<ScopeGrant>) -> Result<Scopes> {
    let mut scopes = Scopes(grants);
    gridsync_node::credentials::add_street_wide_grants(street, &mut scopes)?;
    Ok(scopes)
}

/// Issues `name` a certificate of `ca`'s street with `role` and `scopes`, and creates its
/// replica under `root/name`, set to sign its writes with the device key and to trust the
/// street CA (what a device holds after `gridsync join`).
pub fn enroll(
    ca: &StreetCa,
    root: &Path,
    name: &str,
    role: Role,
    scopes: Scopes,
) -> Result<(NodeCredentials, Replica)> {
    let now = unix_ms() / 1000;
    let street = ca.street().to_owned();
    let node_id = NodeId::parse(name)?;
    let issued = ca.issue(&DeviceIdentity {
        street: street.clone(),
        node_id: node_id.clone(),
        role,
        scopes,
        // Clocks of test processes agree; ten minutes of slack all the same.
        not_before: now.saturating_sub(600),
        not_after: now + VALIDITY_SECS,
    })?;
    let mut replica = Replica::init(&root.join(name), &node_id, &street)?;
    // What it writes before its node starts (an office's plan) is signed, as on a device.
    replica.set_signing_key(&issued.key_der)?;
    replica.set_trust_root(ca.cert_der().to_vec());
    Ok((NodeCredentials::new(ca.cert_der(), &issued), replica))
}

/// [`enroll`] with write access to the whole of `ca`'s street (an office, or a captain or
/// volunteer in a test that does not care about scopes).
pub fn enroll_street_writer(
    ca: &StreetCa,
    root: &Path,
    name: &str,
    role: Role,
) -> Result<(NodeCredentials, Replica)> {
    let street = ca.street().to_owned();
    enroll(ca, root, name, role, write_scopes(&street, &street)?)
}

/// Starts a node on `replica` on a loopback port of its own, dialing `peers` with a 50 ms
/// to 500 ms backoff, without mDNS or a control socket. Call within a tokio runtime.
pub fn start_loopback_node(
    credentials: NodeCredentials,
    replica: Replica,
    peers: Vec<SocketAddr>,
) -> Result<RunningNode> {
    let revocations = RevocationList::new();
    let listen = SocketAddr::from(([127, 0, 0, 1], 0));
    let endpoint = NetEndpoint::bind(listen, &credentials, revocations.clone())?;
    let config = NodeConfig {
        listen,
        peers,
        mdns: false,
        backoff_initial_ms: 50,
        backoff_max_ms: 500,
        ..NodeConfig::default()
    };
    let parts = NodeParts {
        replica,
        credentials,
        config,
        control_socket: false,
    };
    Ok(RunningNode::start(parts, endpoint, revocations)?)
}
