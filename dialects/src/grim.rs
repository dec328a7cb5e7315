//! The `grim` graph dialect: typed builders, accessors and the semantic verifier.
//!
//! Structure comes from `irdl/grim.irdl.mlir`; this file is the only place
//! that spells the op names, and it checks what IRDL cannot: f32 element
//! types and shapes (ONNX semantics).

use crate::{attr, shape};
use melior::{
    ir::{
        operation::{OperationBuilder, OperationLike},
        Attribute, AttributeLike, Location, Operation, Type, Value, ValueLike,
    },
    Context,
};

/// `grim.weight` — a weight kept outside the IR, referred to by name.
pub const WEIGHT: &str = "grim.weight";
/// `grim.constant` — a small constant whose values are in the IR.
pub const CONSTANT: &str = "grim.constant";
/// `grim.gemm` — `Y[N,M] = A[N,K] * W[M,K]^T (+ bias[M])`.
pub const GEMM: &str = "grim.gemm";
/// `grim.conv2d` — NCHW 2-D convolution (group 1).
pub const CONV2D: &str = "grim.conv2d";
/// `grim.add` — elementwise sum with numpy broadcasting.
pub const ADD: &str = "grim.add";
/// `grim.relu` — `max(x, 0)`.
pub const RELU: &str = "grim.relu";
/// `grim.reshape` — same elements, new static shape.
pub const RESHAPE: &str = "grim.reshape";
/// `grim.transpose` — 2-D transpose.
pub const TRANSPOSE: &str = "grim.transpose";

/// Optional discardable attribute on `grim.gemm`: BCR block rows (with [`BLOCK_COLS_ATTR`]).
pub const BLOCK_ATTR: &str = "block_rows";
/// Optional discardable attribute on `grim.gemm`: BCR block columns.
pub const BLOCK_COLS_ATTR: &str = "block_cols";
/// Optional discardable attribute on `grim.gemm`: BCR work order (`natural` | `grouped`), pinned per layer.
pub const ORDER_ATTR: &str = "order";
/// Attribute of `grim.gemm`: which kernel runs it, [`KERNEL_BCR`] (default)
/// or [`KERNEL_DENSE`] (set by the driver from the LR file or the weights).
pub const KERNEL_ATTR: &str = "kernel";
/// The BCR kernels (`bcr.spmm` / `bcr.spmv` on BCRC).
pub const KERNEL_BCR: &str = "bcr";
/// The dense kernels (`bcr.gemm` on row panels).
pub const KERNEL_DENSE: &str = "dense";

fn build<'c>(builder: OperationBuilder<'c>) -> Operation<'c> {
    // The IRDL declarations accept every shape these builders produce; a
    // failure here is a bug in this file, not bad user input.
    builder
        .build()
        .expect("grim op matches its IRDL declaration")
}

/// Builds `grim.weight {name}`.
pub fn weight<'c>(
    context: &'c Context,
    name: &str,
    ty: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(WEIGHT, location)
            .add_attributes(&[attr::named_str(context, "name", name)])
            .add_results(&[ty]),
    )
}

/// Builds `grim.constant {value}`.
pub fn constant<'c>(
    context: &'c Context,
    value: Attribute<'c>,
    ty: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(CONSTANT, location)
            .add_attributes(&[(melior::ir::Identifier::new(context, "value"), value)])
            .add_results(&[ty]),
    )
}

/// Builds `grim.gemm(input, weight[, bias])`.
pub fn gemm<'c>(
    input: Value<'c, '_>,
    weight: Value<'c, '_>,
    bias: Option<Value<'c, '_>>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    let mut builder = OperationBuilder::new(GEMM, location).add_operands(&[input, weight]);
    if let Some(bias) = bias {
        builder = builder.add_operands(&[bias]);
    }
    build(builder.add_results(&[result]))
}

/// Builds `grim.add(lhs, rhs)`.
pub fn add<'c>(
    lhs: Value<'c, '_>,
    rhs: Value<'c, '_>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(ADD, location)
            .add_operands(&[lhs, rhs])
            .add_results(&[result]),
    )
}

/// Builds `grim.relu(input)`.
pub fn relu<'c>(input: Value<'c, '_>, location: Location<'c>) -> Operation<'c> {
    build(
        OperationBuilder::new(RELU, location)
            .add_operands(&[input])
            .add_results(&[input.r#type()]),
    )
}

/// Builds `grim.reshape(input)` to the static shape of `result`.
pub fn reshape<'c>(
    input: Value<'c, '_>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(RESHAPE, location)
            .add_operands(&[input])
            .add_results(&[result]),
    )
}

/// Builds `grim.transpose(input)` (2-D).
pub fn transpose<'c>(
    input: Value<'c, '_>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(TRANSPOSE, location)
            .add_operands(&[input])
            .add_results(&[result]),
    )
}

