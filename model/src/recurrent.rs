//! The recurrent ops (ONNX RNN, GRU and LSTM): their attributes, the checks
//! of their operands' shapes, and their reference semantics.
//!
//! One type, [`Recurrent`], describes all three, because they share almost
//! everything: the directions, the layouts, the optional initial states and
//! sequence lengths, the bias layout `[Wb, Rb]`, the clip. What differs is
//! the cell ([`Cell`]): how many gates a step computes and how they
//! combine. Gate order within W, R and B is ONNX's: `z r h` for GRU,
//! `i o f c` for LSTM, one gate for RNN.
//!
//! `sequence_lens` is an int32 input in ONNX; grim compiles for static
//! shapes, so the importer takes it as a constant and keeps it here.

use crate::error::ModelError;
use crate::tensor::Tensor;

/// The kind of recurrent cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cell {
    /// `h = f(W x + R h + b)`.
    Rnn,
    /// The gated recurrent unit.
    Gru {
        /// Apply the reset gate after the recurrent product of the `h` gate
        /// (`r * (R_h h + Rb_h)`, PyTorch's form) rather than before it
        /// (`R_h (r * h)`, ONNX's default).
        linear_before_reset: bool,
    },
    /// Long short-term memory.
    Lstm {
        /// Couple the forget gate to the input gate: `f = 1 - i`.
        input_forget: bool,
    },
}

impl Cell {
    /// Gates per step (rows of W and R are `gates * hidden_size`).
    pub fn gates(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru { .. } => 3,
            Cell::Lstm { .. } => 4,
        }
    }

    /// The gates' ONNX names, in W/R/B order.
    pub fn gate_names(self) -> &'static [&'static str] {
        match self {
            Cell::Rnn => &["i"],
            Cell::Gru { .. } => &["z", "r", "h"],
            Cell::Lstm { .. } => &["i", "o", "f", "c"],
        }
    }

    /// Activation functions per direction (`f`, `g`, `h` as ONNX names them).
    pub fn activations_per_direction(self) -> usize {
        match self {
            Cell::Rnn => 1,
            Cell::Gru { .. } => 2,
            Cell::Lstm { .. } => 3,
        }
    }

    /// The ONNX op type.
    pub fn op_type(self) -> &'static str {
        match self {
            Cell::Rnn => "RNN",
            Cell::Gru { .. } => "GRU",
            Cell::Lstm { .. } => "LSTM",
        }
    }

    /// The default activations of one direction.
    pub fn default_activations(self) -> Vec<RecurrentActivation> {
        use RecurrentActivation::{Sigmoid, Tanh};
        match self {
            Cell::Rnn => vec![Tanh],
            Cell::Gru { .. } => vec![Sigmoid, Tanh],
            Cell::Lstm { .. } => vec![Sigmoid, Tanh, Tanh],
        }
    }

    /// Results: `Y`, `Y_h` and, for LSTM, `Y_c`.
    pub fn outputs(self) -> usize {
        match self {
            Cell::Lstm { .. } => 3,
            _ => 2,
        }
    }
}

/// Which way the sequence is walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Step 0 first.
    Forward,
    /// The last step first.
    Reverse,
    /// Both, each with its own weights; direction 0 is forward.
    Bidirectional,
}

impl Direction {
    /// `num_directions` of the ONNX shapes.
    pub fn count(self) -> usize {
        match self {
            Direction::Bidirectional => 2,
            _ => 1,
        }
    }

    /// Whether direction `d` (0-based) walks the sequence backwards.
    pub fn reversed(self, d: usize) -> bool {
        match self {
            Direction::Forward => false,
            Direction::Reverse => true,
            Direction::Bidirectional => d == 1,
        }
    }

    /// The ONNX attribute value.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
            Direction::Bidirectional => "bidirectional",
        }
    }
}

/// The activation functions a recurrent op may name (the subset of ONNX's
/// list that grim's element-wise code generates).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RecurrentActivation {
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `max(x, 0)`.
    Relu,
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
}

impl RecurrentActivation {
    /// The function, in f32 (as the compiled code computes it; the
    /// reference evaluates sigmoid and tanh in f64 and rounds).
    pub fn apply(self, x: f32) -> f32 {
        match self {
            RecurrentActivation::Sigmoid => (1.0 / (1.0 + (-(x as f64)).exp())) as f32,
            RecurrentActivation::Tanh => (x as f64).tanh() as f32,
            RecurrentActivation::Relu => x.max(0.0),
            RecurrentActivation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha * x
                }
            }
            RecurrentActivation::HardSigmoid { alpha, beta } => (alpha * x + beta).clamp(0.0, 1.0),
        }
    }
}

