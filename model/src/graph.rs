//! The MLIR-free graph: what the ONNX frontend produces and what the
//! reference interpreter runs.
//!
//! It deliberately knows only f32 tensors with static shapes and the handful
//! of ops an MLP and a plain CNN (2-D convolution, inference-mode batch
//! normalization, element-wise activations) need, so every later stage can
//! rely on those facts instead of re-checking them.

use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::tensor::Tensor;

/// A graph value with its static shape (element type is always f32).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValueInfo {
    /// Value name, unique in the graph.
    pub name: String,
    /// Static dimensions.
    pub shape: Vec<usize>,
}

/// One operation (ONNX semantics).
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// `Y = alpha * A' * B' + beta * C`, where `A'`/`B'` are optionally
    /// transposed and `C` (optional third input) broadcasts to the output.
    Gemm {
        /// Scale of the product.
        alpha: f32,
        /// Scale of `C`.
        beta: f32,
        /// Transpose `A` first.
        trans_a: bool,
        /// Transpose `B` first (the usual layout of FC weights: out x in).
        trans_b: bool,
    },
    /// numpy's matmul: of any ranks, the dims before the last two
    /// broadcast ([`MatMulShape`]).
    MatMul,
    /// Element-wise addition with numpy broadcasting.
    Add,
    /// Element-wise subtraction with numpy broadcasting.
    Sub,
    /// Element-wise multiplication with numpy broadcasting.
    Mul,
    /// Element-wise (IEEE) division with numpy broadcasting.
    Div,
    /// Element-wise maximum with numpy broadcasting (NaN if either is NaN).
    /// ONNX `Max` of more inputs is a left fold of these; a `Clip` with a
    /// lower bound computed at run time is one.
    Max,
    /// Element-wise minimum with numpy broadcasting (NaN if either is NaN).
    Min,
    /// `max(x, 0)`.
    Relu,
    /// ONNX Transpose: output dim `i` is input dim `perm[i]` (the default,
    /// reversing the dims, is resolved at load time).
    Transpose {
        /// A permutation of the input's dims.
        perm: Vec<usize>,
    },
    /// Collapses dims `[..axis)` and `[axis..]` into a 2-D tensor.
    Flatten {
        /// Split point; negative counts from the end.
        axis: i64,
    },
    /// Reshape to `shape`, where `0` copies the input dim and `-1` is
    /// inferred (ONNX `allowzero = 0`). The shape is taken from the constant
    /// second input at load time, so the node keeps only its data input.
    Reshape {
        /// Target shape with ONNX's `0`/`-1` conventions.
        shape: Vec<i64>,
    },
    /// 2-D convolution over NCHW input `[N, C, H, W]` with weight
    /// `[M, C / group, kh, kw]` and optional bias `[M]`: output
    /// `[N, M, Ho, Wo]`. With `group` G, output channels `[g M/G, (g+1) M/G)`
    /// read input channels `[g C/G, (g+1) C/G)`; depthwise is G = C.
    Conv {
        /// `[stride_h, stride_w]`.
        strides: [usize; 2],
        /// `[top, left, bottom, right]` zero padding.
        pads: [usize; 4],
        /// `[dilation_h, dilation_w]`.
        dilations: [usize; 2],
        /// Groups (1 for a plain conv).
        group: usize,
    },
    /// Inference-mode batch normalization over axis 1 of `X` (rank >= 2):
    /// `y = scale * (x - mean) / sqrt(var + epsilon) + B`, with inputs
    /// `X, scale, B, mean, var` and the last four of shape `[C]`.
    BatchNormalization {
        /// Added to the variance before the square root.
        epsilon: f32,
    },
    /// `min(max(x, min), max)`, an absent bound not clamping. The bounds are
    /// constants taken at load time (attributes before opset 11, constant
    /// inputs from 11), so the node keeps only its data input.
    Clip {
        /// Lower bound, if any.
        min: Option<f32>,
        /// Upper bound, if any.
        max: Option<f32>,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// Hyperbolic tangent.
    Tanh,
    /// `x * max(0, min(1, x / 6 + 1 / 2))` (opset 14).
    HardSwish,
    /// `x` for `x >= 0`, else `alpha * x`.
    LeakyRelu {
        /// Slope for negative inputs.
        alpha: f32,
    },
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// 2-D pooling over NCHW (ONNX MaxPool, AveragePool).
    Pool(crate::pool::Pool),
    /// Pooling over the whole of H x W (ONNX GlobalMaxPool,
    /// GlobalAveragePool): `[N, C, H, W]` to `[N, C, 1, 1]`.
    GlobalPool(crate::pool::PoolKind),
    /// `exp(x) / sum(exp(x))` over dims `[axis, axis_end)` (ONNX Softmax:
    /// from opset 13 the one dim `axis`; before, every dim from `axis` on,
    /// as the input coerced to 2-D).
    Softmax {
        /// First reduced dim (non-negative).
        axis: usize,
        /// One past the last reduced dim.
        axis_end: usize,
    },
    /// Local response normalization across channels (axis 1):
    /// `x / (bias + alpha / size * sum of x^2 over the window)^beta`, the
    /// window channels `[c - (size-1)/2, c + size/2]` (ONNX LRN).
    Lrn {
        /// Scale of the sum.
        alpha: f32,
        /// Exponent.
        beta: f32,
        /// Offset.
        bias: f32,
        /// Channels in the window.
        size: usize,
    },
    /// The inputs joined along `axis` (equal in every other dim).
    Concat {
        /// The joined dim (non-negative).
        axis: usize,
    },
    /// The input padded: dim `d` by `pads[d]` in front and `pads[rank + d]`
    /// behind, filled as `mode` says (ONNX Pad; negative pads, which crop,
    /// are rejected at load time).
    Pad {
        /// How the border is filled.
        mode: crate::pad::PadMode,
        /// `[begin_0, .., begin_{r-1}, end_0, .., end_{r-1}]`.
        pads: Vec<usize>,
        /// The fill of `Constant` mode.
        value: f32,
    },
    /// ONNX RNN, GRU or LSTM: inputs `X, W, R` and the optional operands
    /// [`crate::recurrent::Optional`] says are present; outputs `Y`, `Y_h`
    /// (and `Y_c`), an empty name marking one the model does not use.
    Recurrent(Box<crate::recurrent::Recurrent>),
    /// The input unchanged (also what inference-mode ONNX `Dropout` loads as).
    /// Kept as a node so the graph mirrors the file; compiler passes remove it.
    Identity,
}

