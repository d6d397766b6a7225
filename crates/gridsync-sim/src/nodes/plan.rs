//! A small synthetic street plan: a few grids of a few buildings of a few households, as the
//! plan CSV the office imports. Ids are derived from positions, so two runs agree.

/// The shape of a synthetic street.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntheticPlan {
    /// Street name: the first segment of every document path and the CA's street.
    pub street: String,
    /// Number of micro-grids (`grid-001`, `grid-002`, ...).
    pub grids: u32,
    /// Buildings per grid.
    pub buildings_per_grid: u32,
    /// Households per building.
    pub households_per_building: u32,
}

impl SyntheticPlan {
    /// Three grids of three buildings of four households on street `panhuo`: enough documents
    /// for several to be written concurrently, small enough to sync in a moment.
    pub fn small() -> SyntheticPlan {
        SyntheticPlan {
            street: "panhuo".into(),
            grids: 3,
            buildings_per_grid: 3,
            households_per_building: 4,
        }
    }

    /// The id of grid number `grid` (1-based).
    pub fn grid_id(grid: u32) -> String {
        format!("grid-{grid:03}")
    }

    fn building_id(grid: u32, building: u32) -> String {
        format!("bldg-{grid:03}-{building:02}")
    }

    fn household_id(grid: u32, building: u32, household: u32) -> String {
        format!("hh-{grid:03}-{building:02}-{household:02}")
    }

    /// The plan as CSV with [`gridsync_model::CSV_HEADER`].
    pub fn csv(&self) -> String {
        let mut out = gridsync_model::PlanCsv::new();
        for grid in 1..=self.grids {
            for building in 1..=self.buildings_per_grid {
                for household in 1..=self.households_per_building {
                    out.row(gridsync_model::PlanRow {
                        household: &Self::household_id(grid, building, household),
                        community: "comm-1",
                        grid: &Self::grid_id(grid),
                        building: &Self::building_id(grid, building),
                        unit: "unit-1",
                        door: &format!("{household}0{household}"),
                        residents: 3,
                        zone: "lockdown",
                    });
                }
            }
        }
        out.finish()
    }

    /// Every household id of grid number `grid`, in plan order.
    pub fn households_in(&self, grid: u32) -> Vec<String> {
        let mut out = Vec::new();
        for building in 1..=self.buildings_per_grid {
            for household in 1..=self.households_per_building {
                out.push(Self::household_id(grid, building, household));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_parses_and_lists_every_household() {
        let plan = SyntheticPlan::small();
        let import = gridsync_model::parse_csv(plan.csv().as_bytes()).expect("valid plan csv");
        assert_eq!(import.households.len(), 36);
        assert_eq!(plan.households_in(2).len(), 12);
        assert!(
            plan.households_in(2)
                .iter()
                .all(|h| h.starts_with("hh-002-"))
        );
    }
}