/// Which optional operands a recurrent node has, after `X, W, R` (in this
/// order in the node's inputs; `sequence_lens` is an attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Optional {
    /// `B`: `[num_directions, 2 * gates * hidden]`, `Wb` then `Rb`.
    pub bias: bool,
    /// `initial_h`: `[num_directions, batch, hidden]` (layout 1: `[batch, num_directions, hidden]`).
    pub initial_h: bool,
    /// LSTM `initial_c`, shaped as `initial_h`.
    pub initial_c: bool,
    /// LSTM peepholes `P`: `[num_directions, 3 * hidden]`, gates `i o f`.
    pub peepholes: bool,
}

/// An ONNX RNN, GRU or LSTM node's attributes.
#[derive(Debug, Clone, PartialEq)]
pub struct Recurrent {
    /// The cell.
    pub cell: Cell,
    /// The directions.
    pub direction: Direction,
    /// `hidden_size`.
    pub hidden_size: usize,
    /// `layout = 1`: X is `[batch, seq, input]`, Y `[batch, seq, dirs, hidden]`
    /// and the states `[batch, dirs, hidden]`; else `[seq, batch, ...]`,
    /// `[seq, dirs, batch, hidden]` and `[dirs, batch, hidden]`.
    pub batch_major: bool,
    /// Gate pre-activations are clamped to `[-clip, clip]`.
    pub clip: Option<f32>,
    /// The activations, `activations_per_direction` for each direction in turn.
    pub activations: Vec<RecurrentActivation>,
    /// Valid steps per batch entry (each in `1..=seq`); `None` is all of them.
    pub sequence_lens: Option<Vec<usize>>,
    /// Optional operands present.
    pub optional: Optional,
}

/// The shapes a recurrent op sees, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dims {
    /// Sequence length.
    pub seq: usize,
    /// Batch.
    pub batch: usize,
    /// Input features.
    pub input: usize,
    /// Hidden size.
    pub hidden: usize,
    /// Directions.
    pub directions: usize,
}

fn shape_err(label: &str, message: String) -> ModelError {
    ModelError::Shape {
        node: label.to_string(),
        message,
    }
}

impl Recurrent {
    /// Positions of the optional operands in the node's inputs.
    pub fn operand_index(&self, which: OperandKind) -> Option<usize> {
        let o = self.optional;
        let present = [o.bias, o.initial_h, o.initial_c, o.peepholes];
        let slot = which as usize;
        present[slot].then(|| 3 + present[..slot].iter().filter(|p| **p).count())
    }

    /// Number of inputs the node has.
    pub fn input_count(&self) -> usize {
        let o = self.optional;
        3 + [o.bias, o.initial_h, o.initial_c, o.peepholes]
            .iter()
            .filter(|p| **p)
            .count()
    }

    /// The state shape (`initial_h`, `Y_h`, `Y_c`) for `dims`.
    pub fn state_shape(&self, dims: &Dims) -> Vec<usize> {
        if self.batch_major {
            vec![dims.batch, dims.directions, dims.hidden]
        } else {
            vec![dims.directions, dims.batch, dims.hidden]
        }
    }

    /// The shape of `Y`.
    pub fn y_shape(&self, dims: &Dims) -> Vec<usize> {
        if self.batch_major {
            vec![dims.batch, dims.seq, dims.directions, dims.hidden]
        } else {
            vec![dims.seq, dims.directions, dims.batch, dims.hidden]
        }
    }

