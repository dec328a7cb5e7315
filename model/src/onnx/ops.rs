//! The per-op readers of the importer: attributes and constant inputs
//! checked and turned into an [`Op`].

use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::graph::{Node, Op};
use crate::tensor::Tensor;

use super::attrs::{Attrs, AutoPad};
use super::fold;
use super::proto::*;
use crate::pad::PadMode;

/// Reads a `Conv` node's attributes into [`Op::Conv`].
///
/// `x_shape` and `w_shape` are the shapes of the data and weight inputs: the
/// weight's spatial dims check `kernel_shape`, and `SAME_*` auto-padding is
/// resolved to explicit pads here, so the graph only ever holds explicit pads.
pub(super) fn conv_op(
    at: &Attrs,
    np: &NodeProto,
    x_shape: &[usize],
    w_shape: &[usize],
) -> Result<Op, ModelError> {
    let mut strides = [1, 1];
    let mut pads = None;
    let mut dilations = [1, 1];
    let mut kernel_shape = None;
    let mut group = 1;
    let mut auto_pad = AutoPad::NotSet;
    for a in &np.attribute {
        match a.name.as_str() {
            "strides" => strides = at.ints_n(a, 1, "[stride_h, stride_w]")?,
            "dilations" => dilations = at.ints_n(a, 1, "[dilation_h, dilation_w]")?,
            "pads" => pads = Some(at.ints_n(a, 0, "[top, left, bottom, right]")?),
            "kernel_shape" => kernel_shape = Some(at.ints(a)?.to_vec()),
            "group" => {
                let g = at.int(a)?;
                group = usize::try_from(g)
                    .ok()
                    .filter(|g| *g >= 1)
                    .ok_or_else(|| at.unsupported(format!("group = {g} must be at least 1")))?;
            }
            "auto_pad" => auto_pad = AutoPad::parse(at, a)?,
            _ => return Err(at.unknown(a)),
        }
    }
    // A non-4-D weight is left to shape inference, which says what it needs.
    if let (Some(ks), [_, _, kh, kw]) = (&kernel_shape, w_shape) {
        if ks.len() != 2 || ks[0] != *kh as i64 || ks[1] != *kw as i64 {
            return Err(at.unsupported(format!(
                "kernel_shape {ks:?} does not match the spatial dims [{kh}, {kw}] of weight {w_shape:?}"
            )));
        }
    } else if let Some(ks) = &kernel_shape {
        if ks.len() != 2 {
            return Err(at.unsupported(format!(
                "kernel_shape {ks:?} must have 2 values; only 2-D convolution is supported"
            )));
        }
    }
    let pads = match auto_pad {
        AutoPad::NotSet => pads.unwrap_or([0; 4]),
        _ if pads.is_some_and(|p| p != [0; 4]) => {
            return Err(at.unsupported(
                "explicit non-zero pads together with auto_pad (ONNX allows pads only with \
                 auto_pad NOTSET)"
                    .into(),
            ))
        }
        AutoPad::Valid => [0; 4],
        AutoPad::SameUpper | AutoPad::SameLower => {
            let (&[_, _, h, w], &[_, _, kh, kw]) = (x_shape, w_shape) else {
                return Err(ModelError::Shape {
                    node: at.label.to_string(),
                    message: format!(
                        "Conv needs a 4-D NCHW input X and a 4-D weight W, got X {x_shape:?} \
                         and W {w_shape:?}"
                    ),
                });
            };
            let upper = auto_pad == AutoPad::SameUpper;
            let (top, bottom) = same_pads(at, h, kh, strides[0], dilations[0], upper)?;
            let (left, right) = same_pads(at, w, kw, strides[1], dilations[1], upper)?;
            [top, left, bottom, right]
        }
    };
    Ok(Op::Conv {
        strides,
        pads,
        dilations,
        group,
    })
}

