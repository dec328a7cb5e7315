//! lower-grim-to-bcr: lower grim tensor graphs to memref code with bcr sparse products, weights as blob slots.
//!
//! Every `func.func` holding grim ops on tensors becomes a function on
//! caller-owned buffers with a fixed ABI:
//!
//! ```text
//! func.func @f(%ctx: !llvm.ptr, %blob: memref<?xi8>, %scratch: memref<?xi8>,
//!              %in0: memref<..xf32>, ..., %out0: memref<..xf32>, ...)
//!     attributes {llvm.emit_c_interface, grim.scratch_bytes = S, grim.num_slots = T, ...}
//! ```
//!
//! * Weights never enter the IR: a gemm weight becomes `bcr.packed` (its BCRC
//!   arrays, read from blob slots at run time) and any other weight use
//!   (bias, add operand) becomes `bcr.dense`. Slots are numbered in first-use
//!   order; the compiler driver packs the blob from the same ops afterwards.
//! * Every other tensor value lives in the scratch arena at a 64-byte
//!   aligned offset (a bump plan; reshape is free: it aliases its input's
//!   bytes).
//! * `grim.gemm` with one row (`N = 1`) becomes `bcr.spmv` into the output
//!   initialised with the bias; with `N > 1` the input is transposed to
//!   `[K, N]`, `bcr.spmm` accumulates `[M, N]`, and the result is transposed
//!   back, because the kernels vectorise along `N` (BCR.md, "Kernels").
//!   A `grim.transpose` feeding only gemm inputs, or reading a gemm's only
//!   result, cancels against the gemm's own transpose: the product then
//!   reads `[K, N]` activations and writes `[M, N]` results in place.
//! * `grim.conv2d` in its GEMM view, image by image, into the NCHW output
//!   (`[M, Ho*Wo]` per image): a pointwise conv multiplies the image as
//!   `[C, H*W]`; the dense kernel reads the image through its patches
//!   (`im2col` on `bcr.gemm`); the BCR kernels read it in place when its
//!   output rows are wide (stride 1, at least 48 columns; padded first by a
//!   1x1 `bcr.im2col`), else an explicit patch matrix from `bcr.im2col`.
//! * `grim.add` (numpy broadcasting), `grim.relu` and `grim.transpose`
//!   (16x16 tiles) become `scf.for` nests.
//! * Inputs are read in the caller's buffers; a value the function returns
//!   is computed straight into its output buffer (copied only when it is
//!   also an input, a reshape, or returned twice).
//!
//! What it does not do: fuse, reuse scratch across dead values, or choose
//! block sizes — a gemm's `block_rows`/`block_cols` attributes (set by the
//! driver from the LR file or `--block`) win over the `block` option.
//!
//! Products come out scalar (no `vector_width`): `bcr-vectorize` picks the
//! lanes. A gemm with `kernel = "dense"` (a layer that stays dense) becomes
//! `bcr.gemm` on a `bcr.dense` weight in row panels instead of a BCR product.
//!
//! With `profile=1` the code of every layer (gemm, add, relu, transpose
//! that is not cancelled) is bracketed by `func.call @grim_profile_begin(%ctx,
//! %id)` / `@grim_profile_end` (runtime functions that accumulate wall time
//! per id), and the function gets `grim.layers = [...]`, the layers' names
//! by id (ONNX node names where the location has one): what
//! `grimc bench --per-layer` reports.
//!
//! Options: `block=RxC` (default 8x16), `order=natural|grouped` (default
//! natural), `profile=0|1` (default 0).

use crate::{
    builder::{erase, erase_op, Builder, V},
    op_error, parse_block, Pass, PassError, PassOptions,
};
use grim_dialects::{bcr, grim, shape};
use melior::{
    ir::{
        attribute::{IntegerAttribute, StringAttribute, TypeAttribute},
        block::BlockLike,
        operation::{OperationLike, OperationRef, WalkOrder, WalkResult},
        r#type::{FunctionType, IntegerType},
        Attribute, Block, BlockRef, Identifier, Module, Region, RegionLike, Type, Value, ValueLike,
    },
    Context,
};
use std::collections::HashMap;

/// Pipeline flag.
pub const FLAG: &str = "lower-grim-to-bcr";
/// One-line summary.
pub const SUMMARY: &str =
    "lower grim tensor graphs to memref code with bcr sparse products, weights as blob slots";
/// Accepted options.
pub const OPTIONS: &[&str] = &[
    "block=RxC default BCR block (8x16)",
    "order=natural|grouped (natural)",
    "profile=0|1 time each layer through the runtime (0)",
];

/// Byte alignment of every scratch buffer and blob array.
pub const ALIGN: i64 = 64;

/// The pass object.
pub struct LowerGrimToBcr {
    block: (i64, i64),
    order: String,
    profile: bool,
}

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_known(FLAG, &["block", "order", "profile"])?;
    let profile = match options.int(FLAG, "profile", 0)? {
        0 => false,
        1 => true,
        other => {
            return Err(PassError::Option {
                pass: FLAG.into(),
                message: format!("profile must be 0 or 1, got {other}"),
            })
        }
    };
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
    Ok(Box::new(LowerGrimToBcr {
        block,
        order,
        profile,
    }))
}

/// A gemm's activations: `[N, K]` as the graph holds them, or already `[K, N]`
/// (the source of a cancelled transpose), which the kernels read in place.
enum Activations {
    Rows(Tensor),
    Columns(Tensor),
}

/// The narrowest output row for which the BCR kernels read a conv's image
/// in place. They walk it row by row, each row in register chunks of up to
/// 24 columns (AVX2) with one masked tail: a 14-column row (resnet18's
/// layer3) fills one vector of a two-vector tile, so each broadcast weight
/// feeds half the FMAs, and such convs measured 1.5x-2.5x slower in place
/// than through an explicit patch matrix; 56-column rows (vgg16 conv3_1)
/// ran as fast as the GEMM view, without the 9x larger patch matrix.
const BCR_IMPLICIT_MIN_WO: i64 = 48;

/// How a conv's image reaches its product.
enum ConvInput {
    /// A 1x1 stride-1 unpadded conv: the image is the `[C, H*W]` matrix.
    Pointwise,
    /// The product reads the image through its patches (`im2col` on the
    /// product), from a zero-padded copy in this buffer when given.
    Implicit(Option<Tensor>),
    /// An explicit patch matrix in this buffer (`bcr.im2col`).
    Patches(Tensor),
}

/// A gemm's weight as its product reads it.
enum Weights<'c> {
    /// BCRC arrays and the block size.
    Bcr((bcr::Packed<'c, 'c>, i64, i64)),
    /// Row panels of a layer that stays dense.
    Dense(V<'c>),
}