impl Op {
    /// Gemm as PyTorch exports `nn.Linear`: `y = x W^T (+ b)` with the
    /// weight `[out, in]` (`transB = 1`, `alpha = beta = 1`).
    pub const LINEAR: Op = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: true,
    };

    /// The scalar function of a binary elementwise op (`Add`, `Sub`, `Mul`,
    /// `Div`, `Max`, `Min`), which broadcast their operands numpy-style.
    pub fn binary_fn(&self) -> Option<fn(f32, f32) -> f32> {
        match self {
            Op::Add => Some(|a, b| a + b),
            Op::Sub => Some(|a, b| a - b),
            Op::Mul => Some(|a, b| a * b),
            Op::Div => Some(|a, b| a / b),
            // NaN propagates, as numpy's maximum and MLIR's maximumf do.
            Op::Max => Some(|a, b| {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.max(b)
                }
            }),
            Op::Min => Some(|a, b| {
                if a.is_nan() || b.is_nan() {
                    f32::NAN
                } else {
                    a.min(b)
                }
            }),
            _ => None,
        }
    }

    /// The ONNX op type name.
    pub fn op_type(&self) -> &'static str {
        match self {
            Op::Gemm { .. } => "Gemm",
            Op::MatMul => "MatMul",
            Op::Add => "Add",
            Op::Sub => "Sub",
            Op::Mul => "Mul",
            Op::Div => "Div",
            Op::Max => "Max",
            Op::Min => "Min",
            Op::Pool(p) => match p.kind {
                crate::pool::PoolKind::Max => "MaxPool",
                crate::pool::PoolKind::Average => "AveragePool",
            },
            Op::GlobalPool(crate::pool::PoolKind::Max) => "GlobalMaxPool",
            Op::GlobalPool(crate::pool::PoolKind::Average) => "GlobalAveragePool",
            Op::Relu => "Relu",
            Op::Transpose { .. } => "Transpose",
            Op::Flatten { .. } => "Flatten",
            Op::Reshape { .. } => "Reshape",
            Op::Conv { .. } => "Conv",
            Op::BatchNormalization { .. } => "BatchNormalization",
            Op::Clip { .. } => "Clip",
            Op::Sigmoid => "Sigmoid",
            Op::Tanh => "Tanh",
            Op::HardSwish => "HardSwish",
            Op::LeakyRelu { .. } => "LeakyRelu",
            Op::HardSigmoid { .. } => "HardSigmoid",
            Op::Softmax { .. } => "Softmax",
            Op::Concat { .. } => "Concat",
            Op::Lrn { .. } => "LRN",
            Op::Pad { .. } => "Pad",
            Op::Recurrent(r) => r.cell.op_type(),
            Op::Identity => "Identity",
        }
    }
}

