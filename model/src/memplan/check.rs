//! The independent plan checker.
//!
//! Deliberately shares no liveness or placement code with the planner (no
//! dataflow graph, no regions): it recomputes when each buffer is live with a
//! plain loop over the steps and then looks for byte overlaps step by step, so
//! a planner bug has to be made twice, differently, to go unnoticed.

use std::collections::HashSet;
use std::ops::Range;

use super::{InPlace, Placement, Plan, PlanError, Problem, Slot, ValueId};

/// Proves that `plan` is a memory-safe plan for `problem`:
///
/// - the tables match the problem, external values (and views of them) have no
///   offset, every arena value and temporary has an aligned offset with its
///   bytes inside `plan.arena_bytes`, and aliases sit at their root's offset;
/// - no two regions live at the same step share a byte, where a buffer is live
///   from its defining step through the last step reading it or one of its
///   aliases, and a temporary is live during its step;
/// - the only exception is a merge listed in [`Plan::in_place`] at its step,
///   which must be declared in the step's [`Step::in_place`](super::Step),
///   have its input's buffer read by no later step, an output no larger than
///   the input, and output and input at the same offset.
///
/// The problem itself is validated as [`plan`](super::plan) does, with the
/// same errors for the same defects.
pub fn check(problem: &Problem, plan: &Plan) -> Result<(), PlanError> {
    let n = problem.values.len();
    let shape = |what: String, expected: usize, found: usize| {
        if expected == found {
            Ok(())
        } else {
            Err(PlanError::PlanShape {
                what,
                expected,
                found,
            })
        }
    };
    shape("value offsets".into(), n, plan.value_offset_bytes.len())?;
    shape(
        "temporary offset lists".into(),
        problem.steps.len(),
        plan.temporary_offset_bytes.len(),
    )?;
    for (s, step) in problem.steps.iter().enumerate() {
        shape(
            format!("temporary offsets for step '{}'", problem.step_label(s)),
            step.temporary_bytes.len(),
            plan.temporary_offset_bytes[s].len(),
        )?;
    }
    if plan.alignment_bytes == 0 {
        return Err(PlanError::ZeroAlignment);
    }

    let facts = Facts::gather(problem)?;
    check_offsets(problem, plan, &facts)?;
    let exempt = check_in_place(problem, plan, &facts)?;
    check_overlaps(problem, plan, &facts, &exempt)
}

/// The problem's structure as the checker sees it.
struct Facts {
    /// Root index of every value.
    root: Vec<usize>,
    /// Byte offset of every value in its root's buffer (slices only).
    offset: Vec<u64>,
    /// Defining step of every value.
    def: Vec<Option<usize>>,
    /// For arena roots, the first step writing the buffer or one of its
    /// slices; meaningless for other values.
    first: Vec<usize>,
    /// For arena roots, the last step touching the buffer (`def` if none);
    /// meaningless for other values.
    last: Vec<usize>,
}

