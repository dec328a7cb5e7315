//! Properties of the arena planner over random dataflow DAGs: plans pass the
//! independent checker in both modes, reuse never costs bytes, the arena is at
//! least the bytes simultaneously live, and the checker catches a buffer moved
//! onto a live one.

use grim_model::memplan::{
    check, plan, InPlace, Options, Placement, Plan, PlanError, Problem, Step, ValueId,
};
use proptest::collection::vec;
use proptest::prelude::*;

/// One value a step defines.
#[derive(Debug, Clone)]
struct WriteSpec {
    bytes: u64,
    /// A graph output rather than an intermediate.
    external: bool,
    /// Declare the write in place of this read of the step (index mod reads).
    in_place_read: Option<usize>,
    /// Take the size of that read, so the candidate fits and only liveness
    /// decides.
    same_size: bool,
}

#[derive(Debug, Clone)]
struct StepSpec {
    /// Picks among the values available so far (index mod count).
    reads: Vec<usize>,
    writes: Vec<WriteSpec>,
    temporary_bytes: Vec<u64>,
    /// Make this step a view op instead: it reads the picked value and writes
    /// an alias of it.
    view_of: Option<usize>,
    /// After the step, add a view nobody writes of the picked value.
    unwritten_view_of: Option<usize>,
}

fn bytes() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0u64),
        1u64..200,
        Just(256u64),
        Just(1000u64),
        1u64..5000
    ]
}

fn write_spec() -> impl Strategy<Value = WriteSpec> {
    (
        bytes(),
        prop::bool::weighted(0.15),
        prop::option::weighted(0.6, any::<usize>()),
        any::<bool>(),
    )
        .prop_map(|(bytes, external, in_place_read, same_size)| WriteSpec {
            bytes,
            external,
            in_place_read,
            same_size,
        })
}

fn step_spec() -> impl Strategy<Value = StepSpec> {
    (
        vec(any::<usize>(), 1..4),
        vec(write_spec(), 1..3),
        vec(bytes(), 0..3),
        prop::option::weighted(0.15, any::<usize>()),
        prop::option::weighted(0.2, any::<usize>()),
    )
        .prop_map(
            |(reads, writes, temporary_bytes, view_of, unwritten_view_of)| StepSpec {
                reads,
                writes,
                temporary_bytes,
                view_of,
                unwritten_view_of,
            },
        )
}

fn problem() -> impl Strategy<Value = Problem> {
    (vec(bytes(), 1..3), vec(step_spec(), 1..16)).prop_map(|(inputs, specs)| build(&inputs, &specs))
}

fn pick(available: &[ValueId], k: usize) -> ValueId {
    available[k % available.len()]
}

fn build(inputs: &[u64], specs: &[StepSpec]) -> Problem {
    let mut p = Problem::new();
    let mut available: Vec<ValueId> = inputs
        .iter()
        .enumerate()
        .map(|(i, &b)| p.add_value(format!("in{i}"), b, Placement::External))
        .collect();
    for (i, spec) in specs.iter().enumerate() {
        if let Some(k) = spec.view_of {
            let target = pick(&available, k);
            let bytes = p.values[target.0].bytes;
            let view = p.add_value(format!("view{i}"), bytes, Placement::AliasOf(target));
            p.add_step(Step {
                name: format!("s{i}"),
                reads: vec![target],
                writes: vec![view],
                temporary_bytes: spec.temporary_bytes.clone(),
                in_place: vec![],
            });
            available.push(view);
            continue;
        }
        let reads: Vec<ValueId> = spec.reads.iter().map(|&k| pick(&available, k)).collect();
        let mut step = Step {
            name: format!("s{i}"),
            reads,
            temporary_bytes: spec.temporary_bytes.clone(),
            ..Step::default()
        };
        for (j, w) in spec.writes.iter().enumerate() {
            let input = w.in_place_read.map(|k| step.reads[k % step.reads.len()]);
            let bytes = match input {
                Some(input) if w.same_size => p.values[input.0].bytes,
                _ => w.bytes,
            };
            let placement = if w.external {
                Placement::External
            } else {
                Placement::Arena
            };
            let output = p.add_value(format!("v{i}_{j}"), bytes, placement);
            step.writes.push(output);
            if let Some(input) = input {
                step.in_place.push(InPlace { output, input });
            }
        }
        available.extend(step.writes.iter().copied());
        p.add_step(step);
        if let Some(k) = spec.unwritten_view_of {
            let target = pick(&available, k);
            let bytes = p.values[target.0].bytes;
            available.push(p.add_value(format!("uview{i}"), bytes, Placement::AliasOf(target)));
        }
    }
    p
}

/// The test's own view of the problem: alias roots and, for arena roots,
/// `[definition, last use]`.
struct Lives {
    root: Vec<usize>,
    live: Vec<Option<(usize, usize)>>,
}

fn lives(p: &Problem) -> Lives {
    let root: Vec<usize> = (0..p.values.len())
        .map(|mut v| {
            while let Placement::AliasOf(t) = p.values[v].placement {
                v = t.0;
            }
            v
        })
        .collect();
    let mut live = vec![None; p.values.len()];
    for (s, step) in p.steps.iter().enumerate() {
        for w in &step.writes {
            if p.values[w.0].placement == Placement::Arena {
                live[w.0] = Some((s, s));
            }
        }
        for v in step.reads.iter().chain(&step.writes) {
            if let Some((_, last)) = live[root[v.0]].as_mut() {
                *last = s;
            }
        }
    }
    Lives { root, live }
}

