//! The semantic verifier of the `grim` dialect: shapes (ONNX semantics),
//! element types, optional attributes and epilogues.

use super::*;
use crate::shape;

fn shape_of(value: Option<Value>, what: &str) -> Result<Vec<i64>, String> {
    let value = value.ok_or_else(|| format!("missing {what}"))?;
    let ty = value.r#type();
    if !shape::is_tensor(ty) || !shape::is_f32_shaped(ty) {
        return Err(format!("{what} must be a ranked f32 tensor, got {ty}"));
    }
    shape::static_shape(ty).ok_or_else(|| format!("{what} must have a static shape, got {ty}"))
}

fn operand_shape<'c: 'a, 'a>(
    op: &impl OperationLike<'c, 'a>,
    index: usize,
    what: &str,
) -> Result<Vec<i64>, String> {
    shape_of(op.operand(index).ok(), what)
}

fn result_shape<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<Vec<i64>, String> {
    shape_of(op.result(0).ok().map(Into::into), "result")
}

/// The kernel choice and epilogue a product may carry.
fn check_product_attrs<'c: 'a, 'a>(
    op: &impl OperationLike<'c, 'a>,
    operands: &Product<'c, 'a>,
    result: &[i64],
) -> Result<(), String> {
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
    match (attr::int(op, BLOCK_ATTR), attr::int(op, BLOCK_COLS_ATTR)) {
        (None, None) => {}
        (Some(rows), Some(cols)) => {
            if !(1..=64).contains(&rows) || !(1..=64).contains(&cols) {
                return Err(format!(
                    "block size {rows}x{cols} out of range (1..=64 each)"
                ));
            }
        }
        _ => {
            return Err(format!(
                "needs both '{BLOCK_ATTR}' and '{BLOCK_COLS_ATTR}' or neither"
            ))
        }
    }
    if let Some(residual) = operands.residual {
        let shape = shape_of(Some(residual), "residual")?;
        if shape != result {
            return Err(format!(
                "residual must have the result's shape {result:?}, got {shape:?}"
            ));
        }
    }
    Activation::of_epilogue(op)?;
    if op.has_attribute(IM2COL_ATTR) && Im2col::of(op).is_none() {
        return Err("im2col must be \"pointwise\", \"implicit\" or \"explicit\"".into());
    }
    Ok(())
}

fn check_unary<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<(), String> {
    let x = operand_shape(op, 0, "input")?;
    if result_shape(op)? != x {
        return Err("result shape must equal the input shape".into());
    }
    Ok(())
}

fn check_gemm<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<(), String> {
    let operands = product(op)
        .ok_or("needs (input, weight, bias?, residual?) operands as its operandSegmentSizes say")?;
    let attrs = gemm_attrs(op);
    let a = shape_of(Some(operands.input), "input")?;
    let w = shape_of(Some(operands.weight), "weight")?;
    let y = result_shape(op)?;
    if a.len() != 2 || w.len() != 2 {
        return Err(format!("input and weight must be 2-D, got {a:?} and {w:?}"));
    }
    let (n, k) = if attrs.trans_a {
        (a[1], a[0])
    } else {
        (a[0], a[1])
    };
    let (weight_k, m) = if attrs.trans_b {
        (w[1], w[0])
    } else {
        (w[0], w[1])
    };
    if k != weight_k {
        return Err(if attrs.trans_b {
            format!("input has {k} columns but the weight (out x in) has {weight_k} columns")
        } else {
            format!("input has {k} columns but the weight (in x out) has {weight_k} rows")
        });
    }
    if y != [n, m] {
        return Err(format!("result must be [{n}, {m}], got {y:?}"));
    }
    if let Some(bias) = operands.bias {
        let c = shape_of(Some(bias), "bias")?;
        let fits = c.len() <= 2
            && c.iter()
                .rev()
                .zip(y.iter().rev())
                .all(|(c, y)| c == y || *c == 1);
        if !fits {
            return Err(format!(
                "bias must broadcast to [{n}, {m}] (e.g. [{m}]), got {c:?}"
            ));
        }
    }
    check_product_attrs(op, &operands, &y)
}

