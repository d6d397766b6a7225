//! The engine's test harness (feature `testing`): an in-memory [`DocumentSet`] and a
//! [`Pair`] of sessions joined by a virtual link with a fixed latency and a virtual clock
//! (the shape of quinn-proto's `tests/util.rs`). gridsync-proto's own tests use it, and so
//! does gridsync-bench to measure what the protocol costs in bytes and round trips, free of
//! QUIC, disks and the machine's load.
//!
//! Not for production: its signatures are a stand-in scheme ([`test_signature`]), and it
//! panics where a test should fail.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, VecDeque};

use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ROOT};
use sha2::{Digest as _, Sha256};

use crate::frame::FrameDecoder;
use crate::session::DocumentSet;
use crate::signature::signed_bytes;
use crate::{
    AuthorStanding, ChangeSignature, DocPath, Frame, Limits, LocalIdentity, NodeId, PeerIdentity,
    Role, SIGNATURE_LEN, Scopes, SessionConfig, SessionError, SessionEvent, SignatureCheck,
    SignatureClaim, SyncSession,
};

/// Milliseconds a transmission takes to reach the other side.
pub const LATENCY: u64 = 50;

pub fn path(s: &str) -> DocPath {
    DocPath::parse(s).expect("test paths are valid")
}

pub fn node_id(s: &str) -> NodeId {
    NodeId::parse(s).expect("test node ids are valid")
}

pub fn scopes(grants: &[&str]) -> Scopes {
    Scopes(
        grants
            .iter()
            .map(|g| g.parse().expect("test grants are valid"))
            .collect(),
    )
}

/// How a [`MemoryDocs`] signs and checks signatures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signing {
    /// The harness's scheme: the node signs its own newest change; others' signatures are
    /// kept as they arrive (or set with [`MemoryDocs::signed_by`]) and verified.
    TestKeys,
    /// One placeholder signature per author's newest change, and every signature accepted:
    /// messages carry the signature bytes a node's would, for measuring the engine's bytes
    /// and round trips (real signing is measured on nodes).
    Placeholders,
}

/// A node's documents and persisted sync states, in memory.
#[derive(Debug, Clone)]
pub struct MemoryDocs {
    pub actor: ActorId,
    pub docs: BTreeMap<DocPath, Automerge>,
    pub sync_states: BTreeMap<(NodeId, DocPath), Vec<u8>>,
    /// Storage cap on the number of documents (`None`: no cap).
    pub max_documents: Option<usize>,
    /// Who may write what, by actor. `None`: every author may write (for tests that are not
    /// about authorship); `Some`: authors missing from it are unknown.
    pub directory: Option<BTreeMap<ActorId, Scopes>>,
    /// Signatures held on other authors' newest changes, per document and actor (with the
    /// change's seq), as a node stores them when they arrive.
    pub signed: BTreeMap<DocPath, BTreeMap<ActorId, (u64, ChangeSignature)>>,
    pub signing: Signing,
    /// Placeholder signatures per document, at the heads they were made for.
    placeholders: BTreeMap<DocPath, (Vec<ChangeHash>, Vec<ChangeSignature>)>,
}

/// The harness's stand-in for a device key: derived from the node id, so every node can
/// check anyone's signature, and a node signing as another uses the wrong key. (The real
/// ECDSA keys and certificates are gridsync-net's, tested there and in gridsync-node.)
fn test_key(node: &NodeId) -> [u8; 32] {
    Sha256::digest([b"test device key ".as_slice(), node.as_str().as_bytes()].concat()).into()
}

/// A signature over `signed` with `key` in the harness's scheme.
pub fn test_signature(key: &[u8; 32], signed: &[u8]) -> [u8; SIGNATURE_LEN] {
    let mut out = [0u8; SIGNATURE_LEN];
    out[..32].copy_from_slice(&Sha256::digest([key.as_slice(), signed].concat()));
    out[32..].copy_from_slice(&Sha256::digest([signed, key.as_slice()].concat()));
    out
}

/// `node`'s signature on change `hash` of document `p`.
pub fn sign_as(node: &str, p: &str, hash: &ChangeHash) -> ChangeSignature {
    ChangeSignature {
        hash: *hash,
        signature: test_signature(&test_key(&node_id(node)), &signed_bytes(&path(p), hash)),
    }
}