/// Geometry of a `grim.conv2d` (ONNX Conv attributes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvAttrs {
    /// `[stride_h, stride_w]`.
    pub strides: [i64; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [i64; 4],
    /// `[dilation_h, dilation_w]`.
    pub dilations: [i64; 2],
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
        kh == 1 && kw == 1 && self.strides == [1, 1] && self.pads == [0; 4]
    }
}

/// Builds `grim.conv2d(input, weight[, bias])` with its geometry.
pub fn conv2d<'c>(
    context: &'c melior::Context,
    input: Value<'c, '_>,
    weight: Value<'c, '_>,
    bias: Option<Value<'c, '_>>,
    attrs: &ConvAttrs,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    use melior::ir::{attribute::DenseI64ArrayAttribute, Identifier};
    let array = |name: &str, values: &[i64]| {
        (
            Identifier::new(context, name),
            DenseI64ArrayAttribute::new(context, values).into(),
        )
    };
    let mut builder = OperationBuilder::new(CONV2D, location).add_operands(&[input, weight]);
    if let Some(bias) = bias {
        builder = builder.add_operands(&[bias]);
    }
    build(
        builder
            .add_attributes(&[
                array("strides", &attrs.strides),
                array("pads", &attrs.pads),
                array("dilations", &attrs.dilations),
            ])
            .add_results(&[result]),
    )
}

/// Reads the geometry of a `grim.conv2d` (`None` if an attribute is missing
/// or has the wrong length).
pub fn conv_attrs<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<ConvAttrs> {
    let array = |name: &str| -> Option<Vec<i64>> {
        let attribute = op.attribute(name).ok()?;
        let raw = attribute.to_raw();
        // SAFETY: read-only queries on a live attribute, checked to be a dense i64 array first.
        unsafe {
            if !mlir_sys::mlirAttributeIsADenseI64Array(raw) {
                return None;
            }
            Some(
                (0..mlir_sys::mlirDenseArrayGetNumElements(raw))
                    .map(|i| mlir_sys::mlirDenseI64ArrayGetElement(raw, i))
                    .collect(),
            )
        }
    };
    let (strides, pads, dilations) = (array("strides")?, array("pads")?, array("dilations")?);
    Some(ConvAttrs {
        strides: strides.try_into().ok()?,
        pads: pads.try_into().ok()?,
        dilations: dilations.try_into().ok()?,
    })
}

/// The name a `grim.weight` refers to.
pub fn weight_name<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<String> {
    attr::string(op, "name")
}

/// The ops that multiply by a weight matrix (gemm, conv2d): what the LR file
/// names, and what gets a BCR or a dense kernel.
pub const PRODUCTS: [&str; 2] = [GEMM, CONV2D];

