//! A node's local replica: the durable store plus the documents it has loaded in memory.
//!
//! Every write to a document goes through the write path (`write`): the field-model
//! operation is applied to the in-memory document and exactly the new changes go to the
//! store. Without a store writer (the CLI, simulations) they are committed before the call
//! returns; on a running node they are staged with the store writer, and the write is
//! durable once its ticket ([`Replica::last_write_ticket`]) settles. "Saved" is only ever
//! reported after that, so an acknowledged write survives a crash.
//!
//! The CLI uses a `Replica` directly when no node is running; a running node owns one and
//! serves CLI writes through its control socket, so the in-memory documents never go stale.
//!
//! Split by invariant:
//! - this module: the replica's identity (node, street, actor and incarnation), its time
//!   and randomness (`Sources`), opening and creating, and set-up writes;
//! - `cache`: documents loaded on demand, the heads index of every stored document, eviction
//!   of durable documents beyond the cache limit, inventory items;
//! - `write`: the one path by which changes and caches reach the store;
//! - `limits`: storage caps and how full the store is;
//! - `trust`: signing, signatures, the device directory, revocations, equivocation,
//!   content rules;
//! - `plan_cache`: the street plan, read once per plan change.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use automerge::{ActorId, Automerge, ChangeHash};
use gridsync_model::StreetPlan;
use gridsync_net::ChangeSigner;
use gridsync_proto::inventory::InventoryItem;
use gridsync_proto::signature::signed_bytes;
use gridsync_proto::{
    AuthorStanding, ChangeSignature, DocPath, NodeId, RefusalReason, Scopes, SignatureCheck,
    SignatureClaim, SignedHead, SyncPriority,
};

use crate::clock::{Clock, Sources};
use crate::directory::DeviceDirectory;
use crate::meta_keys;
use crate::store_writer::{StoreWriterHandle, WriteTicket};
use gridsync_store::{DocumentAppend, Store, StoreError, SyncStateWrite, WriteBatch};

mod acknowledged;
mod cache;
mod detached;
mod limits;
mod plan_cache;
#[cfg(test)]
mod tests;
mod trust;
mod write;

pub use acknowledged::Acknowledged;
pub use detached::DetachedRead;
pub use limits::StorageLimits;
use trust::author_name;

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
    /// Sync states staged with the store writer and perhaps not committed yet, with their
    /// ticket: what a new session with that peer must start from (read your own writes),
    /// whatever the writer thread's pace. Dropped once settled.
    staged_sync_states: BTreeMap<(NodeId, DocPath), (WriteTicket, Vec<u8>)>,
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
            staged_sync_states: BTreeMap::new(),
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

    /// The wall clock this replica dates what it records by (provenance, evidence).
    pub fn clock(&self) -> &Clock {
        &self.sources.clock
    }

    /// A seed for another generator the node owns (reconnection jitter), drawn from this
    /// replica's.
    pub fn draw_seed(&mut self) -> u64 {
        self.sources.draw_seed()
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

    /// Stores whole saved documents as they are, with their heads, committed now: bulk
    /// set-up (a benchmark's or a test's street), never a running node's path. Documents are
    /// read from the store when next used.
    pub fn append_whole_documents(&mut self, items: &[WholeDocument]) -> Result<(), ReplicaError> {
        let bytes: Vec<(DocPath, Vec<u8>)> = items
            .iter()
            .map(|d| (d.path.clone(), d.bytes.clone()))
            .collect();
        self.store.append_batch(&bytes)?;
        // The heads too, as every write records them: the store then looks like any store a
        // node wrote, and opening it loads no document to learn them.
        let heads: Vec<(DocPath, Vec<ChangeHash>)> = items
            .iter()
            .map(|d| (d.path.clone(), d.heads.clone()))
            .collect();
        self.store.record_heads(&heads)?;
        self.known_heads.extend(heads);
        Ok(())
    }

    /// When the store compacts a document's chunks into one (bulk installs hold it off).
    pub fn set_compaction_policy(&mut self, policy: gridsync_store::CompactionPolicy) {
        self.store.set_compaction_policy(policy);
    }
}

use gridsync_proto::identity::INCARNATION_LEN;

/// A whole saved document for [`Replica::append_whole_documents`].
#[derive(Debug, Clone)]
pub struct WholeDocument {
    pub path: DocPath,
    /// `Automerge::save()`.
    pub bytes: Vec<u8>,
    /// `Automerge::get_heads()` of the same document.
    pub heads: Vec<ChangeHash>,
}

impl WholeDocument {
    /// `doc` saved, to be stored at `path`.
    pub fn of(path: DocPath, doc: &Automerge) -> WholeDocument {
        WholeDocument {
            path,
            bytes: doc.save(),
            heads: doc.get_heads(),
        }
    }
}

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
