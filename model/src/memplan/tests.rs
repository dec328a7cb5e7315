use std::ops::Range;

use super::*;

fn step(name: &str, reads: &[ValueId], writes: &[ValueId]) -> Step {
    Step {
        name: name.into(),
        reads: reads.to_vec(),
        writes: writes.to_vec(),
        ..Step::default()
    }
}

fn in_place(output: ValueId, input: ValueId) -> InPlace {
    InPlace { output, input }
}

/// Plans with 64-byte alignment and insists the checker accepts the result.
fn planned(problem: &Problem, reuse: bool) -> Plan {
    let result = plan(
        problem,
        Options {
            reuse,
            alignment_bytes: 64,
        },
    )
    .expect("problem is valid");
    check(problem, &result).expect("plan passes the checker");
    result
}

fn range(problem: &Problem, plan: &Plan, v: ValueId) -> Range<u64> {
    let offset = plan.offset_bytes(v).expect("arena value");
    offset..offset + problem.values[v.0].bytes
}

fn disjoint(a: &Range<u64>, b: &Range<u64>) -> bool {
    a.end <= b.start || b.end <= a.start
}

fn interval(first: usize, last: usize) -> Option<Interval> {
    Some(Interval {
        first_step: StepId(first),
        last_step: StepId(last),
    })
}

/// x -> a -> b -> c -> d -> y, every tensor 1000 bytes; `with_in_place`
/// declares each middle op elementwise.
fn chain(with_in_place: bool) -> (Problem, Vec<ValueId>) {
    let mut p = Problem::new();
    let x = p.add_value("x", 1000, Placement::External);
    let mids: Vec<ValueId> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| p.add_value(*n, 1000, Placement::Arena))
        .collect();
    let y = p.add_value("y", 1000, Placement::External);
    p.add_step(step("s0", &[x], &[mids[0]]));
    for i in 1..mids.len() {
        let mut s = step(&format!("s{i}"), &[mids[i - 1]], &[mids[i]]);
        if with_in_place {
            s.in_place.push(in_place(mids[i], mids[i - 1]));
        }
        p.add_step(s);
    }
    p.add_step(step("s4", &[mids[3]], &[y]));
    (p, mids)
}

#[test]
fn chain_needs_only_two_buffers() {
    let (p, mids) = chain(false);
    let packed = planned(&p, true);
    // Two 1000-byte buffers, the second at the next 64-byte boundary.
    assert_eq!(packed.arena_bytes, 2048);
    assert_eq!(packed.intervals[mids[1].0], interval(1, 2));
    assert_eq!(packed.sum_bytes, 4000);
    assert_eq!(packed.largest_bytes, 1000);
    assert!(packed.in_place.is_empty());

    let bumped = planned(&p, false);
    assert_eq!(bumped.arena_bytes, 4096);
    let offsets: Vec<_> = mids.iter().map(|&v| bumped.offset_bytes(v)).collect();
    assert_eq!(offsets, [Some(0), Some(1024), Some(2048), Some(3072)]);
}

#[test]
fn elementwise_chain_runs_in_one_buffer() {
    let (p, mids) = chain(true);
    let packed = planned(&p, true);
    assert_eq!(packed.arena_bytes, 1024);
    assert_eq!(packed.in_place.len(), 3);
    assert_eq!(
        packed.in_place[0],
        InPlaceMerge {
            step: StepId(1),
            output: mids[1],
            input: mids[0]
        }
    );
    assert!(mids.iter().all(|&v| packed.offset_bytes(v) == Some(0)));
    // Differential reference: no merges without reuse.
    assert!(planned(&p, false).in_place.is_empty());
}