/// Reads a `MaxPool`/`AveragePool` node's attributes into [`Op::Pool`]
/// (`x_shape`: the data input's, for `SAME_*` auto-padding).
pub(super) fn pool_op(
    at: &Attrs,
    np: &NodeProto,
    kind: crate::pool::PoolKind,
    x_shape: &[usize],
) -> Result<Op, ModelError> {
    let mut pool = crate::pool::Pool {
        kind,
        kernel: [0, 0],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
        ceil_mode: false,
        count_include_pad: false,
    };
    let (mut kernel, mut pads, mut auto_pad) = (None, None, AutoPad::NotSet);
    for a in &np.attribute {
        match a.name.as_str() {
            "kernel_shape" => kernel = Some(at.ints_n(a, 1, "[kh, kw]")?),
            "strides" => pool.strides = at.ints_n(a, 1, "[stride_h, stride_w]")?,
            "dilations" => pool.dilations = at.ints_n(a, 1, "[dilation_h, dilation_w]")?,
            "pads" => pads = Some(at.ints_n(a, 0, "[top, left, bottom, right]")?),
            "ceil_mode" => pool.ceil_mode = at.int(a)? != 0,
            "count_include_pad" if kind == crate::pool::PoolKind::Average => {
                pool.count_include_pad = at.int(a)? != 0
            }
            // Only the Indices output reads it, which is refused.
            "storage_order" if kind == crate::pool::PoolKind::Max => {}
            "auto_pad" => auto_pad = AutoPad::parse(at, a)?,
            _ => return Err(at.unknown(a)),
        }
    }
    pool.kernel =
        kernel.ok_or_else(|| at.unsupported("missing attribute 'kernel_shape'".into()))?;
    pool.pads = match auto_pad {
        AutoPad::NotSet => pads.unwrap_or([0; 4]),
        AutoPad::Valid => [0; 4],
        AutoPad::SameUpper | AutoPad::SameLower => {
            let &[_, _, h, w] = x_shape else {
                return Err(ModelError::Shape {
                    node: at.label.to_string(),
                    message: format!("pooling needs a 4-D NCHW input, got {x_shape:?}"),
                });
            };
            let upper = auto_pad == AutoPad::SameUpper;
            let (kh, kw) = (pool.kernel[0], pool.kernel[1]);
            let (top, bottom) = same_pads(at, h, kh, pool.strides[0], pool.dilations[0], upper)?;
            let (left, right) = same_pads(at, w, kw, pool.strides[1], pool.dilations[1], upper)?;
            [top, left, bottom, right]
        }
    };
    Ok(Op::Pool(pool))
}

/// `(begin, end)` padding of one axis for `SAME_UPPER`/`SAME_LOWER`: enough
/// that the output has `ceil(input / stride)` positions, the odd unit going to
/// the end (upper) or the beginning (lower), as the ONNX spec defines it.
pub(super) fn same_pads(
    at: &Attrs,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    upper: bool,
) -> Result<(usize, usize), ModelError> {
    let out = input.div_ceil(stride);
    let needed = kernel
        .checked_sub(1)
        .and_then(|k| k.checked_mul(dilation))
        .and_then(|span| span.checked_add(1))
        .and_then(|span| out.saturating_sub(1).checked_mul(stride)?.checked_add(span))
        .ok_or_else(|| {
            at.unsupported(format!(
                "auto_pad SAME: kernel {kernel} with dilation {dilation} and stride {stride} \
                 on input {input} is empty or overflows"
            ))
        })?
        .saturating_sub(input);
    let begin = if upper {
        needed / 2
    } else {
        needed - needed / 2
    };
    Ok((begin, needed - begin))
}

/// The model's default-domain (`""` or `"ai.onnx"`) opset version: the
/// forms of Clip and BatchNormalization depend on it. A model that imports
/// none is treated as opset 1; several imports take the highest.
pub(super) fn default_opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .filter(|os| os.domain.is_empty() || os.domain == "ai.onnx")
        .map(|os| os.version)
        .max()
        .unwrap_or(1)
}

/// Reads an inference-mode `BatchNormalization` node's attributes.
pub(super) fn batch_norm_op(at: &Attrs, np: &NodeProto, opset: i64) -> Result<Op, ModelError> {
    let mut epsilon = 1e-5;
    for a in &np.attribute {
        match a.name.as_str() {
            "epsilon" => epsilon = at.float(a)?,
            // The running statistics' update rate matters only in training.
            "momentum" => {
                at.float(a)?;
            }
            // Removed in opset 9, where statistics are always per channel.
            "spatial" if opset <= 8 => {
                let v = at.int(a)?;
                if v != 1 {
                    return Err(at.unsupported(format!(
                        "attribute 'spatial' = {v}: only spatial = 1 (one mean and variance per \
                         channel) is supported"
                    )));
                }
            }
            "training_mode" => {
                let v = at.int(a)?;
                if v != 0 {
                    return Err(at.unsupported(format!(
                        "attribute 'training_mode' = {v}: only inference (training_mode = 0) \
                         is supported"
                    )));
                }
            }
            "is_test" | "consumed_inputs" => {
                return Err(at.unsupported(format!(
                    "attribute '{}' belongs to BatchNormalization before opset 7, which is not \
                     supported (the model imports opset {opset}); re-export with opset 7 or later",
                    a.name
                )))
            }
            _ => return Err(at.unknown(a)),
        }
    }
    Ok(Op::BatchNormalization { epsilon })
}