    /// Checks the operand shapes (in node input order) and returns the dims.
    pub fn dims(&self, label: &str, ins: &[&[usize]]) -> Result<Dims, ModelError> {
        let op = self.cell.op_type();
        if ins.len() != self.input_count() {
            return Err(shape_err(
                label,
                format!(
                    "{op} has {} inputs but its operands say {}",
                    ins.len(),
                    self.input_count()
                ),
            ));
        }
        let (x, w, r) = (ins[0], ins[1], ins[2]);
        let &[a, b, input] = x else {
            return Err(shape_err(
                label,
                format!("{op} needs a 3-D input X, got {x:?}"),
            ));
        };
        let (seq, batch) = if self.batch_major { (b, a) } else { (a, b) };
        let directions = self.direction.count();
        let (gates, hidden) = (self.cell.gates(), self.hidden_size);
        if hidden == 0 || seq == 0 || batch == 0 || input == 0 {
            return Err(shape_err(
                label,
                format!("{op} needs non-empty X and hidden_size >= 1, got X {x:?} and hidden_size {hidden}"),
            ));
        }
        let want_w = [directions, gates * hidden, input];
        if w != want_w {
            return Err(shape_err(
                label,
                format!(
                    "{op} W must be [num_directions, {gates} * hidden_size, input_size] = {want_w:?} \
                     (direction {}, hidden_size {hidden}, X {x:?}), got {w:?}",
                    self.direction.name()
                ),
            ));
        }
        let want_r = [directions, gates * hidden, hidden];
        if r != want_r {
            return Err(shape_err(
                label,
                format!(
                    "{op} R must be [num_directions, {gates} * hidden_size, hidden_size] = {want_r:?}, got {r:?}"
                ),
            ));
        }
        let dims = Dims {
            seq,
            batch,
            input,
            hidden,
            directions,
        };
        let state = self.state_shape(&dims);
        let checks: [(OperandKind, &str, Vec<usize>); 4] = [
            (OperandKind::Bias, "B", vec![directions, 2 * gates * hidden]),
            (OperandKind::InitialH, "initial_h", state.clone()),
            (OperandKind::InitialC, "initial_c", state),
            (OperandKind::Peepholes, "P", vec![directions, 3 * hidden]),
        ];
        for (kind, name, want) in checks {
            if let Some(i) = self.operand_index(kind) {
                if ins[i] != want {
                    return Err(shape_err(
                        label,
                        format!("{op} {name} must be {want:?}, got {:?}", ins[i]),
                    ));
                }
            }
        }
        let lstm = matches!(self.cell, Cell::Lstm { .. });
        if !lstm && (self.optional.initial_c || self.optional.peepholes) {
            return Err(shape_err(
                label,
                format!("{op} has no initial_c or P operand"),
            ));
        }
        if let Some(lens) = &self.sequence_lens {
            if lens.len() != batch || lens.iter().any(|&l| l == 0 || l > seq) {
                return Err(shape_err(
                    label,
                    format!(
                        "{op} sequence_lens must hold {batch} lengths in 1..={seq}, got {lens:?}"
                    ),
                ));
            }
        }
        let want = self.cell.activations_per_direction() * directions;
        if self.activations.len() != want {
            return Err(shape_err(
                label,
                format!(
                    "{op} needs {want} activations ({} per direction), got {}",
                    self.cell.activations_per_direction(),
                    self.activations.len()
                ),
            ));
        }
        Ok(dims)
    }

    /// The output shapes: `Y`, `Y_h` and (LSTM) `Y_c`.
    pub fn output_shapes(
        &self,
        label: &str,
        ins: &[&[usize]],
    ) -> Result<Vec<Vec<usize>>, ModelError> {
        let dims = self.dims(label, ins)?;
        let state = self.state_shape(&dims);
        let mut out = vec![self.y_shape(&dims), state.clone()];
        if self.cell.outputs() == 3 {
            out.push(state);
        }
        Ok(out)
    }