/// s0: a = f(x); s1: b = g(a) [b may take a]; s2: c = h(a) [c may take a];
/// s3: d = b + c; s4: y = k(d).
fn diamond() -> (Problem, [ValueId; 4]) {
    let mut p = Problem::new();
    let x = p.add_value("x", 1000, Placement::External);
    let a = p.add_value("a", 1000, Placement::Arena);
    let b = p.add_value("b", 1000, Placement::Arena);
    let c = p.add_value("c", 1000, Placement::Arena);
    let d = p.add_value("d", 1000, Placement::Arena);
    let y = p.add_value("y", 1000, Placement::External);
    p.add_step(step("s0", &[x], &[a]));
    let mut s1 = step("s1", &[a], &[b]);
    s1.in_place.push(in_place(b, a));
    p.add_step(s1);
    let mut s2 = step("s2", &[a], &[c]);
    s2.in_place.push(in_place(c, a));
    p.add_step(s2);
    p.add_step(step("s3", &[b, c], &[d]));
    p.add_step(step("s4", &[d], &[y]));
    (p, [a, b, c, d])
}

#[test]
fn diamond_keeps_the_branch_value_live() {
    let (p, [a, b, c, _]) = diamond();
    let packed = planned(&p, true);
    assert_eq!(packed.intervals[a.0], interval(0, 2));
    // b must not take a: s2 still reads a. c may, since a dies at s2.
    assert_eq!(
        packed.in_place,
        [InPlaceMerge {
            step: StepId(2),
            output: c,
            input: a
        }]
    );
    assert!(disjoint(&range(&p, &packed, a), &range(&p, &packed, b)));
    assert_eq!(packed.offset_bytes(c), packed.offset_bytes(a));
    // b, c and d are all live at s3.
    assert_eq!(packed.arena_bytes, 3072);
}

#[test]
fn dataflow_graph_has_an_edge_per_read() {
    let (p, [a, b, c, d]) = diamond();
    let graph = dataflow_graph(&p).expect("valid");
    assert_eq!(graph.node_count(), 5);
    let mut edges: Vec<(usize, usize, ValueId)> = graph
        .edge_indices()
        .filter_map(|e| {
            graph
                .edge_endpoints(e)
                .map(|(s, t)| (s.index(), t.index(), graph[e]))
        })
        .collect();
    edges.sort();
    // The read of external x by s0 has no producer, hence no edge.
    assert_eq!(
        edges,
        [(0, 1, a), (0, 2, a), (1, 3, b), (2, 3, c), (3, 4, d)]
    );
}

/// A residual block: skip = relu(x); h = conv1(skip); y = conv2(h) + skip
/// with the add fused into conv2's epilogue; out = relu(y). Both convs need an
/// im2col temporary. `skip_used_after` adds a later reader of `skip`.
fn residual(skip_used_after: bool) -> (Problem, [ValueId; 3]) {
    let mut p = Problem::new();
    let x = p.add_value("x", 4096, Placement::External);
    let w1 = p.add_value("w1", 2304, Placement::External);
    let w2 = p.add_value("w2", 2304, Placement::External);
    let skip = p.add_value("skip", 4096, Placement::Arena);
    let h = p.add_value("h", 4096, Placement::Arena);
    let y = p.add_value("y", 4096, Placement::Arena);
    let out = p.add_value("out", 4096, Placement::External);
    p.add_step(step("relu0", &[x], &[skip]));
    let mut conv1 = step("conv1", &[skip, w1], &[h]);
    conv1.temporary_bytes.push(9 * 4096);
    p.add_step(conv1);
    let mut conv2 = step("conv2_add", &[h, w2, skip], &[y]);
    conv2.temporary_bytes.push(9 * 4096);
    conv2.in_place.push(in_place(y, skip));
    p.add_step(conv2);
    let last_reads: &[ValueId] = if skip_used_after { &[y, skip] } else { &[y] };
    p.add_step(step("relu1", last_reads, &[out]));
    (p, [skip, h, y])
}

