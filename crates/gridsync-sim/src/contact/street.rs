//! The street being simulated: how many grids, buildings, households and devices it has, how
//! they are laid out (buildings in grids, grids in communities, grids under captains), which
//! grids are remote (served by a courier), and the scopes each device is enrolled with.
//!
//! Everything is derived from positions, so two runs of one shape agree exactly; only the
//! schedule draws random numbers.

use gridsync_proto::{NodeId, Role, ScopeGrant, Scopes};

use crate::contact::ContactError;

/// The sizes of a simulated street.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreetShape {
    /// Street name: the first segment of every document path.
    pub street: String,
    /// Residential communities; volunteers of grids in one community sometimes meet.
    pub communities: u32,
    /// Micro-grids (`grid-001`, ...).
    pub grids: u32,
    /// Buildings, spread evenly over the grids (one document each).
    pub buildings: u32,
    /// Households, spread evenly over the buildings.
    pub households: u32,
    /// Volunteer devices, spread evenly over the grids (every grid has at least one when
    /// there are at least as many volunteers as grids).
    pub volunteers: u32,
    /// Building captains; each captains a contiguous run of grids.
    pub captains: u32,
    /// Couriers (role relay): each carries the documents of a few remote grids.
    pub couriers: u32,
    /// Remote grids per courier: their volunteers rarely meet their captain.
    pub remote_grids_per_courier: u32,
}

impl StreetShape {
    /// The reference street of `scenario.md`: 638 micro-grids, about 1,000 buildings,
    /// 18,563 households, about 1,000 volunteers, 60 captains and one office, plus six
    /// couriers for 24 remote grids.
    pub fn full() -> StreetShape {
        StreetShape {
            street: "panhuo".into(),
            communities: 16,
            grids: 638,
            buildings: 1000,
            households: 18_563,
            volunteers: 1000,
            captains: 60,
            couriers: 6,
            remote_grids_per_courier: 4,
        }
    }

    /// A street small enough for the test suite in a debug build, with the same structure:
    /// several grids per captain, one or two buildings per grid, a courier for remote grids.
    pub fn reduced() -> StreetShape {
        StreetShape {
            street: "panhuo".into(),
            communities: 4,
            grids: 20,
            buildings: 30,
            households: 240,
            volunteers: 30,
            captains: 3,
            couriers: 1,
            remote_grids_per_courier: 2,
        }
    }
}

/// What a simulated device is, which decides its scopes and its place in the schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceRole {
    /// The street office: writes everything, imports the street plan.
    Office,
    /// A building captain of several grids (1-based grid numbers).
    Captain { grids: Vec<u32> },
    /// A volunteer of one grid: logs that grid's visits, deliveries and sweeps.
    Volunteer { grid: u32 },
    /// A courier: carries (never writes) the documents of a few remote grids.
    Courier { grids: Vec<u32> },
}

impl DeviceRole {
    /// The certificate's role.
    pub fn role(&self) -> Role {
        match self {
            DeviceRole::Office => Role::Office,
            DeviceRole::Captain { .. } => Role::Captain,
            DeviceRole::Volunteer { .. } => Role::Volunteer,
            DeviceRole::Courier { .. } => Role::Relay,
        }
    }
}

/// One device of the street, as enrolled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceSpec {
    pub node_id: NodeId,
    pub role: DeviceRole,
    /// The scopes its certificate carries: the role's grants plus the street-wide grants
    /// every enrolled device gets (`add_street_wide_grants`).
    pub scopes: Scopes,
}

/// One building: its id, its grid and its households.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildingSpec {
    pub id: String,
    /// 1-based grid number.
    pub grid: u32,
    /// Household ids in plan order.
    pub households: Vec<String>,
}

/// One micro-grid and the devices responsible for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GridSpec {
    /// 1-based grid number.
    pub number: u32,
    /// 0-based community index.
    pub community: u32,
    /// Indexes into [`StreetLayout::buildings`].
    pub buildings: Vec<usize>,
    /// Device index of its captain.
    pub captain: usize,
    /// Device indexes of its volunteers.
    pub volunteers: Vec<usize>,
    /// Device index of the courier serving it, for a remote grid.
    pub courier: Option<usize>,
}

/// The whole street: places and devices, with index links between them.
#[derive(Debug, Clone)]
pub struct StreetLayout {
    pub shape: StreetShape,
    /// Grid number `n` is at index `n - 1`.
    pub grids: Vec<GridSpec>,
    pub buildings: Vec<BuildingSpec>,
    /// Device 0 is the office; then the captains, the volunteers, the couriers.
    pub devices: Vec<DeviceSpec>,
}