/// The name of the `grim.weight` a product (gemm, conv2d) multiplies by, if
/// its weight operand is one.
pub fn product_weight_name<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<String> {
    let weight = op.operand(1).ok().filter(|v| v.is_operation_result())?;
    // SAFETY: the value is an op result, so it has an owner, alive with the op.
    let owner = unsafe {
        melior::ir::OperationRef::from_raw(mlir_sys::mlirOpResultGetOwner(weight.to_raw()))
    };
    (owner.name().as_string_ref().as_str() == Ok(WEIGHT))
        .then(|| weight_name(&owner))
        .flatten()
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

fn shape_of(value: Result<Value, melior::Error>, what: &str) -> Result<Vec<i64>, String> {
    let value = value.map_err(|_| format!("missing {what}"))?;
    let ty = value.r#type();
    if !shape::is_tensor(ty) || !shape::is_f32_shaped(ty) {
        return Err(format!("{what} must be a ranked f32 tensor, got {ty}"));
    }
    shape::static_shape(ty).ok_or_else(|| format!("{what} must have a static shape, got {ty}"))
}

fn result_shape<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<Vec<i64>, String> {
    shape_of(op.result(0).map(Into::into), "result")
}

/// The schedule attributes a product (gemm, conv) may carry from the LR file.
fn check_kernel_attrs<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<(), String> {
    if let Some(order) = attr::string(op, ORDER_ATTR) {
        if order != "natural" && order != "grouped" {
            return Err(format!(
                "order must be \"natural\" or \"grouped\", got \"{order}\""
            ));
        }
    }
    if let Some(kernel) = attr::string(op, KERNEL_ATTR) {
        if kernel != KERNEL_BCR && kernel != KERNEL_DENSE {
            return Err(format!(
                "kernel must be \"bcr\" or \"dense\", got \"{kernel}\""
            ));
        }
    }
    if let Some(rows) = attr::int(op, BLOCK_ATTR) {
        let cols = attr::int(op, BLOCK_COLS_ATTR).unwrap_or(0);
        if !(1..=64).contains(&rows) || !(1..=64).contains(&cols) {
            return Err(format!(
                "block size {rows}x{cols} out of range (1..=64 each)"
            ));
        }
    }
    Ok(())
}

/// Checks the semantics of one `grim` op (shapes, element types); `Ok` for
/// ops of other dialects.
pub fn verify<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<(), String> {
    let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
    match name.as_str() {
        WEIGHT => {
            result_shape(op)?;
            if weight_name(op).is_none_or(|n| n.is_empty()) {
                return Err("needs a non-empty string attribute 'name'".into());
            }
        }
        CONSTANT => {
            let result = result_shape(op)?;
            if op.has_attribute("name") && attr::string(op, "name").is_none_or(|n| n.is_empty()) {
                return Err("'name', when given, must be a non-empty string".into());
            }
            let value = op
                .attribute("value")
                .map_err(|_| "missing 'value'".to_string())?;
            if !attr::is_dense_elements(value) {
                return Err("'value' must be a dense elements attribute".into());
            }
            // SAFETY: `value` is a dense elements attribute, so it has a shaped type.
            let value_type =
                unsafe { Type::from_raw(mlir_sys::mlirAttributeGetType(value.to_raw())) };
            if shape::static_shape(value_type).as_deref() != Some(&result[..])
                || !shape::is_f32_shaped(value_type)
            {
                return Err(format!(
                    "'value' has type {value_type}, the result is {}",
                    op.result(0)
                        .map(|r| r.r#type().to_string())
                        .unwrap_or_default()
                ));
            }
        }
        GEMM => {
            let a = shape_of(op.operand(0), "input")?;
            let w = shape_of(op.operand(1), "weight")?;
            let y = result_shape(op)?;
            if a.len() != 2 || w.len() != 2 {
                return Err(format!("input and weight must be 2-D, got {a:?} and {w:?}"));
            }
            if a[1] != w[1] {
                return Err(format!(
                    "input has {} columns but the weight (out x in) has {} columns",
                    a[1], w[1]
                ));
            }
            if y != [a[0], w[0]] {
                return Err(format!("result must be [{}, {}], got {y:?}", a[0], w[0]));
            }
            if op.operand_count() == 3 {
                let bias = shape_of(op.operand(2), "bias")?;
                if bias != [w[0]] {
                    return Err(format!("bias must be [{}], got {bias:?}", w[0]));
                }
            }
            check_kernel_attrs(op)?;
        }
        CONV2D => {
            let x = shape_of(op.operand(0), "input")?;
            let w = shape_of(op.operand(1), "weight")?;
            let y = result_shape(op)?;
            let attrs = conv_attrs(op)
                .ok_or("needs strides (2), pads (4) and dilations (2) as array<i64> attributes")?;
            if attrs.strides.iter().chain(&attrs.dilations).any(|v| *v < 1)
                || attrs.pads.iter().any(|p| *p < 0)
            {
                return Err(format!(
                    "strides and dilations must be >= 1 and pads >= 0, got {attrs:?}"
                ));
            }
            if x.len() != 4 || w.len() != 4 {
                return Err(format!(
                    "input [N, C, H, W] and weight [M, C, kh, kw] must be 4-D, got {x:?} and {w:?}"
                ));
            }
            if x[1] != w[1] {
                return Err(format!(
                    "input has {} channels but the weight expects {}",
                    x[1], w[1]
                ));
            }
            let (ho, wo) = attrs.output(x[2], x[3], w[2], w[3]).ok_or_else(|| {
                format!(
                    "a {}x{} kernel does not fit the padded {}x{} input",
                    w[2], w[3], x[2], x[3]
                )
            })?;
            if y != [x[0], w[0], ho, wo] {
                return Err(format!(
                    "result must be [{}, {}, {ho}, {wo}], got {y:?}",
                    x[0], w[0]
                ));
            }
            if op.operand_count() == 3 {
                let bias = shape_of(op.operand(2), "bias")?;
                if bias != [w[0]] {
                    return Err(format!("bias must be [{}], got {bias:?}", w[0]));
                }
            }
            check_kernel_attrs(op)?;
        }
        ADD => {
            let a = shape_of(op.operand(0), "lhs")?;
            let b = shape_of(op.operand(1), "rhs")?;
            let y = result_shape(op)?;
            match broadcast(&a, &b) {
                Some(out) if out == y => {}
                Some(out) => return Err(format!("result must be {out:?}, got {y:?}")),
                None => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
            }
        }
        RELU => {
            let x = shape_of(op.operand(0), "input")?;
            if result_shape(op)? != x {
                return Err("result shape must equal the input shape".into());
            }
        }
        RESHAPE => {
            let x = shape_of(op.operand(0), "input")?;
            let y = result_shape(op)?;
            if shape::numel(&x) != shape::numel(&y) {
                return Err(format!(
                    "cannot reshape {x:?} ({} elements) to {y:?} ({} elements)",
                    shape::numel(&x),
                    shape::numel(&y)
                ));
            }
        }
        TRANSPOSE => {
            let x = shape_of(op.operand(0), "input")?;
            let y = result_shape(op)?;
            if x.len() != 2 || y != [x[1], x[0]] {
                return Err(format!(
                    "transpose of {x:?} must be 2-D and give [{}, {}], got {y:?}",
                    x.get(1).unwrap_or(&0),
                    x.first().unwrap_or(&0)
                ));
            }
        }
        _ => {}
    }
    Ok(())
}
