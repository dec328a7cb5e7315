//! graph-plan-memory: place every intermediate tensor and kernel temporary in the scratch arena by liveness, in-place reuse and interval packing.
//!
//! The function's dataflow becomes a `grim_model::memplan::Problem`: one
//! step per op in order (then the return), each reading its operands and
//! writing its result, with the temporaries its lowering takes
//! (`lower::grim_to_bcr::scratch`: transposed gemm operands, accumulators,
//! padded images, patch matrices). Caller buffers and constants are
//! external; a reshape or identity is a view of its input; a value the
//! function returns straight from its producer lives in the output buffer.
//! An op may write its result over an operand that dies at it when its
//! semantics allow: elementwise ops (activations, batch norm, an add over
//! an operand of the result's shape) and a product's residual (read once
//! into the output when the output is initialised; not when the residual
//! is also the product's input). A concat's operands are computed straight
//! into their slices of its result when every dim before the axis is 1
//! and the slices are aligned, so the concat copies nothing. The planner (petgraph liveness, then
//! greedy-by-size packing, as TFLite's arena planner does) gives the
//! offsets, which `grim_model::memplan::check` verifies independently.
//!
//! Result, for lower-grim-to-bcr: `grim.offset` (bytes) on every op whose
//! result is in the arena, `grim.result_offsets` on an op with more results
//! (results 1.., -1 for one in a caller's buffer), `grim.temporaries` on
//! ops with temporaries, and
//! on the function `grim.arena_bytes`, `grim.activations_bytes` (the
//! intermediate tensors summed) and `grim.largest_activation_bytes`.
//!
//! What it does not do: move ops (the order is the program's), or place
//! caller buffers. With `reuse=0` every buffer gets its own bytes (a bump
//! plan), for differential tests.
//!
//! Options: `reuse=0|1` (default 1).

use crate::{
    lower::grim_to_bcr::{cancel, scratch},
    op_error, Pass, PassError, PassOptions,
};
use grim_dialects::{abi, grim, shape};
use grim_model::memplan::{self, InPlace, Placement, Problem, Step, ValueId};
use melior::{
    ir::{
        attribute::IntegerAttribute,
        block::BlockLike,
        operation::{OperationLike, OperationMutLike, OperationRef, OperationRefMut},
        r#type::IntegerType,
        BlockRef, Module, RegionLike, Value, ValueLike,
    },
    Context,
};
use std::collections::{HashMap, HashSet};

/// Pipeline flag.
pub const FLAG: &str = "graph-plan-memory";
/// One-line summary.
pub const SUMMARY: &str = "place every intermediate tensor and kernel temporary in the scratch arena by liveness, in-place reuse and interval packing";
/// Accepted options.
pub const OPTIONS: &[&str] =
    &["reuse=0|1 share bytes between values whose lives do not overlap (1)"];

/// The pass object.
pub struct GraphPlanMemory {
    reuse: bool,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let reuse = match options.int(FLAG, "reuse", 1)? {
        0 => false,
        1 => true,
        other => {
            return Err(PassError::Option {
                pass: FLAG.into(),
                message: format!("reuse must be 0 or 1, got {other}"),
            })
        }
    };
    Ok(Box::new(GraphPlanMemory { reuse }))
}

fn key(value: Value) -> usize {
    value.to_raw().ptr as usize
}

fn bytes_of(value: Value) -> u64 {
    shape::static_shape(value.r#type()).map_or(0, |s| 4 * shape::numel(&s) as u64)
}

/// A function's dataflow as a planning problem, with the value and step
/// of each op (to write the plan back).
pub struct Dataflow<'c> {
    /// The problem.
    pub problem: Problem,
    /// Each op that got a step, with its result's value (if planned) and
    /// its step's index.
    pub ops: Vec<(OperationRef<'c, 'c>, Option<ValueId>, usize)>,
    /// The ops with more than one result (`grim.recurrent`): the values of
    /// results 1.., each `None` where it is not in the arena.
    pub extra_results: Vec<(OperationRef<'c, 'c>, Vec<Option<ValueId>>)>,
}

