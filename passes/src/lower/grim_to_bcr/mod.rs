//! lower-grim-to-bcr: lower grim tensor graphs to memref code with bcr sparse products, weights as blob slots.
//!
//! Every `func.func` holding grim ops on tensors becomes a function on
//! caller-owned buffers with the ABI of `grim_dialects::abi` (context,
//! weight blob, scratch arena, then the caller's inputs and outputs).
//!
//! * A constant weight of a product becomes `bcr.packed` (its BCRC arrays,
//!   read from blob slots at run time) or, for a product on the dense
//!   kernel, `bcr.dense` in row panels; any other constant use (bias, add
//!   operand, batch-norm parameters) becomes `bcr.dense`. Each carries the
//!   weight's `value` attribute, from which the blob is packed after this
//!   level. Slots are numbered in first-use order. A product's weight
//!   computed at run time (a graph input) becomes a `bcr.pack_panels` into
//!   the product's first temporary, read by the dense `bcr.gemm`; its gemm
//!   keeps every ONNX attribute (`alpha` scales the packing, `trans_a`
//!   reads A in place, `beta * C` broadcasts into the accumulator).
//! * Every other tensor value lives in the scratch arena at a 64-byte
//!   aligned offset (`reshape` and `identity` alias their input's bytes).
//! * Products (`gemm.rs`, `conv.rs`): `grim.gemm` (canonical form only)
//!   with one row becomes `bcr.spmv`, with `N > 1` rows a `bcr.spmm` on
//!   `[K, N]` activations into an `[M, N]` accumulator (the kernels
//!   vectorise along `N`), transposed in and out unless a `grim.transpose`
//!   beside it cancels; `grim.conv2d` runs image by image in its GEMM view.
//!   The epilogue: the output starts as bias plus residual, the product
//!   accumulates into it, then the activation is applied over it.
//! * Elementwise ops (`elementwise.rs`): `grim.add` (numpy broadcasting),
//!   the activations, `grim.batch_norm` and `grim.transpose` (16x16 tiles,
//!   `transpose.rs`: in registers of the module's `grim.target` lanes)
//!   become `scf.for` nests, as do `grim.permute` (`permute.rs`) and
//!   `grim.matmul` (`matmul.rs`: a dot product per result element) and
//!   `grim.softmax` (`softmax.rs`); `grim.concat` copies into the result's
//!   slices the operands graph-plan-memory did not place there
//!   (`concat.rs`); `grim.lrn` sums each element's
//!   channel window (`lrn.rs`); `grim.pad` reads each output element's
//!   source index per dim (`pad.rs`).
//! * Inputs are read in the caller's buffers; a value the function returns
//!   is computed straight into its output buffer (copied only when it is
//!   also an input, an alias, or returned twice).
//!
//! What it does not do: choose kernels, block sizes or fusion (graph
//! passes do: a product's `kernel`, `block_rows`/`block_cols` attributes
//! win over the `block` option), or reuse scratch across dead values. A
//! `grim.gemm` with a constant weight that graph-simplify has not made
//! canonical (transposed or scaled operands, a broadcast C) is an error
//! naming the op.
//!
//! Products come out scalar (no `vector_width`): `bcr-vectorize` picks the
//! lanes.
//!
//! Where graph-profile-layers marked ops (`grim.profile_id`), their code is
//! bracketed by `func.call @grim_profile_begin(%ctx, %id)` /
//! `@grim_profile_end` (`profile.rs`), and the function keeps
//! `grim.layers = [...]`, the names of the layers that emitted code, by
//! id: what `grimc bench --per-layer` reports.
//!
//! It needs graph-plan-memory's plan: every arena value's `grim.offset`,
//! the temporaries' `grim.temporaries`, the function's `grim.arena_bytes`.
//!
//! Options: `block=RxC` (default 8x16), `order=natural|grouped` (default
//! natural).

mod abi;
pub mod cancel;
mod concat;
mod conv;
mod elementwise;
mod fast_math;
mod gemm;
mod grouped_conv;
mod lrn;
mod matmul;
mod pad;
mod permute;
mod pool;
mod profile;
mod recurrent;
pub mod scratch;
mod softmax;
mod transpose;
mod values;
mod weights;