impl MemoryDocs {
    pub fn new(owner: &NodeId) -> Self {
        MemoryDocs {
            actor: owner.actor_id(),
            docs: BTreeMap::new(),
            sync_states: BTreeMap::new(),
            max_documents: None,
            directory: None,
            signed: BTreeMap::new(),
            signing: Signing::TestKeys,
            placeholders: BTreeMap::new(),
        }
    }

    /// A set holding `docs` (copied) that signs with placeholders and lets every author
    /// write: for measuring the engine ([`Signing::Placeholders`]).
    pub fn for_measuring(owner: &NodeId, docs: &[(DocPath, Automerge)]) -> Self {
        let mut set = MemoryDocs::new(owner);
        set.docs = docs.iter().cloned().collect();
        set.signing = Signing::Placeholders;
        set
    }

    /// One placeholder signature per author's newest change in `path`, cached per heads.
    fn placeholder_signatures(&mut self, path: &DocPath) -> Vec<ChangeSignature> {
        let Some(doc) = self.docs.get(path) else {
            return Vec::new();
        };
        let heads = doc.get_heads();
        if let Some((at, held)) = self.placeholders.get(path)
            && *at == heads
        {
            return held.clone();
        }
        let mut newest: BTreeMap<ActorId, (u64, ChangeHash)> = BTreeMap::new();
        for meta in doc.get_changes_meta(&[]) {
            let entry = newest
                .entry(meta.actor.clone().into_owned())
                .or_insert((meta.seq, meta.hash));
            if meta.seq > entry.0 {
                *entry = (meta.seq, meta.hash);
            }
        }
        let held: Vec<ChangeSignature> = newest
            .into_values()
            .map(|(_, hash)| ChangeSignature {
                hash,
                signature: [0; SIGNATURE_LEN],
            })
            .collect();
        self.placeholders
            .insert(path.clone(), (heads, held.clone()));
        held
    }

    /// Records `node`'s signature on its newest change in `p`, as if the document had
    /// arrived from it signed (for documents a test builds by hand).
    pub fn signed_by(&mut self, node: &str, p: &str) {
        let actor = node_id(node).actor_id();
        let doc = &self.docs[&path(p)];
        let newest = doc
            .get_changes_meta(&[])
            .into_iter()
            .filter(|meta| *meta.actor == actor)
            .max_by_key(|meta| meta.seq)
            .expect("the node wrote into the document");
        let signature = sign_as(node, p, &newest.hash);
        self.signed
            .entry(path(p))
            .or_default()
            .insert(actor, (newest.seq, signature));
    }

    /// Adds a directory entry: `node` may do what `grants` say (the first entry turns the
    /// directory on: from then on, authors missing from it are unknown).
    pub fn know(&mut self, node: &str, grants: &[&str]) {
        self.directory
            .get_or_insert_with(BTreeMap::new)
            .insert(node_id(node).actor_id(), scopes(grants));
    }

    /// Writes like [`write`](Self::write), with the change's timestamp set to `time`.
    pub fn write_at(&mut self, p: &str, key: &str, value: &str, time: i64) {
        self.commit_at(p, key, value, time, None);
    }

    /// Like [`write_at`](Self::write_at), marking the change urgent
    /// ([`crate::URGENT_CHANGE`]).
    pub fn write_urgent_at(&mut self, p: &str, key: &str, value: &str, time: i64) {
        self.commit_at(p, key, value, time, Some(crate::URGENT_CHANGE));
    }

    fn commit_at(&mut self, p: &str, key: &str, value: &str, time: i64, message: Option<&str>) {
        let actor = self.actor.clone();
        let doc = self
            .docs
            .entry(path(p))
            .or_insert_with(|| Automerge::new().with_actor(actor));
        let mut tx = doc.transaction();
        tx.put(ROOT, key, value).expect("put into the root map");
        let mut options = automerge::transaction::CommitOptions::default().with_time(time);
        if let Some(message) = message {
            options = options.with_message(message.to_owned());
        }
        tx.commit_with(options);
    }

    /// Writes `key = value` into the root map of `path` as this node, creating the document.
    pub fn write(&mut self, p: &str, key: &str, value: &str) {
        // Time 0 is what an automerge commit without options records.
        self.commit_at(p, key, value, 0, None);
    }