impl<'c> Weights<'c> {
    /// `x`/`c` are `[K, N]`/`[M, N]` (`matrix`) or `[K]`/`[M]`.
    fn product(
        &self,
        context: &'c Context,
        x: V<'c>,
        c: V<'c>,
        matrix: bool,
        location: melior::ir::Location<'c>,
    ) -> melior::ir::Operation<'c> {
        match self {
            Weights::Bcr((packed, rows, cols)) if matrix => {
                bcr::spmm(context, *packed, x, c, *rows, *cols, location)
            }
            Weights::Bcr((packed, rows, cols)) => {
                bcr::spmv(context, *packed, x, c, *rows, *cols, location)
            }
            Weights::Dense(w) => bcr::gemm(*w, x, c, location),
        }
    }
}

/// Where a tensor value of the source function lives after lowering.
#[derive(Clone, Debug)]
enum Tensor {
    /// In the scratch arena at `offset` bytes.
    Buffer { offset: i64, shape: Vec<i64> },
    /// A weight in the blob, not yet materialised.
    Weight { name: String, shape: Vec<i64> },
    /// A caller's buffer: the function argument `index` (an input, read
    /// only, or an output that its producer writes in place).
    Argument { index: usize, shape: Vec<i64> },
}

impl Tensor {
    fn shape(&self) -> &[i64] {
        match self {
            Tensor::Buffer { shape, .. }
            | Tensor::Weight { shape, .. }
            | Tensor::Argument { shape, .. } => shape,
        }
    }
}

