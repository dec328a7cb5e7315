//! Constant folding at import: the Shape / Gather / Slice / Cast / Concat /
//! Squeeze / Unsqueeze / ConstantOfShape chains exporters emit around
//! reshapes (PyTorch's `x.view(x.size(0), -1)`, old converters' weights
//! made by ConstantOfShape). grim compiles for static shapes, so `Shape` of
//! any value is a constant, and these ops of constants are constants: they
//! are evaluated here, before any MLIR is built, and never reach the graph.
//!
//! What is not folded: these ops on values computed at run time (Squeeze,
//! Unsqueeze and Concat of activations are graph ops; Gather and Slice of
//! activations are errors naming the node).

use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::tensor::Tensor;

use super::attrs::Attrs;
use super::data_type;
use super::decode::{decode_tensor, Const};
use super::proto::*;

/// The constants known while a graph is imported, by value name.
pub(super) struct Constants<'a> {
    pub(super) floats: &'a BTreeMap<String, Tensor>,
    pub(super) ints: &'a BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    pub(super) shapes: &'a BTreeMap<String, Vec<usize>>,
}

/// A folded value.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Folded {
    Floats(Tensor),
    Ints(Vec<usize>, Vec<i64>),
}

/// A constant of either element type, for the ops that only move values.
#[derive(Clone)]
enum Values {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl<'a> Constants<'a> {
    fn get(&self, name: &str) -> Option<(Vec<usize>, Values)> {
        if let Some(t) = self.floats.get(name) {
            return Some((t.shape.clone(), Values::F32(t.data.clone())));
        }
        self.ints
            .get(name)
            .map(|(s, v)| (s.clone(), Values::I64(v.clone())))
    }

