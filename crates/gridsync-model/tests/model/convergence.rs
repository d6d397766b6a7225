//! Property: devices that write offline and merge in any order and grouping converge, and
//! every record any device saved is present exactly once.

use std::collections::BTreeMap;

use automerge::Automerge;
use gridsync_model::{
    BuildingRecords, CorrectionAction, NeedKind, RecordId, RecordKind, SpecialNeed, VisitOutcome,
    building_view, record_correction, record_delivery, record_sweep, record_visit,
};
use proptest::prelude::*;

use super::support::{
    BUILDING, NOW, STATUSES, ctx, delivery, device, merge_into, plan, retraction, rid, sweep, visit,
};

#[derive(Debug, Clone)]
enum Step {
    Visit {
        device: usize,
        household: usize,
        outcome: usize,
        flags: u8,
        needs: u8,
    },
    Delivery {
        device: usize,
        household: usize,
        status: usize,
    },
    Sweep {
        device: usize,
        round: u32,
    },
    Correct {
        device: usize,
        pick: usize,
        replace: bool,
    },
    MergePair {
        into: usize,
        from: usize,
    },
    MergeSubset {
        members: Vec<usize>,
    },
}

fn step() -> impl Strategy<Value = Step> {
    let d = 0usize..8;
    prop_oneof![
        4 => (d.clone(), 0usize..6, 0usize..5, any::<u8>(), any::<u8>()).prop_map(
            |(device, household, outcome, flags, needs)| Step::Visit { device, household, outcome, flags, needs }
        ),
        3 => (d.clone(), 0usize..6, 0usize..5).prop_map(|(device, household, status)| Step::Delivery { device, household, status }),
        1 => (d.clone(), 1u32..4).prop_map(|(device, round)| Step::Sweep { device, round }),
        2 => (d.clone(), any::<usize>(), any::<bool>()).prop_map(|(device, pick, replace)| Step::Correct { device, pick, replace }),
        3 => (d.clone(), d.clone()).prop_map(|(into, from)| Step::MergePair { into, from }),
        1 => prop::collection::vec(d, 2..5).prop_map(|members| Step::MergeSubset { members }),
    ]
}

