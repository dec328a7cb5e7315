//! bcr-parallelize: outline each strip loop of a sparse product into a function run by the runtime's grim_parallel_for.
//!
//! `lower-bcr-to-loops` marks the loop over BCRC strips (block rows) with
//! `grim.parallel`: its iterations write disjoint output rows, so they can
//! run on any thread in any order. This pass moves such a loop into a new
//! private function `@<f>_parallel<k>(%args: !llvm.ptr, %begin: i64, %end: i64)`
//! that runs iterations `[begin, end)`, and replaces it with a call to the
//! runtime's `grim_parallel_for(ctx, n, grain, fn, args)`:
//!
//! * values the loop uses from outside are passed through an i64 argument
//!   array (memrefs as their aligned pointer plus dynamic sizes, integers
//!   widened), and rebuilt in the outlined function as memref descriptors;
//! * constants are cloned into the outlined function, and `memref.alloca`s
//!   (the per-block index lists) are cloned too, so each thread gets its own;
//! * `ctx` is the model function's first argument (`!llvm.ptr`), which
//!   `lower-grim-to-bcr` puts there for this purpose.
//!
//! A loop with `grim.threads = k` (a layer's thread cap from the LR file)
//! gets `grain = max(grain, ceil(n / k))`, so at most k threads take part;
//! one with `grim.grain = g` (short iterations: a matrix-vector product's
//! strips) at least `g`.
//!
//! The strips are packed by descending work (bcr-reorder), and the runtime
//! hands them out dynamically, `grain` at a time (option, default 1), so the
//! big strips start first and the threads finish together (GRIM §4.3).
//! With one thread the runtime runs the body inline.
//!
//! What it does not do: split N across threads (useful when there are fewer
//! strips than threads), or parallelise loops it was not told are parallel.
//!
//! Before: `scf.for %s = %c0 to %n step %c1 { ... } {grim.parallel}`
//! After:  `func.call @grim_parallel_for(%ctx, %n64, %grain, %fn, %args)` and
//!         `func.func private @f_parallel0(%args: !llvm.ptr, %begin: i64, %end: i64)`.

use crate::{
    builder::{erase, Builder, V},
    op_error, Pass, PassError, PassOptions,
};
use grim_dialects::shape;
use melior::{
    dialect::llvm,
    ir::{
        attribute::{FlatSymbolRefAttribute, StringAttribute, TypeAttribute},
        block::BlockLike,
        operation::{
            OperationLike, OperationMutLike, OperationRef, OperationRefMut, WalkOrder, WalkResult,
        },
        r#type::{FunctionType, IntegerType},
        Block, Identifier, Module, Region, RegionLike, Type, Value, ValueLike,
    },
    Context,
};
use std::collections::HashMap;

/// Pipeline flag.
pub const FLAG: &str = "bcr-parallelize";
/// One-line summary.
pub const SUMMARY: &str = "outline each strip loop of a sparse product into a function run by the runtime's grim_parallel_for";
/// Accepted options.
pub const OPTIONS: &[&str] = &["grain=N strips per work item (1)"];

/// The discardable attribute that marks a loop as parallel.
pub const PARALLEL_ATTR: &str = "grim.parallel";
/// Discardable attribute of a parallel loop: the most threads it may use
/// (a layer's `schedule.threads` in the LR file).
pub const THREADS_ATTR: &str = "grim.threads";
/// Attribute of a `grim.parallel` loop: the fewest iterations a work item
/// takes (the pass's `grain` option is the default), for loops whose
/// iterations are too short to hand out one at a time.
pub const GRAIN_ATTR: &str = "grim.grain";
/// The runtime function the outlined loops are handed to.
pub const RUNTIME_PARALLEL_FOR: &str = grim_dialects::abi::PARALLEL_FOR;

/// The pass object.
pub struct BcrParallelize {
    grain: i64,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let grain = options.int(FLAG, "grain", 1)?;
    if grain < 1 {
        return Err(PassError::Option {
            pass: FLAG.into(),
            message: format!("grain must be >= 1, got {grain}"),
        });
    }
    Ok(Box::new(BcrParallelize { grain }))
}

