//! The seeded schedule of a street simulation, one day at a time: who writes what when,
//! which devices meet when and for how long over which link, which captain is unreachable
//! for hours, and which device restarts.
//!
//! Each day draws from its own generator (`seed` mixed with the day number), so days can be
//! generated lazily as the run reaches them and a seed always yields the same schedule.
//!
//! A day with writes is one sweep round: every household of the street is visited once, by
//! a volunteer of its grid, between 08:00 and 18:00; some visits flag special needs with open
//! needs, some households get a delivery, and each building gets a sweep record in the
//! evening. Contacts happen on every day, writing or not: each volunteer meets its captain a
//! few times (a volunteer of a remote grid rarely does), sometimes another volunteer of its
//! grid or community, rarely the office itself; each captain meets the office a few times;
//! each courier makes two rounds of its remote grids' volunteers and then meets the office.

use gridsync_node::ops::FieldWrite;
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};

use crate::contact::SimTime;
use crate::contact::link::LinkProfile;
use crate::contact::street::{DeviceRole, OFFICE, StreetLayout};

/// One simulated second.
pub const SECOND: SimTime = 1_000_000;
/// One simulated minute.
pub const MINUTE: SimTime = 60 * SECOND;
/// One simulated hour.
pub const HOUR: SimTime = 60 * MINUTE;
/// One simulated day.
pub const DAY: SimTime = 24 * HOUR;

/// How often things happen; per day unless said otherwise.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ScheduleConfig {
    pub seed: u64,
    /// Days with writes, one sweep round each.
    pub sweep_days: u32,
    /// Meetings of each volunteer with its captain.
    pub volunteer_captain_meetings: u32,
    /// Chance that one of those meetings happens for a volunteer of a remote grid.
    pub remote_captain_chance: f64,
    /// Chance that a volunteer meets another volunteer (its grid's, else its community's).
    pub peer_meeting_chance: f64,
    /// Chance that a volunteer brings its device to the office itself.
    pub office_visit_chance: f64,
    /// Meetings of each captain with the office.
    pub captain_office_meetings: u32,
    /// Share of contacts cut short (2 to 15 seconds).
    pub short_contact_share: f64,
    /// Share of visits that flag a special need; of those, 60 % record an open need.
    pub special_needs_share: f64,
    /// Share of households that get a delivery record besides a need's.
    pub delivery_share: f64,
    /// Share of captains made unreachable for 2 to 6 hours on a writing day (at least one).
    pub partition_share: f64,
    /// Share of devices restarted on a writing day (at least one captain and one volunteer).
    pub restart_share: f64,
}

impl ScheduleConfig {
    /// The defaults for `seed`: one sweep round.
    pub fn new(seed: u64) -> ScheduleConfig {
        ScheduleConfig {
            seed,
            sweep_days: 1,
            volunteer_captain_meetings: 3,
            remote_captain_chance: 0.1,
            peer_meeting_chance: 0.5,
            office_visit_chance: 0.05,
            captain_office_meetings: 3,
            short_contact_share: 0.2,
            special_needs_share: 0.12,
            delivery_share: 0.05,
            partition_share: 0.1,
            restart_share: 0.02,
        }
    }
}

/// What happens at one moment.
#[derive(Debug, Clone)]
pub enum Planned {
    /// Devices `a` and `b` meet for `duration` over `link`.
    Contact {
        a: usize,
        b: usize,
        duration: SimTime,
        link: LinkProfile,
    },
    /// `device` applies `write` (a volunteer in the field, offline or not).
    Write { device: usize, write: FieldWrite },
    /// `device` crashes and restarts at once on its data directory.
    Restart { device: usize },
}

/// One scheduled event.
#[derive(Debug, Clone)]
pub struct Scheduled {
    pub at: SimTime,
    pub what: Planned,
}

/// A device unreachable for a while (no contact involving it starts or lasts in it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub device: usize,
    pub from: SimTime,
    pub until: SimTime,
}

/// The events of one day, in time order.
#[derive(Debug, Clone, Default)]
pub struct DaySchedule {
    pub events: Vec<Scheduled>,
    pub partitions: Vec<Partition>,
    /// Contacts that did not happen because a partition covered them.
    pub contacts_prevented: usize,
}

/// A uniform draw in `[low, high)` (or `low` when the range is empty).
fn between(rng: &mut StdRng, low: SimTime, high: SimTime) -> SimTime {
    if high <= low {
        low
    } else {
        rng.random_range(low..high)
    }
}