impl Pass for LowerGrimToBcr {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let mut functions = Vec::new();
        for op in top_level_ops(module) {
            if op.name().as_string_ref().as_str() == Ok("func.func") && holds_grim_ops(op) {
                functions.push(op.to_raw());
            }
        }
        let mut next_slot = 0;
        for raw in functions {
            // SAFETY: collected from the module above; each is erased only after its rewrite.
            let function = unsafe { OperationRef::from_raw(raw) };
            let mut lowering = Lowering {
                context,
                pass: self,
                values: HashMap::new(),
                scratch_bytes: 0,
                next_slot,
                packed: HashMap::new(),
                dense: HashMap::new(),
                panels: HashMap::new(),
                constants: 0,
                arguments: Vec::new(),
                returned: HashMap::new(),
                cancelled_inputs: HashMap::new(),
            };
            lowering.function(module, function)?;
            next_slot = lowering.next_slot;
        }
        if self.profile {
            let pointer = Type::parse(context, "!llvm.ptr")
                .ok_or_else(|| PassError::Unsupported("cannot make !llvm.ptr".into()))?;
            let i64_type: Type = IntegerType::new(context, 64).into();
            let ty: Type = FunctionType::new(context, &[pointer, i64_type], &[]).into();
            for name in [PROFILE_BEGIN, PROFILE_END] {
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

fn holds_grim_ops(function: OperationRef) -> bool {
    let mut found = false;
    function.walk(WalkOrder::PreOrder, |op| {
        if op
            .name()
            .as_string_ref()
            .as_str()
            .is_ok_and(|n| n.starts_with("grim."))
        {
            found = true;
            return WalkResult::Interrupt;
        }
        WalkResult::Advance
    });
    found
}

struct Lowering<'c, 'p> {
    context: &'c Context,
    pass: &'p LowerGrimToBcr,
    values: HashMap<usize, Tensor>,
    scratch_bytes: i64,
    next_slot: i64,
    packed: HashMap<(String, i64, i64, bool), [V<'c>; 4]>,
    dense: HashMap<(String, Vec<i64>), V<'c>>,
    /// Row-panel weights of dense gemms, by (weight, matrix-vector).
    panels: HashMap<(String, bool), V<'c>>,
    constants: usize,
    /// The new function's arguments.
    arguments: Vec<V<'c>>,
    /// Source values returned by the function, by key: the output argument
    /// their producer writes directly.
    returned: HashMap<usize, usize>,
    /// `grim.transpose` results read only as a gemm's input, by key: the
    /// transposed value (the gemm reads it as its `[K, N]` operand).
    cancelled_inputs: HashMap<usize, usize>,
}

fn key(value: Value) -> usize {
    value.to_raw().ptr as usize
}

fn tensor_shape(op: &OperationRef, value: Value) -> Result<Vec<i64>, PassError> {
    let ty = value.r#type();
    if !shape::is_tensor(ty) || !shape::is_f32_shaped(ty) {
        return Err(op_error(
            op,
            format!("expects ranked f32 tensors, got {ty}"),
        ));
    }
    shape::static_shape(ty).ok_or_else(|| op_error(op, format!("expects static shapes, got {ty}")))
}

impl<'c> Lowering<'c, '_> {
    fn allocate(&mut self, shape: &[i64]) -> Tensor {
        let offset = self.scratch_bytes;
        let bytes = shape::numel(shape) * 4;
        self.scratch_bytes += (bytes + ALIGN - 1) / ALIGN * ALIGN;
        Tensor::Buffer {
            offset,
            shape: shape.to_vec(),
        }
    }

    fn function(
        &mut self,
        module: &Module<'c>,
        function: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let context = self.context;
        let name = grim_dialects::attr::string(&function, "sym_name")
            .ok_or_else(|| op_error(&function, "has no symbol name"))?;
        let body = function
            .region(0)
            .ok()
            .and_then(|r| r.first_block())
            .ok_or_else(|| op_error(&function, "has no body"))?;
        let location = function.location();

        // Inputs are the entry block's arguments; outputs are what func.return returns.
        let mut input_shapes = Vec::new();
        for index in 0..body.argument_count() {
            let argument: Value = body
                .argument(index)
                .map_err(|e| op_error(&function, e))?
                .into();
            input_shapes.push(tensor_shape(&function, argument)?);
        }
        let terminator = body
            .terminator()
            .ok_or_else(|| op_error(&function, "body has no terminator"))?;
        let mut output_shapes = Vec::new();
        for operand in terminator.operands() {
            output_shapes.push(tensor_shape(&terminator, operand)?);
        }

        let f32_type = Type::float32(context);
        let pointer = Type::parse(context, "!llvm.ptr")
            .ok_or_else(|| op_error(&function, "cannot make !llvm.ptr"))?;
        let bytes: Type = melior::ir::r#type::MemRefType::new(
            IntegerType::new(context, 8).into(),
            &[i64::MIN],
            None,
            None,
        )
        .into();
        let mut arguments = vec![pointer, bytes, bytes];
        for shape in input_shapes.iter().chain(&output_shapes) {
            arguments.push(melior::ir::r#type::MemRefType::new(f32_type, shape, None, None).into());
        }
        let block = Block::new(&arguments.iter().map(|t| (*t, location)).collect::<Vec<_>>());
        let argument = |i: usize| -> V<'c> { erase(block.argument(i).expect("argument").into()) };
        self.arguments = (0..arguments.len()).map(argument).collect();
        let blob = argument(1);
        let scratch = argument(2);
        let b = Builder::at_end(
            context,
            &unsafe { BlockRef::from_raw(block.to_raw()) },
            location,
        );

        // Inputs are read where the caller put them (no op writes its operands).
        for (index, shape) in input_shapes.iter().enumerate() {
            let tensor = Tensor::Argument {
                index: 3 + index,
                shape: shape.clone(),
            };
            self.values.insert(
                key(body
                    .argument(index)
                    .map_err(|e| op_error(&function, e))?
                    .into()),
                tensor,
            );
        }
        // A value returned once is computed straight into its output buffer.
        let mut counts: HashMap<usize, usize> = HashMap::new();
        for operand in terminator.operands() {
            *counts.entry(key(operand)).or_default() += 1;
        }
        for (index, operand) in terminator.operands().enumerate() {
            let produced_here = operand.is_operation_result()
                && unsafe {
                    OperationRef::from_raw(mlir_sys::mlirOpResultGetOwner(operand.to_raw()))
                }
                .name()
                .as_string_ref()
                .as_str()
                .is_ok_and(|n| COMPUTE_OPS.contains(&n));
            if produced_here && counts[&key(operand)] == 1 {
                self.returned
                    .insert(key(operand), 3 + input_shapes.len() + index);
            }
        }

        // Transpose pairs cancel: a gemm with N > 1 works on [K, N] and [M, N],
        // so a transposed input is read as is, and a transposed result is the
        // accumulator itself (see gemm()).
        let mut scan = body.first_operation();
        while let Some(op) = scan {
            scan = op.next_in_block();
            if op.name().as_string_ref().as_str() == Ok(grim::TRANSPOSE) {
                if let (Ok(result), Ok(source)) = (op.result(0), op.operand(0)) {
                    let uses = uses(result.into());
                    let only_gemm_inputs = !uses.is_empty()
                        && uses.iter().all(|(user, number)| {
                            *number == 0 && user.name().as_string_ref().as_str() == Ok(grim::GEMM)
                        });
                    let rows = shape::static_shape(result.r#type())
                        .map(|s| s[0])
                        .unwrap_or(1);
                    if only_gemm_inputs
                        && rows > 1
                        && !self.returned.contains_key(&key(result.into()))
                    {
                        self.cancelled_inputs
                            .insert(key(result.into()), key(source));
                    }
                }
            }
        }

        let mut next = body.first_operation();
        let mut layers: Vec<String> = Vec::new();
        let mut open_layer: Option<(OperationRef<'c, 'c>, i64)> = None;
        while let Some(op) = next {
            // Profiling: the previous layer's begin call is kept (and its end
            // call added) only if the layer emitted code after it.
            if let Some((begin, id)) = open_layer.take() {
                close_layer(&b, begin, id, argument(0), &mut layers);
            }
            next = op.next_in_block();
            let b = b.with_location(op.location());
            let op_name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
            if self.pass.profile && COMPUTE_OPS.contains(&op_name.as_str()) {
                let id = layers.len() as i64;
                layers.push(layer_name(&op, &op_name, layers.len()));
                open_layer = Some((profile_call(&b, PROFILE_BEGIN, argument(0), id), id));
            }
            match op_name.as_str() {
                grim::WEIGHT => {
                    let weight = grim::weight_name(&op).ok_or_else(|| op_error(&op, "has no name"))?;
                    let shape = tensor_shape(&op, op.result(0).map_err(|e| op_error(&op, e))?.into())?;
                    self.values.insert(key(op.result(0).map_err(|e| op_error(&op, e))?.into()), Tensor::Weight { name: weight, shape });
                }
                grim::CONSTANT => {
                    let weight = constant_name(&name, &op, self.constants);
                    self.constants += 1;
                    let shape = tensor_shape(&op, op.result(0).map_err(|e| op_error(&op, e))?.into())?;
                    self.values.insert(key(op.result(0).map_err(|e| op_error(&op, e))?.into()), Tensor::Weight { name: weight, shape });
                }
                grim::GEMM => self.gemm(&b, blob, scratch, op)?,
                grim::CONV2D => self.conv2d(&b, blob, scratch, op)?,
                grim::ADD => self.add(&b, blob, scratch, op)?,
                grim::RELU => {
                    let input = self.buffer(&op, 0)?;
                    let output = self.result(&op, input.shape());
                    let n = shape::numel(input.shape());
                    let source = self.flat_view(&b, scratch, &input);
                    let target = self.flat_view(&b, scratch, &output);
                    let zero = b.f32(0.0);
                    b.for_range(0, n, 1, &[], |b, i, _| {
                        let x = b.load(source, &[i]);
                        let y = b.maximumf(x, zero);
                        b.store(y, target, &[i]);
                        vec![]
                    });
                    self.define(&op, output)?;
                }
                grim::RESHAPE => {
                    let shape = tensor_shape(&op, op.result(0).map_err(|e| op_error(&op, e))?.into())?;
                    let input = self.operand(&op, 0)?;
                    let output = match input {
                        Tensor::Buffer { offset, .. } => Tensor::Buffer { offset, shape },
                        Tensor::Weight { name, .. } => Tensor::Weight { name, shape },
                        Tensor::Argument { index, .. } => Tensor::Argument { index, shape },
                    };
                    self.define(&op, output)?;
                }
                grim::TRANSPOSE => {
                    let result = key(op.result(0).map_err(|e| op_error(&op, e))?.into());
                    if self.cancelled_inputs.contains_key(&result) || self.values.contains_key(&result) {
                        // Read in place by its gemm, or already computed by the gemm it transposes.
                        continue;
                    }
                    let input = self.buffer(&op, 0)?;
                    let (rows, cols) = (input.shape()[0], input.shape()[1]);
                    let output = self.result(&op, &[cols, rows]);
                    let source = self.view(&b, scratch, &input);
                    let target = self.view(&b, scratch, &output);
                    transpose(&b, source, target, rows, cols);
                    self.define(&op, output)?;
                }
                "func.return" => {
                    for (index, operand) in op.operands().enumerate() {
                        let tensor = self.values.get(&key(operand)).cloned().ok_or_else(|| op_error(&op, "returns an unknown value"))?;
                        let target = 3 + input_shapes.len() + index;
                        match &tensor {
                            Tensor::Weight { .. } => return Err(op_error(&op, "returning a weight directly is not supported")),
                            Tensor::Argument { index, .. } if *index == target => {}
                            _ => {
                                let view = self.view(&b, scratch, &tensor);
                                b.copy(view, argument(target));
                            }
                        }
                    }
                }
                _ => return Err(op_error(&op, format!("is not supported by {FLAG} (supported: grim.weight, grim.constant, grim.gemm, grim.conv2d, grim.add, grim.relu, grim.reshape, grim.transpose)"))),
            }
        }
        if let Some((begin, id)) = open_layer.take() {
            close_layer(&b, begin, id, argument(0), &mut layers);
        }
        b.insert(melior::dialect::func::r#return(&[], location));

        let region = Region::new();
        region.append_block(block);
        let function_type = FunctionType::new(context, &arguments, &[]);
        let i64_type: Type = IntegerType::new(context, 64).into();
        let int = |v: i64| -> Attribute<'c> { IntegerAttribute::new(i64_type, v).into() };
        let mut attributes = vec![
            (
                Identifier::new(context, "llvm.emit_c_interface"),
                Attribute::unit(context),
            ),
            (
                Identifier::new(context, "grim.scratch_bytes"),
                int(self.scratch_bytes.max(ALIGN)),
            ),
            (
                Identifier::new(context, "grim.num_slots"),
                int(self.next_slot),
            ),
            (
                Identifier::new(context, "grim.num_inputs"),
                int(input_shapes.len() as i64),
            ),
            (
                Identifier::new(context, "grim.num_outputs"),
                int(output_shapes.len() as i64),
            ),
        ];
        if self.pass.profile {
            let names: Vec<Attribute<'c>> = layers
                .iter()
                .map(|l| StringAttribute::new(context, l).into())
                .collect();
            attributes.push((
                Identifier::new(context, LAYERS_ATTR),
                melior::ir::attribute::ArrayAttribute::new(context, &names).into(),
            ));
        }
        let new_function = melior::dialect::func::func(
            context,
            StringAttribute::new(context, &name),
            TypeAttribute::new(function_type.into()),
            region,
            &attributes,
            location,
        );
        module
            .body()
            .insert_operation_before(function, new_function);
        erase_op(function);
        Ok(())
    }

    fn operand(&self, op: &OperationRef, index: usize) -> Result<Tensor, PassError> {
        let value = op.operand(index).map_err(|e| op_error(op, e))?;
        self.values.get(&key(value)).cloned().ok_or_else(|| {
            op_error(
                op,
                format!("operand #{index} is not produced by a supported op"),
            )
        })
    }

    fn buffer(&self, op: &OperationRef, index: usize) -> Result<Tensor, PassError> {
        match self.operand(op, index)? {
            tensor @ (Tensor::Buffer { .. } | Tensor::Argument { .. }) => Ok(tensor),
            Tensor::Weight { name, .. } => Err(op_error(
                op,
                format!(
                    "operand #{index} is the weight '{name}'; only activations are supported here"
                ),
            )),
        }
    }

    fn define(&mut self, op: &OperationRef, tensor: Tensor) -> Result<(), PassError> {
        let result = op.result(0).map_err(|e| op_error(op, e))?;
        self.values.insert(key(result.into()), tensor);
        Ok(())
    }

    fn view(&self, b: &Builder<'c>, scratch: V<'c>, tensor: &Tensor) -> V<'c> {
        match tensor {
            Tensor::Buffer { offset, shape } => {
                let ty = b.memref_type(shape, b.f32_type());
                let offset = b.index(*offset);
                b.view(scratch, offset, &[], ty)
            }
            Tensor::Argument { index, shape } => {
                let argument = self.arguments[*index];
                if shape::static_shape(argument.r#type()).as_deref() == Some(&shape[..]) {
                    argument
                } else {
                    reinterpret(b, argument, shape)
                }
            }
            Tensor::Weight { .. } => unreachable!("weights are materialised with dense()"),
        }
    }

    /// Where `op`'s result goes: its output buffer when the function returns
    /// it, else fresh scratch.
    fn result(&mut self, op: &OperationRef, shape: &[i64]) -> Tensor {
        let returned = op
            .result(0)
            .ok()
            .and_then(|r| self.returned.get(&key(r.into())).copied());
        match returned {
            Some(index) => Tensor::Argument {
                index,
                shape: shape.to_vec(),
            },
            None => self.allocate(shape),
        }
    }

    fn flat_view(&self, b: &Builder<'c>, scratch: V<'c>, tensor: &Tensor) -> V<'c> {
        let flat = vec![shape::numel(tensor.shape())];
        match tensor {
            Tensor::Buffer { offset, .. } => self.view(
                b,
                scratch,
                &Tensor::Buffer {
                    offset: *offset,
                    shape: flat,
                },
            ),
            Tensor::Argument { index, .. } => self.view(
                b,
                scratch,
                &Tensor::Argument {
                    index: *index,
                    shape: flat,
                },
            ),
            Tensor::Weight { .. } => unreachable!("flat views are of activations"),
        }
    }

    fn dense(&mut self, b: &Builder<'c>, blob: V<'c>, name: &str, shape: &[i64]) -> V<'c> {
        let cache = (name.to_string(), shape.to_vec());
        if let Some(value) = self.dense.get(&cache) {
            return *value;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        let value = b.value(bcr::dense(
            self.context,
            blob,
            name,
            slot,
            shape,
            b.location,
        ));
        self.dense.insert(cache, value);
        value
    }

    /// Reads an operand as a memref of `shape`: a scratch view or a dense weight.
    fn read(
        &mut self,
        b: &Builder<'c>,
        blob: V<'c>,
        scratch: V<'c>,
        tensor: &Tensor,
        shape: &[i64],
    ) -> V<'c> {
        match tensor {
            Tensor::Buffer { offset, .. } => self.view(
                b,
                scratch,
                &Tensor::Buffer {
                    offset: *offset,
                    shape: shape.to_vec(),
                },
            ),
            Tensor::Argument { index, .. } => self.view(
                b,
                scratch,
                &Tensor::Argument {
                    index: *index,
                    shape: shape.to_vec(),
                },
            ),
            Tensor::Weight { name, .. } => self.dense(b, blob, name, shape),
        }
    }

    fn gemm(
        &mut self,
        b: &Builder<'c>,
        blob: V<'c>,
        scratch: V<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let input_value = op.operand(0).map_err(|e| op_error(&op, e))?;
        // The [K, N] operand, when the input is a cancelled transpose of it.
        let pre_transposed = match self.cancelled_inputs.get(&key(input_value)) {
            Some(source) => Some(
                self.values
                    .get(source)
                    .cloned()
                    .ok_or_else(|| op_error(&op, "transposed input is not available"))?,
            ),
            None => None,
        };
        let input = match pre_transposed {
            Some(source) => Activations::Columns(source),
            None => Activations::Rows(self.buffer(&op, 0)?),
        };
        let Tensor::Weight {
            name: weight,
            shape: weight_shape,
        } = self.operand(&op, 1)?
        else {
            return Err(op_error(&op, "needs a constant weight (operand #1); products of two activations are not supported"));
        };
        let (n, k) = match &input {
            Activations::Rows(t) => (t.shape()[0], t.shape()[1]),
            Activations::Columns(t) => (t.shape()[1], t.shape()[0]),
        };
        let m = weight_shape[0];
        if weight_shape[1] != k {
            return Err(op_error(
                &op,
                format!("weight is {weight_shape:?} but the input has {k} columns"),
            ));
        }
        let bias = if op.operand_count() == 3 {
            match self.operand(&op, 2)? {
                Tensor::Weight { name, .. } => Some(name),
                Tensor::Buffer { .. } | Tensor::Argument { .. } => {
                    return Err(op_error(&op, "needs a constant bias (operand #2)"))
                }
            }
        } else {
            None
        };
        let weights = self.weights(b, blob, &op, &weight, m, k, n == 1)?;
        let zero = b.f32(0.0);
        let bias_view = bias.map(|name| self.dense(b, blob, &name, &[m]));
        // A result read only by a transpose: accumulate straight into the transpose's result.
        let result_uses = uses(op.result(0).map_err(|e| op_error(&op, e))?.into());
        let transposed_result = match result_uses.as_slice() {
            [(user, 0)] if n > 1 && user.name().as_string_ref().as_str() == Ok(grim::TRANSPOSE) => {
                Some(*user)
            }
            _ => None,
        };
        // The gemm's own [N, M] result, unless a transpose takes the accumulator instead.
        let output = match transposed_result {
            Some(_) => None,
            None => Some(self.result(&op, &[n, m])),
        };
        if n == 1 {
            let output = output
                .ok_or_else(|| op_error(&op, "a one-row gemm has no transposed result to write"))?;
            // With one row, [1, K] and [K, 1] are the same bytes.
            let (Activations::Rows(input) | Activations::Columns(input)) = &input;
            let x = self.read(b, blob, scratch, input, &[k]);
            let y = self.read(b, blob, scratch, &output, &[m]);
            match bias_view {
                Some(bias) => b.copy(bias, y),
                None => fill(b, y, m, zero),
            }
            let product = b.insert(weights.product(self.context, x, y, false, b.location));
            self.copy_schedule(&op, product);
            self.define(&op, output)
        } else {
            let at = match &input {
                Activations::Columns(source) => self.view(b, scratch, source),
                Activations::Rows(input) => {
                    let transposed_input = self.allocate(&[k, n]);
                    let a = self.view(b, scratch, input);
                    let at = self.view(b, scratch, &transposed_input);
                    transpose(b, a, at, n, k);
                    at
                }
            };
            let accumulator = match transposed_result {
                Some(user) => self.result(&user, &[m, n]),
                None => self.allocate(&[m, n]),
            };
            let ct = self.view(b, scratch, &accumulator);
            init_rows(b, ct, bias_view, m, n);
            let product = b.insert(weights.product(self.context, at, ct, true, b.location));
            self.copy_schedule(&op, product);
            match (transposed_result, output) {
                (Some(user), _) => self.define(&user, accumulator),
                (None, Some(output)) => {
                    let y = self.view(b, scratch, &output);
                    transpose(b, ct, y, m, n);
                    self.define(&op, output)
                }
                (None, None) => Err(op_error(&op, "gemm result has no destination")),
            }
        }
    }

    /// The weights of a product with an `m x k` weight matrix: row panels
    /// when the op asks for the dense kernel (`kernel = "dense"`), BCRC
    /// arrays otherwise. `vector`: a matrix-vector product (its own copy:
    /// its panels are taller, its BCR values column panels).
    #[allow(clippy::too_many_arguments)]
    fn weights(
        &mut self,
        b: &Builder<'c>,
        blob: V<'c>,
        op: &OperationRef<'c, '_>,
        weight: &str,
        m: i64,
        k: i64,
        vector: bool,
    ) -> Result<Weights<'c>, PassError> {
        if grim_dialects::attr::string(op, grim::KERNEL_ATTR).as_deref() != Some(grim::KERNEL_DENSE)
        {
            return Ok(Weights::Bcr(
                self.packed_weight(b, blob, op, weight, m, k, vector)?,
            ));
        }
        let cache = (weight.to_string(), vector);
        let w = match self.panels.get(&cache) {
            Some(w) => *w,
            None => {
                let w = b.value(bcr::dense_panels(
                    self.context,
                    blob,
                    weight,
                    self.next_slot,
                    b.location,
                ));
                self.next_slot += 1;
                self.panels.insert(cache, w);
                w
            }
        };
        Ok(Weights::Dense(w))
    }

    /// `grim.conv2d` in its GEMM view, image by image:
    /// `Y_n[M, Ho*Wo] = W[M, C*kh*kw] x patches(X_n)`, with Y_n the n-th
    /// image of the NCHW output (already laid out as `[M, Ho*Wo]`) and W the
    /// `[M, C, kh, kw]` weight read as a matrix (no data moves).
    ///
    /// * A pointwise conv (1x1, stride 1, no padding) multiplies the image
    ///   as the `[C, H*W]` matrix it is: no patches at all.
    /// * The dense kernel reads the image through its patch matrix
    ///   (implicit im2col: `bcr.gemm {im2col}` copies patches straight into
    ///   its packed activation blocks).
    /// * The BCR kernels multiply an explicit patch matrix: `bcr.im2col`
    ///   writes it to scratch, once per image.
    fn conv2d(
        &mut self,
        b: &Builder<'c>,
        blob: V<'c>,
        scratch: V<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let attrs = grim::conv_attrs(&op)
            .ok_or_else(|| op_error(&op, "has malformed strides, pads or dilations"))?;
        let input = self.buffer(&op, 0)?;
        let Tensor::Weight {
            name: weight,
            shape: weight_shape,
        } = self.operand(&op, 1)?
        else {
            return Err(op_error(&op, "needs a constant weight (operand #1)"));
        };
        let bias = if op.operand_count() == 3 {
            match self.operand(&op, 2)? {
                Tensor::Weight { name, .. } => Some(name),
                _ => return Err(op_error(&op, "needs a constant bias (operand #2)")),
            }
        } else {
            None
        };
        let (&[images, channels, h, w], &[m, _, kh, kw]) = (input.shape(), &weight_shape[..])
        else {
            return Err(op_error(&op, "needs a 4-D input and weight"));
        };
        let (ho, wo) = attrs
            .output(h, w, kh, kw)
            .ok_or_else(|| op_error(&op, "has a kernel that does not fit its input"))?;
        let (k, n) = (channels * kh * kw, ho * wo);
        let weights = self.weights(b, blob, &op, &weight, m, k, false)?;
        let bias_view = bias.map(|name| self.dense(b, blob, &name, &[m]));
        let output = self.result(&op, &[images, m, ho, wo]);
        let pointwise = attrs.is_pointwise(kh, kw);
        let patch = bcr::Im2col {
            kh,
            kw,
            conv: attrs,
        };
        // How each image reaches the product (buffers shared by all images):
        // the dense kernel reads it through its patches. The BCR kernels read
        // it in place when its columns are contiguous (stride 1 along W) and
        // an output row is long enough to fill their register chunks
        // (BCR_IMPLICIT_MIN_WO), zero-padded first if the conv pads;
        // otherwise they multiply an explicit patch matrix.
        let padded = [
            h + attrs.pads[0] + attrs.pads[2],
            w + attrs.pads[1] + attrs.pads[3],
        ];
        let in_place = attrs.strides[1] == 1 && wo >= BCR_IMPLICIT_MIN_WO;
        let route = match (&weights, pointwise) {
            (_, true) => ConvInput::Pointwise,
            (Weights::Dense(_), false) => ConvInput::Implicit(None),
            (Weights::Bcr(_), false) if in_place && attrs.pads == [0; 4] => {
                ConvInput::Implicit(None)
            }
            (Weights::Bcr(_), false) if in_place => {
                ConvInput::Implicit(Some(self.allocate(&[channels, padded[0], padded[1]])))
            }
            (Weights::Bcr(_), false) => ConvInput::Patches(self.allocate(&[k, n])),
        };
        for image in 0..images {
            let y = self.image_view(b, scratch, &output, image, &[m, n]);
            init_rows(b, y, bias_view, m, n);
            let (x, implicit) = match &route {
                ConvInput::Pointwise => (
                    self.image_view(b, scratch, &input, image, &[channels, h * w]),
                    None,
                ),
                ConvInput::Patches(patches) => {
                    let x = self.image_view(b, scratch, &input, image, &[channels, h, w]);
                    let columns = self.view(b, scratch, patches);
                    b.insert(bcr::im2col(self.context, x, columns, &patch, b.location));
                    (columns, None)
                }
                ConvInput::Implicit(None) => (
                    self.image_view(b, scratch, &input, image, &[channels, h, w]),
                    Some(patch),
                ),
                ConvInput::Implicit(Some(buffer)) => {
                    // The zero-padded image is the patch matrix of a 1x1 kernel with the conv's pads.
                    let x = self.image_view(b, scratch, &input, image, &[channels, h, w]);
                    let Tensor::Buffer { offset, .. } = buffer else {
                        unreachable!("allocate() returns a buffer")
                    };
                    let rows = self.view(
                        b,
                        scratch,
                        &Tensor::Buffer {
                            offset: *offset,
                            shape: vec![channels, padded[0] * padded[1]],
                        },
                    );
                    let pad = bcr::Im2col {
                        kh: 1,
                        kw: 1,
                        conv: grim::ConvAttrs {
                            strides: [1, 1],
                            pads: attrs.pads,
                            dilations: [1, 1],
                        },
                    };
                    b.insert(bcr::im2col(self.context, x, rows, &pad, b.location));
                    let unpadded = grim::ConvAttrs {
                        pads: [0; 4],
                        ..attrs
                    };
                    (
                        self.view(b, scratch, buffer),
                        Some(bcr::Im2col {
                            conv: unpadded,
                            ..patch
                        }),
                    )
                }
            };
            let product = b.insert(weights.product(self.context, x, y, true, b.location));
            if let Some(geometry) = implicit {
                let (_, value) = bcr::im2col_attr(self.context, &geometry);
                use melior::ir::operation::OperationMutLike;
                // SAFETY: the product was just inserted; only an attribute is added.
                unsafe { melior::ir::operation::OperationRefMut::from_raw(product.to_raw()) }
                    .set_attribute(bcr::IM2COL_ATTR, value);
            }
            self.copy_schedule(&op, product);
        }
        self.define(&op, output)
    }

    /// Image `image` of a batched tensor, viewed as `shape`.
    fn image_view(
        &self,
        b: &Builder<'c>,
        scratch: V<'c>,
        tensor: &Tensor,
        image: i64,
        shape: &[i64],
    ) -> V<'c> {
        let elements = shape::numel(shape);
        match tensor {
            Tensor::Buffer { offset, .. } => self.view(
                b,
                scratch,
                &Tensor::Buffer {
                    offset: offset + 4 * elements * image,
                    shape: shape.to_vec(),
                },
            ),
            Tensor::Argument { index, .. } => {
                reinterpret_at(b, self.arguments[*index], shape, elements * image)
            }
            Tensor::Weight { .. } => unreachable!("conv inputs and outputs are activations"),
        }
    }