/// The op that owns `value` (its defining op, or the op owning its block).
fn owner<'c, 'a>(value: Value<'c, 'a>) -> Option<OperationRef<'c, 'a>> {
    // SAFETY: read-only queries on a live value.
    unsafe {
        if mlir_sys::mlirValueIsABlockArgument(value.to_raw()) {
            let block = mlir_sys::mlirBlockArgumentGetOwner(value.to_raw());
            OperationRef::from_option_raw(mlir_sys::mlirBlockGetParentOperation(block))
        } else {
            OperationRef::from_option_raw(mlir_sys::mlirOpResultGetOwner(value.to_raw()))
        }
    }
}

/// Whether `op` is `ancestor` or nested in it.
fn is_within(op: OperationRef, ancestor: OperationRef) -> bool {
    let mut current = Some(op);
    while let Some(c) = current {
        if c == ancestor {
            return true;
        }
        current = c.parent_operation();
    }
    false
}

/// How a captured value reaches the outlined function.
enum Capture {
    /// Cloned (constants, per-thread allocas).
    Clone,
    /// Passed in the argument array starting at this slot.
    Passed(i64),
}

impl Pass for BcrParallelize {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let loops = crate::collect_ops(module, |op| {
            crate::op_name(op) == "scf.for" && op.has_attribute(PARALLEL_ATTR)
        });
        if loops.is_empty() {
            return Ok(());
        }
        declare_runtime(context, module);
        for (index, raw) in loops.into_iter().enumerate() {
            // SAFETY: collected above; each loop is moved once.
            let lp = unsafe { OperationRef::from_raw(raw) };
            self.outline(context, module, lp, index)?;
        }
        Ok(())
    }
}

fn parallel_for_type(context: &Context) -> (Type<'_>, Type<'_>) {
    let pointer = llvm::r#type::pointer(context, 0);
    let i64_type: Type = IntegerType::new(context, 64).into();
    let body: Type = FunctionType::new(context, &[pointer, i64_type, i64_type], &[]).into();
    let runtime: Type =
        FunctionType::new(context, &[pointer, i64_type, i64_type, body, pointer], &[]).into();
    (body, runtime)
}

/// The static offset of a memref with a strided layout, in bytes (`None`
/// for an identity layout; 0-sized element types count as 1 byte).
fn static_offset_bytes(ty: Type) -> Option<i64> {
    use melior::ir::r#type::TypeLike;
    let offset = shape::static_offset(ty)?;
    let element = shape::element_type(ty)?;
    // SAFETY: read-only queries on a live type.
    let bits = unsafe {
        if mlir_sys::mlirTypeIsAF32(element.to_raw()) {
            32
        } else if mlir_sys::mlirTypeIsAInteger(element.to_raw()) {
            mlir_sys::mlirIntegerTypeGetWidth(element.to_raw()) as i64
        } else {
            8
        }
    };
    Some(offset * (bits / 8).max(1))
}

fn declare_runtime<'c>(context: &'c Context, module: &Module<'c>) {
    let (_, runtime) = parallel_for_type(context);
    crate::declare_external(context, module, RUNTIME_PARALLEL_FOR, runtime);
}