    /// The heads of a held document (empty when not held).
    pub fn heads_of(&self, p: &str) -> Vec<ChangeHash> {
        self.docs
            .get(&path(p))
            .map(|d| d.get_heads())
            .unwrap_or_default()
    }

    pub fn get(&self, p: &str, key: &str) -> Option<String> {
        use automerge::ReadDoc;
        let doc = self.docs.get(&path(p))?;
        let (value, _) = doc.get(ROOT, key).ok()??;
        value.into_string().ok()
    }
}

impl DocumentSet for MemoryDocs {
    fn paths(&self) -> Vec<DocPath> {
        self.docs.keys().cloned().collect()
    }
    fn heads(&self, path: &DocPath) -> Option<Vec<ChangeHash>> {
        self.docs.get(path).map(|d| d.get_heads())
    }
    fn doc(&mut self, path: &DocPath) -> Option<&Automerge> {
        self.docs.get(path)
    }
    fn doc_mut_or_create(&mut self, path: &DocPath) -> &mut Automerge {
        let actor = self.actor.clone();
        self.docs
            .entry(path.clone())
            .or_insert_with(|| Automerge::new().with_actor(actor))
    }
    fn load_sync_state(&mut self, peer: &NodeId, path: &DocPath) -> Option<Vec<u8>> {
        self.sync_states.get(&(peer.clone(), path.clone())).cloned()
    }
    fn may_store(&self, _path: &DocPath, new_document: bool) -> bool {
        !new_document || self.max_documents.is_none_or(|max| self.docs.len() < max)
    }
    fn author_standing(
        &mut self,
        author: &ActorId,
        _change: &ChangeHash,
        path: &DocPath,
    ) -> AuthorStanding {
        let Some(directory) = &self.directory else {
            return AuthorStanding::MayWrite;
        };
        match directory.get(author) {
            Some(grants) if grants.may_write(path) => AuthorStanding::MayWrite,
            Some(_) => AuthorStanding::MayNotWrite,
            None => AuthorStanding::Unknown,
        }
    }
    fn verify_signature(&mut self, _path: &DocPath, claim: SignatureClaim<'_>) -> SignatureCheck {
        if self.signing == Signing::Placeholders {
            return SignatureCheck::Valid;
        }
        let Some(node) = NodeId::from_actor(claim.author) else {
            return SignatureCheck::Invalid;
        };
        if self
            .directory
            .as_ref()
            .is_some_and(|d| !d.contains_key(&node.actor_id()))
        {
            return SignatureCheck::UnknownAuthor;
        }
        if test_signature(&test_key(&node), claim.signed) == *claim.signature {
            SignatureCheck::Valid
        } else {
            SignatureCheck::Invalid
        }
    }
    fn signatures_received(&mut self, path: &DocPath, heads: &[crate::SignedHead]) {
        if self.signing == Signing::Placeholders {
            return;
        }
        let held = self.signed.entry(path.clone()).or_default();
        for head in heads {
            if held.get(&head.actor).is_none_or(|(seq, _)| head.seq > *seq) {
                held.insert(head.actor.clone(), (head.seq, head.signature));
            }
        }
    }
    fn signatures(&mut self, path: &DocPath) -> Vec<ChangeSignature> {
        if self.signing == Signing::Placeholders {
            return self.placeholder_signatures(path);
        }
        let mut out: Vec<ChangeSignature> = self
            .signed
            .get(path)
            .map(|by_actor| by_actor.values().map(|(_, s)| *s).collect())
            .unwrap_or_default();
        // This node signs its own newest change, as a device does when it commits.
        if let Some(doc) = self.docs.get(path)
            && let Some(own) = doc
                .get_changes_meta(&[])
                .into_iter()
                .filter(|meta| *meta.actor == self.actor)
                .max_by_key(|meta| meta.seq)
            && let Some(node) = NodeId::from_actor(&self.actor)
        {
            out.push(ChangeSignature {
                hash: own.hash,
                signature: test_signature(&test_key(&node), &signed_bytes(path, &own.hash)),
            });
        }
        out
    }
}