/// Builds the planning problem of a function body.
pub fn dataflow<'c>(body: BlockRef<'c, 'c>) -> Result<Dataflow<'c>, PassError> {
    let mut problem = Problem::new();
    let mut values: HashMap<usize, ValueId> = HashMap::new();
    for index in 0..body.argument_count() {
        let argument: Value = body
            .argument(index)
            .map_err(|e| PassError::Unsupported(e.to_string()))?
            .into();
        let id = problem.add_value(
            format!("argument {index}"),
            bytes_of(argument),
            Placement::External,
        );
        values.insert(key(argument), id);
    }
    let terminator = body
        .terminator()
        .ok_or_else(|| PassError::Unsupported("error: function body has no terminator".into()))?;
    // What the function returns once, straight from a computing op, is
    // computed into the caller's output buffer.
    let mut returned_count: HashMap<usize, usize> = HashMap::new();
    for operand in terminator.operands() {
        *returned_count.entry(key(operand)).or_default() += 1;
    }
    let returned: HashSet<usize> = returned_count.keys().copied().collect();
    let cancelled = cancel::cancelled(&body, &returned);
    let mut ops = Vec::new();
    let mut extra_results = Vec::new();
    let mut next = body.first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
        let label = crate::graph::apply_lr::node_name(&op).unwrap_or_else(|| name.clone());
        if name == "func.return" {
            let mut step = Step {
                name: "func.return".into(),
                ..Step::default()
            };
            for operand in op.operands() {
                step.reads.extend(values.get(&key(operand)).copied());
            }
            problem.add_step(step);
            continue;
        }
        let Ok(result) = op.result(0) else {
            continue;
        };
        let result: Value = result.into();
        let result_key = key(result);
        if values.contains_key(&result_key) {
            // A transpose whose result the gemm before it wrote as its accumulator.
            continue;
        }
        let never_materialised = cancelled.inputs.contains_key(&result_key)
            || cancelled.results.contains_key(&result_key);
        let direct_output = grim::computes(&name) && returned_count.get(&result_key) == Some(&1);
        let placement = if name == grim::CONSTANT || direct_output || never_materialised {
            Placement::External
        } else if name == grim::RESHAPE || name == grim::IDENTITY {
            let source = op.operand(0).map_err(|e| op_error(&op, e))?;
            Placement::AliasOf(
                *values
                    .get(&key(source))
                    .ok_or_else(|| op_error(&op, "reads an unknown value"))?,
            )
        } else {
            Placement::Arena
        };
        let bytes = if never_materialised {
            0
        } else {
            bytes_of(result)
        };
        let id = problem.add_value(label.clone(), bytes, placement);
        values.insert(result_key, id);
        if name == grim::CONCAT && placement == Placement::Arena {
            place_operands_in_slices(&op, id, &values, &mut problem)?;
        }
        if name == grim::CONSTANT || cancelled.inputs.contains_key(&result_key) {
            // Constants are external; a transpose a gemm reads in place computes nothing.
            continue;
        }
        let mut step = Step {
            name: label.clone(),
            ..Step::default()
        };
        for operand in op.operands() {
            // A cancelled transpose's input is what the gemm reads.
            let read = cancelled
                .inputs
                .get(&key(operand))
                .copied()
                .unwrap_or(key(operand));
            step.reads.extend(values.get(&read).copied());
        }
        step.writes.push(id);
        if op.result_count() > 1 {
            let mut extra = Vec::new();
            for index in 1..op.result_count() {
                let value: Value = op.result(index).map_err(|e| op_error(&op, e))?.into();
                let direct = returned_count.get(&key(value)) == Some(&1);
                let placement = if direct {
                    Placement::External
                } else {
                    Placement::Arena
                };
                let extra_id =
                    problem.add_value(format!("{label}#{index}"), bytes_of(value), placement);
                values.insert(key(value), extra_id);
                step.writes.push(extra_id);
                extra.push((!direct).then_some(extra_id));
            }
            extra_results.push((op, extra));
        }
        // A gemm whose accumulator is the transpose after it defines that
        // transpose's value.
        if let Some(transposed) = cancelled.results.get(&result_key) {
            let owner = transposed_owner(&body, *transposed)
                .ok_or_else(|| op_error(&op, "lost the transpose of its result"))?;
            let owner_result: Value = owner.result(0).map_err(|e| op_error(&owner, e))?.into();
            let placement = if returned_count.get(transposed) == Some(&1) {
                Placement::External
            } else {
                Placement::Arena
            };
            let owner_name =
                crate::graph::apply_lr::node_name(&owner).unwrap_or_else(|| grim::TRANSPOSE.into());
            let owner_id = problem.add_value(owner_name, bytes_of(owner_result), placement);
            values.insert(*transposed, owner_id);
            step.writes.push(owner_id);
            ops.push((
                owner,
                (placement == Placement::Arena).then_some(owner_id),
                usize::MAX,
            ));
        }
        step.temporary_bytes = scratch::temporaries(&op, &cancelled)?
            .iter()
            .map(|s| 4 * shape::numel(s) as u64)
            .collect();
        step.in_place = in_place(&op, &name, id, &values)?;
        let step_index = problem.steps.len();
        problem.add_step(step);
        ops.push((
            op,
            (placement == Placement::Arena).then_some(id),
            step_index,
        ));
    }
    Ok(Dataflow {
        problem,
        ops,
        extra_results,
    })
}

