//! GRU, LSTM and RNN run forward through time on candle tensors, as ONNX
//! defines them (gate order `z r h`, `i o f c`), so that backpropagation
//! through time is candle's autodiff over the unrolled steps.
//!
//! The input projection of all steps is one product (as grim's compiled
//! code does it); each step then adds `h R^T`. `sequence_lens` shorter than
//! the sequence and LSTM's `input_forget` are refused for training.

use candle_core::{Device, Tensor};
use grim_model::recurrent::{Cell, OperandKind, Recurrent, RecurrentActivation};

/// Why `r` cannot be trained, if it cannot.
pub(super) fn unsupported(r: &Recurrent) -> Option<String> {
    if r.sequence_lens.is_some() {
        return Some("sequence_lens cannot be trained (pad and mask the data instead)".into());
    }
    if matches!(r.cell, Cell::Lstm { input_forget: true }) {
        return Some("input_forget = 1 cannot be trained".into());
    }
    None
}

fn act(a: RecurrentActivation, x: &Tensor) -> candle_core::Result<Tensor> {
    match a {
        RecurrentActivation::Sigmoid => candle_nn::ops::sigmoid(x),
        RecurrentActivation::Tanh => x.tanh(),
        RecurrentActivation::Relu => x.relu(),
        RecurrentActivation::LeakyRelu { alpha } => candle_nn::ops::leaky_relu(x, alpha as f64),
        RecurrentActivation::HardSigmoid { alpha, beta } => {
            x.affine(alpha as f64, beta as f64)?.clamp(0f32, 1f32)
        }
    }
}

