//! The planner: dataflow graph and order check, liveness, in-place merges and
//! interval packing.

use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::EdgeRef;
use petgraph::Direction;

use super::{
    align_up, InPlaceMerge, Interval, Options, Placement, Plan, PlanError, Problem, Slot, StepId,
    ValueId,
};

/// From which step on a value can be read.
#[derive(Debug, Clone, Copy)]
enum Available {
    /// Before the first step (model inputs, weights, views of them).
    Always,
    /// After the given step has run.
    After(usize),
    /// Never: an arena value nobody writes.
    Never,
}

/// What the planner knows about a validated problem.
struct Analysis {
    /// Alias-folded root of every value (itself for non-aliases).
    roots: Vec<ValueId>,
    /// Byte offset of every value in its root's buffer (slices only).
    view_offsets: Vec<u64>,
    /// The step writing each value, if any.
    writer: Vec<Option<usize>>,
    /// Node `i` is step `i`; an edge producer -> consumer per read of a value
    /// some step defines, weighted with the value read.
    graph: DiGraph<StepId, ValueId>,
}

/// Builds the dataflow graph of a problem: node `i` is step `i` (weighted with
/// its [`StepId`]), and every read of a value defined by a step adds an edge
/// from the defining step to the reader, weighted with the value read. Reads
/// of values that exist before the first step (model inputs, weights) add no
/// edge. Reading an alias counts as reading from the step that made the view
/// available.
///
/// Fails exactly when [`plan`] would reject the problem, e.g. with
/// [`PlanError::ReadBeforeDefinition`] naming the first step (in the given
/// order) that reads a value defined by itself or a later step.
pub fn dataflow_graph(problem: &Problem) -> Result<DiGraph<StepId, ValueId>, PlanError> {
    analyze(problem).map(|analysis| analysis.graph)
}

/// Plans arena offsets for every arena value and temporary of `problem`.
///
/// With `options.reuse`, an output declared in place of an input takes the
/// input's buffer when that buffer (including views of it) is dead after the
/// step and the output is no larger than the input; the resulting buffers and
/// the temporaries are then packed greedy-by-size. Without it, every buffer
/// and temporary gets its own region in order (bump allocation).
///
/// Errors when the problem is malformed (see [`PlanError`]); the order given
/// must be a topological order of the dataflow.
pub fn plan(problem: &Problem, options: Options) -> Result<Plan, PlanError> {
    if options.alignment_bytes == 0 {
        return Err(PlanError::ZeroAlignment);
    }
    let analysis = analyze(problem)?;
    let intervals = buffer_intervals(problem, &analysis);

    let mut regions = Vec::new();
    let mut region_of = vec![None; problem.values.len()];
    for (v, interval) in intervals.iter().enumerate() {
        if let Some((first, last)) = *interval {
            region_of[v] = Some(regions.len());
            regions.push(Region {
                first,
                last,
                bytes: problem.values[v].bytes,
                last_defined: first,
                absorbed: false,
                owner: Owner::Value(v),
            });
        }
    }
    let in_place = if options.reuse {
        merge_in_place(problem, &analysis, &mut regions, &mut region_of)
    } else {
        Vec::new()
    };
    let mut temporary_regions = Vec::with_capacity(problem.steps.len());
    for (s, step) in problem.steps.iter().enumerate() {
        let mut ids = Vec::with_capacity(step.temporary_bytes.len());
        for (index, &bytes) in step.temporary_bytes.iter().enumerate() {
            ids.push(regions.len());
            regions.push(Region {
                first: s,
                last: s,
                bytes,
                last_defined: s,
                absorbed: false,
                owner: Owner::Temporary(s, index),
            });
        }
        temporary_regions.push(ids);
    }

    let placed = if options.reuse {
        pack(&regions, options.alignment_bytes)
    } else {
        bump(&regions, options.alignment_bytes)
    };
    let offsets = placed.map_err(|r| overflow(problem, &regions[r]))?;
    // (end, region) of the highest region; `pack`/`bump` proved the sums fit.
    let top = regions
        .iter()
        .enumerate()
        .filter(|(_, region)| !region.absorbed)
        .map(|(r, region)| (offsets[r] + region.bytes, r))
        .max();
    let arena_bytes = match top {
        None => 0,
        Some((end_bytes, r)) => align_up(end_bytes, options.alignment_bytes)
            .ok_or_else(|| overflow(problem, &regions[r]))?,
    };

    let mut sum_bytes: u64 = 0;
    let mut largest_bytes = 0;
    for (v, value) in problem.values.iter().enumerate() {
        if value.placement == Placement::Arena {
            sum_bytes =
                sum_bytes
                    .checked_add(value.bytes)
                    .ok_or_else(|| PlanError::ArenaOverflow {
                        slot: Slot::Value(problem.value_label(ValueId(v))),
                    })?;
            largest_bytes = largest_bytes.max(value.bytes);
        }
    }

    Ok(Plan {
        alignment_bytes: options.alignment_bytes,
        value_offset_bytes: analysis
            .roots
            .iter()
            .zip(&analysis.view_offsets)
            .map(|(root, view)| region_of[root.0].map(|r| offsets[r] + view))
            .collect(),
        temporary_offset_bytes: temporary_regions
            .iter()
            .map(|ids| ids.iter().map(|&r| offsets[r]).collect())
            .collect(),
        arena_bytes,
        in_place,
        intervals: analysis
            .roots
            .iter()
            .map(|root| {
                intervals[root.0].map(|(first, last)| Interval {
                    first_step: StepId(first),
                    last_step: StepId(last),
                })
            })
            .collect(),
        sum_bytes,
        largest_bytes,
    })
}

