//! The `grim` graph dialect: typed builders, accessors and the semantic verifier.
//!
//! Structure comes from `irdl/grim.irdl.mlir`; this module is the only place
//! that spells the op names or builds the ops, and [`verify`] checks what
//! IRDL cannot: f32 element types, shapes (ONNX semantics), the optional
//! attributes and a product's epilogue.
//!
//! A product (`grim.gemm`, `grim.conv2d`) has the operands
//! `(input, weight, bias?, residual?)`; with two optional operands MLIR
//! needs `operandSegmentSizes = array<i32: 1, 1, b, r>`, which the builders
//! write and [`product`] reads, so no other code counts operands.

mod activation;
mod concat;
mod lrn;
mod matmul;
mod pad;
mod permute;
mod pool;
mod recurrent;
mod softmax;
mod verify;

pub use activation::{
    f32_array, f32_array_attribute, Activation, ACTIVATION_ATTR, ACTIVATION_PARAMS_ATTR,
};
pub use concat::{concat, concat_axis, CONCAT};
pub use lrn::{lrn, lrn_attrs, LrnAttrs, LRN};
pub use matmul::{matmul, matmul_shape, MATMUL};
pub use pad::{pad, pad_attrs, PadAttrs, PAD};
pub use permute::{permutation, permute, PERMUTE, PERM_ATTR};
pub use pool::{pool, pool_attrs, PoolAttrs, PoolKind, POOL};
pub use recurrent::{recurrent, recurrent_attrs, recurrent_operands, RecurrentOperands, RECURRENT};
pub use softmax::{softmax, softmax_span, SOFTMAX};
pub use verify::verify;

use crate::attr;
use melior::{
    ir::{
        operation::{OperationBuilder, OperationLike},
        Attribute, AttributeLike, Identifier, Location, Operation, OperationRef, Type, Value,
        ValueLike,
    },
    Context,
};

/// `grim.constant` — a constant tensor (a weight or a small constant).
pub const CONSTANT: &str = "grim.constant";
/// `grim.gemm` — ONNX Gemm, plus an epilogue once canonical.
pub const GEMM: &str = "grim.gemm";
/// `grim.conv2d` — NCHW 2-D convolution (group 1), plus an epilogue.
pub const CONV2D: &str = "grim.conv2d";
/// `grim.batch_norm` — inference batch normalisation over axis 1.
pub const BATCH_NORM: &str = "grim.batch_norm";
/// `grim.add` — elementwise sum with numpy broadcasting.
pub const ADD: &str = "grim.add";
/// `grim.sub` — elementwise difference with numpy broadcasting.
pub const SUB: &str = "grim.sub";
/// `grim.mul` — elementwise product with numpy broadcasting.
pub const MUL: &str = "grim.mul";
/// `grim.div` — elementwise quotient with numpy broadcasting.
pub const DIV: &str = "grim.div";
/// `grim.max` — elementwise maximum (NaN-propagating) with numpy broadcasting.
pub const MAX: &str = "grim.max";
/// `grim.min` — elementwise minimum (NaN-propagating) with numpy broadcasting.
pub const MIN: &str = "grim.min";
/// The binary elementwise ops (numpy broadcasting, one result). `grim.add`
/// alone also fuses into a product's epilogue as its residual.
pub const BINARY: [&str; 6] = [ADD, SUB, MUL, DIV, MAX, MIN];

/// Whether the grim op `name` computes its result (rather than viewing or
/// naming one): the layers a profile times, the ops whose result can be
/// written straight into an output buffer or the memory plan places.
pub fn computes(name: &str) -> bool {
    [
        GEMM, CONV2D, MATMUL, BATCH_NORM, TRANSPOSE, PERMUTE, POOL, SOFTMAX, CONCAT, LRN, RECURRENT,
    ]
    .contains(&name)
        || BINARY.contains(&name)
        || ACTIVATIONS.contains(&name)
}
/// `grim.relu` — `max(x, 0)`.
pub const RELU: &str = "grim.relu";
/// `grim.clip` — `min(max(x, min), max)`.
pub const CLIP: &str = "grim.clip";
/// `grim.leaky_relu`.
pub const LEAKY_RELU: &str = "grim.leaky_relu";
/// `grim.sigmoid`.
pub const SIGMOID: &str = "grim.sigmoid";
/// `grim.tanh`.
pub const TANH: &str = "grim.tanh";
/// `grim.hard_sigmoid`.
pub const HARD_SIGMOID: &str = "grim.hard_sigmoid";
/// `grim.hard_swish`.
pub const HARD_SWISH: &str = "grim.hard_swish";
/// `grim.identity` — the input unchanged (Identity, inference Dropout).
pub const IDENTITY: &str = "grim.identity";
/// `grim.reshape` — same elements, new static shape.
pub const RESHAPE: &str = "grim.reshape";
/// `grim.transpose` — 2-D transpose.
pub const TRANSPOSE: &str = "grim.transpose";