    /// The BCRC arrays of a gemm's weight (shared by gemms with the same
    /// weight, block and layout).
    #[allow(clippy::too_many_arguments)]
    fn packed_weight(
        &mut self,
        b: &Builder<'c>,
        blob: V<'c>,
        op: &OperationRef<'c, '_>,
        weight: &str,
        m: i64,
        k: i64,
        panels: bool,
    ) -> Result<(bcr::Packed<'c, 'c>, i64, i64), PassError> {
        let block_rows = grim_dialects::attr::int(op, "block_rows").unwrap_or(self.pass.block.0);
        let block_cols = grim_dialects::attr::int(op, "block_cols").unwrap_or(self.pass.block.1);
        if !(1..=64).contains(&block_rows) || !(1..=64).contains(&block_cols) {
            return Err(op_error(
                op,
                format!("block size {block_rows}x{block_cols} out of range"),
            ));
        }
        let order =
            grim_dialects::attr::string(op, "order").unwrap_or_else(|| self.pass.order.clone());
        // Matrix-vector products read column panels (a strip's outputs stay in registers).
        let cache = (weight.to_string(), block_rows, block_cols, panels);
        let packed = match self.packed.get(&cache) {
            Some(values) => *values,
            None => {
                let layout = if panels {
                    bcr::LAYOUT_COL_PANELS
                } else {
                    bcr::LAYOUT_ROW_MAJOR
                }
                .to_string();
                let info = bcr::PackedInfo {
                    name: weight.to_string(),
                    slot: self.next_slot,
                    rows: m,
                    cols: k,
                    block_rows,
                    block_cols,
                    order,
                    layout,
                };
                self.next_slot += bcr::PACKED_SLOTS;
                let pinned = grim_dialects::attr::string(op, "order").is_some();
                let mut results = b.insert(bcr::packed(self.context, blob, &info, b.location));
                if pinned {
                    // A per-layer order from the LR file: bcr-reorder must keep it.
                    use melior::ir::operation::OperationMutLike;
                    let mut op = unsafe {
                        melior::ir::operation::OperationRefMut::from_raw(results.to_raw())
                    };
                    op.set_attribute(bcr::PINNED_ATTR, Attribute::unit(self.context));
                }
                results = unsafe { OperationRef::from_raw(results.to_raw()) };
                let values: Vec<V<'c>> = results.results().map(|r| erase(r.into())).collect();
                let values = [values[0], values[1], values[2], values[3]];
                self.packed.insert(cache, values);
                values
            }
        };
        Ok((
            bcr::Packed {
                strips: packed[0],
                block_col: packed[1],
                masks: packed[2],
                values: packed[3],
            },
            block_rows,
            block_cols,
        ))
    }

