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
    let mut csv = format!("{}\n", gridsync_model::CSV_HEADER);
    for k in 0..BUILDINGS {
        let (grid, building) = building_of(k);
        let g = k / BUILDINGS_PER_GRID;
        let suffix = &building[2..];
        for u in 0..UNITS {
            for h in 0..HOUSEHOLDS_PER_UNIT {
                csv.push_str(&format!(
                    "h-{suffix}-{u}{h},c-{},{grid},{building},u{u},room {u}{h},2,prevention\n",
                    g / 8
                ));
            }
        }
    }
    csv
}