/// Reads back the plan graph-plan-memory wrote on a function, as a
/// [`memplan::Plan`] of `flow` (the function's [`dataflow`]), so that
/// [`memplan::check`] can verify what the IR says rather than what the
/// planner returned.
///
/// From the IR: each arena value's `grim.offset` (an alias gets its root's
/// offset, as in [`memplan::plan`]), each step's `grim.temporaries`, and the
/// function's `grim.arena_bytes`, `grim.activations_bytes` and
/// `grim.largest_activation_bytes`; the alignment is
/// [`abi::ALIGN_BYTES`]. The IR does not record in-place merges: a step's
/// declared in-place candidate whose output and input sit at the same
/// offset is taken as a merge (which [`memplan::check`] then verifies, like
/// any other). Liveness (`intervals`) is not on the IR either and is left
/// empty; the checker recomputes it.
///
/// Errors: an arena value whose op has no `grim.offset`, or a function
/// without `grim.arena_bytes` (graph-plan-memory has not run).
pub fn written_plan<'c>(
    function: &OperationRef<'c, '_>,
    flow: &Dataflow<'c>,
) -> Result<memplan::Plan, PassError> {
    let problem = &flow.problem;
    let int = |name: &str| {
        grim_dialects::attr::int(function, name)
            .map(|v| v.max(0) as u64)
            .ok_or_else(|| {
                op_error(
                    function,
                    format!("has no '{name}' (is the memory planned?)"),
                )
            })
    };
    let mut own = vec![None; problem.values.len()];
    let mut temporary_offset_bytes = vec![Vec::new(); problem.steps.len()];
    for (op, value, step) in &flow.ops {
        if let Some(value) = value {
            let offset = grim_dialects::attr::int(op, scratch::OFFSET_ATTR).ok_or_else(|| {
                op_error(
                    op,
                    format!(
                        "writes an arena value but has no '{}'",
                        scratch::OFFSET_ATTR
                    ),
                )
            })?;
            own[value.0] = Some(offset.max(0) as u64);
        }
        if let Some(slot) = temporary_offset_bytes.get_mut(*step) {
            *slot = grim_dialects::attr::i64_array(op, scratch::TEMPORARIES_ATTR)
                .unwrap_or_default()
                .into_iter()
                .map(|o| o.max(0) as u64)
                .collect();
        }
    }
    for (op, extra) in &flow.extra_results {
        let offsets =
            grim_dialects::attr::i64_array(op, scratch::RESULT_OFFSETS_ATTR).unwrap_or_default();
        for (value, offset) in extra.iter().zip(offsets) {
            if let Some(value) = value {
                own[value.0] = Some(offset.max(0) as u64);
            }
        }
    }
    // An alias shares its root's bytes; external roots have none.
    // (At most as many hops as there are values: a cycle, which dataflow
    // never builds, reads as external.)
    let root_offset = |mut v: usize| {
        for _ in 0..=problem.values.len() {
            match problem.values.get(v)?.placement {
                Placement::AliasOf(target) => v = target.0,
                // A slice's producer states where it wrote it.
                Placement::Arena | Placement::SliceOf { .. } => return own[v],
                Placement::External => return None,
            }
        }
        None
    };
    let value_offset_bytes: Vec<Option<u64>> = (0..problem.values.len()).map(root_offset).collect();
    let mut in_place = Vec::new();
    for (s, step) in problem.steps.iter().enumerate() {
        for candidate in &step.in_place {
            let (output, input) = (
                value_offset_bytes
                    .get(candidate.output.0)
                    .copied()
                    .flatten(),
                value_offset_bytes.get(candidate.input.0).copied().flatten(),
            );
            if output.is_some() && output == input {
                in_place.push(memplan::InPlaceMerge {
                    step: memplan::StepId(s),
                    output: candidate.output,
                    input: candidate.input,
                });
            }
        }
    }
    Ok(memplan::Plan {
        alignment_bytes: abi::ALIGN_BYTES as u64,
        value_offset_bytes,
        temporary_offset_bytes,
        arena_bytes: int(scratch::ARENA_BYTES_ATTR)?,
        in_place,
        intervals: Vec::new(),
        sum_bytes: int(scratch::ACTIVATIONS_BYTES_ATTR)?,
        largest_bytes: int(scratch::LARGEST_ACTIVATION_BYTES_ATTR)?,
    })
}

