//! Slices: concat operands computed straight into the concat's result.

use super::*;

fn slice(of: ValueId, offset_bytes: u64) -> Placement {
    Placement::SliceOf { of, offset_bytes }
}

/// x -> a, x -> b, t = f(x) live across both, c = concat(a, b) -> out.
/// `a` and `b` are slices of `c` at 0 and 512 bytes.
fn concat() -> (Problem, [ValueId; 4]) {
    let mut p = Problem::new();
    let x = p.add_value("x", 512, Placement::External);
    // Ids are handed out in order: c is the fourth value added.
    let c_id = ValueId(4);
    let a = p.add_value("a", 512, slice(c_id, 0));
    let t = p.add_value("t", 512, Placement::Arena);
    let b = p.add_value("b", 512, slice(c_id, 512));
    let c = p.add_value("c", 1024, Placement::Arena);
    assert_eq!(c, c_id);
    let out = p.add_value("out", 1024, Placement::External);
    p.add_step(step("make a", &[x], &[a]));
    p.add_step(step("make t", &[x], &[t]));
    p.add_step(step("make b", &[t], &[b]));
    p.add_step(step("concat", &[a, b], &[c]));
    p.add_step(step("use", &[c], &[out]));
    (p, [a, t, b, c])
}

#[test]
fn slices_sit_inside_their_root_which_lives_from_the_first_slice() {
    let (p, [a, t, b, c]) = concat();
    for reuse in [false, true] {
        let plan = planned(&p, reuse);
        let base = plan.offset_bytes(c).expect("c is in the arena");
        assert_eq!(plan.offset_bytes(a), Some(base));
        assert_eq!(plan.offset_bytes(b), Some(base + 512));
        // c's bytes are taken from a's write on, so t (live while a is)
        // cannot share them.
        assert_eq!(plan.intervals[c.0], interval(0, 4));
        assert!(disjoint(&range(&p, &plan, t), &range(&p, &plan, c)));
    }
}

#[test]
fn the_checker_sees_a_value_over_a_slice_written_earlier() {
    let (p, [_, t, _, c]) = concat();
    let mut bad = planned(&p, true);
    // t over c's first half: a (written at step 0) is still needed there.
    bad.value_offset_bytes[t.0] = bad.value_offset_bytes[c.0];
    let error = check(&p, &bad).expect_err("t overlaps the slice a");
    assert!(matches!(error, PlanError::Overlap { .. }), "{error}");
}

#[test]
fn the_checker_rejects_a_slice_away_from_its_place() {
    let (p, [_, _, b, c]) = concat();
    let mut bad = planned(&p, true);
    bad.value_offset_bytes[b.0] = bad.value_offset_bytes[c.0];
    let error = check(&p, &bad).expect_err("b belongs 512 bytes in");
    let PlanError::AliasOffsetMismatch {
        offset_bytes,
        root_offset_bytes,
        ..
    } = error
    else {
        panic!("expected an offset mismatch, got {error}");
    };
    assert_eq!(root_offset_bytes, offset_bytes + 512);
}

#[test]
fn nested_slices_add_their_offsets() {
    // d = concat(concat(a, b), e): a at 0, b at 256, e at 512 of d.
    let mut p = Problem::new();
    let x = p.add_value("x", 256, Placement::External);
    let (inner, outer) = (ValueId(3), ValueId(5));
    let a = p.add_value("a", 256, slice(inner, 0));
    let b = p.add_value("b", 256, slice(inner, 256));
    let ab = p.add_value("ab", 512, slice(outer, 0));
    let e = p.add_value("e", 256, slice(outer, 512));
    let d = p.add_value("d", 768, Placement::Arena);
    assert_eq!((ab, d), (inner, outer));
    let out = p.add_value("out", 768, Placement::External);
    p.add_step(step("a", &[x], &[a]));
    p.add_step(step("b", &[x], &[b]));
    p.add_step(step("ab", &[a, b], &[ab]));
    p.add_step(step("e", &[x], &[e]));
    p.add_step(step("d", &[ab, e], &[d]));
    p.add_step(step("use", &[d], &[out]));
    let plan = planned(&p, true);
    let base = plan.offset_bytes(d).expect("d is in the arena");
    assert_eq!(plan.offset_bytes(b), Some(base + 256));
    assert_eq!(plan.offset_bytes(e), Some(base + 512));
    assert_eq!(plan.offset_bytes(ab), Some(base));
}

#[test]
fn malformed_slices_are_rejected() {
    // A slice reaching past its root.
    let (mut p, [_, _, b, c]) = concat();
    p.values[b.0].placement = slice(c, 768);
    assert!(matches!(
        err(&p),
        PlanError::AliasLargerThanRoot { bytes: 1280, .. }
    ));
    // A slice written after its root is complete.
    let (mut p, [_, _, _, c]) = concat();
    let late = p.add_value("late", 64, slice(c, 0));
    p.steps[4].writes.push(late);
    assert!(matches!(err(&p), PlanError::SliceAfterTarget { .. }));
}

#[test]
fn a_root_holding_slices_takes_no_dead_buffer_in_place() {
    // c's slices are written while x2 is live: c may not reuse x2's bytes
    // even though the concat is x2's last reader.
    let mut p = Problem::new();
    let x = p.add_value("x", 1024, Placement::External);
    let x2 = p.add_value("x2", 1024, Placement::Arena);
    let c_id = ValueId(4);
    let a = p.add_value("a", 512, slice(c_id, 0));
    let b = p.add_value("b", 512, slice(c_id, 512));
    let c = p.add_value("c", 1024, Placement::Arena);
    let out = p.add_value("out", 1024, Placement::External);
    p.add_step(step("x2", &[x], &[x2]));
    p.add_step(step("a", &[x2], &[a]));
    p.add_step(step("b", &[x2], &[b]));
    let mut concat = step("concat", &[a, b, x2], &[c]);
    concat.in_place.push(in_place(c, x2));
    p.add_step(concat);
    p.add_step(step("use", &[c], &[out]));
    let plan = planned(&p, true);
    assert!(plan.in_place.is_empty());
    assert!(disjoint(&range(&p, &plan, x2), &range(&p, &plan, c)));
}