/// The standalone activation ops.
pub const ACTIVATIONS: [&str; 7] = [
    RELU,
    CLIP,
    LEAKY_RELU,
    SIGMOID,
    TANH,
    HARD_SIGMOID,
    HARD_SWISH,
];

/// The ops that multiply by a weight matrix (gemm, conv2d): what the LR file
/// names, and what gets a BCR or a dense kernel.
pub const PRODUCTS: [&str; 2] = [GEMM, CONV2D];

/// Attribute of a product: how many of each operand group it has.
pub const SEGMENTS_ATTR: &str = "operandSegmentSizes";

/// Optional discardable attribute on a product: BCR block rows (with [`BLOCK_COLS_ATTR`]).
pub const BLOCK_ATTR: &str = "block_rows";
/// Optional discardable attribute on a product: BCR block columns.
pub const BLOCK_COLS_ATTR: &str = "block_cols";
/// Optional discardable attribute on a product: BCR work order (`natural` | `grouped`), pinned per layer.
pub const ORDER_ATTR: &str = "order";
/// Attribute of a product: which kernel runs it, [`KERNEL_BCR`] (default)
/// or [`KERNEL_DENSE`].
pub const KERNEL_ATTR: &str = "kernel";
/// The BCR kernels (`bcr.spmm` / `bcr.spmv` on BCRC).
pub const KERNEL_BCR: &str = "bcr";
/// The dense kernels (`bcr.gemm` on row panels).
pub const KERNEL_DENSE: &str = "dense";

/// The discardable attributes the graph passes put on a product (choices
/// and records): kept when graph-simplify rebuilds the product.
pub const PRODUCT_CHOICES: [&str; 8] = [
    KERNEL_ATTR,
    BLOCK_ATTR,
    BLOCK_COLS_ATTR,
    ORDER_ATTR,
    ESTIMATES_ATTR,
    KERNEL_REASON_ATTR,
    IM2COL_ATTR,
    PROFILE_ID_ATTR,
];

/// Attribute of an op graph-profile-layers marked: its layer id.
pub const PROFILE_ID_ATTR: &str = "grim.profile_id";

/// Attribute of a product: the candidates' estimated ns, by label
/// (`{dense = ..., "bcr 8x16" = ...}`), as graph-choose-kernel recorded them.
pub const ESTIMATES_ATTR: &str = "estimates";
/// Attribute of a product whose kernel was not chosen by its estimates:
/// why (e.g. the weight is not a constant).
pub const KERNEL_REASON_ATTR: &str = "kernel_reason";
/// Attribute of a `grim.conv2d`: how its image reaches the product
/// ([`Im2col`]), chosen by graph-choose-kernel.
pub const IM2COL_ATTR: &str = "im2col";

/// How a conv's image reaches its product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Im2col {
    /// A 1x1, stride-1, unpadded conv: the image is the `[C, H*W]` matrix.
    Pointwise,
    /// The product reads the image through its patches (the dense kernel
    /// packs patches into its blocks; the BCR kernels read kept patch rows
    /// in place from a zero-padded copy when the conv pads).
    Implicit,
    /// An explicit `[C*kh*kw, Ho*Wo]` patch matrix in scratch.
    Explicit,
}

impl Im2col {
    /// The attribute's value.
    pub fn name(self) -> &'static str {
        match self {
            Im2col::Pointwise => "pointwise",
            Im2col::Implicit => "implicit",
            Im2col::Explicit => "explicit",
        }
    }

    /// A conv's route, if it has a valid one.
    pub fn of<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<Im2col> {
        match attr::string(op, IM2COL_ATTR)?.as_str() {
            "pointwise" => Some(Im2col::Pointwise),
            "implicit" => Some(Im2col::Implicit),
            "explicit" => Some(Im2col::Explicit),
            _ => None,
        }
    }
}

/// `grim.gemm`'s ONNX attributes (absent ones take ONNX's defaults).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GemmAttrs {
    /// Scale of the product (`alpha`, default 1).
    pub alpha: f32,
    /// Scale of C (`beta`, default 1).
    pub beta: f32,
    /// Transpose A first (`trans_a`).
    pub trans_a: bool,
    /// Transpose W first (`trans_b`): set, W is `[M, K]`, out x in.
    pub trans_b: bool,
}

