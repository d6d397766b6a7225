//! The street plan as the office last read it, kept in the store so that a restart does not
//! load and parse the plan document (180,000 households take seconds to load with automerge
//! and read; their stored form decodes in a fraction of that).
//!
//! Like the building summaries (see [`crate::stored`]), the stored plan is keyed by a digest
//! of what it was read from: the plan document's heads and [`PLAN_FORMAT`]. A plan read from
//! the document and one decoded from the store under the same key are equal, because the plan
//! is rebuilt with [`StreetPlan::from_households`] from exactly the households the document
//! gave. A value that does not decode is ignored and the document read again.
//!
//! Encoding: JSON `[households, utc_offset_minutes]`: one array per household (`[id,
//! community, grid, building, unit, door, residents, zone]`), in building then household
//! order, and the street's time zone or `null`.

use std::collections::BTreeSet;

use automerge::ChangeHash;
use gridsync_model::{Household, StreetPlan, Zone};
use sha2::{Digest, Sha256};

/// The `kind` of the stored street plan in the store's `derived` table.
pub const PLAN_KIND: &str = "office.street-plan/1";

/// Version of how a stored plan is encoded; part of every plan key.
pub const PLAN_FORMAT: u32 = 2;

/// The key of the plan read from a plan document with heads `plan_heads` (in any order).
pub fn plan_key(plan_heads: &[ChangeHash]) -> [u8; 32] {
    let heads: BTreeSet<&ChangeHash> = plan_heads.iter().collect();
    let mut hash = Sha256::new();
    hash.update(b"gridsync-office street plan\0");
    hash.update(PLAN_FORMAT.to_be_bytes());
    hash.update((heads.len() as u64).to_be_bytes());
    for head in heads {
        hash.update(head.0);
    }
    hash.finalize().into()
}

/// One household as stored.
type StoredHousehold = (String, String, String, String, String, String, u32, String);

/// The stored form of `plan`.
pub fn encode_plan(plan: &StreetPlan) -> Vec<u8> {
    let households: Vec<StoredHousehold> = plan
        .buildings()
        .flat_map(|(_, building)| &building.households)
        .filter_map(|id| plan.household(id))
        .map(|h| {
            (
                h.id.clone(),
                h.community.clone(),
                h.grid.clone(),
                h.building.clone(),
                h.unit.clone(),
                h.door.clone(),
                h.residents,
                h.zone.as_str().to_owned(),
            )
        })
        .collect();
    // Invariant: strings and integers always serialize into memory.
    serde_json::to_vec(&(households, plan.utc_offset_minutes())).expect("a plan serializes to JSON")
}

/// Why a stored plan cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StoredPlanError {
    #[error("stored plan does not decode")]
    Decode(#[source] serde_json::Error),
    #[error("stored plan names an unknown zone {0:?}")]
    UnknownZone(String),
    #[error("stored plan names no time zone a street can have")]
    UtcOffset(#[source] gridsync_model::UtcOffsetError),
}

/// The plan stored as `bytes`.
pub fn decode_plan(bytes: &[u8]) -> Result<StreetPlan, StoredPlanError> {
    let (households, utc_offset_minutes): (Vec<StoredHousehold>, Option<i32>) =
        serde_json::from_slice(bytes).map_err(StoredPlanError::Decode)?;
    let utc_offset_minutes = utc_offset_minutes
        .map(|minutes| gridsync_model::plan::check_utc_offset(i64::from(minutes)))
        .transpose()
        .map_err(StoredPlanError::UtcOffset)?;
    let households = households
        .into_iter()
        .map(
            |(id, community, grid, building, unit, door, residents, zone)| {
                let zone = zone
                    .parse::<Zone>()
                    .map_err(|_| StoredPlanError::UnknownZone(zone.chars().take(40).collect()))?;
                Ok(Household {
                    id,
                    community,
                    grid,
                    building,
                    unit,
                    door,
                    residents,
                    zone,
                })
            },
        )
        .collect::<Result<Vec<Household>, StoredPlanError>>()?;
    Ok(StreetPlan::from_households(households).with_utc_offset_minutes(utc_offset_minutes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn household(id: &str, building: &str, unit: &str, zone: Zone) -> Household {
        Household {
            id: id.into(),
            community: "c-1".into(),
            grid: "grid-001".into(),
            building: building.into(),
            unit: unit.into(),
            door: format!("door of {id}"),
            residents: 3,
            zone,
        }
    }

    #[test]
    fn a_plan_decodes_to_exactly_what_was_encoded() {
        let plan = StreetPlan::from_households([
            household("h-2", "b-1", "u1", Zone::Lockdown),
            household("h-1", "b-1", "u2", Zone::Control),
            household("h-3", "b-2", "u1", Zone::Prevention),
        ])
        .with_utc_offset_minutes(Some(330));
        let bytes = encode_plan(&plan);
        assert_eq!(decode_plan(&bytes).expect("decodes"), plan);
        assert_eq!(
            decode_plan(&encode_plan(&StreetPlan::default())).expect("decodes"),
            StreetPlan::default()
        );
        let text = String::from_utf8(bytes).expect("JSON is UTF-8");
        let tampered = text.replace("\"control\"", "\"curfew\"");
        assert!(matches!(
            decode_plan(tampered.as_bytes()),
            Err(StoredPlanError::UnknownZone(_))
        ));
        assert!(matches!(
            decode_plan(b"[[[\"h-1\"]], null]"),
            Err(StoredPlanError::Decode(_))
        ));
        assert!(matches!(
            decode_plan(b"[[], 100000]"),
            Err(StoredPlanError::UtcOffset(_))
        ));
    }

    #[test]
    fn the_plan_key_ignores_head_order_and_follows_the_heads() {
        let (a, b) = (ChangeHash([1; 32]), ChangeHash([2; 32]));
        assert_eq!(plan_key(&[a, b]), plan_key(&[b, a]));
        assert_ne!(plan_key(&[a, b]), plan_key(&[a]));
        assert_ne!(plan_key(&[]), plan_key(&[a]));
    }
}
