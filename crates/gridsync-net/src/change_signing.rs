//! Signing and verifying change signatures with device keys.
//!
//! A device signs every change it authors with the key of its CA-issued certificate (ECDSA
//! P-256, fixed-length r ‖ s signatures of 64 bytes); every node verifies a received change's
//! signature against the public key in its author's certificate. What is signed, and which
//! changes one signature vouches for, is gridsync-proto's `signature` module; this module only
//! holds the cryptography, since gridsync-net is the one crate that handles keys.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};

/// Length of a change signature.
pub const CHANGE_SIGNATURE_LEN: usize = 64;

/// Why a signer or a public key could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigningError {
    #[error("the device key is not an ECDSA P-256 PKCS#8 key: {0}")]
    BadKey(String),
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("certificate does not parse: {0}")]
    BadCertificate(String),
}

/// A device's signing key.
pub struct ChangeSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
}

impl fmt::Debug for ChangeSigner {
    // The key never reaches logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ChangeSigner")
    }
}

impl ChangeSigner {
    /// A signer from the device's private key (PKCS#8 DER, as in [`crate::NodeCredentials`]).
    pub fn from_pkcs8(key_der: &[u8]) -> Result<Self, SigningError> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, key_der, &rng)
            .map_err(|e| SigningError::BadKey(e.to_string()))?;
        Ok(ChangeSigner { key, rng })
    }

    /// Signs `message`.
    pub fn sign(&self, message: &[u8]) -> Result<[u8; CHANGE_SIGNATURE_LEN], SigningError> {
        let signature = self
            .key
            .sign(&self.rng, message)
            .map_err(|e| SigningError::Sign(e.to_string()))?;
        signature
            .as_ref()
            .try_into()
            .map_err(|_| SigningError::Sign("unexpected signature length".into()))
    }
}

/// The public key (uncompressed EC point) in a certificate.
pub fn certificate_public_key(cert_der: &[u8]) -> Result<Vec<u8>, SigningError> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der)
        .map_err(|e| SigningError::BadCertificate(e.to_string()))?;
    Ok(cert.public_key().subject_public_key.data.to_vec())
}

/// Whether `signature` over `message` was made by the key whose public half is
/// `public_key` ([`certificate_public_key`]).
pub fn verify_change_signature(
    public_key: &[u8],
    message: &[u8],
    signature: &[u8; CHANGE_SIGNATURE_LEN],
) -> bool {
    UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public_key)
        .verify(message, signature)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DeviceIdentity, StreetCa};
    use gridsync_proto::{NodeId, Role, Scopes};

    fn issued(name: &str, ca: &StreetCa) -> crate::IssuedIdentity {
        ca.issue(&DeviceIdentity {
            node_id: NodeId::parse(name).expect("valid test id"),
            role: Role::Volunteer,
            scopes: Scopes(vec!["write:panhuo/g1".parse().expect("valid grant")]),
            street: "panhuo".into(),
            not_before: 1_700_000_000,
            not_after: 1_900_000_000,
        })
        .expect("issued")
    }

    #[test]
    fn a_signature_verifies_with_its_certificate_only() {
        let ca = StreetCa::generate("panhuo", 1_700_000_000).expect("ca");
        let (a, b) = (issued("vol-1", &ca), issued("vol-2", &ca));
        let signer = ChangeSigner::from_pkcs8(&a.key_der).expect("signer");
        let signature = signer.sign(b"change").expect("signs");
        let a_key = certificate_public_key(&a.cert_der).expect("key");
        let b_key = certificate_public_key(&b.cert_der).expect("key");
        assert!(verify_change_signature(&a_key, b"change", &signature));
        assert!(!verify_change_signature(
            &a_key,
            b"other change",
            &signature
        ));
        assert!(!verify_change_signature(&b_key, b"change", &signature));
        assert!(ChangeSigner::from_pkcs8(b"not a key").is_err());
        assert!(certificate_public_key(b"not a certificate").is_err());
    }
}