    /// A per-layer schedule on the gemm (from the LR file: lanes, register
    /// tile, N tile) becomes the product's, which bcr-vectorize, bcr-lre and
    /// bcr-tile then keep.
    fn copy_schedule(&self, gemm: &OperationRef<'c, '_>, product: OperationRef<'c, '_>) {
        let mut product =
            unsafe { melior::ir::operation::OperationRefMut::from_raw(product.to_raw()) };
        for name in [
            bcr::VECTOR_WIDTH_ATTR,
            bcr::REGISTER_TILE_ATTR,
            bcr::TILE_N_ATTR,
            bcr::THREADS_ATTR,
        ] {
            if let Some(value) = grim_dialects::attr::int(gemm, name) {
                bcr::set_int(&mut product, self.context, name, value);
            }
        }
        // A dense product's register tile is its weight's panel height: set
        // both, or, for a weight another product already fixed, take its.
        let given = grim_dialects::attr::int(&product, bcr::REGISTER_TILE_ATTR);
        let weights = product.operand(0).ok().and_then(bcr::defining_dense);
        if let (Some(rows), Some(weights), true) = (
            given,
            weights,
            product.name().as_string_ref().as_str() == Ok(bcr::GEMM),
        ) {
            match grim_dialects::attr::int(&weights, bcr::PANEL_ROWS_ATTR) {
                Some(fixed) => {
                    bcr::set_int(&mut product, self.context, bcr::REGISTER_TILE_ATTR, fixed)
                }
                None => {
                    // SAFETY: the weight op is alive; only an attribute is added.
                    let mut weights = unsafe {
                        melior::ir::operation::OperationRefMut::from_raw(weights.to_raw())
                    };
                    bcr::set_int(&mut weights, self.context, bcr::PANEL_ROWS_ATTR, rows);
                }
            }
        }
    }