/// Generates one day of the schedule.
pub struct DayPlanner<'a> {
    layout: &'a StreetLayout,
    config: &'a ScheduleConfig,
    rng: StdRng,
    start: SimTime,
    out: DaySchedule,
}

impl<'a> DayPlanner<'a> {
    /// The schedule of day `day` (0-based): writes and faults only on sweep days.
    pub fn plan(layout: &'a StreetLayout, config: &'a ScheduleConfig, day: u32) -> DaySchedule {
        let mixed = config.seed ^ u64::from(day).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut planner = DayPlanner {
            layout,
            config,
            rng: StdRng::seed_from_u64(mixed),
            start: SimTime::from(day) * DAY,
            out: DaySchedule::default(),
        };
        let writing = day < config.sweep_days;
        if writing {
            planner.sweep_round(day + 1);
        }
        planner.contacts();
        if writing {
            planner.partitions();
            planner.restarts();
        }
        let mut out = planner.out;
        out.events.sort_by_key(|e| e.at);
        out
    }

    fn at(&mut self, from_hour: SimTime, to_hour: SimTime) -> SimTime {
        self.start + between(&mut self.rng, from_hour * HOUR, to_hour * HOUR)
    }

    fn push(&mut self, at: SimTime, what: Planned) {
        self.out.events.push(Scheduled { at, what });
    }

