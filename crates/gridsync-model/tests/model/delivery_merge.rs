//! The delivery merge rule holds in every interleaving and every merge order.

use automerge::Automerge;
use gridsync_model::{
    BuildingRecords, DeliveryEvent, DeliveryStatus, ItemState, RecordKind, checklist,
    derive_item_state, record_correction, record_delivery,
};
use proptest::prelude::*;

use super::support::{NOW, STATUSES, ctx, delivery, device, merge_into, plan, retraction, rid};

fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for rest in permutations(n - 1) {
        for pos in 0..=rest.len() {
            let mut p = rest.clone();
            p.insert(pos, n - 1);
            out.push(p);
        }
    }
    out
}

/// The rule restated naively, as the oracle.
fn expected(events: &[&DeliveryEvent]) -> Option<(DeliveryStatus, i64)> {
    let delivered = events
        .iter()
        .filter(|e| e.status == DeliveryStatus::Delivered)
        .min_by_key(|e| (e.at_ms, e.id.clone()));
    let latest = events.iter().max_by_key(|e| (e.at_ms, e.id.clone()));
    delivered.or(latest).map(|e| (e.status, e.at_ms))
}

fn status_of(doc: &Automerge) -> Option<ItemState> {
    let records = BuildingRecords::read(doc);
    let live = records.live_deliveries();
    let list = checklist(live.iter().copied());
    assert!(list.len() <= 1);
    list.into_values().next()
}

#[test]
fn four_devices_in_every_merge_order() {
    let plan = plan();
    let base_time = NOW - 60_000;
    let mut base = super::support::device("office");
    let requested = delivery(
        rid(base_time, 100),
        "h-1",
        DeliveryStatus::Requested,
        base_time,
    );
    record_delivery(&mut base, &ctx(&plan), &requested).expect("valid event");

    // Four devices, each offline from the shared base, each writing to the same item.
    let writes = [
        ("vol-a", DeliveryStatus::OutForDelivery, 10_000),
        ("vol-b", DeliveryStatus::Delivered, 20_000),
        ("vol-c", DeliveryStatus::OutForDelivery, 30_000), // later, must not undo the delivery
        ("vol-d", DeliveryStatus::Failed, 40_000),
    ];
    let mut devices: Vec<Automerge> = Vec::new();
    let mut events = vec![requested.clone()];
    for (n, (name, status, offset)) in writes.iter().enumerate() {
        let mut doc = device(name);
        doc.merge(&mut base.clone()).expect("merge base");
        let e = delivery(
            rid(base_time + offset, n as u128),
            "h-1",
            *status,
            base_time + offset,
        );
        record_delivery(&mut doc, &ctx(&plan), &e).expect("valid event");
        events.push(e);
        devices.push(doc);
    }

    let mut final_heads = None;
    for order in permutations(devices.len()) {
        let mut replica = device("captain");
        replica.merge(&mut base.clone()).expect("merge base");
        let mut present: Vec<&DeliveryEvent> = vec![&events[0]];
        for &i in &order {
            replica
                .merge(&mut devices[i].clone())
                .expect("merge device");
            present.push(&events[i + 1]);
            let got = status_of(&replica).expect("events present");
            assert_eq!(
                Some((got.status, got.decided_at_ms)),
                expected(&present),
                "order {order:?}"
            );
        }
        let got = status_of(&replica).expect("events present");
        assert_eq!(got.status, DeliveryStatus::Delivered, "order {order:?}");
        assert_eq!(got.failed_attempts, 1);
        let heads = replica.get_heads();
        assert_eq!(*final_heads.get_or_insert(heads.clone()), heads);
    }

    // Pairwise merges between the devices themselves, in every order, converge too.
    for order in permutations(devices.len()) {
        let mut docs = devices.clone();
        for w in order.windows(2) {
            merge_into(&mut docs, w[1], w[0]);
        }
        let last = order[order.len() - 1];
        for i in 0..docs.len() {
            merge_into(&mut docs, i, last);
        }
        for doc in &docs {
            assert_eq!(
                status_of(doc).map(|s| s.status),
                Some(DeliveryStatus::Delivered)
            );
        }
    }
}

#[test]
fn only_a_retraction_undoes_a_delivery() {
    let plan = plan();
    let t = NOW - 60_000;
    let mut a = device("vol-a");
    let mut b = device("vol-b");
    let delivered = delivery(rid(t, 1), "h-1", DeliveryStatus::Delivered, t);
    record_delivery(&mut a, &ctx(&plan), &delivered).expect("valid event");
    let later = delivery(
        rid(t + 1_000, 2),
        "h-1",
        DeliveryStatus::OutForDelivery,
        t + 1_000,
    );
    record_delivery(&mut b, &ctx(&plan), &later).expect("valid event");
    a.merge(&mut b).expect("merge");
    assert_eq!(
        status_of(&a).map(|s| s.status),
        Some(DeliveryStatus::Delivered)
    );

    let fix = retraction(
        rid(t + 2_000, 3),
        &delivered.id,
        RecordKind::Delivery,
        t + 2_000,
    );
    record_correction(&mut a, &ctx(&plan), &fix).expect("valid correction");
    let state = status_of(&a).expect("events present");
    assert_eq!(state.status, DeliveryStatus::OutForDelivery);
    assert_eq!(state.decided_by, later.id);
    // The retracted event is still readable.
    assert_eq!(BuildingRecords::read(&a).deliveries.len(), 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The pure rule gives the oracle's answer for every order of the same events.
    #[test]
    fn rule_is_order_independent(
        raw in prop::collection::vec((0usize..5, 0i64..4, 0u128..1_000), 1..6),
    ) {
        let t = NOW - 100_000;
        let events: Vec<DeliveryEvent> = raw
            .iter()
            .enumerate()
            .map(|(n, (s, dt, r))| {
                delivery(rid(t + dt * 1_000, r * 8 + n as u128), "h-1", STATUSES[*s], t + dt * 1_000)
            })
            .collect();
        let all: Vec<&DeliveryEvent> = events.iter().collect();
        let want = expected(&all);
        for order in permutations(events.len()) {
            let shuffled: Vec<&DeliveryEvent> = order.iter().map(|i| &events[*i]).collect();
            let got = derive_item_state(shuffled.iter().copied()).map(|s| (s.status, s.decided_at_ms));
            prop_assert_eq!(got, want);
        }
    }
}
