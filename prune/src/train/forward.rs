//! The model's graph run forward on candle tensors, so that candle's
//! autodiff gives the gradient of a loss with respect to its weights.
//!
//! One function per op family, ONNX semantics as the reference interpreter
//! implements them; shapes come from the graph's own shape inference (the
//! graph is imported at the training batch, so every Reshape target is
//! static and right). Ops whose training form grim does not have (LRN, Pad
//! other than zeros, recurrent ops with `sequence_lens` or `input_forget`,
//! unequal strides or dilations) are refused before training starts, naming
//! the node.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use candle_core::{DType, Device, Tensor, Var, D};
use grim_model::graph::node_label;
use grim_model::pool::{Pool, PoolKind};
use grim_model::{Graph, Node, Op};

use super::recurrent;
use crate::error::{During, PruneError};

/// A graph ready to run forward: its constants as tensors.
pub(crate) struct Net<'g> {
    pub(crate) graph: &'g Graph,
    shapes: BTreeMap<String, Vec<usize>>,
    consts: BTreeMap<String, Tensor>,
}

/// The trained weights, by value name.
pub(crate) type Params = BTreeMap<String, Var>;

/// `t` as a candle tensor.
pub(crate) fn tensor(t: &grim_model::Tensor) -> candle_core::Result<Tensor> {
    Tensor::from_vec(t.data.clone(), t.shape.clone(), &Device::Cpu)
}

