//! gridsync-model: the street's field records on automerge documents.
//!
//! The sync engine replicates documents without knowing what is in them; this crate is what
//! is in them. It defines the document layout, validates every write, derives the merged view
//! of concurrent writes by written rules, and reads hostile or buggy documents without
//! panicking. It does no IO: the caller passes the current time (`now_ms`, unix milliseconds)
//! and mints record ids (ULIDs) itself.
//!
//! # Documents
//!
//! | path | kind | top-level keys |
//! | --- | --- | --- |
//! | `{street}/plan` ([`plan_path`]) | [`DocKind::StreetPlan`] | `kind`, `schema`, `communities`, `grids`, `buildings`, `units`, `households` |
//! | `{street}/{grid}/{building}` ([`building_path`]) | [`DocKind::Building`] | `kind`, `schema`, `visits`, `deliveries`, `sweeps`, `corrections` |
//!
//! `kind` is a string, `schema` an unsigned integer ([`SCHEMA_VERSION`]), every other
//! top-level key a map. **The skeleton comes from [`genesis()`] only**: one change by the fixed
//! actor of 16 zero bytes at time 0, identical byte for byte on every node, so two devices
//! that never met share the same top-level maps. After genesis a write creates exactly one
//! object: a record's map under the record's fresh ULID key. A device writes under its own
//! actor, [`actor_for`] (the node id's bytes); [`node_for_actor`] reads provenance back.
//!
//! Plan maps (written by the office only, keys are plan ids, values are maps of scalars):
//! `communities/{community}` = `{id}`; `grids/{grid}` = `{community}`;
//! `buildings/{building}` = `{grid, community}`; `units/{building}/{unit}` = `{building,
//! unit}`; `households/{household}` = `{community, grid, building, unit, door, residents
//! (uint), zone}`. Re-importing updates entries in place and creates only missing entries.
//!
//! Building maps hold one map of scalars per record, keyed by its ULID; the field names are
//! listed in the `codec` module: a visit has `household`, `volunteer`, `at` (int, ms),
//! `outcome`, `people_seen` (uint), `flags` (comma-separated), `need.<need>` = detail,
//! `note`; a delivery event `household`, `item`, `status`, `attempt`, `detail`, `by`, `at`;
//! a sweep result `round`, `units` (comma-separated), `reached`, `not_home`, `refused`,
//! `issue.<nn>`, `by`, `at`; a correction `target`, `target_kind`, `action`
//! (`retract`|`replace`), `reason`, `by`, `at` and, when replacing, `new.<visit field>`.
//!
//! # Merge rules
//!
//! - Records never conflict: each has its own key, so a merge is a union and replays are
//!   idempotent.
//! - **Delivery status** ([`derive_item_state`]): for one (household, item), among events no
//!   correction retracts, any `delivered` event wins (the earliest by (`at_ms`, id) is
//!   reported); otherwise the latest event by (`at_ms`, event id) wins. `failed` events stay
//!   as history (counted), and a retry is a new event. A concurrent or later
//!   `out-for-delivery` never undoes a delivery; only a retraction of the delivered event does.
//! - **Corrections** ([`BuildingRecords`]): a correction is a new record naming its target;
//!   for each target the correction with the greatest (`at_ms`, correction id) is in force.
//!   A retraction hides the target from corrected views; a replacement (visits only) shows the
//!   replacement's fields. The original always stays readable and exported.
//! - **Building view** ([`building_view`]): latest visit by (`at_ms`, id) gives the outcome;
//!   the latest `contacted` visit gives flags and needs; a need is open until its item is
//!   delivered at or after that visit.
//!
//! # Plan CSV
//!
//! [`parse_csv`] reads UTF-8 CSV whose first line is exactly
//! `household_id,community,grid,building,unit,door,residents,zone` ([`CSV_HEADER`]).
//! `household_id`, `community`, `grid`, `building` and `unit` are ids in the path-segment
//! alphabet (`a-z 0-9 - _ .`, at most 64 bytes); `door` is free text up to 64 characters
//! (may be empty, quote it if it has commas); `residents` is 0..=100; `zone` is `lockdown`,
//! `control` or `prevention`. Household ids are unique in the file, a building lies in one
//! grid and community, a grid in one community. At most 200,000 rows and 64 MiB. The first bad
//! row is reported with its 1-based line number and nothing is imported.
//!
//! # Layout
//!
//! `genesis` (skeletons, paths, actors), `vocab` (closed enums), `records` (record types),
//! `check` and `codec` (field bounds and map encoding), `write` (validated writes), `read`
//! (lenient reads, corrections), `clock` (record times against first sight), `delivery` (the delivery merge rule), `plan` (street plan,
//! CSV), `view` (building view), `export` (flat rows).

mod check;
pub mod clock;
mod codec;
pub mod delivery;
pub mod export;
pub mod genesis;
pub mod plan;
pub mod read;
pub mod records;
pub mod view;
pub mod vocab;
pub mod write;

pub use check::FieldProblem;
pub use clock::{CLOCK_AHEAD_TOLERANCE_MS, ClockAhead, FirstSight, daily_round_start};
pub use delivery::{ItemState, checklist, derive_item_state};
pub use export::{ExportRow, export_rows};
pub use genesis::{
    DocKind, SCHEMA_VERSION, actor_for, building_path, genesis, genesis_actor, node_for_actor,
    plan_path,
};
pub use plan::{
    CSV_HEADER, DEFAULT_UTC_OFFSET_MINUTES, Household, PlanCsv, PlanImport, PlanImportError,
    PlanRow, StreetPlan, UtcOffsetError, apply_import, format_utc_offset, parse_csv,
    parse_utc_offset, read_plan, set_utc_offset,
};
pub use read::{BuildingRecords, CorrectedVisit};
pub use records::{
    Correction, CorrectionAction, DeliveryEvent, MalformedRecord, ReadRecords, RecordId,
    SweepResult, Visit,
};
pub use view::{
    BuildingView, HouseholdView, building_view, building_view_of_records, has_open_needs,
};
pub use vocab::{
    DeliveryItem, DeliveryStatus, NeedKind, RecordKind, SpecialNeed, UnknownValue, VisitOutcome,
    Zone,
};
pub use write::{
    RecordError, WriteContext, record_correction, record_delivery, record_sweep, record_visit,
};