fn run(devices: usize, steps: Vec<Step>, finish: Vec<(usize, usize)>) -> Result<(), TestCaseError> {
    let plan = plan();
    let ctx = ctx(&plan);
    let mut docs: Vec<Automerge> = (0..devices).map(|n| device(&format!("vol-{n}"))).collect();
    let mut saved: BTreeMap<RecordId, RecordKind> = BTreeMap::new();
    let mut counter: u128 = 0;
    let households = ["h-1", "h-2", "h-3", "h-4", "h-5", "h-6"];
    for (n, s) in steps.into_iter().enumerate() {
        let at = NOW - 1_000_000 + (n as i64) * 1_000;
        counter += 1;
        let id = rid(at, counter);
        match s {
            Step::Visit {
                device,
                household,
                outcome,
                flags,
                needs,
            } => {
                let mut v = visit(id.clone(), households[household], at);
                v.outcome = VisitOutcome::ALL[outcome];
                v.flags = SpecialNeed::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| flags & (1 << i) != 0)
                    .map(|(_, f)| *f)
                    .collect();
                v.needs = NeedKind::ALL
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| needs & (1 << i) != 0)
                    .map(|(i, k)| (*k, format!("d{i}")))
                    .collect();
                record_visit(&mut docs[device % devices], &ctx, &v)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                saved.insert(id, RecordKind::Visit);
            }
            Step::Delivery {
                device,
                household,
                status,
            } => {
                let e = delivery(id.clone(), households[household], STATUSES[status], at);
                record_delivery(&mut docs[device % devices], &ctx, &e)
                    .map_err(|e| TestCaseError::fail(e.to_string()))?;
                saved.insert(id, RecordKind::Delivery);
            }
            Step::Sweep { device, round } => {
                record_sweep(
                    &mut docs[device % devices],
                    &ctx,
                    &sweep(id.clone(), round, at),
                )
                .map_err(|e| TestCaseError::fail(e.to_string()))?;
                saved.insert(id, RecordKind::Sweep);
            }
            Step::Correct {
                device,
                pick,
                replace,
            } => {
                let doc = &mut docs[device % devices];
                let seen = BuildingRecords::read(doc);
                let mut targets: Vec<(RecordId, RecordKind)> = Vec::new();
                targets.extend(
                    seen.visits
                        .iter()
                        .map(|v| (v.id.clone(), RecordKind::Visit)),
                );
                targets.extend(
                    seen.deliveries
                        .iter()
                        .map(|e| (e.id.clone(), RecordKind::Delivery)),
                );
                targets.extend(
                    seen.sweeps
                        .iter()
                        .map(|s| (s.id.clone(), RecordKind::Sweep)),
                );
                if targets.is_empty() {
                    continue;
                }
                let (target, kind) = targets[pick % targets.len()].clone();
                let mut c = retraction(id.clone(), &target, kind, at);
                if replace && kind == RecordKind::Visit {
                    let original = seen.visits.iter().find(|v| v.id == target).cloned();
                    if let Some(mut v) = original {
                        v.outcome = VisitOutcome::Refused;
                        v.note = format!("corrected at {at}");
                        c.action = CorrectionAction::ReplaceVisit(Box::new(v));
                    }
                }
                record_correction(doc, &ctx, &c).map_err(|e| TestCaseError::fail(e.to_string()))?;
                saved.insert(id, RecordKind::Correction);
            }
            Step::MergePair { into, from } => merge_into(&mut docs, into % devices, from % devices),
            Step::MergeSubset { members } => {
                // Everyone in the group meets everyone: gather into the first, then spread.
                let members: Vec<usize> = members.into_iter().map(|m| m % devices).collect();
                for m in &members[1..] {
                    merge_into(&mut docs, members[0], *m);
                }
                for m in &members[1..] {
                    merge_into(&mut docs, *m, members[0]);
                }
            }
        }
    }
    // Random pairwise gossip, then keep gossiping in a ring until everyone has everything.
    for (into, from) in finish {
        merge_into(&mut docs, into % devices, from % devices);
    }
    let mut rounds = 0;
    while docs.iter().any(|d| d.get_heads() != docs[0].get_heads()) {
        for i in 0..devices {
            merge_into(&mut docs, (i + 1) % devices, i);
        }
        rounds += 1;
        prop_assert!(rounds <= 2 * devices, "gossip did not converge");
    }

    let reference = BuildingRecords::read(&docs[0]);
    prop_assert!(reference.malformed.is_empty());
    let view = building_view(&docs[0], &plan, BUILDING);
    for doc in &docs[1..] {
        prop_assert_eq!(doc.get_heads(), docs[0].get_heads());
        prop_assert_eq!(&BuildingRecords::read(doc), &reference);
        prop_assert_eq!(&building_view(doc, &plan, BUILDING), &view);
    }
    let mut present: BTreeMap<RecordId, (RecordKind, usize)> = BTreeMap::new();
    let mut note = |id: &RecordId, kind| present.entry(id.clone()).or_insert((kind, 0)).1 += 1;
    reference
        .visits
        .iter()
        .for_each(|v| note(&v.id, RecordKind::Visit));
    reference
        .deliveries
        .iter()
        .for_each(|e| note(&e.id, RecordKind::Delivery));
    reference
        .sweeps
        .iter()
        .for_each(|s| note(&s.id, RecordKind::Sweep));
    reference
        .corrections
        .iter()
        .for_each(|c| note(&c.id, RecordKind::Correction));
    prop_assert_eq!(present.len(), saved.len());
    for (id, kind) in &saved {
        prop_assert_eq!(
            present.get(id),
            Some(&(*kind, 1)),
            "record {} saved once, present once",
            id
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn replicas_converge_and_keep_every_record_once(
        devices in 3usize..=8,
        steps in prop::collection::vec(step(), 5..40),
        finish in prop::collection::vec((0usize..8, 0usize..8), 0..12),
    ) {
        run(devices, steps, finish)?;
    }
}
