//! Who may write what: the device key local changes are signed with, signatures kept and
//! checked, the device directory and revocations, equivocation, and the content rules of the
//! street's control documents.

use super::*;

impl Replica {
    /// Sets the street CA certificate (DER) that device directory entries must be issued by.
    /// [`Replica::open`] sets it from the installed identity; a node started from parts
    /// sets it from its credentials.
    pub fn set_trust_root(&mut self, ca_cert_der: Vec<u8>) {
        self.directory.set_ca(&ca_cert_der);
        self.trust_root = Some(ca_cert_der);
    }

    /// Sets the device key local changes are signed with (PKCS#8 DER of the certificate's
    /// key). [`Replica::open`] sets it from the installed identity.
    pub fn set_signing_key(&mut self, key_der: &[u8]) -> Result<(), ReplicaError> {
        let signer = ChangeSigner::from_pkcs8(key_der).map_err(ReplicaError::Signing)?;
        self.signer = Some(signer);
        Ok(())
    }

    /// The signatures held for `path`: one per actor, on its newest change here.
    pub fn signatures_for(&mut self, path: &DocPath) -> Vec<SignedHead> {
        if !self.signatures.contains_key(path) {
            let stored = self.store.signatures(path).unwrap_or_else(|error| {
                tracing::warn!(%path, %error, "cannot read stored change signatures");
                Vec::new()
            });
            self.signatures.insert(path.clone(), stored);
        }
        self.signatures.get(path).cloned().unwrap_or_default()
    }

    /// Keeps `heads` as the signatures of their actors' newest changes in `path` (in memory
    /// now; the caller stores them with the changes).
    pub fn remember_signatures(&mut self, path: &DocPath, heads: &[SignedHead]) {
        if heads.is_empty() {
            return;
        }
        self.signatures_for(path);
        let Some(held) = self.signatures.get_mut(path) else {
            return;
        };
        for head in heads {
            match held.iter_mut().find(|h| h.actor == head.actor) {
                Some(existing) if existing.seq >= head.seq => {}
                Some(existing) => *existing = head.clone(),
                None => held.push(head.clone()),
            }
        }
    }

    /// Signs this device's newest change in `path` among those after `before`: the one
    /// signature that vouches for all of them.
    pub(super) fn sign_new_changes(
        &self,
        path: &DocPath,
        doc: &Automerge,
        before: &[ChangeHash],
    ) -> Result<Vec<SignedHead>, ReplicaError> {
        let Some(signer) = &self.signer else {
            return Ok(Vec::new());
        };
        let newest = doc
            .get_changes_meta(before)
            .into_iter()
            .filter(|meta| *meta.actor == self.actor)
            .max_by_key(|meta| meta.seq);
        let Some(newest) = newest else {
            return Ok(Vec::new());
        };
        let signature = signer
            .sign(&signed_bytes(path, &newest.hash))
            .map_err(ReplicaError::Signing)?;
        Ok(vec![SignedHead {
            actor: self.actor.clone(),
            seq: newest.seq,
            signature: ChangeSignature {
                hash: newest.hash,
                signature,
            },
        }])
    }

    /// Signs, in `path`, the newest change of each of this node's own actors (earlier
    /// incarnations included) that no signature held vouches for: changes stored before
    /// signing existed (a migrated store) or stored outside [`Replica::write`] (documents a
    /// benchmark generates). Returns how many signatures were made.
    pub fn sign_own_changes(&mut self, path: &DocPath) -> Result<usize, ReplicaError> {
        if self.signer.is_none() {
            return Ok(0);
        }
        self.ensure_loaded(path)?;
        let held = self.signatures_for(path);
        let Some(doc) = self.docs.get(path) else {
            return Ok(0);
        };
        let mut newest: HashMap<ActorId, (u64, ChangeHash)> = HashMap::new();
        for meta in doc.get_changes_meta(&[]) {
            if NodeId::from_actor(&meta.actor).as_ref() != Some(&self.node_id) {
                continue;
            }
            let entry = newest
                .entry(meta.actor.clone().into_owned())
                .or_insert((meta.seq, meta.hash));
            if meta.seq > entry.0 {
                *entry = (meta.seq, meta.hash);
            }
        }
        let heads = doc.get_heads();
        let mut signed = Vec::new();
        for (actor, (seq, hash)) in newest {
            if held.iter().any(|h| h.actor == actor && h.seq >= seq) {
                continue;
            }
            // Invariant: checked above that a signer is set.
            let signer = self.signer.as_ref().expect("signer set");
            let signature = signer
                .sign(&signed_bytes(path, &hash))
                .map_err(ReplicaError::Signing)?;
            signed.push(SignedHead {
                actor,
                seq,
                signature: ChangeSignature { hash, signature },
            });
        }
        if signed.is_empty() {
            return Ok(0);
        }
        let count = signed.len();
        self.remember_signatures(path, &signed);
        self.store_append(DocumentAppend {
            path: path.clone(),
            chunk: Vec::new(),
            heads,
            origins: Vec::new(),
            signed_heads: signed,
        })?;
        Ok(count)
    }

