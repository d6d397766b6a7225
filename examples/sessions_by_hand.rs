//! Two `gridsync_proto::SyncSession`s driven by hand, over in-memory byte queues.
//!
//! `gridsync-proto` is *sans-IO*: the sync engine never touches a socket, a clock or a
//! thread. Its driver hands it the bytes it read and the current time, and takes back the
//! bytes to send, the effects to carry out (store this, persist that) and when to wake it
//! up. A running node drives it over QUIC; a simulation drives it over a simulated pipe; here
//! we drive it with two `VecDeque`s standing for the two directions of a wire, so that every
//! frame and every event can be printed as it happens.
//!
//! What it shows:
//! - the driving contract: `handle_bytes` / `poll_transmit` / `poll_event` /
//!   `poll_timeout` + `handle_timeout`, and `local_change` for live pushes;
//! - what a node must provide to the engine (`DocumentSet`): its documents, its persisted
//!   sync states, and the answers to "may this author write here?" and "is this signature
//!   the author's?", here from real CA-issued certificates and ECDSA device keys;
//! - the protocol's phases: hello (checked against the certificate), inventory (which shared
//!   documents differ), per-document automerge sync, then live push;
//! - that nothing is ever sent about a document outside both sides' scopes.
//!
//! Run it with:
//!
//! ```sh
//! cargo run -p gridsync-examples --example sessions_by_hand
//! ```

use std::collections::{BTreeMap, VecDeque};

use anyhow::{Context, Result, bail, ensure};
use automerge::transaction::Transactable;
use automerge::{ActorId, Automerge, ChangeHash, ROOT, ReadDoc};
use gridsync_net::{
    ChangeSigner, DeviceIdentity, IssuedIdentity, StreetCa, certificate_public_key,
    identity_from_cert, verify_change_signature,
};
use gridsync_proto::frame::{Frame, FrameDecoder, MAX_FRAME_LEN};
use gridsync_proto::signature::signed_bytes;
use gridsync_proto::{
    AuthorStanding, ChangeSignature, DocPath, DocumentSet, LocalIdentity, NodeId, PeerIdentity,
    Role, Scopes, SessionConfig, SessionEvent, SignatureCheck, SignatureClaim, SignedHead,
    SyncSession,
};

const STREET: &str = "panhuo";
/// Virtual milliseconds a batch of bytes takes to cross the "wire".
const LATENCY_MS: u64 = 20;

