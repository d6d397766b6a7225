//! The street's device directory as a replicated document, `{street}/devices`, and the
//! author check built on it.
//!
//! A relayed change arrives from a peer that did not write it; the sync engine asks who its
//! author is allowed to be ([`gridsync_proto::DocumentSet::author_standing`]). The answer
//! comes from this directory: every device publishes its own CA-issued certificate here when
//! it starts (the office also publishes its own), under its node id. Because certificates are
//! signed by the street CA, any device may write the document and no relay can forge an
//! entry: each one is verified against the CA before it is believed, and entries that do not
//! verify are ignored. A change's author is its automerge actor (the node id's bytes), so the
//! receiver reads the author's grants from the author's own certificate.
//!
//! A device publishes its entry before its first sync and the directory travels first on
//! every contact (street-wide documents lead the start order), so a relay that holds a
//! device's records normally holds its entry too. When it does not, the records are refused
//! as coming from an unknown author and offered again on a later contact.

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ChangeHash, ObjType, ROOT, ReadDoc, ScalarValue, Value};
use gridsync_proto::{AuthorStanding, DocPath, NodeId, PathError, Role, Scopes};
use sha2::{Digest as _, Sha256};

/// Name of the document under the street.
pub const SEGMENT: &str = "devices";
/// The one top-level map: node id -> certificate (DER bytes).
const DEVICES: &str = "devices";
/// Largest certificate read from the document (gridsync-net refuses larger ones too).
pub(crate) const MAX_CERT_BYTES: usize = 16 * 1024;

pub fn directory_path(street: &str) -> Result<DocPath, PathError> {
    DocPath::from_segments(&[street, SEGMENT])
}

/// The directory document's skeleton: byte-identical on every node.
pub fn genesis() -> Automerge {
    let mut doc = Automerge::new().with_actor(gridsync_model::genesis_actor());
    // Invariant: putting one map into an empty document's root cannot fail.
    doc.transact_with(
        |_| CommitOptions::default().with_time(0),
        |tx| tx.put_object(ROOT, DEVICES, ObjType::Map).map(|_| ()),
    )
    .expect("genesis of the device directory");
    doc
}

/// Publishes `cert_der` as `node_id`'s entry (one change), unless the entry already holds
/// exactly that certificate. Returns whether a change was made.
pub fn publish(
    doc: &mut Automerge,
    node_id: &NodeId,
    cert_der: &[u8],
    now_ms: i64,
) -> Result<bool, automerge::AutomergeError> {
    let Some((Value::Object(ObjType::Map), map)) = doc.get(ROOT, DEVICES)? else {
        return Err(automerge::AutomergeError::InvalidOp(ObjType::Map));
    };
    if let Some((Value::Scalar(current), _)) = doc.get(&map, node_id.as_str())?
        && let ScalarValue::Bytes(bytes) = current.as_ref()
        && bytes.as_slice() == cert_der
    {
        return Ok(false);
    }
    doc.transact_with(
        |_| CommitOptions::default().with_time(now_ms),
        |tx| {
            tx.put(
                &map,
                node_id.as_str(),
                ScalarValue::Bytes(cert_der.to_vec()),
            )
        },
    )
    .map_err(|f| f.error)?;
    Ok(true)
}

/// The hashes of every deterministic genesis change gridsync writes (field-model documents,
/// revocation list, device directory). Their author is the zero actor, which no device is.
fn genesis_hashes() -> &'static HashSet<ChangeHash> {
    static HASHES: OnceLock<HashSet<ChangeHash>> = OnceLock::new();
    HASHES.get_or_init(|| {
        [
            gridsync_model::genesis(gridsync_model::DocKind::StreetPlan),
            gridsync_model::genesis(gridsync_model::DocKind::Building),
            crate::revocations::genesis(),
            genesis(),
        ]
        .iter()
        .flat_map(|doc| doc.get_heads())
        .collect()
    })
}

