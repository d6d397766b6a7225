//! Two [`SyncSession`]s joined by a virtual link, in memory: what the protocol itself costs
//! in bytes and round trips, free of QUIC, disks and the machine's load.
//!
//! Each transmission takes [`LATENCY_MS`] of virtual time to arrive; the sessions answer at
//! once, so the virtual time of the last delivery divided by a round trip (twice the latency)
//! is the number of round trips the exchange needed. This is the logic of gridsync-proto's
//! test pair (tests cannot be imported), reduced to what the benchmarks count.

use std::collections::{BTreeMap, VecDeque};

use anyhow::bail;
use automerge::{ActorId, Automerge, ChangeHash};
use gridsync_proto::{
    AuthorStanding, ChangeSignature, DocPath, DocumentSet, LocalIdentity, NodeId, PeerIdentity,
    SIGNATURE_LEN, SessionConfig, SessionError, SessionEvent, SignatureCheck, SyncSession,
};

/// Virtual milliseconds a transmission takes to reach the other side.
pub const LATENCY_MS: u64 = 50;

/// Most steps [`MemoryPair::drive`] takes before it declares the exchange stuck.
const MAX_STEPS: usize = 10_000_000;

/// A node's documents and persisted sync states, in memory.
#[derive(Debug, Clone)]
pub struct MemoryDocs {
    /// Actor for documents created when a peer's history arrives.
    actor: ActorId,
    /// The documents held.
    pub docs: BTreeMap<DocPath, Automerge>,
    /// Sync states the session asked to persist, per (peer, document).
    pub sync_states: BTreeMap<(NodeId, DocPath), Vec<u8>>,
    /// One placeholder signature per author's newest change, per document at its heads, so
    /// that messages carry the signature bytes a node's would (the pair measures the
    /// engine's bytes and round trips; real signing and verifying are measured on nodes).
    signatures: BTreeMap<DocPath, (Vec<ChangeHash>, Vec<ChangeSignature>)>,
}

impl MemoryDocs {
    /// An empty document set owned by `owner`.
    pub fn new(owner: &NodeId) -> MemoryDocs {
        MemoryDocs {
            actor: owner.actor_id(),
            docs: BTreeMap::new(),
            sync_states: BTreeMap::new(),
            signatures: BTreeMap::new(),
        }
    }

    /// A document set holding `docs` (copied).
    pub fn with_docs(owner: &NodeId, docs: &[(DocPath, Automerge)]) -> MemoryDocs {
        let mut set = MemoryDocs::new(owner);
        set.docs = docs.iter().cloned().collect();
        set
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
    /// Every author may write: the benchmark documents hold only genesis changes and the
    /// sending captain's own, and this pair measures the engine, not a node's directory.
    fn author_standing(
        &mut self,
        _author: &ActorId,
        _change: &ChangeHash,
        _path: &DocPath,
    ) -> AuthorStanding {
        AuthorStanding::MayWrite
    }
    fn verify_signature(
        &mut self,
        _author: &ActorId,
        _path: &DocPath,
        _signed: &[u8],
        _signature: &[u8; SIGNATURE_LEN],
    ) -> SignatureCheck {
        SignatureCheck::Valid
    }
    /// Signatures are recomputed from the document (placeholders), so nothing is kept.
    fn signatures_received(&mut self, _path: &DocPath, _heads: &[gridsync_proto::SignedHead]) {}
    fn signatures(&mut self, path: &DocPath) -> Vec<ChangeSignature> {
        let Some(doc) = self.docs.get(path) else {
            return Vec::new();
        };
        let heads = doc.get_heads();
        if let Some((at, held)) = self.signatures.get(path)
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
        self.signatures.insert(path.clone(), (heads, held.clone()));
        held
    }
}

/// One side of a [`MemoryPair`].
pub struct MemoryNode {
    /// The side's session.
    pub session: SyncSession,
    /// Its documents.
    pub docs: MemoryDocs,
    /// Events the session reported, in order.
    pub events: Vec<SessionEvent>,
    /// Bytes it transmitted.
    pub sent_bytes: u64,
    /// The error that closed its session, if any.
    pub error: Option<SessionError>,
}

impl MemoryNode {
    fn new(me: &LocalIdentity, peer: &LocalIdentity, docs: MemoryDocs, now: u64) -> MemoryNode {
        let peer = PeerIdentity {
            node_id: peer.node_id.clone(),
            role: peer.role,
            scopes: peer.scopes.clone(),
        };
        MemoryNode {
            session: SyncSession::new(SessionConfig::new(me.clone()), peer, now),
            docs,
            events: Vec::new(),
            sent_bytes: 0,
            error: None,
        }
    }

    /// Persists sync states the session handed out, as a node would, and records events.
    fn drain_events(&mut self) {
        while let Some(event) = self.session.poll_event() {
            if let SessionEvent::SyncStateUpdated { path, state } = &event {
                self.docs.sync_states.insert(
                    (self.session.peer().node_id.clone(), path.clone()),
                    state.clone(),
                );
            }
            self.events.push(event);
        }
    }
}

/// Which side of a pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    A,
    B,
}