fn main() -> Result<()> {
    // --- Identities --------------------------------------------------------------------------
    // Every device holds a certificate from the street's CA that binds its node id, role and
    // scopes (which document paths it may write, read or carry). The transport verifies the
    // peer's certificate before the engine sees a byte, and tells the engine what it says:
    // that is the `PeerIdentity`. We skip the transport, but use real certificates.
    let now_secs = 1_775_091_600; // 2026-04-02; any time inside the certificates' validity
    let ca = StreetCa::generate(STREET, now_secs)?;
    // The volunteer works in two micro-grids; the captain is responsible for grid-017 only.
    let volunteer = enroll(
        &ca,
        "vol-0042",
        Role::Volunteer,
        &["write:panhuo/grid-017", "write:panhuo/grid-018"],
        now_secs,
    )?;
    let captain = enroll(
        &ca,
        "cap-01",
        Role::Captain,
        &["write:panhuo/grid-017"],
        now_secs,
    )?;

    let mut vol = Side::new("vol-0042", &volunteer)?;
    let mut cap = Side::new("cap-01", &captain)?;
    // Each node answers "who may write?" and "is this signature theirs?" from the certificates
    // it knows (a running node keeps them in the street's device directory document).
    vol.docs.know(&captain)?;
    cap.docs.know(&volunteer)?;

    // --- Documents written while apart --------------------------------------------------------
    // gridsync-proto knows nothing of households or visits: to it a document is a path and an
    // automerge history. (The field model writes its records into these same documents.)
    let b001 = DocPath::parse("panhuo/grid-017/b-001")?;
    let b002 = DocPath::parse("panhuo/grid-017/b-002")?;
    let b003 = DocPath::parse("panhuo/grid-018/b-003")?;
    vol.docs
        .write(&b001, "h-0001", "contacted; needs insulin")?;
    vol.docs.write(&b003, "h-0033", "not at home")?;
    cap.docs.write(&b002, "h-0025", "contacted")?;
    println!("vol-0042 holds {b001} and {b003}; cap-01 holds {b002}\n");

    // --- A session per side -------------------------------------------------------------------
    // `SyncSession::new` queues our hello at once. Its `PeerIdentity` is what the peer's
    // certificate says; the session checks the peer's hello against it and sends nothing about
    // documents before that check passed.
    let mut now: u64 = 1_000;
    vol.session = Some(SyncSession::new(
        SessionConfig::new(vol.local.clone()),
        as_peer(&cap.local),
        now,
    ));
    cap.session = Some(SyncSession::new(
        SessionConfig::new(cap.local.clone()),
        as_peer(&vol.local),
        now,
    ));

    println!("-- the two devices meet --");
    run_until_quiet(&mut vol, &mut cap, &mut now)?;

    // Both grid-017 documents crossed, each way; the grid-018 document did not: it is inside
    // the volunteer's scopes but not the captain's, so the engine never even names it.
    ensure!(
        cap.docs.value(&b001, "h-0001").is_some(),
        "b-001 reached the captain"
    );
    ensure!(
        vol.docs.value(&b002, "h-0025").is_some(),
        "b-002 reached the volunteer"
    );
    ensure!(
        vol.docs.docs[&b001].get_heads() == cap.docs.docs[&b001].get_heads(),
        "both sides hold the same history of b-001"
    );
    ensure!(
        !cap.docs.docs.contains_key(&b003),
        "a document outside the captain's scopes never reaches it"
    );
    ensure!(
        !vol.wire_log
            .iter()
            .any(|(_, path)| path.as_ref() == Some(&b003)),
        "no frame ever named {b003}"
    );
    // The driver persisted a sync state per (peer, document): the next meeting starts from
    // what both sides are known to share, so only new changes travel.
    ensure!(
        cap.docs
            .sync_states
            .contains_key(&(vol.local.node_id.clone(), b001.clone())),
        "the captain persisted its sync state for b-001"
    );
    println!(
        "\nafter the first exchange: cap-01 holds {}, vol-0042 holds {}\n",
        names(&cap.docs),
        names(&vol.docs)
    );

    // --- Live push ----------------------------------------------------------------------------
    // While connected, a local write is pushed at once: the node tells each session about the
    // changed document with `local_change`, and the session sends just the new change.
    vol.docs.write(&b001, "h-0002", "not at home")?;
    println!("-- vol-0042 writes again to {b001} while connected --");
    let sent_before = vol.bytes_sent;
    if let Some(session) = vol.session.as_mut() {
        session.local_change(now, &b001, &mut vol.docs);
    }
    run_until_quiet(&mut vol, &mut cap, &mut now)?;
    ensure!(
        cap.docs.value(&b001, "h-0002").as_deref() == Some("not at home"),
        "the live change reached the captain"
    );
    println!(
        "\nthe new change crossed in {} bytes; cap-01 now reads h-0002 = {:?}",
        vol.bytes_sent - sent_before,
        cap.docs.value(&b001, "h-0002").unwrap_or_default()
    );

    // Neither side refused anything: every change was signed by its author's key and its
    // author may write the document.
    ensure!(
        vol.refusals == 0 && cap.refusals == 0,
        "nothing was refused"
    );
    Ok(())
}

// --- The driver --------------------------------------------------------------------------------