/// One side of a pair: its session, documents, and a record of everything it did.
#[derive(Debug)]
pub struct Node {
    pub session: SyncSession,
    pub docs: MemoryDocs,
    pub events: Vec<SessionEvent>,
    /// Every byte this node transmitted, in order (unless the pair was told not to keep
    /// them, [`Pair::keep_sent`]).
    pub sent: Vec<u8>,
    /// How many bytes this node transmitted.
    pub sent_bytes: u64,
    pub error: Option<SessionError>,
}

impl Node {
    /// Every frame this node transmitted.
    pub fn sent_frames(&self) -> Vec<Frame> {
        let mut decoder = FrameDecoder::new(crate::frame::MAX_FRAME_LEN);
        decoder.push(&self.sent);
        let mut frames = Vec::new();
        while let Some(frame) = decoder.next_frame().expect("our own frames decode") {
            frames.push(frame);
        }
        frames
    }

    pub fn sent_mentions(&self, needle: &str) -> bool {
        self.sent
            .windows(needle.len())
            .any(|w| w == needle.as_bytes())
    }

    /// Persists what the session handed out (sync states, received signatures), as a node
    /// would, and records every event.
    fn drain_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            if let SessionEvent::SyncStateUpdated { path, state } = &event {
                self.docs.sync_states.insert(
                    (self.session.peer().node_id.clone(), path.clone()),
                    state.clone(),
                );
            }
            if let SessionEvent::DocumentChanged {
                path, signed_heads, ..
            } = &event
            {
                self.docs.signatures_received(path, signed_heads);
            }
            self.events.push(event);
        }
    }

    pub fn refusals(&self) -> Vec<(DocPath, crate::RefusalReason)> {
        self.events
            .iter()
            .filter_map(|e| match e {
                SessionEvent::ChangeRefused { path, reason } => Some((path.clone(), *reason)),
                _ => None,
            })
            .collect()
    }
}

/// How a node presents itself: its certificate, and what its hello claims (normally equal).
#[derive(Debug, Clone)]
pub struct Identity {
    pub certified: LocalIdentity,
    pub claimed: LocalIdentity,
}

impl Identity {
    pub fn new(id: &str, role: Role, grants: &[&str]) -> Self {
        let local = LocalIdentity {
            node_id: node_id(id),
            role,
            scopes: scopes(grants),
        };
        Identity {
            certified: local.clone(),
            claimed: local,
        }
    }
    /// An identity whose hello claims what its certificate says.
    pub fn certified(local: LocalIdentity) -> Self {
        Identity {
            certified: local.clone(),
            claimed: local,
        }
    }