/// A Clip's bounds, each absent, a constant, or a value computed at run time.
pub(super) struct ClipBounds {
    min: Bound,
    max: Bound,
}

enum Bound {
    Absent,
    Constant(f32),
    Runtime(String),
}

/// An op of a loaded Clip and its second input, if any.
pub(super) type ClipPart = (Op, Option<String>);

impl ClipBounds {
    /// The ops that compute the Clip, in order, each with its second input
    /// if any: all but the last, and the last. Constant bounds stay one
    /// `Clip`; a runtime lower bound is `Max(x, min)` and a runtime upper
    /// bound `Min(x, max)`, lower first, as `min(max(x, lo), hi)` orders
    /// them (a lower bound above the upper gives the upper, as ONNX says).
    pub(super) fn parts(self) -> (Vec<ClipPart>, ClipPart) {
        let mut parts: Vec<ClipPart> = Vec::new();
        match self.min {
            Bound::Runtime(name) => parts.push((Op::Max, Some(name))),
            Bound::Constant(v) => parts.push((
                Op::Clip {
                    min: Some(v),
                    max: None,
                },
                None,
            )),
            Bound::Absent => {}
        }
        match self.max {
            Bound::Runtime(name) => parts.push((Op::Min, Some(name))),
            Bound::Constant(v) => match parts.last_mut() {
                Some((Op::Clip { max, .. }, _)) => *max = Some(v),
                _ => parts.push((
                    Op::Clip {
                        min: None,
                        max: Some(v),
                    },
                    None,
                )),
            },
            Bound::Absent => {}
        }
        let last = parts.pop().unwrap_or((
            Op::Clip {
                min: None,
                max: None,
            },
            None,
        ));
        (parts, last)
    }
}

/// Reads a `Clip` node: bounds from attributes before opset 11, from the
/// optional inputs 2 (min) and 3 (max) from opset 11 on, each a constant
/// or a scalar computed at run time. `inputs` are the node's inputs with
/// trailing empty names removed; an empty name is an absent bound.
pub(super) fn clip_op(
    at: &Attrs,
    np: &NodeProto,
    opset: i64,
    inputs: &[String],
    floats: &BTreeMap<String, Tensor>,
    shapes: &BTreeMap<String, Vec<usize>>,
) -> Result<ClipBounds, ModelError> {
    let mut bounds = ClipBounds {
        min: Bound::Absent,
        max: Bound::Absent,
    };
    for a in &np.attribute {
        match a.name.as_str() {
            "min" if opset < 11 => bounds.min = Bound::Constant(at.float(a)?),
            "max" if opset < 11 => bounds.max = Bound::Constant(at.float(a)?),
            "min" | "max" => {
                return Err(at.unsupported(format!(
                    "attribute '{}' is the Clip form before opset 11, but the model imports \
                     opset {opset}, where the bounds are inputs 2 and 3",
                    a.name
                )))
            }
            _ => return Err(at.unknown(a)),
        }
    }
    if opset < 11 {
        if inputs.len() != 1 {
            return Err(at.unsupported(format!(
                "expected 1 input before opset 11 (the bounds are attributes), got {}",
                inputs.len()
            )));
        }
        return Ok(bounds);
    }
    if inputs.len() > 3 {
        return Err(at.unsupported(format!(
            "expected 1 to 3 inputs (input, min, max), got {}",
            inputs.len()
        )));
    }
    for (bound, (what, name)) in [&mut bounds.min, &mut bounds.max]
        .into_iter()
        .zip(["min", "max"].into_iter().zip(inputs.iter().skip(1)))
    {
        if name.is_empty() {
            continue;
        }
        if floats.contains_key(name) {
            *bound = Bound::Constant(const_scalar(at, floats, what, name)?);
            continue;
        }
        *bound = match shapes.get(name) {
            Some(shape) if shape.len() <= 1 && shape.iter().product::<usize>() == 1 => {
                Bound::Runtime(name.clone())
            }
            Some(shape) => {
                return Err(at.unsupported(format!(
                    "{what} input '{name}' must be a scalar (shape [] or [1]), got shape {shape:?}"
                )))
            }
            None => {
                return Err(at.unsupported(format!(
                    "{what} input '{name}' is not defined before this node (or is not f32)"
                )))
            }
        };
    }
    Ok(bounds)
}

