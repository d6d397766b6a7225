//! The reduced street: 20 grids, 30 buildings, 240 households, 30 volunteers, 3 captains, a
//! courier and the office, as real replicas synced by the real engine over seeded contacts
//! with 20 % segment loss, partitions, restarts and cut-off contacts. Every seed must
//! converge with no acknowledged record lost.
//!
//! `GRIDSYNC_SIM_SEED=<n>` reruns one seed; the full street is
//! `cargo run --release -p gridsync-sim --bin street-sim -- --scale full`.

use gridsync_sim::contact::{StreetConfig, StreetCredentials, StreetLayout, StreetSim};

/// The seeds to run: the one in `GRIDSYNC_SIM_SEED`, or a fixed three.
fn seeds() -> Vec<u64> {
    match std::env::var("GRIDSYNC_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("GRIDSYNC_SIM_SEED must be a number")],
        Err(_) => vec![1, 2, 3],
    }
}

#[test]
fn the_reduced_street_converges_with_no_acknowledged_record_lost() {
    let _serial = super::one_at_a_time();
    for seed in seeds() {
        eprintln!("street seed {seed} (GRIDSYNC_SIM_SEED={seed} reruns it)");
        let config = StreetConfig::reduced(seed);
        let devices = 1 + config.shape.captains + config.shape.volunteers + config.shape.couriers;
        let households = config.shape.households as u64;
        let sim = StreetSim::new(config).unwrap_or_else(|e| panic!("seed {seed}: setup: {e}"));
        // A failure names the seed and what did not converge or was lost.
        let report = sim.run().unwrap_or_else(|failure| panic!("{failure}"));
        eprintln!("{report}");
        let c = &report.counters;

        // The checks ran on every replica, in memory and reopened from disk; `run` fails on
        // any divergence or lost record, so reaching here means none.
        assert_eq!(report.verified.replicas, devices as usize, "seed {seed}");
        assert_eq!(
            report.verified.reopened_from_disk, devices as usize,
            "seed {seed}"
        );
        // One sweep round: a visit per household, plus deliveries and a sweep per building.
        assert_eq!(c.visits, households, "seed {seed}");
        assert_eq!(c.sweeps, 30, "seed {seed}");
        assert_eq!(
            report.records as u64,
            c.visits + c.deliveries + c.sweeps,
            "seed {seed}: every write was acknowledged and recorded"
        );
        // The run went through what it is meant to survive.
        assert!(c.restarts >= 2, "seed {seed}: {} restarts", c.restarts);
        assert!(c.partitions >= 1, "seed {seed}: no partition");
        assert!(c.contacts_cut > 0, "seed {seed}: no contact was cut off");
        assert!(c.lost_segments > 0, "seed {seed}: no segment was lost");
        // No volunteer ever meets the office: whatever reached it was relayed, and every
        // relayed change was accepted (its author's grants were known along the way).
        assert!(report.office_relayed > 0, "seed {seed}: nothing relayed");
        assert_eq!(c.refused_changes, 0, "seed {seed}: {:?}", c.notes);
        assert!(report.converged_after_last_write_s > 0.0, "seed {seed}");
    }
}

/// Everything a run draws is seeded and every clock is virtual, so one seed run twice (with
/// the same credentials, which a run takes as input) handles the same events at the same
/// times and leaves identical stores.
#[test]
fn one_seed_run_twice_gives_an_identical_event_log_and_identical_stores() {
    let _serial = super::one_at_a_time();
    let seed = seeds()[0];
    let config = || {
        let mut config = StreetConfig::reduced(seed);
        config.fingerprint = true;
        config
    };
    let layout = StreetLayout::new(config().shape).expect("layout");
    let credentials = StreetCredentials::issue(&layout).expect("credentials");
    let run = || {
        let sim = StreetSim::with_credentials(config(), &credentials)
            .unwrap_or_else(|e| panic!("seed {seed}: setup: {e}"));
        let report = sim.run().unwrap_or_else(|failure| panic!("{failure}"));
        report
            .fingerprint
            .expect("the config asked for a fingerprint")
    };
    let first = run();
    let second = run();
    assert!(
        first.events.len() > 1_000,
        "seed {seed}: only {} events",
        first.events.len()
    );
    assert_eq!(
        first.first_difference(&second),
        None,
        "seed {seed}: the event logs differ"
    );
    assert_eq!(first.events_sha256, second.events_sha256);
    assert_eq!(
        first.stores_sha256, second.stores_sha256,
        "seed {seed}: same events, but the stores differ"
    );
}
