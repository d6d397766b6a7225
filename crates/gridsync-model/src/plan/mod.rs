//! The street plan: which households exist and where they live.
//!
//! The office imports a CSV ([`parse_csv`]; [`PlanCsv`] writes one) and applies it to the plan document
//! ([`apply_import`]); every node reads the document back into a [`StreetPlan`] lookup
//! ([`read_plan`]) that validates field writes and shapes the views.

mod csv;
mod csv_writer;
mod time_zone;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use automerge::transaction::{CommitOptions, Transactable};
use automerge::{
    Automerge, AutomergeError, ChangeHash, ObjId, ObjType, ReadDoc, ScalarValue, Value, ValueRef,
};

pub use self::csv::{
    CSV_HEADER, MAX_INPUT_BYTES, MAX_ROWS, PlanImportError, RowProblem, parse_csv,
};
pub use self::csv_writer::{PlanCsv, PlanRow};
pub use self::time_zone::{
    DEFAULT_UTC_OFFSET_MINUTES, MAX_UTC_OFFSET_MINUTES, MIN_UTC_OFFSET_MINUTES, UTC_OFFSET_KEY,
    UtcOffsetError, check_utc_offset, format_utc_offset, parse_utc_offset, read_utc_offset,
    set_utc_offset,
};
use crate::check::{self, FieldProblem};
use crate::codec::Fields;
use crate::read::top_map;
use crate::vocab::Zone;

/// Top-level map of communities: `{community}` -> `{id}`.
pub const COMMUNITIES: &str = "communities";
/// Top-level map of micro-grids: `{grid}` -> `{community}`.
pub const GRIDS: &str = "grids";
/// Top-level map of buildings: `{building}` -> `{grid, community}`.
pub const BUILDINGS: &str = "buildings";
/// Top-level map of units (stairwells): `{building}/{unit}` -> `{building, unit}`.
pub const UNITS: &str = "units";
/// Top-level map of households: `{household}` ->
/// `{community, grid, building, unit, door, residents, zone}`.
pub const HOUSEHOLDS: &str = "households";

/// Longest door label, in characters.
pub const MAX_DOOR_CHARS: usize = 64;
/// Most residents one household may list.
pub const MAX_RESIDENTS: u32 = 100;

/// One household of the plan, with its whole place in the hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Household {
    /// Street-wide unique household id.
    pub id: String,
    /// Community the building belongs to.
    pub community: String,
    /// Micro-grid the building belongs to.
    pub grid: String,
    /// Street-wide unique building id.
    pub building: String,
    /// Unit (stairwell) id within the building.
    pub unit: String,
    /// Address or door label, free text.
    pub door: String,
    /// Registered residents.
    pub residents: u32,
    /// Control zone.
    pub zone: Zone,
}

/// A parsed, fully checked plan file, ready to apply.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PlanImport {
    /// Households in file order.
    pub households: Vec<Household>,
}

/// A building's place in the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Building {
    /// Micro-grid (the second segment of the building document's path).
    pub grid: String,
    /// Community.
    pub community: String,
    /// Household ids in this building, sorted.
    pub households: Vec<String>,
    /// Unit ids in this building, sorted.
    pub units: BTreeSet<String>,
}

/// Lookup structure over a street's households (hash lookups, so 18,563 households are cheap).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreetPlan {
    households: HashMap<String, Household>,
    buildings: BTreeMap<String, Building>,
    /// The street's time zone, minutes east of UTC, if the plan names one ([`set_utc_offset`]).
    utc_offset_minutes: Option<i32>,
}

impl StreetPlan {
    /// Builds the lookup from households; a later duplicate id replaces an earlier one.
    pub fn from_households(households: impl IntoIterator<Item = Household>) -> Self {
        let mut by_id: HashMap<String, Household> = HashMap::new();
        for h in households {
            by_id.insert(h.id.clone(), h);
        }
        let mut buildings: BTreeMap<String, Building> = BTreeMap::new();
        for h in by_id.values() {
            let b = buildings
                .entry(h.building.clone())
                .or_insert_with(|| Building {
                    grid: h.grid.clone(),
                    community: h.community.clone(),
                    households: Vec::new(),
                    units: BTreeSet::new(),
                });
            b.households.push(h.id.clone());
            b.units.insert(h.unit.clone());
        }
        for b in buildings.values_mut() {
            b.households.sort();
        }
        StreetPlan {
            households: by_id,
            buildings,
            utc_offset_minutes: None,
        }
    }