/// The office's device index.
pub const OFFICE: usize = 0;

/// `part` of `total` items spread evenly over `slots`: the slot of item `index`.
fn slot_of(index: u32, total: u32, slots: u32) -> u32 {
    ((u64::from(index) * u64::from(slots)) / u64::from(total.max(1))) as u32
}

/// The id of grid number `grid` (1-based).
pub fn grid_id(grid: u32) -> String {
    format!("grid-{grid:03}")
}

impl StreetLayout {
    /// Lays out `shape`; refuses shapes that leave a grid without a building or a
    /// volunteer, or a captain without a grid.
    pub fn new(shape: StreetShape) -> Result<StreetLayout, ContactError> {
        let bad = |why: &str| Err(ContactError::Shape(why.to_owned()));
        if shape.grids == 0 || shape.buildings < shape.grids {
            return bad("every grid needs at least one building");
        }
        if shape.volunteers < shape.grids {
            return bad("every grid needs at least one volunteer");
        }
        if shape.captains == 0 || shape.captains > shape.grids {
            return bad("every captain needs at least one grid");
        }
        if shape.households < shape.buildings {
            return bad("every building needs at least one household");
        }
        if shape.communities == 0 || shape.communities > shape.grids {
            return bad("every community needs at least one grid");
        }
        let remote = shape.couriers * shape.remote_grids_per_courier;
        if remote > shape.grids {
            return bad("more remote grids than grids");
        }

        let mut grids: Vec<GridSpec> = (0..shape.grids)
            .map(|g| GridSpec {
                number: g + 1,
                community: slot_of(g, shape.grids, shape.communities),
                buildings: Vec::new(),
                captain: 1 + slot_of(g, shape.grids, shape.captains) as usize,
                volunteers: Vec::new(),
                courier: None,
            })
            .collect();

        let mut buildings = Vec::with_capacity(shape.buildings as usize);
        let per_building = shape.households / shape.buildings;
        let extra = shape.households % shape.buildings;
        for b in 0..shape.buildings {
            let grid = slot_of(b, shape.buildings, shape.grids);
            let count = per_building + u32::from(b < extra);
            let id = format!("bldg-{:04}", b + 1);
            let households = (1..=count)
                .map(|h| format!("hh-{:04}-{h:02}", b + 1))
                .collect();
            grids[grid as usize].buildings.push(buildings.len());
            buildings.push(BuildingSpec {
                id,
                grid: grid + 1,
                households,
            });
        }

        let street = shape.street.as_str();
        let mut devices = vec![device("office", DeviceRole::Office, street)?];
        for c in 0..shape.captains {
            let role = DeviceRole::Captain {
                grids: grids
                    .iter()
                    .filter(|g| g.captain == 1 + c as usize)
                    .map(|g| g.number)
                    .collect(),
            };
            devices.push(device(&format!("cap-{:02}", c + 1), role, street)?);
        }
        for v in 0..shape.volunteers {
            let grid = slot_of(v, shape.volunteers, shape.grids);
            grids[grid as usize].volunteers.push(devices.len());
            let role = DeviceRole::Volunteer { grid: grid + 1 };
            devices.push(device(&format!("vol-{:04}", v + 1), role, street)?);
        }
        for k in 0..shape.couriers {
            let mut carried = Vec::new();
            for j in 0..shape.remote_grids_per_courier {
                let nth = k * shape.remote_grids_per_courier + j;
                // Remote grids are spread over the street, so one courier crosses captains.
                let grid = slot_of(nth, remote, shape.grids) as usize;
                grids[grid].courier = Some(devices.len());
                carried.push(grids[grid].number);
            }
            let role = DeviceRole::Courier { grids: carried };
            devices.push(device(&format!("courier-{}", k + 1), role, street)?);
        }
        Ok(StreetLayout {
            shape,
            grids,
            buildings,
            devices,
        })
    }

    /// The grid with 1-based number `grid`.
    pub fn grid(&self, grid: u32) -> Option<&GridSpec> {
        self.grids.get((grid as usize).wrapping_sub(1))
    }