#[test]
fn residual_add_writes_into_the_dead_skip() {
    let (p, [skip, h, y]) = residual(false);
    let packed = planned(&p, true);
    assert_eq!(
        packed.in_place,
        [InPlaceMerge {
            step: StepId(2),
            output: y,
            input: skip
        }]
    );
    assert_eq!(packed.offset_bytes(y), packed.offset_bytes(skip));
    assert!(disjoint(&range(&p, &packed, h), &range(&p, &packed, skip)));
    // Both im2col temporaries share the bottom; skip/y and h sit above.
    assert_eq!(
        packed.temporary_offset_bytes,
        [vec![], vec![0], vec![0], vec![]]
    );
    assert_eq!(packed.arena_bytes, 9 * 4096 + 2 * 4096);

    let (p, [skip, _, y]) = residual(true);
    let packed = planned(&p, true);
    assert!(packed.in_place.is_empty());
    assert!(disjoint(&range(&p, &packed, y), &range(&p, &packed, skip)));
    assert_eq!(packed.arena_bytes, 9 * 4096 + 3 * 4096);
}

#[test]
fn alias_keeps_its_root_alive() {
    let mut p = Problem::new();
    let x = p.add_value("x", 512, Placement::External);
    let a = p.add_value("a", 512, Placement::Arena);
    let r = p.add_value("r", 512, Placement::AliasOf(a));
    let b = p.add_value("b", 512, Placement::Arena);
    let c = p.add_value("c", 512, Placement::Arena);
    let out = p.add_value("out", 512, Placement::External);
    p.add_step(step("s0", &[x], &[a]));
    p.add_step(step("s1", &[x], &[b]));
    // Only the view is read after s0; a's bytes must survive until here.
    p.add_step(step("s2", &[r, b], &[c]));
    p.add_step(step("s3", &[c], &[out]));
    let packed = planned(&p, true);
    assert_eq!(packed.intervals[a.0], interval(0, 2));
    assert_eq!(packed.intervals[r.0], interval(0, 2));
    assert_eq!(packed.offset_bytes(r), packed.offset_bytes(a));
    assert!(disjoint(&range(&p, &packed, a), &range(&p, &packed, b)));
}

#[test]
fn a_view_step_and_chained_aliases_extend_the_root() {
    let mut p = Problem::new();
    let x = p.add_value("x", 256, Placement::External);
    let a = p.add_value("a", 256, Placement::Arena);
    let v1 = p.add_value("v1", 256, Placement::AliasOf(a));
    let v2 = p.add_value("v2", 128, Placement::AliasOf(v1));
    let b = p.add_value("b", 256, Placement::Arena);
    let out = p.add_value("out", 256, Placement::External);
    p.add_step(step("s0", &[x], &[a]));
    p.add_step(step("s1", &[x], &[b]));
    // A reshape step that writes the view v1; nobody reads v1 itself.
    p.add_step(step("reshape", &[a], &[v1]));
    p.add_step(step("s3", &[v2, b], &[out]));
    let packed = planned(&p, true);
    assert_eq!(packed.intervals[a.0], interval(0, 3));
    assert_eq!(packed.offset_bytes(v2), packed.offset_bytes(a));
    assert!(disjoint(&range(&p, &packed, a), &range(&p, &packed, b)));
}

#[test]
fn temporaries_of_different_steps_share_bytes() {
    let mut p = Problem::new();
    let x = p.add_value("x", 100, Placement::External);
    let a = p.add_value("a", 100, Placement::Arena);
    let b = p.add_value("b", 100, Placement::Arena);
    let out = p.add_value("out", 100, Placement::External);
    let mut s0 = step("s0", &[x], &[a]);
    s0.temporary_bytes.push(4096);
    p.add_step(s0);
    let mut s1 = step("s1", &[a], &[b]);
    s1.temporary_bytes = vec![4096, 64];
    p.add_step(s1);
    p.add_step(step("s2", &[b], &[out]));
    let packed = planned(&p, true);
    assert_eq!(packed.temporary_offset_bytes[0], [0]);
    assert_eq!(packed.temporary_offset_bytes[1][0], 0);
    // a, b and s1's small temporary all live at s1, above the big one.
    assert_eq!(packed.arena_bytes, 4096 + 128 + 128 + 64);
    // Temporaries are not tensors: they do not count towards sum_bytes.
    assert_eq!(packed.sum_bytes, 200);

    let bumped = planned(&p, false);
    assert_eq!(bumped.arena_bytes, 128 + 128 + 4096 + 4096 + 64);
}