impl GemmAttrs {
    /// The form lowering wants: `Y = A W^T + bias`, W out x in.
    pub const CANONICAL: GemmAttrs = GemmAttrs {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    };
    /// ONNX's defaults (MatMul is Gemm with these and no C).
    pub const ONNX_DEFAULT: GemmAttrs = GemmAttrs {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: false,
    };

    /// Whether this is [`GemmAttrs::CANONICAL`].
    pub fn is_canonical(&self) -> bool {
        *self == Self::CANONICAL
    }

    fn attributes<'c>(&self, context: &'c Context) -> Vec<(Identifier<'c>, Attribute<'c>)> {
        let mut out = Vec::new();
        if self.alpha != 1.0 {
            out.push(attr::named_f32(context, "alpha", self.alpha));
        }
        if self.beta != 1.0 {
            out.push(attr::named_f32(context, "beta", self.beta));
        }
        if self.trans_a {
            out.push(attr::named_unit(context, "trans_a"));
        }
        if self.trans_b {
            out.push(attr::named_unit(context, "trans_b"));
        }
        out
    }
}

/// Reads a `grim.gemm`'s ONNX attributes.
pub fn gemm_attrs<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> GemmAttrs {
    GemmAttrs {
        alpha: attr::float(op, "alpha").unwrap_or(1.0),
        beta: attr::float(op, "beta").unwrap_or(1.0),
        trans_a: op.has_attribute("trans_a"),
        trans_b: op.has_attribute("trans_b"),
    }
}

fn build<'c>(builder: OperationBuilder<'c>) -> Operation<'c> {
    // The IRDL declarations accept every shape these builders produce; a
    // failure here is a bug in this file, not bad user input.
    builder
        .build()
        .expect("grim op matches its IRDL declaration")
}

/// Builds `grim.constant {name?, value}`; `value` is a weight attribute
/// (`crate::weights::resource`) or a `dense<...>` constant.
pub fn constant<'c>(
    context: &'c Context,
    name: Option<&str>,
    value: Attribute<'c>,
    ty: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    let mut attributes = vec![(Identifier::new(context, "value"), value)];
    if let Some(name) = name {
        attributes.push(attr::named_str(context, "name", name));
    }
    build(
        OperationBuilder::new(CONSTANT, location)
            .add_attributes(&attributes)
            .add_results(&[ty]),
    )
}

/// The operands of a product (`grim.gemm`, `grim.conv2d`).
#[derive(Clone, Copy)]
pub struct Product<'c, 'a> {
    /// Activations (gemm: A; conv: X).
    pub input: Value<'c, 'a>,
    /// The weight (gemm: W; conv: `[M, C, kh, kw]`).
    pub weight: Value<'c, 'a>,
    /// Bias (gemm: C before canonical form), if any.
    pub bias: Option<Value<'c, 'a>>,
    /// Epilogue residual, added after the bias, if any.
    pub residual: Option<Value<'c, 'a>>,
}

fn product_op<'c>(
    context: &'c Context,
    name: &str,
    operands: &Product<'c, '_>,
    mut attributes: Vec<(Identifier<'c>, Attribute<'c>)>,
    activation: Option<Activation>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    let mut values = vec![operands.input, operands.weight];
    values.extend(operands.bias);
    values.extend(operands.residual);
    attributes.push((
        Identifier::new(context, SEGMENTS_ATTR),
        melior::ir::attribute::DenseI32ArrayAttribute::new(
            context,
            &[
                1,
                1,
                operands.bias.is_some() as i32,
                operands.residual.is_some() as i32,
            ],
        )
        .into(),
    ));
    if let Some(activation) = activation {
        attributes.extend(activation.epilogue_attributes(context));
    }
    build(
        OperationBuilder::new(name, location)
            .add_operands(&values)
            .add_attributes(&attributes)
            .add_results(&[result]),
    )
}

/// Builds `grim.gemm(input, weight, bias?, residual?)` with its ONNX
/// attributes and optional epilogue activation.
pub fn gemm<'c>(
    context: &'c Context,
    operands: &Product<'c, '_>,
    attrs: &GemmAttrs,
    activation: Option<Activation>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    product_op(
        context,
        GEMM,
        operands,
        attrs.attributes(context),
        activation,
        result,
        location,
    )
}

/// Optional attribute of `grim.conv2d`: its groups (ONNX Conv `group`).
pub const GROUP_ATTR: &str = "group";

