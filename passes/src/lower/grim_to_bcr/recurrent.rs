//! `grim.recurrent` (ONNX RNN, GRU, LSTM) to a time loop around the
//! kernels the products already have.
//!
//! Per direction:
//!
//! 1. **Input projections of every step at once**: `XP = W X^T` over all
//!    `T * B` columns (X transposed once into `[I, T*B]`), one matrix
//!    product (`bcr.spmm`, or `bcr.gemm` on row panels), its accumulator
//!    starting from `Wb + Rb` (the part of `Rb` that a step adds as it
//!    is; a GRU with `linear_before_reset` keeps `Rb_h` for the step).
//! 2. **The recurrence**, `scf.for` over the steps: the recurrent product
//!    `G = R h` over all gates (`bcr.spmv` / the vector `bcr.gemm` for
//!    batch 1, the matrix forms for a batch), then one loop over the
//!    hidden units and batch entries that combines `XP`, `G`, the state
//!    and the gates, writes the new state and its row of `Y`. A GRU
//!    without `linear_before_reset` needs `r * h` before its `h` gate's
//!    product: `R_zr h`, the reset loop, then `R_h (r * h)`.
//!
//! The state `h` (and an LSTM's `c`) lives in `[H, B]` scratch buffers, so
//! a step's product reads it in place and it stays in cache; `Y_h`/`Y_c`
//! are copied from them at the end. With `sequence_lens`, entry `b` stops
//! after its length: its state stops changing, its reverse walk starts at
//! its last valid step, and `Y` past the length is zero (onnxruntime's
//! convention, which the reference follows).
//!
//! The kernel of W and R is dense (row panels) unless the op says
//! `kernel = "bcr"`, then BCRC with the op's block (`block_rows`,
//! `block_cols`) or the pass's: each direction's W and R (a GRU's `R_zr`
//! and `R_h` without `linear_before_reset`) is its own weight, named
//! `<node>.W`, `<node>.R` (`.forward`/`.reverse` when bidirectional), or,
//! when the block's height does not divide the hidden size, one weight per
//! gate ([`units`]). A weight computed at run time is packed into row
//! panels per direction.
//!
//! Sigmoid and tanh in the gates are inline polynomial code
//! (`fast_math.rs`, error bounds there), not libm calls.
//!
//! Not done here: threads across a step's rows with one barrier per step
//! (each product's own parallel loop runs per step), vectorised gates
//! (the gate loop is scalar: its `XP` reads are strided by `T * B`).

use super::{values::Tensor, weights::Reads, Lowering};
use crate::{
    builder::{Builder, V},
    op_error, PassError,
};
use grim_dialects::{bcr, grim, grim::Activation, shape, weights};
use grim_model::recurrent::{Cell, Recurrent, RecurrentActivation};
use melior::ir::{
    operation::{OperationLike, OperationRef},
    ValueLike,
};

/// The temporaries of a `grim.recurrent`, in order (each at least one float).
pub(super) fn temporaries(r: &Recurrent, d: &grim_model::recurrent::Dims) -> Vec<Vec<i64>> {
    let (t, b, i, h) = (
        d.seq as i64,
        d.batch as i64,
        d.input as i64,
        d.hidden as i64,
    );
    let gh = r.cell.gates() as i64 * h;
    let n = t * b;
    vec![
        vec![i, n],                           // XT: X transposed
        vec![gh, n],                          // XP: input projections of one direction
        vec![h, b],                           // the state h
        vec![h, b],                           // an LSTM's state c
        vec![gh, b],                          // G: one step's recurrent product
        vec![h, b],                           // a GRU's r * h
        vec![bcr::pack_panels_floats(gh, i)], // W's panels (a run-time W)
        vec![bcr::pack_panels_floats(gh, h)], // R's panels (a run-time R)
        vec![bcr::pack_panels_floats(h, h)],  // R_h's panels (GRU, linear_before_reset = 0)
    ]
}

const XT: usize = 0;
const XP: usize = 1;
const STATE_H: usize = 2;
const STATE_C: usize = 3;
const GATES: usize = 4;
const RESET: usize = 5;
const W_PANELS: usize = 6;
const R_PANELS: usize = 7;
const RH_PANELS: usize = 8;