    fn add(
        &mut self,
        b: &Builder<'c>,
        blob: V<'c>,
        scratch: V<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let lhs = self.operand(&op, 0)?;
        let rhs = self.operand(&op, 1)?;
        let out_shape = grim::broadcast(lhs.shape(), rhs.shape()).ok_or_else(|| {
            op_error(
                &op,
                format!(
                    "shapes {:?} and {:?} do not broadcast",
                    lhs.shape(),
                    rhs.shape()
                ),
            )
        })?;
        let rank = out_shape.len();
        let pad = |s: &[i64]| -> Vec<i64> {
            let mut padded = vec![1; rank - s.len()];
            padded.extend_from_slice(s);
            padded
        };
        let (lhs_shape, rhs_shape) = (pad(lhs.shape()), pad(rhs.shape()));
        let a = self.read(b, blob, scratch, &lhs, &lhs_shape);
        let c = self.read(b, blob, scratch, &rhs, &rhs_shape);
        let output = self.result(&op, &out_shape);
        let y = self.view(b, scratch, &output);
        loop_nest(b, &out_shape, &mut Vec::new(), &|b, ivs| {
            let zero = b.index(0);
            let pick = |shape: &[i64]| -> Vec<V<'c>> {
                ivs.iter()
                    .zip(shape)
                    .map(|(iv, d)| if *d == 1 { zero } else { *iv })
                    .collect()
            };
            let x = b.load(a, &pick(&lhs_shape));
            let z = b.load(c, &pick(&rhs_shape));
            let sum = b.addf(x, z);
            b.store(sum, y, ivs);
        });
        self.define(&op, output)
    }
}