/// Geometry of a `grim.conv2d` (ONNX Conv attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConvAttrs {
    /// `[stride_h, stride_w]`.
    pub strides: [i64; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [i64; 4],
    /// `[dilation_h, dilation_w]`.
    pub dilations: [i64; 2],
    /// Groups (attribute `group`, absent = 1): output channels
    /// `[g M/G, (g+1) M/G)` read input channels `[g C/G, (g+1) C/G)`.
    pub group: i64,
}

impl ConvAttrs {
    /// Output height and width for an `h x w` input and a `kh x kw` kernel
    /// (`None` when the kernel does not fit the padded input).
    pub fn output(&self, h: i64, w: i64, kh: i64, kw: i64) -> Option<(i64, i64)> {
        let extent =
            |size: i64, before: i64, after: i64, kernel: i64, dilation: i64, stride: i64| {
                let span = size + before + after - dilation * (kernel - 1) - 1;
                (span >= 0 && stride > 0).then(|| span / stride + 1)
            };
        Some((
            extent(
                h,
                self.pads[0],
                self.pads[2],
                kh,
                self.dilations[0],
                self.strides[0],
            )?,
            extent(
                w,
                self.pads[1],
                self.pads[3],
                kw,
                self.dilations[1],
                self.strides[1],
            )?,
        ))
    }

    /// A 1x1 kernel with stride 1 and no padding reads its input as the
    /// `[C, H * W]` matrix it already is: no im2col at all.
    pub fn is_pointwise(&self, kh: i64, kw: i64) -> bool {
        kh == 1 && kw == 1 && self.strides == [1, 1] && self.pads == [0; 4] && self.group == 1
    }
}

/// Builds `grim.conv2d(input, weight, bias?, residual?)` with its geometry
/// and optional epilogue activation.
pub fn conv2d<'c>(
    context: &'c Context,
    operands: &Product<'c, '_>,
    conv: &ConvAttrs,
    activation: Option<Activation>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    product_op(
        context,
        CONV2D,
        operands,
        [
            attr::named_i64_array(context, "strides", &conv.strides),
            attr::named_i64_array(context, "pads", &conv.pads),
            attr::named_i64_array(context, "dilations", &conv.dilations),
        ]
        .into_iter()
        .chain((conv.group != 1).then(|| attr::named_i64(context, GROUP_ATTR, conv.group)))
        .collect(),
        activation,
        result,
        location,
    )
}

/// Reads the geometry of a `grim.conv2d` (`None` if an attribute is missing
/// or has the wrong length).
pub fn conv_attrs<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<ConvAttrs> {
    Some(ConvAttrs {
        strides: attr::i64_array(op, "strides")?.try_into().ok()?,
        pads: attr::i64_array(op, "pads")?.try_into().ok()?,
        dilations: attr::i64_array(op, "dilations")?.try_into().ok()?,
        group: match op.attribute(GROUP_ATTR) {
            Ok(_) => attr::int(op, GROUP_ATTR)?,
            Err(_) => 1,
        },
    })
}

/// The operands of a product, read through its `operandSegmentSizes`
/// (`None` for other ops, or when the segments do not fit the operands).
pub fn product<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<Product<'c, 'a>> {
    let name = op.name().as_string_ref().as_str().ok()?.to_string();
    if !PRODUCTS.contains(&name.as_str()) {
        return None;
    }
    let segments = segments(op)?;
    let [1, 1, bias @ (0 | 1), residual @ (0 | 1)] = segments[..] else {
        return None;
    };
    if op.operand_count() != (2 + bias + residual) as usize {
        return None;
    }
    Some(Product {
        input: op.operand(0).ok()?,
        weight: op.operand(1).ok()?,
        bias: (bias == 1).then(|| op.operand(2).ok()).flatten(),
        residual: (residual == 1)
            .then(|| op.operand(2 + bias as usize).ok())
            .flatten(),
    })
}

/// An op's `operandSegmentSizes` (`None` without one or when it is not a
/// dense i32 array).
fn segments<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<Vec<i32>> {
    let raw = op.attribute(SEGMENTS_ATTR).ok()?.to_raw();
    // SAFETY: read-only queries, checked to be a dense i32 array first.
    unsafe {
        if !mlir_sys::mlirAttributeIsADenseI32Array(raw) {
            return None;
        }
        Some(
            (0..mlir_sys::mlirDenseArrayGetNumElements(raw))
                .map(|i| mlir_sys::mlirDenseI32ArrayGetElement(raw, i))
                .collect(),
        )
    }
}