fn activation(a: RecurrentActivation) -> Activation {
    match a {
        RecurrentActivation::Sigmoid => Activation::Sigmoid,
        RecurrentActivation::Tanh => Activation::Tanh,
        RecurrentActivation::Relu => Activation::Relu,
        RecurrentActivation::LeakyRelu { alpha } => Activation::LeakyRelu { alpha },
        RecurrentActivation::HardSigmoid { alpha, beta } => Activation::HardSigmoid { alpha, beta },
    }
}

/// A `grim.recurrent`'s attributes and checked dims.
pub fn describe(op: &OperationRef) -> Result<(Recurrent, grim_model::recurrent::Dims), PassError> {
    let r = grim::recurrent_attrs(op).map_err(|e| op_error(op, e))?;
    let mut ins = Vec::new();
    for index in 0..op.operand_count() {
        let value = op.operand(index).map_err(|e| op_error(op, e))?;
        let dims = shape::static_shape(value.r#type())
            .ok_or_else(|| op_error(op, "needs static shapes"))?;
        ins.push(dims.iter().map(|&d| d as usize).collect::<Vec<usize>>());
    }
    let refs: Vec<&[usize]> = ins.iter().map(Vec::as_slice).collect();
    let dims = r.dims("", &refs).map_err(|e| op_error(op, e))?;
    Ok((r, dims))
}

/// Which of a recurrent op's weights a unit's rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Matrix {
    /// The input weights W.
    W,
    /// The recurrent weights R.
    R,
}

/// One weight matrix of a recurrent op as the lowering multiplies it: its
/// own named weight (the BCR unit of the LR file and of `grimc inspect`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// `<node>.W`, `<node>.R`, a GRU's `<node>.R.zr` and `<node>.R.h`
    /// without `linear_before_reset`, or per gate `<node>.W.<gate>`,
    /// `<node>.R.<gate>`; `.forward`/`.reverse` after it when bidirectional.
    pub name: String,
    /// W or R.
    pub source: Matrix,
    /// The gates it holds, in row order (ONNX's names).
    pub gates: Vec<&'static str>,
    /// Its first row in its direction's `[G*H, K]` matrix.
    pub first_row: usize,
    /// `[rows, cols]`.
    pub matrix: [usize; 2],
}

/// Whether a recurrent op's BCR units are its gates, one by one: when
/// `block_rows` does not divide the hidden size, stacked gates would share
/// blocks across their boundaries (an LSTM of 650 units), whose kept rows
/// are the union of two gates' and whose counts are not uniform. Otherwise
/// a direction's gates are walked together (BCR.md allows it), one product
/// per step instead of one per gate.
pub fn per_gate(hidden: usize, block_rows: usize) -> bool {
    block_rows > 0 && hidden % block_rows != 0
}

/// The units of direction `d` of a recurrent op named `node`: W, then R
/// (or `R_zr`, `R_h`), stacked or, with `gate_by_gate`, one per gate
/// ([`per_gate`]).
pub fn units(
    r: &Recurrent,
    dims: &grim_model::recurrent::Dims,
    node: &str,
    d: usize,
    gate_by_gate: bool,
) -> Vec<Unit> {
    let suffix = match (dims.directions, r.direction.reversed(d)) {
        (1, _) => "",
        (_, true) => ".reverse",
        (_, false) => ".forward",
    };
    let names = r.cell.gate_names();
    let h = dims.hidden;
    let unit = |source: Matrix, part: &str, gates: std::ops::Range<usize>, cols: usize| {
        let matrix = match source {
            Matrix::W => "W",
            Matrix::R => "R",
        };
        Unit {
            name: format!("{node}.{matrix}{part}{suffix}"),
            source,
            gates: names[gates.clone()].to_vec(),
            first_row: gates.start * h,
            matrix: [gates.len() * h, cols],
        }
    };
    if gate_by_gate {
        let mut all = Vec::new();
        for (source, cols) in [(Matrix::W, dims.input), (Matrix::R, h)] {
            for (g, gate) in names.iter().enumerate() {
                all.push(unit(source, &format!(".{gate}"), g..g + 1, cols));
            }
        }
        return all;
    }
    let gates = names.len();
    match r.cell {
        Cell::Gru {
            linear_before_reset: false,
        } => vec![
            unit(Matrix::W, "", 0..gates, dims.input),
            unit(Matrix::R, ".zr", 0..2, h),
            unit(Matrix::R, ".h", 2..3, h),
        ],
        _ => vec![
            unit(Matrix::W, "", 0..gates, dims.input),
            unit(Matrix::R, "", 0..gates, h),
        ],
    }
}

