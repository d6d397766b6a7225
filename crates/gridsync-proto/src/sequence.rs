//! Sequence numbers of received changes, checked against the document before automerge
//! applies them.
//!
//! automerge 0.12 refuses a change that repeats an actor's sequence number
//! (`DuplicateSeqNumber`, before applying anything of the message), but it asserts rather than
//! checks that a change it applies is its actor's next one: a change skipping sequence numbers
//! (or carrying an author on a change other than its actor's first) panics the node inside
//! `receive_sync_message`. This check refuses such a message first. Every change that is not
//! its actor's first must have its actor's previous change among its ancestors, in the
//! document already or in the same message. That is what automerge itself produces (a
//! transaction depends on the heads it saw, which include its own actor's last change), and
//! it ensures that automerge applies each actor's changes in sequence, whatever order it
//! releases them in, including changes it holds back until their dependencies arrive.

use std::collections::{HashMap, HashSet};

use automerge::sync::Message;
use automerge::{ActorId, Automerge, Change, ChangeHash};

use crate::frame::RefusalReason;

/// Chunk types that hold one change (uncompressed, compressed); documents are checked by
/// automerge when it loads them.
const CHANGE_CHUNKS: [u8; 2] = [1, 2];

/// Refuses `message` as malformed if applying it to `doc` (`None`: not held) would apply a
/// change out of its actor's sequence. Runs after [`crate::authorize::inspect_changes`], so
/// every chunk already parsed and its compressed parts were bounded.
pub fn check_sequences(doc: Option<&Automerge>, message: &Message) -> Result<(), RefusalReason> {
    let mut incoming: HashMap<ChangeHash, Change> = HashMap::new();
    for chunk in message.changes.iter() {
        for part in crate::authorize::storage_chunks(chunk).ok_or(RefusalReason::Malformed)? {
            if !CHANGE_CHUNKS.contains(&part.kind) {
                continue;
            }
            let change = crate::apply::parse_change(part.bytes).ok_or(RefusalReason::Malformed)?;
            if doc.is_some_and(|d| d.get_change_meta_by_hash(&change.hash()).is_some()) {
                continue; // Held already: automerge skips it.
            }
            incoming.insert(change.hash(), change);
        }
    }
    // The highest sequence number of each actor in the document, computed at most once.
    let mut held: Option<HashMap<ActorId, u64>> = None;
    for change in incoming.values() {
        let seq = change.seq();
        if seq == 0 || (change.author().is_some() && seq != 1) {
            return Err(RefusalReason::Malformed);
        }
        if seq == 1 || has_previous_in(&incoming, change) {
            continue;
        }
        let held = held.get_or_insert_with(|| held_sequences(doc));
        if held.get(change.actor_id()).copied().unwrap_or(0) < seq - 1
            && !waits_for_a_missing_change(doc, &incoming, change)
        {
            return Err(RefusalReason::Malformed);
        }
    }
    Ok(())
}

/// Whether the change before `change` in its actor's sequence is among its ancestors within
/// `incoming`. Ancestors outside `incoming` are held by the document, and a held change's
/// ancestors are all held, so the walk stays within the message.
/// Whether `change` depends, through the message's changes, on a change neither held nor in
/// the message: automerge then holds it back until that change arrives, and its predecessor
/// may well be among the changes it waits for (a change held back from an earlier message,
/// which `held_sequences` cannot see). Such a change is left to automerge's queue.
fn waits_for_a_missing_change(
    doc: Option<&Automerge>,
    incoming: &HashMap<ChangeHash, Change>,
    change: &Change,
) -> bool {
    let mut seen = HashSet::new();
    let mut stack: Vec<&ChangeHash> = change.deps().iter().collect();
    while let Some(hash) = stack.pop() {
        if !seen.insert(hash) {
            continue;
        }
        match incoming.get(hash) {
            Some(ancestor) => stack.extend(ancestor.deps()),
            None => {
                if doc.is_none_or(|d| d.get_change_meta_by_hash(hash).is_none()) {
                    return true;
                }
            }
        }
    }
    false
}

fn has_previous_in(incoming: &HashMap<ChangeHash, Change>, change: &Change) -> bool {
    let (actor, previous) = (change.actor_id(), change.seq() - 1);
    let mut seen = HashSet::new();
    let mut stack: Vec<&ChangeHash> = change.deps().iter().collect();
    while let Some(hash) = stack.pop() {
        if !seen.insert(hash) {
            continue;
        }
        let Some(ancestor) = incoming.get(hash) else {
            continue;
        };
        if ancestor.actor_id() == actor && ancestor.seq() == previous {
            return true;
        }
        stack.extend(ancestor.deps());
    }
    false
}

fn held_sequences(doc: Option<&Automerge>) -> HashMap<ActorId, u64> {
    let mut held = HashMap::new();
    for meta in doc.map(|d| d.get_changes_meta(&[])).unwrap_or_default() {
        let seq = held.entry(meta.actor.into_owned()).or_insert(0);
        *seq = meta.seq.max(*seq);
    }
    held
}