fn check_conv<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<(), String> {
    let operands = product(op)
        .ok_or("needs (input, weight, bias?, residual?) operands as its operandSegmentSizes say")?;
    let x = shape_of(Some(operands.input), "input")?;
    let w = shape_of(Some(operands.weight), "weight")?;
    let y = result_shape(op)?;
    let attrs = conv_attrs(op)
        .ok_or("needs strides (2), pads (4) and dilations (2) as array<i64> attributes")?;
    if attrs.strides.iter().chain(&attrs.dilations).any(|v| *v < 1)
        || attrs.pads.iter().any(|p| *p < 0)
    {
        return Err(format!(
            "strides and dilations must be >= 1 and pads >= 0, got strides {:?}, pads {:?}, dilations {:?}",
            attrs.strides, attrs.pads, attrs.dilations
        ));
    }
    if x.len() != 4 || w.len() != 4 {
        return Err(format!(
            "input [N, C, H, W] and weight [M, C, kh, kw] must be 4-D, got {x:?} and {w:?}"
        ));
    }
    let group = attrs.group;
    if group < 1 || x[1] % group != 0 || w[0] % group != 0 {
        return Err(format!(
            "group {group} must divide the input's {} and the weight's {} channels",
            x[1], w[0]
        ));
    }
    if x[1] != w[1] * group {
        return Err(format!(
            "input has {} channels but the weight expects {} ({} per group of {group})",
            x[1],
            w[1] * group,
            w[1]
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
    if let Some(bias) = operands.bias {
        let bias = shape_of(Some(bias), "bias")?;
        if bias != [w[0]] {
            return Err(format!("bias must be [{}], got {bias:?}", w[0]));
        }
    }
    check_product_attrs(op, &operands, &y)
}

/// Checks the semantics of one `grim` op (shapes, element types); `Ok` for
/// ops of other dialects.
pub fn verify<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<(), String> {
    let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
    match name.as_str() {
        CONSTANT => {
            let result = result_shape(op)?;
            if op.has_attribute("name") && attr::string(op, "name").is_none_or(|n| n.is_empty()) {
                return Err("'name', when given, must be a non-empty string".into());
            }
            let value = op
                .attribute("value")
                .map_err(|_| "missing 'value'".to_string())?;
            match crate::weights::shape(value) {
                Some(shape) if shape == result => {}
                Some(shape) => {
                    return Err(format!(
                        "'value' has shape {shape:?}, the result is {result:?}"
                    ))
                }
                None => {
                    return Err(
                        "'value' must be f32 dense elements or a dense_resource of f32".into(),
                    )
                }
            }
        }
        GEMM => check_gemm(op)?,
        CONV2D => check_conv(op)?,
        BATCH_NORM => {
            let x = operand_shape(op, 0, "input")?;
            if x.len() < 2 {
                return Err(format!(
                    "input must have a channel axis (rank >= 2), got {x:?}"
                ));
            }
            for (index, what) in [(1, "scale"), (2, "bias"), (3, "mean"), (4, "var")] {
                let shape = operand_shape(op, index, what)?;
                if shape != [x[1]] {
                    return Err(format!(
                        "{what} must be [{}] (one per channel), got {shape:?}",
                        x[1]
                    ));
                }
            }
            if attr::float(op, "epsilon").is_none() {
                return Err("needs an f32 attribute 'epsilon'".into());
            }
            check_unary(op)?;
        }
        MATMUL => {
            let a = operand_shape(op, 0, "lhs")?;
            let b = operand_shape(op, 1, "rhs")?;
            let y = result_shape(op)?;
            matmul::check(&a, &b, &y)?;
        }
        LRN => {
            lrn_attrs(op).ok_or("needs f32 'alpha', 'beta', 'bias' and an i64 'size' >= 1")?;
            let x = operand_shape(op, 0, "input")?;
            if x.len() < 3 {
                return Err(format!(
                    "needs an input [N, C, ...] of rank >= 3, got {x:?}"
                ));
            }
            if result_shape(op)? != x {
                return Err(format!("result must be {x:?}"));
            }
        }
        CONCAT => {
            let axis = concat_axis(op).ok_or("needs an i64 'axis'")?;
            let a = operand_shape(op, 0, "lhs")?;
            let b = operand_shape(op, 1, "rhs")?;
            let y = result_shape(op)?;
            concat::check(axis, &a, &b, &y)?;
        }
        SOFTMAX => {
            let span = softmax_span(op).ok_or("needs i64 'axis' and 'axis_end'")?;
            let x = operand_shape(op, 0, "input")?;
            let y = result_shape(op)?;
            softmax::check(span, &x, &y)?;
        }
        PAD => {
            let attrs = pad_attrs(op).ok_or(
                "needs 'mode' (\"constant\", \"reflect\", \"edge\" or \"wrap\"), 'pads' (array<i64>, none negative) and an f32 'value'",
            )?;
            let x = operand_shape(op, 0, "input")?;
            let y = result_shape(op)?;
            pad::check(&attrs, &x, &y)?;
        }
        PERMUTE => {
            let perm = permutation(op).ok_or("needs 'perm' (array<i64>)")?;
            let x = operand_shape(op, 0, "input")?;
            let y = result_shape(op)?;
            permute::check(&perm, &x, &y)?;
        }
        RECURRENT => {
            let attrs = recurrent_attrs(op)?;
            let ins = (0..op.operand_count())
                .map(|i| operand_shape(op, i, &format!("operand #{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            let outs = (0..op.result_count())
                .map(|i| shape_of(op.result(i).ok().map(Into::into), &format!("result #{i}")))
                .collect::<Result<Vec<_>, _>>()?;
            recurrent::check(&attrs, &ins, &outs)?;
        }
        POOL => {
            let attrs = pool_attrs(op).ok_or(
                "needs 'kind' (\"max\" or \"average\") and i64 arrays 'kernel', 'strides', 'dilations' [h, w] and 'pads' [t, l, b, r]",
            )?;
            let x = operand_shape(op, 0, "input")?;
            let y = result_shape(op)?;
            pool::check(&attrs, &x, &y)?;
        }
        ADD | SUB | MUL | DIV | MAX | MIN => {
            let a = operand_shape(op, 0, "lhs")?;
            let b = operand_shape(op, 1, "rhs")?;
            let y = result_shape(op)?;
            match broadcast(&a, &b) {
                Some(out) if out == y => {}
                Some(out) => return Err(format!("result must be {out:?}, got {y:?}")),
                None => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
            }
        }
        RELU | SIGMOID | TANH | HARD_SWISH | IDENTITY => check_unary(op)?,
        CLIP | LEAKY_RELU | HARD_SIGMOID => {
            for (attribute, required) in [
                ("min", false),
                ("max", false),
                ("alpha", name != CLIP),
                ("beta", name == HARD_SIGMOID),
            ] {
                let present = op.has_attribute(attribute);
                if present && attr::float(op, attribute).is_none() {
                    return Err(format!("'{attribute}' must be an f32 attribute"));
                }
                if required && !present {
                    return Err(format!("needs an f32 attribute '{attribute}'"));
                }
            }
            check_unary(op)?;
        }
        RESHAPE => {
            let x = operand_shape(op, 0, "input")?;
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
            let x = operand_shape(op, 0, "input")?;
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