/// A weight as the step's kernels read it: a constant's slice (its own
/// named weight) or the rows of a run-time tensor packed into panels.
enum Source<'c> {
    Constant(Vec<f32>),
    Runtime(Tensor<'c>),
}

impl<'c> Lowering<'c, '_> {
    pub(super) fn recurrent(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let (r, dims) = describe(&op)?;
        let operands =
            grim::recurrent_operands(&op).ok_or_else(|| op_error(&op, "has malformed operands"))?;
        let (t_len, batch, input, hidden, directions) = (
            dims.seq as i64,
            dims.batch as i64,
            dims.input as i64,
            dims.hidden as i64,
            dims.directions as i64,
        );
        let gates = r.cell.gates() as i64;
        let gh = gates * hidden;
        let n = t_len * batch;
        let node = crate::graph::apply_lr::node_name(&op).unwrap_or_else(|| "recurrent".into());
        let dense = grim_dialects::attr::string(&op, grim::KERNEL_ATTR).as_deref()
            != Some(grim::KERNEL_BCR);
        let temps = temporaries(&r, &dims);
        let temp = |index: usize| -> Result<Tensor<'c>, PassError> {
            self.temporary(&op, index, &temps[index])
        };
        let (xt, xp, hs, cs, gs, rh) = (
            temp(XT)?,
            temp(XP)?,
            temp(STATE_H)?,
            temp(STATE_C)?,
            temp(GATES)?,
            temp(RESET)?,
        );
        let x = self.value(&op, operands.input, 0)?;
        let source = |lowering: &Self, value, index| -> Result<Source<'c>, PassError> {
            Ok(match lowering.value(&op, value, index)? {
                Tensor::Weight { value, .. } => Source::Constant(
                    weights::read(value).ok_or_else(|| op_error(&op, "has unreadable weights"))?,
                ),
                runtime => Source::Runtime(runtime),
            })
        };
        let w = source(self, operands.weight, 1)?;
        let rr = source(self, operands.recurrence, 2)?;
        let optional = |lowering: &mut Self, value: Option<melior::ir::Value>, index| {
            value
                .map(|v| -> Result<V<'c>, PassError> {
                    let tensor = lowering.value(&op, v, index)?;
                    Ok(lowering.flat_read(b, &tensor))
                })
                .transpose()
        };
        let bias = optional(self, operands.bias, 3)?;
        let initial_h = optional(self, operands.initial_h, 4)?;
        let initial_c = optional(self, operands.initial_c, 5)?;
        let peepholes = optional(self, operands.peepholes, 6)?;

        let y_shape: Vec<i64> = r.y_shape(&dims).iter().map(|&d| d as i64).collect();
        let state_shape: Vec<i64> = r.state_shape(&dims).iter().map(|&d| d as i64).collect();
        let y = self.result_at(&op, 0, &y_shape)?;
        let y_h = self.result_at(&op, 1, &state_shape)?;
        let y_c = match r.cell {
            Cell::Lstm { .. } => Some(self.result_at(&op, 2, &state_shape)?),
            _ => None,
        };
        let y_flat = self.flat_view(b, &y);
        let (hs_flat, cs_flat, gs_flat, xp_flat, rh_flat) = (
            self.flat_view(b, &hs),
            self.flat_view(b, &cs),
            self.flat_view(b, &gs),
            self.flat_view(b, &xp),
            self.flat_view(b, &rh),
        );
        // Kernel views: vectors when a dim is 1.
        let shaped = |lowering: &Self, tensor: &Tensor<'c>, rows: i64, cols: i64, start: i64| {
            if cols == 1 {
                lowering.view_at(b, tensor, start, &[rows])
            } else {
                lowering.view_at(b, tensor, start, &[rows, cols])
            }
        };

        // X^T [I, T*B] once for both directions (X itself when it is one row).
        let x_columns = if n == 1 {
            self.read(b, &x, &[input])
        } else {
            let rows = self.read(b, &x, &[n, input]);
            let at = self.view(b, &xt.reshaped(vec![input, n]));
            super::transpose::transpose(b, rows, at, n, input, self.lanes);
            at
        };
        let lens = r.sequence_lens.clone();
        if lens
            .as_ref()
            .is_some_and(|l| l.iter().any(|&l| l < dims.seq))
        {
            let zero = b.f32(0.0);
            super::elementwise::elementwise_loop(b, shape::numel(&y_shape), &|b, i| {
                b.store(zero, y_flat, &[i]);
            });
        }
        let per_direction = r.cell.activations_per_direction();
        let lbr = matches!(
            r.cell,
            Cell::Gru {
                linear_before_reset: true
            }
        );
        let split_reset = matches!(
            r.cell,
            Cell::Gru {
                linear_before_reset: false
            }
        );
        let constants = matches!((&w, &rr), (Source::Constant(_), Source::Constant(_)));
        let block_rows =
            grim_dialects::attr::int(&op, grim::BLOCK_ATTR).unwrap_or(self.pass.block.0);
        let gate_by_gate = !dense && constants && per_gate(dims.hidden, block_rows as usize);
        for d in 0..directions {
            let reversed = r.direction.reversed(d as usize);
            let units = units(&r, &dims, &node, d as usize, gate_by_gate);
            let acts: Vec<Activation> = r.activations
                [d as usize * per_direction..(d as usize + 1) * per_direction]
                .iter()
                .map(|a| activation(*a))
                .collect();
            // The weights of this direction: W's units, R's before the
            // reset (all of R but a split GRU's h gate), R's after it.
            let r_rows = if split_reset { 2 * hidden } else { gh };
            let mut w_units = Vec::new();
            let mut r_before = Vec::new();
            let mut r_after = Vec::new();
            for unit in &units {
                let (rows, cols) = (unit.matrix[0] as i64, unit.matrix[1] as i64);
                let first = unit.first_row as i64;
                let (source, start, reads, panels) = match unit.source {
                    Matrix::W => (
                        &w,
                        d * gh * input + first * input,
                        Reads::of_columns(n),
                        W_PANELS,
                    ),
                    Matrix::R => (
                        &rr,
                        d * gh * hidden + first * hidden,
                        Reads::of_columns(batch),
                        if split_reset && first >= 2 * hidden {
                            RH_PANELS
                        } else {
                            R_PANELS
                        },
                    ),
                };
                let weights = self.direction_weights(
                    b,
                    &op,
                    source,
                    &unit.name,
                    start,
                    (rows, cols),
                    reads,
                    dense,
                    panels,
                )?;
                match unit.source {
                    Matrix::W => w_units.push((weights, first, rows)),
                    Matrix::R if first < r_rows => r_before.push((weights, first, rows)),
                    Matrix::R => r_after.push((weights, first, rows)),
                }
            }
            // A GRU with linear_before_reset adds Rb_h in the step (inside
            // r * (R_h h + Rb_h)); every other Rb row starts the projections.
            // XP = Wb + Rb (foldable rows), then += W X^T.
            let base = d * 2 * gh;
            b.for_range(0, gh, 1, &[], |b, row, _| {
                let start = match bias {
                    Some(bias) => {
                        let wb = b.load(bias, &[b.addi(b.index(base), row)]);
                        let rb = b.load(bias, &[b.addi(b.index(base + gh), row)]);
                        if lbr {
                            let keep = b.cmpi(
                                melior::dialect::arith::CmpiPredicate::Ult,
                                row,
                                b.index(2 * hidden),
                            );
                            let zero = b.f32(0.0);
                            b.addf(wb, b.select(keep, rb, zero))
                        } else {
                            b.addf(wb, rb)
                        }
                    }
                    None => b.f32(0.0),
                };
                b.for_range(0, n, 1, &[], |b, col, _| {
                    let at = b.addi(b.muli(row, b.index(n)), col);
                    b.store(start, xp_flat, &[at]);
                    vec![]
                });
                vec![]
            });
            for (weights, first, rows) in &w_units {
                let xp_view = shaped(self, &xp, *rows, n, first * n);
                let product =
                    b.insert(weights.product(self.context, x_columns, xp_view, n > 1, b.location));
                self.copy_schedule(&op, product);
            }
            // The initial state.
            let state_at = |b: &Builder<'c>, bi: V<'c>, j: V<'c>| -> V<'c> {
                let (outer, inner) = if r.batch_major {
                    (b.muli(bi, b.index(directions)), b.index(d))
                } else {
                    (b.index(d * batch), bi)
                };
                b.addi(b.muli(b.addi(outer, inner), b.index(hidden)), j)
            };
            for (initial, state) in [(initial_h, hs_flat), (initial_c, cs_flat)] {
                b.for_range(0, hidden, 1, &[], |b, j, _| {
                    b.for_range(0, batch, 1, &[], |b, bi, _| {
                        let value = match initial {
                            Some(initial) => b.load(initial, &[state_at(b, bi, j)]),
                            None => b.f32(0.0),
                        };
                        let at = b.addi(b.muli(j, b.index(batch)), bi);
                        b.store(value, state, &[at]);
                        vec![]
                    });
                    vec![]
                });
            }
            let hs_view = shaped(self, &hs, hidden, batch, 0);
            let rh_view = shaped(self, &rh, hidden, batch, 0);
            let slices = |units: &[(super::weights::Weights<'c>, i64, i64)]| -> Vec<V<'c>> {
                units
                    .iter()
                    .map(|(_, first, rows)| shaped(self, &gs, *rows, batch, first * batch))
                    .collect()
            };
            let (before_views, after_views) = (slices(&r_before), slices(&r_after));
            let context = self.context;
            let steps = lens.as_ref().map_or(t_len, |l| {
                l.iter().copied().max().unwrap_or(dims.seq) as i64
            });
            let clip = r.clip;
            let peephole = |b: &Builder<'c>, gate: i64, j: V<'c>| -> Option<V<'c>> {
                peepholes.map(|p| b.load(p, &[b.addi(b.index(d * 3 * hidden + gate * hidden), j)]))
            };
            let act = |b: &Builder<'c>, which: usize, x: V<'c>| -> V<'c> {
                let x = match clip {
                    Some(c) => b.minimumf(b.maximumf(x, b.f32(-c as f64)), b.f32(c as f64)),
                    None => x,
                };
                super::fast_math::activate(b, x, &acts[which], None)
            };
            let mut step_products = Vec::new();
            b.for_range(0, steps, 1, &[], |b, s, _| {
                // G = (Rb of the step rows) + R h.
                b.for_range(0, r_rows, 1, &[], |b, row, _| {
                    let start = match bias {
                        Some(bias) if lbr => {
                            let rb = b.load(bias, &[b.addi(b.index(base + gh), row)]);
                            let keep = b.cmpi(
                                melior::dialect::arith::CmpiPredicate::Uge,
                                row,
                                b.index(2 * hidden),
                            );
                            b.select(keep, rb, b.f32(0.0))
                        }
                        _ => b.f32(0.0),
                    };
                    b.for_range(0, batch, 1, &[], |b, bi, _| {
                        let at = b.addi(b.muli(row, b.index(batch)), bi);
                        b.store(start, gs_flat, &[at]);
                        vec![]
                    });
                    vec![]
                });
                for ((weights, _, _), view) in r_before.iter().zip(&before_views) {
                    step_products.push(b.insert(weights.product(
                        context,
                        hs_view,
                        *view,
                        batch > 1,
                        b.location,
                    )));
                }
                // Per batch entry: the step's time index and whether it is live.
                let timing = |b: &Builder<'c>, bi: V<'c>| -> (V<'c>, Option<V<'c>>) {
                    match &lens {
                        None => {
                            let t = if reversed {
                                b.subi(b.index(t_len - 1), s)
                            } else {
                                s
                            };
                            (t, None)
                        }
                        Some(lens) => {
                            let mut len = b.index(lens[0] as i64);
                            for (k, &l) in lens.iter().enumerate().skip(1) {
                                let here = b.cmpi(
                                    melior::dialect::arith::CmpiPredicate::Eq,
                                    bi,
                                    b.index(k as i64),
                                );
                                len = b.select(here, b.index(l as i64), len);
                            }
                            let live = b.cmpi(melior::dialect::arith::CmpiPredicate::Ult, s, len);
                            let t = if reversed {
                                // len - 1 - s, kept in range when the entry is done.
                                let back = b.subi(b.subi(len, b.index(1)), s);
                                b.select(live, back, b.index(0))
                            } else {
                                b.select(live, s, b.index(0))
                            };
                            (t, Some(live))
                        }
                    }
                };
                let column = |b: &Builder<'c>, t: V<'c>, bi: V<'c>| -> V<'c> {
                    if r.batch_major {
                        b.addi(b.muli(bi, b.index(t_len)), t)
                    } else {
                        b.addi(b.muli(t, b.index(batch)), bi)
                    }
                };
                let xp_at = |b: &Builder<'c>, gate: i64, j: V<'c>, col: V<'c>| -> V<'c> {
                    let row = b.addi(b.index(gate * hidden), j);
                    b.load(xp_flat, &[b.addi(b.muli(row, b.index(n)), col)])
                };
                let g_at = |b: &Builder<'c>, gate: i64, j: V<'c>, bi: V<'c>| -> V<'c> {
                    let row = b.addi(b.index(gate * hidden), j);
                    b.load(gs_flat, &[b.addi(b.muli(row, b.index(batch)), bi)])
                };
                if split_reset {
                    // r * h, then G_h = R_h (r * h).
                    b.for_loop_with(
                        b.index(0),
                        b.index(hidden),
                        b.index(1),
                        &[],
                        &[],
                        |b, j, _| {
                            b.for_range(0, batch, 1, &[], |b, bi, _| {
                                let (t, _) = timing(b, bi);
                                let col = column(b, t, bi);
                                let pre = b.addf(xp_at(b, 1, j, col), g_at(b, 1, j, bi));
                                let reset = act(b, 0, pre);
                                let at = b.addi(b.muli(j, b.index(batch)), bi);
                                let h = b.load(hs_flat, &[at]);
                                b.store(b.mulf(reset, h), rh_flat, &[at]);
                                let zero = b.f32(0.0);
                                let g_row = b.addi(b.index(2 * hidden), j);
                                b.store(
                                    zero,
                                    gs_flat,
                                    &[b.addi(b.muli(g_row, b.index(batch)), bi)],
                                );
                                vec![]
                            });
                            vec![]
                        },
                    );
                    for ((weights, _, _), view) in r_after.iter().zip(&after_views) {
                        step_products.push(b.insert(weights.product(
                            context,
                            rh_view,
                            *view,
                            batch > 1,
                            b.location,
                        )));
                    }
                }
                // The gates and the new state: one thread (outlined for the
                // pool, the batch-8 loop lost LLVM's vectorisation along the
                // batch and ran 69 -> 90 ms; measured).
                b.for_loop_with(
                    b.index(0),
                    b.index(hidden),
                    b.index(1),
                    &[],
                    &[],
                    |b, j, _| {
                        b.for_range(0, batch, 1, &[], |b, bi, _| {
                            let (t, live) = timing(b, bi);
                            let col = column(b, t, bi);
                            let at = b.addi(b.muli(j, b.index(batch)), bi);
                            let h = b.load(hs_flat, &[at]);
                            let pre = |b: &Builder<'c>, gate: i64| {
                                b.addf(xp_at(b, gate, j, col), g_at(b, gate, j, bi))
                            };
                            let one = b.f32(1.0);
                            let (h_new, c_new) = match r.cell {
                                Cell::Rnn => (act(b, 0, pre(b, 0)), None),
                                Cell::Gru { .. } => {
                                    let z = act(b, 0, pre(b, 0));
                                    let candidate_in = if lbr {
                                        let reset = act(b, 0, pre(b, 1));
                                        b.addf(
                                            xp_at(b, 2, j, col),
                                            b.mulf(reset, g_at(b, 2, j, bi)),
                                        )
                                    } else {
                                        pre(b, 2)
                                    };
                                    let candidate = act(b, 1, candidate_in);
                                    // (1 - z) * n + z * h = n + z * (h - n)
                                    let h_new = b.fma(z, b.subf(h, candidate), candidate);
                                    (h_new, None)
                                }
                                Cell::Lstm { input_forget } => {
                                    let c = b.load(cs_flat, &[at]);
                                    let with_peephole =
                                        |b: &Builder<'c>, x: V<'c>, gate: i64, c: V<'c>| {
                                            match peephole(b, gate, j) {
                                                Some(p) => b.fma(p, c, x),
                                                None => x,
                                            }
                                        };
                                    let i_gate = act(b, 0, with_peephole(b, pre(b, 0), 0, c));
                                    let f_gate = if input_forget {
                                        b.subf(one, i_gate)
                                    } else {
                                        act(b, 0, with_peephole(b, pre(b, 2), 2, c))
                                    };
                                    let candidate = act(b, 1, pre(b, 3));
                                    let c_new = b.fma(f_gate, c, b.mulf(i_gate, candidate));
                                    let o_gate = act(b, 0, with_peephole(b, pre(b, 1), 1, c_new));
                                    // h(C) is not clipped: clip bounds the gates' inputs.
                                    let h_act =
                                        super::fast_math::activate(b, c_new, &acts[2], None);
                                    (b.mulf(o_gate, h_act), Some(c_new))
                                }
                            };
                            let y_at = {
                                let (outer, inner) = if r.batch_major {
                                    (b.addi(b.muli(bi, b.index(t_len)), t), b.index(d))
                                } else {
                                    (b.addi(b.muli(t, b.index(directions)), b.index(d)), bi)
                                };
                                let inner_count = if r.batch_major { directions } else { batch };
                                b.addi(
                                    b.muli(
                                        b.addi(b.muli(outer, b.index(inner_count)), inner),
                                        b.index(hidden),
                                    ),
                                    j,
                                )
                            };
                            match live {
                                None => {
                                    b.store(h_new, hs_flat, &[at]);
                                    if let Some(c_new) = c_new {
                                        b.store(c_new, cs_flat, &[at]);
                                    }
                                    b.store(h_new, y_flat, &[y_at]);
                                }
                                Some(live) => {
                                    b.if_else(
                                        live,
                                        &[],
                                        |b| {
                                            b.store(h_new, hs_flat, &[at]);
                                            if let Some(c_new) = c_new {
                                                b.store(c_new, cs_flat, &[at]);
                                            }
                                            b.store(h_new, y_flat, &[y_at]);
                                            vec![]
                                        },
                                        |_| vec![],
                                    );
                                }
                            }
                            vec![]
                        });
                        vec![]
                    },
                );
                vec![]
            });
            for product in step_products {
                self.copy_schedule(&op, product);
            }
            // Y_h (and Y_c) from the final state.
            let outputs: Vec<(V<'c>, V<'c>)> = std::iter::once((hs_flat, self.flat_view(b, &y_h)))
                .chain(y_c.as_ref().map(|y_c| (cs_flat, self.flat_view(b, y_c))))
                .collect();
            for (state, out) in outputs {
                b.for_range(0, hidden, 1, &[], |b, j, _| {
                    b.for_range(0, batch, 1, &[], |b, bi, _| {
                        let at = b.addi(b.muli(j, b.index(batch)), bi);
                        let v = b.load(state, &[at]);
                        b.store(v, out, &[state_at(b, bi, j)]);
                        vec![]
                    });
                    vec![]
                });
            }
        }
        self.define_at(&op, 0, y)?;
        self.define_at(&op, 1, y_h)?;
        if let Some(y_c) = y_c {
            self.define_at(&op, 2, y_c)?;
        }
        Ok(())
    }

    /// One direction's weight `rows x cols` starting at element `start` of
    /// `source`: a constant slice becomes its own weight `name`, a run-time
    /// one is packed into row panels in temporary `panels`.
    #[allow(clippy::too_many_arguments)]
    fn direction_weights(
        &mut self,
        b: &Builder<'c>,
        op: &OperationRef<'c, '_>,
        source: &Source<'c>,
        name: &str,
        start: i64,
        (rows, cols): (i64, i64),
        reads: Reads,
        dense: bool,
        panels: usize,
    ) -> Result<super::weights::Weights<'c>, PassError> {
        match source {
            Source::Constant(data) => {
                let slice = data[start as usize..(start + rows * cols) as usize].to_vec();
                let value = weights::resource(self.context, name, &[rows, cols], slice);
                self.weights_on(b, op, name, value, rows, cols, reads, dense)
            }
            Source::Runtime(tensor) => {
                let view = self.view_at(b, tensor, start, &[rows, cols]);
                let floats = bcr::pack_panels_floats(rows, cols);
                let offset = self.temporary_offset(op, panels)?;
                let buffer = self.dynamic_view(b, offset, floats);
                let pack = bcr::pack_panels(self.context, view, buffer, false, 1.0, b.location);
                Ok(super::weights::Weights::Dense(b.value(pack)))
            }
        }
    }
}
