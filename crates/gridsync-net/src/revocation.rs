//! Revocation: CA-signed revocation entries and the shared set of revoked node ids that the
//! TLS verifiers consult on every handshake.
//!
//! A [`SignedRevocation`] is plain data (serde), so the node can store it in the street's
//! revocation document and let it travel through the mesh; whoever receives it checks it with
//! [`verify_revocation`] and adds it to its [`RevocationList`]. Revocation is permanent: there
//! is no way to take an entry out again (issue the device a new node id instead).

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use gridsync_proto::NodeId;
use serde::{Deserialize, Serialize};

use crate::ca::CaPublicKey;

/// Domain separation tag of the signed revocation message.
const REVOCATION_TAG: &[u8] = b"gridsync-revocation/1";

/// A revocation of one node, signed by the street CA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedRevocation {
    /// The street whose CA signed it.
    pub street: String,
    /// The revoked node.
    pub node_id: NodeId,
    /// When the office revoked it, unix seconds (informational, and signed).
    pub revoked_at: u64,
    /// ECDSA P-256 SHA-256 signature (ASN.1 DER) by the CA key over the canonical message
    /// `gridsync-revocation/1 NUL street NUL node_id NUL revoked_at` (decimal).
    pub signature: Vec<u8>,
}

/// Why a signed revocation was refused.
#[derive(Debug, thiserror::Error)]
pub enum RevocationError {
    #[error("CA certificate is unusable: {0}")]
    CaCert(#[from] crate::ca::CaError),
    #[error("revocation is for street {found:?}, the CA serves street {expected:?}")]
    WrongStreet { expected: String, found: String },
    #[error("revocation signature does not verify against the street CA")]
    BadSignature,
}

/// The canonical byte string the CA signs: tag, street, node id and time, NUL-separated.
/// Neither street nor node id can contain NUL (both are path segments).
pub(crate) fn revocation_message(street: &str, node_id: &NodeId, revoked_at: u64) -> Vec<u8> {
    let mut m = Vec::with_capacity(64);
    m.extend_from_slice(REVOCATION_TAG);
    m.push(0);
    m.extend_from_slice(street.as_bytes());
    m.push(0);
    m.extend_from_slice(node_id.as_str().as_bytes());
    m.push(0);
    m.extend_from_slice(revoked_at.to_string().as_bytes());
    m
}

/// Checks that `revocation` was signed by the CA whose certificate is `ca_cert_der`.
pub fn verify_revocation(
    ca_cert_der: &[u8],
    revocation: &SignedRevocation,
) -> Result<(), RevocationError> {
    let ca = CaPublicKey::from_cert(ca_cert_der)?;
    if ca.street != revocation.street {
        return Err(RevocationError::WrongStreet {
            expected: ca.street,
            found: revocation.street.clone(),
        });
    }
    let message = revocation_message(
        &revocation.street,
        &revocation.node_id,
        revocation.revoked_at,
    );
    if ca.verify(&message, &revocation.signature) {
        Ok(())
    } else {
        Err(RevocationError::BadSignature)
    }
}

/// The set of revoked node ids, shared between the node and its TLS verifiers. Clones share
/// the same set; an update is seen by the next handshake.
#[derive(Debug, Clone, Default)]
pub struct RevocationList {
    revoked: Arc<RwLock<BTreeSet<NodeId>>>,
}

impl RevocationList {
    /// An empty list.
    pub fn new() -> RevocationList {
        RevocationList::default()
    }

    /// Revokes `node_id` on local authority (for example at the office, which holds the CA).
    /// Returns whether it was newly revoked.
    pub fn revoke(&self, node_id: NodeId) -> bool {
        // A poisoned lock only means a writer panicked mid-insert of a BTreeSet, which leaves
        // the set valid; keep using it.
        self.revoked
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(node_id)
    }