    /// The street's time zone, minutes east of UTC, as the plan names it (`None`: it does not;
    /// readers then use [`DEFAULT_UTC_OFFSET_MINUTES`] or their own setting).
    pub fn utc_offset_minutes(&self) -> Option<i32> {
        self.utc_offset_minutes
    }

    /// The same plan with the street's time zone set to `minutes` (checked by the caller).
    pub fn with_utc_offset_minutes(mut self, minutes: Option<i32>) -> Self {
        self.utc_offset_minutes = minutes;
        self
    }

    /// The plan an import describes (what the document holds after applying it to an empty plan).
    pub fn from_import(import: &PlanImport) -> Self {
        Self::from_households(import.households.iter().cloned())
    }

    /// Looks a household up by id.
    pub fn household(&self, id: &str) -> Option<&Household> {
        self.households.get(id)
    }

    /// Looks a building up by id.
    pub fn building(&self, id: &str) -> Option<&Building> {
        self.buildings.get(id)
    }

    /// All buildings, by id.
    pub fn buildings(&self) -> impl Iterator<Item = (&str, &Building)> {
        self.buildings.iter().map(|(id, b)| (id.as_str(), b))
    }

    /// Number of households.
    pub fn household_count(&self) -> usize {
        self.households.len()
    }
}

/// A plan entry that does not parse: skipped, and reported here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MalformedPlanEntry {
    /// Its key in the households map (truncated to 80 characters).
    pub key: String,
    /// What is wrong with it.
    pub problem: String,
}