/// One node of the graph.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// Node name (may be empty; errors then say `#index`).
    pub name: String,
    /// The operation.
    pub op: Op,
    /// Input value names (graph inputs, initializers or earlier outputs).
    pub inputs: Vec<String>,
    /// Output value names: exactly one for every op but the recurrent ones,
    /// whose unused outputs have empty names.
    pub outputs: Vec<String>,
}

/// A whole model: inputs, outputs, nodes in topological order and weights.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Graph {
    /// Graph name.
    pub name: String,
    /// Runtime inputs (initializers are never listed here).
    pub inputs: Vec<ValueInfo>,
    /// Graph outputs with their declared shapes.
    pub outputs: Vec<ValueInfo>,
    /// Nodes, topologically sorted.
    pub nodes: Vec<Node>,
    /// Constant f32 tensors (weights, biases) by value name.
    pub initializers: BTreeMap<String, Tensor>,
}

/// The label used in errors for node `index`: its name, or `#index`.
pub fn node_label(node: &Node, index: usize) -> String {
    if node.name.is_empty() {
        format!("#{index}")
    } else {
        node.name.clone()
    }
}

/// The shapes of an ONNX (numpy) MatMul: a 1-D `a` is `[1, K]` and a 1-D
/// `b` is `[K, 1]` for the product, the added dim dropped from the result;
/// the dims before the last two broadcast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatMulShape {
    /// `a` as multiplied (rank >= 2).
    pub a: Vec<usize>,
    /// `b` as multiplied (rank >= 2).
    pub b: Vec<usize>,
    /// The broadcast batch dims, then `[N, M]`.
    pub full: Vec<usize>,
    /// Rows of each product.
    pub n: usize,
    /// The reduced dim.
    pub k: usize,
    /// Columns of each product.
    pub m: usize,
    /// The ONNX result shape (`full` without the dims a 1-D operand added).
    pub out: Vec<usize>,
}

impl MatMulShape {
    /// The shapes of `a x b`, or why they do not multiply.
    pub fn of(a: &[usize], b: &[usize]) -> Result<MatMulShape, String> {
        if a.is_empty() || b.is_empty() {
            return Err(format!(
                "MatMul needs operands of rank >= 1, got {a:?} and {b:?}"
            ));
        }
        let a2 = if a.len() == 1 {
            vec![1, a[0]]
        } else {
            a.to_vec()
        };
        let b2 = if b.len() == 1 {
            vec![b[0], 1]
        } else {
            b.to_vec()
        };
        let (n, k) = (a2[a2.len() - 2], a2[a2.len() - 1]);
        let (kb, m) = (b2[b2.len() - 2], b2[b2.len() - 1]);
        if k != kb {
            return Err(format!("MatMul inner dimensions differ: {a:?} x {b:?}"));
        }
        let batch = broadcast_shapes(&a2[..a2.len() - 2], &b2[..b2.len() - 2])
            .ok_or_else(|| format!("MatMul batch dims of {a:?} and {b:?} do not broadcast"))?;
        let mut full = batch.clone();
        full.extend([n, m]);
        let mut out = batch;
        if a.len() > 1 {
            out.push(n);
        }
        if b.len() > 1 {
            out.push(m);
        }
        Ok(MatMulShape {
            a: a2,
            b: b2,
            full,
            n,
            k,
            m,
            out,
        })
    }
}