impl Facts {
    fn gather(problem: &Problem) -> Result<Facts, PlanError> {
        let n = problem.values.len();
        for (s, step) in problem.steps.iter().enumerate() {
            for v in step.reads.iter().chain(&step.writes) {
                if v.0 >= n {
                    return Err(PlanError::UnknownValue {
                        step: problem.step_label(s),
                        index: v.0,
                        count: n,
                    });
                }
            }
            for c in &step.in_place {
                for v in [c.output, c.input] {
                    if v.0 >= n {
                        return Err(PlanError::UnknownValue {
                            step: problem.step_label(s),
                            index: v.0,
                            count: n,
                        });
                    }
                }
            }
        }

        let mut root = vec![0; n];
        let mut offset = vec![0u64; n];
        for (v, slot) in root.iter_mut().enumerate() {
            let mut current = v;
            let mut hops = 0;
            while let Some((target, offset_bytes)) = problem.values[current].placement.view() {
                if target.0 >= n {
                    return Err(PlanError::UnknownAliasTarget {
                        value: problem.value_label(ValueId(current)),
                        index: target.0,
                        count: n,
                    });
                }
                if hops == n {
                    return Err(PlanError::AliasCycle {
                        value: problem.value_label(ValueId(v)),
                    });
                }
                hops += 1;
                offset[v] = offset[v].saturating_add(offset_bytes);
                current = target.0;
            }
            let end = problem.values[v].bytes.saturating_add(offset[v]);
            if end > problem.values[current].bytes {
                return Err(PlanError::AliasLargerThanRoot {
                    value: problem.value_label(ValueId(v)),
                    bytes: end,
                    root: problem.value_label(ValueId(current)),
                    root_bytes: problem.values[current].bytes,
                });
            }
            *slot = current;
        }

        let mut def = vec![None; n];
        for (s, step) in problem.steps.iter().enumerate() {
            for w in &step.writes {
                if let Some(first) = def[w.0] {
                    return Err(PlanError::DefinedTwice {
                        value: problem.value_label(*w),
                        first_step: problem.step_label(first),
                        second_step: problem.step_label(s),
                    });
                }
                def[w.0] = Some(s);
            }
        }
        // When a value can first be read: its own definition, or for an
        // unwritten view that of the nearest written value it views; `None`
        // for values that exist before the first step or never.
        let defined_at = |v: usize| {
            let mut current = v;
            loop {
                if def[current].is_some() {
                    return def[current];
                }
                match problem.values[current].placement.view() {
                    Some((target, _)) => current = target.0,
                    None => return None,
                }
            }
        };
        for (v, (value, written_at)) in problem.values.iter().zip(&def).enumerate() {
            if let (Placement::SliceOf { of, .. }, Some(s)) = (value.placement, *written_at) {
                if let Some(d) = def[of.0].filter(|&d| d <= s) {
                    return Err(PlanError::SliceAfterTarget {
                        step: problem.step_label(s),
                        value: problem.value_label(ValueId(v)),
                        target: problem.value_label(of),
                        target_defined_by: problem.step_label(d),
                    });
                }
            }
            if let (Placement::AliasOf(target), Some(s)) = (value.placement, *written_at) {
                if let Some(d) = defined_at(target.0).filter(|&d| d > s) {
                    return Err(PlanError::AliasBeforeTarget {
                        step: problem.step_label(s),
                        value: problem.value_label(ValueId(v)),
                        target: problem.value_label(target),
                        target_defined_by: problem.step_label(d),
                    });
                }
            }
        }

        for (s, step) in problem.steps.iter().enumerate() {
            for v in &step.reads {
                match defined_at(v.0) {
                    Some(d) if d >= s => {
                        return Err(PlanError::ReadBeforeDefinition {
                            step: problem.step_label(s),
                            value: problem.value_label(*v),
                            defined_by: problem.step_label(d),
                        })
                    }
                    Some(_) => {}
                    None if problem.values[root[v.0]].placement == Placement::External => {}
                    None => {
                        return Err(PlanError::NeverDefined {
                            step: problem.step_label(s),
                            value: problem.value_label(*v),
                        })
                    }
                }
            }
        }

        let mut last = vec![0; n];
        let mut first = vec![0; n];
        for v in 0..n {
            if problem.values[v].placement == Placement::Arena {
                match def[v] {
                    Some(d) => {
                        last[v] = d;
                        first[v] = d;
                    }
                    None => {
                        return Err(PlanError::ArenaValueUndefined {
                            value: problem.value_label(ValueId(v)),
                        })
                    }
                }
            }
        }
        for (s, step) in problem.steps.iter().enumerate() {
            for v in step.reads.iter().chain(&step.writes) {
                let r = root[v.0];
                if problem.values[r].placement == Placement::Arena {
                    last[r] = last[r].max(s);
                    first[r] = first[r].min(s);
                }
            }
        }
        for (s, step) in problem.steps.iter().enumerate() {
            for candidate in &step.in_place {
                let reason = if !step.writes.contains(&candidate.output) {
                    "the step does not write the output"
                } else if !step.reads.contains(&candidate.input) {
                    "the step does not read the input"
                } else {
                    continue;
                };
                return Err(PlanError::InvalidInPlace {
                    step: problem.step_label(s),
                    output: problem.value_label(candidate.output),
                    input: problem.value_label(candidate.input),
                    reason,
                });
            }
        }
        Ok(Facts {
            root,
            offset,
            def,
            first,
            last,
        })
    }

