//! A seeded schedule of network faults: partitions of single links and crashes of hosts,
//! each undone after a while. The same seed and configuration give the same schedule.

use std::collections::BTreeMap;
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// One thing done to the simulated network or a host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Drop everything between two hosts (both ways) until repaired.
    Partition(String, String),
    /// Undo a partition.
    Repair(String, String),
    /// Stop a host's software; its data directory stays.
    Crash(String),
    /// Start a crashed host's software again on its data directory.
    Restart(String),
}

/// A fault and the simulated time at which it happens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledFault {
    pub at: Duration,
    pub fault: Fault,
}

/// What a generated schedule may do.
#[derive(Debug, Clone)]
pub struct ChaosConfig {
    /// Every fault happens, and is undone, before this time.
    pub duration: Duration,
    /// Links that may be partitioned (pairs of host names).
    pub links: Vec<(String, String)>,
    /// Hosts that may be crashed and restarted.
    pub crashable: Vec<String>,
    /// Time between the starts of two faults, drawn uniformly from this range.
    pub gap: (Duration, Duration),
    /// How long a partition lasts.
    pub partition_length: (Duration, Duration),
    /// How long a crashed host stays down.
    pub downtime: (Duration, Duration),
    /// Chance that a fault is a crash rather than a partition.
    pub crash_probability: f64,
}

/// Faults in time order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FaultSchedule {
    pub faults: Vec<ScheduledFault>,
}

/// A duration drawn uniformly from `low..=high` (millisecond resolution).
pub(crate) fn between(rng: &mut StdRng, (low, high): (Duration, Duration)) -> Duration {
    if high <= low {
        return low;
    }
    Duration::from_millis(rng.random_range(low.as_millis() as u64..=high.as_millis() as u64))
}

impl FaultSchedule {
    /// Draws a schedule from `seed`: at random gaps, partition a random link that is up or
    /// crash a random host that is running, and undo it a random while later (always before
    /// `config.duration`). One link or host suffers one fault at a time.
    pub fn generate(seed: u64, config: &ChaosConfig) -> FaultSchedule {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6772_6964_7379_6e63);
        let mut busy_until: BTreeMap<String, Duration> = BTreeMap::new();
        let mut faults = Vec::new();
        let mut now = between(&mut rng, config.gap);
        while now < config.duration {
            let crash = !config.crashable.is_empty()
                && (config.links.is_empty() || rng.random_bool(config.crash_probability));
            if crash {
                let host = &config.crashable[rng.random_range(0..config.crashable.len())];
                let key = format!("host:{host}");
                let end = (now + between(&mut rng, config.downtime)).min(config.duration);
                if busy_until.get(&key).is_none_or(|until| *until <= now) {
                    busy_until.insert(key, end);
                    faults.push(ScheduledFault {
                        at: now,
                        fault: Fault::Crash(host.clone()),
                    });
                    faults.push(ScheduledFault {
                        at: end,
                        fault: Fault::Restart(host.clone()),
                    });
                }
            } else if !config.links.is_empty() {
                let (a, b) = &config.links[rng.random_range(0..config.links.len())];
                let key = format!("link:{a}:{b}");
                let end = (now + between(&mut rng, config.partition_length)).min(config.duration);
                if busy_until.get(&key).is_none_or(|until| *until <= now) {
                    busy_until.insert(key, end);
                    faults.push(ScheduledFault {
                        at: now,
                        fault: Fault::Partition(a.clone(), b.clone()),
                    });
                    faults.push(ScheduledFault {
                        at: end,
                        fault: Fault::Repair(a.clone(), b.clone()),
                    });
                }
            }
            now += between(&mut rng, config.gap);
        }
        // Stable: a fault and its undoing at the same instant keep their order.
        faults.sort_by_key(|f| f.at);
        FaultSchedule { faults }
    }

    /// How many crashes the schedule holds.
    pub fn crashes(&self) -> usize {
        self.faults
            .iter()
            .filter(|f| matches!(f.fault, Fault::Crash(_)))
            .count()
    }

    /// How many partitions the schedule holds.
    pub fn partitions(&self) -> usize {
        self.faults
            .iter()
            .filter(|f| matches!(f.fault, Fault::Partition(..)))
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ChaosConfig {
        ChaosConfig {
            duration: Duration::from_secs(120),
            links: vec![("a".into(), "b".into()), ("b".into(), "c".into())],
            crashable: vec!["a".into(), "b".into(), "c".into()],
            gap: (Duration::from_secs(2), Duration::from_secs(8)),
            partition_length: (Duration::from_secs(3), Duration::from_secs(20)),
            downtime: (Duration::from_secs(2), Duration::from_secs(10)),
            crash_probability: 0.4,
        }
    }

    #[test]
    fn same_seed_same_schedule_and_every_fault_is_undone_in_time() {
        let one = FaultSchedule::generate(7, &config());
        assert_eq!(one, FaultSchedule::generate(7, &config()));
        assert_ne!(one, FaultSchedule::generate(8, &config()));
        assert!(one.crashes() > 0 && one.partitions() > 0, "{one:?}");
        let mut open: BTreeMap<String, u32> = BTreeMap::new();
        for f in &one.faults {
            assert!(f.at <= config().duration);
            let (key, delta) = match &f.fault {
                Fault::Crash(h) => (h.clone(), 1),
                Fault::Restart(h) => (h.clone(), -1),
                Fault::Partition(a, b) => (format!("{a}-{b}"), 1),
                Fault::Repair(a, b) => (format!("{a}-{b}"), -1),
            };
            let count = open.entry(key).or_default();
            *count = count
                .checked_add_signed(delta)
                .expect("undone only after done");
            assert!(*count <= 1, "one fault at a time per link or host");
        }
        assert!(
            open.values().all(|c| *c == 0),
            "everything undone: {open:?}"
        );
    }
}