/// Numpy broadcasting of two shapes, or `None` if they are incompatible.
pub fn broadcast_shapes(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let rank = a.len().max(b.len());
    let mut out = vec![0; rank];
    for i in 0..rank {
        // Align from the right: missing leading dims act as 1.
        let da = if i + a.len() >= rank {
            a[i + a.len() - rank]
        } else {
            1
        };
        let db = if i + b.len() >= rank {
            b[i + b.len() - rank]
        } else {
            1
        };
        out[i] = if da == db {
            da
        } else if da == 1 {
            db
        } else if db == 1 {
            da
        } else {
            return None;
        };
    }
    Some(out)
}

/// True when `from` broadcasts to exactly `to` (ONNX "unidirectional").
pub fn unidirectional_broadcastable(from: &[usize], to: &[usize]) -> bool {
    from.len() <= to.len()
        && from
            .iter()
            .rev()
            .zip(to.iter().rev())
            .all(|(&f, &t)| f == t || f == 1)
}

fn shape_err(label: &str, message: String) -> ModelError {
    ModelError::Shape {
        node: label.to_string(),
        message,
    }
}

fn expect_arity(label: &str, node: &Node, min: usize, max: usize) -> Result<(), ModelError> {
    let n = node.inputs.len();
    if n < min || n > max {
        let want = if min == max {
            format!("{min}")
        } else {
            format!("{min} to {max}")
        };
        return Err(shape_err(
            label,
            format!("{} takes {want} inputs, got {n}", node.op.op_type()),
        ));
    }
    if node.outputs.len() != 1 {
        return Err(shape_err(
            label,
            format!(
                "{} has exactly one output, got {}",
                node.op.op_type(),
                node.outputs.len()
            ),
        ));
    }
    Ok(())
}

/// Output shapes of `node` given its input shapes (in input order), one
/// per entry of `node.outputs` (an unused recurrent output's included).
///
/// `label` is what errors call the node. Shared by shape inference and the
/// reference interpreter so both agree on every rule.
pub fn node_output_shapes(
    label: &str,
    node: &Node,
    ins: &[&[usize]],
) -> Result<Vec<Vec<usize>>, ModelError> {
    match &node.op {
        Op::Recurrent(r) => {
            let shapes = r.output_shapes(label, ins)?;
            if node.outputs.len() != shapes.len() || node.outputs.iter().all(String::is_empty) {
                return Err(shape_err(
                    label,
                    format!(
                        "{} has {} outputs (empty names for unused ones, at least one used), got {:?}",
                        r.cell.op_type(),
                        shapes.len(),
                        node.outputs
                    ),
                ));
            }
            Ok(shapes)
        }
        _ => Ok(vec![node_output_shape(label, node, ins)?]),
    }
}