    fn in_arena(&self, problem: &Problem, v: usize) -> bool {
        problem.values[self.root[v]].placement == Placement::Arena
    }
}

/// A region's bytes, or `OutsideArena` if it does not fit.
fn region(
    slot: impl Fn() -> Slot,
    offset_bytes: u64,
    bytes: u64,
    plan: &Plan,
) -> Result<Range<u64>, PlanError> {
    if offset_bytes % plan.alignment_bytes != 0 {
        return Err(PlanError::Misaligned {
            slot: slot(),
            offset_bytes,
            alignment_bytes: plan.alignment_bytes,
        });
    }
    match offset_bytes.checked_add(bytes) {
        Some(end) if end <= plan.arena_bytes => Ok(offset_bytes..end),
        end => Err(PlanError::OutsideArena {
            slot: slot(),
            range: offset_bytes..end.unwrap_or(u64::MAX),
            arena_bytes: plan.arena_bytes,
        }),
    }
}

fn check_offsets(problem: &Problem, plan: &Plan, facts: &Facts) -> Result<(), PlanError> {
    let label = |v: usize| Slot::Value(problem.value_label(ValueId(v)));
    for (v, value) in problem.values.iter().enumerate() {
        match (facts.in_arena(problem, v), plan.value_offset_bytes[v]) {
            (true, None) => return Err(PlanError::MissingOffset { slot: label(v) }),
            (false, Some(offset_bytes)) => {
                return Err(PlanError::ExternalPlaced {
                    slot: label(v),
                    offset_bytes,
                })
            }
            (false, None) => {}
            (true, Some(offset_bytes)) => {
                region(|| label(v), offset_bytes, value.bytes, plan)?;
                let r = facts.root[v];
                if let Some(root_offset_bytes) = plan.value_offset_bytes[r] {
                    let root_offset_bytes = root_offset_bytes.saturating_add(facts.offset[v]);
                    if root_offset_bytes != offset_bytes {
                        return Err(PlanError::AliasOffsetMismatch {
                            value: problem.value_label(ValueId(v)),
                            offset_bytes,
                            root: problem.value_label(ValueId(r)),
                            root_offset_bytes,
                        });
                    }
                }
            }
        }
    }
    for (s, step) in problem.steps.iter().enumerate() {
        for (index, (&bytes, &offset_bytes)) in step
            .temporary_bytes
            .iter()
            .zip(&plan.temporary_offset_bytes[s])
            .enumerate()
        {
            region(
                || Slot::Temporary {
                    step: problem.step_label(s),
                    index,
                },
                offset_bytes,
                bytes,
                plan,
            )?;
        }
    }
    Ok(())
}