impl<'g> Net<'g> {
    /// Checks every node can run forward and backward and converts the
    /// constants that are not in `trainable`.
    pub(crate) fn new(
        graph: &'g Graph,
        path: &Path,
        trainable: &BTreeSet<String>,
    ) -> Result<Net<'g>, PruneError> {
        for (i, node) in graph.nodes.iter().enumerate() {
            if let Some(message) = unsupported(node) {
                return Err(PruneError::Node {
                    path: path.to_path_buf(),
                    node: node_label(node, i),
                    op: node.op.op_type().to_string(),
                    message,
                });
            }
        }
        let shapes = graph.infer_shapes()?;
        let mut consts = BTreeMap::new();
        for (name, t) in &graph.initializers {
            if !trainable.contains(name) {
                consts.insert(name.clone(), tensor(t).during("loading constants")?);
            }
        }
        Ok(Net {
            graph,
            shapes,
            consts,
        })
    }

    /// The graph's first output for `input` (the graph's one runtime input).
    pub(crate) fn forward(&self, params: &Params, input: &Tensor) -> Result<Tensor, PruneError> {
        let mut env: BTreeMap<&str, Tensor> = BTreeMap::new();
        if let Some(vi) = self.graph.inputs.first() {
            env.insert(vi.name.as_str(), input.clone());
        }
        for (i, node) in self.graph.nodes.iter().enumerate() {
            let get = |name: &str| -> Option<Tensor> {
                env.get(name)
                    .cloned()
                    .or_else(|| params.get(name).map(|v| v.as_tensor().clone()))
                    .or_else(|| self.consts.get(name).cloned())
            };
            let ins: Vec<Option<Tensor>> = node
                .inputs
                .iter()
                .map(|n| if n.is_empty() { None } else { get(n) })
                .collect();
            let label = node_label(node, i);
            let outs = self
                .node(node, &ins)
                .during(format!("running node '{label}' ({})", node.op.op_type()))?;
            for (name, t) in node.outputs.iter().zip(outs) {
                if !name.is_empty() {
                    env.insert(name.as_str(), t);
                }
            }
        }
        let out = &self
            .graph
            .outputs
            .first()
            .ok_or_else(|| PruneError::Options("the model has no graph output".into()))?
            .name;
        env.remove(out.as_str())
            .or_else(|| params.get(out).map(|v| v.as_tensor().clone()))
            .ok_or_else(|| PruneError::Options(format!("graph output '{out}' is not computed")))
    }

    fn out_shape(&self, node: &Node) -> Vec<usize> {
        self.shapes
            .get(&node.outputs[0])
            .cloned()
            .unwrap_or_default()
    }

    fn node(&self, node: &Node, ins: &[Option<Tensor>]) -> candle_core::Result<Vec<Tensor>> {
        let arg = |i: usize| -> candle_core::Result<&Tensor> {
            ins.get(i)
                .and_then(|t| t.as_ref())
                .ok_or_else(|| candle_core::Error::Msg(format!("input {i} is missing")))
        };
        let one = |t: Tensor| Ok(vec![t]);
        match &node.op {
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                let a = if *trans_a {
                    arg(0)?.t()?
                } else {
                    arg(0)?.clone()
                };
                let b = if *trans_b {
                    arg(1)?.t()?
                } else {
                    arg(1)?.clone()
                };
                let mut y = a.matmul(&b)?;
                if *alpha != 1.0 {
                    y = y.affine(*alpha as f64, 0.0)?;
                }
                if let Some(Some(c)) = ins.get(2) {
                    let c = if *beta != 1.0 {
                        c.affine(*beta as f64, 0.0)?
                    } else {
                        c.clone()
                    };
                    y = y.broadcast_add(&c)?;
                }
                one(y)
            }
            Op::MatMul => {
                let (a, b) = (arg(0)?, arg(1)?);
                let a2 = if a.rank() == 1 {
                    a.unsqueeze(0)?
                } else {
                    a.clone()
                };
                let b2 = if b.rank() == 1 {
                    b.unsqueeze(1)?
                } else {
                    b.clone()
                };
                let y = a2.broadcast_matmul(&b2)?;
                one(y.reshape(self.out_shape(node))?)
            }
            Op::Add => one(arg(0)?.broadcast_add(arg(1)?)?),
            Op::Sub => one(arg(0)?.broadcast_sub(arg(1)?)?),
            Op::Mul => one(arg(0)?.broadcast_mul(arg(1)?)?),
            Op::Div => one(arg(0)?.broadcast_div(arg(1)?)?),
            Op::Max => one(arg(0)?.broadcast_maximum(arg(1)?)?),
            Op::Min => one(arg(0)?.broadcast_minimum(arg(1)?)?),
            Op::Relu => one(arg(0)?.relu()?),
            Op::Sigmoid => one(candle_nn::ops::sigmoid(arg(0)?)?),
            Op::Tanh => one(arg(0)?.tanh()?),
            Op::LeakyRelu { alpha } => one(candle_nn::ops::leaky_relu(arg(0)?, *alpha as f64)?),
            Op::HardSigmoid { alpha, beta } => one(hard_sigmoid(arg(0)?, *alpha, *beta)?),
            Op::HardSwish => {
                let x = arg(0)?;
                one(x.mul(&hard_sigmoid(x, 1.0 / 6.0, 0.5)?)?)
            }
            Op::Clip { min, max } => {
                let mut x = arg(0)?.clone();
                if let Some(lo) = min {
                    x = x.maximum(*lo)?;
                }
                if let Some(hi) = max {
                    x = x.minimum(*hi)?;
                }
                one(x)
            }
            Op::Transpose { perm } => one(arg(0)?.permute(perm.clone())?.contiguous()?),
            Op::Flatten { .. } | Op::Reshape { .. } => {
                one(arg(0)?.contiguous()?.reshape(self.out_shape(node))?)
            }
            Op::Identity => one(arg(0)?.clone()),
            Op::Conv {
                strides,
                pads,
                dilations,
                group,
            } => {
                let mut x = arg(0)?.clone();
                let [top, left, bottom, right] = *pads;
                let same = top == bottom && left == right && top == left;
                let padding = if same { top } else { 0 };
                if !same {
                    x = x
                        .pad_with_zeros(2, top, bottom)?
                        .pad_with_zeros(3, left, right)?;
                }
                let mut y = x.conv2d(arg(1)?, padding, strides[0], dilations[0], *group)?;
                if let Some(Some(b)) = ins.get(2) {
                    y = y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?;
                }
                one(y)
            }
            Op::BatchNormalization { epsilon } => {
                let x = arg(0)?;
                let c = x.dims()[1];
                let mut shape = vec![1; x.rank()];
                shape[1] = c;
                let per = |t: &Tensor| t.reshape(shape.clone());
                let (scale, bias, mean, var) =
                    (per(arg(1)?)?, per(arg(2)?)?, per(arg(3)?)?, per(arg(4)?)?);
                let inv = var.affine(1.0, *epsilon as f64)?.sqrt()?.recip()?;
                one(x
                    .broadcast_sub(&mean)?
                    .broadcast_mul(&inv.mul(&scale)?)?
                    .broadcast_add(&bias)?)
            }
            Op::Pool(p) => one(pool(arg(0)?, p, &self.out_shape(node))?),
            Op::GlobalPool(kind) => {
                let x = arg(0)?.flatten_from(2)?;
                let y = match kind {
                    PoolKind::Average => x.mean_keepdim(2)?,
                    PoolKind::Max => x.max_keepdim(2)?,
                };
                one(y.unsqueeze(3)?)
            }
            Op::Softmax { axis, axis_end } => {
                let x = arg(0)?;
                let dims = x.dims().to_vec();
                let pre: usize = dims[..*axis].iter().product();
                let red: usize = dims[*axis..*axis_end].iter().product();
                let y = candle_nn::ops::softmax(&x.reshape((pre, red, ()))?, 1)?;
                one(y.reshape(dims)?)
            }
            Op::Concat { axis } => {
                let ts: Vec<&Tensor> = ins.iter().flatten().collect();
                one(Tensor::cat(&ts, *axis)?)
            }
            Op::Pad { pads, .. } => {
                let mut x = arg(0)?.clone();
                let r = x.rank();
                for d in 0..r {
                    if pads[d] + pads[r + d] > 0 {
                        x = x.pad_with_zeros(d, pads[d], pads[r + d])?;
                    }
                }
                one(x)
            }
            Op::Recurrent(r) => recurrent::forward(r, ins),
            Op::Lrn { .. } => Err(candle_core::Error::Msg("LRN cannot be trained".into())),
        }
    }
}