/// One device: its identity, its documents, its session with the other device, and its end of
/// the wire.
struct Side {
    name: &'static str,
    local: LocalIdentity,
    docs: MemoryDocs,
    session: Option<SyncSession>,
    /// Bytes the other side sent that have not been handed to our session yet.
    inbox: VecDeque<Vec<u8>>,
    /// Decodes what we send, only to print it (the session does its own framing).
    tap: FrameDecoder,
    /// Every frame we sent: its kind and the document it names, if any.
    wire_log: Vec<(&'static str, Option<DocPath>)>,
    bytes_sent: usize,
    refusals: usize,
}

impl Side {
    fn new(name: &'static str, issued: &IssuedIdentity) -> Result<Side> {
        // What the certificate says is who we are; the hello we send claims exactly that.
        let identity = identity_from_cert(&issued.cert_der)?;
        Ok(Side {
            name,
            local: LocalIdentity {
                node_id: identity.node_id.clone(),
                role: identity.role,
                scopes: identity.scopes.clone(),
            },
            docs: MemoryDocs::new(&identity.node_id, &issued.key_der)?,
            session: None,
            inbox: VecDeque::new(),
            tap: FrameDecoder::new(MAX_FRAME_LEN),
            wire_log: Vec::new(),
            bytes_sent: 0,
            refusals: 0,
        })
    }
}

/// Moves bytes both ways, runs timers and carries out events until neither side has anything
/// left to do.
fn run_until_quiet(a: &mut Side, b: &mut Side, now: &mut u64) -> Result<()> {
    for _ in 0..1_000 {
        // Step 1: drain `poll_transmit` and put the bytes on the wire.
        let sent = transmit(a, b)? | transmit(b, a)?;
        *now += LATENCY_MS;
        // Step 2: hand each side what arrived, then carry out its events.
        let received = receive(a, *now)? | receive(b, *now)?;
        // Step 3: timers. `poll_timeout` may name a time already past: that means "call
        // `handle_timeout` now" (deferred work resumes there, e.g. once outgoing bytes drained).
        let timed = timers(a, *now)? | timers(b, *now)?;
        if !sent && !received && !timed {
            return Ok(());
        }
    }
    bail!("the sessions did not settle")
}

/// Sends everything `from`'s session has queued into `to`'s inbox, printing each frame.
fn transmit(from: &mut Side, to: &mut Side) -> Result<bool> {
    let session = from.session.as_mut().context("session started")?;
    let mut sent = false;
    while let Some(bytes) = session.poll_transmit() {
        sent = true;
        from.bytes_sent += bytes.len();
        from.tap.push(&bytes);
        let mut kinds = Vec::new();
        while let Some(frame) = from.tap.next_frame()? {
            let path = match &frame {
                Frame::DocSync { path, .. } | Frame::Refused { path, .. } => Some(path.clone()),
                _ => None,
            };
            kinds.push(match &path {
                Some(p) => format!("{} {p}", frame.kind()),
                None => frame.kind().to_string(),
            });
            from.wire_log.push((frame.kind(), path));
        }
        println!(
            "  {:>8} -> {:<8} {:>5} bytes: {}",
            from.name,
            to.name,
            bytes.len(),
            kinds.join(", ")
        );
        to.inbox.push_back(bytes);
    }
    Ok(sent)
}

/// Feeds the inbox to the session (`handle_bytes`), then drains its events.
fn receive(side: &mut Side, now: u64) -> Result<bool> {
    let session = side.session.as_mut().context("session started")?;
    let mut received = false;
    while let Some(bytes) = side.inbox.pop_front() {
        received = true;
        // An error here has closed the session; it is reported again as a `Closed` event.
        if let Err(e) = session.handle_bytes(now, &bytes, &mut side.docs) {
            bail!("{}: session closed: {e}", side.name);
        }
    }
    drain_events(side)?;
    Ok(received)
}

fn timers(side: &mut Side, now: u64) -> Result<bool> {
    let session = side.session.as_mut().context("session started")?;
    if session.poll_timeout().is_some_and(|t| t <= now) {
        session.handle_timeout(now, &mut side.docs);
        drain_events(side)?;
        return Ok(true);
    }
    Ok(false)
}

/// Carries out what the session asks of its node. A real node stores received changes
/// durably *before* telling other sessions about them, and persists a sync state only after
/// the documents reported before it; memory makes both trivial here.
fn drain_events(side: &mut Side) -> Result<()> {
    let session = side.session.as_mut().context("session started")?;
    let peer = session.peer().node_id.clone();
    while let Some(event) = session.poll_event() {
        match event {
            SessionEvent::PeerVerified { node_id, role } => {
                println!(
                    "  {:>8}: hello from {node_id} ({role}) matches its certificate",
                    side.name
                );
            }
            SessionEvent::InventoryDone { differing, rounds } => println!(
                "  {:>8}: inventory done: {differing} shared document(s) differ ({rounds} round(s))",
                side.name
            ),
            SessionEvent::DocumentChanged {
                path,
                from,
                signed_heads,
                ..
            } => {
                // (A node would append `doc.save_after(&before_heads)` to its store here, with
                // the signatures, in one transaction; then forward the change to its other peers.)
                side.docs.signatures_received(&path, &signed_heads);
                println!("  {:>8}: applied changes to {path} from {from}", side.name);
            }
            SessionEvent::SyncStateUpdated { path, state } => {
                side.docs.sync_states.insert((peer.clone(), path), state);
            }
            SessionEvent::ChangeRefused { path, reason } => {
                side.refusals += 1;
                println!("  {:>8}: refused changes to {path}: {reason:?}", side.name);
            }
            SessionEvent::UpToDate => {
                println!("  {:>8}: up to date with {peer}", side.name);
            }
            SessionEvent::Closed { reason } => bail!("{}: session closed: {reason}", side.name),
        }
    }
    Ok(())
}

// --- The node's documents, as the engine sees them ----------------------------------------------

/// A device's documents, sync states and signatures, in memory. A running node implements the
/// same trait over its SQLite store (`gridsync_node::Replica`).
struct MemoryDocs {
    actor: ActorId,
    /// The device's key, from its enrollment: it signs every change the device writes.
    signer: ChangeSigner,
    docs: BTreeMap<DocPath, Automerge>,
    sync_states: BTreeMap<(NodeId, DocPath), Vec<u8>>,
    /// Known devices: the public key of their certificate, and their scopes.
    directory: BTreeMap<NodeId, (Vec<u8>, Scopes)>,
    /// Per document and author, the signature on that author's newest change held here.
    signed: BTreeMap<DocPath, BTreeMap<ActorId, SignedHead>>,
}

impl MemoryDocs {
    fn new(node: &NodeId, key_der: &[u8]) -> Result<MemoryDocs> {
        Ok(MemoryDocs {
            // A device writes under an actor derived from its node id, so any node can tell
            // from a change alone who authored it (`NodeId::from_actor`).
            actor: node.actor_id(),
            signer: ChangeSigner::from_pkcs8(key_der)?,
            docs: BTreeMap::new(),
            sync_states: BTreeMap::new(),
            directory: BTreeMap::new(),
            signed: BTreeMap::new(),
        })
    }