    /// Is the claimed signature that of the device behind its author, over its signed bytes?
    pub fn verify_signature(&mut self, claim: SignatureClaim<'_>) -> SignatureCheck {
        let Some(node_id) = NodeId::from_actor(claim.author) else {
            return SignatureCheck::Invalid;
        };
        if self.trust_root.is_none() {
            return SignatureCheck::UnknownAuthor;
        }
        self.refresh_directory();
        match self.directory.device(&node_id) {
            Some(device) => {
                if gridsync_net::verify_change_signature(
                    &device.public_key,
                    claim.signed,
                    claim.signature,
                ) {
                    SignatureCheck::Valid
                } else {
                    SignatureCheck::Invalid
                }
            }
            None => SignatureCheck::UnknownAuthor,
        }
    }

    /// Checks a verified signature on an author's newest received change against the one
    /// held for the same actor: two different changes signed for one (actor, seq) are
    /// evidence that the device equivocates. The evidence is stored (both signatures) and
    /// the device's changes are refused from then on.
    pub fn check_signed_head(
        &mut self,
        path: &DocPath,
        head: &SignedHead,
    ) -> Result<(), RefusalReason> {
        let Some(node_id) = NodeId::from_actor(&head.actor) else {
            return Err(RefusalReason::BadSignature);
        };
        if self.equivocators.contains_key(&node_id) {
            return Err(RefusalReason::Equivocation);
        }
        let held = self.signatures_for(path);
        let Some(prior) = held.iter().find(|h| {
            h.actor == head.actor && h.seq == head.seq && h.signature.hash != head.signature.hash
        }) else {
            return Ok(());
        };
        let evidence = crate::evidence::Equivocation::new(
            &node_id,
            path,
            prior,
            head,
            self.sources.clock.unix_ms(),
        );
        tracing::error!(device = %node_id, %path, seq = head.seq, "a device signed two different changes with one sequence number; its changes are refused from now on; revoke it");
        if let Err(error) = crate::evidence::save(&mut self.store, &evidence) {
            tracing::warn!(%error, "cannot store the equivocation evidence");
        }
        self.equivocators.insert(node_id, evidence);
        Err(RefusalReason::Equivocation)
    }

    /// Devices caught equivocating, with the evidence.
    pub fn equivocators(&self) -> impl Iterator<Item = &crate::evidence::Equivocation> {
        self.equivocators.values()
    }

    /// Whether `node` is revoked by an entry of the revocation document held (each entry
    /// verified against the street CA; re-read only when the document changed).
    pub(super) fn is_revoked(&mut self, node: &NodeId) -> bool {
        let Some(trust_root) = self.trust_root.clone() else {
            return false;
        };
        let Ok(path) = crate::revocations::revocations_path(&self.street) else {
            return false;
        };
        if let Err(error) = self.ensure_loaded(&path) {
            tracing::warn!(%error, "cannot load the revocation document");
        }
        if let Some(doc) = self.docs.get(&path) {
            let heads = doc.get_heads();
            if heads != self.revoked.0 {
                let list = gridsync_net::RevocationList::new();
                crate::revocations::apply_document(doc, &trust_root, &list);
                self.revoked = (heads, list);
            }
        }
        self.revoked.1.is_revoked(node)
    }

    /// Whether `path` is one of the street's control documents with content rules.
    pub fn has_content_rules(&self, path: &DocPath) -> bool {
        self.control_document(path).is_some()
    }