#[test]
fn external_values_are_never_placed_or_reused() {
    let mut p = Problem::new();
    let x = p.add_value("x", 640, Placement::External);
    let xv = p.add_value("x_flat", 640, Placement::AliasOf(x));
    let w = p.add_value("w", 640, Placement::External);
    let a = p.add_value("a", 640, Placement::Arena);
    let out = p.add_value("out", 640, Placement::External);
    // a may not overwrite the caller's input even though the op allows it.
    let mut s0 = step("s0", &[xv, w], &[a]);
    s0.in_place.push(in_place(a, xv));
    p.add_step(s0);
    let mut s1 = step("s1", &[a], &[out]);
    s1.in_place.push(in_place(out, a));
    p.add_step(s1);
    for reuse in [false, true] {
        let planned = planned(&p, reuse);
        for v in [x, xv, w, out] {
            assert_eq!(planned.value_offset_bytes[v.0], None);
            assert_eq!(planned.intervals[v.0], None);
        }
        assert!(planned.in_place.is_empty());
        assert_eq!(planned.sum_bytes, 640);
        assert_eq!(planned.arena_bytes, 640);
    }
}

#[test]
fn two_outputs_cannot_take_the_same_dead_input() {
    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    let a = p.add_value("a", 64, Placement::Arena);
    let b = p.add_value("b", 64, Placement::Arena);
    let c = p.add_value("c", 64, Placement::Arena);
    p.add_step(step("s0", &[x], &[a]));
    let mut split = step("split", &[a], &[b, c]);
    split.in_place = vec![in_place(b, a), in_place(c, a)];
    p.add_step(split);
    let packed = planned(&p, true);
    assert_eq!(
        packed.in_place,
        [InPlaceMerge {
            step: StepId(1),
            output: b,
            input: a
        }]
    );
    assert!(disjoint(&range(&p, &packed, b), &range(&p, &packed, c)));

    // Granting both merges would put b and c on the same bytes.
    let mut both = packed.clone();
    both.value_offset_bytes[c.0] = both.value_offset_bytes[a.0];
    both.in_place.push(InPlaceMerge {
        step: StepId(1),
        output: c,
        input: a,
    });
    assert!(matches!(check(&p, &both), Err(PlanError::Overlap { .. })));
}

#[test]
fn an_output_larger_than_its_input_is_not_merged() {
    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    let a = p.add_value("a", 64, Placement::Arena);
    let b = p.add_value("b", 128, Placement::Arena);
    p.add_step(step("s0", &[x], &[a]));
    let mut s1 = step("s1", &[a], &[b]);
    s1.in_place.push(in_place(b, a));
    p.add_step(s1);
    assert!(planned(&p, true).in_place.is_empty());
}

fn err(p: &Problem) -> PlanError {
    plan(p, Options::default()).expect_err("problem is invalid")
}

/// A plan of the right shape for `p` (all zeros), to feed malformed problems
/// to the checker.
fn blank_plan(p: &Problem) -> Plan {
    Plan {
        alignment_bytes: 64,
        value_offset_bytes: vec![None; p.values.len()],
        temporary_offset_bytes: p
            .steps
            .iter()
            .map(|s| vec![0; s.temporary_bytes.len()])
            .collect(),
        arena_bytes: 0,
        in_place: vec![],
        intervals: vec![None; p.values.len()],
        sum_bytes: 0,
        largest_bytes: 0,
    }
}