impl BcrParallelize {
    fn outline<'c>(
        &self,
        context: &'c Context,
        module: &Module<'c>,
        lp: OperationRef<'c, '_>,
        index: usize,
    ) -> Result<(), PassError> {
        let mut function = lp.parent_operation();
        while let Some(f) = function {
            if crate::op_name(&f) == "func.func" {
                break;
            }
            function = f.parent_operation();
        }
        let function = function.ok_or_else(|| op_error(&lp, "is not inside a func.func"))?;
        let entry = function
            .region(0)
            .ok()
            .and_then(|r| r.first_block())
            .ok_or_else(|| op_error(&function, "has no body"))?;
        let ctx = entry.argument(0).map(Value::from).ok().filter(|v| v.r#type().to_string() == "!llvm.ptr").ok_or_else(|| {
            op_error(&lp, "needs its function's first argument to be the runtime context (!llvm.ptr), as lower-grim-to-bcr makes it")
        })?;
        let function_name = grim_dialects::attr::string(&function, "sym_name").unwrap_or_default();

        // Values the loop uses that are defined outside it (its own bounds included).
        let mut captured: Vec<V<'c>> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut note = |value: V<'c>| {
            let inside = owner(value).is_some_and(|o| {
                is_within(o, lp) && o != lp || (o == lp && value.is_block_argument())
            });
            if !inside && seen.insert(value.to_raw().ptr as usize) {
                captured.push(value);
            }
        };
        // The lower bound and step are used inside; the upper bound is not.
        for index in [0, 2] {
            note(erase(lp.operand(index).map_err(|e| op_error(&lp, e))?));
        }
        let mut used = Vec::new();
        let loop_raw = lp.to_raw();
        lp.walk(WalkOrder::PreOrder, |op| {
            if op.to_raw().ptr != loop_raw.ptr {
                used.extend(op.operands().map(|operand| operand.to_raw()));
            }
            WalkResult::Advance
        });
        for raw in used {
            // SAFETY: the operand values are alive (nothing was rewritten yet).
            note(unsafe { Value::from_raw(raw) });
        }

        // Decide clone vs pass, and lay out the argument array.
        let mut plan = Vec::new();
        let mut slots = 0i64;
        for value in &captured {
            let defining = owner(*value)
                .filter(|_| value.is_operation_result())
                .map(|o| crate::op_name(&o))
                .unwrap_or_default();
            let ty = value.r#type();
            if defining == "arith.constant" || defining == "memref.alloca" {
                plan.push(Capture::Clone);
            } else if shape::is_memref(ty) {
                let rank = shape::rank(ty).unwrap_or(0) as i64;
                let dynamic = if shape::static_shape(ty).is_some() {
                    0
                } else {
                    rank
                };
                plan.push(Capture::Passed(slots));
                slots += 1 + dynamic;
            } else if ty.to_string() == "index" || ty.to_string().starts_with('i') {
                plan.push(Capture::Passed(slots));
                slots += 1;
            } else {
                return Err(op_error(
                    &lp,
                    format!("captures a value of type {ty}, which {FLAG} cannot pass to a thread"),
                ));
            }
        }

        // Caller side: fill the argument array and call the runtime.
        let b = Builder::before(context, lp);
        let i64_type = b.int_type(64);
        let args = b.alloca(&[slots.max(1)], i64_type);
        let to_i64 = |b: &Builder<'c>, v: V<'c>| -> V<'c> {
            let ty = v.r#type().to_string();
            if ty == "index" {
                b.from_index(v, 64)
            } else if ty == "i64" {
                v
            } else {
                b.op("arith.extsi", &[v], &[b.int_type(64)], &[])[0]
            }
        };
        for (value, capture) in captured.iter().zip(&plan) {
            let Capture::Passed(slot) = capture else {
                continue;
            };
            let ty = value.r#type();
            if shape::is_memref(ty) {
                let pointer = b.op(
                    "memref.extract_aligned_pointer_as_index",
                    &[*value],
                    &[b.index_type()],
                    &[],
                )[0];
                // A view at a static offset into a caller's buffer (a conv's
                // n-th image) is passed as a pointer to its first element: the
                // outlined function rebuilds plain row-major memrefs.
                let pointer = match static_offset_bytes(ty) {
                    Some(bytes) if bytes != 0 => b.addi(pointer, b.index(bytes)),
                    _ => pointer,
                };
                let pointer = b.from_index(pointer, 64);
                let at = b.index(*slot);
                b.store(pointer, args, &[at]);
                if shape::static_shape(ty).is_none() {
                    for dim in 0..shape::rank(ty).unwrap_or(0) as i64 {
                        let size = b.dim(*value, dim);
                        let size = b.from_index(size, 64);
                        let at = b.index(slot + 1 + dim);
                        b.store(size, args, &[at]);
                    }
                }
            } else {
                let wide = to_i64(&b, *value);
                let at = b.index(*slot);
                b.store(wide, args, &[at]);
            }
        }
        let lower = erase(lp.operand(0).map_err(|e| op_error(&lp, e))?);
        let upper = erase(lp.operand(1).map_err(|e| op_error(&lp, e))?);
        let count = b.subi(upper, lower);
        let count = b.from_index(count, 64);
        // A thread cap k hands out chunks of ceil(count / k) iterations, so
        // at most k threads get work (a small layer skips the fork/join of
        // threads it cannot keep busy).
        let cap = grim_dialects::attr::int(&lp, THREADS_ATTR).filter(|k| *k > 0);
        let least = grim_dialects::attr::int(&lp, GRAIN_ATTR)
            .unwrap_or(1)
            .max(self.grain);
        let grain = match cap {
            Some(threads) => {
                let share = b.signed("arith.ceildivsi", count, b.int(threads, 64));
                b.signed("arith.maxsi", share, b.int(least, 64))
            }
            None => b.int(least, 64),
        };
        let args_pointer = b.op(
            "memref.extract_aligned_pointer_as_index",
            &[args],
            &[b.index_type()],
            &[],
        )[0];
        let args_pointer = b.from_index(args_pointer, 64);
        let pointer_type = llvm::r#type::pointer(context, 0);
        let args_pointer = b.op("llvm.inttoptr", &[args_pointer], &[pointer_type], &[])[0];
        let outlined_name = format!("{function_name}_parallel{index}");
        let (body_type, _) = parallel_for_type(context);
        let body_fn = b.op(
            "func.constant",
            &[],
            &[body_type],
            &[(
                "value",
                FlatSymbolRefAttribute::new(context, &outlined_name).into(),
            )],
        )[0];
        b.op(
            "func.call",
            &[erase(ctx), count, grain, body_fn, args_pointer],
            &[],
            &[(
                "callee",
                FlatSymbolRefAttribute::new(context, RUNTIME_PARALLEL_FOR).into(),
            )],
        );

        // The outlined function.
        let location = lp.location();
        let block = Block::new(&[
            (pointer_type, location),
            (i64_type, location),
            (i64_type, location),
        ]);
        let inner = Builder::at_end(
            context,
            &unsafe { melior::ir::BlockRef::from_raw(block.to_raw()) },
            location,
        );
        let arg_pointer = erase(block.argument(0).map_err(|e| op_error(&lp, e))?.into());
        let begin = erase(block.argument(1).map_err(|e| op_error(&lp, e))?.into());
        let end = erase(block.argument(2).map_err(|e| op_error(&lp, e))?.into());
        let arg_array = memref_from_pointer(&inner, arg_pointer, &[slots.max(1)], i64_type, &[]);
        let mut mapping: HashMap<usize, V<'c>> = HashMap::new();
        for (value, capture) in captured.iter().zip(&plan) {
            let new = match capture {
                Capture::Clone => {
                    let original = owner(*value)
                        .ok_or_else(|| op_error(&lp, "captured value without an owner"))?;
                    // SAFETY: cloning a live op gives a detached copy we own.
                    let clone = unsafe {
                        melior::ir::Operation::from_raw(mlir_sys::mlirOperationClone(
                            original.to_raw(),
                        ))
                    };
                    inner.value(clone)
                }
                Capture::Passed(slot) => {
                    let load = |offset: i64| {
                        let at = inner.index(slot + offset);
                        inner.load(arg_array, &[at])
                    };
                    let ty = value.r#type();
                    if shape::is_memref(ty) {
                        let pointer = load(0);
                        let pointer =
                            inner.op("llvm.inttoptr", &[pointer], &[pointer_type], &[])[0];
                        let element = shape::element_type(ty)
                            .ok_or_else(|| op_error(&lp, "memref without element type"))?;
                        match shape::static_shape(ty) {
                            Some(dims) => memref_from_pointer(&inner, pointer, &dims, element, &[]),
                            None => {
                                let rank = shape::rank(ty).unwrap_or(0) as i64;
                                let sizes: Vec<V<'c>> = (0..rank).map(|d| load(1 + d)).collect();
                                memref_from_pointer(
                                    &inner,
                                    pointer,
                                    &vec![i64::MIN; rank as usize],
                                    element,
                                    &sizes,
                                )
                            }
                        }
                    } else if ty.to_string() == "index" {
                        inner.to_index(load(0))
                    } else if ty.to_string() == "i64" {
                        load(0)
                    } else {
                        inner.op("arith.trunci", &[load(0)], &[ty], &[])[0]
                    }
                }
            };
            mapping.insert(value.to_raw().ptr as usize, new);
        }
        let map = |v: V<'c>| *mapping.get(&(v.to_raw().ptr as usize)).unwrap_or(&v);
        let new_lower = map(lower);
        let begin = inner.to_index(begin);
        let end = inner.to_index(end);
        let first = inner.addi(new_lower, begin);
        let last = inner.addi(new_lower, end);
        let ret = inner.insert(melior::dialect::func::r#return(&[], location));

        // Move the loop, then point it and everything in it at the new values.
        let mut moved = unsafe { OperationRefMut::from_raw(lp.to_raw()) };
        moved.move_before(unsafe { OperationRef::from_raw(ret.to_raw()) });
        let _ = moved.remove_attribute(PARALLEL_ATTR);
        let _ = moved.remove_attribute(THREADS_ATTR);
        let _ = moved.remove_attribute(GRAIN_ATTR);
        let step = map(erase(lp.operand(2).map_err(|e| op_error(&lp, e))?));
        moved.set_operand(0, first);
        moved.set_operand(1, last);
        moved.set_operand(2, step);
        let mut rewrites = Vec::new();
        lp.walk(WalkOrder::PreOrder, |op| {
            for (i, operand) in op.operands().enumerate() {
                if let Some(new) = mapping.get(&(operand.to_raw().ptr as usize)) {
                    rewrites.push((op.to_raw(), i, *new));
                }
            }
            WalkResult::Advance
        });
        for (op, i, new) in rewrites {
            unsafe { OperationRefMut::from_raw(op) }.set_operand(i, new);
        }

        let region = Region::new();
        region.append_block(block);
        let outlined = melior::dialect::func::func(
            context,
            StringAttribute::new(context, &outlined_name),
            TypeAttribute::new(body_type),
            region,
            &[(
                Identifier::new(context, "sym_visibility"),
                StringAttribute::new(context, "private").into(),
            )],
            location,
        );
        module.body().insert_operation_after(function, outlined);
        Ok(())
    }
}