/// The grim ops that compute (the layers a profile times; the ops whose
/// result can be written straight into an output buffer).
const COMPUTE_OPS: [&str; 5] = [
    grim::GEMM,
    grim::CONV2D,
    grim::ADD,
    grim::RELU,
    grim::TRANSPOSE,
];

/// Runtime function called before a layer's code when profiling.
pub const PROFILE_BEGIN: &str = "grim_profile_begin";
/// Runtime function called after a layer's code when profiling.
pub const PROFILE_END: &str = "grim_profile_end";
/// Function attribute (with `profile=1`): the profiled layers' names, by id.
pub const LAYERS_ATTR: &str = "grim.layers";

/// A layer's name for profiles: the op's name location (the ONNX node
/// name), else `<op>#<index>`.
fn layer_name(op: &OperationRef, op_name: &str, index: usize) -> String {
    let location = op.location();
    if location.is_name() {
        if let Ok(name) = location.name_value().as_string_ref().as_str() {
            if !name.is_empty() {
                return name.to_string();
            }
        }
    }
    format!("{}#{index}", op_name.trim_start_matches("grim."))
}

/// `func.call @<callee>(%ctx, %id)`; returns the call.
fn profile_call<'c>(b: &Builder<'c>, callee: &str, ctx: V<'c>, id: i64) -> OperationRef<'c, 'c> {
    let id = b.int(id, 64);
    let callee = melior::ir::attribute::FlatSymbolRefAttribute::new(b.context, callee);
    b.insert(melior::dialect::func::call(
        b.context,
        callee,
        &[ctx, id],
        &[],
        b.location,
    ))
}

