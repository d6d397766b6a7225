//! Identities: `office init`, `office ca-cert`, `office end-sessions`, `enroll`, `join`,
//! `revoke`.
//!
//! The office holds the street CA in its store. `enroll` issues a device certificate that
//! binds node id, role, scopes and expiry, and writes it with the CA certificate and the
//! office's addresses as an invite file; `join` installs that file on the device.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{Context, Result, bail};
use gridsync_net::{DeviceIdentity, Invite, StreetCa};
use gridsync_node::Replica;
use gridsync_node::credentials;
use gridsync_node::ops::FieldWrite;
use gridsync_proto::{Access, DocPath, NodeId, Role, ScopeGrant, Scopes};
use serde_json::json;

use crate::cli::{EnrollArgs, OfficeCommand};
use crate::commands::field::{open_replica, submit};
use crate::output::Output;

/// Certificates start a little in the past so that a device whose clock lags the office's
/// by a few minutes still accepts them.
const CLOCK_SKEW_SECS: u64 = 10 * 60;
/// How long the office's own identity lasts.
const OFFICE_IDENTITY_DAYS: u64 = 365;

fn unix_secs() -> u64 {
    gridsync_node::node::unix_ms() / 1000
}

pub fn office(data: &Path, cmd: OfficeCommand, out: Output) -> Result<()> {
    match cmd {
        OfficeCommand::Init {
            street,
            node_id,
            advertise,
        } => office_init(data, street, node_id, advertise, out),
        OfficeCommand::CaCert { out: file } => ca_cert(data, file.as_deref(), out),
        OfficeCommand::EndSessions => end_sessions(data, out),
    }
}

/// `gridsync office ca-cert`: the street CA's certificate, to trust in the officials'
/// browsers.
fn ca_cert(data: &Path, file: Option<&Path>, out: Output) -> Result<()> {
    let replica = open_replica(data)?;
    let ca = credentials::load_street_ca(replica.store())
        .context("this store holds no street CA: run this at the office")?;
    let pem = ca.cert_pem();
    match file {
        Some(file) => {
            std::fs::write(file, &pem)
                .with_context(|| format!("cannot write {}", file.display()))?;
            out.emit(
                &json!({ "street": ca.street(), "ca_cert": file.display().to_string() }),
                || {
                    format!(
                        "street CA certificate of {} written to {} (trust it in the office's browsers: deploy/RUNBOOK.md)",
                        ca.street(),
                        file.display()
                    )
                },
            )
        }
        None if out.json => out.emit(&json!({ "street": ca.street(), "pem": pem }), String::new),
        None => {
            print!("{pem}");
            Ok(())
        }
    }
}

/// `gridsync office end-sessions`: a new session key, which signs every official out.
fn end_sessions(data: &Path, out: Output) -> Result<()> {
    let mut replica = open_replica(data)?;
    credentials::load_street_ca(replica.store())
        .context("this store holds no street CA: dashboard sessions live at the office")?;
    gridsync_office::auth::end_sessions(&mut replica).context("cannot replace the session key")?;
    out.emit(&json!({ "sessions_ended": true }), || {
        "every dashboard session ended: officials sign in again with the office token (a running office applies this within seconds)".to_owned()
    })
}

fn office_init(
    data: &Path,
    street: String,
    node_id: String,
    advertise: Vec<String>,
    out: Output,
) -> Result<()> {
    let node_id = NodeId::parse(&node_id).with_context(|| format!("node id {node_id:?}"))?;
    let now = unix_secs();
    let ca = StreetCa::generate(&street, now).context("cannot create the street CA")?;
    let mut replica = Replica::init(data, &node_id, &street)
        .with_context(|| format!("cannot initialize {}", data.display()))?;
    let identity = DeviceIdentity {
        street: street.clone(),
        node_id: node_id.clone(),
        role: Role::Office,
        scopes: Scopes(vec![ScopeGrant {
            access: Access::Write,
            prefix: DocPath::parse(&street)?,
        }]),
        not_before: now.saturating_sub(CLOCK_SKEW_SECS),
        not_after: now + OFFICE_IDENTITY_DAYS * 86_400,
    };
    let issued = ca
        .issue(&identity)
        .context("cannot issue the office identity")?;
    let invite = Invite::new(&ca, &issued, advertise.clone());
    replica.save_street_ca(&ca)?;
    replica.install_invite(&invite)?;
    out.emit(&json!({ "street": street, "node_id": node_id, "advertise": advertise }), || {
        format!(
            "street {street}: certificate authority and office node {node_id} created in {}\n\
             next: gridsync enroll --name vol-0001 --role volunteer --scope write:{street}/grid-001 --out vol-0001.invite",
            data.display()
        )
    })
}