    /// The plan CSV the office imports, with [`gridsync_model::CSV_HEADER`].
    pub fn plan_csv(&self) -> String {
        let mut out = gridsync_model::PlanCsv::new();
        for building in &self.buildings {
            let grid = &self.grids[building.grid as usize - 1];
            for (k, household) in building.households.iter().enumerate() {
                let unit = k / 6 + 1;
                let zone = match k % 10 {
                    0 => "lockdown",
                    1..=3 => "control",
                    _ => "prevention",
                };
                out.row(gridsync_model::PlanRow {
                    household,
                    community: &format!("comm-{:02}", grid.community + 1),
                    grid: &grid_id(grid.number),
                    building: &building.id,
                    unit: &format!("unit-{unit}"),
                    door: &format!("{unit}0{}", k % 6 + 1),
                    residents: (k % 4 + 1) as u32,
                    zone,
                });
            }
        }
        out.finish()
    }
}

/// A device of `role` named `name`, with its role's grants plus the street-wide ones.
fn device(name: &str, role: DeviceRole, street: &str) -> Result<DeviceSpec, ContactError> {
    let grant = |text: String| {
        text.parse::<ScopeGrant>()
            .map_err(|e| ContactError::Shape(format!("grant {text:?}: {e}")))
    };
    let grants = match &role {
        DeviceRole::Office => vec![grant(format!("write:{street}"))?],
        DeviceRole::Captain { grids } => grids
            .iter()
            .map(|g| grant(format!("write:{street}/{}", grid_id(*g))))
            .collect::<Result<_, _>>()?,
        DeviceRole::Volunteer { grid } => {
            vec![grant(format!("write:{street}/{}", grid_id(*grid)))?]
        }
        DeviceRole::Courier { grids } => grids
            .iter()
            .map(|g| grant(format!("carry:{street}/{}", grid_id(*g))))
            .collect::<Result<_, _>>()?,
    };
    let mut scopes = Scopes(grants);
    gridsync_node::credentials::add_street_wide_grants(street, &mut scopes)
        .map_err(|e| ContactError::Shape(e.to_string()))?;
    Ok(DeviceSpec {
        node_id: NodeId::parse(name).map_err(|e| ContactError::Shape(e.to_string()))?,
        role,
        scopes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_street_has_the_reference_sizes_and_every_grid_is_staffed() {
        let layout = StreetLayout::new(StreetShape::full()).expect("full shape is valid");
        assert_eq!(layout.grids.len(), 638);
        assert_eq!(layout.buildings.len(), 1000);
        let households: usize = layout.buildings.iter().map(|b| b.households.len()).sum();
        assert_eq!(households, 18_563);
        assert_eq!(layout.devices.len(), 1 + 60 + 1000 + 6);
        for grid in &layout.grids {
            assert!(
                !grid.buildings.is_empty(),
                "grid {} has no building",
                grid.number
            );
            assert!(
                !grid.volunteers.is_empty(),
                "grid {} has no volunteer",
                grid.number
            );
        }
        let remote = layout.grids.iter().filter(|g| g.courier.is_some()).count();
        assert_eq!(remote, 24);
        // A captain holds ten or eleven grids.
        for device in &layout.devices {
            if let DeviceRole::Captain { grids } = &device.role {
                assert!((10..=11).contains(&grids.len()), "{grids:?}");
            }
        }
    }

    #[test]
    fn scopes_follow_roles_and_include_the_street_wide_documents() {
        let layout = StreetLayout::new(StreetShape::reduced()).expect("reduced shape is valid");
        let plan = gridsync_model::plan_path("panhuo").expect("plan path");
        let building = |grid: u32| {
            gridsync_model::building_path("panhuo", &grid_id(grid), "bldg-0001")
                .expect("building path")
        };
        for device in &layout.devices {
            assert!(device.scopes.may_read(&plan) || device.scopes.may_write(&plan));
            match &device.role {
                DeviceRole::Office => assert!(device.scopes.may_write(&building(7))),
                DeviceRole::Captain { grids } => {
                    assert!(grids.iter().all(|g| device.scopes.may_write(&building(*g))));
                }
                DeviceRole::Volunteer { grid } => {
                    assert!(device.scopes.may_write(&building(*grid)));
                    assert!(!device.scopes.may_hold(&building(grid % 20 + 1)));
                }
                DeviceRole::Courier { grids } => {
                    for g in grids {
                        assert!(device.scopes.may_carry(&building(*g)));
                        assert!(!device.scopes.may_write(&building(*g)));
                    }
                }
            }
        }
        let import = gridsync_model::parse_csv(layout.plan_csv().as_bytes()).expect("valid csv");
        assert_eq!(import.households.len(), 240);
    }
}