/// Output shape of a single-output `node` given its input shapes (in
/// input order); see [`node_output_shapes`].
pub fn node_output_shape(
    label: &str,
    node: &Node,
    ins: &[&[usize]],
) -> Result<Vec<usize>, ModelError> {
    match &node.op {
        Op::Gemm {
            trans_a, trans_b, ..
        } => {
            expect_arity(label, node, 2, 3)?;
            let (a, b) = (ins[0], ins[1]);
            if a.len() != 2 || b.len() != 2 {
                return Err(shape_err(
                    label,
                    format!("Gemm needs 2-D A and B, got A {a:?} and B {b:?}"),
                ));
            }
            let (n, k) = if *trans_a { (a[1], a[0]) } else { (a[0], a[1]) };
            let (kb, m) = if *trans_b { (b[1], b[0]) } else { (b[0], b[1]) };
            if k != kb {
                return Err(shape_err(
                    label,
                    format!(
                        "Gemm inner dimensions differ: A {a:?} (trans_a={trans_a}) gives K={k}, \
                         B {b:?} (trans_b={trans_b}) gives K={kb}"
                    ),
                ));
            }
            let out = vec![n, m];
            if let Some(c) = ins.get(2) {
                if !unidirectional_broadcastable(c, &out) {
                    return Err(shape_err(
                        label,
                        format!("Gemm C {c:?} does not broadcast to the output {out:?}"),
                    ));
                }
            }
            Ok(out)
        }
        Op::MatMul => {
            expect_arity(label, node, 2, 2)?;
            MatMulShape::of(ins[0], ins[1])
                .map(|s| s.out)
                .map_err(|message| shape_err(label, message))
        }
        Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min => {
            expect_arity(label, node, 2, 2)?;
            broadcast_shapes(ins[0], ins[1]).ok_or_else(|| {
                shape_err(
                    label,
                    format!(
                        "{} cannot broadcast {:?} with {:?}",
                        node.op.op_type(),
                        ins[0],
                        ins[1]
                    ),
                )
            })
        }
        Op::Relu
        | Op::Clip { .. }
        | Op::Sigmoid
        | Op::Tanh
        | Op::HardSwish
        | Op::LeakyRelu { .. }
        | Op::HardSigmoid { .. }
        | Op::Identity => {
            expect_arity(label, node, 1, 1)?;
            Ok(ins[0].to_vec())
        }
        Op::Pad { mode, pads, .. } => {
            expect_arity(label, node, 1, 1)?;
            crate::pad::output_shape(ins[0], pads, *mode).map_err(|e| shape_err(label, e))
        }
        Op::Lrn { size, .. } => {
            expect_arity(label, node, 1, 1)?;
            if ins[0].len() < 3 || *size == 0 {
                return Err(shape_err(
                    label,
                    format!("LRN needs an input [N, C, ...] of rank >= 3 and size >= 1, got {:?} and size {size}", ins[0]),
                ));
            }
            Ok(ins[0].to_vec())
        }
        Op::Concat { axis } => {
            expect_arity(label, node, 1, usize::MAX)?;
            let first = ins[0];
            let joins = ins.iter().all(|s| {
                s.len() == first.len()
                    && *axis < s.len()
                    && s.iter()
                        .zip(first.iter())
                        .enumerate()
                        .all(|(d, (a, b))| d == *axis || a == b)
            });
            if !joins {
                return Err(shape_err(
                    label,
                    format!("Concat cannot join {ins:?} along axis {axis}"),
                ));
            }
            let mut out = first.to_vec();
            out[*axis] = ins.iter().map(|s| s[*axis]).sum();
            Ok(out)
        }
        Op::Softmax { axis, axis_end } => {
            expect_arity(label, node, 1, 1)?;
            if !(axis < axis_end && *axis_end <= ins[0].len()) {
                return Err(shape_err(
                    label,
                    format!("Softmax over dims {axis}..{axis_end} of {:?}", ins[0]),
                ));
            }
            Ok(ins[0].to_vec())
        }
        Op::BatchNormalization { .. } => {
            expect_arity(label, node, 5, 5)?;
            let x = ins[0];
            let Some(&c) = x.get(1) else {
                return Err(shape_err(
                    label,
                    format!(
                        "BatchNormalization needs X of rank >= 2 (channels on axis 1), got {x:?}"
                    ),
                ));
            };
            for (what, s) in ["scale", "B", "mean", "var"].iter().zip(&ins[1..]) {
                if *s != [c] {
                    return Err(shape_err(
                        label,
                        format!("BatchNormalization {what} {s:?} must be [C] = [{c}] for X {x:?}"),
                    ));
                }
            }
            Ok(x.to_vec())
        }
        Op::Transpose { perm } => {
            expect_arity(label, node, 1, 1)?;
            let x = ins[0];
            let mut seen = vec![false; x.len()];
            let valid = perm.len() == x.len()
                && perm
                    .iter()
                    .all(|&p| p < x.len() && !std::mem::replace(&mut seen[p], true));
            if !valid {
                return Err(shape_err(
                    label,
                    format!(
                        "Transpose perm {perm:?} is not a permutation of the {} dims of {x:?}",
                        x.len()
                    ),
                ));
            }
            Ok(perm.iter().map(|&p| x[p]).collect())
        }
        Op::Flatten { axis } => {
            expect_arity(label, node, 1, 1)?;
            let x = ins[0];
            let r = x.len() as i64;
            if *axis < -r || *axis > r {
                return Err(shape_err(
                    label,
                    format!("Flatten axis {axis} is out of range for input {x:?}"),
                ));
            }
            let ax = if *axis < 0 { axis + r } else { *axis } as usize;
            Ok(vec![x[..ax].iter().product(), x[ax..].iter().product()])
        }
        Op::Reshape { shape } => {
            expect_arity(label, node, 1, 1)?;
            reshape_shape(label, ins[0], shape)
        }
        Op::Conv {
            strides,
            pads,
            dilations,
            group,
        } => {
            expect_arity(label, node, 2, 3)?;
            conv_shape(label, ins, *strides, *pads, *dilations, *group)
        }
        Op::Pool(pool) => {
            expect_arity(label, node, 1, 1)?;
            pool.output_shape(label, ins[0])
        }
        Op::Recurrent(r) => Err(shape_err(
            label,
            format!("{} has more than one output", r.cell.op_type()),
        )),
        Op::GlobalPool(_) => {
            expect_arity(label, node, 1, 1)?;
            match ins[0] {
                &[n, c, _, _] => Ok(vec![n, c, 1, 1]),
                x => Err(shape_err(
                    label,
                    format!("global pooling needs a 4-D NCHW input, got {x:?}"),
                )),
            }
        }
    }
}

