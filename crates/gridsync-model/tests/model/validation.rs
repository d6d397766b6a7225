//! Every write is validated with a typed error, and a refused write changes nothing.

use automerge::Automerge;
use gridsync_model::records::{MAX_NOTE_CHARS, RecordIdError};
use gridsync_model::{
    CorrectionAction, DocKind, FieldProblem, RecordError, RecordId, RecordKind, VisitOutcome,
    WriteContext, genesis, record_correction, record_delivery, record_sweep, record_visit,
};

use super::support::{NOW, ctx, delivery, device, plan, retraction, rid, sweep, visit};

fn refused(
    doc: &mut Automerge,
    write: impl FnOnce(&mut Automerge) -> Result<(), RecordError>,
) -> RecordError {
    let before = doc.get_heads();
    let err = write(doc).expect_err("write must be refused");
    assert_eq!(
        doc.get_heads(),
        before,
        "a refused write leaves the document unchanged"
    );
    err
}

#[test]
fn each_validation_error() {
    let plan = plan();
    let ctx = ctx(&plan);
    let mut doc = device("vol-a");
    let t = NOW - 1_000;
    let ok = visit(rid(t, 1), "h-1", t);
    record_visit(&mut doc, &ctx, &ok).expect("valid visit");

    let v = |f: &dyn Fn(&mut gridsync_model::Visit)| {
        let mut v = visit(rid(t, 2), "h-2", t);
        f(&mut v);
        v
    };
    type Expectation = fn(&RecordError) -> bool;
    let cases: Vec<(gridsync_model::Visit, Expectation)> = vec![
        (
            v(&|v| v.household = "h-99".into()),
            |e| matches!(e, RecordError::UnknownHousehold(h) if h == "h-99"),
        ),
        (
            v(&|v| v.household = "h-7".into()),
            |e| matches!(e, RecordError::HouseholdInOtherBuilding { actual, .. } if actual == "bldg-13"),
        ),
        (v(&|v| v.household = String::new()), |e| {
            matches!(e, RecordError::Field(FieldProblem::Empty("household")))
        }),
        (v(&|v| v.at_ms = NOW + 11 * 60 * 1000), |e| {
            matches!(e, RecordError::Field(FieldProblem::InFuture { .. }))
        }),
        (v(&|v| v.at_ms = 900_000_000_000), |e| {
            matches!(e, RecordError::Field(FieldProblem::BeforeMinimum { .. }))
        }),
        (v(&|v| v.note = "x".repeat(MAX_NOTE_CHARS + 1)), |e| {
            matches!(
                e,
                RecordError::Field(FieldProblem::TooLong { field: "note", .. })
            )
        }),
        (v(&|v| v.volunteer = String::new()), |e| {
            matches!(e, RecordError::Field(FieldProblem::Empty("volunteer")))
        }),
        (v(&|v| v.volunteer = "a\u{7}b".into()), |e| {
            matches!(
                e,
                RecordError::Field(FieldProblem::ControlCharacter("volunteer"))
            )
        }),
        (v(&|v| v.id = ok.id.clone()), |e| {
            matches!(e, RecordError::DuplicateId(_))
        }),
    ];
    for (bad, is_expected) in cases {
        let err = refused(&mut doc, |d| record_visit(d, &ctx, &bad).map(|_| ()));
        assert!(is_expected(&err), "unexpected error {err:?} for {bad:?}");
    }
    // A note of exactly the limit, with line breaks, is fine.
    let long = v(&|v| v.note = format!("{}\n", "y".repeat(MAX_NOTE_CHARS - 1)));
    record_visit(&mut doc, &ctx, &long).expect("note at the limit");

    // An id used by another kind of record is a duplicate too.
    let e = delivery(
        ok.id.clone(),
        "h-1",
        gridsync_model::DeliveryStatus::Requested,
        t,
    );
    let err = refused(&mut doc, |d| record_delivery(d, &ctx, &e).map(|_| ()));
    assert!(matches!(err, RecordError::DuplicateId(_)), "{err:?}");

    // Unknown building for this context.
    let elsewhere = WriteContext {
        building: "bldg-99",
        ..ctx
    };
    let err = refused(&mut doc, |d| {
        record_visit(d, &elsewhere, &visit(rid(t, 3), "h-1", t)).map(|_| ())
    });
    assert!(matches!(err, RecordError::UnknownBuilding(_)), "{err:?}");

    // Sweeps: a unit not in the building; too many issues.
    let mut s = sweep(rid(t, 4), 1, t);
    s.units_covered.insert("u9".into());
    let err = refused(&mut doc, |d| record_sweep(d, &ctx, &s).map(|_| ()));
    assert!(matches!(err, RecordError::UnknownUnit { .. }), "{err:?}");
    let mut s = sweep(rid(t, 5), 1, t);
    s.issues = vec!["issue".into(); 40];
    let err = refused(&mut doc, |d| record_sweep(d, &ctx, &s).map(|_| ()));
    assert!(
        matches!(
            err,
            RecordError::Field(FieldProblem::TooMany {
                field: "issues",
                ..
            })
        ),
        "{err:?}"
    );

    // Corrections: unknown target, wrong kind, correcting a correction, replacement rules.
    let c = retraction(rid(t, 6), &rid(t, 999), RecordKind::Visit, t);
    let err = refused(&mut doc, |d| record_correction(d, &ctx, &c).map(|_| ()));
    assert!(matches!(err, RecordError::UnknownRecord { .. }), "{err:?}");
    let c = retraction(rid(t, 6), &ok.id, RecordKind::Delivery, t);
    let err = refused(&mut doc, |d| record_correction(d, &ctx, &c).map(|_| ()));
    assert!(
        matches!(
            err,
            RecordError::UnknownRecord {
                kind: RecordKind::Delivery,
                ..
            }
        ),
        "{err:?}"
    );
    let first = retraction(rid(t, 7), &ok.id, RecordKind::Visit, t);
    record_correction(&mut doc, &ctx, &first).expect("valid retraction");
    let c = retraction(rid(t, 8), &first.id, RecordKind::Visit, t);
    let err = refused(&mut doc, |d| record_correction(d, &ctx, &c).map(|_| ()));
    assert!(
        matches!(err, RecordError::CorrectionOfCorrection),
        "{err:?}"
    );
    let mut c = retraction(rid(t, 9), &ok.id, RecordKind::Visit, t);
    c.action = CorrectionAction::ReplaceVisit(Box::new(visit(rid(t, 10), "h-1", t)));
    let err = refused(&mut doc, |d| record_correction(d, &ctx, &c).map(|_| ()));
    assert!(matches!(err, RecordError::ReplacementIdMismatch), "{err:?}");
    let mut replacement = visit(ok.id.clone(), "h-1", t);
    replacement.outcome = VisitOutcome::NotHome;
    c.action = CorrectionAction::ReplaceVisit(Box::new(replacement));
    c.reason = String::new();
    let err = refused(&mut doc, |d| record_correction(d, &ctx, &c).map(|_| ()));
    assert!(
        matches!(err, RecordError::Field(FieldProblem::Empty("reason"))),
        "{err:?}"
    );

    // Writing records into a plan document is refused.
    let mut plan_doc = genesis(DocKind::StreetPlan);
    let err = refused(&mut plan_doc, |d| {
        record_visit(d, &ctx, &visit(rid(t, 11), "h-1", t)).map(|_| ())
    });
    assert!(
        matches!(err, RecordError::NotABuildingDocument(_)),
        "{err:?}"
    );
}

#[test]
fn ids_and_enum_names_are_parsed_strictly() {
    assert_eq!(RecordId::parse(""), Err(RecordIdError::Empty));
    assert!(matches!(
        RecordId::parse("not-a-ulid"),
        Err(RecordIdError::NotUlid(_))
    ));
    let id = rid(NOW, 5);
    assert_eq!(RecordId::parse(id.as_str()), Ok(id.clone()));
    // The lower-case spelling of a ULID would be a second key for the same id.
    assert!(RecordId::parse(&id.as_str().to_lowercase()).is_err());
    let err = "teleported"
        .parse::<VisitOutcome>()
        .expect_err("not an outcome");
    assert_eq!(
        err.to_string(),
        "unknown visit outcome value \"teleported\""
    );
    assert!(
        "delivered "
            .parse::<gridsync_model::DeliveryStatus>()
            .is_err()
    );
}