/// Why an import could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum PlanApplyError {
    #[error("document has no top-level map {0:?}; is it a street plan document?")]
    NotAPlanDocument(&'static str),
    #[error("automerge refused the write: {0}")]
    Automerge(#[from] AutomergeError),
    #[error(transparent)]
    UtcOffset(#[from] UtcOffsetError),
}

/// The entry `key` of `map`, created only if absent. The plan is written by the office alone,
/// so two concurrent creations of one entry do not happen in practice; were they to, both
/// carry the same fields from the same import and either winner reads the same.
fn entry_map<T: Transactable>(tx: &mut T, map: &ObjId, key: &str) -> Result<ObjId, AutomergeError> {
    match tx.get(map, key)? {
        Some((Value::Object(ObjType::Map), id)) => Ok(id),
        _ => tx.put_object(map, key, ObjType::Map),
    }
}

/// Writes `value` under `key` unless it is already there, so re-imports add no operations.
fn put_if_changed<T: Transactable, V: Into<ScalarValue>>(
    tx: &mut T,
    obj: &ObjId,
    key: &str,
    value: V,
) -> Result<(), AutomergeError> {
    let value = value.into();
    if let Some((Value::Scalar(old), _)) = tx.get(obj, key)?
        && old.as_ref() == &value
    {
        return Ok(());
    }
    tx.put(obj, key, value)
}

/// Applies an import to a plan document in one change (time `now_ms`). Entries are added or
/// updated in place, never removed. Returns the change hash, or `None` if nothing changed.
pub fn apply_import(
    doc: &mut Automerge,
    import: &PlanImport,
    now_ms: i64,
) -> Result<Option<ChangeHash>, PlanApplyError> {
    let mut maps = Vec::new();
    for name in [COMMUNITIES, GRIDS, BUILDINGS, UNITS, HOUSEHOLDS] {
        maps.push(top_map(doc, name).ok_or(PlanApplyError::NotAPlanDocument(name))?);
    }
    let [communities, grids, buildings, units, households] = &maps[..] else {
        return Err(PlanApplyError::NotAPlanDocument(HOUSEHOLDS));
    };
    let result = doc.transact_with(
        |_| CommitOptions::default().with_time(now_ms),
        |tx| -> Result<(), AutomergeError> {
            for h in &import.households {
                let c = entry_map(tx, communities, &h.community)?;
                put_if_changed(tx, &c, "id", h.community.as_str())?;
                let g = entry_map(tx, grids, &h.grid)?;
                put_if_changed(tx, &g, "community", h.community.as_str())?;
                let b = entry_map(tx, buildings, &h.building)?;
                put_if_changed(tx, &b, "grid", h.grid.as_str())?;
                put_if_changed(tx, &b, "community", h.community.as_str())?;
                let u = entry_map(tx, units, &format!("{}/{}", h.building, h.unit))?;
                put_if_changed(tx, &u, "building", h.building.as_str())?;
                put_if_changed(tx, &u, "unit", h.unit.as_str())?;
                let o = entry_map(tx, households, &h.id)?;
                put_if_changed(tx, &o, "community", h.community.as_str())?;
                put_if_changed(tx, &o, "grid", h.grid.as_str())?;
                put_if_changed(tx, &o, "building", h.building.as_str())?;
                put_if_changed(tx, &o, "unit", h.unit.as_str())?;
                put_if_changed(tx, &o, "door", h.door.as_str())?;
                put_if_changed(tx, &o, "residents", u64::from(h.residents))?;
                put_if_changed(tx, &o, "zone", h.zone.as_str())?;
            }
            Ok(())
        },
    );
    match result {
        Ok(success) => Ok(success.hash),
        Err(failure) => Err(failure.error.into()),
    }
}

fn read_household(fields: &Fields<'_>, id: &str) -> Result<Household, FieldProblem> {
    check::segment_id("household", id)?;
    let residents = fields.u32("residents", "residents")?;
    if residents > MAX_RESIDENTS {
        return Err(FieldProblem::WrongType("residents"));
    }
    let h = Household {
        id: id.to_owned(),
        community: fields.str("community", "community")?,
        grid: fields.str("grid", "grid")?,
        building: fields.str("building", "building")?,
        unit: fields.str("unit", "unit")?,
        door: fields.str("door", "door")?,
        residents,
        zone: fields.str("zone", "zone")?.parse()?,
    };
    for (field, value) in [
        ("community", &h.community),
        ("grid", &h.grid),
        ("building", &h.building),
        ("unit", &h.unit),
    ] {
        check::segment_id(field, value)?;
    }
    check::short_text("door", &h.door, MAX_DOOR_CHARS, true)?;
    Ok(h)
}

/// Reads the plan document into a lookup; entries that do not parse are skipped and returned.
pub fn read_plan<R: ReadDoc>(doc: &R) -> (StreetPlan, Vec<MalformedPlanEntry>) {
    let mut households = Vec::new();
    let mut malformed = Vec::new();
    let Some(map) = top_map(doc, HOUSEHOLDS) else {
        malformed.push(MalformedPlanEntry {
            key: HOUSEHOLDS.to_owned(),
            problem: "top-level map is missing or not a map".to_owned(),
        });
        return (StreetPlan::default(), malformed);
    };
    // One pass over the households and one over each household's fields: 180,000 households
    // read field by field with `get` would search the document's op columns 1.3 million times.
    for item in doc.map_range(&map, ..) {
        let obj = item.id();
        let key = item.key;
        let parsed = match item.value {
            ValueRef::Object(ObjType::Map) => Fields::read(doc, &obj)
                .and_then(|fields| read_household(&fields, &key))
                .map_err(|e| e.to_string()),
            _ => Err("entry is not a map".to_owned()),
        };
        match parsed {
            Ok(h) => households.push(h),
            Err(problem) => malformed.push(MalformedPlanEntry {
                key: key.chars().take(80).collect(),
                problem,
            }),
        }
    }
    let utc_offset_minutes = match read_utc_offset(doc) {
        Ok(minutes) => minutes,
        Err(problem) => {
            malformed.push(MalformedPlanEntry {
                key: UTC_OFFSET_KEY.to_owned(),
                problem,
            });
            None
        }
    };
    (
        StreetPlan::from_households(households).with_utc_offset_minutes(utc_offset_minutes),
        malformed,
    )
}
