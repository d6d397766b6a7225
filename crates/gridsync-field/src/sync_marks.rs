//! Per-record sync markers: whether a record is only on this device, has reached a captain,
//! or has reached the office. Read from what peers have acknowledged (the heads each shares
//! with this node, from the stored sync states: `Replica::acknowledged`), and a record counts
//! as reached only if it is in the document as it stood at those heads. Nothing is guessed
//! from a connection having been open.
//!
//! What this node cannot know: a record that reached the office through a captain shows
//! "reached the captain" until this device meets the office (or a node that has), because
//! acknowledgements are pairwise.

use std::collections::BTreeMap;

use automerge::{Automerge, ChangeHash};
use gridsync_model::{RecordId, RecordKind};
use gridsync_node::Replica;
use gridsync_proto::{DocPath, NodeId, Role};
use serde::Serialize;

/// How far a record has travelled, as far as this device knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncLevel {
    /// No peer has acknowledged it.
    Device,
    /// A captain (or a relay) acknowledged it.
    Captain,
    /// The office acknowledged it.
    Office,
}

/// The acknowledged heads of one document, by the level reaching them means.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DocMarks {
    by_level: Vec<(SyncLevel, Vec<ChangeHash>)>,
}

impl DocMarks {
    /// Reads every peer's acknowledgement of `path`. `roles` names peers the directory does
    /// not (the node's peer table, from their certificates).
    pub fn read(
        replica: &mut Replica,
        path: &DocPath,
        roles: &BTreeMap<NodeId, Role>,
    ) -> Result<Self, crate::views::ViewError> {
        let mut by_level = Vec::new();
        for ack in replica.acknowledged(path)? {
            let role = ack.role.or_else(|| roles.get(&ack.peer).copied());
            let level = match role {
                Some(Role::Office) => SyncLevel::Office,
                Some(Role::Captain | Role::Relay) => SyncLevel::Captain,
                _ => continue,
            };
            by_level.push((level, ack.heads));
        }
        // Office first: the highest level reached wins.
        by_level.sort_by_key(|(level, _)| std::cmp::Reverse(*level));
        Ok(DocMarks { by_level })
    }

    /// The level record `id` (of `kind`) in `doc` has reached.
    pub fn level(&self, doc: &Automerge, kind: RecordKind, id: &RecordId) -> SyncLevel {
        self.by_level
            .iter()
            .find(|(_, heads)| gridsync_model::read::record_present_at(doc, kind, id, heads))
            .map_or(SyncLevel::Device, |(level, _)| *level)
    }
}