    /// Verifies a signed revocation against the street CA and applies it. Returns whether the
    /// node was newly revoked.
    pub fn apply(
        &self,
        ca_cert_der: &[u8],
        revocation: &SignedRevocation,
    ) -> Result<bool, RevocationError> {
        verify_revocation(ca_cert_der, revocation)?;
        Ok(self.revoke(revocation.node_id.clone()))
    }

    /// Is `node_id` revoked?
    pub fn is_revoked(&self, node_id: &NodeId) -> bool {
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains(node_id)
    }

    /// The revoked node ids, in order.
    pub fn snapshot(&self) -> Vec<NodeId> {
        self.revoked
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ca::StreetCa;

    const NOW: u64 = 1_790_000_000;

    fn node(s: &str) -> NodeId {
        NodeId::parse(s).expect("test node ids are valid")
    }

    #[test]
    fn signed_revocation_verifies_and_tampering_fails() {
        let ca = StreetCa::generate("panhuo", NOW).expect("ca");
        let rev = ca.sign_revocation(&node("vol-7"), NOW).expect("sign");
        verify_revocation(ca.cert_der(), &rev).expect("genuine revocation verifies");

        let mut other_node = rev.clone();
        other_node.node_id = node("vol-8");
        assert!(matches!(
            verify_revocation(ca.cert_der(), &other_node),
            Err(RevocationError::BadSignature)
        ));
        let mut other_time = rev.clone();
        other_time.revoked_at += 1;
        assert!(verify_revocation(ca.cert_der(), &other_time).is_err());
        let mut flipped = rev.clone();
        let last = flipped.signature.len() - 1;
        flipped.signature[last] ^= 1;
        assert!(matches!(
            verify_revocation(ca.cert_der(), &flipped),
            Err(RevocationError::BadSignature)
        ));
        let mut empty = rev.clone();
        empty.signature.clear();
        assert!(verify_revocation(ca.cert_der(), &empty).is_err());
    }

    #[test]
    fn revocation_from_another_ca_is_refused() {
        let ca = StreetCa::generate("panhuo", NOW).expect("ca");
        let rogue = StreetCa::generate("panhuo", NOW).expect("rogue ca");
        let rev = rogue.sign_revocation(&node("vol-7"), NOW).expect("sign");
        let err = verify_revocation(ca.cert_der(), &rev).expect_err("other CA");
        assert!(matches!(err, RevocationError::BadSignature), "{err}");

        let elsewhere = StreetCa::generate("linhai", NOW).expect("ca");
        let rev = elsewhere
            .sign_revocation(&node("vol-7"), NOW)
            .expect("sign");
        let err = verify_revocation(ca.cert_der(), &rev).expect_err("other street");
        assert!(err.to_string().contains("street"), "{err}");
    }

    #[test]
    fn list_applies_only_verified_entries_and_is_shared() {
        let ca = StreetCa::generate("panhuo", NOW).expect("ca");
        let rogue = StreetCa::generate("panhuo", NOW).expect("rogue ca");
        let list = RevocationList::new();
        let seen_by_verifier = list.clone();
        let bad = rogue.sign_revocation(&node("vol-1"), NOW).expect("sign");
        assert!(list.apply(ca.cert_der(), &bad).is_err());
        assert!(!seen_by_verifier.is_revoked(&node("vol-1")));
        let good = ca.sign_revocation(&node("vol-1"), NOW).expect("sign");
        assert!(list.apply(ca.cert_der(), &good).expect("verifies"));
        assert!(!list.apply(ca.cert_der(), &good).expect("verifies"));
        assert!(seen_by_verifier.is_revoked(&node("vol-1")));
        assert_eq!(seen_by_verifier.snapshot(), vec![node("vol-1")]);
    }

    #[test]
    fn signed_revocation_round_trips_as_json() {
        let ca = StreetCa::generate("panhuo", NOW).expect("ca");
        let rev = ca.sign_revocation(&node("vol-7"), NOW).expect("sign");
        let json = serde_json::to_string(&rev).expect("serialize");
        let back: SignedRevocation = serde_json::from_str(&json).expect("parse");
        verify_revocation(ca.cert_der(), &back).expect("still verifies");
    }
}
