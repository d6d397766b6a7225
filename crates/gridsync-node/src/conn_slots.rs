//! Connection caps: at most so many links per peer (certificate) and in total.
//!
//! Every link holds a slot from [`ConnectionSlots`] for its whole life; the slot is given
//! back when its [`ConnectionSlot`] is dropped, whichever way the connection ends. A link
//! past a cap is refused before its session starts (no hello, no inventory), so it costs the
//! node one QUIC handshake and nothing else, and the links already open are not touched.
//!
//! Why both caps: one enrolled device (or a stolen certificate) can open connections as
//! fast as it can handshake, and each session holds buffers and a share of the replica
//! lock; the per-peer cap keeps one certificate from using the node's capacity, and the
//! total cap bounds the node's memory whatever the number of certificates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use gridsync_proto::NodeId;

/// Why a link was refused a slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotRefused {
    #[error("too many connections from this device (at most {cap} at once)")]
    PerPeer { cap: usize },
    #[error("too many connections to this node (at most {cap} at once)")]
    Total { cap: usize },
}

#[derive(Debug, Default)]
struct Counts {
    per_peer: HashMap<NodeId, usize>,
    total: usize,
}

/// The node's connection counts, shared by every connection task.
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    inner: Arc<SlotsInner>,
}

#[derive(Debug)]
struct SlotsInner {
    per_peer_cap: usize,
    total_cap: usize,
    counts: Mutex<Counts>,
}

impl SlotsInner {
    fn counts(&self) -> MutexGuard<'_, Counts> {
        // Counting cannot leave the map inconsistent mid-update (no panic between the two
        // updates), so a poisoned lock's data is still right.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl ConnectionSlots {
    /// Caps of `per_peer` links per node id and `total` links in all (each at least 1).
    pub fn new(per_peer: usize, total: usize) -> ConnectionSlots {
        ConnectionSlots {
            inner: Arc::new(SlotsInner {
                per_peer_cap: per_peer.max(1),
                total_cap: total.max(1),
                counts: Mutex::new(Counts::default()),
            }),
        }
    }

    /// Takes a slot for a link to `peer`, or says which cap it would break. The total cap is
    /// checked first: when the node is full, that is the reason whoever is refused should see.
    pub fn try_acquire(&self, peer: &NodeId) -> Result<ConnectionSlot, SlotRefused> {
        let mut counts = self.inner.counts();
        if counts.total >= self.inner.total_cap {
            return Err(SlotRefused::Total {
                cap: self.inner.total_cap,
            });
        }
        let for_peer = counts.per_peer.entry(peer.clone()).or_insert(0);
        if *for_peer >= self.inner.per_peer_cap {
            return Err(SlotRefused::PerPeer {
                cap: self.inner.per_peer_cap,
            });
        }
        *for_peer += 1;
        counts.total += 1;
        Ok(ConnectionSlot {
            inner: self.inner.clone(),
            peer: peer.clone(),
        })
    }

    /// Links open now, in total.
    pub fn total(&self) -> usize {
        self.inner.counts().total
    }

    /// Links open now to `peer`.
    pub fn for_peer(&self, peer: &NodeId) -> usize {
        self.inner.counts().per_peer.get(peer).copied().unwrap_or(0)
    }
}

/// One link's slot; given back on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    inner: Arc<SlotsInner>,
    peer: NodeId,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut counts = self.inner.counts();
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_peer.get_mut(&self.peer) {
            *n = n.saturating_sub(1);
            // Forget peers with no link, so the map holds only connected peers.
            if *n == 0 {
                counts.per_peer.remove(&self.peer);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> NodeId {
        // Invariant: the test ids are valid node ids.
        NodeId::parse(s).expect("valid test node id")
    }

    #[test]
    fn a_peer_gets_at_most_its_cap_and_a_slot_comes_back_on_drop() {
        let slots = ConnectionSlots::new(2, 10);
        let a = id("vol-a");
        let first = slots.try_acquire(&a).expect("first");
        let _second = slots.try_acquire(&a).expect("second");
        assert_eq!(
            slots.try_acquire(&a).err(),
            Some(SlotRefused::PerPeer { cap: 2 })
        );
        // Another peer is not affected by a's cap.
        let _b = slots.try_acquire(&id("vol-b")).expect("another peer");
        assert_eq!(slots.for_peer(&a), 2);
        assert_eq!(slots.total(), 3);
        drop(first);
        assert_eq!(slots.for_peer(&a), 1);
        let _third = slots.try_acquire(&a).expect("a slot came back");
    }

    #[test]
    fn the_total_cap_holds_across_peers_and_is_reported_first() {
        let slots = ConnectionSlots::new(1, 3);
        let held: Vec<_> = ["a", "b", "c"]
            .iter()
            .map(|p| slots.try_acquire(&id(p)).expect("under the total cap"))
            .collect();
        assert_eq!(
            slots.try_acquire(&id("d")).err(),
            Some(SlotRefused::Total { cap: 3 })
        );
        // At both caps at once, the total is what the refused link hears.
        assert_eq!(
            slots.try_acquire(&id("a")).err(),
            Some(SlotRefused::Total { cap: 3 })
        );
        drop(held);
        assert_eq!(slots.total(), 0);
        assert_eq!(slots.for_peer(&id("a")), 0);
        let _d = slots.try_acquire(&id("d")).expect("room again");
    }

    #[test]
    fn zero_caps_are_taken_as_one() {
        let slots = ConnectionSlots::new(0, 0);
        let _one = slots.try_acquire(&id("a")).expect("one link always fits");
        assert!(slots.try_acquire(&id("b")).is_err());
    }
}