    /// The reference semantics: `Y`, `Y_h` (and `Y_c`) of `ins`, whose
    /// shapes [`Recurrent::dims`] accepted. Positions of `Y` past a batch
    /// entry's sequence length are zero, as onnxruntime writes them.
    pub fn eval(&self, ins: &[&Tensor], dims: &Dims) -> Vec<Tensor> {
        let Dims {
            seq,
            batch,
            input,
            hidden,
            directions,
        } = *dims;
        let gates = self.cell.gates();
        let gh = gates * hidden;
        let operand = |kind| self.operand_index(kind).map(|i| ins[i]);
        let (bias, initial_h, initial_c, peepholes) = (
            operand(OperandKind::Bias),
            operand(OperandKind::InitialH),
            operand(OperandKind::InitialC),
            operand(OperandKind::Peepholes),
        );
        let x_at = |t: usize, b: usize, i: usize| {
            let row = if self.batch_major {
                b * seq + t
            } else {
                t * batch + b
            };
            ins[0].data[row * input + i]
        };
        let state_at = |d: usize, b: usize| {
            if self.batch_major {
                (b * directions + d) * hidden
            } else {
                (d * batch + b) * hidden
            }
        };
        let y_at = |t: usize, d: usize, b: usize| {
            if self.batch_major {
                ((b * seq + t) * directions + d) * hidden
            } else {
                ((t * directions + d) * batch + b) * hidden
            }
        };
        let y_shape = self.y_shape(dims);
        let state_shape = self.state_shape(dims);
        let mut y = vec![0.0f32; y_shape.iter().product()];
        let mut y_h = vec![0.0f32; state_shape.iter().product()];
        let mut y_c = vec![0.0f32; state_shape.iter().product()];
        let clip = |v: f32| match self.clip {
            Some(c) => v.clamp(-c, c),
            None => v,
        };
        let per_dir = self.cell.activations_per_direction();
        for d in 0..directions {
            let w = &ins[1].data[d * gh * input..(d + 1) * gh * input];
            let r = &ins[2].data[d * gh * hidden..(d + 1) * gh * hidden];
            let zeros = vec![0.0f32; 2 * gh];
            let bv = bias.map_or(&zeros[..], |t| &t.data[d * 2 * gh..(d + 1) * 2 * gh]);
            let (wb, rb) = bv.split_at(gh);
            let acts = &self.activations[d * per_dir..(d + 1) * per_dir];
            for b in 0..batch {
                let len = self.sequence_lens.as_ref().map_or(seq, |l| l[b]);
                let mut h: Vec<f32> = match initial_h {
                    Some(t) => t.data[state_at(d, b)..state_at(d, b) + hidden].to_vec(),
                    None => vec![0.0; hidden],
                };
                let mut c: Vec<f32> = match initial_c {
                    Some(t) => t.data[state_at(d, b)..state_at(d, b) + hidden].to_vec(),
                    None => vec![0.0; hidden],
                };
                for s in 0..len {
                    let t = if self.direction.reversed(d) {
                        len - 1 - s
                    } else {
                        s
                    };
                    // Per gate row: W x + Wb, and R h + Rb, kept apart
                    // because GRU's h gate combines them differently.
                    let wx: Vec<f64> = (0..gh)
                        .map(|row| {
                            (0..input)
                                .map(|i| w[row * input + i] as f64 * x_at(t, b, i) as f64)
                                .sum::<f64>()
                                + wb[row] as f64
                        })
                        .collect();
                    let rh_of = |state: &[f32], row: usize| {
                        (0..hidden)
                            .map(|j| r[row * hidden + j] as f64 * state[j] as f64)
                            .sum::<f64>()
                            + rb[row] as f64
                    };
                    let pre = |v: f64| clip(v as f32);
                    let h_new: Vec<f32> = match self.cell {
                        Cell::Rnn => (0..hidden)
                            .map(|j| acts[0].apply(pre(wx[j] + rh_of(&h, j))))
                            .collect(),
                        Cell::Gru {
                            linear_before_reset,
                        } => {
                            let z: Vec<f32> = (0..hidden)
                                .map(|j| acts[0].apply(pre(wx[j] + rh_of(&h, j))))
                                .collect();
                            let rg: Vec<f32> = (0..hidden)
                                .map(|j| acts[0].apply(pre(wx[hidden + j] + rh_of(&h, hidden + j))))
                                .collect();
                            let reset: Vec<f32> = (0..hidden).map(|j| rg[j] * h[j]).collect();
                            (0..hidden)
                                .map(|j| {
                                    let row = 2 * hidden + j;
                                    let recurrent = if linear_before_reset {
                                        rg[j] as f64 * rh_of(&h, row)
                                    } else {
                                        rh_of(&reset, row)
                                    };
                                    let n = acts[1].apply(pre(wx[row] + recurrent));
                                    (1.0 - z[j]) * n + z[j] * h[j]
                                })
                                .collect()
                        }
                        Cell::Lstm { input_forget } => {
                            let p = |gate: usize, j: usize| {
                                peepholes.map_or(0.0, |t| {
                                    t.data[d * 3 * hidden + gate * hidden + j] as f64
                                })
                            };
                            let mut h_new = vec![0.0f32; hidden];
                            for j in 0..hidden {
                                let gate_in = |gate: usize| {
                                    wx[gate * hidden + j] + rh_of(&h, gate * hidden + j)
                                };
                                let i_gate = acts[0].apply(pre(gate_in(0) + p(0, j) * c[j] as f64));
                                let f_gate = if input_forget {
                                    1.0 - i_gate
                                } else {
                                    acts[0].apply(pre(gate_in(2) + p(2, j) * c[j] as f64))
                                };
                                let cand = acts[1].apply(pre(gate_in(3)));
                                let c_new = f_gate * c[j] + i_gate * cand;
                                let o_gate =
                                    acts[0].apply(pre(gate_in(1) + p(1, j) * c_new as f64));
                                h_new[j] = o_gate * acts[2].apply(c_new);
                                c[j] = c_new;
                            }
                            h_new
                        }
                    };
                    h = h_new;
                    let at = y_at(t, d, b);
                    y[at..at + hidden].copy_from_slice(&h);
                }
                let at = state_at(d, b);
                y_h[at..at + hidden].copy_from_slice(&h);
                y_c[at..at + hidden].copy_from_slice(&c);
            }
        }
        let mut out = vec![
            Tensor {
                shape: y_shape,
                data: y,
            },
            Tensor {
                shape: state_shape.clone(),
                data: y_h,
            },
        ];
        if self.cell.outputs() == 3 {
            out.push(Tensor {
                shape: state_shape,
                data: y_c,
            });
        }
        out
    }
}

/// The optional operands, in their input order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OperandKind {
    /// `B`.
    Bias = 0,
    /// `initial_h`.
    InitialH = 1,
    /// `initial_c`.
    InitialC = 2,
    /// `P`.
    Peepholes = 3,
}

mod example;
pub use example::single_node;

#[cfg(test)]
mod tests;