/// What a verified directory entry certifies.
#[derive(Debug, Clone)]
pub(crate) struct VerifiedDevice {
    pub node_id: NodeId,
    pub role: Role,
    pub scopes: Scopes,
    /// The certificate's public key, which the device's change signatures verify against.
    pub public_key: Vec<u8>,
    /// End of the certificate's validity, unix seconds: past it, the device's changes that
    /// reach this node are refused.
    pub not_after: u64,
}

/// The directory: certificates by node id, verified when first asked about.
#[derive(Debug, Default)]
pub struct DeviceDirectory {
    /// Heads of the directory document this was built from.
    heads: Vec<ChangeHash>,
    /// Entries as stored (not yet verified), by key.
    entries: HashMap<String, Vec<u8>>,
    /// Certificates seen in directory changes being inspected (not applied yet), by the node
    /// they name: the key a directory change's own signature verifies against before the
    /// entry it adds is in the document.
    introduced: HashMap<String, Vec<u8>>,
    ca: Vec<u8>,
    /// Every certificate checked so far, by SHA-256 of its DER.
    checked: HashMap<[u8; 32], Option<VerifiedDevice>>,
}

impl DeviceDirectory {
    /// Re-reads the entries from `doc` if it changed since the last call (no verification:
    /// an entry is verified when a change by its device is first judged).
    pub fn refresh(&mut self, doc: &Automerge, ca_cert_der: &[u8]) {
        self.ca = ca_cert_der.to_vec();
        let heads = doc.get_heads();
        if heads == self.heads {
            return;
        }
        self.heads = heads;
        self.entries.clear();
        let Ok(Some((Value::Object(ObjType::Map), map))) = doc.get(ROOT, DEVICES) else {
            return;
        };
        for item in doc.map_range(&map, ..) {
            let Value::Scalar(value) = item.value.into_value() else {
                continue;
            };
            let ScalarValue::Bytes(der) = value.as_ref() else {
                continue;
            };
            if der.len() > MAX_CERT_BYTES {
                continue;
            }
            self.entries.insert(item.key.to_string(), der.clone());
        }
    }

    /// Sets the CA that entries are verified against (when no directory document is held).
    pub fn set_ca(&mut self, ca_cert_der: &[u8]) {
        self.ca = ca_cert_der.to_vec();
    }

    /// Verifies `der` against the street CA (once per certificate).
    pub(crate) fn verify(&mut self, der: &[u8]) -> Option<VerifiedDevice> {
        let digest: [u8; 32] = Sha256::digest(der).into();
        let ca = &self.ca;
        self.checked
            .entry(digest)
            .or_insert_with(|| {
                let identity = match gridsync_net::verify_device_certificate(ca, der) {
                    Ok(identity) => identity,
                    Err(error) => {
                        tracing::warn!(%error, "ignoring a device certificate that does not verify");
                        return None;
                    }
                };
                let public_key = gridsync_net::certificate_public_key(der).ok()?;
                Some(VerifiedDevice {
                    node_id: identity.node_id,
                    role: identity.role,
                    scopes: identity.scopes,
                    public_key,
                    not_after: identity.not_after,
                })
            })
            .clone()
    }

    /// Records a certificate found in a directory change under inspection, once it verified
    /// against the CA and names `node_id`.
    pub(crate) fn introduce(&mut self, node_id: &NodeId, der: &[u8]) {
        self.introduced
            .insert(node_id.as_str().to_owned(), der.to_vec());
    }

    /// The verified device behind `node_id`: its directory entry, or a certificate
    /// introduced by a directory change being inspected.
    pub(crate) fn device(&mut self, node_id: &NodeId) -> Option<VerifiedDevice> {
        let candidates = [
            self.entries.get(node_id.as_str()).cloned(),
            self.introduced.get(node_id.as_str()).cloned(),
        ];
        for der in candidates.into_iter().flatten() {
            if let Some(device) = self.verify(&der)
                && device.node_id == *node_id
            {
                return Some(device);
            }
        }
        None
    }

