//! The benchmark scenarios, numbered as in the benchmark issue. Each one measures its figures
//! and the reference it is compared against in the same run.

use crate::progress::Progress;
use crate::report::ScenarioReport;
use crate::scale::Scale;

mod field_app;
mod live_latency;
mod local_writes;
mod many_documents;
mod noop_reconnect;
mod office_cold_start;
mod street_sync;
mod wire_bytes;

/// One scenario: its number, its title and how to run it.
#[derive(Debug, Clone, Copy)]
pub struct Scenario {
    pub number: u32,
    pub title: &'static str,
    pub run: fn(Scale, &Progress) -> anyhow::Result<ScenarioReport>,
}

/// Every scenario, in the order.
pub const ALL: [Scenario; 8] = [
    Scenario {
        number: 1,
        title: "Street initial sync",
        run: street_sync::run,
    },
    Scenario {
        number: 2,
        title: "Many documents",
        run: many_documents::run,
    },
    Scenario {
        number: 3,
        title: "No-op reconnect",
        run: noop_reconnect::run,
    },
    Scenario {
        number: 4,
        title: "Live edit latency",
        run: live_latency::run,
    },
    Scenario {
        number: 5,
        title: "Durable local writes",
        run: local_writes::run,
    },
    Scenario {
        number: 6,
        title: "Office memory and cold start",
        run: office_cold_start::run,
    },
    Scenario {
        number: 7,
        title: "Wire bytes per visit",
        run: wire_bytes::run,
    },
    Scenario {
        number: 8,
        title: "Field app",
        run: field_app::run,
    },
];