/// Makes the operands of a concat slices of its result where that is
/// legal, so their producers compute straight into it and the concat
/// copies nothing: the result must be one run per operand (every dim
/// before the axis 1), the operand an arena buffer of its own (not a
/// weight, input, view, or a slice of another concat already), and its
/// slice aligned as every arena buffer is. The planner then keeps the
/// result's bytes from the first operand's write on.
fn place_operands_in_slices(
    op: &OperationRef,
    result: ValueId,
    values: &HashMap<usize, ValueId>,
    problem: &mut Problem,
) -> Result<(), PassError> {
    let axis = grim::concat_axis(op).ok_or_else(|| op_error(op, "needs 'axis'"))?;
    let Some(out_shape) = op
        .result(0)
        .ok()
        .and_then(|r| shape::static_shape(r.r#type()))
    else {
        return Ok(());
    };
    if axis < 0 || out_shape[..axis as usize].iter().any(|&d| d != 1) {
        return Ok(());
    }
    let mut offset_bytes = 0u64;
    let mut placed = HashSet::new();
    for operand in op.operands() {
        let bytes = bytes_of(operand);
        if let Some(&v) = values.get(&key(operand)) {
            let own_buffer = problem.values[v.0].placement == Placement::Arena;
            if own_buffer
                && placed.insert(v)
                && offset_bytes.is_multiple_of(abi::ALIGN_BYTES as u64)
                && problem.values[v.0].bytes == bytes
            {
                problem.values[v.0].placement = Placement::SliceOf {
                    of: result,
                    offset_bytes,
                };
            }
        }
        offset_bytes += bytes;
    }
    Ok(())
}

/// The op whose result is the value of key `transposed` (a transpose after a gemm).
fn transposed_owner<'c>(
    body: &BlockRef<'c, 'c>,
    transposed: usize,
) -> Option<OperationRef<'c, 'c>> {
    let mut next = body.first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        if op.result(0).is_ok_and(|r| key(r.into()) == transposed) {
            return Some(op);
        }
    }
    None
}

