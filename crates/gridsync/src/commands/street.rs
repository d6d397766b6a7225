//! A generated street plan, shaped like the reference street (../shared/scenario.md) but
//! scaled down: grids of buildings of units of households, in the three control zones.

/// Sizes of a generated street.
#[derive(Debug, Clone, Copy)]
pub struct StreetShape {
    pub grids: usize,
    pub buildings_per_grid: usize,
    pub units_per_building: usize,
    pub households_per_unit: usize,
}

/// Id of building `b` (0-based) of grid `g`.
pub fn building_id(g: usize, b: usize) -> String {
    format!("b-{:02}-{:02}", g + 1, b + 1)
}

/// Id of household `h` of unit `u` of building `building`.
pub fn household_id(building: &str, u: usize, h: usize) -> String {
    format!("h-{}-{}{:02}", &building[2..], u + 1, h + 1)
}

/// The plan as CSV text in `gridsync plan import` format.
pub fn plan_csv(shape: StreetShape) -> String {
    let mut csv = gridsync_model::PlanCsv::new();
    for g in 0..shape.grids {
        let community = format!("c-{}", g / 4 + 1);
        let grid = format!("grid-{:03}", g + 1);
        for b in 0..shape.buildings_per_grid {
            let building = building_id(g, b);
            // The first grid is the lockdown zone, the next the control zone, the rest prevention.
            let zone = match g {
                0 => "lockdown",
                1 => "control",
                _ => "prevention",
            };
            for u in 0..shape.units_per_building {
                for h in 0..shape.households_per_unit {
                    let household = household_id(&building, u, h);
                    let door = format!("unit {} room {}{:02}", u + 1, h / 2 + 1, h % 2 + 1);
                    csv.row(gridsync_model::PlanRow {
                        household: &household,
                        community: &community,
                        grid: &grid,
                        building: &building,
                        unit: &format!("u{}", u + 1),
                        door: &door,
                        residents: (1 + (g + b + u + h) % 4) as u32,
                        zone,
                    });
                }
            }
        }
    }
    csv.finish()
}