/// Validates the plan's merges; returns `(step, output, input root)` of each,
/// the pairs allowed to share bytes at that step.
fn check_in_place(
    problem: &Problem,
    plan: &Plan,
    facts: &Facts,
) -> Result<HashSet<(usize, usize, usize)>, PlanError> {
    let mut exempt = HashSet::new();
    for merge in &plan.in_place {
        let (s, o, i) = (merge.step.0, merge.output.0, merge.input.0);
        let bad = |reason: String| PlanError::BadInPlace {
            step: problem.step_label(s),
            output: problem.value_label(merge.output),
            input: problem.value_label(merge.input),
            reason,
        };
        let Some(step) = problem.steps.get(s) else {
            return Err(bad("there is no such step".into()));
        };
        if o >= problem.values.len() || i >= problem.values.len() {
            return Err(bad("a value id is out of range".into()));
        }
        if !step.in_place.contains(&InPlace {
            output: merge.output,
            input: merge.input,
        }) {
            return Err(bad("the step does not declare it".into()));
        }
        if facts.def[o] != Some(s) || !step.reads.contains(&merge.input) {
            return Err(bad(
                "the step does not write the output and read the input".into()
            ));
        }
        if problem.values[o].placement != Placement::Arena || !facts.in_arena(problem, i) {
            return Err(bad("output and input must both be arena buffers".into()));
        }
        if facts.first[o] != s {
            return Err(bad(format!(
                "the output's buffer already holds a slice written by step '{}'",
                problem.step_label(facts.first[o])
            )));
        }
        let input_root = facts.root[i];
        if facts.last[input_root] != s {
            return Err(bad(format!(
                "the input's buffer is still used by step '{}'",
                problem.step_label(facts.last[input_root])
            )));
        }
        if problem.values[o].bytes > problem.values[i].bytes {
            return Err(bad(format!(
                "the output ({} bytes) is larger than the input ({} bytes)",
                problem.values[o].bytes, problem.values[i].bytes
            )));
        }
        if plan.value_offset_bytes[o] != plan.value_offset_bytes[i] {
            return Err(bad(format!(
                "they are at different offsets ({:?} and {:?})",
                plan.value_offset_bytes[o], plan.value_offset_bytes[i]
            )));
        }
        exempt.insert((s, o, input_root));
    }
    Ok(exempt)
}

/// What occupies a byte range at a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Occupant {
    Buffer(usize),
    Temporary(usize),
}

fn check_overlaps(
    problem: &Problem,
    plan: &Plan,
    facts: &Facts,
    exempt: &HashSet<(usize, usize, usize)>,
) -> Result<(), PlanError> {
    let mut live: Vec<(Range<u64>, Occupant)> = Vec::new();
    for (s, step) in problem.steps.iter().enumerate() {
        live.clear();
        for (v, value) in problem.values.iter().enumerate() {
            let is_live = problem.values[v].placement == Placement::Arena
                && facts.def[v].is_some()
                && facts.first[v] <= s
                && s <= facts.last[v];
            if let (true, Some(offset_bytes)) =
                (is_live && value.bytes > 0, plan.value_offset_bytes[v])
            {
                live.push((
                    offset_bytes..offset_bytes.saturating_add(value.bytes),
                    Occupant::Buffer(v),
                ));
            }
        }
        for (index, (&bytes, &offset_bytes)) in step
            .temporary_bytes
            .iter()
            .zip(&plan.temporary_offset_bytes[s])
            .enumerate()
        {
            if bytes > 0 {
                live.push((
                    offset_bytes..offset_bytes.saturating_add(bytes),
                    Occupant::Temporary(index),
                ));
            }
        }
        live.sort_by_key(|(range, occupant)| (range.start, range.end, *occupant));
        for (a, (first_range, first)) in live.iter().enumerate() {
            // Sorted by start, so only the regions starting before this one
            // ends can overlap it.
            for (second_range, second) in live[a + 1..]
                .iter()
                .take_while(|(r, _)| r.start < first_range.end)
            {
                if let (Occupant::Buffer(x), Occupant::Buffer(y)) = (*first, *second) {
                    if exempt.contains(&(s, x, y)) || exempt.contains(&(s, y, x)) {
                        continue;
                    }
                }
                let slot = |o: Occupant| match o {
                    Occupant::Buffer(v) => Slot::Value(problem.value_label(ValueId(v))),
                    Occupant::Temporary(index) => Slot::Temporary {
                        step: problem.step_label(s),
                        index,
                    },
                };
                return Err(PlanError::Overlap {
                    step: problem.step_label(s),
                    first: slot(*first),
                    first_range: first_range.clone(),
                    second: slot(*second),
                    second_range: second_range.clone(),
                });
            }
        }
    }
    Ok(())
}