    /// Learns another device's certificate.
    fn know(&mut self, other: &IssuedIdentity) -> Result<()> {
        let identity = identity_from_cert(&other.cert_der)?;
        let public_key = certificate_public_key(&other.cert_der)?;
        self.directory
            .insert(identity.node_id, (public_key, identity.scopes));
        Ok(())
    }

    /// Writes `key = value` into the document at `path` and signs the new change: the
    /// signature covers the document's path and the change's hash, so it cannot be replayed
    /// into another document, and it vouches for the author's earlier changes too.
    fn write(&mut self, path: &DocPath, key: &str, value: &str) -> Result<()> {
        let actor = self.actor.clone();
        let doc = self
            .docs
            .entry(path.clone())
            .or_insert_with(|| Automerge::new().with_actor(actor));
        let mut tx = doc.transaction();
        tx.put(ROOT, key, value)?;
        tx.commit();
        let change = doc
            .get_last_local_change()
            .context("the write made a change")?;
        let (hash, seq) = (change.hash(), change.seq());
        let signature = self.signer.sign(&signed_bytes(path, &hash))?;
        self.signed.entry(path.clone()).or_default().insert(
            self.actor.clone(),
            SignedHead {
                actor: self.actor.clone(),
                seq,
                signature: ChangeSignature { hash, signature },
            },
        );
        Ok(())
    }