/// Outputs `Y`, `Y_h` (and `Y_c`) of the node for inputs `ins`.
pub(super) fn forward(r: &Recurrent, ins: &[Option<Tensor>]) -> candle_core::Result<Vec<Tensor>> {
    let missing = || candle_core::Error::Msg("recurrent operand missing".into());
    let operand = |k: OperandKind| -> Option<&Tensor> {
        r.operand_index(k)
            .and_then(|i| ins.get(i))
            .and_then(|t| t.as_ref())
    };
    let mut x = ins.first().and_then(|t| t.clone()).ok_or_else(missing)?;
    if r.batch_major {
        x = x.transpose(0, 1)?.contiguous()?;
    }
    let (seq, batch, input) = x.dims3()?;
    let w = ins.get(1).and_then(|t| t.as_ref()).ok_or_else(missing)?;
    let rw = ins.get(2).and_then(|t| t.as_ref()).ok_or_else(missing)?;
    let (gates, hidden) = (r.cell.gates(), r.hidden_size);
    let gh = gates * hidden;
    let per_dir = r.cell.activations_per_direction();
    let state = |t: Option<&Tensor>| -> candle_core::Result<Option<Tensor>> {
        Ok(match t {
            Some(t) if r.batch_major => Some(t.transpose(0, 1)?.contiguous()?),
            Some(t) => Some(t.clone()),
            None => None,
        })
    };
    let (h0, c0) = (
        state(operand(OperandKind::InitialH))?,
        state(operand(OperandKind::InitialC))?,
    );
    let clip = |t: Tensor| -> candle_core::Result<Tensor> {
        match r.clip {
            Some(c) => t.clamp(-c, c),
            None => Ok(t),
        }
    };
    let mut ys = Vec::new();
    let mut hs = Vec::new();
    let mut cs = Vec::new();
    for d in 0..r.direction.count() {
        let acts = &r.activations[d * per_dir..(d + 1) * per_dir];
        let (wd, rd) = (w.get(d)?, rw.get(d)?);
        let (wb, rb) = match operand(OperandKind::Bias) {
            Some(b) => {
                let b = b.get(d)?;
                (b.narrow(0, 0, gh)?, b.narrow(0, gh, gh)?)
            }
            None => {
                let z = Tensor::zeros(gh, candle_core::DType::F32, &Device::Cpu)?;
                (z.clone(), z)
            }
        };
        // All steps' input projections as one product: [seq * batch, G H].
        let xw = x
            .reshape((seq * batch, input))?
            .matmul(&wd.t()?)?
            .broadcast_add(&wb)?
            .reshape((seq, batch, gh))?;
        let zeros = || Tensor::zeros((batch, hidden), candle_core::DType::F32, &Device::Cpu);
        let mut h = match &h0 {
            Some(t) => t.get(d)?,
            None => zeros()?,
        };
        let mut c = match &c0 {
            Some(t) => t.get(d)?,
            None => zeros()?,
        };
        let peep = match operand(OperandKind::Peepholes) {
            Some(p) => Some(p.get(d)?),
            None => None,
        };
        let gate = |t: &Tensor, g: usize| t.narrow(1, g * hidden, hidden);
        let mut out = vec![None; seq];
        for step in 0..seq {
            let t = if r.direction.reversed(d) {
                seq - 1 - step
            } else {
                step
            };
            let xt = xw.get(t)?;
            match r.cell {
                Cell::Rnn => {
                    let pre = xt.add(&h.matmul(&rd.t()?)?.broadcast_add(&rb)?)?;
                    h = act(acts[0], &clip(pre)?)?;
                }
                Cell::Gru {
                    linear_before_reset,
                } => {
                    let rz = rd.narrow(0, 0, 2 * hidden)?;
                    let rh = rd.narrow(0, 2 * hidden, hidden)?;
                    let hzr = h
                        .matmul(&rz.t()?)?
                        .broadcast_add(&rb.narrow(0, 0, 2 * hidden)?)?;
                    let rbh = rb.narrow(0, 2 * hidden, hidden)?;
                    let z = act(acts[0], &clip(gate(&xt, 0)?.add(&gate(&hzr, 0)?)?)?)?;
                    let rr = act(acts[0], &clip(gate(&xt, 1)?.add(&gate(&hzr, 1)?)?)?)?;
                    let hh = if linear_before_reset {
                        rr.mul(&h.matmul(&rh.t()?)?.broadcast_add(&rbh)?)?
                    } else {
                        rr.mul(&h)?.matmul(&rh.t()?)?.broadcast_add(&rbh)?
                    };
                    let cand = act(acts[1], &clip(gate(&xt, 2)?.add(&hh)?)?)?;
                    // h = (1 - z) * cand + z * h = cand + z * (h - cand)
                    h = cand.add(&z.mul(&h.sub(&cand)?)?)?;
                }
                Cell::Lstm { .. } => {
                    let pre = xt.add(&h.matmul(&rd.t()?)?.broadcast_add(&rb)?)?;
                    let peep_of = |k: usize, c: &Tensor| -> candle_core::Result<Tensor> {
                        match &peep {
                            Some(p) => c.broadcast_mul(&p.narrow(0, k * hidden, hidden)?),
                            None => c.zeros_like(),
                        }
                    };
                    let i = act(acts[0], &clip(gate(&pre, 0)?.add(&peep_of(0, &c)?)?)?)?;
                    let f = act(acts[0], &clip(gate(&pre, 2)?.add(&peep_of(2, &c)?)?)?)?;
                    let cand = act(acts[1], &clip(gate(&pre, 3)?)?)?;
                    c = f.mul(&c)?.add(&i.mul(&cand)?)?;
                    let o = act(acts[0], &clip(gate(&pre, 1)?.add(&peep_of(1, &c)?)?)?)?;
                    h = o.mul(&act(acts[2], &c)?)?;
                }
            }
            out[t] = Some(h.clone());
        }
        let steps: Vec<Tensor> = out.into_iter().flatten().collect();
        ys.push(Tensor::stack(&steps, 0)?); // [seq, batch, hidden]
        hs.push(h);
        cs.push(c);
    }
    // Y: [seq, dirs, batch, hidden]; states [dirs, batch, hidden].
    let mut y = Tensor::stack(&ys, 1)?;
    let mut yh = Tensor::stack(&hs, 0)?;
    let mut yc = Tensor::stack(&cs, 0)?;
    if r.batch_major {
        y = y.permute((2, 0, 1, 3))?.contiguous()?;
        yh = yh.transpose(0, 1)?.contiguous()?;
        yc = yc.transpose(0, 1)?.contiguous()?;
    }
    let mut outs = vec![y, yh];
    if matches!(r.cell, Cell::Lstm { .. }) {
        outs.push(yc);
    }
    Ok(outs)
}