/// The value of the f32 scalar constant (shape `[]` or `[1]`) `name`, which
/// is input `what` of the node.
pub(super) fn const_scalar(
    at: &Attrs,
    floats: &BTreeMap<String, Tensor>,
    what: &str,
    name: &str,
) -> Result<f32, ModelError> {
    match floats.get(name) {
        Some(t) if t.shape.len() <= 1 && t.data.len() == 1 => Ok(t.data[0]),
        Some(t) => Err(at.unsupported(format!(
            "{what} input '{name}' must be a scalar (shape [] or [1]), got shape {:?}",
            t.shape
        ))),
        None => Err(at.unsupported(format!(
            "{what} input '{name}' must be a constant f32 scalar (initializer or Constant); a \
             bound computed at run time is not supported"
        ))),
    }
}

/// Checks that a `Dropout` node is the inference-mode identity: any `ratio`
/// (attribute, constant or runtime input) and `seed`, and a `training_mode` input
/// that is absent or a constant false.
pub(super) fn dropout_check(
    at: &Attrs,
    np: &NodeProto,
    inputs: &[String],
    floats: &BTreeMap<String, Tensor>,
    shapes: &BTreeMap<String, Vec<usize>>,
    ints: &BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    bools: &BTreeMap<String, (Vec<usize>, Vec<bool>)>,
) -> Result<(), ModelError> {
    for a in &np.attribute {
        match a.name.as_str() {
            // Inference scales nothing and draws nothing.
            "ratio" => {
                at.float(a)?;
            }
            "seed" => {
                at.int(a)?;
            }
            _ => return Err(at.unknown(a)),
        }
    }
    if inputs.len() > 3 {
        return Err(at.unsupported(format!(
            "expected 1 to 3 inputs (data, ratio, training_mode), got {}",
            inputs.len()
        )));
    }
    // The ratio, constant or computed at run time, scales nothing in
    // inference; it must still be a value the graph defines.
    if let Some(ratio) = inputs.get(1).filter(|s| !s.is_empty()) {
        if !floats.contains_key(ratio) && !shapes.contains_key(ratio) {
            return Err(at.unsupported(format!(
                "ratio input '{ratio}' is not defined before this node (or is not f32)"
            )));
        }
    }
    if let Some(mode) = inputs.get(2).filter(|s| !s.is_empty()) {
        let values: Option<Vec<bool>> = bools.get(mode).map(|(_, v)| v.clone()).or_else(|| {
            ints.get(mode)
                .map(|(_, v)| v.iter().map(|&x| x != 0).collect())
        });
        match values.as_deref() {
            Some([false]) => {}
            Some([true]) => {
                return Err(at.unsupported(format!(
                    "training_mode input '{mode}' is true: Dropout in training mode is not \
                     supported"
                )))
            }
            Some(v) => {
                return Err(at.unsupported(format!(
                    "training_mode input '{mode}' must be a scalar, got {} values",
                    v.len()
                )))
            }
            None => {
                return Err(at.unsupported(format!(
                    "training_mode input '{mode}' must be a constant false (initializer or \
                     Constant); a training mode chosen at run time is not supported"
                )))
            }
        }
    }
    Ok(())
}

/// A Pad node's mode, pads (all dims, begins then ends) and constant value,
/// from its attributes (before opset 11) or its constant inputs (`pads`,
/// optional `constant_value`, optional `axes` from opset 18). Negative
/// pads crop, which grim does not do.
pub(super) fn pad_args(
    at: &Attrs,
    np: &NodeProto,
    inputs: &[String],
    opset: i64,
    constants: &fold::Constants,
    rank: usize,
) -> Result<(PadMode, Vec<usize>, f32), ModelError> {
    let mut mode = PadMode::Constant;
    let (mut pads, mut value) = (None, 0.0f32);
    for a in &np.attribute {
        match a.name.as_str() {
            "mode" => {
                let name = at.string(a)?;
                mode = PadMode::from_name(&name).ok_or_else(|| {
                    at.unsupported(format!(
                        "mode '{name}' is not constant, reflect, edge or wrap"
                    ))
                })?;
            }
            "pads" if opset < 11 => pads = Some(at.ints(a)?.to_vec()),
            "value" if opset < 11 => value = at.float(a)?,
            _ => return Err(at.unknown(a)),
        }
    }
    let int_input = |index: usize, what: &str| -> Result<Option<Vec<i64>>, ModelError> {
        match inputs.get(index).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(name) => match constants.ints.get(name) {
                Some((dims, v)) if dims.len() <= 1 => Ok(Some(v.clone())),
                _ => Err(at.unsupported(format!(
                    "{what} '{name}' must be a constant 1-D INT64 tensor (initializer or Constant)"
                ))),
            },
        }
    };
    let pads = if opset < 11 {
        pads.ok_or_else(|| at.unsupported("missing attribute 'pads'".into()))?
    } else {
        let given =
            int_input(1, "pads")?.ok_or_else(|| at.unsupported("missing input 'pads'".into()))?;
        if let Some(name) = inputs.get(2).filter(|s| !s.is_empty()) {
            value = match constants.floats.get(name) {
                Some(t) if t.data.len() == 1 => t.data[0],
                _ => {
                    return Err(at.unsupported(format!(
                        "constant_value '{name}' must be a constant f32 scalar"
                    )))
                }
            };
        }
        match int_input(3, "axes")? {
            None => given,
            Some(axes) => {
                if given.len() != 2 * axes.len() {
                    return Err(at.unsupported(format!(
                        "pads {given:?} must have 2 entries per axis of {axes:?}"
                    )));
                }
                let mut all = vec![0i64; 2 * rank];
                for (k, &axis) in axes.iter().enumerate() {
                    let d = if axis < 0 { axis + rank as i64 } else { axis };
                    let d = usize::try_from(d)
                        .ok()
                        .filter(|&d| d < rank)
                        .ok_or_else(|| {
                            at.unsupported(format!("axis {axis} is out of range for rank {rank}"))
                        })?;
                    all[d] = given[k];
                    all[rank + d] = given[axes.len() + k];
                }
                all
            }
        }
    };
    let pads = pads
        .iter()
        .map(|&p| usize::try_from(p).ok())
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            at.unsupported(format!(
                "negative pads {pads:?} crop the input, which is not supported"
            ))
        })?;
    Ok((mode, pads, value))
}