pub fn enroll(data: &Path, args: EnrollArgs, out: Output) -> Result<()> {
    let replica = open_replica(data)?;
    let ca = credentials::load_street_ca(replica.store())?;
    let street = ca.street().to_owned();
    let node_id = NodeId::parse(&args.name).with_context(|| format!("--name {:?}", args.name))?;
    let role: Role = args.role.parse().map_err(anyhow::Error::msg)?;
    let mut grants = Vec::new();
    for scope in &args.scopes {
        let grant: ScopeGrant = scope.parse().map_err(anyhow::Error::msg)?;
        if !grant.prefix.is_under(&DocPath::parse(&street)?) {
            bail!("scope {scope:?} is outside street {street}");
        }
        grants.push(grant);
    }
    let mut scopes = Scopes(grants);
    credentials::add_street_wide_grants(&street, &mut scopes)?;
    if args.expires == 0 {
        bail!("--expires must be at least 1 day");
    }
    let now = unix_secs();
    let identity = DeviceIdentity {
        street: street.clone(),
        node_id: node_id.clone(),
        role,
        scopes: scopes.clone(),
        not_before: now.saturating_sub(CLOCK_SKEW_SECS),
        not_after: now + u64::from(args.expires) * 86_400,
    };
    let issued = ca.issue(&identity).context("cannot issue the identity")?;
    let office_addrs = if args.office_addrs.is_empty() {
        credentials::load_invite(replica.store())?
            .map(|i| i.office_addrs)
            .unwrap_or_default()
    } else {
        args.office_addrs.clone()
    };
    let invite = Invite::new(&ca, &issued, office_addrs.clone());
    // The invite holds a private key: owner-only from the moment it exists.
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&args.out)
        .with_context(|| {
            format!(
                "cannot create {} (it must not exist yet)",
                args.out.display()
            )
        })?;
    file.write_all(&invite.to_bytes())
        .and_then(|_| file.sync_all())
        .context("cannot write the invite")?;
    let scope_list: Vec<String> = scopes.0.iter().map(|g| g.to_string()).collect();
    out.emit(
        &json!({ "node_id": node_id, "role": role, "scopes": scope_list, "expires_days": args.expires, "invite": args.out, "office_addrs": office_addrs }),
        || {
            format!(
                "enrolled {node_id} as {role} with {} for {} days; invite written to {} (it holds a private key: hand it over privately)",
                scope_list.join(", "),
                args.expires,
                args.out.display()
            )
        },
    )
}

pub fn join(data: &Path, file: &Path, out: Output) -> Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let invite = Invite::parse(&bytes)
        .with_context(|| format!("{} is not a valid invite", file.display()))?;
    let node_id = invite.identity.node_id.clone();
    let mut replica = if data.join(gridsync_store::DB_FILE_NAME).exists() {
        let replica = open_replica(data)?;
        if replica.node_id() != &node_id || replica.street() != invite.street {
            bail!(
                "{} already belongs to node {} of street {}; the invite is for {node_id} of {}",
                data.display(),
                replica.node_id(),
                replica.street(),
                invite.street
            );
        }
        replica
    } else {
        Replica::init(data, &node_id, &invite.street)?
    };
    // The field app's PIN, for the people who carry the device: asked (and checked) before
    // anything is installed, so a mistyped PIN leaves the device as it was.
    let pin = match invite.identity.role {
        Role::Volunteer | Role::Captain => crate::commands::pin::read_new_pin(false)?,
        Role::Relay | Role::Office => None,
    };
    if let Some(pin) = &pin {
        gridsync_field::PinHash::new(pin)?;
    }
    replica.install_invite(&invite)?;
    if let Some(pin) = &pin {
        crate::commands::pin::save(&mut replica, pin)?;
    }
    let id = &invite.identity;
    let scopes: Vec<String> = id.scopes.0.iter().map(|g| g.to_string()).collect();
    out.emit(
        &json!({ "node_id": node_id, "street": invite.street, "role": id.role, "scopes": scopes, "office_addrs": invite.office_addrs, "not_after": id.not_after, "pin_set": pin.is_some() }),
        || {
            let mut text = format!(
                "joined street {} as {node_id} ({}) with {}; run `gridsync run --ui` to sync and open the field app",
                invite.street,
                id.role,
                scopes.join(", ")
            );
            if pin.is_none() && matches!(id.role, Role::Volunteer | Role::Captain) {
                text.push_str("
no PIN set: choose one with `gridsync pin set` to sign in to the field app");
            }
            text
        },
    )
}

pub fn revoke(data: &Path, node: &str, out: Output) -> Result<()> {
    let node_id = NodeId::parse(node).with_context(|| format!("node id {node:?}"))?;
    let ca = {
        let replica = open_replica(data)?;
        credentials::load_street_ca(replica.store())?
    };
    let revocation = ca
        .sign_revocation(&node_id, unix_secs())
        .context("cannot sign the revocation")?;
    let receipt = submit(data, FieldWrite::Revocation { revocation })?;
    out.emit(&receipt, || receipt.message.clone())
}
