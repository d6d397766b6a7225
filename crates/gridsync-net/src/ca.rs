//! The street certificate authority: it issues device certificates that carry a
//! [`DeviceIdentity`] and signs revocations.
//!
//! Keys are ECDSA P-256 (rcgen with ring). The CA certificate names the street in its subject
//! organization, so a stored CA reloads with its street and verifiers can tell streets apart.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
    SanType, SerialNumber, SigningKey,
};
use ring::rand::{SecureRandom, SystemRandom};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use crate::identity::{CertError, DeviceIdentity, IDENTITY_EXTENSION_OID, encode_extension};
use crate::identity::{MAX_CERT_LEN, validate_street};
use crate::revocation::{SignedRevocation, revocation_message};
use gridsync_proto::NodeId;

/// The DNS name every device certificate carries. Nodes have no DNS names; this fixed name
/// (also used as SNI) only keeps generic TLS tooling happy.
pub const DEVICE_DNS_NAME: &str = "gridsync";
/// How long a street CA certificate is valid: ten years.
const CA_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;
/// Backdating of the CA's start of validity, to absorb clock skew between devices.
const CA_BACKDATE_SECS: u64 = 24 * 3600;
/// Common name of every street CA certificate; the street is in the organization.
const CA_COMMON_NAME: &str = "gridsync street CA";

/// Why the CA could not be created, loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    #[error("random number generator failed")]
    Random,
    #[error("invalid identity: {0}")]
    Identity(#[from] CertError),
    #[error("identity is for street {found:?}, this CA serves street {expected:?}")]
    WrongStreet { expected: String, found: String },
    #[error("validity {not_before}..{not_after} is empty or out of range")]
    BadValidity { not_before: u64, not_after: u64 },
    #[error("CA certificate PEM is not valid: {0}")]
    CertPem(String),
    #[error("CA certificate is not valid X.509: {0}")]
    CertParse(String),
    #[error("CA certificate names no street in its organization")]
    NoStreet,
    #[error("CA private key does not belong to the CA certificate")]
    KeyMismatch,
}

/// What the CA hands a device at enrollment: its certificate and its private key.
#[derive(Clone)]
pub struct IssuedIdentity {
    /// The device certificate (DER), signed by the street CA.
    pub cert_der: Vec<u8>,
    /// The device's private key (PKCS#8 DER). Secret: it moves only inside an invite.
    pub key_der: Vec<u8>,
    /// The identity the certificate carries.
    pub identity: DeviceIdentity,
}

impl fmt::Debug for IssuedIdentity {
    // The key never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedIdentity")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl IssuedIdentity {
    /// The certificate as PEM.
    pub fn cert_pem(&self) -> String {
        der_to_pem("CERTIFICATE", &self.cert_der)
    }
    /// The private key as PKCS#8 PEM.
    pub fn key_pem(&self) -> String {
        der_to_pem("PRIVATE KEY", &self.key_der)
    }
}

/// A CA certificate and key in PEM, as the office stores them.
#[derive(Clone)]
pub struct StreetCaPem {
    /// The CA certificate; public, shipped in every invite.
    pub cert_pem: String,
    /// The CA private key; never leaves the office.
    pub key_pem: String,
}

impl fmt::Debug for StreetCaPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreetCaPem")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// The street office's certificate authority.
pub struct StreetCa {
    street: String,
    cert_der: Vec<u8>,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for StreetCa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreetCa")
            .field("street", &self.street)
            .finish_non_exhaustive()
    }
}

