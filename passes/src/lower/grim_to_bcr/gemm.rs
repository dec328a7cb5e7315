//! `grim.gemm` (canonical form) to a bcr product with its epilogue.
//!
//! With one row the product is `y[M] = bias + residual; y += W x`. With
//! `N > 1` rows the kernels want `[K, N]` activations and an `[M, N]`
//! accumulator (they vectorise along N), so the input is transposed in and
//! the accumulator out, unless a `grim.transpose` beside the gemm cancels
//! either: a transposed input is read in place, and a result read only by a
//! transpose is the accumulator itself.

use super::weights::Reads;
use super::{key, transpose::transpose, values::Tensor, Lowering};
use crate::{
    builder::{Builder, V},
    op_error, PassError,
};
use grim_dialects::grim::{self, Activation};
use melior::ir::{operation::OperationRef, Attribute};

/// A gemm's activations: `[N, K]` as the graph holds them, or already
/// `[K, N]` (the source of a cancelled transpose), read in place.
enum Activations<'c> {
    Rows(Tensor<'c>),
    Columns(Tensor<'c>),
}

/// The epilogue of a product: added at initialisation (bias, residual),
/// applied after the product (activation).
pub(super) struct Epilogue<'c> {
    pub(super) bias: Option<Bias<'c>>,
    /// The residual and whether it is read transposed (`[N, M]` into an
    /// `[M, N]` accumulator).
    pub(super) residual: Option<(V<'c>, bool)>,
    pub(super) activation: Option<Activation>,
}

/// What a product's output starts from before the residual.
pub(super) enum Bias<'c> {
    /// One value per output row (`[M]`): the canonical bias.
    Row(V<'c>),
    /// A gemm's `beta * C` with C (flat) broadcast to the `[N, M]` output:
    /// element `(n, m)` of C is `c[n * strides[0] + m * strides[1]]`. Only
    /// a gemm whose weight is computed at run time keeps a C that
    /// graph-simplify could not fold into a row bias.
    Broadcast {
        c: V<'c>,
        strides: [i64; 2],
        beta: f32,
    },
}

impl<'c> Bias<'c> {
    /// `beta * C` for an output `[n, m]`, C of `shape` (rank <= 2,
    /// unidirectionally broadcastable to it, as the verifier checks).
    pub(super) fn broadcast(c: V<'c>, shape: &[i64], n: i64, m: i64, beta: f32) -> Bias<'c> {
        let padded: Vec<i64> = std::iter::repeat_n(1, 2usize.saturating_sub(shape.len()))
            .chain(shape.iter().copied())
            .collect();
        let (cn, cm) = (padded[0], padded[1]);
        // A broadcast dim (1 in C) stays at index 0; n and m only check it.
        debug_assert!((cn == 1 || cn == n) && (cm == 1 || cm == m));
        let strides = [if cn == 1 { 0 } else { cm }, if cm == 1 { 0 } else { 1 }];
        Bias::Broadcast { c, strides, beta }
    }

    /// The start value of output row `row` (an index of M), column
    /// `column` (an index of N).
    fn load(&self, b: &Builder<'c>, row: V<'c>, column: V<'c>) -> V<'c> {
        match self {
            Bias::Row(bias) => b.load(*bias, &[row]),
            Bias::Broadcast { c, strides, beta } => {
                let at = b.addi(
                    b.muli(column, b.index(strides[0])),
                    b.muli(row, b.index(strides[1])),
                );
                let value = b.load(*c, &[at]);
                if *beta == 1.0 {
                    value
                } else {
                    b.mulf(value, b.f32(*beta as f64))
                }
            }
        }
    }
}

impl<'c> Lowering<'c, '_> {
    pub(super) fn gemm(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let attrs = grim::gemm_attrs(&op);
        let operands = grim::product(&op)
            .ok_or_else(|| op_error(&op, "needs (input, weight, bias?, residual?)"))?;
        let weight = self.value(&op, operands.weight, 1)?;
        let constant = matches!(weight, Tensor::Weight { .. });
        if constant && !attrs.is_canonical() {
            return Err(op_error(
                &op,
                format!(
                    "is not in canonical form (alpha {}, beta {}, trans_a {}, trans_b {}; lowering wants \
                     W out x in with trans_b and no scaling): run graph-simplify first",
                    attrs.alpha, attrs.beta, attrs.trans_a, attrs.trans_b
                ),
            ));
        }
        // The [K, N] operand: A itself with trans_a (a runtime weight's
        // gemm keeps its attributes), or the source of a cancelled transpose.
        let input = if attrs.trans_a {
            Activations::Columns(self.buffer(&op, 0)?)
        } else {
            match self.cancelled.inputs.get(&key(operands.input)) {
                Some(source) => Activations::Columns(
                    self.values
                        .get(source)
                        .cloned()
                        .ok_or_else(|| op_error(&op, "transposed input is not available"))?,
                ),
                None => Activations::Rows(self.buffer(&op, 0)?),
            }
        };
        let (n, k) = match &input {
            Activations::Rows(t) => (t.shape()[0], t.shape()[1]),
            Activations::Columns(t) => (t.shape()[1], t.shape()[0]),
        };
        let weight_shape = weight.shape().to_vec();
        // W is [M, K] with trans_b (the canonical layout), else B is [K, M].
        let (m, weight_k) = if attrs.trans_b {
            (weight_shape[0], weight_shape[1])
        } else {
            (weight_shape[1], weight_shape[0])
        };
        if weight_k != k {
            return Err(op_error(
                &op,
                format!("weight is {weight_shape:?} but the input has {k} columns"),
            ));
        }
        let bias = match operands.bias {
            Some(bias) => {
                let c = self.value(&op, bias, 2)?;
                if constant && c.shape() != [m] {
                    return Err(op_error(
                        &op,
                        format!(
                            "bias must be [{m}] in canonical form, got {:?}: run graph-simplify first",
                            c.shape()
                        ),
                    ));
                }
                Some(c)
            }
            None => None,
        };
        let residual = match operands.residual {
            Some(residual) => Some(self.value(&op, residual, 3)?),
            None => None,
        };
        let activation = Activation::of_epilogue(&op).map_err(|e| op_error(&op, e))?;
        let mut temporaries = 0;
        let weights = match weight {
            Tensor::Weight { name, value, .. } => {
                self.weights(b, &op, &name, value, m, k, Reads::of_columns(n))?
            }
            runtime => {
                temporaries += 1;
                self.runtime_panels(b, &op, &runtime, !attrs.trans_b, attrs.alpha)?
            }
        };
        let bias_view = match bias {
            Some(c) if constant => Some(Bias::Row(self.read(b, &c, &[m]))),
            Some(c) => Some(Bias::broadcast(
                self.flat_read(b, &c),
                c.shape(),
                n,
                m,
                attrs.beta,
            )),
            None => None,
        };
        // A result read only by a transpose: accumulate straight into the
        // transpose's result (cancel.rs).
        let result_key = key(op.result(0).map_err(|e| op_error(&op, e))?.into());
        let transposed_result = match self.cancelled.results.get(&result_key) {
            Some(_) => {
                let users = super::cancel::uses(op.result(0).map_err(|e| op_error(&op, e))?.into());
                users.first().map(|(user, _)| *user)
            }
            None => None,
        };
        if n == 1 {
            let output = self.result(&op, &[n, m])?;
            // With one row, [1, K] and [K, 1] are the same bytes.
            let (Activations::Rows(input) | Activations::Columns(input)) = &input;
            let x = self.read(b, input, &[k]);
            let y = self.read(b, &output, &[m]);
            let residual_view = residual.map(|r| (self.read(b, &r, &[m]), false));
            let epilogue = Epilogue {
                bias: bias_view,
                residual: residual_view,
                activation,
            };
            init_vector(b, y, &epilogue, m);
            let product = b.insert(weights.product(self.context, x, y, false, b.location));
            self.copy_schedule(&op, product);
            apply_activation(b, || y, m, epilogue.activation);
            return self.define(&op, output);
        }
        let at = match &input {
            Activations::Columns(source) => self.view(b, source),
            Activations::Rows(input) => {
                let transposed_input = self.temporary(&op, temporaries, &[k, n])?;
                temporaries += 1;
                let a = self.view(b, input);
                let at = self.view(b, &transposed_input);
                transpose(b, a, at, n, k, self.lanes);
                at
            }
        };
        let accumulator = match transposed_result {
            Some(user) => self.result(&user, &[m, n])?,
            None => self.temporary(&op, temporaries, &[m, n])?,
        };
        let ct = self.view(b, &accumulator);
        let residual_view = residual.map(|r| (self.read(b, &r, &[n, m]), true));
        let epilogue = Epilogue {
            bias: bias_view,
            residual: residual_view,
            activation,
        };
        init_rows(b, ct, &epilogue, m, n);
        let product = b.insert(weights.product(self.context, at, ct, true, b.location));
        self.copy_schedule(&op, product);
        apply_activation(
            b,
            || self.flat_view(b, &accumulator),
            m * n,
            epilogue.activation,
        );
        match transposed_result {
            Some(user) => self.define(&user, accumulator),
            None => {
                let output = self.result(&op, &[n, m])?;
                let y = self.view(b, &output);
                transpose(b, ct, y, m, n, self.lanes);
                self.define(&op, output)
            }
        }
    }
}

/// `y[m] = bias + residual[m]` (each optional, zero without both; a row
/// bias alone is one copy).
fn init_vector<'c>(b: &Builder<'c>, y: V<'c>, epilogue: &Epilogue<'c>, m: i64) {
    if let (Some(Bias::Row(bias)), None) = (&epilogue.bias, epilogue.residual) {
        b.copy(*bias, y);
        return;
    }
    let zero = b.f32(0.0);
    b.for_range(0, m, 1, &[], |b, i, _| {
        let mut value = match &epilogue.bias {
            Some(bias) => bias.load(b, i, b.index(0)),
            None => zero,
        };
        if let Some((residual, _)) = epilogue.residual {
            let r = b.load(residual, &[i]);
            value = b.addf(value, r);
        }
        b.store(value, y, &[i]);
        vec![]
    });
}

/// Fills each row of `y[m, n]` with its bias (or zero) plus the residual
/// (`residual[m, n]`, or `residual[n, m]` when transposed), rows spread
/// over the threads (bcr-parallelize): the products then accumulate into it.
pub(super) fn init_rows<'c>(b: &Builder<'c>, y: V<'c>, epilogue: &Epilogue<'c>, m: i64, n: i64) {
    let parallel = [(
        crate::bcr::parallelize::PARALLEL_ATTR,
        Attribute::unit(b.context),
    )];
    let zero = b.f32(0.0);
    let (first_row, rows, one) = (b.index(0), b.index(m), b.index(1));
    b.for_loop_with(first_row, rows, one, &[], &parallel, |b, row, _| {
        let row_value = match &epilogue.bias {
            Some(Bias::Row(bias)) => b.load(*bias, &[row]),
            _ => zero,
        };
        b.for_range(0, n, 1, &[], |b, column, _| {
            let value = match &epilogue.bias {
                Some(bias @ Bias::Broadcast { .. }) => bias.load(b, row, column),
                _ => row_value,
            };
            let value = match epilogue.residual {
                Some((residual, transposed)) => {
                    let indices = if transposed {
                        [column, row]
                    } else {
                        [row, column]
                    };
                    let r = b.load(residual, &indices);
                    b.addf(value, r)
                }
                None => value,
            };
            b.store(value, y, &[row, column]);
            vec![]
        });
        vec![]
    });
}

/// Applies `activation` in place over the `elements` of the flat `y` (made
/// only when there is an activation).
pub(super) fn apply_activation<'c>(
    b: &Builder<'c>,
    y: impl FnOnce() -> V<'c>,
    elements: i64,
    activation: Option<Activation>,
) {
    let Some(activation) = activation else {
        return;
    };
    let y = y();
    super::elementwise::elementwise_loop(b, elements, &|b, i| {
        let x = b.load(y, &[i]);
        let value = super::elementwise::activate(b, x, &activation);
        b.store(value, y, &[i]);
    });
}