/// Output shape of a Conv with inputs `ins` (X, W and optionally B).
fn conv_shape(
    label: &str,
    ins: &[&[usize]],
    strides: [usize; 2],
    pads: [usize; 4],
    dilations: [usize; 2],
    group: usize,
) -> Result<Vec<usize>, ModelError> {
    let (x, w) = (ins[0], ins[1]);
    let (&[n, c, h, wi], &[m, wc, kh, kw]) = (x, w) else {
        return Err(shape_err(
            label,
            format!("Conv needs a 4-D NCHW input X and a 4-D weight W, got X {x:?} and W {w:?}"),
        ));
    };
    if group == 0 || c % group != 0 || m % group != 0 {
        return Err(shape_err(
            label,
            format!("Conv group {group} must divide both C={c} of X {x:?} and M={m} of W {w:?}"),
        ));
    }
    if wc * group != c {
        return Err(shape_err(
            label,
            format!(
                "Conv channels differ: X {x:?} has C={c}, so W {w:?} needs C/group = {} \
                 input channels (group {group}), not {wc}",
                c / group
            ),
        ));
    }
    if let Some(b) = ins.get(2) {
        if *b != [m] {
            return Err(shape_err(
                label,
                format!("Conv bias B {b:?} must be [M] = [{m}] for W {w:?}"),
            ));
        }
    }
    // A graph built in memory never went through the ONNX attribute checks,
    // so the attributes are checked again here rather than trusted.
    if strides.contains(&0) || dilations.contains(&0) {
        return Err(shape_err(
            label,
            format!("Conv strides {strides:?} and dilations {dilations:?} must be >= 1"),
        ));
    }
    let ho = conv_out_dim(
        label,
        "height",
        h,
        (pads[0], pads[2]),
        kh,
        strides[0],
        dilations[0],
    )?;
    let wo = conv_out_dim(
        label,
        "width",
        wi,
        (pads[1], pads[3]),
        kw,
        strides[1],
        dilations[1],
    )?;
    Ok(vec![n, m, ho, wo])
}

/// One spatial output size, `(in + pads - dilation*(k-1) - 1) / stride + 1`.
///
/// Checked arithmetic: the sizes come from untrusted files, and an overflow or
/// a kernel that does not fit must be an error, never a panic or a wrapped
/// size.
fn conv_out_dim(
    label: &str,
    axis: &str,
    input: usize,
    (pad_begin, pad_end): (usize, usize),
    kernel: usize,
    stride: usize,
    dilation: usize,
) -> Result<usize, ModelError> {
    let too_large = || {
        shape_err(
            label,
            format!(
                "Conv {axis}: input {input} with pads ({pad_begin}, {pad_end}), kernel {kernel} \
                 and dilation {dilation} overflows"
            ),
        )
    };
    if kernel == 0 {
        return Err(shape_err(label, format!("Conv kernel {axis} is 0")));
    }
    let padded = input
        .checked_add(pad_begin)
        .and_then(|v| v.checked_add(pad_end))
        .ok_or_else(too_large)?;
    let span = dilation
        .checked_mul(kernel - 1)
        .and_then(|v| v.checked_add(1))
        .ok_or_else(too_large)?;
    if span > padded {
        return Err(shape_err(
            label,
            format!(
                "Conv {axis}: the kernel spans {span} (kernel {kernel}, dilation {dilation}) but \
                 the padded input is only {padded} (input {input}, pads ({pad_begin}, {pad_end}))"
            ),
        ));
    }
    Ok((padded - span) / stride + 1)
}