    fn as_peer(&self) -> PeerIdentity {
        PeerIdentity {
            node_id: self.certified.node_id.clone(),
            role: self.certified.role,
            scopes: self.certified.scopes.clone(),
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Side {
    A,
    B,
}

/// Two sessions joined by a virtual link of latency [`LATENCY`].
#[derive(Debug)]
pub struct Pair {
    pub a: Node,
    pub b: Node,
    pub now: u64,
    /// (delivery time, receiving side, bytes), in delivery order.
    in_transit: VecDeque<(u64, Side, Vec<u8>)>,
    /// Most documents either session had in flight.
    pub peak_in_flight: usize,
    /// Largest outgoing buffer either session held before the harness drained it.
    pub peak_outgoing: usize,
    /// Time of the last delivery, to count round trips.
    pub last_delivery: u64,
    pub started_at: u64,
    /// Keep every transmitted byte in [`Node::sent`] (tests read the frames back); off for
    /// measurements of large exchanges.
    keep_sent: bool,
}

/// Why a pair's exchange did not finish.
#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("the pair did not settle within {0} steps")]
    NotSettled(usize),
    #[error("a session closed: {0}")]
    SessionClosed(SessionError),
}

/// Most steps [`Pair::try_drive`] takes before it declares the exchange stuck.
const MAX_STEPS: usize = 10_000_000;

impl Pair {
    pub fn new(a: (Identity, MemoryDocs), b: (Identity, MemoryDocs)) -> Self {
        Self::with_limits(a, b, Limits::default())
    }

    pub fn with_limits(
        a: (Identity, MemoryDocs),
        b: (Identity, MemoryDocs),
        limits: Limits,
    ) -> Self {
        Self::with_limits_at(a, b, limits, 1_000)
    }

    /// Like [`with_limits`](Self::with_limits), with both sessions' clocks starting at
    /// `start`: a node times its sessions by a monotonic clock counted from process start, so
    /// `start` may be 0.
    pub fn with_limits_at(
        a: (Identity, MemoryDocs),
        b: (Identity, MemoryDocs),
        limits: Limits,
        start: u64,
    ) -> Self {
        let now = start;
        let make = |me: &Identity, other: &Identity, docs: MemoryDocs| Node {
            session: SyncSession::new(
                SessionConfig {
                    local: me.claimed.clone(),
                    limits: limits.clone(),
                },
                other.as_peer(),
                now,
            ),
            docs,
            events: Vec::new(),
            sent: Vec::new(),
            sent_bytes: 0,
            error: None,
        };
        Pair {
            a: make(&a.0, &b.0, a.1),
            b: make(&b.0, &a.0, b.1),
            now,
            in_transit: VecDeque::new(),
            peak_outgoing: 0,
            peak_in_flight: 0,
            last_delivery: now,
            started_at: now,
            keep_sent: true,
        }
    }

    /// Whether to keep every transmitted byte (see [`Node::sent`]).
    pub fn keep_sent(mut self, keep: bool) -> Self {
        self.keep_sent = keep;
        self
    }

    fn node(&mut self, side: Side) -> &mut Node {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn flush(&mut self) {
        for side in [Side::A, Side::B] {
            let now = self.now;
            let to = if side == Side::A { Side::B } else { Side::A };
            let peak = self.peak_outgoing;
            let keep_sent = self.keep_sent;
            let node = self.node(side);
            let buffered = node.session.buffered_outgoing();
            let in_flight = node.session.docs_in_flight();
            node.drain_events();
            let mut out = Vec::new();
            while let Some(bytes) = node.session.poll_transmit() {
                node.sent_bytes += bytes.len() as u64;
                if keep_sent {
                    node.sent.extend_from_slice(&bytes);
                }
                out.push(bytes);
            }
            self.peak_outgoing = peak.max(buffered);
            self.peak_in_flight = self.peak_in_flight.max(in_flight);
            for bytes in out {
                self.in_transit.push_back((now + LATENCY, to, bytes));
            }
        }
    }

    /// Runs both sessions until nothing is in transit and no immediate work remains.
    pub fn drive(&mut self) {
        self.drive_until(u64::MAX);
    }

    /// Like [`drive`](Self::drive), but the link breaks at virtual time `deadline`: whatever
    /// would arrive later is lost, as when two devices walk out of range mid-sync.
    pub fn drive_until(&mut self, deadline: u64) {
        if let Err(error) = self.run(deadline, 100_000) {
            panic!("{error}");
        }
    }

    /// Like [`drive`](Self::drive) for large exchanges, with the outcome as a value: `Err`
    /// if the exchange does not settle or either session closed with an error.
    pub fn try_drive(&mut self) -> Result<(), PairError> {
        self.run(u64::MAX, MAX_STEPS)?;
        match self.a.error.as_ref().or(self.b.error.as_ref()) {
            Some(error) => Err(PairError::SessionClosed(error.clone())),
            None => Ok(()),
        }
    }

    fn run(&mut self, deadline: u64, max_steps: usize) -> Result<(), PairError> {
        for _ in 0..max_steps {
            self.flush();
            let mut worked = false;
            for side in [Side::A, Side::B] {
                let now = self.now;
                let node = self.node(side);
                if node.session.poll_timeout().is_some_and(|t| t <= now) {
                    let Node { session, docs, .. } = node;
                    session.handle_timeout(now, docs);
                    worked = true;
                }
            }
            if worked {
                continue;
            }
            let Some((at, to, bytes)) = self.in_transit.pop_front() else {
                return Ok(());
            };
            if at > deadline {
                self.in_transit.clear();
                return Ok(());
            }
            self.now = self.now.max(at);
            self.last_delivery = self.now;
            let now = self.now;
            let node = self.node(to);
            if node.session.is_closed() {
                continue;
            }
            let Node {
                session,
                docs,
                error,
                ..
            } = node;
            if let Err(e) = session.handle_bytes(now, &bytes, docs) {
                *error = Some(e);
            }
        }
        Err(PairError::NotSettled(max_steps))
    }

    /// Round trips spent since the pair started, from virtual time.
    pub fn round_trips(&self) -> f64 {
        (self.last_delivery - self.started_at) as f64 / (2 * LATENCY) as f64
    }

    /// Calls `local_change` on side `side` for `p`.
    pub fn local_change(&mut self, side: Side, p: &str) {
        let now = self.now;
        let node = self.node(side);
        let Node { session, docs, .. } = node;
        session.local_change(now, &path(p), docs);
    }

    /// Delivers raw bytes to one side right away, as a hostile peer would write them.
    pub fn inject(&mut self, to: Side, bytes: &[u8]) -> Result<(), SessionError> {
        let now = self.now;
        let node = self.node(to);
        let Node { session, docs, .. } = node;
        let result = session.handle_bytes(now, bytes, docs);
        node.drain_events();
        result
    }

    /// Bytes both sides transmitted.
    pub fn total_bytes(&self) -> u64 {
        self.a.sent_bytes + self.b.sent_bytes
    }

    /// Document sync frames both sides sent.
    pub fn doc_frames(&self) -> u64 {
        self.a.session.stats().doc_frames_sent + self.b.session.stats().doc_frames_sent
    }

    /// Hands both sides' document sets back (with the sync states they persisted).
    pub fn into_docs(self) -> (MemoryDocs, MemoryDocs) {
        (self.a.docs, self.b.docs)
    }
}

/// Hand-built automerge storage chunks, for tests of what peers may send: well-formed ones,
/// decompression bombs, and garbage.
pub mod chunks {
    use std::io::Write as _;

    use flate2::Compression;
    use flate2::write::DeflateEncoder;
    use sha2::{Digest as _, Sha256};

    pub use crate::inflate_limit::{CHANGE_CHUNK, CHUNK_MAGIC, COMPRESSED_CHANGE_CHUNK};

    /// Appends `value` as unsigned LEB128.
    pub fn uleb(mut value: u64, out: &mut Vec<u8>) {
        loop {
            let byte = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }

    /// automerge's checksum of a chunk: the first four bytes of SHA-256 over the type byte,
    /// the uleb128 length and the body. A compressed change's is that of the change inflated.
    pub fn checksum(kind: u8, body: &[u8]) -> [u8; 4] {
        let mut header = vec![kind];
        uleb(body.len() as u64, &mut header);
        let digest = Sha256::new()
            .chain_update(&header)
            .chain_update(body)
            .finalize();
        [digest[0], digest[1], digest[2], digest[3]]
    }

    /// A chunk of `kind` around `body`, with the given checksum.
    pub fn chunk(kind: u8, body: &[u8], checksum: [u8; 4]) -> Vec<u8> {
        let mut out = CHUNK_MAGIC.to_vec();
        out.extend_from_slice(&checksum);
        out.push(kind);
        uleb(body.len() as u64, &mut out);
        out.extend_from_slice(body);
        out
    }

    /// `data` as a raw DEFLATE stream (what a compressed change's body is).
    pub fn deflate(data: &[u8]) -> Vec<u8> {
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(data).expect("writes to memory");
        encoder.finish().expect("writes to memory")
    }

    /// `len` zero bytes deflated, and the checksum of a change chunk with them as its body,
    /// both computed in 1 MiB steps so the test never holds the zeros: a decompression bomb.
    pub fn zeros_deflated(len: u64) -> (Vec<u8>, [u8; 4]) {
        let block = vec![0u8; 1024 * 1024];
        let mut encoder = DeflateEncoder::new(Vec::new(), Compression::best());
        let mut header = vec![CHANGE_CHUNK];
        uleb(len, &mut header);
        let mut hasher = Sha256::new().chain_update(&header);
        let mut left = len;
        while left > 0 {
            let n = left.min(block.len() as u64) as usize;
            encoder.write_all(&block[..n]).expect("writes to memory");
            hasher.update(&block[..n]);
            left -= n as u64;
        }
        let digest = hasher.finalize();
        let deflated = encoder.finish().expect("writes to memory");
        (deflated, [digest[0], digest[1], digest[2], digest[3]])
    }
}