#[test]
fn a_read_before_its_definition_names_the_step() {
    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    let a = p.add_value("a", 64, Placement::Arena);
    let b = p.add_value("b", 64, Placement::Arena);
    p.add_step(step("early", &[a], &[b]));
    p.add_step(step("late", &[x], &[a]));
    let expected = PlanError::ReadBeforeDefinition {
        step: "early".into(),
        value: "a".into(),
        defined_by: "late".into(),
    };
    assert_eq!(err(&p), expected);
    assert_eq!(check(&p, &blank_plan(&p)), Err(expected.clone()));
    assert!(expected.to_string().contains("step 'early'"));

    // Reading one's own output is the same mistake.
    let mut p = Problem::new();
    let a = p.add_value("a", 64, Placement::Arena);
    p.add_step(step("loop", &[a], &[a]));
    assert_eq!(
        err(&p),
        PlanError::ReadBeforeDefinition {
            step: "loop".into(),
            value: "a".into(),
            defined_by: "loop".into()
        }
    );
}

#[test]
fn malformed_problems_are_rejected_by_planner_and_checker() {
    let mut cases: Vec<(Problem, PlanError)> = Vec::new();

    let mut p = Problem::new();
    let a = p.add_value("a", 64, Placement::Arena);
    let b = p.add_value("b", 64, Placement::Arena);
    p.add_step(step("s0", &[a], &[b]));
    cases.push((
        p,
        PlanError::NeverDefined {
            step: "s0".into(),
            value: "a".into(),
        },
    ));

    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    p.add_value("orphan", 64, Placement::Arena);
    let b = p.add_value("b", 64, Placement::Arena);
    p.add_step(step("s0", &[x], &[b]));
    cases.push((
        p,
        PlanError::ArenaValueUndefined {
            value: "orphan".into(),
        },
    ));

    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    let a = p.add_value("a", 64, Placement::Arena);
    p.add_step(step("s0", &[x], &[a]));
    p.add_step(step("s1", &[x], &[a]));
    cases.push((
        p,
        PlanError::DefinedTwice {
            value: "a".into(),
            first_step: "s0".into(),
            second_step: "s1".into(),
        },
    ));

    let mut p = Problem::new();
    p.add_value("u", 64, Placement::AliasOf(ValueId(1)));
    p.add_value("v", 64, Placement::AliasOf(ValueId(0)));
    cases.push((p, PlanError::AliasCycle { value: "u".into() }));

    let mut p = Problem::new();
    p.add_value("u", 64, Placement::AliasOf(ValueId(7)));
    cases.push((
        p,
        PlanError::UnknownAliasTarget {
            value: "u".into(),
            index: 7,
            count: 1,
        },
    ));

    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    p.add_value("big_view", 128, Placement::AliasOf(x));
    cases.push((
        p,
        PlanError::AliasLargerThanRoot {
            value: "big_view".into(),
            bytes: 128,
            root: "x".into(),
            root_bytes: 64,
        },
    ));

    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    p.add_step(step("s0", &[x, ValueId(9)], &[]));
    cases.push((
        p,
        PlanError::UnknownValue {
            step: "s0".into(),
            index: 9,
            count: 1,
        },
    ));

    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    let a = p.add_value("a", 64, Placement::Arena);
    let v = p.add_value("v", 64, Placement::AliasOf(a));
    p.add_step(step("view", &[x], &[v]));
    p.add_step(step("def", &[x], &[a]));
    cases.push((
        p,
        PlanError::AliasBeforeTarget {
            step: "view".into(),
            value: "v".into(),
            target: "a".into(),
            target_defined_by: "def".into(),
        },
    ));

    // An unwritten view of a view exists only once the inner view is made.
    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    let a = p.add_value("a", 64, Placement::Arena);
    let inner = p.add_value("inner", 64, Placement::AliasOf(a));
    let outer = p.add_value("outer", 64, Placement::AliasOf(inner));
    p.add_step(step("def", &[x], &[a]));
    p.add_step(step("use", &[outer], &[]));
    p.add_step(step("reshape", &[a], &[inner]));
    cases.push((
        p,
        PlanError::ReadBeforeDefinition {
            step: "use".into(),
            value: "outer".into(),
            defined_by: "reshape".into(),
        },
    ));

    for (p, expected) in &cases {
        assert_eq!(&err(p), expected);
        assert_eq!(
            &check(p, &blank_plan(p)).expect_err("checker rejects it too"),
            expected
        );
    }
}

