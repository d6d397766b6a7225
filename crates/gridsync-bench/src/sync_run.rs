//! The measurements scenarios 1, 2, 3 and 7 share: an initial sync from a populated node to
//! an empty office over QUIC with durable stores ([`initial_sync`]), and the reference it is
//! compared against, the same documents synced with `automerge::sync` alone in memory
//! ([`automerge_reference`]).
//!
//! What [`initial_sync`] times: from the moment the populated node starts (its documents are
//! already loaded, as a running node's are) and dials the office, to the office's last
//! durable store of a change from it, once the office holds every document at the source's
//! heads. The office's change feed announces a document only after its changes are on disk,
//! so the last announcement marks the end; afterwards the office's store is reopened from disk
//! and every document's heads checked (not timed).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use automerge::sync::{Message, State, SyncDoc};
use automerge::{Automerge, ChangeHash};
use gridsync_net::NodeCredentials;
use gridsync_node::node::RunningNode;
use gridsync_node::store_writer::WriteTicket;
use gridsync_proto::{DocPath, NodeId, Role};
use tokio::sync::broadcast::error::RecvError;

use crate::harness::{self, BenchStreet, street_write};
use crate::progress::Progress;
use crate::sync_relay::{CountingRelay, RelayTotals};

/// Longest an initial sync may take before the scenario fails.
const SYNC_TIMEOUT: Duration = Duration::from_secs(600);

/// How long the office's change feed must stay quiet after the last document arrived before
/// the sync counts as finished (late announcements of the same changes move the end).
const QUIET: Duration = Duration::from_millis(300);

/// A populated node, stopped, ready to be started against an office.
pub struct Source {
    /// Its node id.
    pub node_id: NodeId,
    /// Its credentials (a captain with write access to the whole street).
    pub credentials: NodeCredentials,
    /// Heads of every document it holds.
    pub expected: BTreeMap<DocPath, Vec<ChangeHash>>,
    /// Bytes of the saved documents in its store.
    pub stored_bytes: u64,
}

impl Source {
    /// Enrolls captain `name` and stores `docs` in its replica (not timed).
    pub fn populate(
        street: &BenchStreet,
        name: &str,
        docs: &[(DocPath, Automerge)],
        progress: &Progress,
    ) -> anyhow::Result<Source> {
        let enrolled = street.enroll(name, Role::Captain, &[street_write()])?;
        let mut replica = enrolled.replica;
        let stored_bytes = harness::store_docs(&mut replica, docs, progress)?;
        Ok(Source {
            node_id: enrolled.node_id,
            credentials: enrolled.credentials,
            expected: harness::heads_of(docs),
            stored_bytes,
        })
    }
}

/// What one initial sync measured.
#[derive(Debug, Clone)]
pub struct InitialSync {
    /// From the source's start to the office's last durable store of its changes.
    pub took: Duration,
    /// CPU time both nodes (the whole process) used over `took` and the quiet wait after it.
    pub cpu: Duration,
    /// Documents synced.
    pub documents: usize,
    /// gridsync frame bytes both ways (stream payload: hello, inventory, sync messages).
    pub frame_bytes: u64,
    /// UDP bytes both ways, when the sync went through a [`CountingRelay`].
    pub wire: Option<RelayTotals>,
    /// The office the documents went to (its store stays in the street's directory).
    pub office_id: NodeId,
    /// The office's credentials, to restart it on its store.
    pub office_credentials: NodeCredentials,
}