impl StreetCa {
    /// Creates a new CA for `street`, valid from a day before `now` (unix seconds) for ten
    /// years.
    pub fn generate(street: &str, now: u64) -> Result<StreetCa, CaError> {
        validate_street(street)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = ca_name(street);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let not_before = now.saturating_sub(CA_BACKDATE_SECS);
        set_validity(
            &mut params,
            not_before,
            now.saturating_add(CA_LIFETIME_SECS),
        )?;
        params.serial_number = Some(random_serial()?);
        let cert = params.self_signed(&key)?;
        Ok(StreetCa {
            street: street.to_owned(),
            cert_der: cert.der().to_vec(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Loads a CA stored with [`StreetCa::to_pem`], checking that the key fits the certificate.
    pub fn from_pem(pem: &StreetCaPem) -> Result<StreetCa, CaError> {
        let cert = CertificateDer::from_pem_slice(pem.cert_pem.as_bytes())
            .map_err(|e| CaError::CertPem(e.to_string()))?;
        let key = KeyPair::from_pem(&pem.key_pem)?;
        let ca_key = CaPublicKey::from_cert(&cert)?;
        if ca_key.point != key.public_key_raw() {
            return Err(CaError::KeyMismatch);
        }
        let issuer = Issuer::from_ca_cert_der(&cert, key)?;
        Ok(StreetCa {
            street: ca_key.street,
            cert_der: cert.to_vec(),
            issuer,
        })
    }

    /// The certificate and key as PEM, for the office's storage.
    pub fn to_pem(&self) -> StreetCaPem {
        StreetCaPem {
            cert_pem: der_to_pem("CERTIFICATE", &self.cert_der),
            key_pem: self.issuer.key().serialize_pem(),
        }
    }

    /// The street this CA serves.
    pub fn street(&self) -> &str {
        &self.street
    }

    /// The CA certificate (DER): the one trust root of every node of the street.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The issuer that signs certificates (this crate's other issuers, `https`).
    pub(crate) fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// The CA certificate as PEM.
    pub fn cert_pem(&self) -> String {
        der_to_pem("CERTIFICATE", &self.cert_der)
    }

    /// Issues a certificate and fresh key pair for `identity`. The identity must belong to
    /// this CA's street.
    pub fn issue(&self, identity: &DeviceIdentity) -> Result<IssuedIdentity, CaError> {
        if identity.street != self.street {
            return Err(CaError::WrongStreet {
                expected: self.street.clone(),
                found: identity.street.clone(),
            });
        }
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, identity.node_id.as_str());
        params.distinguished_name = name;
        params.subject_alt_names = vec![SanType::DnsName(DEVICE_DNS_NAME.try_into()?)];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        // Every node is both a QUIC client and a QUIC server.
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, identity.not_before, identity.not_after)?;
        params.serial_number = Some(random_serial()?);
        params.custom_extensions = vec![CustomExtension::from_oid_content(
            IDENTITY_EXTENSION_OID,
            encode_extension(identity)?,
        )];
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok(IssuedIdentity {
            cert_der: cert.der().to_vec(),
            key_der: key.serialize_der(),
            identity: identity.clone(),
        })
    }

    /// Signs the revocation of `node_id` at `revoked_at` (unix seconds), so that it can travel
    /// through the mesh as ordinary document data and be checked with [`verify_revocation`].
    ///
    /// [`verify_revocation`]: crate::revocation::verify_revocation
    pub fn sign_revocation(
        &self,
        node_id: &NodeId,
        revoked_at: u64,
    ) -> Result<SignedRevocation, CaError> {
        let message = revocation_message(&self.street, node_id, revoked_at);
        let signature = self.issuer.key().sign(&message)?;
        Ok(SignedRevocation {
            street: self.street.clone(),
            node_id: node_id.clone(),
            revoked_at,
            signature,
        })
    }
}

/// The parts of a CA certificate that verification needs.
pub(crate) struct CaPublicKey {
    /// Uncompressed P-256 point.
    pub(crate) point: Vec<u8>,
    /// Street from the subject organization.
    pub(crate) street: String,
    /// Raw subject name, to compare with a device certificate's issuer.
    pub(crate) subject_raw: Vec<u8>,
}

impl CaPublicKey {
    pub(crate) fn from_cert(der: &[u8]) -> Result<CaPublicKey, CaError> {
        if der.len() > MAX_CERT_LEN {
            return Err(CaError::CertParse("certificate too large".into()));
        }
        let (_, cert) =
            X509Certificate::from_der(der).map_err(|e| CaError::CertParse(e.to_string()))?;
        let street = cert
            .subject()
            .iter_organization()
            .next()
            .and_then(|o| o.as_str().ok())
            .ok_or(CaError::NoStreet)?
            .to_owned();
        Ok(CaPublicKey {
            point: cert.public_key().subject_public_key.data.to_vec(),
            street,
            subject_raw: cert.subject().as_raw().to_vec(),
        })
    }

    /// Verifies an ECDSA P-256 SHA-256 (ASN.1) signature made by the CA key.
    pub(crate) fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::ECDSA_P256_SHA256_ASN1,
            &self.point,
        )
        .verify(message, signature)
        .is_ok()
    }
}

