//! The inventory phase: which shared documents differ, reconciled by range summaries.

use super::*;

impl SyncSession {
    pub(super) fn start_inventory(&mut self, docs: &mut dyn DocumentSet) {
        let local = &self.config.local.scopes;
        let peer = &self.peer.scopes;
        let mut items = docs.inventory_items(&|path| is_shared(local, peer, path));
        // Checked again here: whatever the node's listing does, nothing outside the shared
        // set may reach the peer, not even as a share of a fingerprint.
        items.retain(|(path, _)| is_shared(local, peer, path));
        let snapshot = InventorySnapshot::from_items(items);
        self.queue(&Frame::Inventory(vec![snapshot.root_part()]));
        self.inventory = InventoryPhase::Running {
            snapshot,
            root_received: false,
        };
    }

    pub(super) fn handle_inventory(
        &mut self,
        parts: Vec<crate::frame::RangePart>,
        docs: &mut dyn DocumentSet,
    ) -> Result<(), SessionError> {
        let InventoryPhase::Running {
            snapshot,
            root_received,
        } = &mut self.inventory
        else {
            return Err(SessionError::ProtocolViolation(
                "inventory frame after the inventory ended",
            ));
        };
        self.inventory_rounds += 1;
        if self.inventory_rounds > self.config.limits.max_inventory_rounds {
            return Err(SessionError::ProtocolViolation(
                "inventory takes too many rounds",
            ));
        }
        if parts.iter().any(|p| !p.range.is_well_formed()) {
            return Err(SessionError::ProtocolViolation(
                "inventory range with lower >= upper",
            ));
        }
        let local = &self.config.local.scopes;
        let peer = &self.peer.scopes;
        let shared = |p: &DocPath| is_shared(local, peer, p);
        let mut outcome = TurnOutcome::default();
        let finished;
        if !*root_received {
            *root_received = true;
            let [root] = parts.as_slice() else {
                return Err(SessionError::ProtocolViolation(
                    "inventory must open with one root part",
                ));
            };
            if root.range.lower.is_some()
                || root.range.upper.is_some()
                || !matches!(root.summary, RangeSummary::Fingerprint(_))
            {
                return Err(SessionError::ProtocolViolation(
                    "inventory root is not a whole-set fingerprint",
                ));
            }
            let leader = self.config.local.node_id < self.peer.node_id;
            let RangeSummary::Fingerprint(theirs) = &root.summary else {
                return Err(SessionError::ProtocolViolation(
                    "inventory root is not a fingerprint",
                ));
            };
            if snapshot.fingerprint(&root.range) == *theirs {
                finished = true;
            } else if leader {
                snapshot.answer(root, &shared, &mut outcome);
                self.queue_inventory_turn(outcome.replies)?;
                finished = false;
            } else {
                finished = false;
            }
        } else if parts.is_empty() {
            finished = true;
        } else {
            for part in &parts {
                snapshot.answer(part, &shared, &mut outcome);
            }
            finished = outcome.replies.is_empty();
            self.queue_inventory_turn(outcome.replies)?;
        }
        self.inventory_differing += outcome.differing.len();
        for path in outcome.differing {
            if self.is_started(&path) {
                self.mark_dirty(path);
            } else {
                self.enqueue(path, docs)?;
            }
        }
        if finished {
            self.inventory = InventoryPhase::Done;
            tracing::debug!(peer = %self.peer.node_id, differing = self.inventory_differing, rounds = self.inventory_rounds, "inventory done");
            self.events.push_back(SessionEvent::InventoryDone {
                differing: self.inventory_differing,
                rounds: self.inventory_rounds,
            });
        }
        Ok(())
    }

    pub(super) fn queue_inventory_turn(
        &mut self,
        replies: Vec<crate::frame::RangePart>,
    ) -> Result<(), SessionError> {
        if replies.len() > crate::frame::MAX_INVENTORY_PARTS {
            return Err(SessionError::ProtocolViolation(
                "inventory turn would exceed the part limit",
            ));
        }
        if self.queue(&Frame::Inventory(replies)) {
            Ok(())
        } else {
            Err(SessionError::ProtocolViolation(
                "inventory turn would exceed the frame limit",
            ))
        }
    }
}