pub use profile::layer_name;
pub use recurrent::{
    describe as recurrent_dims, per_gate as recurrent_per_gate, units as recurrent_units,
    Matrix as RecurrentMatrix, Unit as RecurrentUnit,
};

use crate::{
    builder::{Builder, V},
    op_error, parse_block, Pass, PassError, PassOptions,
};
use grim_dialects::{abi as contract, bcr, grim};
use melior::{
    ir::{
        block::BlockLike,
        operation::{OperationLike, OperationRef},
        r#type::{FunctionType, IntegerType},
        Module, Type, Value, ValueLike,
    },
    Context,
};
use std::collections::HashMap;
use values::Tensor;

/// Pipeline flag.
pub const FLAG: &str = "lower-grim-to-bcr";
/// One-line summary.
pub const SUMMARY: &str =
    "lower grim tensor graphs to memref code with bcr sparse products, weights as blob slots";
/// Accepted options.
pub const OPTIONS: &[&str] = &[
    "block=RxC BCR block of a product without one (8x16)",
    "order=natural|grouped (natural)",
];

/// The pass object.
pub struct LowerGrimToBcr {
    block: (i64, i64),
    order: String,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    let block = match options.string("block") {
        None => (8, 16),
        Some(text) => parse_block(text).ok_or_else(|| PassError::Option {
            pass: FLAG.into(),
            message: format!("block must be RxC with 1..=64 each, got '{text}'"),
        })?,
    };
    let order = options
        .string("order")
        .unwrap_or(bcr::ORDER_NATURAL)
        .to_string();
    if order != bcr::ORDER_NATURAL && order != bcr::ORDER_GROUPED {
        return Err(PassError::Option {
            pass: FLAG.into(),
            message: format!("order must be natural or grouped, got '{order}'"),
        });
    }
    Ok(Box::new(LowerGrimToBcr { block, order }))
}

impl Pass for LowerGrimToBcr {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let mut functions = Vec::new();
        for op in top_level_ops(module) {
            if op.name().as_string_ref().as_str() == Ok("func.func")
                && crate::is_model_function(&op)
            {
                functions.push(op.to_raw());
            }
        }
        // The transposes use the target's vectors; a file without a target
        // gets scalar ones (bcr-vectorize decides everything else later).
        let has_target =
            grim_dialects::attr::string(&module.as_operation(), grim_dialects::abi::TARGET_ATTR)
                .is_some();
        let target = if has_target {
            Some(crate::graph::target(module)?)
        } else {
            None
        };
        let lanes = target.as_ref().map_or(1, |t| t.lanes as i64);
        let isa = target.map(|t| t.isa);
        let mut next_slot = 0;
        let mut profiled = false;
        for raw in functions {
            // SAFETY: collected from the module above; each is erased only after its rewrite.
            let function = unsafe { OperationRef::from_raw(raw) };
            let mut lowering = Lowering::new(context, self, next_slot, lanes);
            lowering.isa = isa;
            lowering.function(module, function)?;
            next_slot = lowering.weights.next_slot;
            profiled |= lowering.profiled;
        }
        if profiled {
            let pointer = melior::dialect::llvm::r#type::pointer(context, 0);
            let i64_type: Type = IntegerType::new(context, 64).into();
            let ty: Type = FunctionType::new(context, &[pointer, i64_type], &[]).into();
            for name in [contract::PROFILE_BEGIN, contract::PROFILE_END] {
                crate::declare_external(context, module, name, ty);
            }
        }
        Ok(())
    }
}

/// The ops directly in the module body.
pub fn top_level_ops<'c, 'a>(module: &'a Module<'c>) -> Vec<OperationRef<'c, 'a>> {
    let mut ops = Vec::new();
    let mut next = module.body().first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        ops.push(op);
    }
    ops
}

