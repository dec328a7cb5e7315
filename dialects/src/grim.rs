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

/// The name a `grim.weight` refers to.
pub fn weight_name<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<String> {
    attr::string(op, "name")
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