#[test]
fn in_place_declarations_must_fit_their_step() {
    let mut p = Problem::new();
    let x = p.add_value("x", 64, Placement::External);
    let a = p.add_value("a", 64, Placement::Arena);
    let b = p.add_value("b", 64, Placement::Arena);
    p.add_step(step("s0", &[x], &[a]));
    let mut s1 = step("s1", &[x], &[b]);
    s1.in_place.push(in_place(b, a));
    p.add_step(s1);
    assert!(matches!(
        err(&p),
        PlanError::InvalidInPlace {
            reason: "the step does not read the input",
            ..
        }
    ));
    assert_eq!(check(&p, &blank_plan(&p)), Err(err(&p)));

    p.steps[1].in_place = vec![in_place(a, x)];
    assert!(matches!(
        err(&p),
        PlanError::InvalidInPlace {
            reason: "the step does not write the output",
            ..
        }
    ));
}

#[test]
fn zero_alignment_is_rejected() {
    let (p, _) = chain(false);
    assert_eq!(
        plan(
            &p,
            Options {
                reuse: true,
                alignment_bytes: 0
            }
        ),
        Err(PlanError::ZeroAlignment)
    );
}

#[test]
fn odd_alignment_still_aligns() {
    let (p, mids) = chain(false);
    let packed = plan(
        &p,
        Options {
            reuse: true,
            alignment_bytes: 48,
        },
    )
    .expect("valid");
    check(&p, &packed).expect("valid plan");
    assert!(mids
        .iter()
        .all(|&v| packed.offset_bytes(v).is_some_and(|o| o % 48 == 0)));
    assert_eq!(packed.arena_bytes % 48, 0);
}

#[test]
fn packing_stays_a_small_multiple_of_the_largest_tensor() {
    // A VGG-like stack: shrinking activations, each conv with an im2col
    // temporary nine times its input.
    let mut p = Problem::new();
    let mut prev = p.add_value("image", 1 << 16, Placement::External);
    for i in 0..12u32 {
        let bytes = (1u64 << 16) >> (i / 3);
        let act = p.add_value(format!("act{i}"), bytes, Placement::Arena);
        let mut conv = step(&format!("conv{i}"), &[prev], &[act]);
        conv.temporary_bytes.push(9 * bytes);
        p.add_step(conv);
        prev = act;
    }
    let packed = planned(&p, true);
    let bumped = planned(&p, false);
    let largest_temporary = 9 << 16;
    assert!(packed.arena_bytes <= largest_temporary + 2 * packed.largest_bytes);
    assert!(bumped.arena_bytes > 4 * packed.arena_bytes);
}

#[test]
fn writing_a_view_is_a_use_of_its_root() {
    let mut p = Problem::new();
    let x = p.add_value("x", 256, Placement::External);
    let a = p.add_value("a", 256, Placement::Arena);
    let v = p.add_value("v", 256, Placement::AliasOf(a));
    let b = p.add_value("b", 256, Placement::Arena);
    let out = p.add_value("out", 256, Placement::External);
    p.add_step(step("s0", &[x], &[a]));
    p.add_step(step("s1", &[x], &[b]));
    // The view op names no operand, so only its write ties it to a.
    p.add_step(step("view", &[], &[v]));
    p.add_step(step("s3", &[b], &[out]));
    let packed = planned(&p, true);
    assert_eq!(packed.intervals[a.0], interval(0, 2));
    assert!(disjoint(&range(&p, &packed, a), &range(&p, &packed, b)));
}

mod checker;
mod slices;
