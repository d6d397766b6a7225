//! A node's local replica: the durable store plus the documents it has loaded in memory.
//!
//! Every write to a document goes through [`Replica::write`], which applies a field-model
//! operation to the in-memory document and appends exactly the new changes to the store
//! before returning. "Saved" is only ever reported after that append returned, so an
//! acknowledged write survives a crash.
//!
//! The CLI uses a `Replica` directly when no node is running; a running node owns one and
//! serves CLI writes through its control socket, so the in-memory documents never go stale.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::{ActorId, Automerge, ChangeHash};
use gridsync_model::StreetPlan;
use gridsync_net::ChangeSigner;
use gridsync_proto::inventory::InventoryItem;
use gridsync_proto::signature::signed_bytes;
use gridsync_proto::{
    AuthorStanding, ChangeSignature, DocPath, NodeId, RefusalReason, SIGNATURE_LEN, Scopes,
    SignatureCheck, SignedHead, SyncPriority,
};

use crate::clock::{Clock, Sources};
use crate::directory::DeviceDirectory;
use crate::meta_keys;
use crate::store_writer::{StoreWriterHandle, WriteTicket};
use gridsync_store::{DocumentAppend, Store, StoreError, SyncStateWrite, WriteBatch};

/// Plans read in this process, by the plan document's heads (equal heads, equal plan): the
/// replicas of one process (a simulation's thousand devices) parse a plan once.
static READ_PLANS: std::sync::Mutex<Vec<(Vec<ChangeHash>, std::sync::Weak<StreetPlan>)>> =
    std::sync::Mutex::new(Vec::new());

