//! The reference interpreter: dense, naive and obviously correct.
//!
//! Every compiled kernel is tested against this, so it favours clarity over
//! speed: plain index loops, f64 accumulation, no sparsity, no BCRC.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::graph::{broadcast_shapes, node_label, node_output_shape, Graph, Op};
use crate::recurrent::Recurrent;
use crate::tensor::Tensor;

/// Row-major strides of `shape`.
fn strides(shape: &[usize]) -> Vec<usize> {
    let mut s = vec![1; shape.len()];
    for i in (0..shape.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * shape[i + 1];
    }
    s
}

/// Per-dimension strides of a tensor of shape `from` read through numpy
/// broadcasting at rank `rank`: 0 for missing and size-1 dims, so that
/// `sum(idx[d] * result[d])` is the element for the multi-index `idx` of the
/// broadcast result. Computed once per operand, not per element.
fn broadcast_strides(from: &[usize], rank: usize) -> Vec<usize> {
    let st = strides(from);
    let mut out = vec![0; rank];
    let off = rank - from.len();
    for (i, &d) in from.iter().enumerate() {
        if d != 1 {
            out[off + i] = st[i];
        }
    }
    out
}

fn dot(idx: &[usize], st: &[usize]) -> usize {
    idx.iter().zip(st).map(|(i, s)| i * s).sum()
}