fn hard_sigmoid(x: &Tensor, alpha: f32, beta: f32) -> candle_core::Result<Tensor> {
    x.affine(alpha as f64, beta as f64)?.clamp(0f32, 1f32)
}

/// Why `node` cannot be trained, if it cannot.
fn unsupported(node: &Node) -> Option<String> {
    match &node.op {
        Op::Lrn { .. } => Some("LRN has no training form in grim prune".into()),
        Op::Pad { mode, value, .. } => {
            let zeros = matches!(mode, grim_model::pad::PadMode::Constant) && *value == 0.0;
            (!zeros).then(|| "only zero padding (constant mode, value 0) can be trained".into())
        }
        Op::Conv {
            strides, dilations, ..
        } => (strides[0] != strides[1] || dilations[0] != dilations[1])
            .then(|| format!("strides {strides:?} and dilations {dilations:?} must each be equal in H and W to train")),
        Op::Pool(p) => (p.dilations != [1, 1])
            .then(|| format!("pool dilations {:?} cannot be trained", p.dilations)),
        Op::Recurrent(r) => recurrent::unsupported(r),
        _ => None,
    }
}

/// MaxPool / AveragePool with ONNX padding and `ceil_mode`: the input is
/// padded (max: with the lowest float, so padding never wins; average:
/// with zeros, and with `count_include_pad = 0` divided by the pooled
/// count of real positions) to exactly the extent the output needs.
fn pool(x: &Tensor, p: &Pool, out: &[usize]) -> candle_core::Result<Tensor> {
    let (h, w) = (x.dims()[2], x.dims()[3]);
    let need = |axis: usize, size: usize| {
        let span = p.kernel[axis];
        let o = out[2 + axis];
        let total = (o - 1) * p.strides[axis] + span;
        let begin = p.pads[axis];
        (begin, total.saturating_sub(size + begin))
    };
    let ((t, b), (l, r)) = (need(0, h), need(1, w));
    let pad = |x: &Tensor, fill: f32| -> candle_core::Result<Tensor> {
        let mut y = x.clone();
        for (dim, before, after) in [(2, t, b), (3, l, r)] {
            let mut parts = Vec::new();
            let mut shape = y.dims().to_vec();
            if before > 0 {
                shape[dim] = before;
                parts.push(Tensor::full(fill, shape.clone(), x.device())?);
            }
            parts.push(y.clone());
            if after > 0 {
                shape[dim] = after;
                parts.push(Tensor::full(fill, shape.clone(), x.device())?);
            }
            if parts.len() > 1 {
                y = Tensor::cat(&parts, dim)?;
            }
        }
        Ok(y)
    };
    let (k, s) = ((p.kernel[0], p.kernel[1]), (p.strides[0], p.strides[1]));
    let y = match p.kind {
        PoolKind::Max => pad(x, f32::MIN)?.max_pool2d_with_stride(k, s)?,
        PoolKind::Average => {
            let sum = pad(x, 0.0)?.avg_pool2d_with_stride(k, s)?;
            if p.count_include_pad && (b, r) == (p.pads[2], p.pads[3]) {
                sum
            } else {
                // Divide by the real (or, counting pads, the declared-pad)
                // positions in each window instead of the whole window.
                // Ones over the real image, or (counting pads) over the
                // image with its declared pads; zeros over the extra
                // padding ceil_mode adds, which ONNX never counts.
                let ones = if p.count_include_pad {
                    let (hh, ww) = (h + p.pads[0] + p.pads[2], w + p.pads[1] + p.pads[3]);
                    Tensor::ones((1, 1, hh, ww), DType::F32, x.device())?
                } else {
                    Tensor::ones((1, 1, h, w), DType::F32, x.device())?
                };
                let (ot, ol) = if p.count_include_pad { (0, 0) } else { (t, l) };
                let (hh, ww) = (ones.dims()[2], ones.dims()[3]);
                let count = ones
                    .pad_with_zeros(2, ot, (t + h + b).saturating_sub(ot + hh))?
                    .pad_with_zeros(3, ol, (l + w + r).saturating_sub(ol + ww))?
                    .avg_pool2d_with_stride(k, s)?;
                sum.broadcast_div(&count)?
            }
        }
    };
    Ok(y)
}

/// The index of the largest of each row of `[batch, classes]` logits.
pub(crate) fn argmax(logits: &Tensor) -> candle_core::Result<Vec<u32>> {
    logits.argmax(D::Minus1)?.to_vec1::<u32>()
}