fn ca_name(street: &str) -> DistinguishedName {
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, CA_COMMON_NAME);
    name.push(DnType::OrganizationName, street);
    name
}

pub(crate) fn set_validity(
    params: &mut CertificateParams,
    not_before: u64,
    not_after: u64,
) -> Result<(), CaError> {
    let bad = || CaError::BadValidity {
        not_before,
        not_after,
    };
    if not_before >= not_after {
        return Err(bad());
    }
    let to_time = |secs: u64| {
        i64::try_from(secs)
            .ok()
            .and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or_else(bad)
    };
    params.not_before = to_time(not_before)?;
    params.not_after = to_time(not_after)?;
    Ok(())
}

/// A random positive 16-byte serial number, so reissued certificates never collide.
pub(crate) fn random_serial() -> Result<SerialNumber, CaError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| CaError::Random)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// PEM armour for `der` with the given label.
pub(crate) fn der_to_pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 0x3f) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every 64-byte slice is valid UTF-8.
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Why a device certificate presented outside a handshake (the device directory) is not
/// trusted.
#[derive(Debug, thiserror::Error)]
pub enum DeviceCertError {
    #[error("street CA certificate is unusable: {0}")]
    Ca(#[from] CaError),
    #[error("device certificate is unusable: {0}")]
    Cert(#[from] crate::identity::CertError),
    #[error("device certificate is for street {found:?}, the CA serves street {expected:?}")]
    WrongStreet { expected: String, found: String },
    #[error("device certificate is not issued by this street's CA")]
    NotIssuedByCa,
}

/// Checks that `cert_der` was issued by the CA whose certificate is `ca_cert_der` (issuer
/// name and ECDSA P-256 signature over the certificate body) and returns the identity it
/// certifies. Validity dates are not checked: the device directory uses this to judge who
/// authored a change, and work done while a certificate was valid stays authored by it.
pub fn verify_device_certificate(
    ca_cert_der: &[u8],
    cert_der: &[u8],
) -> Result<crate::identity::DeviceIdentity, DeviceCertError> {
    let ca = CaPublicKey::from_cert(ca_cert_der)?;
    let identity = crate::identity::identity_from_cert(cert_der)?;
    if identity.street != ca.street {
        return Err(DeviceCertError::WrongStreet {
            expected: ca.street,
            found: identity.street,
        });
    }
    // identity_from_cert parsed the same bytes; parsing again only to reach the raw parts.
    let (_, cert) = X509Certificate::from_der(cert_der)
        .map_err(|e| crate::identity::CertError::Malformed(e.to_string()))?;
    if cert.issuer().as_raw() != ca.subject_raw.as_slice() {
        return Err(DeviceCertError::NotIssuedByCa);
    }
    if !ca.verify(cert.tbs_certificate.as_ref(), &cert.signature_value.data) {
        return Err(DeviceCertError::NotIssuedByCa);
    }
    Ok(identity)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_armour_decodes_back() {
        for len in [1usize, 2, 3, 47, 48, 49, 200] {
            let der: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let pem = der_to_pem("CERTIFICATE", &der);
            let back = CertificateDer::from_pem_slice(pem.as_bytes());
            assert_eq!(back.map(|c| c.to_vec()).ok(), Some(der), "length {len}");
        }
    }
}