    /// A 1-D (or scalar) INT64 constant input, e.g. axes, starts, a shape.
    fn int_list(&self, at: &Attrs, what: &str, name: &str) -> Result<Vec<i64>, ModelError> {
        match self.ints.get(name) {
            Some((s, v)) if s.len() <= 1 => Ok(v.clone()),
            Some((s, _)) => Err(at.unsupported(format!(
                "{what} input '{name}' must be 1-D, got shape {s:?}"
            ))),
            None => Err(at.unsupported(format!(
                "{what} input '{name}' must be a constant INT64 tensor (initializer, Constant or \
                 a folded Shape chain)"
            ))),
        }
    }
}

fn folded(shape: Vec<usize>, values: Values) -> Folded {
    match values {
        Values::F32(data) => Folded::Floats(Tensor { shape, data }),
        Values::I64(data) => Folded::Ints(shape, data),
    }
}

/// `axis` (possibly negative) of a rank-`rank` value, checked.
fn axis_of(at: &Attrs, axis: i64, rank: usize) -> Result<usize, ModelError> {
    let r = rank as i64;
    if axis < -r || axis >= r {
        return Err(at.unsupported(format!("axis {axis} is out of range for rank {rank}")));
    }
    Ok(((axis + r) % r.max(1)) as usize)
}

/// Row-major strides.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Takes the elements of `values` (of `shape`) at the multi-indices that
/// `index` maps each output multi-index of `out` to.
fn gather_by<T: Clone>(
    values: &[T],
    shape: &[usize],
    out: &[usize],
    index: impl Fn(&[usize]) -> Vec<usize>,
) -> Vec<T> {
    let st = strides(shape);
    let n: usize = out.iter().product();
    let mut idx = vec![0; out.len()];
    let mut result = Vec::with_capacity(n);
    for _ in 0..n {
        let at: usize = index(&idx).iter().zip(&st).map(|(i, s)| i * s).sum();
        result.push(values[at].clone());
        for d in (0..out.len()).rev() {
            idx[d] += 1;
            if idx[d] < out[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    result
}

/// The axes of a Squeeze/Unsqueeze: the attribute before opset 13, the
/// optional second input from 13.
pub(super) fn axes(
    at: &Attrs,
    np: &NodeProto,
    inputs: &[String],
    opset: i64,
    constants: &Constants,
) -> Result<Option<Vec<i64>>, ModelError> {
    let mut axes = None;
    for a in &np.attribute {
        match a.name.as_str() {
            "axes" if opset < 13 => axes = Some(at.ints(a)?.to_vec()),
            _ => return Err(at.unknown(a)),
        }
    }
    if opset >= 13 {
        if let Some(name) = inputs.get(1).filter(|s| !s.is_empty()) {
            axes = Some(constants.int_list(at, "axes", name)?);
        }
    }
    Ok(axes)
}

/// The output shape of Squeeze (`squeeze`) or Unsqueeze of `shape`.
pub(super) fn squeeze_shape(
    at: &Attrs,
    shape: &[usize],
    axes: Option<&[i64]>,
    squeeze: bool,
) -> Result<Vec<usize>, ModelError> {
    if squeeze {
        let drop: Vec<usize> = match axes {
            None => (0..shape.len()).filter(|&d| shape[d] == 1).collect(),
            Some(axes) => axes
                .iter()
                .map(|&a| axis_of(at, a, shape.len()))
                .collect::<Result<_, _>>()?,
        };
        if let Some(&d) = drop.iter().find(|&&d| shape[d] != 1) {
            return Err(at.unsupported(format!(
                "cannot squeeze axis {d} of shape {shape:?}: its size is {}, not 1",
                shape[d]
            )));
        }
        return Ok((0..shape.len())
            .filter(|d| !drop.contains(d))
            .map(|d| shape[d])
            .collect());
    }
    let axes = axes.ok_or_else(|| at.unsupported("Unsqueeze needs axes".into()))?;
    let rank = shape.len() + axes.len();
    let mut inserted: Vec<usize> = axes
        .iter()
        .map(|&a| axis_of(at, a, rank))
        .collect::<Result<_, _>>()?;
    inserted.sort_unstable();
    if inserted.windows(2).any(|w| w[0] == w[1]) {
        return Err(at.unsupported(format!("axes {axes:?} repeat an axis")));
    }
    let mut dims = shape.iter();
    Ok((0..rank)
        .map(|d| {
            if inserted.contains(&d) {
                1
            } else {
                *dims.next().unwrap_or(&1)
            }
        })
        .collect())
}

/// Folds node `np` if it is one of this file's ops and its inputs are
/// constants (`Shape`: any value of known shape). `Ok(None)`: not folded
/// (another op, or a value computed at run time that a graph op handles).
pub(super) fn fold(
    at: &Attrs,
    np: &NodeProto,
    inputs: &[String],
    opset: i64,
    constants: &Constants,
) -> Result<Option<Folded>, ModelError> {
    let op = np.op_type.as_str();
    let first = inputs.first().map(String::as_str).unwrap_or("");
    let input_count = |lo: usize, hi: usize| -> Result<(), ModelError> {
        if (lo..=hi).contains(&inputs.len()) {
            Ok(())
        } else {
            Err(at.unsupported(format!(
                "expected {lo} to {hi} inputs, got {}",
                inputs.len()
            )))
        }
    };
    match op {
        "Shape" => {
            input_count(1, 1)?;
            let shape = constants
                .shapes
                .get(first)
                .or_else(|| constants.ints.get(first).map(|(s, _)| s))
                .ok_or_else(|| {
                    at.unsupported(format!("input '{first}' is not defined before this node"))
                })?;
            let (mut start, mut end) = (0i64, shape.len() as i64);
            for a in &np.attribute {
                match a.name.as_str() {
                    "start" => start = at.int(a)?,
                    "end" => end = at.int(a)?,
                    _ => return Err(at.unknown(a)),
                }
            }
            let r = shape.len() as i64;
            let clamp = |v: i64| (if v < 0 { v + r } else { v }).clamp(0, r) as usize;
            let (start, end) = (clamp(start), clamp(end));
            let dims: Vec<i64> = shape[start..end.max(start)]
                .iter()
                .map(|&d| d as i64)
                .collect();
            Ok(Some(Folded::Ints(vec![dims.len()], dims)))
        }
        "ConstantOfShape" => {
            input_count(1, 1)?;
            let dims = constants.int_list(at, "shape", first)?;
            let shape: Vec<usize> = dims
                .iter()
                .map(|&d| usize::try_from(d))
                .collect::<Result<_, _>>()
                .map_err(|_| at.unsupported(format!("shape {dims:?} has a negative dim")))?;
            let n: usize = shape.iter().product();
            let mut value = Folded::Floats(Tensor {
                shape: shape.clone(),
                data: vec![0.0; n],
            });
            for a in &np.attribute {
                match a.name.as_str() {
                    "value" => {
                        let t = a.t.as_ref().ok_or_else(|| {
                            at.unsupported("attribute 'value' has no tensor".into())
                        })?;
                        value = match decode_tensor(t)
                            .map_err(|m| at.unsupported(format!("value: {m}")))?
                        {
                            Const::F32(t) if t.data.len() == 1 => Folded::Floats(Tensor {
                                shape: shape.clone(),
                                data: vec![t.data[0]; n],
                            }),
                            Const::I64(_, v) if v.len() == 1 => {
                                Folded::Ints(shape.clone(), vec![v[0]; n])
                            }
                            _ => {
                                return Err(at.unsupported(
                                    "value must be one FLOAT or INT64 element".into(),
                                ))
                            }
                        };
                    }
                    _ => return Err(at.unknown(a)),
                }
            }
            Ok(Some(value))
        }
        "Cast" => {
            input_count(1, 1)?;
            let mut to = None;
            for a in &np.attribute {
                match a.name.as_str() {
                    "to" => to = Some(at.int(a)? as i32),
                    "saturate" => {}
                    _ => return Err(at.unknown(a)),
                }
            }
            let to = to.ok_or_else(|| at.unsupported("missing attribute 'to'".into()))?;
            let Some((shape, values)) = constants.get(first) else {
                // A cast of an activation to float32 changes nothing.
                if to == data_type::FLOAT && constants.shapes.contains_key(first) {
                    return Ok(None);
                }
                return Err(at.unsupported(format!(
                    "a Cast of '{first}' computed at run time to {} is not supported (grim \
                     computes in float32)",
                    data_type::name(to)
                )));
            };
            let values = match (to, values) {
                (data_type::FLOAT, Values::F32(v)) => Values::F32(v),
                (data_type::FLOAT, Values::I64(v)) => {
                    Values::F32(v.iter().map(|&x| x as f32).collect())
                }
                (data_type::INT64, Values::I64(v)) => Values::I64(v),
                (data_type::INT64, Values::F32(v)) => {
                    Values::I64(v.iter().map(|&x| x as i64).collect())
                }
                (other, _) => {
                    return Err(at.unsupported(format!(
                        "a Cast to {} (grim folds casts to FLOAT and INT64)",
                        data_type::name(other)
                    )))
                }
            };
            Ok(Some(folded(shape, values)))
        }
        "Gather" => {
            input_count(2, 2)?;
            let mut axis = 0;
            for a in &np.attribute {
                match a.name.as_str() {
                    "axis" => axis = at.int(a)?,
                    _ => return Err(at.unknown(a)),
                }
            }
            let Some((shape, values)) = constants.get(first) else {
                return Err(at.unsupported(format!(
                    "Gather of '{first}', a value computed at run time, is not supported (only \
                     the Gathers of constants and shapes exporters emit are folded)"
                )));
            };
            let (index_shape, indices) =
                constants.ints.get(&inputs[1]).cloned().ok_or_else(|| {
                    at.unsupported(format!(
                        "indices '{}' must be a constant INT64 tensor",
                        inputs[1]
                    ))
                })?;
            let axis = axis_of(at, axis, shape.len())?;
            let size = shape[axis] as i64;
            let indices: Vec<usize> = indices
                .iter()
                .map(|&i| {
                    let j = if i < 0 { i + size } else { i };
                    usize::try_from(j)
                        .ok()
                        .filter(|&j| (j as i64) < size)
                        .ok_or_else(|| {
                            at.unsupported(format!(
                                "index {i} is out of range for axis {axis} of {shape:?}"
                            ))
                        })
                })
                .collect::<Result<_, _>>()?;
            let mut out: Vec<usize> = shape[..axis].to_vec();
            out.extend(&index_shape);
            out.extend(&shape[axis + 1..]);
            let k = index_shape.len();
            let pick = |idx: &[usize]| {
                let flat = idx[axis..axis + k]
                    .iter()
                    .zip(strides(&index_shape))
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
                let mut at: Vec<usize> = idx[..axis].to_vec();
                at.push(indices[flat]);
                at.extend(&idx[axis + k..]);
                at
            };
            Ok(Some(folded(
                out.clone(),
                match values {
                    Values::F32(v) => Values::F32(gather_by(&v, &shape, &out, pick)),
                    Values::I64(v) => Values::I64(gather_by(&v, &shape, &out, pick)),
                },
            )))
        }
        "Slice" => {
            let Some((shape, values)) = constants.get(first) else {
                return Err(at.unsupported(format!(
                    "Slice of '{first}', a value computed at run time, is not supported (only \
                     the Slices of constants and shapes exporters emit are folded)"
                )));
            };
            let (starts, ends, axes, steps) = if opset < 10 {
                input_count(1, 1)?;
                let (mut s, mut e, mut a) = (None, None, None);
                for attr in &np.attribute {
                    match attr.name.as_str() {
                        "starts" => s = Some(at.ints(attr)?.to_vec()),
                        "ends" => e = Some(at.ints(attr)?.to_vec()),
                        "axes" => a = Some(at.ints(attr)?.to_vec()),
                        _ => return Err(at.unknown(attr)),
                    }
                }
                let s = s.ok_or_else(|| at.unsupported("missing attribute 'starts'".into()))?;
                let e = e.ok_or_else(|| at.unsupported("missing attribute 'ends'".into()))?;
                (s, e, a, None)
            } else {
                input_count(3, 5)?;
                if let Some(a) = np.attribute.first() {
                    return Err(at.unknown(a));
                }
                let list = |i: usize, what: &str| -> Result<Option<Vec<i64>>, ModelError> {
                    match inputs.get(i).filter(|s| !s.is_empty()) {
                        Some(name) => constants.int_list(at, what, name).map(Some),
                        None => Ok(None),
                    }
                };
                (
                    list(1, "starts")?.unwrap_or_default(),
                    list(2, "ends")?.unwrap_or_default(),
                    list(3, "axes")?,
                    list(4, "steps")?,
                )
            };
            let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
            let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
            if ends.len() != starts.len()
                || axes.len() != starts.len()
                || steps.len() != starts.len()
            {
                return Err(at.unsupported(format!(
                    "starts {starts:?}, ends {ends:?}, axes {axes:?} and steps {steps:?} differ in length"
                )));
            }
            // Per axis: first index and step, and the count taken (ONNX's clamping).
            let mut first_of = vec![0i64; shape.len()];
            let mut step_of = vec![1i64; shape.len()];
            let mut out = shape.clone();
            for (((&s, &e), &a), &step) in starts.iter().zip(&ends).zip(&axes).zip(&steps) {
                let d = axis_of(at, a, shape.len())?;
                let size = shape[d] as i64;
                if step == 0 {
                    return Err(at.unsupported("a step of 0".into()));
                }
                let norm = |v: i64| if v < 0 { v + size } else { v };
                let (s, e) = if step > 0 {
                    (norm(s).clamp(0, size), norm(e).clamp(0, size))
                } else {
                    (norm(s).clamp(-1, size - 1), norm(e).clamp(-1, size - 1))
                };
                let count = if step > 0 {
                    (e - s + step - 1).div_euclid(step).max(0)
                } else {
                    (s - e + (-step) - 1).div_euclid(-step).max(0)
                };
                first_of[d] = s;
                step_of[d] = step;
                out[d] = count as usize;
            }
            let pick = |idx: &[usize]| {
                idx.iter()
                    .enumerate()
                    .map(|(d, &i)| (first_of[d] + i as i64 * step_of[d]) as usize)
                    .collect::<Vec<_>>()
            };
            Ok(Some(folded(
                out.clone(),
                match values {
                    Values::F32(v) => Values::F32(gather_by(&v, &shape, &out, pick)),
                    Values::I64(v) => Values::I64(gather_by(&v, &shape, &out, pick)),
                },
            )))
        }
        "Squeeze" | "Unsqueeze" => {
            let Some((shape, values)) = constants.get(first) else {
                return Ok(None);
            };
            input_count(1, 2)?;
            let axes = axes(at, np, inputs, opset, constants)?;
            let out = squeeze_shape(at, &shape, axes.as_deref(), op == "Squeeze")?;
            Ok(Some(folded(out, values)))
        }
        "Concat" => {
            let all: Option<Vec<(Vec<usize>, Values)>> =
                inputs.iter().map(|name| constants.get(name)).collect();
            let Some(parts) = all else {
                return Ok(None);
            };
            let mut axis = None;
            for a in &np.attribute {
                match a.name.as_str() {
                    "axis" => axis = Some(at.int(a)?),
                    _ => return Err(at.unknown(a)),
                }
            }
            let axis = axis.ok_or_else(|| at.unsupported("missing attribute 'axis'".into()))?;
            let Some((first_shape, first_values)) = parts.first().cloned() else {
                return Err(at.unsupported("Concat needs at least one input".into()));
            };
            let d = axis_of(at, axis, first_shape.len())?;
            let mut out = first_shape.clone();
            out[d] = 0;
            for (shape, values) in &parts {
                let same_kind = matches!(
                    (values, &first_values),
                    (Values::F32(_), Values::F32(_)) | (Values::I64(_), Values::I64(_))
                );
                if !same_kind
                    || shape.len() != first_shape.len()
                    || shape
                        .iter()
                        .enumerate()
                        .any(|(i, &s)| i != d && s != first_shape[i])
                {
                    return Err(at.unsupported(format!(
                        "inputs {:?} cannot be concatenated along axis {axis}",
                        parts.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>()
                    )));
                }
                out[d] += shape[d];
            }
            // Outer blocks of each input, one after another.
            let outer: usize = first_shape[..d].iter().product();
            let mut f32s = Vec::new();
            let mut i64s = Vec::new();
            for o in 0..outer {
                for (shape, values) in &parts {
                    let block: usize = shape[d..].iter().product();
                    match values {
                        Values::F32(v) => f32s.extend_from_slice(&v[o * block..(o + 1) * block]),
                        Values::I64(v) => i64s.extend_from_slice(&v[o * block..(o + 1) * block]),
                    }
                }
            }
            Ok(Some(match first_values {
                Values::F32(_) => Folded::Floats(Tensor {
                    shape: out,
                    data: f32s,
                }),
                Values::I64(_) => Folded::Ints(out, i64s),
            }))
        }
        _ => Ok(None),
    }
}