/// Validates the problem and builds its dataflow graph.
fn analyze(problem: &Problem) -> Result<Analysis, PlanError> {
    let (roots, view_offsets) = resolve_roots(problem)?;
    check_ids(problem)?;
    let writer = writers(problem)?;

    // An unwritten view exists as soon as the nearest written value down its
    // alias chain does, or from the start if the chain ends in an external.
    let available_of = |v: ValueId| {
        let mut current = v.0;
        loop {
            if let Some(s) = writer[current] {
                return Available::After(s);
            }
            match problem.values[current].placement.view() {
                Some((target, _)) => current = target.0,
                None if problem.values[current].placement == Placement::External => {
                    return Available::Always
                }
                None => return Available::Never,
            }
        }
    };
    let available: Vec<Available> = (0..problem.values.len())
        .map(|v| available_of(ValueId(v)))
        .collect();
    for (v, value) in problem.values.iter().enumerate() {
        if let (Placement::SliceOf { of, .. }, Some(s)) = (value.placement, writer[v]) {
            if let Available::After(d) = available[of.0] {
                if d <= s {
                    return Err(PlanError::SliceAfterTarget {
                        step: problem.step_label(s),
                        value: problem.value_label(ValueId(v)),
                        target: problem.value_label(of),
                        target_defined_by: problem.step_label(d),
                    });
                }
            }
        }
        if let (Placement::AliasOf(target), Some(s)) = (value.placement, writer[v]) {
            if let Available::After(d) = available[target.0] {
                if d > s {
                    return Err(PlanError::AliasBeforeTarget {
                        step: problem.step_label(s),
                        value: problem.value_label(ValueId(v)),
                        target: problem.value_label(target),
                        target_defined_by: problem.step_label(d),
                    });
                }
            }
        }
    }

    let read_count = problem.steps.iter().map(|s| s.reads.len()).sum();
    let mut graph = DiGraph::with_capacity(problem.steps.len(), read_count);
    for s in 0..problem.steps.len() {
        graph.add_node(StepId(s));
    }
    for (c, step) in problem.steps.iter().enumerate() {
        for &v in &step.reads {
            if let Available::After(p) = available[v.0] {
                graph.add_edge(NodeIndex::new(p), NodeIndex::new(c), v);
            }
        }
    }
    // The order is topological iff every edge points forward; checking per
    // consumer in order reports the first step that breaks it.
    for (c, step) in problem.steps.iter().enumerate() {
        if let Some(&v) = step
            .reads
            .iter()
            .find(|v| matches!(available[v.0], Available::Never))
        {
            return Err(PlanError::NeverDefined {
                step: problem.step_label(c),
                value: problem.value_label(v),
            });
        }
        if let Some(edge) = graph
            .edges_directed(NodeIndex::new(c), Direction::Incoming)
            .find(|e| e.source().index() >= c)
        {
            return Err(PlanError::ReadBeforeDefinition {
                step: problem.step_label(c),
                value: problem.value_label(*edge.weight()),
                defined_by: problem.step_label(edge.source().index()),
            });
        }
    }

    for (v, value) in problem.values.iter().enumerate() {
        if value.placement == Placement::Arena && writer[v].is_none() {
            return Err(PlanError::ArenaValueUndefined {
                value: problem.value_label(ValueId(v)),
            });
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
    Ok(Analysis {
        roots,
        view_offsets,
        writer,
        graph,
    })
}

/// Follows every alias and slice chain to its root, rejecting dangling
/// targets, cycles and views reaching past the buffer they view; returns
/// each value's root and its byte offset in the root.
fn resolve_roots(problem: &Problem) -> Result<(Vec<ValueId>, Vec<u64>), PlanError> {
    let count = problem.values.len();
    let mut roots = Vec::with_capacity(count);
    let mut offsets = Vec::with_capacity(count);
    for (v, value) in problem.values.iter().enumerate() {
        let mut current = ValueId(v);
        let mut hops = 0;
        let mut offset: u64 = 0;
        while let Some((target, offset_bytes)) = problem.values[current.0].placement.view() {
            if target.0 >= count {
                return Err(PlanError::UnknownAliasTarget {
                    value: problem.value_label(current),
                    index: target.0,
                    count,
                });
            }
            hops += 1;
            if hops > count {
                return Err(PlanError::AliasCycle {
                    value: problem.value_label(ValueId(v)),
                });
            }
            offset = offset.saturating_add(offset_bytes);
            current = target;
        }
        let root = &problem.values[current.0];
        let end = value.bytes.saturating_add(offset);
        if end > root.bytes {
            return Err(PlanError::AliasLargerThanRoot {
                value: problem.value_label(ValueId(v)),
                bytes: end,
                root: problem.value_label(current),
                root_bytes: root.bytes,
            });
        }
        roots.push(current);
        offsets.push(offset);
    }
    Ok((roots, offsets))
}

/// Rejects value ids outside the problem, so later code can index freely.
fn check_ids(problem: &Problem) -> Result<(), PlanError> {
    let count = problem.values.len();
    for (s, step) in problem.steps.iter().enumerate() {
        let declared = step.in_place.iter().flat_map(|c| [c.output, c.input]);
        if let Some(bad) = step
            .reads
            .iter()
            .chain(&step.writes)
            .copied()
            .chain(declared)
            .find(|v| v.0 >= count)
        {
            return Err(PlanError::UnknownValue {
                step: problem.step_label(s),
                index: bad.0,
                count,
            });
        }
    }
    Ok(())
}

/// The defining step of each value.
fn writers(problem: &Problem) -> Result<Vec<Option<usize>>, PlanError> {
    let mut writer = vec![None; problem.values.len()];
    for (s, step) in problem.steps.iter().enumerate() {
        for &w in &step.writes {
            if let Some(first) = writer[w.0] {
                return Err(PlanError::DefinedTwice {
                    value: problem.value_label(w),
                    first_step: problem.step_label(first),
                    second_step: problem.step_label(s),
                });
            }
            writer[w.0] = Some(s);
        }
    }
    Ok(writer)
}

/// Liveness `[first, last]` (inclusive step indices) of every arena root,
/// aliases folded in; `None` for everything else.
fn buffer_intervals(problem: &Problem, analysis: &Analysis) -> Vec<Option<(usize, usize)>> {
    let mut intervals: Vec<Option<(usize, usize)>> = problem
        .values
        .iter()
        .zip(&analysis.writer)
        .map(|(value, writer)| match (value.placement, writer) {
            (Placement::Arena, Some(s)) => Some((*s, *s)),
            _ => None,
        })
        .collect();
    // A step writing a view is a use of the viewed buffer even if no one reads
    // the view; a slice is written before its root, whose buffer then lives
    // from that write on.
    for (v, value) in problem.values.iter().enumerate() {
        if let (Some(_), Some(s)) = (value.placement.view(), analysis.writer[v]) {
            if let Some((first, last)) = intervals[analysis.roots[v].0].as_mut() {
                *first = (*first).min(s);
                *last = (*last).max(s);
            }
        }
    }
    for edge in analysis.graph.edge_references() {
        if let Some((_, last)) = intervals[analysis.roots[edge.weight().0].0].as_mut() {
            *last = (*last).max(edge.target().index());
        }
    }
    intervals
}

/// Who a region belongs to, for overflow messages.
#[derive(Debug, Clone, Copy)]
enum Owner {
    Value(usize),
    Temporary(usize, usize),
}

/// A run of bytes that must stay reserved from step `first` through `last`.
#[derive(Debug, Clone)]
struct Region {
    first: usize,
    last: usize,
    bytes: u64,
    /// Definition step of the value most recently merged into the region; a
    /// region can take an in-place output only if its contents were defined
    /// strictly before the step, otherwise two outputs of one step could claim
    /// the same dead input.
    last_defined: usize,
    /// Merged into another region; takes no bytes of its own.
    absorbed: bool,
    owner: Owner,
}

/// Performs the legal in-place merges in step order and reports them.
fn merge_in_place(
    problem: &Problem,
    analysis: &Analysis,
    regions: &mut [Region],
    region_of: &mut [Option<usize>],
) -> Vec<InPlaceMerge> {
    let mut merges = Vec::new();
    let mut merged = vec![false; problem.values.len()];
    for (s, step) in problem.steps.iter().enumerate() {
        for candidate in &step.in_place {
            let output = candidate.output.0;
            let input_root = analysis.roots[candidate.input.0].0;
            if merged[output]
                || problem.values[output].placement != Placement::Arena
                || problem.values[input_root].placement != Placement::Arena
                || problem.values[output].bytes > problem.values[candidate.input.0].bytes
            {
                continue;
            }
            let (Some(own), Some(target)) = (region_of[output], region_of[input_root]) else {
                continue;
            };
            // A buffer whose slices were written before this step is
            // already in use, and an output over a slice of a dead buffer
            // would not sit at the input's offset.
            if regions[target].last != s
                || regions[target].last_defined >= s
                || regions[own].first != s
                || analysis.view_offsets[candidate.input.0] != 0
            {
                continue;
            }
            regions[own].absorbed = true;
            regions[target].last = regions[own].last;
            regions[target].last_defined = s;
            region_of[output] = Some(target);
            merged[output] = true;
            merges.push(InPlaceMerge {
                step: StepId(s),
                output: candidate.output,
                input: candidate.input,
            });
        }
    }
    merges
}

/// One region after another; `Err(region)` on overflow.
fn bump(regions: &[Region], alignment_bytes: u64) -> Result<Vec<u64>, usize> {
    let mut offsets = vec![0u64; regions.len()];
    let mut cursor = 0u64;
    for (r, region) in regions.iter().enumerate() {
        if region.absorbed {
            continue;
        }
        let offset = align_up(cursor, alignment_bytes).ok_or(r)?;
        cursor = offset.checked_add(region.bytes).ok_or(r)?;
        offsets[r] = offset;
    }
    Ok(offsets)
}

/// Greedy-by-size interval packing: largest regions first (earlier first on
/// ties), each in the smallest gap between already placed regions whose
/// lifetimes intersect its own, or above all of them if no gap fits.
/// `Err(region)` on overflow.
fn pack(regions: &[Region], alignment_bytes: u64) -> Result<Vec<u64>, usize> {
    let mut order: Vec<usize> = (0..regions.len())
        .filter(|&r| !regions[r].absorbed)
        .collect();
    order.sort_by(|&a, &b| {
        regions[b]
            .bytes
            .cmp(&regions[a].bytes)
            .then(regions[a].first.cmp(&regions[b].first))
            .then(a.cmp(&b))
    });
    let mut offsets = vec![0u64; regions.len()];
    let mut placed: Vec<usize> = Vec::with_capacity(order.len());
    let mut neighbours = Vec::new();
    for r in order {
        let region = &regions[r];
        // An empty region overlaps nothing wherever it sits.
        if region.bytes == 0 {
            continue;
        }
        neighbours.clear();
        neighbours.extend(
            placed
                .iter()
                .copied()
                .filter(|&p| regions[p].first <= region.last && region.first <= regions[p].last),
        );
        neighbours.sort_by_key(|&p| offsets[p]);
        let mut cursor = 0u64;
        let mut best: Option<(u64, u64)> = None;
        for &p in &neighbours {
            let candidate = align_up(cursor, alignment_bytes).ok_or(r)?;
            if let Some(gap_bytes) = offsets[p].checked_sub(candidate) {
                if gap_bytes >= region.bytes
                    && best.is_none_or(|(best_gap, _)| gap_bytes < best_gap)
                {
                    best = Some((gap_bytes, candidate));
                }
            }
            cursor = cursor.max(offsets[p] + regions[p].bytes);
        }
        let offset = match best {
            Some((_, offset)) => offset,
            None => align_up(cursor, alignment_bytes).ok_or(r)?,
        };
        offset.checked_add(region.bytes).ok_or(r)?;
        offsets[r] = offset;
        placed.push(r);
    }
    Ok(offsets)
}

fn overflow(problem: &Problem, region: &Region) -> PlanError {
    let slot = match region.owner {
        Owner::Value(v) => Slot::Value(problem.value_label(ValueId(v))),
        Owner::Temporary(s, index) => Slot::Temporary {
            step: problem.step_label(s),
            index,
        },
    };
    PlanError::ArenaOverflow { slot }
}
