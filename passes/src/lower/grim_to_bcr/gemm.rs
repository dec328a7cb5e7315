//! `grim.gemm` (canonical form) to a bcr product with its epilogue.
//!
//! With one row the product is `y[M] = bias + residual; y += W x`. With
//! `N > 1` rows the kernels want `[K, N]` activations and an `[M, N]`
//! accumulator (they vectorise along N), so the input is transposed in and
//! the accumulator out, unless a `grim.transpose` beside the gemm cancels
//! either: a transposed input is read in place, and a result read only by a
//! transpose is the accumulator itself.

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
    pub(super) bias: Option<V<'c>>,
    /// The residual and whether it is read transposed (`[N, M]` into an
    /// `[M, N]` accumulator).
    pub(super) residual: Option<(V<'c>, bool)>,
    pub(super) activation: Option<Activation>,
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
        if !attrs.is_canonical() {
            return Err(op_error(
                &op,
                format!(
                    "is not in canonical form (alpha {}, beta {}, trans_a {}, trans_b {}; lowering wants \
                     W out x in with trans_b and no scaling): run graph-simplify first",
                    attrs.alpha, attrs.beta, attrs.trans_a, attrs.trans_b
                ),
            ));
        }
        // The [K, N] operand, when the input is a cancelled transpose of it.
        let input = match self.cancelled.inputs.get(&key(operands.input)) {
            Some(source) => Activations::Columns(
                self.values
                    .get(source)
                    .cloned()
                    .ok_or_else(|| op_error(&op, "transposed input is not available"))?,
            ),
            None => Activations::Rows(self.buffer(&op, 0)?),
        };
        let Tensor::Weight {
            name: weight,
            shape: weight_shape,
            value,
        } = self.value(&op, operands.weight, 1)?
        else {
            return Err(op_error(
                &op,
                "needs a constant weight (operand #1); products of two activations are not supported",
            ));
        };
        let (n, k) = match &input {
            Activations::Rows(t) => (t.shape()[0], t.shape()[1]),
            Activations::Columns(t) => (t.shape()[1], t.shape()[0]),
        };
        let m = weight_shape[0];
        if weight_shape[1] != k {
            return Err(op_error(
                &op,
                format!("weight is {weight_shape:?} but the input has {k} columns"),
            ));
        }
        let bias = match operands.bias {
            Some(bias) => match self.value(&op, bias, 2)? {
                Tensor::Weight { name, value, shape } if shape == [m] => Some((name, value)),
                Tensor::Weight { shape, .. } => {
                    return Err(op_error(
                        &op,
                        format!("bias must be [{m}] in canonical form, got {shape:?}: run graph-simplify first"),
                    ))
                }
                _ => return Err(op_error(&op, "needs a constant bias (operand #2)")),
            },
            None => None,
        };
        let residual = match operands.residual {
            Some(residual) => Some(self.value(&op, residual, 3)?),
            None => None,
        };
        let activation = Activation::of_epilogue(&op).map_err(|e| op_error(&op, e))?;
        let weights = self.weights(b, &op, &weight, value, m, k, n == 1)?;
        let blob = self.blob();
        let bias_view = bias.map(|(name, value)| self.weights.dense(b, blob, &name, value, &[m]));
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
        let mut temporaries = 0;
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

/// `y[m] = bias[m] + residual[m]` (each optional, zero without both; a
/// bias alone is one copy).
fn init_vector<'c>(b: &Builder<'c>, y: V<'c>, epilogue: &Epilogue<'c>, m: i64) {
    if let (Some(bias), None) = (epilogue.bias, epilogue.residual) {
        b.copy(bias, y);
        return;
    }
    let zero = b.f32(0.0);
    b.for_range(0, m, 1, &[], |b, i, _| {
        let mut value = match epilogue.bias {
            Some(bias) => b.load(bias, &[i]),
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
        let value = match epilogue.bias {
            Some(bias) => b.load(bias, &[row]),
            None => zero,
        };
        b.for_range(0, n, 1, &[], |b, column, _| {
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
