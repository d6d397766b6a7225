//! The invite file: everything a new device needs to join its street, produced by the office
//! at enrollment and carried to the device (as a file now, as a QR code later).
//!
//! It is a small JSON document holding the device's identity, certificate and private key
//! (PEM), the street CA certificate (PEM) and the office's addresses. [`Invite::parse`] treats
//! the bytes as hostile: bounded size, typed errors, and it checks that the key belongs to
//! the certificate, that the certificate was signed by the enclosed CA, and that the identity
//! it states is the one the certificate carries.

use std::fmt;

use rcgen::KeyPair;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::ca::{CaPublicKey, IssuedIdentity, StreetCa};
use crate::endpoint::NodeCredentials;
use crate::identity::{CertError, DeviceIdentity, MAX_CERT_LEN, identity_from_parsed};

/// Largest invite file accepted.
pub const MAX_INVITE_LEN: usize = 64 * 1024;
/// Most office addresses an invite may list.
const MAX_OFFICE_ADDRS: usize = 16;
/// Longest office address (host:port or similar).
const MAX_ADDR_LEN: usize = 256;
/// Format version written into every invite.
const INVITE_VERSION: u32 = 1;
/// Signature algorithm OID of ECDSA with SHA-256, the only one the street CA uses.
const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";

/// An enrollment invite.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Invite {
    /// Format version; only 1 is known.
    pub version: u32,
    /// The street the device joins.
    pub street: String,
    /// The identity the device was enrolled with (also inside its certificate).
    pub identity: DeviceIdentity,
    /// The device certificate, PEM.
    pub cert_pem: String,
    /// The device private key, PKCS#8 PEM. Secret.
    pub key_pem: String,
    /// The street CA certificate, PEM: the device's only trust root.
    pub ca_cert_pem: String,
    /// Where the office can be reached (`host:port`), to try first.
    pub office_addrs: Vec<String>,
}

impl fmt::Debug for Invite {
    // The key never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Invite")
            .field("street", &self.street)
            .field("identity", &self.identity)
            .field("office_addrs", &self.office_addrs)
            .finish_non_exhaustive()
    }
}

/// The invite's PEM contents decoded to DER.
struct InviteDers {
    ca_cert: Vec<u8>,
    cert: Vec<u8>,
    key: Vec<u8>,
}