/// Builds `grim.batch_norm(x, scale, bias, mean, var) {epsilon}`.
pub fn batch_norm<'c>(
    context: &'c Context,
    operands: [Value<'c, '_>; 5],
    epsilon: f32,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(BATCH_NORM, location)
            .add_operands(&operands)
            .add_attributes(&[attr::named_f32(context, "epsilon", epsilon)])
            .add_results(&[operands[0].r#type()]),
    )
}

/// Builds the standalone op of `activation` on `input`.
pub fn activation<'c>(
    context: &'c Context,
    activation: &Activation,
    input: Value<'c, '_>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(&activation.op_name(), location)
            .add_operands(&[input])
            .add_attributes(&activation.op_attributes(context))
            .add_results(&[input.r#type()]),
    )
}

/// Builds `grim.relu(input)`.
pub fn relu<'c>(
    context: &'c Context,
    input: Value<'c, '_>,
    location: Location<'c>,
) -> Operation<'c> {
    activation(context, &Activation::Relu, input, location)
}

fn unary<'c>(
    name: &str,
    input: Value<'c, '_>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(name, location)
            .add_operands(&[input])
            .add_results(&[result]),
    )
}

/// Builds `grim.add(lhs, rhs)`.
pub fn add<'c>(
    lhs: Value<'c, '_>,
    rhs: Value<'c, '_>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    binary(ADD, lhs, rhs, result, location)
}

/// Builds the binary elementwise op `name` (one of [`BINARY`]) of `lhs` and `rhs`.
pub fn binary<'c>(
    name: &str,
    lhs: Value<'c, '_>,
    rhs: Value<'c, '_>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    debug_assert!(BINARY.contains(&name), "{name} is not a binary grim op");
    build(
        OperationBuilder::new(name, location)
            .add_operands(&[lhs, rhs])
            .add_results(&[result]),
    )
}

/// Builds `grim.identity(input)`.
pub fn identity<'c>(input: Value<'c, '_>, location: Location<'c>) -> Operation<'c> {
    unary(IDENTITY, input, input.r#type(), location)
}

/// Builds `grim.reshape(input)` to the static shape of `result`.
pub fn reshape<'c>(
    input: Value<'c, '_>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    unary(RESHAPE, input, result, location)
}

/// Builds `grim.transpose(input)` (2-D).
pub fn transpose<'c>(
    input: Value<'c, '_>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    unary(TRANSPOSE, input, result, location)
}

/// The `grim.constant` that defines `value`, directly or through
/// `grim.reshape`s and `grim.identity`s (which alias its bytes: an old
/// converter's `Reshape` of a weight is that weight), if one does.
pub fn defining_constant<'c, 'a>(value: Value<'c, 'a>) -> Option<OperationRef<'c, 'a>> {
    let mut value = value;
    loop {
        if !value.is_operation_result() {
            return None;
        }
        // SAFETY: the value is an op result, so it has an owner, alive with the op.
        let owner =
            unsafe { OperationRef::from_raw(mlir_sys::mlirOpResultGetOwner(value.to_raw())) };
        match owner.name().as_string_ref().as_str() {
            Ok(CONSTANT) => return Some(owner),
            Ok(RESHAPE | IDENTITY) => value = owner.operand(0).ok()?,
            _ => return None,
        }
    }
}

/// The name of a `grim.constant` (its `name` attribute), if it has one.
pub fn constant_name<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<String> {
    attr::string(op, "name")
}

/// The `value` attribute of a `grim.constant`.
pub fn constant_value<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<Attribute<'c>> {
    op.attribute("value").ok()
}

/// The name of the constant weight a product (gemm, conv2d) multiplies by,
/// if its weight operand is a named `grim.constant`.
pub fn product_weight_name<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<String> {
    defining_constant(product(op)?.weight).and_then(|c| constant_name(&c))
}

/// Numpy broadcasting of two static shapes; `None` when incompatible.
pub fn broadcast(lhs: &[i64], rhs: &[i64]) -> Option<Vec<i64>> {
    let rank = lhs.len().max(rhs.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        let l = if i + lhs.len() >= rank {
            lhs[i + lhs.len() - rank]
        } else {
            1
        };
        let r = if i + rhs.len() >= rank {
            rhs[i + rhs.len() - rank]
        } else {
            1
        };
        out[i] = if l == r || r == 1 {
            l
        } else if l == 1 {
            r
        } else {
            return None;
        };
    }
    Some(out)
}