/// A 1-D Conv, MaxPool or AveragePool rewritten as the 2-D op over a
/// height of 1: the Reshapes to push before it, the node with its
/// attributes given a leading kernel, stride and dilation of 1 and no
/// padding in height, and the initializers it no longer reads.
pub(super) struct Lift {
    pub(super) before: Vec<Node>,
    pub(super) node: NodeProto,
    pub(super) consumed: Vec<String>,
}

/// [`Lift`] of `np` when its data input is `[N, C, L]` (`inputs` and,
/// for a constant conv weight `[M, C/g, k]`, `floats` and `shapes` gain
/// the `[.., 1, ..]` forms); `None` for every other node.
pub(super) fn lift_1d(
    np: &NodeProto,
    inputs: &mut [String],
    shapes: &mut BTreeMap<String, Vec<usize>>,
    floats: &mut BTreeMap<String, Tensor>,
) -> Option<Lift> {
    if !matches!(np.op_type.as_str(), "Conv" | "MaxPool" | "AveragePool") {
        return None;
    }
    let unit_height = |shape: &[usize]| -> Option<Vec<i64>> {
        match shape {
            &[a, b, l] => Some(vec![a as i64, b as i64, 1, l as i64]),
            _ => None,
        }
    };
    let x_shape = unit_height(shapes.get(inputs.first()?)?)?;
    let at = np.output.first().map_or("lifted", |s| s.as_str());
    let mut before = Vec::new();
    let mut consumed = Vec::new();
    let reshape = |name: &str, value: &str, shape: Vec<i64>| Node {
        name: format!("{}/{name}_as_2d", np.name),
        op: Op::Reshape { shape },
        inputs: vec![value.to_string()],
        outputs: vec![format!("{at}/{name}_as_2d")],
    };
    before.push(reshape("input", &inputs[0], x_shape));
    inputs[0] = before[0].outputs[0].clone();
    if np.op_type == "Conv" && inputs.len() > 1 {
        let w = inputs[1].clone();
        if let Some(t) = floats.get(&w) {
            let shape = unit_height(&t.shape)?;
            let name = format!("{w}/as_2d");
            let dims: Vec<usize> = shape.iter().map(|&d| d as usize).collect();
            shapes.insert(name.clone(), dims.clone());
            let lifted = Tensor {
                shape: dims,
                data: t.data.clone(),
            };
            floats.insert(name.clone(), lifted);
            consumed.push(w);
            inputs[1] = name;
        } else {
            let shape = unit_height(shapes.get(&w)?)?;
            before.push(reshape("weight", &w, shape));
            inputs[1] = before[1].outputs[0].clone();
        }
    }
    let mut node = np.clone();
    for a in &mut node.attribute {
        match (a.name.as_str(), a.ints.len()) {
            ("kernel_shape" | "strides" | "dilations", 1) => a.ints.insert(0, 1),
            ("pads", 2) => a.ints = vec![0, a.ints[0], 0, a.ints[1]],
            _ => {}
        }
    }
    Some(Lift {
        before,
        node,
        consumed,
    })
}