/// Syncs every document of `source` to a new, empty office `office_name` over QUIC on
/// loopback (through a counting relay when `through_relay`), stops both nodes, and checks
/// that the office's store holds every document at the source's heads.
pub fn initial_sync(
    street: &BenchStreet,
    source: &Source,
    office_name: &str,
    through_relay: bool,
    progress: &Progress,
) -> anyhow::Result<InitialSync> {
    let enrolled = street.enroll(office_name, Role::Office, &[street_write()])?;
    let office_id = enrolled.node_id.clone();
    let office_credentials = enrolled.credentials.clone();
    let mut source_replica = street.reopen(&source.node_id)?;
    source_replica.load_all()?;
    let run = harness::block_on(async {
        let office = harness::start_node(enrolled.credentials, enrolled.replica, Vec::new())?;
        let mut feed = office.handle().subscribe();
        let relay = match through_relay {
            true => Some(CountingRelay::start(office.local_addr).await?),
            false => None,
        };
        let target = relay.as_ref().map_or(office.local_addr, |r| r.addr);

        let started = Instant::now();
        let cpu_before = process_cpu();
        let source_node =
            harness::start_node(source.credentials.clone(), source_replica, vec![target])?;
        let last = wait_for_documents(&office, &mut feed, &source.expected, progress).await;
        let cpu = process_cpu().saturating_sub(cpu_before);
        let frame_bytes = office
            .handle()
            .peer(&source.node_id)
            .map_or(0, |p| p.bytes_sent + p.bytes_received);
        let wire = relay.as_ref().map(CountingRelay::totals);
        harness::stop_all(vec![source_node, office]).await;
        Ok::<_, anyhow::Error>(InitialSync {
            took: last?.saturating_duration_since(started),
            cpu,
            documents: source.expected.len(),
            frame_bytes,
            wire,
            office_id: office_id.clone(),
            office_credentials: office_credentials.clone(),
        })
    })??;
    check_stored(street, &office_id, &source.expected)?;
    Ok(run)
}

/// Waits until the office holds every expected document at its heads, then until its change
/// feed is quiet; returns when the last change from a peer was announced (stored).
async fn wait_for_documents(
    office: &RunningNode,
    feed: &mut tokio::sync::broadcast::Receiver<gridsync_node::DocChange>,
    expected: &BTreeMap<DocPath, Vec<ChangeHash>>,
    progress: &Progress,
) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + SYNC_TIMEOUT;
    let total = expected.len() as u64;
    let mut done: BTreeSet<DocPath> = BTreeSet::new();
    let mut last = Instant::now();
    let at_heads = |path: &DocPath| {
        let replica = office.handle().lock_replica();
        let heads = replica.known_heads(path);
        heads.is_some_and(|d| expected.get(path).is_some_and(|h| d == *h))
    };
    // The office announces a change once it is in memory; it is durable when the store
    // writer settles the ticket it came with. The sync counts as done once both hold.
    let mut last_ticket = WriteTicket::NONE;
    while done.len() < expected.len() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(remaining, feed.recv()).await {
            Err(_) => bail!(
                "the office holds {} of {} documents after {SYNC_TIMEOUT:?}",
                done.len(),
                expected.len()
            ),
            Ok(Ok(change)) => {
                if change.from.is_none() {
                    continue;
                }
                last = Instant::now();
                last_ticket = last_ticket.max(change.durable_after.unwrap_or(WriteTicket::NONE));
                if !done.contains(&change.path) && at_heads(&change.path) {
                    done.insert(change.path);
                }
            }
            Ok(Err(RecvError::Lagged(_))) => {
                // Announcements were dropped: look at every document still missing.
                last = Instant::now();
                for path in expected.keys() {
                    if !done.contains(path) && at_heads(path) {
                        done.insert(path.clone());
                    }
                }
            }
            Ok(Err(RecvError::Closed)) => bail!("the office stopped during the sync"),
        }
        progress.count("documents at the office", done.len() as u64, total);
    }
    let ticket = match last_ticket {
        WriteTicket::NONE => office
            .handle()
            .lock_replica()
            .last_write_ticket()
            .unwrap_or(WriteTicket::NONE),
        seen => seen,
    };
    let mut settled = office.handle().durable_progress();
    settled
        .wait_for(|at| *at >= ticket)
        .await
        .map_err(|_| anyhow::anyhow!("the office's store writer stopped"))?;
    last = last.max(Instant::now());
    loop {
        match tokio::time::timeout(QUIET, feed.recv()).await {
            Err(_) | Ok(Err(RecvError::Closed)) => return Ok(last),
            Ok(Ok(change)) if change.from.is_none() => {}
            Ok(_) => last = Instant::now(),
        }
    }
}

/// Reopens `node`'s store from disk and checks every expected document's heads.
pub fn check_stored(
    street: &BenchStreet,
    node: &NodeId,
    expected: &BTreeMap<DocPath, Vec<ChangeHash>>,
) -> anyhow::Result<()> {
    let mut replica = street.reopen(node)?;
    for (path, heads) in expected {
        let doc = replica
            .doc(path)?
            .with_context(|| format!("{node} did not store {path}"))?;
        if doc.get_heads() != *heads {
            bail!("{node} stored {path} at other heads than the source's");
        }
    }
    Ok(())
}

