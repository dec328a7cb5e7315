//! The checker against plans broken on purpose: each must be refused with
//! the error that names what is wrong.

use super::*;

#[test]
fn checker_rejects_overlapping_live_buffers() {
    let (p, [a, b, _, _]) = diamond();
    let mut bad = planned(&p, true);
    bad.value_offset_bytes[b.0] = bad.value_offset_bytes[a.0];
    let error = check(&p, &bad).expect_err("a and b are both live at s1");
    let PlanError::Overlap {
        step,
        first,
        second,
        first_range,
        second_range,
    } = &error
    else {
        panic!("expected an overlap, got {error}");
    };
    assert_eq!(step, "s1");
    let mut names = [first.to_string(), second.to_string()];
    names.sort();
    assert_eq!(names, ["value 'a'", "value 'b'"]);
    assert!(first_range.start < second_range.end && second_range.start < first_range.end);
}

#[test]
fn checker_rejects_a_temporary_on_a_live_value() {
    let (p, [skip, _, _]) = residual(false);
    let mut bad = planned(&p, true);
    bad.temporary_offset_bytes[1][0] = bad.offset_bytes(skip).expect("arena value");
    bad.arena_bytes += 9 * 4096;
    let error = check(&p, &bad).expect_err("the im2col buffer would clobber skip");
    assert!(
        matches!(&error, PlanError::Overlap { step, .. } if step == "conv1"),
        "unexpected error {error}"
    );
    assert!(
        error.to_string().contains("temporary #0 of step 'conv1'"),
        "{error}"
    );
}

#[test]
fn checker_rejects_bad_offsets() {
    let (p, mids) = chain(false);
    let good = planned(&p, true);

    let mut bad = good.clone();
    bad.value_offset_bytes[mids[0].0] = Some(32);
    assert!(matches!(
        check(&p, &bad),
        Err(PlanError::Misaligned {
            offset_bytes: 32,
            ..
        })
    ));

    let mut bad = good.clone();
    bad.arena_bytes = 1024;
    assert!(matches!(
        check(&p, &bad),
        Err(PlanError::OutsideArena {
            arena_bytes: 1024,
            ..
        })
    ));

    let mut bad = good.clone();
    bad.value_offset_bytes[mids[2].0] = None;
    assert!(matches!(
        check(&p, &bad),
        Err(PlanError::MissingOffset { .. })
    ));

    let mut bad = good.clone();
    bad.value_offset_bytes[0] = Some(0);
    assert!(matches!(
        check(&p, &bad),
        Err(PlanError::ExternalPlaced { .. })
    ));

    let mut bad = good.clone();
    bad.temporary_offset_bytes.pop();
    assert!(matches!(check(&p, &bad), Err(PlanError::PlanShape { .. })));
}

#[test]
fn checker_rejects_an_alias_away_from_its_root() {
    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    let a = p.add_value("a", 64, Placement::Arena);
    let v = p.add_value("v", 64, Placement::AliasOf(a));
    p.add_step(step("s0", &[x], &[a]));
    p.add_step(step("s1", &[v], &[]));
    let mut bad = planned(&p, true);
    bad.value_offset_bytes[v.0] = Some(64);
    bad.arena_bytes = 128;
    assert!(matches!(
        check(&p, &bad),
        Err(PlanError::AliasOffsetMismatch {
            offset_bytes: 64,
            root_offset_bytes: 0,
            ..
        })
    ));
}

#[test]
fn checker_rejects_undeclared_or_premature_merges() {
    // Undeclared: the chain's ops are not elementwise here.
    let (p, mids) = chain(false);
    let mut bad = planned(&p, true);
    bad.value_offset_bytes[mids[1].0] = bad.value_offset_bytes[mids[0].0];
    bad.in_place.push(InPlaceMerge {
        step: StepId(1),
        output: mids[1],
        input: mids[0],
    });
    let error = check(&p, &bad).expect_err("not declared");
    assert!(
        matches!(&error, PlanError::BadInPlace { reason, .. } if reason == "the step does not declare it")
    );

    // Declared, but a is still read at s2.
    let (p, [a, b, _, _]) = diamond();
    let mut bad = planned(&p, true);
    bad.value_offset_bytes[b.0] = bad.value_offset_bytes[a.0];
    bad.in_place.push(InPlaceMerge {
        step: StepId(1),
        output: b,
        input: a,
    });
    let error = check(&p, &bad).expect_err("a is live after s1");
    assert!(
        error.to_string().contains("still used by step 's2'"),
        "{error}"
    );

    // Declared and legal, but the output does not sit on the input.
    let (p, mids) = chain(true);
    let mut bad = planned(&p, true);
    bad.value_offset_bytes[mids[1].0] = Some(1024);
    bad.arena_bytes = 2048;
    let error = check(&p, &bad).expect_err("offsets differ");
    assert!(error.to_string().contains("different offsets"), "{error}");
}

#[test]
fn checker_sees_an_overlap_behind_an_in_place_pair() {
    // y (small) sits at the start of the dead a it was written into; h is
    // moved into the part of a that y does not cover, still live at s2.
    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    let a = p.add_value("a", 4096, Placement::Arena);
    let h = p.add_value("h", 1024, Placement::Arena);
    let y = p.add_value("y", 1024, Placement::Arena);
    let out = p.add_value("out", 64, Placement::External);
    p.add_step(step("s0", &[x], &[a]));
    p.add_step(step("s1", &[x], &[h]));
    let mut s2 = step("s2", &[a, h], &[y]);
    s2.in_place.push(in_place(y, a));
    p.add_step(s2);
    p.add_step(step("s3", &[y, h], &[out]));
    let good = planned(&p, true);
    assert_eq!(
        good.in_place,
        [InPlaceMerge {
            step: StepId(2),
            output: y,
            input: a
        }]
    );
    let a_offset = good.offset_bytes(a).expect("arena value");
    let mut bad = good.clone();
    bad.value_offset_bytes[h.0] = Some(a_offset + 2048);
    bad.arena_bytes = bad.arena_bytes.max(a_offset + 4096);
    let error = check(&p, &bad).expect_err("h lands inside a while a is live");
    let PlanError::Overlap { first, second, .. } = &error else {
        panic!("expected an overlap, got {error}");
    };
    let mut names = [first.to_string(), second.to_string()];
    names.sort();
    assert_eq!(names, ["value 'a'", "value 'h'"], "{error}");
}