/// The in-place writes `op`'s semantics allow.
fn in_place(
    op: &OperationRef,
    name: &str,
    output: ValueId,
    values: &HashMap<usize, ValueId>,
) -> Result<Vec<InPlace>, PassError> {
    let result: Value = op.result(0).map_err(|e| op_error(op, e))?.into();
    let result_shape = shape::static_shape(result.r#type());
    let operand = |index: usize| -> Option<(ValueId, Option<Vec<i64>>)> {
        let value = op.operand(index).ok()?;
        Some((
            *values.get(&key(value))?,
            shape::static_shape(value.r#type()),
        ))
    };
    let mut candidates = Vec::new();
    if grim::ACTIVATIONS.contains(&name) || name == grim::BATCH_NORM {
        candidates.extend(operand(0));
    } else if grim::BINARY.contains(&name) {
        candidates.extend(operand(0));
        candidates.extend(operand(1));
    } else if grim::PRODUCTS.contains(&name) {
        if let Some(product) = grim::product(op) {
            if let Some(residual) = product.residual {
                // Overwriting the residual while the product still reads
                // it as its input would be wrong.
                if key(residual) != key(product.input) {
                    candidates.extend(
                        values
                            .get(&key(residual))
                            .map(|v| (*v, shape::static_shape(residual.r#type()))),
                    );
                }
            }
        }
    }
    Ok(candidates
        .into_iter()
        .filter(|(_, s)| s.is_some() && *s == result_shape)
        .map(|(input, _)| InPlace { output, input })
        .collect())
}

fn set_i64<'c>(context: &'c Context, op: &mut OperationRefMut<'c, '_>, name: &str, value: u64) {
    op.set_attribute(
        name,
        IntegerAttribute::new(IntegerType::new(context, 64).into(), value as i64).into(),
    );
}

impl Pass for GraphPlanMemory {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let functions: Vec<_> = crate::lower::grim_to_bcr::top_level_ops(module)
            .into_iter()
            .filter(|op| op.name().as_string_ref().as_str() == Ok("func.func"))
            .map(|op| op.to_raw())
            .collect();
        for raw in functions {
            // SAFETY: collected above; only attributes change.
            let function = unsafe { OperationRefMut::from_raw(raw) };
            let Some(body) = function.region(0).ok().and_then(|r| r.first_block()) else {
                continue;
            };
            // SAFETY: the body lives as long as the module.
            let body: BlockRef<'c, 'c> = unsafe { BlockRef::from_raw(body.to_raw()) };
            let flow = dataflow(body)?;
            let options = memplan::Options {
                reuse: self.reuse,
                alignment_bytes: abi::ALIGN_BYTES as u64,
            };
            let describe = |e: memplan::PlanError| {
                PassError::Unsupported(format!(
                    "{}: error: graph-plan-memory: {e}",
                    grim_dialects::diag::format_location(function.location())
                ))
            };
            let plan = memplan::plan(&flow.problem, options).map_err(describe)?;
            memplan::check(&flow.problem, &plan).map_err(describe)?;
            for (op, value, step) in &flow.ops {
                // SAFETY: the op is alive; only attributes change.
                let mut op = unsafe { OperationRefMut::from_raw(op.to_raw()) };
                if let Some(offset) = value.and_then(|v| plan.offset_bytes(v)) {
                    set_i64(context, &mut op, scratch::OFFSET_ATTR, offset);
                }
                if let Some(offsets) = plan
                    .temporary_offset_bytes
                    .get(*step)
                    .filter(|o| !o.is_empty())
                {
                    let offsets: Vec<i64> = offsets.iter().map(|o| *o as i64).collect();
                    op.set_attribute(
                        scratch::TEMPORARIES_ATTR,
                        melior::ir::attribute::DenseI64ArrayAttribute::new(context, &offsets)
                            .into(),
                    );
                }
            }
            for (op, extra) in &flow.extra_results {
                // SAFETY: the op is alive; only attributes change.
                let mut op = unsafe { OperationRefMut::from_raw(op.to_raw()) };
                let offsets: Vec<i64> = extra
                    .iter()
                    .map(|v| {
                        v.and_then(|v| plan.offset_bytes(v))
                            .map_or(-1, |o| o as i64)
                    })
                    .collect();
                op.set_attribute(
                    scratch::RESULT_OFFSETS_ATTR,
                    melior::ir::attribute::DenseI64ArrayAttribute::new(context, &offsets).into(),
                );
            }
            let mut function = unsafe { OperationRefMut::from_raw(raw) };
            set_i64(
                context,
                &mut function,
                scratch::ARENA_BYTES_ATTR,
                plan.arena_bytes,
            );
            set_i64(
                context,
                &mut function,
                scratch::ACTIVATIONS_BYTES_ATTR,
                plan.sum_bytes,
            );
            set_i64(
                context,
                &mut function,
                scratch::LARGEST_ACTIVATION_BYTES_ATTR,
                plan.largest_bytes,
            );
        }
        Ok(())
    }
}