    /// Checks a received change to a control document against its rules
    /// ([`crate::street_rules`]).
    pub fn check_content(
        &mut self,
        path: &DocPath,
        change: &automerge::Change,
    ) -> Result<(), RefusalReason> {
        match self.control_document(path) {
            Some(ControlDocument::Directory) => {
                if self.trust_root.is_none() {
                    return Err(RefusalReason::UnknownAuthor);
                }
                self.refresh_directory();
                crate::street_rules::check_directory_change(change, &mut self.directory)
            }
            Some(ControlDocument::Revocations) => {
                crate::street_rules::check_revocations_change(change)
            }
            None => Ok(()),
        }
    }

    pub(super) fn control_document(&self, path: &DocPath) -> Option<ControlDocument> {
        let mut segments = path.segments();
        if segments.next() != Some(self.street.as_str()) {
            return None;
        }
        match (segments.next(), segments.next()) {
            (Some(crate::directory::SEGMENT), None) => Some(ControlDocument::Directory),
            (Some(crate::revocations::SEGMENT), None) => Some(ControlDocument::Revocations),
            _ => None,
        }
    }

    /// Brings the device directory up to the directory document held.
    pub(super) fn refresh_directory(&mut self) {
        let Ok(directory_path) = crate::directory::directory_path(&self.street) else {
            return;
        };
        if let Err(error) = self.ensure_loaded(&directory_path) {
            tracing::warn!(%error, "cannot load the device directory");
        }
        if let (Some(doc), Some(trust_root)) = (self.docs.get(&directory_path), &self.trust_root) {
            self.directory.refresh(doc, trust_root);
        }
    }

    /// Publishes this device's certificate in the street's device directory (one durable
    /// change, none if it is there already), so that peers can judge the changes it authors
    /// when others relay them. Returns whether a change was written.
    pub fn publish_device_certificate(
        &mut self,
        cert_der: &[u8],
        now_ms: u64,
    ) -> Result<bool, ReplicaError> {
        let path =
            crate::directory::directory_path(&self.street).map_err(ReplicaError::BadStreet)?;
        let node_id = self.node_id.clone();
        let now = i64::try_from(now_ms).unwrap_or(i64::MAX);
        self.write_with_genesis(&path, crate::directory::genesis, |doc| {
            crate::directory::publish(doc, &node_id, cert_der, now)
        })
    }

    /// May the author of a relayed change write `path`? See [`crate::directory`].
    pub fn author_standing(
        &mut self,
        author: &ActorId,
        change: &ChangeHash,
        path: &DocPath,
    ) -> AuthorStanding {
        if let Some(node) = NodeId::from_actor(author) {
            if self.equivocators.contains_key(&node) || self.is_revoked(&node) {
                return AuthorStanding::MayNotWrite;
            }
            self.refresh_directory();
            if self
                .directory
                .device(&node)
                .is_some_and(|d| d.not_after < self.sources.clock.unix_ms() / 1000)
            {
                // An expired certificate writes nothing new; what it wrote while valid and
                // already arrived stays.
                return AuthorStanding::MayNotWrite;
            }
        }
        if self.control_document(path) == Some(ControlDocument::Directory) {
            // Every device publishes its own entry, before the directory holds it: the
            // content rules (checked first) admit a directory change only when its
            // certificate names its author, or its author is the office.
            return AuthorStanding::MayWrite;
        }
        if self.trust_root.is_none() {
            return AuthorStanding::Unknown;
        }
        self.refresh_directory();
        self.directory.standing(author, change, path)
    }

    /// The start class of `path` on a contact: the device directory and the revocation list
    /// first (every author check depends on them), then the other street-wide documents (the
    /// plan); the engine itself raises documents holding urgent changes (see
    /// [`gridsync_proto::URGENT_CHANGE`]).
    pub fn sync_priority(&self, path: &DocPath) -> SyncPriority {
        let mut segments = path.segments();
        if self.control_document(path).is_some() {
            SyncPriority::Trust
        } else if segments.next() == Some(self.street.as_str()) && path.segments().count() == 2 {
            SyncPriority::Street
        } else {
            SyncPriority::Routine
        }
    }
}

/// The street's control documents, which have content rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ControlDocument {
    Directory,
    Revocations,
}

/// The node id behind an actor, `genesis` for the skeleton's actor, else the actor's hex.
pub(super) fn author_name(actor: &ActorId) -> String {
    if *actor == gridsync_model::genesis_actor() {
        return "genesis".to_owned();
    }
    gridsync_model::node_for_actor(actor)
        .map(|n| n.to_string())
        .unwrap_or_else(|| actor.to_hex_string())
}