/// Why an invite was refused.
#[derive(Debug, thiserror::Error)]
pub enum InviteError {
    #[error("invite is {len} bytes, more than the {max} allowed")]
    TooLarge { len: usize, max: usize },
    #[error("invite is not valid JSON of the expected shape: {0}")]
    Format(String),
    #[error("invite has version {0}, only version 1 is known")]
    UnsupportedVersion(u32),
    #[error("{what} PEM is not valid: {detail}")]
    Pem { what: &'static str, detail: String },
    #[error("device private key is not usable: {0}")]
    Key(String),
    #[error("device private key does not belong to the device certificate")]
    KeyMismatch,
    #[error("device certificate: {0}")]
    Cert(#[from] CertError),
    #[error("CA certificate is not usable: {0}")]
    CaCert(String),
    #[error("device certificate is not signed by the enclosed street CA")]
    NotIssuedByCa,
    #[error("invite states street {stated:?} but its CA serves street {ca:?}")]
    StreetMismatch { stated: String, ca: String },
    #[error("invite's stated identity differs from the identity in its certificate")]
    IdentityMismatch,
    #[error("invite lists {0} office addresses, more than 16")]
    TooManyAddresses(usize),
    #[error("office address is longer than 256 bytes")]
    AddressTooLong,
}

impl Invite {
    /// Packs an issued identity into an invite.
    pub fn new(ca: &StreetCa, issued: &IssuedIdentity, office_addrs: Vec<String>) -> Invite {
        Invite {
            version: INVITE_VERSION,
            street: ca.street().to_owned(),
            identity: issued.identity.clone(),
            cert_pem: issued.cert_pem(),
            key_pem: issued.key_pem(),
            ca_cert_pem: ca.cert_pem(),
            office_addrs,
        }
    }

    /// The invite file's bytes (pretty JSON, readable by a person checking it).
    pub fn to_bytes(&self) -> Vec<u8> {
        // Serializing plain strings, integers and enums into JSON cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// Parses and validates an invite file.
    pub fn parse(bytes: &[u8]) -> Result<Invite, InviteError> {
        if bytes.len() > MAX_INVITE_LEN {
            return Err(InviteError::TooLarge {
                len: bytes.len(),
                max: MAX_INVITE_LEN,
            });
        }
        let invite: Invite =
            serde_json::from_slice(bytes).map_err(|e| InviteError::Format(e.to_string()))?;
        invite.validate()?;
        Ok(invite)
    }

    /// The node credentials the invite carries.
    pub fn credentials(&self) -> Result<NodeCredentials, InviteError> {
        let ders = self.ders()?;
        Ok(NodeCredentials {
            ca_cert_der: ders.ca_cert,
            cert_der: ders.cert,
            key_der: ders.key,
            identity: self.identity.clone(),
        })
    }

    fn ders(&self) -> Result<InviteDers, InviteError> {
        let pem_err = |what| {
            move |e: rustls_pki_types::pem::Error| InviteError::Pem {
                what,
                detail: e.to_string(),
            }
        };
        let ca = CertificateDer::from_pem_slice(self.ca_cert_pem.as_bytes())
            .map_err(pem_err("CA certificate"))?;
        let cert = CertificateDer::from_pem_slice(self.cert_pem.as_bytes())
            .map_err(pem_err("device certificate"))?;
        let key = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(self.key_pem.as_bytes())
            .map_err(pem_err("device key"))?;
        Ok(InviteDers {
            ca_cert: ca.to_vec(),
            cert: cert.to_vec(),
            key: key.secret_pkcs8_der().to_vec(),
        })
    }

    fn validate(&self) -> Result<(), InviteError> {
        if self.version != INVITE_VERSION {
            return Err(InviteError::UnsupportedVersion(self.version));
        }
        if self.office_addrs.len() > MAX_OFFICE_ADDRS {
            return Err(InviteError::TooManyAddresses(self.office_addrs.len()));
        }
        if self.office_addrs.iter().any(|a| a.len() > MAX_ADDR_LEN) {
            return Err(InviteError::AddressTooLong);
        }
        let InviteDers {
            ca_cert: ca_der,
            cert: cert_der,
            key: key_der,
        } = self.ders()?;

        let ca = CaPublicKey::from_cert(&ca_der).map_err(|e| InviteError::CaCert(e.to_string()))?;
        if ca.street != self.street {
            return Err(InviteError::StreetMismatch {
                stated: self.street.clone(),
                ca: ca.street,
            });
        }

        if cert_der.len() > MAX_CERT_LEN {
            return Err(CertError::TooLarge {
                len: cert_der.len(),
                max: MAX_CERT_LEN,
            }
            .into());
        }
        let (rest, cert) = X509Certificate::from_der(&cert_der)
            .map_err(|e| CertError::Malformed(e.to_string()))?;
        if !rest.is_empty() {
            return Err(CertError::TrailingBytes.into());
        }
        let signed_by_ca = cert.signature_algorithm.algorithm.to_id_string() == ECDSA_WITH_SHA256
            && cert.issuer().as_raw() == ca.subject_raw.as_slice()
            && ca.verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data);
        if !signed_by_ca {
            return Err(InviteError::NotIssuedByCa);
        }
        if identity_from_parsed(&cert)? != self.identity || self.identity.street != self.street {
            return Err(InviteError::IdentityMismatch);
        }

        let key =
            KeyPair::try_from(key_der.as_slice()).map_err(|e| InviteError::Key(e.to_string()))?;
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(InviteError::KeyMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_proto::{NodeId, Role, Scopes};

    const NOW: u64 = 1_790_000_000;

    fn identity(street: &str, node: &str) -> DeviceIdentity {
        DeviceIdentity {
            street: street.into(),
            node_id: NodeId::parse(node).expect("valid node id"),
            role: Role::Volunteer,
            scopes: Scopes(vec!["write:panhuo/grid-017".parse().expect("valid grant")]),
            not_before: NOW - 60,
            not_after: NOW + 86_400,
        }
    }

    fn invite() -> (StreetCa, Invite) {
        let ca = StreetCa::generate("panhuo", NOW).expect("ca");
        let issued = ca.issue(&identity("panhuo", "vol-1")).expect("issue");
        let invite = Invite::new(&ca, &issued, vec!["192.0.2.1:7420".into()]);
        (ca, invite)
    }

    #[test]
    fn invite_round_trips_and_yields_credentials() {
        let (ca, invite) = invite();
        let parsed = Invite::parse(&invite.to_bytes()).expect("valid invite");
        assert_eq!(parsed, invite);
        let creds = parsed.credentials().expect("credentials");
        assert_eq!(creds.ca_cert_der, ca.cert_der());
        assert_eq!(creds.identity, identity("panhuo", "vol-1"));
    }

    #[test]
    fn oversized_and_garbage_invites_are_refused() {
        let big = vec![b' '; MAX_INVITE_LEN + 1];
        assert!(matches!(
            Invite::parse(&big),
            Err(InviteError::TooLarge { .. })
        ));
        for garbage in [&b""[..], b"\xff\xfe", b"{}", b"[1,2]", b"{\"version\":1}"] {
            assert!(
                matches!(Invite::parse(garbage), Err(InviteError::Format(_))),
                "{garbage:?}"
            );
        }
        let (_, mut bad) = invite();
        bad.cert_pem = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into();
        assert!(matches!(
            Invite::parse(&bad.to_bytes()),
            Err(InviteError::Cert(CertError::Malformed(_)))
        ));
        let (_, mut bad) = invite();
        bad.key_pem = "not a pem".into();
        assert!(matches!(
            Invite::parse(&bad.to_bytes()),
            Err(InviteError::Pem { .. })
        ));
        let (_, mut bad) = invite();
        bad.version = 2;
        assert!(matches!(
            Invite::parse(&bad.to_bytes()),
            Err(InviteError::UnsupportedVersion(2))
        ));
    }

    #[test]
    fn key_of_another_certificate_is_refused() {
        let ca = StreetCa::generate("panhuo", NOW).expect("ca");
        let one = ca.issue(&identity("panhuo", "vol-1")).expect("issue");
        let two = ca.issue(&identity("panhuo", "vol-2")).expect("issue");
        let mut invite = Invite::new(&ca, &one, vec![]);
        invite.key_pem = two.key_pem();
        assert!(matches!(
            Invite::parse(&invite.to_bytes()),
            Err(InviteError::KeyMismatch)
        ));
    }

    #[test]
    fn certificate_of_another_ca_or_another_identity_is_refused() {
        let ca = StreetCa::generate("panhuo", NOW).expect("ca");
        let rogue = StreetCa::generate("panhuo", NOW).expect("rogue");
        let issued = rogue.issue(&identity("panhuo", "vol-1")).expect("issue");
        let mut invite = Invite::new(&rogue, &issued, vec![]);
        invite.ca_cert_pem = ca.cert_pem();
        assert!(matches!(
            Invite::parse(&invite.to_bytes()),
            Err(InviteError::NotIssuedByCa)
        ));

        let issued = ca.issue(&identity("panhuo", "vol-1")).expect("issue");
        let mut invite = Invite::new(&ca, &issued, vec![]);
        invite.identity.role = Role::Office;
        assert!(matches!(
            Invite::parse(&invite.to_bytes()),
            Err(InviteError::IdentityMismatch)
        ));
        let mut invite = Invite::new(&ca, &issued, vec![]);
        invite.street = "linhai".into();
        assert!(matches!(
            Invite::parse(&invite.to_bytes()),
            Err(InviteError::StreetMismatch { .. })
        ));
        let mut invite = Invite::new(&ca, &issued, vec![]);
        invite.office_addrs = vec!["x".repeat(300)];
        assert!(matches!(
            Invite::parse(&invite.to_bytes()),
            Err(InviteError::AddressTooLong)
        ));
    }
}