    fn value(&self, path: &DocPath, key: &str) -> Option<String> {
        let (value, _) = self.docs.get(path)?.get(ROOT, key).ok()??;
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

    /// Asked for changes the peer relays from someone else: judged by the author's own grants.
    fn author_standing(
        &mut self,
        author: &ActorId,
        _change: &ChangeHash,
        path: &DocPath,
    ) -> AuthorStanding {
        match NodeId::from_actor(author).and_then(|node| self.directory.get(&node)) {
            Some((_, scopes)) if scopes.may_write(path) => AuthorStanding::MayWrite,
            Some(_) => AuthorStanding::MayNotWrite,
            None => AuthorStanding::Unknown,
        }
    }

    /// Checked for every received change not held yet, before anything is applied.
    fn verify_signature(&mut self, _path: &DocPath, claim: SignatureClaim<'_>) -> SignatureCheck {
        let device = NodeId::from_actor(claim.author).and_then(|node| self.directory.get(&node));
        match device {
            Some((key, _)) if verify_change_signature(key, claim.signed, claim.signature) => {
                SignatureCheck::Valid
            }
            Some(_) => SignatureCheck::Invalid,
            None => SignatureCheck::UnknownAuthor,
        }
    }

    /// The signatures outgoing messages carry: one per author, on its newest change here.
    fn signatures(&mut self, path: &DocPath) -> Vec<ChangeSignature> {
        self.signed
            .get(path)
            .map(|by_author| by_author.values().map(|h| h.signature).collect())
            .unwrap_or_default()
    }

    /// Verified signatures of changes just applied: kept, to hand them onward.
    fn signatures_received(&mut self, path: &DocPath, heads: &[SignedHead]) {
        let held = self.signed.entry(path.clone()).or_default();
        for head in heads {
            if held.get(&head.actor).is_none_or(|h| head.seq > h.seq) {
                held.insert(head.actor.clone(), head.clone());
            }
        }
    }
}

// --- Helpers ------------------------------------------------------------------------------------

/// What `gridsync enroll` does at the office: the street CA issues the device a certificate
/// (and a fresh key) for its node id, role and scopes.
fn enroll(
    ca: &StreetCa,
    name: &str,
    role: Role,
    grants: &[&str],
    now_secs: u64,
) -> Result<IssuedIdentity> {
    let scopes = grants
        .iter()
        .map(|g| g.parse().map_err(anyhow::Error::msg))
        .collect::<Result<Vec<_>>>()?;
    Ok(ca.issue(&DeviceIdentity {
        street: STREET.into(),
        node_id: NodeId::parse(name)?,
        role,
        scopes: Scopes(scopes),
        not_before: now_secs - 600,
        not_after: now_secs + 86_400,
    })?)
}

/// The identity the transport would report for a peer presenting this certificate.
fn as_peer(local: &LocalIdentity) -> PeerIdentity {
    PeerIdentity {
        node_id: local.node_id.clone(),
        role: local.role,
        scopes: local.scopes.clone(),
    }
}

fn names(docs: &MemoryDocs) -> String {
    docs.docs
        .keys()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}