/// What syncing documents with `automerge::sync` alone, in memory, costs.
#[derive(Debug, Clone, Copy)]
pub struct AutomergeSync {
    /// Time for every document, one after the other, messages encoded and decoded.
    pub took: Duration,
    /// CPU time the process used meanwhile (the reference runs on one thread).
    pub cpu: Duration,
    /// Encoded sync message bytes, both ways.
    pub bytes: u64,
    /// Sync messages, both ways.
    pub messages: u64,
}

/// Syncs each document to an empty one with fresh `sync::State`s on both sides, exchanging
/// encoded messages until neither side has anything to send: the in-memory reference.
///
/// The senders are copies loaded from each document's saved bytes (as a node holds them after
/// loading its store); making those copies is not timed.
pub fn automerge_reference(docs: &[(DocPath, Automerge)]) -> anyhow::Result<AutomergeSync> {
    let mut senders = Vec::with_capacity(docs.len());
    for (path, doc) in docs {
        senders
            .push(Automerge::load(&doc.save()).with_context(|| format!("cannot reload {path}"))?);
    }
    let mut bytes = 0u64;
    let mut messages = 0u64;
    let started = Instant::now();
    let cpu_before = process_cpu();
    let mut receivers = Vec::with_capacity(docs.len());
    for sender in &mut senders {
        let mut receiver = Automerge::new();
        let (mut sender_state, mut receiver_state) = (State::new(), State::new());
        loop {
            let mut progressed = false;
            if let Some(message) = sender.generate_sync_message(&mut sender_state) {
                let encoded = message.encode();
                bytes += encoded.len() as u64;
                messages += 1;
                receiver.receive_sync_message(&mut receiver_state, Message::decode(&encoded)?)?;
                progressed = true;
            }
            if let Some(message) = receiver.generate_sync_message(&mut receiver_state) {
                let encoded = message.encode();
                bytes += encoded.len() as u64;
                messages += 1;
                sender.receive_sync_message(&mut sender_state, Message::decode(&encoded)?)?;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        receivers.push(receiver);
    }
    let took = started.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_before);
    for ((path, doc), receiver) in docs.iter().zip(&receivers) {
        if receiver.get_heads() != doc.get_heads() {
            bail!("automerge::sync left {path} incomplete");
        }
    }
    Ok(AutomergeSync {
        took,
        cpu,
        bytes,
        messages,
    })
}

/// What syncing with fresh sync states costs when both sides already hold the same
/// documents: the Bloom filters automerge sends on every reconnect without persisted state.
pub fn fresh_state_reconnect_bytes(docs: &[(DocPath, Automerge)]) -> anyhow::Result<u64> {
    let mut bytes = 0u64;
    for (_, doc) in docs {
        let mut a = doc.clone();
        let mut b = doc.clone();
        let (mut sa, mut sb) = (State::new(), State::new());
        loop {
            let mut progressed = false;
            if let Some(message) = a.generate_sync_message(&mut sa) {
                let encoded = message.encode();
                bytes += encoded.len() as u64;
                b.receive_sync_message(&mut sb, Message::decode(&encoded)?)?;
                progressed = true;
            }
            if let Some(message) = b.generate_sync_message(&mut sb) {
                let encoded = message.encode();
                bytes += encoded.len() as u64;
                a.receive_sync_message(&mut sa, Message::decode(&encoded)?)?;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
    }
    Ok(bytes)
}

/// User plus system CPU time of this process, all threads, from `/proc/self/stat` (in
/// clock ticks of 10 ms, Linux's fixed `USER_HZ` for this file); zero where unavailable.
/// On a shared machine wall time depends on what else runs; CPU time much less so.
pub fn process_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // The command name (field 2) is in parentheses and may hold spaces: count after it.
    let Some(after_name) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return Duration::ZERO;
    };
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line: indices 11 and 12 after the name.
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

/// The machine's load average (1, 5, 15 minutes), to print beside noisy figures.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}
