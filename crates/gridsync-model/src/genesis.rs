//! Document skeletons, paths and actor ids.
//!
//! Two offline devices that each create "the same" nested map create two different automerge
//! objects, and after a merge one silently hides the other. So no device ever creates a
//! document's skeleton on its own: every skeleton comes from [`genesis`], one change made by a
//! fixed actor (16 zero bytes) at time 0 with the same operations in the same order. Every node
//! produces it byte-identically, so it has the same hash everywhere and merges as one change.

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{ActorId, Automerge, ObjType, ROOT};
use gridsync_proto::{DocPath, NodeId, PathError, path::validate_segment};

/// Version of the document layout written by [`genesis`] into the root key `schema`.
pub const SCHEMA_VERSION: u64 = 1;

/// Last segment of the street plan document's path.
pub const PLAN_SEGMENT: &str = "plan";

/// Which kind of document a skeleton is for; the genesis change depends only on this.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DocKind {
    /// `{street}/plan`: communities, grids, buildings, units and households.
    StreetPlan,
    /// `{street}/{grid}/{building}`: visits, delivery events, sweeps and corrections.
    Building,
}

impl DocKind {
    /// The value of the root key `kind`, so a reader can tell documents apart.
    pub fn as_str(self) -> &'static str {
        match self {
            DocKind::StreetPlan => "street-plan",
            DocKind::Building => "building",
        }
    }

    /// The top-level maps of this kind, in the order genesis creates them.
    pub fn top_level_maps(self) -> &'static [&'static str] {
        match self {
            DocKind::StreetPlan => &[
                crate::plan::COMMUNITIES,
                crate::plan::GRIDS,
                crate::plan::BUILDINGS,
                crate::plan::UNITS,
                crate::plan::HOUSEHOLDS,
            ],
            DocKind::Building => &[
                crate::records::VISITS,
                crate::records::DELIVERIES,
                crate::records::SWEEPS,
                crate::records::CORRECTIONS,
            ],
        }
    }
}

/// The fixed actor of every genesis change: 16 zero bytes, never a device's actor.
pub fn genesis_actor() -> ActorId {
    ActorId::from([0u8; 16].as_slice())
}

/// Builds the deterministic skeleton of a document of `kind`.
///
/// The returned document's actor is still the genesis actor: set the device's actor
/// ([`actor_for`]) before writing, e.g. `genesis(kind).with_actor(actor_for(&node))`.
pub fn genesis(kind: DocKind) -> Automerge {
    let mut doc = Automerge::new().with_actor(genesis_actor());
    let mut tx = doc.transaction();
    // Invariant: puts of fixed keys into the root map of a fresh in-memory document succeed
    // (automerge fails a put only for a missing object or a wrong key type).
    tx.put(ROOT, "kind", kind.as_str())
        .expect("root accepts a string key");
    tx.put(ROOT, "schema", SCHEMA_VERSION)
        .expect("root accepts a string key");
    for key in kind.top_level_maps() {
        tx.put_object(ROOT, *key, ObjType::Map)
            .expect("root accepts a string key");
    }
    tx.commit_with(CommitOptions::default().with_time(0));
    doc
}

/// The automerge actor for a device: its node id's bytes, so provenance reads back.
pub fn actor_for(node: &NodeId) -> ActorId {
    ActorId::from(node.as_str().as_bytes())
}

/// The device that wrote under `actor` (a legacy or an incarnation actor, see
/// [`NodeId::from_actor`]); `None` for the genesis actor.
pub fn node_for_actor(actor: &ActorId) -> Option<NodeId> {
    NodeId::from_actor(actor)
}

/// Path of a street's plan document: `{street}/plan`.
pub fn plan_path(street: &str) -> Result<DocPath, PathError> {
    validate_segment(street)?;
    DocPath::from_segments(&[street, PLAN_SEGMENT])
}

/// Path of one building's document: `{street}/{grid}/{building}`.
pub fn building_path(street: &str, grid: &str, building: &str) -> Result<DocPath, PathError> {
    for segment in [street, grid, building] {
        validate_segment(segment)?;
    }
    DocPath::from_segments(&[street, grid, building])
}

#[cfg(test)]
mod tests {
    use super::*;
    use automerge::ReadDoc;

    #[test]
    fn genesis_is_byte_identical_across_calls() {
        for kind in [DocKind::StreetPlan, DocKind::Building] {
            let a = genesis(kind);
            let b = genesis(kind);
            assert_eq!(a.get_heads(), b.get_heads());
            assert_eq!(a.save(), b.save());
        }
        assert_ne!(
            genesis(DocKind::StreetPlan).get_heads(),
            genesis(DocKind::Building).get_heads()
        );
    }

    #[test]
    fn genesis_creates_every_top_level_map() {
        let doc = genesis(DocKind::Building);
        for key in DocKind::Building.top_level_maps() {
            let (value, _) = doc.get(ROOT, *key).ok().flatten().expect("map present");
            assert_eq!(value.to_objtype(), Some(ObjType::Map));
        }
    }

    #[test]
    fn actor_round_trips_to_node_id() {
        let node = NodeId::parse("vol-0042").expect("valid node id");
        assert_eq!(node_for_actor(&actor_for(&node)), Some(node));
        assert_eq!(node_for_actor(&genesis_actor()), None);
    }

    #[test]
    fn paths_are_validated() {
        assert_eq!(
            plan_path("panhuo").map(|p| p.to_string()),
            Ok("panhuo/plan".to_owned())
        );
        assert_eq!(
            building_path("panhuo", "grid-017", "bldg-12").map(|p| p.to_string()),
            Ok("panhuo/grid-017/bldg-12".to_owned())
        );
        assert!(building_path("panhuo", "Grid 17", "bldg-12").is_err());
        assert!(plan_path("").is_err());
    }
}