/// Why a replica operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplicaError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("the data directory {0} has no node id: run `gridsync init` first")]
    NotInitialized(PathBuf),
    #[error("the stored node id of {0} is not valid")]
    BadNodeId(String),
    #[error("the stored street name of {0} is not valid")]
    BadStoredStreet(String),
    #[error("not a valid street name")]
    BadStreet(#[source] gridsync_proto::PathError),
    #[error(transparent)]
    Record(#[from] gridsync_model::RecordError),
    #[error(
        "this device may not write {path} (its scopes: {scopes}); such a change would never be accepted by its peers"
    )]
    OutsideWriteScope { path: DocPath, scopes: String },
    #[error(
        "this device is at its storage cap ({documents} documents of {max_documents:?}, about {bytes} bytes of {max_bytes:?}); nothing stored was lost, but new data is refused"
    )]
    StorageCap {
        documents: usize,
        max_documents: Option<usize>,
        bytes: u64,
        max_bytes: Option<u64>,
    },
    #[error("the stored identity is not valid")]
    Credentials(#[source] crate::credentials::CredentialsError),
    #[error("the stored invite does not hold usable credentials")]
    Invite(#[source] gridsync_net::InviteError),
    #[error("the device key cannot sign")]
    Signing(#[source] gridsync_net::SigningError),
    #[error("automerge refused the change: {0}")]
    Automerge(#[from] automerge::AutomergeError),
    #[error("cannot merge document {path}")]
    Merge {
        path: DocPath,
        #[source]
        source: automerge::AutomergeError,
    },
    #[error("cannot apply the plan: {0}")]
    PlanApply(#[from] gridsync_model::plan::PlanApplyError),
    #[error(transparent)]
    NotDurable(#[from] crate::store_writer::NotDurable),
}

/// The local replica of one node: store plus loaded documents.
pub struct Replica {
    /// Where the store lives; kept for error messages.
    dir: PathBuf,
    store: Store,
    /// Documents loaded so far. Loaded lazily: a volunteer's CLI call touches one building,
    /// and an office of 20,000 buildings keeps only those in use (see `cache_limit`).
    docs: BTreeMap<DocPath, Automerge>,
    /// The heads of every document held, loaded or not, so that listing what this node holds
    /// (the sync inventory, status) never loads a document. Read from the store at open and
    /// kept current by every write.
    known_heads: BTreeMap<DocPath, Vec<ChangeHash>>,
    /// Each document's inventory item with the heads it was made from. Every session start
    /// summarises every shared document while the connection holds this replica's lock;
    /// hashing 20,000 documents there held it for about 140 ms (debug build), so items are
    /// kept and made again only for documents whose heads changed. Entries of documents no
    /// longer held are never read (the inventory lists held paths) and are few.
    /// In path order, like `known_heads`, so that listing every item walks both maps side
    /// by side rather than looking each path up.
    inventory_items: BTreeMap<DocPath, (Vec<ChangeHash>, InventoryItem)>,
    /// Where wall time and randomness (record ids, incarnations) come from.
    sources: Sources,
    /// Most documents kept loaded; `None` keeps every loaded document (the CLI, simulations).
    cache_limit: Option<usize>,
    /// When each loaded document was last used (a counter), to unload the least recent.
    last_use: HashMap<DocPath, u64>,
    use_clock: u64,
    /// The running node's store writer: writes are staged to it rather than committed under
    /// the replica lock. `None`: every write commits before returning (the CLI, simulations).
    writer: Option<StoreWriterHandle>,
    /// The last ticket staged per document; a document is unloaded only once it is settled
    /// (durable), since reloading reads the store.
    staged: HashMap<DocPath, WriteTicket>,
    node_id: NodeId,
    street: String,
    /// The automerge actor every local change is written under: the node id and this store
    /// incarnation's suffix ([`NodeId::incarnation_actor`]), so provenance can be read back
    /// from any change and no two incarnations ever write one (actor, seq).
    actor: ActorId,
    /// The device key local changes are signed with; `None` for a device initialized
    /// without an identity (`gridsync init`), whose changes no peer would accept anyway.
    signer: Option<ChangeSigner>,
    /// Signatures on each actor's newest change, per document, as far as read from the
    /// store or written since (loaded per document on first use).
    signatures: HashMap<DocPath, Vec<SignedHead>>,
    /// Devices caught signing two different changes for one (actor, seq), with the
    /// evidence; their changes are refused from then on (kept in the store's metadata).
    equivocators: BTreeMap<NodeId, crate::evidence::Equivocation>,
    /// The revocations of the revocation document as last read (verified against the street
    /// CA), with the document's heads they were read at: a revoked device has no write
    /// standing for changes that reach this node after its revocation did.
    revoked: (Vec<ChangeHash>, gridsync_net::RevocationList),
    /// The street plan as last read, with the plan document's heads it was read at. Reading
    /// 18,563 households takes milliseconds, so it is not redone per write.
    plan_cache: Option<(Vec<ChangeHash>, Arc<StreetPlan>)>,
    /// What this device may write, from its installed identity; `None` for a device
    /// initialized without one (`gridsync init`), which never syncs and is not restricted.
    write_scopes: Option<Scopes>,
    /// Storage caps and how close the store is to them.
    limits: StorageLimits,
    /// The street CA certificate (DER) that device directory entries are verified against;
    /// `None` without an identity, and then no relayed change is accepted.
    trust_root: Option<Vec<u8>>,
    /// Who may write what, from `{street}/devices`, verified against `trust_root`.
    directory: DeviceDirectory,
}

/// A device's storage caps (from the node config) and the running byte estimate.
#[derive(Debug, Default)]
pub struct StorageLimits {
    pub max_documents: Option<usize>,
    pub max_store_bytes: Option<u64>,
    /// Store size on disk at open plus every chunk appended since: cheap to keep, close
    /// enough to warn and refuse on.
    approx_bytes: u64,
    /// Whether the "nearing the cap" warning was logged (once per run).
    warned: bool,
}

/// Share of a cap past which a warning is logged.
const WARN_AT: f64 = 0.9;

impl Replica {
    /// Creates a new replica in `dir` for the given node and street.
    pub fn init(dir: &Path, node_id: &NodeId, street: &str) -> Result<Self, ReplicaError> {
        Self::init_with(dir, node_id, street, Sources::system())
    }

    /// [`Replica::init`] with the given time and randomness (a simulation's).
    pub fn init_with(
        dir: &Path,
        node_id: &NodeId,
        street: &str,
        mut sources: Sources,
    ) -> Result<Self, ReplicaError> {
        gridsync_proto::path::validate_segment(street).map_err(ReplicaError::BadStreet)?;
        let mut store = Store::create(dir)?;
        store.put_meta(meta_keys::NODE_ID, node_id.as_str().as_bytes())?;
        store.put_meta(meta_keys::STREET, street.as_bytes())?;
        let incarnation = new_incarnation(&mut store, &mut sources)?;
        Ok(Self::from_parts(
            dir,
            store,
            node_id.clone(),
            street.to_owned(),
            incarnation,
            sources,
        ))
    }

    /// Opens the replica in `dir`; it must have been initialized.
    pub fn open(dir: &Path) -> Result<Self, ReplicaError> {
        Self::open_with(dir, Sources::system())
    }

    /// [`Replica::open`] with the given time and randomness (a simulation's).
    pub fn open_with(dir: &Path, mut sources: Sources) -> Result<Self, ReplicaError> {
        let store = Store::open(dir)?;
        let node_id = store
            .get_meta(meta_keys::NODE_ID)?
            .ok_or_else(|| ReplicaError::NotInitialized(dir.to_owned()))?;
        let node_id = String::from_utf8(node_id)
            .ok()
            .and_then(|s| NodeId::parse(&s).ok())
            .ok_or_else(|| ReplicaError::BadNodeId(dir.display().to_string()))?;
        let street = store
            .get_meta(meta_keys::STREET)?
            .ok_or_else(|| ReplicaError::NotInitialized(dir.to_owned()))?;
        let street = String::from_utf8(street)
            .map_err(|_| ReplicaError::BadStoredStreet(dir.display().to_string()))?;
        let mut store = store;
        let incarnation = current_incarnation(&mut store, &mut sources)?;
        let mut replica = Self::from_parts(dir, store, node_id, street, incarnation, sources);
        replica.read_known_heads()?;
        replica.equivocators = crate::evidence::load(&replica.store)?;
        match crate::credentials::load_invite(&replica.store) {
            Ok(Some(invite)) => {
                let credentials = invite.credentials().map_err(ReplicaError::Invite)?;
                replica.write_scopes = Some(invite.identity.scopes);
                replica.set_signing_key(&credentials.key_der)?;
                replica.directory.set_ca(&credentials.ca_cert_der);
                replica.trust_root = Some(credentials.ca_cert_der);
            }
            Ok(None) => {}
            Err(e) => return Err(ReplicaError::Credentials(e)),
        }
        Ok(replica)
    }

    /// Sets the storage caps (from the node config).
    pub fn set_limits(&mut self, max_documents: Option<usize>, max_store_bytes: Option<u64>) {
        let approx_bytes = self.store.stats().map(|s| s.file_bytes).unwrap_or(0);
        self.limits = StorageLimits {
            max_documents,
            max_store_bytes,
            approx_bytes,
            warned: false,
        };
        self.check_nearing_caps();
    }

    /// May changes to `path` be stored under the caps? `new_document`: not held yet.
    pub fn may_store(&self, path: &DocPath, new_document: bool) -> bool {
        let _ = path;
        let docs_ok = !new_document
            || self
                .limits
                .max_documents
                .is_none_or(|max| self.held_count() < max);
        let bytes_ok = self
            .limits
            .max_store_bytes
            .is_none_or(|max| self.limits.approx_bytes < max);
        docs_ok && bytes_ok
    }

    /// Logs once when the store passes 90% of a cap.
    fn check_nearing_caps(&mut self) {
        // Runs after every append: without caps (most devices) there is nothing to count.
        let no_caps = self.limits.max_documents.is_none() && self.limits.max_store_bytes.is_none();
        if self.limits.warned || no_caps {
            return;
        }
        let docs = self.held_count();
        let near_docs = self
            .limits
            .max_documents
            .is_some_and(|max| docs as f64 >= max as f64 * WARN_AT);
        let near_bytes = self
            .limits
            .max_store_bytes
            .is_some_and(|max| self.limits.approx_bytes as f64 >= max as f64 * WARN_AT);
        if near_docs || near_bytes {
            self.limits.warned = true;
            tracing::warn!(
                documents = docs,
                max_documents = ?self.limits.max_documents,
                bytes = self.limits.approx_bytes,
                max_bytes = ?self.limits.max_store_bytes,
                "storage is nearing this device's cap; past it new data is refused"
            );
        }
    }

    /// Restricts local writes to `scopes` (after installing an identity).
    pub fn set_write_scopes(&mut self, scopes: Option<Scopes>) {
        self.write_scopes = scopes;
    }

    fn from_parts(
        dir: &Path,
        store: Store,
        node_id: NodeId,
        street: String,
        incarnation: [u8; INCARNATION_LEN],
        sources: Sources,
    ) -> Self {
        let actor = node_id.incarnation_actor(incarnation);
        Replica {
            sources,
            dir: dir.to_owned(),
            store,
            docs: BTreeMap::new(),
            known_heads: BTreeMap::new(),
            inventory_items: BTreeMap::new(),
            cache_limit: None,
            last_use: HashMap::new(),
            use_clock: 0,
            writer: None,
            staged: HashMap::new(),
            node_id,
            street,
            actor,
            signer: None,
            signatures: HashMap::new(),
            equivocators: BTreeMap::new(),
            revoked: (Vec::new(), gridsync_net::RevocationList::new()),
            plan_cache: None,
            write_scopes: None,
            limits: StorageLimits::default(),
            trust_root: None,
            directory: DeviceDirectory::default(),
        }
    }

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

    /// The wall clock this replica dates what it records by (provenance, evidence).
    pub fn clock(&self) -> &Clock {
        &self.sources.clock
    }

    /// A fresh record id for a record written at `at_ms`, from this replica's generator (the
    /// system's in a node, seeded in a simulation).
    pub fn mint_record_ulid(&mut self, at_ms: u64) -> ulid::Ulid {
        self.sources.record_ulid(at_ms)
    }

    /// The actor local changes are written under now.
    pub fn actor(&self) -> &ActorId {
        &self.actor
    }

    /// Starts a new incarnation for a running node: a fresh actor, recorded as used by a
    /// node before any change is written under it. A running node forwards changes before
    /// they are durable; should it crash in between, a later write under the same actor
    /// could reuse a sequence number a peer already holds for another change, and automerge
    /// would refuse one of the two for good. So every node start, and every write after a
    /// node ran, gets an actor no earlier incarnation used.
    pub fn begin_node_incarnation(&mut self) -> Result<(), ReplicaError> {
        let incarnation = new_incarnation(&mut self.store, &mut self.sources)?;
        self.store
            .put_meta(meta_keys::INCARNATION_USED_BY_NODE, b"1")?;
        self.switch_actor(self.node_id.incarnation_actor(incarnation));
        Ok(())
    }

    /// Writes under `actor` from now on, loaded documents included.
    fn switch_actor(&mut self, actor: ActorId) {
        self.actor = actor;
        for doc in self.docs.values_mut() {
            doc.set_actor(self.actor.clone());
        }
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
    fn sign_new_changes(
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

    /// Is `signature` the signature of the device behind `author` over `signed`?
    pub fn verify_signature(
        &mut self,
        author: &ActorId,
        signed: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> SignatureCheck {
        let Some(node_id) = NodeId::from_actor(author) else {
            return SignatureCheck::Invalid;
        };
        if self.trust_root.is_none() {
            return SignatureCheck::UnknownAuthor;
        }
        self.refresh_directory();
        match self.directory.device(&node_id) {
            Some(device) => {
                if gridsync_net::verify_change_signature(&device.public_key, signed, signature) {
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
    fn is_revoked(&mut self, node: &NodeId) -> bool {
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

    fn control_document(&self, path: &DocPath) -> Option<ControlDocument> {
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
    fn refresh_directory(&mut self) {
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

    pub fn dir(&self) -> &Path {
        &self.dir
    }
    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }
    pub fn street(&self) -> &str {
        &self.street
    }
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Installs `invite` as this device's identity (what `gridsync join` does). Before the
    /// node starts: it writes to the store directly.
    pub fn install_invite(
        &mut self,
        invite: &gridsync_net::Invite,
    ) -> Result<(), crate::credentials::CredentialsError> {
        crate::credentials::install_invite(&mut self.store, invite)
    }

    /// Keeps the street CA in this (the office's) store (what `gridsync office init` does).
    pub fn save_street_ca(
        &mut self,
        ca: &gridsync_net::StreetCa,
    ) -> Result<(), crate::credentials::CredentialsError> {
        crate::credentials::save_street_ca(&mut self.store, ca)
    }

    /// Stores one value of this node's own (the office's token, say) under `key`, committed
    /// now: for set-up before or beside the node, never on the sync path.
    pub fn put_meta(&mut self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.put_meta(key, value)
    }

    /// Stores whole saved documents as they are, in one transaction committed now: bulk
    /// set-up (a benchmark's or a test's street), never a running node's path. Documents are
    /// read from the store when next used.
    pub fn append_whole_documents(
        &mut self,
        items: &[(DocPath, Vec<u8>)],
    ) -> Result<(), ReplicaError> {
        Ok(self.store.append_batch(items)?)
    }

    /// When the store compacts a document's chunks into one (bulk installs hold it off).
    pub fn set_compaction_policy(&mut self, policy: gridsync_store::CompactionPolicy) {
        self.store.set_compaction_policy(policy);
    }

    /// Every document path held, in the store or in memory, sorted.
    pub fn doc_paths(&self) -> Result<Vec<DocPath>, ReplicaError> {
        Ok(self.held_paths())
    }

    /// Every document path held, sorted; reads no document.
    pub fn held_paths(&self) -> Vec<DocPath> {
        let mut paths: Vec<DocPath> = self.known_heads.keys().cloned().collect();
        paths.extend(
            self.docs
                .keys()
                .filter(|p| !self.known_heads.contains_key(*p))
                .cloned(),
        );
        paths.sort();
        paths
    }

    fn held_count(&self) -> usize {
        self.known_heads.len()
            + self
                .docs
                .keys()
                .filter(|p| !self.known_heads.contains_key(*p))
                .count()
    }

    /// A held document's inventory item, made again only when its heads changed since the
    /// last time (see `inventory_items`); `None` if the document is not held.
    pub fn inventory_item(&mut self, path: &DocPath) -> Option<InventoryItem> {
        let loaded;
        let heads: &[ChangeHash] = match self.docs.get(path) {
            Some(doc) => {
                loaded = doc.get_heads();
                &loaded
            }
            None => self.known_heads.get(path)?,
        };
        if let Some((made_from, item)) = self.inventory_items.get(path)
            && made_from.as_slice() == heads
        {
            return Some(*item);
        }
        let item = InventoryItem::of(path, heads);
        self.inventory_items
            .insert(path.clone(), (heads.to_vec(), item));
        Some(item)
    }

    /// The inventory items of every held document `shared` accepts, in path order. Walks
    /// the heads index once (no path list to build and sort, no lookup per path) and makes
    /// items only for documents whose heads changed since their item was made.
    pub fn inventory_items(
        &mut self,
        shared: &dyn Fn(&DocPath) -> bool,
    ) -> Vec<(DocPath, InventoryItem)> {
        let mut items = Vec::with_capacity(self.known_heads.len());
        let mut made = Vec::new();
        // Both maps are in path order: the cached item of `path`, if any, is the next one
        // at or after it.
        let mut cached = self.inventory_items.iter().peekable();
        for (path, stored) in &self.known_heads {
            while cached.next_if(|(p, _)| *p < path).is_some() {}
            if !shared(path) {
                continue;
            }
            // A loaded document may be ahead of the index until its changes are stored.
            let loaded;
            let heads: &[ChangeHash] = match self.docs.get(path) {
                Some(doc) => {
                    loaded = doc.get_heads();
                    &loaded
                }
                None => stored,
            };
            let item = match cached.peek() {
                Some((p, (made_from, item))) if *p == path && made_from.as_slice() == heads => {
                    *item
                }
                _ => {
                    let item = InventoryItem::of(path, heads);
                    made.push((path.clone(), (heads.to_vec(), item)));
                    item
                }
            };
            items.push((path.clone(), item));
        }
        self.inventory_items.extend(made);
        // Documents created here and not yet stored are loaded but not in the index yet.
        let unindexed: Vec<DocPath> = self
            .docs
            .keys()
            .filter(|p| !self.known_heads.contains_key(*p) && shared(p))
            .cloned()
            .collect();
        for path in unindexed {
            if let Some(item) = self.inventory_item(&path) {
                items.push((path, item));
            }
        }
        items
    }

    /// Records `heads` as a held, unloaded document's (tests that need many documents
    /// without writing them all through the store).
    #[cfg(test)]
    pub(crate) fn index_heads_for_test(&mut self, path: DocPath, heads: Vec<ChangeHash>) {
        self.known_heads.insert(path, heads);
    }

    /// The heads of a held document without loading it.
    pub fn known_heads(&self, path: &DocPath) -> Option<Vec<ChangeHash>> {
        match self.docs.get(path) {
            Some(doc) => Some(doc.get_heads()),
            None => self.known_heads.get(path).cloned(),
        }
    }

    /// Reads every document's heads from the store; documents whose heads the store does
    /// not know (written by an older gridsync) are loaded once and their heads recorded.
    fn read_known_heads(&mut self) -> Result<(), ReplicaError> {
        let mut unknown = Vec::new();
        for (path, heads) in self.store.doc_heads()? {
            match heads {
                Some(heads) => {
                    self.known_heads.insert(path, heads);
                }
                None => unknown.push(path),
            }
        }
        if unknown.is_empty() {
            return Ok(());
        }
        tracing::info!(
            documents = unknown.len(),
            "recording the heads of documents stored without them (once)"
        );
        let mut found = Vec::with_capacity(unknown.len());
        for path in unknown {
            if let Some(doc) = self.store.load_doc(&path)? {
                found.push((path, doc.get_heads()));
            }
        }
        self.store.record_heads(&found)?;
        self.known_heads.extend(found);
        Ok(())
    }

    /// Keeps at most `limit` documents loaded (the least recently used are unloaded once
    /// their writes are durable); `None` keeps every loaded document.
    pub fn set_cache_limit(&mut self, limit: Option<usize>) {
        self.cache_limit = limit;
    }

    /// Hands writes to the node's store writer from now on (see [`crate::store_writer`]).
    pub fn use_store_writer(&mut self, writer: StoreWriterHandle) {
        self.writer = Some(writer);
    }

    /// The ticket of the last write staged with the store writer (`None` without a writer
    /// or before any write): wait on it to know the write is durable.
    pub fn last_write_ticket(&self) -> Option<WriteTicket> {
        self.writer
            .as_ref()
            .map(|w| w.last_ticket())
            .filter(|t| *t > WriteTicket::NONE)
    }

    /// Stores sync states for `peer`: staged with the store writer (after every document
    /// change staged before, so never ahead of the documents they describe), or committed
    /// now without one. A state claiming changes the loaded document no longer holds (they
    /// were lost by a failed commit) is dropped: stored, it would make the peer believe we
    /// have them.
    pub fn store_sync_states(
        &mut self,
        peer: &NodeId,
        mut states: Vec<(DocPath, Vec<u8>)>,
    ) -> Result<(), ReplicaError> {
        self.recover_failed_writes();
        states.retain(|(path, state)| {
            self.docs
                .get(path)
                .is_none_or(|doc| claims_only_held_changes(doc, state))
        });
        if states.is_empty() {
            return Ok(());
        }
        let sync_states = states
            .into_iter()
            .map(|(path, state)| SyncStateWrite {
                peer: peer.clone(),
                path,
                state,
            })
            .collect();
        self.write_cache(WriteBatch {
            sync_states,
            ..WriteBatch::default()
        })
    }

    /// Writes what is only a cache (sync states, derived values): staged with the store
    /// writer, whose ticket nobody waits for (losing the newest costs one larger sync
    /// message, or a summary recomputed), or committed now without one.
    fn write_cache(&mut self, batch: WriteBatch) -> Result<(), ReplicaError> {
        match &mut self.writer {
            Some(writer) => {
                let _cache = writer.stage(batch);
                Ok(())
            }
            None => Ok(self.store.write_batch(&batch)?),
        }
    }

    /// Stores values derived from documents (the office's building summaries): staged with
    /// the store writer, so that no fsync happens under the replica lock on a running node,
    /// or committed now without one.
    pub fn store_derived(
        &mut self,
        kind: &str,
        entries: Vec<gridsync_store::DerivedEntry>,
    ) -> Result<(), ReplicaError> {
        self.write_cache(WriteBatch {
            derived: entries.into_iter().map(|e| (kind.to_owned(), e)).collect(),
            ..WriteBatch::default()
        })
    }

    /// Deletes the derived values of `kind` whose document path is not in `keep` (documents
    /// gone, or no longer of that kind): staged with the store writer like
    /// [`Replica::store_derived`], or committed now without one. Returns how many.
    pub fn retain_derived(
        &mut self,
        kind: &str,
        keep: &std::collections::BTreeSet<DocPath>,
    ) -> Result<usize, ReplicaError> {
        let stale: Vec<(String, String)> = self
            .store
            .derived_paths(kind)?
            .into_iter()
            .filter(|path| !DocPath::parse(path).is_ok_and(|p| keep.contains(&p)))
            .map(|path| (kind.to_owned(), path))
            .collect();
        let count = stale.len();
        self.write_cache(WriteBatch {
            derived_deleted: stale,
            ..WriteBatch::default()
        })?;
        Ok(count)
    }

    /// Makes `append` durable: staged with the store writer, or committed now. Keeps the
    /// heads index current either way.
    fn store_append(&mut self, append: DocumentAppend) -> Result<(), ReplicaError> {
        let bytes = append.chunk.len();
        let path = append.path.clone();
        let heads = append.heads.clone();
        let batch = WriteBatch {
            appends: vec![append],
            ..WriteBatch::default()
        };
        match &mut self.writer {
            Some(writer) => {
                let ticket = writer.stage(batch);
                self.staged.insert(path.clone(), ticket);
            }
            None => self.store.write_batch(&batch)?,
        }
        self.known_heads.insert(path, heads);
        self.count_appended(bytes);
        Ok(())
    }

    /// Drops from memory the documents whose staged writes failed to commit, so that memory
    /// never holds what the disk does not; they reload from the durable state on next use.
    fn recover_failed_writes(&mut self) {
        let Some(writer) = &self.writer else {
            return;
        };
        for path in writer.take_failed_documents() {
            self.forget_unsaved(&path);
        }
    }

    /// Replaces the in-memory copy of `path` by what the store holds, dropping whatever was
    /// received into it and not stored (a document automerge panicked on).
    pub fn reload_from_store(&mut self, path: &DocPath) {
        self.forget_unsaved(path);
    }

    /// Replaces the in-memory copy of `path` by what the store holds (best effort: if the
    /// store cannot be read either, the document is left unloaded).
    fn forget_unsaved(&mut self, path: &DocPath) {
        // Signatures written with the lost changes were lost with them: read them again.
        self.signatures.remove(path);
        self.docs.remove(path);
        self.last_use.remove(path);
        self.staged.remove(path);
        match self.store.load_doc(path) {
            Ok(Some(mut doc)) => {
                doc.set_actor(self.actor.clone());
                self.known_heads.insert(path.clone(), doc.get_heads());
                self.docs.insert(path.clone(), doc);
            }
            Ok(None) => {
                self.known_heads.remove(path);
            }
            Err(error) => {
                tracing::warn!(%path, %error, "cannot reload a document after a failed write");
            }
        }
    }

    /// Unloads the least recently used documents past the cache limit, keeping `keep` and
    /// any whose state is not durable yet: changes received into memory and not yet handed
    /// to the store (their heads differ from the index), or staged and not yet committed.
    fn evict_beyond_limit(&mut self, keep: &DocPath) {
        let Some(limit) = self.cache_limit else {
            return;
        };
        if self.docs.len() < limit {
            return;
        }
        // Unload a tenth at once, so the scan is paid once per many loads.
        let target = limit - limit / 10 - 1;
        let mut candidates: Vec<(u64, DocPath)> = self
            .docs
            .keys()
            .filter(|p| *p != keep)
            .filter(|p| {
                let stored = self.known_heads.get(*p).map(Vec::as_slice).unwrap_or(&[]);
                self.docs
                    .get(*p)
                    .is_some_and(|doc| doc.get_heads() == stored)
            })
            .filter(|p| match (self.staged.get(*p), &self.writer) {
                (Some(ticket), Some(writer)) => writer.is_settled(*ticket),
                _ => true,
            })
            .map(|p| (self.last_use.get(p).copied().unwrap_or(0), p.clone()))
            .collect();
        candidates.sort_unstable();
        let excess = self.docs.len().saturating_sub(target);
        for (_, path) in candidates.into_iter().take(excess) {
            self.docs.remove(&path);
            self.last_use.remove(&path);
            self.staged.remove(&path);
        }
    }

    fn touch(&mut self, path: &DocPath) {
        if self.cache_limit.is_some() {
            self.use_clock += 1;
            self.last_use.insert(path.clone(), self.use_clock);
        }
    }

    /// The current heads of the document at `path`, `None` if it is not held. Loads no
    /// document (the heads of unloaded documents are kept in an index).
    pub fn heads(&mut self, path: &DocPath) -> Result<Option<Vec<ChangeHash>>, ReplicaError> {
        self.recover_failed_writes();
        Ok(self.known_heads(path))
    }

    /// The document at `path`, loading it from the store on first use.
    pub fn doc(&mut self, path: &DocPath) -> Result<Option<&Automerge>, ReplicaError> {
        self.ensure_loaded(path)?;
        Ok(self.docs.get(path))
    }

    /// When this node first held each change of the document at `path` (its provenance), for
    /// the clock rule of [`gridsync_model::clock`]; changes with no recorded arrival (written
    /// here, or arrived and not yet committed) count as first seen at `now_ms`. `None` when
    /// the document is not held.
    pub fn first_sight(
        &mut self,
        path: &DocPath,
        now_ms: i64,
    ) -> Result<Option<gridsync_model::FirstSight>, ReplicaError> {
        self.ensure_loaded(path)?;
        let Some(doc) = self.docs.get(path) else {
            return Ok(None);
        };
        let arrivals = self.store.first_received(path)?;
        Ok(Some(gridsync_model::FirstSight::of_document(
            doc, arrivals, now_ms,
        )))
    }

    /// Loads every stored document into memory (a node serving peers needs them all).
    pub fn load_all(&mut self) -> Result<usize, ReplicaError> {
        for path in self.store.doc_paths()? {
            self.ensure_loaded(&path)?;
        }
        Ok(self.docs.len())
    }

    /// The documents loaded in memory: every held document after [`Replica::load_all`]
    /// without a cache limit (the CLI, simulations); a running node loads on demand.
    pub fn loaded_docs(&self) -> &BTreeMap<DocPath, Automerge> {
        &self.docs
    }

    fn ensure_loaded(&mut self, path: &DocPath) -> Result<(), ReplicaError> {
        self.recover_failed_writes();
        if !self.docs.contains_key(path)
            && let Some(mut doc) = self.store.load_doc(path)?
        {
            doc.set_actor(self.actor.clone());
            self.insert_loaded(path, doc);
        }
        self.touch(path);
        Ok(())
    }

    /// Adds a document to memory, first unloading others past the cache limit.
    fn insert_loaded(&mut self, path: &DocPath, doc: Automerge) {
        self.evict_beyond_limit(path);
        self.docs.insert(path.clone(), doc);
        self.touch(path);
    }

    /// Applies `op` to the document at `path` (created from its deterministic genesis when
    /// absent) and returns `op`'s result. Without a store writer the new changes are durable
    /// when it returns; with one (a running node) they are staged, and durable once
    /// [`Replica::last_write_ticket`] settles: a caller that acknowledges the write to a person
    /// waits for that first.
    ///
    /// `op` must be atomic (the model's operations validate first and commit one
    /// transaction). If the append to the store fails (a full disk, say), the document is
    /// reloaded from the store so memory never holds a change that was reported unsaved.
    pub fn write<R, E>(
        &mut self,
        path: &DocPath,
        kind: gridsync_model::DocKind,
        op: impl FnOnce(&mut Automerge) -> Result<R, E>,
    ) -> Result<R, ReplicaError>
    where
        ReplicaError: From<E>,
    {
        self.write_with_genesis(path, || gridsync_model::genesis(kind), op)
    }

    /// [`Replica::write`] for documents whose skeleton is not a field-model kind (the
    /// revocation list): `genesis` must be deterministic.
    pub fn write_with_genesis<R, E>(
        &mut self,
        path: &DocPath,
        genesis: impl FnOnce() -> Automerge,
        op: impl FnOnce(&mut Automerge) -> Result<R, E>,
    ) -> Result<R, ReplicaError>
    where
        ReplicaError: From<E>,
    {
        if let Some(scopes) = &self.write_scopes
            && !scopes.may_write(path)
        {
            return Err(ReplicaError::OutsideWriteScope {
                path: path.clone(),
                scopes: scopes
                    .0
                    .iter()
                    .map(|g| g.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        self.ensure_loaded(path)?;
        if !self.may_store(path, !self.docs.contains_key(path)) {
            return Err(ReplicaError::StorageCap {
                documents: self.held_count(),
                max_documents: self.limits.max_documents,
                bytes: self.limits.approx_bytes,
                max_bytes: self.limits.max_store_bytes,
            });
        }
        let actor = self.actor.clone();
        let (before, is_new) = match self.docs.get(path) {
            Some(doc) => (doc.get_heads(), false),
            None => {
                let mut doc = genesis();
                doc.set_actor(actor);
                self.insert_loaded(path, doc);
                (Vec::new(), true)
            }
        };
        // Invariant: the document was loaded or inserted just above.
        let doc = self.docs.get_mut(path).expect("document present");
        let result = match op(doc) {
            Ok(result) => result,
            Err(e) => {
                if is_new {
                    self.docs.remove(path);
                }
                return Err(e.into());
            }
        };
        let bytes = doc.save_after(&before);
        if !bytes.is_empty() {
            let heads = doc.get_heads();
            let signed_heads = match self.sign_new_changes(path, &self.docs[path], &before) {
                Ok(signed) => signed,
                Err(e) => {
                    self.forget_unsaved(path);
                    return Err(e);
                }
            };
            self.remember_signatures(path, &signed_heads);
            let append = DocumentAppend {
                path: path.clone(),
                chunk: bytes,
                heads,
                origins: Vec::new(),
                signed_heads,
            };
            if let Err(e) = self.store_append(append) {
                // The store still holds the last durable state.
                self.forget_unsaved(path);
                return Err(e);
            }
        }
        Ok(result)
    }

    fn count_appended(&mut self, bytes: usize) {
        self.limits.approx_bytes += bytes as u64;
        self.check_nearing_caps();
    }

    /// Records changes that arrived from a peer into `path`: appends everything after
    /// `before` to the store. Called by the node after a sync message changed a document.
    pub fn persist_since(
        &mut self,
        path: &DocPath,
        before: &[ChangeHash],
    ) -> Result<(), ReplicaError> {
        self.persist_from(path, before, None)
    }

    /// [`Replica::persist_since`] for changes that arrived from peer `via`: also records,
    /// per change, its author (from the actor id) and the peer it came through, in the same
    /// transaction.
    pub fn persist_from(
        &mut self,
        path: &DocPath,
        before: &[ChangeHash],
        via: Option<&NodeId>,
    ) -> Result<(), ReplicaError> {
        self.persist_received(path, before, via, None, Vec::new())
    }

    /// [`Replica::persist_from`] for a document that may have arrived whole: while the
    /// document is still at the received heads, the received bytes (the peer's save) are
    /// stored as they are instead of saving the document again.
    pub fn persist_received(
        &mut self,
        path: &DocPath,
        before: &[ChangeHash],
        via: Option<&NodeId>,
        received_whole: Option<gridsync_proto::ReceivedWhole>,
        signed_heads: Vec<SignedHead>,
    ) -> Result<(), ReplicaError> {
        // Kept in memory before anything else, so that the other sessions this change is
        // fanned out to hand the signatures on with it.
        self.remember_signatures(path, &signed_heads);
        if let Some(doc) = self.docs.get(path) {
            // A document new here is stored as one compressed save: `save_after(&[])` would
            // encode its changes one by one, about four times the bytes (and the time) for a
            // building received whole in an initial sync. The store reads a save followed by
            // change chunks as one document.
            let bytes = match received_whole {
                Some(whole) if before.is_empty() && whole.heads == doc.get_heads() => whole.bytes,
                _ if before.is_empty() => doc.save(),
                _ => doc.save_after(before),
            };
            let origins: Vec<gridsync_store::ChangeOrigin> = match via {
                None => Vec::new(),
                Some(via) => {
                    let received_ms = self.sources.clock.unix_ms() as i64;
                    doc.get_changes_meta(before)
                        .iter()
                        .map(|change| gridsync_store::ChangeOrigin {
                            path: path.clone(),
                            change_hash: change.hash.0,
                            author: author_name(&change.actor),
                            via: via.to_string(),
                            received_ms,
                        })
                        .collect()
                }
            };
            if !bytes.is_empty() {
                let append = DocumentAppend {
                    path: path.clone(),
                    chunk: bytes,
                    heads: doc.get_heads(),
                    origins,
                    signed_heads,
                };
                if let Err(e) = self.store_append(append) {
                    // Memory must not hold what the disk does not: drop the unsaved changes
                    // by reloading the durable state. The peer will offer them again.
                    self.forget_unsaved(path);
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    /// Installs a whole document this replica does not hold yet, handed out with the
    /// device (a street plan at enrollment): `saved` must be `doc.save()`'s bytes, which are
    /// stored as they are. Nothing is loaded or saved again.
    pub fn install_document(
        &mut self,
        path: &DocPath,
        doc: Automerge,
        saved: Vec<u8>,
        signed_heads: Vec<SignedHead>,
    ) -> Result<(), ReplicaError> {
        self.remember_signatures(path, &signed_heads);
        let append = DocumentAppend {
            path: path.clone(),
            chunk: saved,
            heads: doc.get_heads(),
            origins: Vec::new(),
            signed_heads,
        };
        self.store_append(append)?;
        let mut doc = doc;
        doc.set_actor(self.actor.clone());
        self.insert_loaded(path, doc);
        Ok(())
    }

    /// Mutable access to a loaded document, creating an empty one if absent, for the sync
    /// engine (which receives a peer's history, genesis included).
    pub fn doc_mut_or_create(&mut self, path: &DocPath) -> &mut Automerge {
        if let Err(error) = self.ensure_loaded(path) {
            // Receiving into an empty copy is still correct (automerge merges by hash); the
            // stored changes join when the document is next loaded from the store.
            tracing::warn!(%path, %error, "cannot load a stored document; receiving into an empty copy");
        }
        if !self.docs.contains_key(path) {
            let empty = Automerge::new().with_actor(self.actor.clone());
            self.insert_loaded(path, empty);
        }
        // Invariant: present, loaded or inserted just above.
        self.docs.get_mut(path).expect("document present")
    }

    /// The street plan held by this replica (`None` before any plan was imported or
    /// received). Malformed plan entries are skipped by the model and logged here.
    pub fn street_plan(&mut self) -> Result<Option<Arc<StreetPlan>>, ReplicaError> {
        let path = gridsync_model::plan_path(&self.street).map_err(ReplicaError::BadStreet)?;
        self.ensure_loaded(&path)?;
        let Some(doc) = self.docs.get(&path) else {
            return Ok(None);
        };
        let heads = doc.get_heads();
        if let Some((cached_heads, plan)) = &self.plan_cache
            && *cached_heads == heads
        {
            return Ok(Some(plan.clone()));
        }
        let shared = {
            let plans = READ_PLANS.lock().unwrap_or_else(|p| p.into_inner());
            plans
                .iter()
                .find(|(at, _)| *at == heads)
                .and_then(|(_, plan)| plan.upgrade())
        };
        if let Some(plan) = shared {
            self.plan_cache = Some((heads, plan.clone()));
            return Ok(Some(plan));
        }
        let (plan, malformed) = gridsync_model::read_plan(doc);
        for entry in &malformed {
            tracing::warn!(?entry, "skipping a malformed street plan entry");
        }
        let plan = Arc::new(plan);
        {
            let mut plans = READ_PLANS.lock().unwrap_or_else(|p| p.into_inner());
            plans.retain(|(_, p)| p.strong_count() > 0);
            plans.push((heads.clone(), Arc::downgrade(&plan)));
        }
        self.plan_cache = Some((heads, plan.clone()));
        Ok(Some(plan))
    }

    /// Merges another replica's copy of a document into this one (an offline exchange, by
    /// file or in-process) and stores what was new. Returns whether anything changed.
    pub fn merge_doc(
        &mut self,
        path: &DocPath,
        other: &Automerge,
        signed_heads: Vec<SignedHead>,
    ) -> Result<bool, ReplicaError> {
        self.ensure_loaded(path)?;
        let doc = self.doc_mut_or_create(path);
        let before = doc.get_heads();
        let mut incoming = other.fork();
        doc.merge(&mut incoming)
            .map_err(|source| ReplicaError::Merge {
                path: path.clone(),
                source,
            })?;
        if doc.get_heads() == before {
            return Ok(false);
        }
        self.persist_received(path, &before, None, None, signed_heads)?;
        Ok(true)
    }
}

/// The street's control documents, which have content rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ControlDocument {
    Directory,
    Revocations,
}

use gridsync_proto::identity::INCARNATION_LEN;

/// Draws a fresh incarnation and stores it (durably) as the one to write under; clears the
/// "used by a node" mark.
fn new_incarnation(
    store: &mut Store,
    sources: &mut Sources,
) -> Result<[u8; INCARNATION_LEN], ReplicaError> {
    let incarnation: [u8; INCARNATION_LEN] = rand::Rng::random(&mut sources.rng);
    store.put_meta(meta_keys::INCARNATION, &incarnation)?;
    store.delete_meta(meta_keys::INCARNATION_USED_BY_NODE)?;
    Ok(incarnation)
}

/// The incarnation to write under on open: the stored one, unless a running node used it
/// (or the store predates incarnations), in which case a fresh one.
fn current_incarnation(
    store: &mut Store,
    sources: &mut Sources,
) -> Result<[u8; INCARNATION_LEN], ReplicaError> {
    let stored = store.get_meta(meta_keys::INCARNATION)?;
    let used_by_node = store
        .get_meta(meta_keys::INCARNATION_USED_BY_NODE)?
        .is_some();
    match stored.and_then(|bytes| <[u8; INCARNATION_LEN]>::try_from(bytes.as_slice()).ok()) {
        Some(incarnation) if !used_by_node => Ok(incarnation),
        _ => new_incarnation(store, sources),
    }
}

/// Marks the store's incarnation as never to be written under again (after a restore: the
/// backup's incarnation may have written changes after the backup was taken).
pub fn retire_incarnation(store: &mut Store) -> Result<(), StoreError> {
    store.put_meta(meta_keys::INCARNATION_USED_BY_NODE, b"1")
}

/// Does the encoded sync `state` claim only changes `doc` holds? A state automerge cannot
/// decode claims nothing here (it is stored as it was; the session reads it back as empty).
fn claims_only_held_changes(doc: &Automerge, state: &[u8]) -> bool {
    automerge::sync::State::decode(state).map_or(true, |state| {
        state
            .shared_heads
            .iter()
            .all(|hash| doc.get_change_meta_by_hash(hash).is_some())
    })
}

/// The node id behind an actor, `genesis` for the skeleton's actor, else the actor's hex.
fn author_name(actor: &ActorId) -> String {
    if *actor == gridsync_model::genesis_actor() {
        return "genesis".to_owned();
    }
    gridsync_model::node_for_actor(actor)
        .map(|n| n.to_string())
        .unwrap_or_else(|| actor.to_hex_string())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use automerge::transaction::Transactable;

    use super::*;

    fn put(replica: &mut Replica, path: &str) -> Result<(), ReplicaError> {
        let path = DocPath::parse(path).unwrap();
        replica.write_with_genesis(&path, Automerge::new, |doc| {
            let mut tx = doc.transaction();
            tx.put(automerge::ROOT, "k", "v")?;
            tx.commit();
            Ok::<_, automerge::AutomergeError>(())
        })
    }

    #[test]
    fn a_device_at_its_document_cap_refuses_new_documents_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeId::parse("vol-1").unwrap();
        let mut replica = Replica::init(dir.path(), &node, "panhuo").unwrap();
        replica.set_limits(Some(2), None);
        put(&mut replica, "panhuo/grid-001/b-1").unwrap();
        put(&mut replica, "panhuo/grid-001/b-2").unwrap();
        let refused = put(&mut replica, "panhuo/grid-001/b-3");
        assert!(
            matches!(refused, Err(ReplicaError::StorageCap { documents: 2, .. })),
            "{refused:?}"
        );
        // Documents already held still take writes, and nothing stored was lost.
        put(&mut replica, "panhuo/grid-001/b-1").unwrap();
        assert_eq!(replica.doc_paths().unwrap().len(), 2);
        drop(replica);
        let mut reopened = Replica::open(dir.path()).unwrap();
        assert_eq!(reopened.load_all().unwrap(), 2);
    }

    #[test]
    fn a_bounded_cache_unloads_durable_documents_and_keeps_listing_them() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeId::parse("office").unwrap();
        let mut replica = Replica::init(dir.path(), &node, "panhuo").unwrap();
        replica.set_cache_limit(Some(4));
        let paths: Vec<DocPath> = (0..12)
            .map(|n| DocPath::parse(&format!("panhuo/grid-001/b-{n}")).unwrap())
            .collect();
        for path in &paths {
            put(&mut replica, path.as_str()).unwrap();
        }
        assert!(
            replica.loaded_docs().len() <= 4,
            "{}",
            replica.loaded_docs().len()
        );
        assert_eq!(replica.held_paths().len(), 12);
        let first = &paths[0];
        let listed = replica.known_heads(first).unwrap();
        let loaded = replica.doc(first).unwrap().unwrap().get_heads();
        assert_eq!(listed, loaded, "the index answers what loading finds");

        // A change received into memory and not yet stored is never unloaded.
        let received = &paths[1];
        let before = replica.known_heads(received).unwrap();
        {
            let doc = replica.doc_mut_or_create(received);
            let mut tx = doc.transaction();
            tx.put(automerge::ROOT, "k", "from a peer").unwrap();
            tx.commit();
        }
        for path in &paths[2..] {
            replica.doc(path).unwrap();
        }
        assert!(replica.loaded_docs().contains_key(received));
        replica.persist_since(received, &before).unwrap();
        let heads = replica.known_heads(received).unwrap();
        drop(replica);

        // Reopened, the index is read back from the store without loading documents.
        let reopened = Replica::open(dir.path()).unwrap();
        assert!(reopened.loaded_docs().is_empty());
        assert_eq!(reopened.known_heads(received), Some(heads));
        assert_eq!(reopened.held_paths().len(), 12);
    }

    /// A 1 MiB tmpfs mounted on `dir` for the test's life (needs root, as in CI).
    struct SmallDisk(std::path::PathBuf);

    impl SmallDisk {
        fn mount(dir: &Path) -> Result<SmallDisk, String> {
            let output = std::process::Command::new("mount")
                .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
                .arg(dir)
                .output()
                .map_err(|e| format!("cannot run mount: {e}"))?;
            if output.status.success() {
                Ok(SmallDisk(dir.to_owned()))
            } else {
                Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
            }
        }
    }

    impl Drop for SmallDisk {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }

    #[test]
    fn a_full_disk_fails_staged_writes_and_memory_falls_back_to_what_is_durable() {
        let outer = tempfile::tempdir().unwrap();
        let _disk = match SmallDisk::mount(outer.path()) {
            Ok(disk) => disk,
            Err(why) => {
                eprintln!("SKIPPED full-disk test: cannot mount a tmpfs ({why})");
                return;
            }
        };
        let ballast = outer.path().join("ballast");
        std::fs::write(&ballast, vec![0u8; 256 * 1024]).unwrap();
        let dir = outer.path().join("node");
        let node = NodeId::parse("vol-1").unwrap();
        let mut replica = Replica::init(&dir, &node, "panhuo").unwrap();
        let (writer, handle) = crate::store_writer::StoreWriter::start(replica.store()).unwrap();
        let durability = handle.waiter();
        replica.use_store_writer(handle);

        // Random text, so that neither SQLite nor automerge's deflate shrinks it much.
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut noise = |len: usize| -> String {
            (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    char::from(b'a' + (seed % 26) as u8)
                })
                .collect()
        };
        let mut durable_paths = Vec::new();
        let mut failed = None;
        for n in 0..500 {
            let path = DocPath::parse(&format!("panhuo/grid-001/b-{n}")).unwrap();
            let value = noise(4000);
            replica
                .write_with_genesis(&path, Automerge::new, |doc| {
                    let mut tx = doc.transaction();
                    tx.put(automerge::ROOT, "note", value.as_str())?;
                    tx.commit();
                    Ok::<_, automerge::AutomergeError>(())
                })
                .unwrap();
            let ticket = replica.last_write_ticket().unwrap();
            match durability.wait(ticket) {
                Ok(()) => durable_paths.push(path),
                Err(error) => {
                    failed = Some((path, error));
                    break;
                }
            }
        }
        let (failed_path, error) = failed.expect("a 1 MiB disk fills up");
        assert!(!durable_paths.is_empty());
        assert!(error.to_string().contains("full"), "{error}");

        // The failed document is dropped from memory at the next use: it was never durable,
        // so it is no longer held at all; what was durable is all there.
        assert_eq!(replica.heads(&failed_path).unwrap(), None);
        assert!(replica.doc(&failed_path).unwrap().is_none());
        for path in &durable_paths {
            assert!(replica.doc(path).unwrap().is_some(), "{path} lost");
        }

        // Space comes back: the same node writes durably again.
        std::fs::remove_file(&ballast).unwrap();
        put(&mut replica, failed_path.as_str()).unwrap();
        let ticket = replica.last_write_ticket().unwrap();
        durability.wait(ticket).unwrap();
        drop(replica);
        writer.finish();
        let reopened = Replica::open(&dir).unwrap();
        assert_eq!(reopened.held_paths().len(), durable_paths.len() + 1);
    }

    /// Writes `value` under `key` in the document at `path`.
    fn set(
        replica: &mut Replica,
        path: &DocPath,
        key: &str,
        value: &str,
    ) -> Result<(), ReplicaError> {
        replica.write_with_genesis(path, Automerge::new, |doc| {
            let mut tx = doc.transaction();
            tx.put(automerge::ROOT, key, value)?;
            tx.commit();
            Ok::<_, automerge::AutomergeError>(())
        })
    }

    /// Random letters, so that neither SQLite nor automerge's deflate shrinks them much.
    fn noise(len: usize) -> String {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                char::from(b'a' + (seed % 26) as u8)
            })
            .collect()
    }

    /// Fills the file system holding `ballast` up, then frees about `leave` bytes of it.
    fn fill_leaving(ballast: &Path, leave: u64) {
        use std::io::Write;
        let mut file = std::fs::File::create(ballast).unwrap();
        let block = vec![0u8; 4096];
        while file.write_all(&block).is_ok() {}
        let len = file.metadata().unwrap().len();
        file.set_len(len.saturating_sub(leave)).unwrap();
    }

    #[test]
    fn a_failed_commit_fails_the_writes_of_its_document_staged_behind_it() {
        let outer = tempfile::tempdir().unwrap();
        let _disk = match SmallDisk::mount(outer.path()) {
            Ok(disk) => disk,
            Err(why) => {
                eprintln!("SKIPPED full-disk test: cannot mount a tmpfs ({why})");
                return;
            }
        };
        let dir = outer.path().join("node");
        let node = NodeId::parse("vol-1").unwrap();
        let mut replica = Replica::init(&dir, &node, "panhuo").unwrap();
        let (writer, handle) = crate::store_writer::StoreWriter::start(replica.store()).unwrap();
        let durability = handle.waiter();
        replica.use_store_writer(handle);
        let path = DocPath::parse("panhuo/grid-001/b-1").unwrap();
        let peer = NodeId::parse("cap-1").unwrap();
        set(&mut replica, &path, "first", "durable").unwrap();
        durability
            .wait(replica.last_write_ticket().unwrap())
            .unwrap();
        let durable_heads = replica.known_heads(&path).unwrap();

        // Room for a small change, not for a big one.
        let ballast = outer.path().join("ballast");
        fill_leaving(&ballast, 64 * 1024);

        // Another connection holds the write lock, so that the writer takes the big change
        // into a transaction of its own and waits there while the next writes are staged
        // behind it (the sleep gives the writer thread time to take it).
        let mut blocker = rusqlite::Connection::open(replica.store().db_path()).unwrap();
        let lock = blocker
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .unwrap();
        set(&mut replica, &path, "big", &noise(300_000)).unwrap();
        let big = replica.last_write_ticket().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(300));
        set(&mut replica, &path, "second", "small").unwrap();
        let second = replica.last_write_ticket().unwrap();
        // A sync state claiming the heads of both changes, as a session would stage it.
        let mut claimed = automerge::sync::State::new();
        claimed.shared_heads = replica.known_heads(&path).unwrap();
        replica
            .store_sync_states(&peer, vec![(path.clone(), claimed.encode())])
            .unwrap();
        let sync_state = replica.last_write_ticket().unwrap();
        drop(lock);

        let error = durability.wait(big).unwrap_err();
        assert!(error.to_string().contains("full"), "{error}");
        // The small change would fit, but it builds on the big one: saving it would store a
        // change whose dependency is missing. It fails, with the reason.
        let error = durability
            .wait(second)
            .expect_err("a change staged behind a failed change of its document was saved");
        assert!(error.to_string().contains("full"), "{error}");
        assert!(
            durability.wait(sync_state).is_err(),
            "a sync state claiming lost changes was saved"
        );

        // Memory falls back to what is durable, and a session still holding the state it
        // had before cannot store it.
        assert_eq!(replica.heads(&path).unwrap(), Some(durable_heads));
        replica
            .store_sync_states(&peer, vec![(path.clone(), claimed.encode())])
            .unwrap();

        // Space comes back: the document takes writes again, durably, and loads.
        std::fs::remove_file(&ballast).unwrap();
        set(&mut replica, &path, "third", "after").unwrap();
        durability
            .wait(replica.last_write_ticket().unwrap())
            .unwrap();
        let heads = replica.known_heads(&path).unwrap();
        drop(replica);
        writer.finish();
        let mut reopened = Replica::open(&dir).unwrap();
        assert_eq!(reopened.store().sync_state(&peer, &path).unwrap(), None);
        let doc = reopened.doc(&path).unwrap().expect("the document loads");
        assert_eq!(doc.get_heads(), heads);
        use automerge::ReadDoc;
        let keys: Vec<String> = doc.keys(automerge::ROOT).collect();
        assert_eq!(keys, vec!["first".to_owned(), "third".to_owned()]);
    }

    #[test]
    fn a_device_past_its_byte_cap_refuses_changes() {
        let dir = tempfile::tempdir().unwrap();
        let node = NodeId::parse("vol-1").unwrap();
        let mut replica = Replica::init(dir.path(), &node, "panhuo").unwrap();
        // The empty store already takes some pages on disk: a cap of one byte is exceeded.
        replica.set_limits(None, Some(1));
        assert!(matches!(
            put(&mut replica, "panhuo/grid-001/b-1"),
            Err(ReplicaError::StorageCap { .. })
        ));
        replica.set_limits(None, None);
        put(&mut replica, "panhuo/grid-001/b-1").unwrap();
    }
}