/// Ends the profiled layer `id` opened by `begin`: an end call after its
/// code, or, when it emitted no code (a cancelled transpose), no layer.
fn close_layer<'c>(
    b: &Builder<'c>,
    begin: OperationRef<'c, 'c>,
    id: i64,
    ctx: V<'c>,
    layers: &mut Vec<String>,
) {
    if begin.next_in_block().is_none() {
        // The id constant before the call goes too: nothing else uses it.
        let constant = begin
            .operand(1)
            .ok()
            .filter(|v| v.is_operation_result())
            .map(|v| unsafe { OperationRef::from_raw(mlir_sys::mlirOpResultGetOwner(v.to_raw())) });
        erase_op(begin);
        if let Some(constant) = constant {
            erase_op(constant);
        }
        layers.pop();
        return;
    }
    profile_call(b, PROFILE_END, ctx, id);
}

/// The weight name of a `grim.constant`: its `name` attribute, else
/// `<function>.const<index>` in walk order (the driver uses the same rule).
pub fn constant_name(function: &str, op: &OperationRef, index: usize) -> String {
    grim_dialects::attr::string(op, "name").unwrap_or_else(|| format!("{function}.const{index}"))
}

fn fill<'c>(b: &Builder<'c>, target: V<'c>, n: i64, value: V<'c>) {
    b.for_range(0, n, 1, &[], |b, i, _| {
        b.store(value, target, &[i]);
        vec![]
    });
}

/// The users of `value`, with the operand number each uses it as.
fn uses<'c, 'a>(value: Value<'c, 'a>) -> Vec<(OperationRef<'c, 'a>, usize)> {
    let mut found = Vec::new();
    // SAFETY: walking the use list of a live value.
    unsafe {
        let mut operand = mlir_sys::mlirValueGetFirstUse(value.to_raw());
        while !mlir_sys::mlirOpOperandIsNull(operand) {
            let owner = OperationRef::from_raw(mlir_sys::mlirOpOperandGetOwner(operand));
            found.push((
                owner,
                mlir_sys::mlirOpOperandGetOperandNumber(operand) as usize,
            ));
            operand = mlir_sys::mlirOpOperandGetNextUse(operand);
        }
    }
    found
}

/// The same contiguous buffer seen with another static shape.
fn reinterpret<'c>(b: &Builder<'c>, source: V<'c>, shape: &[i64]) -> V<'c> {
    reinterpret_at(b, source, shape, 0)
}

/// `source` viewed as a row-major `shape` starting `offset` elements in (a
/// strided layout carries a non-zero offset).
fn reinterpret_at<'c>(b: &Builder<'c>, source: V<'c>, shape: &[i64], offset: i64) -> V<'c> {
    let mut strides = vec![1i64; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * shape[i + 1];
    }
    let dense = |values: &[i64]| {
        melior::ir::attribute::DenseI64ArrayAttribute::new(b.context, values).into()
    };
    let result_type = if offset == 0 {
        b.memref_type(shape, b.f32_type())
    } else {
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let strides_text: Vec<String> = strides.iter().map(|d| d.to_string()).collect();
        let text = format!(
            "memref<{}xf32, strided<[{}], offset: {offset}>>",
            dims.join("x"),
            strides_text.join(", ")
        );
        Type::parse(b.context, &text).expect("a strided memref type")
    };
    let segments =
        melior::ir::attribute::DenseI32ArrayAttribute::new(b.context, &[1, 0, 0, 0]).into();
    b.op(
        "memref.reinterpret_cast",
        &[source],
        &[result_type],
        &[
            ("static_offsets", dense(&[offset])),
            ("static_sizes", dense(shape)),
            ("static_strides", dense(&strides)),
            ("operandSegmentSizes", segments),
        ],
    )[0]
}

/// Fills each row of `y[m, n]` with its bias (or zero), rows spread over
/// the threads (bcr-parallelize): the products then accumulate into it.
fn init_rows<'c>(b: &Builder<'c>, y: V<'c>, bias: Option<V<'c>>, m: i64, n: i64) {
    let parallel = [(
        crate::bcr::parallelize::PARALLEL_ATTR,
        Attribute::unit(b.context),
    )];
    let zero = b.f32(0.0);
    let (first_row, rows, one) = (b.index(0), b.index(m), b.index(1));
    b.for_loop_with(first_row, rows, one, &[], &parallel, |b, row, _| {
        let value = match bias {
            Some(bias) => b.load(bias, &[row]),
            None => zero,
        };
        b.for_range(0, n, 1, &[], |b, column, _| {
            b.store(value, y, &[row, column]);
            vec![]
        });
        vec![]
    });
}

/// Rows and columns per tile of [`transpose`].
const TRANSPOSE_TILE: i64 = 16;

/// `target[j, i] = source[i, j]`, in square tiles: a row-by-row transpose
/// writes a whole column of cache lines per row, and with a power-of-two
/// stride they collide in the same cache sets (measured: two thirds of a
/// 3072x768x128 gemm's time went to its untiled output transpose).
fn transpose<'c>(b: &Builder<'c>, source: V<'c>, target: V<'c>, rows: i64, cols: i64) {
    let (row_limit, col_limit) = (b.index(rows), b.index(cols));
    b.for_range(0, rows, TRANSPOSE_TILE, &[], |b, i0, _| {
        b.for_range(0, cols, TRANSPOSE_TILE, &[], |b, j0, _| {
            let tile = b.index(TRANSPOSE_TILE);
            let i_end = b.addi(i0, tile);
            let i_end = b.op("arith.minui", &[i_end, row_limit], &[b.index_type()], &[])[0];
            let j_end = b.addi(j0, tile);
            let j_end = b.op("arith.minui", &[j_end, col_limit], &[b.index_type()], &[])[0];
            let one = b.index(1);
            b.for_loop(j0, j_end, one, &[], |b, j, _| {
                let one = b.index(1);
                b.for_loop(i0, i_end, one, &[], |b, i, _| {
                    let x = b.load(source, &[i, j]);
                    b.store(x, target, &[j, i]);
                    vec![]
                });
                vec![]
            });
            vec![]
        });
        vec![]
    });
}

fn loop_nest<'c>(
    b: &Builder<'c>,
    shape: &[i64],
    ivs: &mut Vec<V<'c>>,
    body: &dyn Fn(&Builder<'c>, &[V<'c>]),
) {
    match shape.split_first() {
        None => body(b, ivs),
        Some((extent, rest)) => {
            b.for_range(0, *extent, 1, &[], |b, iv, _| {
                let mut inner = ivs.clone();
                inner.push(iv);
                loop_nest(b, rest, &mut inner, body);
                vec![]
            });
        }
    }
}