    /// One visit per household, special needs, deliveries, one sweep per building.
    fn sweep_round(&mut self, round: u32) {
        let layout = self.layout;
        for grid in &layout.grids {
            let households: Vec<(usize, &String)> = grid
                .buildings
                .iter()
                .flat_map(|b| layout.buildings[*b].households.iter().map(move |h| (*b, h)))
                .collect();
            for (v, volunteer) in grid.volunteers.iter().enumerate() {
                let mine: Vec<&String> = households
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % grid.volunteers.len() == v)
                    .map(|(_, (_, h))| *h)
                    .collect();
                let mut times: Vec<SimTime> = mine.iter().map(|_| self.at(8, 18)).collect();
                times.sort_unstable();
                for (household, at) in mine.into_iter().zip(times) {
                    self.visit(*volunteer, household, at);
                }
            }
            for (k, b) in grid.buildings.iter().enumerate() {
                let building = &layout.buildings[*b];
                let volunteer = grid.volunteers[k % grid.volunteers.len()];
                let units: std::collections::BTreeSet<String> = (0..building.households.len())
                    .map(|h| format!("unit-{}", h / 6 + 1))
                    .collect();
                let total = building.households.len() as u32;
                let not_home = self.rng.random_range(0..=total / 4);
                let refused = self.rng.random_range(0..=total / 10);
                let at = self.start + 18 * HOUR + between(&mut self.rng, 0, 30 * MINUTE);
                let write = FieldWrite::Sweep {
                    building: building.id.clone(),
                    round,
                    units: units.into_iter().collect(),
                    reached: total - not_home - refused,
                    not_home,
                    refused,
                    issues: Vec::new(),
                };
                self.push(
                    at,
                    Planned::Write {
                        device: volunteer,
                        write,
                    },
                );
            }
        }
    }

    fn visit(&mut self, volunteer: usize, household: &str, at: SimTime) {
        const OUTCOMES: [(&str, u32); 4] = [
            ("contacted", 70),
            ("not-home", 20),
            ("refused", 5),
            ("vacant", 5),
        ];
        const FLAGS: [&str; 5] = [
            "elderly-living-alone",
            "child",
            "pregnant",
            "disability",
            "chronic-illness",
        ];
        const NEEDS: [&str; 6] = [
            "medicine",
            "food",
            "water",
            "baby-supplies",
            "hygiene",
            "medical-trip",
        ];
        let mut pick = self.rng.random_range(0..100);
        let mut outcome = OUTCOMES[0].0;
        for (name, weight) in OUTCOMES {
            if pick < weight {
                outcome = name;
                break;
            }
            pick -= weight;
        }
        let flagged = self.rng.random_bool(self.config.special_needs_share);
        let mut flags = Vec::new();
        let mut needs = Vec::new();
        if flagged {
            flags.push((*FLAGS.choose(&mut self.rng).unwrap_or(&FLAGS[0])).to_owned());
            if self.rng.random_bool(0.6) {
                let need = *NEEDS.choose(&mut self.rng).unwrap_or(&NEEDS[0]);
                needs.push(format!("{need}:asked at the door"));
            }
        }
        let people = self.rng.random_range(0..5);
        let has_need = !needs.is_empty();
        self.push(
            at,
            Planned::Write {
                device: volunteer,
                write: FieldWrite::Visit {
                    household: household.to_owned(),
                    outcome: outcome.to_owned(),
                    people,
                    flags,
                    needs,
                    note: None,
                    volunteer: None,
                    at_ms: None,
                },
            },
        );
        let delivers = (has_need && self.rng.random_bool(0.5))
            || self.rng.random_bool(self.config.delivery_share);
        if delivers {
            let status =
                ["requested", "out-for-delivery", "delivered"][self.rng.random_range(0..3)];
            let later = at + between(&mut self.rng, 10 * MINUTE, 2 * HOUR);
            self.push(
                later,
                Planned::Write {
                    device: volunteer,
                    write: FieldWrite::Delivery {
                        household: household.to_owned(),
                        item: "food-pack".into(),
                        status: status.into(),
                        note: None,
                    },
                },
            );
        }
    }

    fn duration(&mut self, low: SimTime, high: SimTime) -> SimTime {
        if self.rng.random_bool(self.config.short_contact_share) {
            between(&mut self.rng, 2 * SECOND, 15 * SECOND)
        } else {
            between(&mut self.rng, low, high)
        }
    }

    /// Phone-to-laptop Wi-Fi: 150 kB/s to 1 MB/s, 5 to 30 ms.
    fn field_link(&mut self) -> LinkProfile {
        let bandwidth = self.rng.random_range(150_000..1_000_000);
        let latency = self.rng.random_range(5..30);
        LinkProfile::wifi(bandwidth, latency)
    }

    /// A captain's or courier's uplink to the office: 500 kB/s to 2 MB/s, 20 to 80 ms.
    fn office_link(&mut self) -> LinkProfile {
        let bandwidth = self.rng.random_range(500_000..2_000_000);
        let latency = self.rng.random_range(20..80);
        LinkProfile::wifi(bandwidth, latency)
    }

    fn contact(&mut self, at: SimTime, a: usize, b: usize, duration: SimTime, link: LinkProfile) {
        self.push(
            at,
            Planned::Contact {
                a,
                b,
                duration,
                link,
            },
        );
    }

    fn contacts(&mut self) {
        let layout = self.layout;
        let config = self.config;
        for grid in &layout.grids {
            let remote = grid.courier.is_some();
            for volunteer in &grid.volunteers {
                for _ in 0..config.volunteer_captain_meetings {
                    if remote && !self.rng.random_bool(config.remote_captain_chance) {
                        continue;
                    }
                    let at = self.at(9, 21);
                    let duration = self.duration(30 * SECOND, 5 * MINUTE);
                    let link = self.field_link();
                    self.contact(at, *volunteer, grid.captain, duration, link);
                }
                if self.rng.random_bool(config.office_visit_chance) {
                    let at = self.at(9, 18);
                    let duration = self.duration(MINUTE, 10 * MINUTE);
                    let link = self.office_link();
                    self.contact(at, *volunteer, OFFICE, duration, link);
                }
                if self.rng.random_bool(config.peer_meeting_chance) {
                    let same_grid: Vec<usize> = grid
                        .volunteers
                        .iter()
                        .copied()
                        .filter(|v| v != volunteer)
                        .collect();
                    let other = if !same_grid.is_empty() && self.rng.random_bool(0.6) {
                        same_grid.choose(&mut self.rng).copied()
                    } else {
                        let community: Vec<usize> = layout
                            .grids
                            .iter()
                            .filter(|g| g.community == grid.community)
                            .flat_map(|g| g.volunteers.iter().copied())
                            .filter(|v| v != volunteer)
                            .collect();
                        community.choose(&mut self.rng).copied()
                    };
                    if let Some(other) = other {
                        let at = self.at(9, 20);
                        let duration = self.duration(10 * SECOND, 2 * MINUTE);
                        let link = self.field_link();
                        self.contact(at, *volunteer, other, duration, link);
                    }
                }
            }
        }
        for (index, device) in layout.devices.iter().enumerate() {
            match &device.role {
                DeviceRole::Captain { .. } => {
                    for _ in 0..config.captain_office_meetings {
                        let at = self.at(10, 22);
                        let duration = self.duration(MINUTE, 10 * MINUTE);
                        let link = self.office_link();
                        self.contact(at, index, OFFICE, duration, link);
                    }
                }
                DeviceRole::Courier { grids } => {
                    for round in 0..2 {
                        let mut at = self.start + (10 + 6 * round) * HOUR;
                        for grid in grids {
                            let Some(spec) = layout.grid(*grid) else {
                                continue;
                            };
                            for volunteer in &spec.volunteers {
                                let duration = self.duration(2 * MINUTE, 10 * MINUTE);
                                let link = self.field_link();
                                self.contact(at, index, *volunteer, duration, link);
                                at += duration + between(&mut self.rng, 20 * MINUTE, 40 * MINUTE);
                            }
                        }
                        let duration = between(&mut self.rng, 5 * MINUTE, 15 * MINUTE);
                        let link = self.office_link();
                        self.contact(at, index, OFFICE, duration, link);
                    }
                }
                DeviceRole::Office | DeviceRole::Volunteer { .. } => {}
            }
        }
    }

    /// Some captains unreachable for hours: their contacts in that window do not happen.
    fn partitions(&mut self) {
        let captains: Vec<usize> = (0..self.layout.devices.len())
            .filter(|d| matches!(self.layout.devices[*d].role, DeviceRole::Captain { .. }))
            .collect();
        let count = ((captains.len() as f64 * self.config.partition_share).round() as usize).max(1);
        for device in captains
            .choose_multiple(&mut self.rng, count)
            .copied()
            .collect::<Vec<_>>()
        {
            let from = self.at(9, 16);
            let until = from + between(&mut self.rng, 2 * HOUR, 6 * HOUR);
            self.out.partitions.push(Partition {
                device,
                from,
                until,
            });
        }
        let partitions = self.out.partitions.clone();
        let before = self.out.events.len();
        self.out.events.retain(|event| match event.what {
            Planned::Contact { a, b, duration, .. } => !partitions.iter().any(|p| {
                (p.device == a || p.device == b)
                    && event.at < p.until
                    && event.at + duration > p.from
            }),
            _ => true,
        });
        self.out.contacts_prevented = before - self.out.events.len();
    }

    /// Some devices crash and restart; always at least one captain and one volunteer.
    fn restarts(&mut self) {
        let layout = self.layout;
        let of_kind = |captain: bool| -> Vec<usize> {
            (0..layout.devices.len())
                .filter(|d| match layout.devices[*d].role {
                    DeviceRole::Captain { .. } => captain,
                    DeviceRole::Volunteer { .. } => !captain,
                    _ => false,
                })
                .collect()
        };
        let mut chosen = Vec::new();
        for candidates in [of_kind(true), of_kind(false)] {
            let count =
                ((candidates.len() as f64 * self.config.restart_share).round() as usize).max(1);
            chosen.extend(candidates.choose_multiple(&mut self.rng, count).copied());
        }
        for device in chosen {
            let at = self.at(9, 21);
            self.push(at, Planned::Restart { device });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contact::street::StreetShape;

    fn count(day: &DaySchedule, f: impl Fn(&Planned) -> bool) -> usize {
        day.events.iter().filter(|e| f(&e.what)).count()
    }

    #[test]
    fn a_sweep_day_visits_every_household_once_and_is_reproducible() {
        let layout = StreetLayout::new(StreetShape::reduced()).expect("layout");
        let config = ScheduleConfig::new(5);
        let day = DayPlanner::plan(&layout, &config, 0);
        let visits = count(&day, |p| {
            matches!(
                p,
                Planned::Write {
                    write: FieldWrite::Visit { .. },
                    ..
                }
            )
        });
        assert_eq!(visits, 240);
        let sweeps = count(&day, |p| {
            matches!(
                p,
                Planned::Write {
                    write: FieldWrite::Sweep { .. },
                    ..
                }
            )
        });
        assert_eq!(sweeps, 30);
        assert!(count(&day, |p| matches!(p, Planned::Restart { .. })) >= 2);
        assert!(!day.partitions.is_empty());
        assert!(day.events.windows(2).all(|w| w[0].at <= w[1].at));
        let again = DayPlanner::plan(&layout, &config, 0);
        assert_eq!(format!("{:?}", day.events), format!("{:?}", again.events));
        let other = DayPlanner::plan(&layout, &ScheduleConfig::new(6), 0);
        assert_ne!(format!("{:?}", day.events), format!("{:?}", other.events));
    }

    #[test]
    fn a_settling_day_has_contacts_but_no_writes_or_faults() {
        let layout = StreetLayout::new(StreetShape::reduced()).expect("layout");
        let config = ScheduleConfig::new(5);
        let day = DayPlanner::plan(&layout, &config, 1);
        assert!(day.partitions.is_empty());
        assert_eq!(count(&day, |p| !matches!(p, Planned::Contact { .. })), 0);
        assert!(count(&day, |p| matches!(p, Planned::Contact { .. })) > 30);
        assert!(day.events.iter().all(|e| e.at >= DAY && e.at < 2 * DAY));
    }
}