/// Two sessions joined by a virtual link of latency [`LATENCY_MS`].
pub struct MemoryPair {
    /// The first node.
    pub a: MemoryNode,
    /// The second node.
    pub b: MemoryNode,
    now: u64,
    started_at: u64,
    last_delivery: u64,
    /// (delivery time, receiving side, bytes), in delivery order.
    in_transit: VecDeque<(u64, Side, Vec<u8>)>,
}

impl MemoryPair {
    /// Starts both sessions (their hellos are queued) at virtual time 1,000 ms.
    pub fn new(a: (&LocalIdentity, MemoryDocs), b: (&LocalIdentity, MemoryDocs)) -> MemoryPair {
        let now = 1_000;
        MemoryPair {
            a: MemoryNode::new(a.0, b.0, a.1, now),
            b: MemoryNode::new(b.0, a.0, b.1, now),
            now,
            started_at: now,
            last_delivery: now,
            in_transit: VecDeque::new(),
        }
    }

    fn node(&mut self, side: Side) -> &mut MemoryNode {
        match side {
            Side::A => &mut self.a,
            Side::B => &mut self.b,
        }
    }

    fn flush(&mut self) {
        for side in [Side::A, Side::B] {
            let to = if side == Side::A { Side::B } else { Side::A };
            let at = self.now + LATENCY_MS;
            let node = self.node(side);
            node.drain_events();
            let mut out = Vec::new();
            while let Some(bytes) = node.session.poll_transmit() {
                node.sent_bytes += bytes.len() as u64;
                out.push(bytes);
            }
            for bytes in out {
                self.in_transit.push_back((at, to, bytes));
            }
        }
    }

    /// Runs both sessions until nothing is in transit and neither has work left; fails if
    /// either session closed with an error or the exchange does not settle.
    pub fn drive(&mut self) -> anyhow::Result<()> {
        for _ in 0..MAX_STEPS {
            self.flush();
            let mut worked = false;
            for side in [Side::A, Side::B] {
                let now = self.now;
                let node = self.node(side);
                if node.session.poll_timeout().is_some_and(|t| t <= now) {
                    node.session.handle_timeout(now, &mut node.docs);
                    worked = true;
                }
            }
            if worked {
                continue;
            }
            let Some((at, to, bytes)) = self.in_transit.pop_front() else {
                if let Some(error) = self.a.error.as_ref().or(self.b.error.as_ref()) {
                    bail!("a session closed: {error}");
                }
                return Ok(());
            };
            self.now = self.now.max(at);
            self.last_delivery = self.now;
            let now = self.now;
            let node = self.node(to);
            if node.session.is_closed() {
                continue;
            }
            if let Err(e) = node.session.handle_bytes(now, &bytes, &mut node.docs) {
                node.error = Some(e);
            }
        }
        bail!("the in-memory pair did not settle")
    }

    /// Round trips spent since the pair started, from virtual time.
    pub fn round_trips(&self) -> f64 {
        (self.last_delivery - self.started_at) as f64 / (2 * LATENCY_MS) as f64
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

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use automerge::transaction::Transactable;
    use gridsync_proto::Role;

    use super::*;
    use crate::harness::street_write;

    fn identity(name: &str, role: Role) -> LocalIdentity {
        LocalIdentity {
            node_id: NodeId::parse(name).unwrap(),
            role,
            scopes: gridsync_proto::Scopes(vec![street_write()]),
        }
    }

    #[test]
    fn a_pair_syncs_and_an_unchanged_reconnect_sends_no_document() {
        let (a_id, b_id) = (
            identity("cap-1", Role::Captain),
            identity("office", Role::Office),
        );
        let mut docs = Vec::new();
        for i in 0..20 {
            let mut doc = Automerge::new().with_actor(a_id.node_id.actor_id());
            let mut tx = doc.transaction();
            tx.put(automerge::ROOT, "n", i as i64).unwrap();
            tx.commit();
            docs.push((DocPath::parse(&format!("panhuo/g/b-{i}")).unwrap(), doc));
        }
        let a = MemoryDocs::with_docs(&a_id.node_id, &docs);
        let b = MemoryDocs::new(&b_id.node_id);
        let mut pair = MemoryPair::new((&a_id, a), (&b_id, b));
        pair.drive().unwrap();
        assert!(pair.doc_frames() >= 20);
        let (a, b) = pair.into_docs();
        assert_eq!(b.docs.len(), 20);

        let mut again = MemoryPair::new((&a_id, a), (&b_id, b));
        again.drive().unwrap();
        assert_eq!(again.doc_frames(), 0);
        assert!(again.round_trips() <= 2.0, "{}", again.round_trips());
    }
}
