//! Enrollment of the simulated devices, as the office does it: a street CA issues every
//! device a certificate carrying its node id, role and scopes, packed into an invite that is
//! installed in the device's store (so that a reopened replica restricts its writes to its
//! scopes, as a joined device does).
//!
//! A contact learns who the other device is only from its certificate, through
//! [`gridsync_net::identity_from_cert`], as the transport does after the TLS handshake.

use std::time::{SystemTime, UNIX_EPOCH};

use gridsync_net::{DeviceIdentity, Invite, StreetCa, identity_from_cert};
use gridsync_proto::PeerIdentity;

use crate::contact::ContactError;
use crate::contact::street::{DeviceSpec, StreetLayout};

/// A device's credentials: the invite it installs and its certificate.
#[derive(Debug, Clone)]
pub struct Enrolled {
    pub invite: Invite,
    /// DER certificate, what a peer sees in the handshake.
    pub cert_der: Vec<u8>,
    /// The street CA's certificate, which device directory entries are verified against.
    pub ca_cert_der: Vec<u8>,
}

/// The street's certificate authority, issuing for the simulation.
pub struct Enrollment {
    ca: StreetCa,
    street: String,
    /// Unix seconds at creation: certificates are valid from an hour before for a week.
    now: u64,
}

impl std::fmt::Debug for Enrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enrollment")
            .field("street", &self.street)
            .finish_non_exhaustive()
    }
}

impl Enrollment {
    /// A fresh street CA (its validity is wall-clock time, as rustls checks it).
    pub fn new(street: &str) -> Result<Enrollment, ContactError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let ca =
            StreetCa::generate(street, now).map_err(|e| ContactError::Enroll(e.to_string()))?;
        Ok(Enrollment {
            ca,
            street: street.to_owned(),
            now,
        })
    }

    /// Issues `device` its certificate and invite.
    pub fn enroll(&self, device: &DeviceSpec) -> Result<Enrolled, ContactError> {
        let identity = DeviceIdentity {
            street: self.street.clone(),
            node_id: device.node_id.clone(),
            role: device.role.role(),
            scopes: device.scopes.clone(),
            not_before: self.now.saturating_sub(3600),
            not_after: self.now + 7 * 86_400,
        };
        let issued = self
            .ca
            .issue(&identity)
            .map_err(|e| ContactError::Enroll(e.to_string()))?;
        Ok(Enrolled {
            invite: Invite::new(&self.ca, &issued, Vec::new()),
            cert_der: issued.cert_der,
            ca_cert_der: self.ca.cert_der().to_vec(),
        })
    }
}

/// The peer as its certificate describes it (what the session checks the hello against).
pub fn peer_from_cert(cert_der: &[u8]) -> Result<PeerIdentity, ContactError> {
    let identity = identity_from_cert(cert_der).map_err(|e| ContactError::Enroll(e.to_string()))?;
    Ok(PeerIdentity {
        node_id: identity.node_id,
        role: identity.role,
        scopes: identity.scopes,
    })
}

/// Every device's credentials for a street, from one street CA: an input of a run beside its
/// config, so that two runs of one seed can be given the same keys and certificates.
#[derive(Debug, Clone)]
pub struct StreetCredentials {
    /// In the layout's device order.
    pub enrolled: Vec<Enrolled>,
}

impl StreetCredentials {
    /// A fresh street CA and a certificate for every device of `layout`.
    pub fn issue(layout: &StreetLayout) -> Result<StreetCredentials, ContactError> {
        let enrollment = Enrollment::new(&layout.shape.street)?;
        let enrolled = layout
            .devices
            .iter()
            .map(|device| enrollment.enroll(device))
            .collect::<Result<_, _>>()?;
        Ok(StreetCredentials { enrolled })
    }
}