    /// Entries held (verified or not).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// May the author of change `change` (actor `author`) write `path`?
    pub fn standing(
        &mut self,
        author: &ActorId,
        change: &ChangeHash,
        path: &DocPath,
    ) -> AuthorStanding {
        if *author == gridsync_model::genesis_actor() {
            return if genesis_hashes().contains(change) {
                AuthorStanding::MayWrite
            } else {
                AuthorStanding::MayNotWrite
            };
        }
        let Some(node_id) = NodeId::from_actor(author) else {
            // Every gridsync device writes under an actor naming its node: anything else is
            // forged.
            return AuthorStanding::MayNotWrite;
        };
        match self.device(&node_id) {
            Some(device) if device.scopes.may_write(path) => AuthorStanding::MayWrite,
            Some(_) => AuthorStanding::MayNotWrite,
            None => AuthorStanding::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gridsync_net::{DeviceIdentity, StreetCa};
    use gridsync_proto::Role;

    fn now() -> u64 {
        crate::clock::unix_ms() / 1000
    }

    fn issue(ca: &StreetCa, node: &str, grants: &[&str]) -> Vec<u8> {
        let identity = DeviceIdentity {
            street: "s".into(),
            node_id: NodeId::parse(node).expect("node id"),
            role: Role::Volunteer,
            scopes: Scopes(grants.iter().map(|g| g.parse().expect("grant")).collect()),
            not_before: now() - 60,
            not_after: now() + 3600,
        };
        ca.issue(&identity).expect("issue").cert_der
    }

    fn path(s: &str) -> DocPath {
        s.parse().expect("path")
    }

    fn actor(node: &str) -> ActorId {
        NodeId::parse(node).expect("node id").actor_id()
    }

    #[test]
    fn authors_are_judged_by_their_own_certificates() {
        let ca = StreetCa::generate("s", now()).expect("ca");
        let mut doc = genesis();
        let vol = NodeId::parse("vol-1").expect("node id");
        let cert = issue(&ca, "vol-1", &["write:s/g1"]);
        assert!(publish(&mut doc, &vol, &cert, 1).expect("publishes"));
        assert!(!publish(&mut doc, &vol, &cert, 2).expect("same entry"));
        // An entry from another CA, and one filed under a node id it does not certify.
        let rogue = StreetCa::generate("s", now()).expect("ca");
        let mallory = NodeId::parse("mallory").expect("node id");
        publish(
            &mut doc,
            &mallory,
            &issue(&rogue, "mallory", &["write:s"]),
            3,
        )
        .expect("put");
        let squatter = NodeId::parse("vol-2").expect("node id");
        publish(&mut doc, &squatter, &issue(&ca, "vol-9", &["write:s"]), 4).expect("put");

        let mut directory = DeviceDirectory::default();
        directory.refresh(&doc, ca.cert_der());
        assert_eq!(
            directory.len(),
            3,
            "entries are held unverified until asked about"
        );
        let any = ChangeHash([7; 32]);
        let mut standing = |who: &str, p: &str| directory.standing(&actor(who), &any, &path(p));
        assert_eq!(standing("vol-1", "s/g1/b-1"), AuthorStanding::MayWrite);
        assert_eq!(standing("vol-1", "s/g2/b-1"), AuthorStanding::MayNotWrite);
        assert_eq!(standing("mallory", "s/g1/b-1"), AuthorStanding::Unknown);
        assert_eq!(standing("vol-2", "s/g1/b-1"), AuthorStanding::Unknown);
    }

    #[test]
    fn only_the_real_genesis_changes_pass_as_the_zero_actor() {
        let mut directory = DeviceDirectory::default();
        let zero = gridsync_model::genesis_actor();
        let plan = gridsync_model::genesis(gridsync_model::DocKind::StreetPlan).get_heads()[0];
        assert_eq!(
            directory.standing(&zero, &plan, &path("s/plan")),
            AuthorStanding::MayWrite
        );
        assert_eq!(
            directory.standing(&zero, &ChangeHash([1; 32]), &path("s/g1/b-1")),
            AuthorStanding::MayNotWrite
        );
    }
}
