//! The street the office programs in `src/bin` (`office_latency`, `office_export_memory`)
//! run on: 50 grids of 20 buildings, each of 2 units of 9 households, a thousand building
//! documents as on the reference street.

/// The street's name.
pub const STREET: &str = "panhuo";
/// Micro-grids.
pub const GRIDS: usize = 50;
/// Buildings in each grid.
pub const BUILDINGS_PER_GRID: usize = 20;
/// Building documents in all.
pub const BUILDINGS: usize = GRIDS * BUILDINGS_PER_GRID;
/// Units (stairwells) in each building.
pub const UNITS: usize = 2;
/// Households in each unit.
pub const HOUSEHOLDS_PER_UNIT: usize = 9;

/// Building `k` of the street: its grid and building ids.
pub fn building_of(k: usize) -> (String, String) {
    let (g, b) = (k / BUILDINGS_PER_GRID, k % BUILDINGS_PER_GRID);
    (format!("grid-{g:03}"), format!("b-{g:02}{b:02}"))
}

/// The street's plan as the CSV file the office imports (eight grids to a community).
pub fn plan_csv() -> String {
    let mut csv = gridsync_model::PlanCsv::new();
    for k in 0..BUILDINGS {
        let (grid, building) = building_of(k);
        let community = format!("c-{}", k / BUILDINGS_PER_GRID / 8);
        let suffix = &building[2..];
        for u in 0..UNITS {
            for h in 0..HOUSEHOLDS_PER_UNIT {
                csv.row(gridsync_model::PlanRow {
                    household: &format!("h-{suffix}-{u}{h}"),
                    community: &community,
                    grid: &grid,
                    building: &building,
                    unit: &format!("u{u}"),
                    door: &format!("room {u}{h}"),
                    residents: 2,
                    zone: "prevention",
                });
            }
        }
    }
    csv.finish()
}

/// Writes `visits_per_building` visits into every building document of `replica` (which
/// holds the street's plan), one durable append per building: a week of daily sweeps.
/// Returns how many visits were written.
pub fn fill_street(
    replica: &mut gridsync_node::Replica,
    visits_per_building: usize,
) -> anyhow::Result<usize> {
    use anyhow::Context as _;
    use gridsync_model::{DocKind, RecordId, Visit, VisitOutcome, WriteContext};

    let plan = replica.street_plan()?.context("plan imported")?;
    let now_ms = replica.clock().unix_ms() as i64;
    let outcomes = [
        VisitOutcome::Contacted,
        VisitOutcome::NotHome,
        VisitOutcome::Contacted,
        VisitOutcome::Refused,
    ];
    for k in 0..BUILDINGS {
        let (grid, building) = building_of(k);
        let path = gridsync_model::building_path(STREET, &grid, &building)?;
        let ctx = WriteContext {
            plan: &plan,
            building: &building,
            now_ms,
        };
        let ids: Vec<RecordId> = (0..visits_per_building)
            .map(|_| RecordId::from(replica.mint_record_ulid(now_ms as u64)))
            .collect();
        replica.write(&path, DocKind::Building, |doc| {
            for (i, id) in ids.into_iter().enumerate() {
                let visit = Visit {
                    id,
                    household: format!(
                        "h-{}-{}{}",
                        &building[2..],
                        i % UNITS,
                        (i / UNITS) % HOUSEHOLDS_PER_UNIT
                    ),
                    volunteer: format!("vol-{:03}", k % 997),
                    at_ms: now_ms - 3_600_000 + i as i64,
                    outcome: outcomes[i % outcomes.len()],
                    people_seen: 2,
                    flags: Default::default(),
                    needs: Default::default(),
                    note: "door-to-door sweep".into(),
                };
                gridsync_model::record_visit(doc, &ctx, &visit)?;
            }
            Ok::<_, gridsync_model::RecordError>(())
        })?;
    }
    Ok(BUILDINGS * visits_per_building)
}