/// A memref of `dims` (i64::MIN for dynamic, sized by `sizes`) over a raw
/// pointer: an LLVM memref descriptor cast to the memref type, which the
/// upstream conversion to the llvm dialect folds away.
fn memref_from_pointer<'c>(
    b: &Builder<'c>,
    pointer: V<'c>,
    dims: &[i64],
    element: Type<'c>,
    sizes: &[V<'c>],
) -> V<'c> {
    let rank = dims.len();
    // The descriptor the upstream memref-to-llvm conversion uses:
    // `(allocated, aligned, offset, sizes[rank], strides[rank])`.
    let pointer_type = llvm::r#type::pointer(b.context, 0);
    let i64_type = b.int_type(64);
    let dims_type = llvm::r#type::array(i64_type, rank as u32);
    let descriptor_type = llvm::r#type::r#struct(
        b.context,
        &[pointer_type, pointer_type, i64_type, dims_type, dims_type],
        false,
    );
    let insert = |b: &Builder<'c>, aggregate: V<'c>, value: V<'c>, position: &[i64]| -> V<'c> {
        let position =
            melior::ir::attribute::DenseI64ArrayAttribute::new(b.context, position).into();
        b.op(
            "llvm.insertvalue",
            &[aggregate, value],
            &[descriptor_type],
            &[("position", position)],
        )[0]
    };
    let mut descriptor = b.op("llvm.mlir.poison", &[], &[descriptor_type], &[])[0];
    descriptor = insert(b, descriptor, pointer, &[0]);
    descriptor = insert(b, descriptor, pointer, &[1]);
    let zero = b.int(0, 64);
    descriptor = insert(b, descriptor, zero, &[2]);
    let mut dynamic = sizes.iter();
    let size_values: Vec<V<'c>> = dims
        .iter()
        .map(|d| {
            if *d == i64::MIN {
                *dynamic.next().expect("a size per dynamic dim")
            } else {
                b.int(*d, 64)
            }
        })
        .collect();
    let mut stride = b.int(1, 64);
    for dim in (0..rank).rev() {
        descriptor = insert(b, descriptor, size_values[dim], &[3, dim as i64]);
        descriptor = insert(b, descriptor, stride, &[4, dim as i64]);
        stride = b.muli(stride, size_values[dim]);
    }
    let memref_type = melior::ir::r#type::MemRefType::new(element, dims, None, None).into();
    b.op(
        "builtin.unrealized_conversion_cast",
        &[descriptor],
        &[memref_type],
        &[],
    )[0]
}
