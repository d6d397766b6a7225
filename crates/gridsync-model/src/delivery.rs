//! The delivery merge rule: one pure function from a set of events to an item's status.
//!
//! Rule, for the live (not retracted) events of one (household, item):
//! 1. If any event says `delivered`, the item is `delivered`, decided by the earliest such
//!    event by (`at_ms`, event id). A concurrent or later `out-for-delivery`, `failed`,
//!    `requested` or `cancelled` never undoes a delivery; only a correction that retracts the
//!    delivered event(s) does.
//! 2. Otherwise the event with the greatest (`at_ms`, event id) decides.
//! 3. `failed` events are history: they are counted in `failed_attempts` whatever wins, and a
//!    retry is simply a newer event.
//!
//! The result depends only on the set of events, never on their order, so every replica that
//! has merged the same changes derives the same status.

use std::collections::BTreeMap;

use crate::records::{DeliveryEvent, RecordId};
use crate::vocab::{DeliveryItem, DeliveryStatus};

/// The derived state of one checklist item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemState {
    /// The household the item is for.
    pub household: String,
    /// The item.
    pub item: DeliveryItem,
    /// Status under the merge rule.
    pub status: DeliveryStatus,
    /// The event that decided `status`.
    pub decided_by: RecordId,
    /// Time of that event, unix milliseconds.
    pub decided_at_ms: i64,
    /// How many `failed` events there are.
    pub failed_attempts: u32,
    /// How many live events there are in all.
    pub events: u32,
}

/// Applies the merge rule to the events of ONE (household, item); `None` if there are none.
/// Events for other households or items must not be passed (see [`checklist`]).
pub fn derive_item_state<'a>(
    events: impl IntoIterator<Item = &'a DeliveryEvent>,
) -> Option<ItemState> {
    let mut earliest_delivered: Option<&DeliveryEvent> = None;
    let mut latest: Option<&DeliveryEvent> = None;
    let mut failed_attempts = 0u32;
    let mut count = 0u32;
    for e in events {
        count = count.saturating_add(1);
        if e.status == DeliveryStatus::Failed {
            failed_attempts = failed_attempts.saturating_add(1);
        }
        if e.status == DeliveryStatus::Delivered
            && earliest_delivered.is_none_or(|d| (e.at_ms, &e.id) < (d.at_ms, &d.id))
        {
            earliest_delivered = Some(e);
        }
        if latest.is_none_or(|l| (e.at_ms, &e.id) > (l.at_ms, &l.id)) {
            latest = Some(e);
        }
    }
    let decider = earliest_delivered.or(latest)?;
    Some(ItemState {
        household: decider.household.clone(),
        item: decider.item,
        status: decider.status,
        decided_by: decider.id.clone(),
        decided_at_ms: decider.at_ms,
        failed_attempts,
        events: count,
    })
}

/// Groups live events by (household, item) and derives each item's state.
pub fn checklist<'a>(
    events: impl IntoIterator<Item = &'a DeliveryEvent>,
) -> BTreeMap<(String, DeliveryItem), ItemState> {
    let mut groups: BTreeMap<(&str, DeliveryItem), Vec<&DeliveryEvent>> = BTreeMap::new();
    for e in events {
        groups
            .entry((e.household.as_str(), e.item))
            .or_default()
            .push(e);
    }
    groups
        .into_iter()
        .filter_map(|((household, item), evs)| {
            derive_item_state(evs).map(|s| ((household.to_owned(), item), s))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u128, status: DeliveryStatus, at_ms: i64) -> DeliveryEvent {
        DeliveryEvent {
            id: RecordId::from(ulid::Ulid::from_parts(at_ms as u64, n)),
            household: "h-1".into(),
            item: DeliveryItem::FoodPack,
            status,
            attempt: 1,
            detail: String::new(),
            by: "vol-1".into(),
            at_ms,
        }
    }

    #[test]
    fn delivered_dominates_a_later_out_for_delivery() {
        let t = 1_700_000_000_000;
        let evs = [
            event(1, DeliveryStatus::Requested, t),
            event(2, DeliveryStatus::Delivered, t + 10),
            event(3, DeliveryStatus::OutForDelivery, t + 20),
        ];
        let s = derive_item_state(&evs).expect("events present");
        assert_eq!(s.status, DeliveryStatus::Delivered);
        assert_eq!(s.decided_by, evs[1].id);
        assert_eq!(s.events, 3);
    }

    #[test]
    fn failed_is_history_and_a_retry_wins_by_time() {
        let t = 1_700_000_000_000;
        let evs = [
            event(1, DeliveryStatus::OutForDelivery, t),
            event(2, DeliveryStatus::Failed, t + 10),
            event(3, DeliveryStatus::OutForDelivery, t + 20),
        ];
        let s = derive_item_state(&evs).expect("events present");
        assert_eq!(s.status, DeliveryStatus::OutForDelivery);
        assert_eq!(s.failed_attempts, 1);
    }

    #[test]
    fn equal_times_break_ties_by_event_id() {
        let t = 1_700_000_000_000;
        let evs = [
            event(7, DeliveryStatus::Cancelled, t),
            event(3, DeliveryStatus::Failed, t),
        ];
        let s = derive_item_state(&evs).expect("events present");
        assert_eq!(s.status, DeliveryStatus::Cancelled);
        assert!(derive_item_state([]).is_none());
    }
}
