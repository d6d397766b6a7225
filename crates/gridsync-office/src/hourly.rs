//! The round hour by hour: what the dashboard's charts draw (coverage over time, needs
//! reported and items delivered per hour).
//!
//! [`HourlyTotals`] is additive like the rest of [`crate::Totals`], so grids, communities and
//! the street sum their buildings' hours. An hour is counted from the round's start: hour 0
//! is the round's first hour. Definitions (what the charts show and the tests recount):
//! - **visited**: a planned household counts once, in the hour of its first visit this round
//!   (after corrections, retracted visits left out); the hours sum to `Totals::visited`.
//! - **needs reported**: a (planned household, need kind) counts once, in the hour of the
//!   first visit this round that reported it.
//! - **delivered**: a checklist item whose status is delivered counts in the hour it was
//!   decided, if that was in this round.
//!
//! Times are the ones every other figure uses (the clock rule applied).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::summary::RoundWindow;

/// One hour, in milliseconds.
pub const HOUR_MS: i64 = 3_600_000;

/// Counts per hour of the round, sparse (hours with nothing are absent).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HourlyTotals {
    /// Households first visited this round, by hour.
    pub visited: BTreeMap<u32, u32>,
    /// Needs first reported this round, by hour.
    pub needs_reported: BTreeMap<u32, u32>,
    /// Checklist items delivered, by hour.
    pub delivered: BTreeMap<u32, u32>,
}

/// The hour of the round that `at_ms` falls in; `None` before the round started.
pub fn hour_of(round: RoundWindow, at_ms: i64) -> Option<u32> {
    let since = at_ms.checked_sub(round.start_ms)?;
    (since >= 0).then(|| u32::try_from(since / HOUR_MS).unwrap_or(u32::MAX))
}

impl HourlyTotals {
    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &HourlyTotals) {
        for (mine, theirs) in [
            (&mut self.visited, &other.visited),
            (&mut self.needs_reported, &other.needs_reported),
            (&mut self.delivered, &other.delivered),
        ] {
            for (hour, n) in theirs {
                *mine.entry(*hour).or_default() += n;
            }
        }
    }

    /// Counts one event at `at_ms` into `series`, if it falls in the round.
    pub(crate) fn note(series: &mut BTreeMap<u32, u32>, round: RoundWindow, at_ms: i64) {
        if let Some(hour) = hour_of(round, at_ms) {
            *series.entry(hour).or_default() += 1;
        }
    }

    /// Hours `0..=last` with their counts, zeros included: what the timeline API returns.
    pub fn series(&self, round: RoundWindow, last: u32) -> Vec<HourLine> {
        let at = |series: &BTreeMap<u32, u32>, hour: u32| series.get(&hour).copied().unwrap_or(0);
        (0..=last)
            .map(|hour| HourLine {
                hour,
                start_ms: round.start_ms + i64::from(hour) * HOUR_MS,
                visited: at(&self.visited, hour),
                needs_reported: at(&self.needs_reported, hour),
                delivered: at(&self.delivered, hour),
            })
            .collect()
    }
}

/// One hour of the timeline API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourLine {
    pub hour: u32,
    pub start_ms: i64,
    pub visited: u32,
    pub needs_reported: u32,
    pub delivered: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hours_count_from_the_round_start() {
        let round = RoundWindow::starting_at(10 * HOUR_MS);
        assert_eq!(hour_of(round, 10 * HOUR_MS - 1), None);
        assert_eq!(hour_of(round, 10 * HOUR_MS), Some(0));
        assert_eq!(hour_of(round, 11 * HOUR_MS - 1), Some(0));
        assert_eq!(hour_of(round, 13 * HOUR_MS + 5), Some(3));
        assert_eq!(hour_of(round, i64::MIN), None);
    }

    #[test]
    fn totals_add_hour_by_hour_and_series_fill_the_gaps() {
        let round = RoundWindow::starting_at(0);
        let mut a = HourlyTotals::default();
        HourlyTotals::note(&mut a.visited, round, 5);
        HourlyTotals::note(&mut a.visited, round, 2 * HOUR_MS);
        let mut b = HourlyTotals::default();
        HourlyTotals::note(&mut b.visited, round, 2 * HOUR_MS + 1);
        HourlyTotals::note(&mut b.delivered, round, HOUR_MS);
        a.add(&b);
        let series = a.series(round, 3);
        let visited: Vec<u32> = series.iter().map(|h| h.visited).collect();
        assert_eq!(visited, [1, 0, 2, 0]);
        assert_eq!(series[1].delivered, 1);
        assert_eq!(series[3].start_ms, 3 * HOUR_MS);
    }
}