fn reshape_shape(label: &str, x: &[usize], shape: &[i64]) -> Result<Vec<usize>, ModelError> {
    let total: usize = x.iter().product();
    let mut out = Vec::with_capacity(shape.len());
    let mut infer_at = None;
    for (i, &d) in shape.iter().enumerate() {
        match d {
            0 => match x.get(i) {
                Some(&xd) => out.push(xd),
                None => {
                    return Err(shape_err(
                        label,
                        format!(
                            "Reshape target {shape:?}: 0 at position {i} has no input dim to copy \
                             (input {x:?})"
                        ),
                    ))
                }
            },
            -1 => {
                if infer_at.is_some() {
                    return Err(shape_err(
                        label,
                        format!("Reshape target {shape:?} has more than one -1"),
                    ));
                }
                infer_at = Some(i);
                out.push(1);
            }
            d if d > 0 => out.push(d as usize),
            d => {
                return Err(shape_err(
                    label,
                    format!("Reshape target {shape:?} has invalid dim {d}"),
                ))
            }
        }
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer_at {
        if known == 0 || total % known != 0 {
            return Err(shape_err(
                label,
                format!("Reshape cannot infer -1 in {shape:?} from input {x:?}"),
            ));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(shape_err(
            label,
            format!("Reshape target {shape:?} has {known} elements but input {x:?} has {total}"),
        ));
    }
    Ok(out)
}

impl Graph {
    /// Shapes of every value (inputs, initializers, node outputs), computed
    /// in node order.
    ///
    /// Errors name the node: an input that is not defined before it (the
    /// graph is not topologically sorted, or the name is wrong), a value
    /// defined twice, or shapes that do not fit its op.
    pub fn infer_shapes(&self) -> Result<BTreeMap<String, Vec<usize>>, ModelError> {
        let mut shapes: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (name, t) in &self.initializers {
            if t.shape.iter().product::<usize>() != t.data.len() {
                return Err(ModelError::Tensor {
                    name: name.clone(),
                    message: format!(
                        "initializer shape {:?} does not match its {} values",
                        t.shape,
                        t.data.len()
                    ),
                });
            }
            shapes.insert(name.clone(), t.shape.clone());
        }
        for vi in &self.inputs {
            if shapes.insert(vi.name.clone(), vi.shape.clone()).is_some() {
                return Err(shape_err(
                    &vi.name,
                    "graph input is also an initializer or listed twice".to_string(),
                ));
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let label = node_label(node, i);
            let mut ins: Vec<&[usize]> = Vec::with_capacity(node.inputs.len());
            for name in &node.inputs {
                match shapes.get(name) {
                    Some(s) => ins.push(s),
                    None => {
                        return Err(shape_err(
                            &label,
                            format!(
                                "input '{name}' is not defined before this node \
                                 (unknown value, or nodes not topologically sorted)"
                            ),
                        ))
                    }
                }
            }
            let outs = node_output_shapes(&label, node, &ins)?;
            for (o, out) in node.outputs.iter().zip(outs) {
                if o.is_empty() {
                    continue;
                }
                if shapes.insert(o.clone(), out).is_some() {
                    return Err(shape_err(&label, format!("output '{o}' is defined twice")));
                }
            }
        }
        Ok(shapes)
    }

    /// Checks the whole graph: shapes infer, and every declared output exists
    /// with the shape the nodes produce.
    pub fn validate(&self) -> Result<BTreeMap<String, Vec<usize>>, ModelError> {
        let shapes = self.infer_shapes()?;
        for out in &self.outputs {
            match shapes.get(&out.name) {
                None => {
                    return Err(shape_err(
                        &out.name,
                        "graph output is not produced by any node, input or initializer"
                            .to_string(),
                    ))
                }
                Some(s) if *s != out.shape => {
                    return Err(shape_err(
                        &out.name,
                        format!(
                            "graph output is declared with shape {:?} but the nodes produce {:?}",
                            out.shape, s
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(shapes)
    }

    /// The node producing value `name`, if any.
    pub fn producer(&self, name: &str) -> Option<&Node> {
        self.nodes
            .iter()
            .find(|n| n.outputs.iter().any(|o| o == name))
    }
}

#[cfg(test)]
mod tests;