/// Bytes that must coexist at the busiest step: live arena buffers plus the
/// step's temporaries, where an output merged in place adds nothing at its
/// merge step (it sits inside its input).
fn live_bytes_lower_bound(p: &Problem, plan: &Plan) -> u64 {
    let lives = lives(p);
    (0..p.steps.len())
        .map(|s| {
            let buffers: u64 = lives
                .live
                .iter()
                .enumerate()
                .filter(|(_, l)| l.is_some_and(|(first, last)| first <= s && s <= last))
                .map(|(v, _)| p.values[v].bytes)
                .sum();
            let merged: u64 = plan
                .in_place
                .iter()
                .filter(|m| m.step.0 == s)
                .map(|m| p.values[m.output.0].bytes)
                .sum();
            buffers - merged + p.steps[s].temporary_bytes.iter().sum::<u64>()
        })
        .max()
        .unwrap_or(0)
}

/// Moves one buffer (with its views) onto bytes of another buffer it is live
/// with (`shift` picks an aligned position inside the other buffer), and drops
/// the merges that involved the moved buffer; `None` if the problem has no two
/// such buffers at different offsets.
fn corrupt(p: &Problem, plan: &Plan, shift: u64) -> Option<Plan> {
    let lives = lives(p);
    let offset = |v: usize| plan.value_offset_bytes[v];
    for s in 0..p.steps.len() {
        let live: Vec<usize> = (0..p.values.len())
            .filter(|&v| {
                p.values[v].bytes > 0 && lives.live[v].is_some_and(|(f, l)| f <= s && s <= l)
            })
            .collect();
        for &a in &live {
            for &b in &live {
                // Moving the smaller onto the larger keeps it inside the arena.
                if a != b && p.values[a].bytes <= p.values[b].bytes && offset(a) != offset(b) {
                    let b_offset = offset(b)?;
                    let positions = (p.values[b].bytes - 1) / plan.alignment_bytes + 1;
                    let shifted = b_offset + shift % positions * plan.alignment_bytes;
                    let target = if shifted + p.values[a].bytes <= plan.arena_bytes {
                        shifted
                    } else {
                        b_offset
                    };
                    let mut bad = plan.clone();
                    for v in 0..p.values.len() {
                        if lives.root[v] == a {
                            bad.value_offset_bytes[v] = Some(target);
                        }
                    }
                    bad.in_place
                        .retain(|m| m.output.0 != a && lives.root[m.input.0] != a);
                    return Some(bad);
                }
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plans_pass_the_checker_and_reuse_never_costs(p in problem()) {
        let bumped = plan(&p, Options { reuse: false, alignment_bytes: 64 }).expect("generated problems are valid");
        let packed = plan(&p, Options { reuse: true, alignment_bytes: 64 }).expect("generated problems are valid");
        prop_assert_eq!(check(&p, &bumped), Ok(()));
        prop_assert_eq!(check(&p, &packed), Ok(()));
        prop_assert!(bumped.in_place.is_empty());
        prop_assert!(packed.arena_bytes <= bumped.arena_bytes,
            "packed {} > bump {}", packed.arena_bytes, bumped.arena_bytes);
        for planned in [&bumped, &packed] {
            let bound = live_bytes_lower_bound(&p, planned);
            prop_assert!(planned.arena_bytes >= bound, "arena {} below live bytes {}", planned.arena_bytes, bound);
        }
        // A bump allocator pays for every byte of every buffer.
        let temporaries: u64 = p.steps.iter().flat_map(|s| &s.temporary_bytes).sum();
        prop_assert!(bumped.arena_bytes >= packed.sum_bytes + temporaries);
    }

    #[test]
    fn moving_a_buffer_onto_a_live_one_fails_the_check(p in problem(), reuse in any::<bool>(), shift in any::<u64>()) {
        let good = plan(&p, Options { reuse, alignment_bytes: 64 }).expect("generated problems are valid");
        if let Some(bad) = corrupt(&p, &good, shift) {
            let result = check(&p, &bad);
            prop_assert!(matches!(result, Err(PlanError::Overlap { .. })), "got {:?}", result);
        }
    }

    #[test]
    fn moving_a_temporary_onto_a_live_buffer_fails_the_check(p in problem()) {
        let good = plan(&p, Options::default()).expect("generated problems are valid");
        let lives = lives(&p);
        let target = p.steps.iter().enumerate().find_map(|(s, step)| {
            let index = step.temporary_bytes.iter().position(|&t| t > 0)?;
            let v = (0..p.values.len()).find(|&v| {
                p.values[v].bytes > 0 && lives.live[v].is_some_and(|(f, l)| f <= s && s <= l)
            })?;
            Some((s, index, v))
        });
        if let Some((s, index, v)) = target {
            let mut bad = good.clone();
            bad.temporary_offset_bytes[s][index] = good.value_offset_bytes[v].expect("arena buffer");
            // Grow the arena so the overlap, not the bounds, is what fails.
            bad.arena_bytes += p.steps[s].temporary_bytes[index];
            let result = check(&p, &bad);
            prop_assert!(matches!(result, Err(PlanError::Overlap { .. })), "got {:?}", result);
        }
    }
}