/// Calls `f(flat, multi_index)` for every element of `shape` in row-major order.
fn for_each_index(shape: &[usize], mut f: impl FnMut(usize, &[usize])) {
    let n: usize = shape.iter().product();
    let mut idx = vec![0; shape.len()];
    for flat in 0..n {
        f(flat, &idx);
        for d in (0..shape.len()).rev() {
            idx[d] += 1;
            if idx[d] < shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
}

/// Runs `graph` on `inputs` (one per graph input, in order) and returns the
/// graph outputs in order.
///
/// Errors name the input whose count or shape is wrong, or the node whose
/// shapes do not fit.
pub fn run_reference(graph: &Graph, inputs: &[Tensor]) -> Result<Vec<Tensor>, ModelError> {
    if inputs.len() != graph.inputs.len() {
        return Err(ModelError::Tensor {
            name: String::new(),
            message: format!(
                "the graph has {} inputs ({}) but {} tensors were given",
                graph.inputs.len(),
                graph
                    .inputs
                    .iter()
                    .map(|v| v.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                inputs.len()
            ),
        });
    }
    // Borrowed inputs and weights: a large model's initializers are never
    // copied, only the values the nodes compute are owned.
    let mut env: BTreeMap<&str, Cow<Tensor>> = BTreeMap::new();
    for (vi, t) in graph.inputs.iter().zip(inputs) {
        if t.shape != vi.shape {
            return Err(ModelError::Tensor {
                name: vi.name.clone(),
                message: format!("expected shape {:?}, got {:?}", vi.shape, t.shape),
            });
        }
        if t.data.len() != t.numel() {
            return Err(ModelError::Tensor {
                name: vi.name.clone(),
                message: format!(
                    "shape {:?} needs {} values but it holds {}",
                    t.shape,
                    t.numel(),
                    t.data.len()
                ),
            });
        }
        env.insert(&vi.name, Cow::Borrowed(t));
    }
    for (name, t) in &graph.initializers {
        if t.data.len() != t.numel() {
            return Err(ModelError::Tensor {
                name: name.clone(),
                message: format!("initializer shape {:?} does not match its data", t.shape),
            });
        }
        env.entry(name).or_insert(Cow::Borrowed(t));
    }
    for (i, node) in graph.nodes.iter().enumerate() {
        let label = node_label(node, i);
        let mut ins: Vec<&Tensor> = Vec::with_capacity(node.inputs.len());
        for name in &node.inputs {
            ins.push(env.get(name.as_str()).map(|t| t.as_ref()).ok_or_else(|| {
                ModelError::Shape {
                    node: label.clone(),
                    message: format!("input '{name}' is not defined before this node"),
                }
            })?);
        }
        let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape.as_slice()).collect();
        if let Op::Recurrent(r) = &node.op {
            let outs = recurrent(r, &label, &ins, &shapes)?;
            for (name, out) in node.outputs.iter().zip(outs) {
                if !name.is_empty() {
                    env.insert(name, Cow::Owned(out));
                }
            }
            continue;
        }
        let out_shape = node_output_shape(&label, node, &shapes)?;
        let out = eval(&node.op, &ins, out_shape);
        // Every supported node has one output; only extra ones pay a copy.
        if let Some((last, rest)) = node.outputs.split_last() {
            for o in rest {
                env.insert(o, Cow::Owned(out.clone()));
            }
            env.insert(last, Cow::Owned(out));
        }
    }
    graph
        .outputs
        .iter()
        .map(|vi| {
            env.get(vi.name.as_str())
                .map(|t| t.as_ref().clone())
                .ok_or_else(|| ModelError::Shape {
                    node: vi.name.clone(),
                    message: "graph output is never computed".into(),
                })
        })
        .collect()
}

/// A recurrent node's outputs, after its shapes are checked.
fn recurrent(
    r: &Recurrent,
    label: &str,
    ins: &[&Tensor],
    shapes: &[&[usize]],
) -> Result<Vec<Tensor>, ModelError> {
    let dims = r.dims(label, shapes)?;
    Ok(r.eval(ins, &dims))
}

/// Evaluates one op whose shapes have already been checked.
fn eval(op: &Op, ins: &[&Tensor], out_shape: Vec<usize>) -> Tensor {
    match op {
        Op::Gemm {
            alpha,
            beta,
            trans_a,
            trans_b,
        } => {
            let (a, b) = (ins[0], ins[1]);
            let (n, m) = (out_shape[0], out_shape[1]);
            let k = if *trans_a { a.shape[0] } else { a.shape[1] };
            let a_at = |i: usize, kk: usize| {
                if *trans_a {
                    a.data[kk * a.shape[1] + i]
                } else {
                    a.data[i * a.shape[1] + kk]
                }
            };
            let b_at = |kk: usize, j: usize| {
                if *trans_b {
                    b.data[j * b.shape[1] + kk]
                } else {
                    b.data[kk * b.shape[1] + j]
                }
            };
            let c_strides = ins.get(2).map(|c| broadcast_strides(&c.shape, 2));
            let mut data = vec![0.0f32; n * m];
            for i in 0..n {
                for j in 0..m {
                    let mut acc = 0.0f64;
                    for kk in 0..k {
                        acc += a_at(i, kk) as f64 * b_at(kk, j) as f64;
                    }
                    let mut v = *alpha as f64 * acc;
                    if let (Some(c), Some(st)) = (ins.get(2), &c_strides) {
                        v += *beta as f64 * c.data[dot(&[i, j], st)] as f64;
                    }
                    data[i * m + j] = v as f32;
                }
            }
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::MatMul => {
            // Over the full (promoted, batch-broadcast) shape; the result has
            // the same elements in the same order.
            let (a, b) = (ins[0], ins[1]);
            let s = crate::graph::MatMulShape::of(&a.shape, &b.shape)
                .expect("shapes checked when the graph was built");
            let rank = s.full.len();
            let (sa, sb) = (broadcast_strides(&s.a, rank), broadcast_strides(&s.b, rank));
            // The k step within each operand: a's last dim, b's rows of M.
            let (ka, kb) = (1, s.m);
            let mut data = vec![0.0f32; s.full.iter().product()];
            let mut ia = vec![0; rank];
            let mut ib = vec![0; rank];
            for_each_index(&s.full, |flat, idx| {
                // a at [batch.., i, 0], b at [batch.., 0, j].
                ia.copy_from_slice(idx);
                ib.copy_from_slice(idx);
                ia[rank - 1] = 0;
                ib[rank - 2] = 0;
                let (a0, b0) = (dot(&ia, &sa), dot(&ib, &sb));
                let mut acc = 0.0f64;
                for kk in 0..s.k {
                    acc += a.data[a0 + kk * ka] as f64 * b.data[b0 + kk * kb] as f64;
                }
                data[flat] = acc as f32;
            });
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min => {
            let apply = op.binary_fn().expect("a binary op");
            let (a, b) = (ins[0], ins[1]);
            debug_assert_eq!(
                broadcast_shapes(&a.shape, &b.shape).as_deref(),
                Some(out_shape.as_slice())
            );
            let (sa, sb) = (
                broadcast_strides(&a.shape, out_shape.len()),
                broadcast_strides(&b.shape, out_shape.len()),
            );
            let mut data = vec![0.0f32; out_shape.iter().product()];
            for_each_index(&out_shape, |flat, idx| {
                data[flat] = apply(a.data[dot(idx, &sa)], b.data[dot(idx, &sb)]);
            });
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::Pool(pool) => Tensor {
            data: pool.reference(&ins[0].data, &ins[0].shape, &out_shape),
            shape: out_shape,
        },
        Op::GlobalPool(kind) => {
            let shape = &ins[0].shape;
            let pool = crate::pool::Pool {
                kind: *kind,
                kernel: [shape[2], shape[3]],
                strides: [1, 1],
                pads: [0; 4],
                dilations: [1, 1],
                ceil_mode: false,
                count_include_pad: false,
            };
            Tensor {
                data: pool.reference(&ins[0].data, shape, &out_shape),
                shape: out_shape,
            }
        }
        Op::Relu => map(ins[0], out_shape, |v| v.max(0.0)),
        Op::Clip { min, max } => map(ins[0], out_shape, |v| {
            // max then min, as ONNX defines it: with min > max every value is max.
            let v = min.map_or(v, |lo| v.max(lo));
            max.map_or(v, |hi| v.min(hi))
        }),
        Op::Sigmoid => map(ins[0], out_shape, |v| {
            (1.0 / (1.0 + (-(v as f64)).exp())) as f32
        }),
        Op::Tanh => map(ins[0], out_shape, |v| (v as f64).tanh() as f32),
        Op::HardSwish => map(ins[0], out_shape, |v| {
            let x = v as f64;
            (x * (x / 6.0 + 0.5).clamp(0.0, 1.0)) as f32
        }),
        Op::LeakyRelu { alpha } => map(ins[0], out_shape, |v| {
            if v >= 0.0 {
                v
            } else {
                (*alpha as f64 * v as f64) as f32
            }
        }),
        Op::HardSigmoid { alpha, beta } => map(ins[0], out_shape, |v| {
            (*alpha as f64 * v as f64 + *beta as f64).clamp(0.0, 1.0) as f32
        }),
        Op::Softmax { axis, axis_end } => {
            let x = ins[0];
            let outer: usize = x.shape[..*axis].iter().product();
            let reduce: usize = x.shape[*axis..*axis_end].iter().product();
            let inner: usize = x.shape[*axis_end..].iter().product();
            let mut data = vec![0.0f32; x.data.len()];
            for o in 0..outer {
                for i in 0..inner {
                    let at = |r: usize| (o * reduce + r) * inner + i;
                    let max = (0..reduce)
                        .map(|r| x.data[at(r)])
                        .fold(f32::NEG_INFINITY, f32::max);
                    let sum: f64 = (0..reduce)
                        .map(|r| ((x.data[at(r)] - max) as f64).exp())
                        .sum();
                    for r in 0..reduce {
                        data[at(r)] = (((x.data[at(r)] - max) as f64).exp() / sum) as f32;
                    }
                }
            }
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::Pad { mode, pads, value } => {
            let x = ins[0];
            let st = strides(&x.shape);
            let mut data = vec![0.0f32; out_shape.iter().product()];
            for_each_index(&out_shape, |flat, idx| {
                let mut at = 0;
                for (d, &o) in idx.iter().enumerate() {
                    match crate::pad::source(o, x.shape[d], pads[d], *mode) {
                        Some(i) => at += i * st[d],
                        None => {
                            data[flat] = *value;
                            return;
                        }
                    }
                }
                data[flat] = x.data[at];
            });
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::Lrn {
            alpha,
            beta,
            bias,
            size,
        } => {
            let x = ins[0];
            let (n, c) = (x.shape[0], x.shape[1]);
            let inner: usize = x.shape[2..].iter().product();
            let (before, after) = ((size - 1) / 2, size / 2);
            let mut data = vec![0.0f32; x.data.len()];
            for b in 0..n {
                for ch in 0..c {
                    for i in 0..inner {
                        let at = |k: usize| (b * c + k) * inner + i;
                        let window = ch.saturating_sub(before)..(ch + after + 1).min(c);
                        let sum: f64 = window.map(|k| (x.data[at(k)] as f64).powi(2)).sum();
                        let scale =
                            (*bias as f64 + *alpha as f64 / *size as f64 * sum).powf(*beta as f64);
                        data[at(ch)] = (x.data[at(ch)] as f64 / scale) as f32;
                    }
                }
            }
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::Concat { axis } => {
            // Per outer index, each input's block of its dims from `axis` on.
            let outer: usize = out_shape[..*axis].iter().product();
            let mut data = Vec::with_capacity(out_shape.iter().product());
            for o in 0..outer {
                for x in ins {
                    let block: usize = x.shape[*axis..].iter().product();
                    data.extend_from_slice(&x.data[o * block..(o + 1) * block]);
                }
            }
            Tensor {
                shape: out_shape,
                data,
            }
        }
        Op::Recurrent(_) => unreachable!("run_reference evaluates recurrent nodes itself"),
        Op::Identity => Tensor {
            shape: out_shape,
            data: ins[0].data.clone(),
        },
        Op::BatchNormalization { epsilon } => batch_norm(ins, out_shape, *epsilon),
        Op::Transpose { perm } => {
            // Output index i reads input index j with j[perm[d]] = i[d].
            let strides = strides(&ins[0].shape);
            let permuted: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
            let mut data = vec![0.0f32; out_shape.iter().product()];
            for_each_index(&out_shape, |flat, idx| {
                data[flat] = ins[0].data[dot(idx, &permuted)];
            });
            Tensor {
                shape: out_shape,
                data,
            }
        }
        // Row-major data does not move when only the shape changes.
        Op::Flatten { .. } | Op::Reshape { .. } => Tensor {
            shape: out_shape,
            data: ins[0].data.clone(),
        },
        Op::Conv {
            strides,
            pads,
            dilations,
            group,
        } => conv(ins, out_shape, *strides, *pads, *dilations, *group),
    }
}

/// `f` applied to every element.
fn map(x: &Tensor, out_shape: Vec<usize>, f: impl Fn(f32) -> f32) -> Tensor {
    Tensor {
        shape: out_shape,
        data: x.data.iter().map(|&v| f(v)).collect(),
    }
}

/// `scale[c] * (x - mean[c]) / sqrt(var[c] + epsilon) + B[c]` for channel
/// `c` (axis 1) of every element.
fn batch_norm(ins: &[&Tensor], out_shape: Vec<usize>, epsilon: f32) -> Tensor {
    let x = ins[0];
    let [scale, bias, mean, var] = [ins[1], ins[2], ins[3], ins[4]].map(|t| &t.data);
    let channels = x.shape[1];
    // Elements per (image, channel) pair: everything after axis 1.
    let inner: usize = x.shape[2..].iter().product();
    let data = x
        .data
        .iter()
        .enumerate()
        .map(|(flat, &v)| {
            let c = flat / inner.max(1) % channels;
            let std = (var[c] as f64 + epsilon as f64).sqrt();
            (scale[c] as f64 * (v as f64 - mean[c] as f64) / std + bias[c] as f64) as f32
        })
        .collect();
    Tensor {
        shape: out_shape,
        data,
    }
}

/// Direct convolution, straight from the definition: output pixel `(oh, ow)`
/// reads input pixel `(oh*sh + i*dh - top, ow*sw + j*dw - left)`, and taps that
/// land in the zero padding contribute nothing.
fn conv(
    ins: &[&Tensor],
    out_shape: Vec<usize>,
    [sh, sw]: [usize; 2],
    [top, left, _, _]: [usize; 4],
    [dh, dw]: [usize; 2],
    group: usize,
) -> Tensor {
    let (x, w) = (ins[0], ins[1]);
    let (c, h, wi) = (x.shape[1], x.shape[2], x.shape[3]);
    // Each output channel reads its group's slice of the input channels.
    let per_group = (w.shape[1], out_shape[1] / group);
    let (kh, kw) = (w.shape[2], w.shape[3]);
    let (n, m, ho, wo) = (out_shape[0], out_shape[1], out_shape[2], out_shape[3]);
    let mut data = vec![0.0f32; n * m * ho * wo];
    // One output plane is accumulated at a time, tap by tap: each output
    // pixel still sums its taps in (channel, i, j) order, exactly as a loop
    // per pixel would, but the innermost loop walks a contiguous row.
    let mut acc = vec![0.0f64; ho * wo];
    for b in 0..n {
        for o in 0..m {
            acc.fill(0.0);
            let first = o / per_group.1 * per_group.0;
            for wc in 0..per_group.0 {
                let ch = first + wc;
                let plane = &x.data[(b * c + ch) * h * wi..][..h * wi];
                for i in 0..kh {
                    for j in 0..kw {
                        let tap = w.data[((o * per_group.0 + wc) * kh + i) * kw + j] as f64;
                        for oh in 0..ho {
                            // Row in padded coordinates; unsigned, so the
                            // top padding is the `< top` case.
                            let r = oh * sh + i * dh;
                            if r < top || r - top >= h {
                                continue;
                            }
                            let in_row = &plane[(r - top) * wi..][..wi];
                            let out_row = &mut acc[oh * wo..][..wo];
                            for (ow, out) in out_row.iter_mut().enumerate() {
                                let col = ow * sw + j * dw;
                                if col < left || col - left >= wi {
                                    continue;
                                }
                                *out += in_row[col - left] as f64 * tap;
                            }
                        }
                    }
                }
            }
            let bias = ins.get(2).map(|bias| bias.data[o] as f64);
            let out = &mut data[(b * m + o) * ho * wo..][..ho * wo];
            for (y, &a) in out.iter_mut().zip(&acc) {
                *y = bias.map_or(a, |bias| a + bias) as f32;
            }
        }
    }
    Tensor {
        shape: out_shape,
        data,
    }
}

#[cfg(test)]
mod tests;