/// The state of lowering one function.
struct Lowering<'c, 'p> {
    context: &'c Context,
    pass: &'p LowerGrimToBcr,
    /// Where each source value lives, by [`key`].
    values: HashMap<usize, Tensor<'c>>,
    /// The arena bytes the memory plan asks for.
    scratch_bytes: i64,
    /// Blob slots and the weight views made so far.
    weights: weights::Slots<'c>,
    /// The new function's arguments.
    arguments: Vec<V<'c>>,
    /// Source values returned by the function, by key: the output argument
    /// their producer writes directly.
    returned: HashMap<usize, usize>,
    /// The transposes the gemms absorb.
    cancelled: cancel::Cancelled,
    /// Whether any layer is profiled (the runtime's profile calls are then declared).
    profiled: bool,
    /// The target's f32 lanes (1 without a `grim.target`), for the transposes.
    lanes: i64,
    /// The target's vector instruction set (`None` without a `grim.target`).
    isa: Option<grim_model::cost::Isa>,
}

/// A value's identity across the rewrite.
fn key(value: Value) -> usize {
    value.to_raw().ptr as usize
}

impl<'c, 'p> Lowering<'c, 'p> {
    fn new(context: &'c Context, pass: &'p LowerGrimToBcr, next_slot: i64, lanes: i64) -> Self {
        Lowering {
            context,
            pass,
            values: HashMap::new(),
            scratch_bytes: 0,
            weights: weights::Slots::new(next_slot),
            arguments: Vec::new(),
            returned: HashMap::new(),
            cancelled: cancel::Cancelled::default(),
            profiled: false,
            lanes,
            isa: None,
        }
    }

    fn scratch(&self) -> V<'c> {
        self.arguments[contract::SCRATCH_ARG]
    }

    fn blob(&self) -> V<'c> {
        self.arguments[contract::BLOB_ARG]
    }

    /// Temporary `index` of `op` (in `scratch::temporaries` order), at the
    /// offset graph-plan-memory gave it.
    fn temporary(
        &self,
        op: &OperationRef,
        index: usize,
        shape: &[i64],
    ) -> Result<Tensor<'c>, PassError> {
        Ok(Tensor::Buffer {
            offset: self.temporary_offset(op, index)?,
            shape: shape.to_vec(),
        })
    }

    /// The arena byte offset of temporary `index` of `op`.
    fn temporary_offset(&self, op: &OperationRef, index: usize) -> Result<i64, PassError> {
        let offsets =
            grim_dialects::attr::i64_array(op, scratch::TEMPORARIES_ATTR).unwrap_or_default();
        offsets.get(index).copied().ok_or_else(|| {
            op_error(
                op,
                format!("has no arena offset for its temporary #{index}: run graph-plan-memory before {FLAG}"),
            )
        })
    }

    /// Lowers one op of the source function at `b`.
    fn op(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
        function: &str,
    ) -> Result<(), PassError> {
        let op_name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
        match op_name.as_str() {
            grim::CONSTANT => {
                let value =
                    grim::constant_value(&op).ok_or_else(|| op_error(&op, "has no value"))?;
                let shape = grim_dialects::weights::shape(value)
                    .ok_or_else(|| op_error(&op, "value must be f32 weights"))?;
                let name = grim::constant_name(&op)
                    .unwrap_or_else(|| format!("{function}.const{}", self.weights.constants()));
                self.define(&op, Tensor::Weight { name, shape, value })
            }
            grim::GEMM => self.gemm(b, op),
            grim::CONV2D => self.conv2d(b, op),
            name if grim::BINARY.contains(&name) => self.binary(b, op),
            grim::POOL => self.pool(b, op),
            grim::BATCH_NORM => self.batch_norm(b, op),
            grim::TRANSPOSE => self.transpose_op(b, op),
            grim::PERMUTE => self.permute(b, op),
            grim::MATMUL => self.matmul(b, op),
            grim::SOFTMAX => self.softmax(b, op),
            grim::CONCAT => self.concat(b, op),
            grim::LRN => self.lrn(b, op),
            grim::PAD => self.pad(b, op),
            grim::RECURRENT => self.recurrent(b, op),
            grim::RESHAPE | grim::IDENTITY => {
                let shape =
                    values::tensor_shape(&op, op.result(0).map_err(|e| op_error(&op, e))?.into())?;
                let input = self.operand(&op, 0)?;
                self.define(&op, input.reshaped(shape))
            }
            name if grim::ACTIVATIONS.contains(&name) => self.activation_op(b, op),
            _ => Err(op_error(
                &op,
                format!("is not supported by {FLAG} (supported: every grim op)"),
            )),
        }
    }
}
