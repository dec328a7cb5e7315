//! Elementwise ops and transposes as `scf.for` nests: `grim.add` (numpy
//! broadcasting), the activations, a standalone `grim.batch_norm` (one that
//! graph-simplify could not fold), and `grim.transpose`.

use super::{key, transpose::transpose, values::Tensor, Lowering};
use crate::{
    builder::{Builder, V},
    op_error, PassError,
};
use grim_dialects::grim::{self, Activation};
use melior::{dialect::arith::CmpfPredicate, ir::operation::OperationRef};

/// `activation(x)` for one f32 value, as arith/math ops.
pub(super) fn activate<'c>(b: &Builder<'c>, x: V<'c>, activation: &Activation) -> V<'c> {
    activate_lanes(b, x, activation, None)
}

/// [`activate`] of a vector of `lanes` f32 (`Some`), or of a scalar.
pub(super) fn activate_lanes<'c>(
    b: &Builder<'c>,
    x: V<'c>,
    activation: &Activation,
    lanes: Option<u64>,
) -> V<'c> {
    // Constants take x's shape.
    let f32c = |v: f64| {
        let scalar = b.f32(v);
        match lanes {
            Some(lanes) => b.broadcast(scalar, lanes),
            None => scalar,
        }
    };
    match *activation {
        Activation::Relu => {
            let zero = f32c(0.0);
            b.maximumf(x, zero)
        }
        Activation::Clip { min, max } => {
            let low = match min {
                Some(min) => {
                    let min = f32c(min as f64);
                    b.maximumf(x, min)
                }
                None => x,
            };
            match max {
                Some(max) => {
                    let max = f32c(max as f64);
                    b.minimumf(low, max)
                }
                None => low,
            }
        }
        Activation::LeakyRelu { alpha } => {
            let zero = f32c(0.0);
            let alpha = f32c(alpha as f64);
            let scaled = b.mulf(x, alpha);
            let positive = b.cmpf(CmpfPredicate::Oge, x, zero);
            b.select(positive, x, scaled)
        }
        Activation::Sigmoid => {
            // 1 / (1 + exp(-x)): exp overflows to inf for very negative x,
            // which gives the correct limit 0.
            let one = f32c(1.0);
            let zero = f32c(0.0);
            let negated = b.subf(zero, x);
            let exp = b.math("math.exp", negated);
            let denominator = b.addf(one, exp);
            b.divf(one, denominator)
        }
        Activation::Tanh => b.math("math.tanh", x),
        Activation::HardSigmoid { alpha, beta } => {
            let (alpha, beta) = (f32c(alpha as f64), f32c(beta as f64));
            let (zero, one) = (f32c(0.0), f32c(1.0));
            let line = b.fma(alpha, x, beta);
            let low = b.maximumf(line, zero);
            b.minimumf(low, one)
        }
        Activation::HardSwish => {
            let (sixth, half) = (f32c(1.0 / 6.0), f32c(0.5));
            let (zero, one) = (f32c(0.0), f32c(1.0));
            let line = b.fma(x, sixth, half);
            let low = b.maximumf(line, zero);
            let gate = b.minimumf(low, one);
            b.mulf(x, gate)
        }
    }
}

/// Elements per parallel chunk of an elementwise loop: a few pages of f32,
/// so the runtime's threads share a tensor of a few hundred KiB without a
/// chunk per element.
const CHUNK: i64 = 4096;

/// `body(i)` for every `i` in `0..n`, in chunks of [`CHUNK`] elements that
/// bcr-parallelize spreads over the threads (elementwise ops write disjoint
/// elements); the inner loop is a plain counted loop LLVM vectorises.
pub(super) fn elementwise_loop<'c>(b: &Builder<'c>, n: i64, body: &dyn Fn(&Builder<'c>, V<'c>)) {
    if n <= CHUNK {
        b.for_range(0, n, 1, &[], |b, i, _| {
            body(b, i);
            vec![]
        });
        return;
    }
    let parallel = [(
        crate::bcr::parallelize::PARALLEL_ATTR,
        melior::ir::Attribute::unit(b.context),
    )];
    let chunks = (n + CHUNK - 1) / CHUNK;
    let (zero, one, count) = (b.index(0), b.index(1), b.index(chunks));
    b.for_loop_with(zero, count, one, &[], &parallel, |b, chunk, _| {
        let size = b.index(CHUNK);
        let start = b.muli(chunk, size);
        let end = b.addi(start, size);
        let end = b.minui(end, b.index(n));
        let one = b.index(1);
        b.for_loop(start, end, one, &[], |b, i, _| {
            body(b, i);
            vec![]
        });
        vec![]
    });
}

/// A loop nest over `shape`; `body` gets the induction variables.
pub(super) fn loop_nest<'c>(
    b: &Builder<'c>,
    shape: &[i64],
    ivs: &mut Vec<V<'c>>,
    body: &dyn Fn(&Builder<'c>, &[V<'c>]),
) {
    match shape.split_first() {
        None => body(b, ivs),
        Some((extent, rest)) => {
            b.for_range(0, *extent, 1, &[], |b, iv, _| {
                let mut inner = ivs.clone();
                inner.push(iv);
                loop_nest(b, rest, &mut inner, body);
                vec![]
            });
        }
    }
}

impl<'c> Lowering<'c, '_> {
    /// A binary elementwise op (`grim::BINARY`) with numpy broadcasting, as
    /// a scalar loop nest over the output.
    pub(super) fn binary(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let name = crate::op_name(&op);
        let lhs = self.operand(&op, 0)?;
        let rhs = self.operand(&op, 1)?;
        let out_shape = grim::broadcast(lhs.shape(), rhs.shape()).ok_or_else(|| {
            op_error(
                &op,
                format!(
                    "shapes {:?} and {:?} do not broadcast",
                    lhs.shape(),
                    rhs.shape()
                ),
            )
        })?;
        let rank = out_shape.len();
        let pad = |s: &[i64]| -> Vec<i64> {
            let mut padded = vec![1; rank - s.len()];
            padded.extend_from_slice(s);
            padded
        };
        let (lhs_shape, rhs_shape) = (pad(lhs.shape()), pad(rhs.shape()));
        let a = self.read(b, &lhs, &lhs_shape);
        let c = self.read(b, &rhs, &rhs_shape);
        let output = self.result(&op, &out_shape)?;
        let y = self.view(b, &output);
        loop_nest(b, &out_shape, &mut Vec::new(), &|b, ivs| {
            let zero = b.index(0);
            let pick = |shape: &[i64]| -> Vec<V<'c>> {
                ivs.iter()
                    .zip(shape)
                    .map(|(iv, d)| if *d == 1 { zero } else { *iv })
                    .collect()
            };
            let x = b.load(a, &pick(&lhs_shape));
            let z = b.load(c, &pick(&rhs_shape));
            let value = match name.as_str() {
                grim::SUB => b.subf(x, z),
                grim::MUL => b.mulf(x, z),
                grim::DIV => b.divf(x, z),
                grim::MAX => b.maximumf(x, z),
                grim::MIN => b.minimumf(x, z),
                _ => b.addf(x, z),
            };
            b.store(value, y, ivs);
        });
        self.define(&op, output)
    }

    pub(super) fn activation_op(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let activation = Activation::of_op(&op)
            .ok_or_else(|| op_error(&op, "has malformed activation attributes"))?;
        let input = self.buffer(&op, 0)?;
        let output = self.result(&op, input.shape())?;
        let n = grim_dialects::shape::numel(input.shape());
        let source = self.flat_view(b, &input);
        let target = self.flat_view(b, &output);
        elementwise_loop(b, n, &|b, i| {
            let x = b.load(source, &[i]);
            let y = activate(b, x, &activation);
            b.store(y, target, &[i]);
        });
        self.define(&op, output)
    }

    /// `y = x * f[c] + g[c]` with `f = scale / sqrt(var + eps)` and
    /// `g = bias - mean * f` computed once per channel.
    pub(super) fn batch_norm(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let epsilon = grim_dialects::attr::float(&op, "epsilon")
            .ok_or_else(|| op_error(&op, "needs an f32 'epsilon'"))?;
        let input = self.buffer(&op, 0)?;
        let shape = input.shape().to_vec();
        let (images, channels) = (shape[0], shape[1]);
        let inner: i64 = shape[2..].iter().product();
        let mut parameters = Vec::new();
        for index in 1..5 {
            let tensor = self.operand(&op, index)?;
            parameters.push(self.read(b, &tensor, &[channels]));
        }
        let output = self.result(&op, &shape)?;
        let x = self.view(b, &input.reshaped(vec![images, channels, inner]));
        let y = self.view(b, &output.reshaped(vec![images, channels, inner]));
        b.for_range(0, images, 1, &[], |b, image, _| {
            b.for_range(0, channels, 1, &[], |b, channel, _| {
                let [scale, bias, mean, var] =
                    [0, 1, 2, 3].map(|i| b.load(parameters[i], &[channel]));
                let epsilon = b.f32(epsilon as f64);
                let shifted = b.addf(var, epsilon);
                let deviation = b.math("math.sqrt", shifted);
                let factor = b.divf(scale, deviation);
                let offset = b.mulf(mean, factor);
                let offset = b.subf(bias, offset);
                b.for_range(0, inner, 1, &[], |b, i, _| {
                    let value = b.load(x, &[image, channel, i]);
                    let value = b.fma(value, factor, offset);
                    b.store(value, y, &[image, channel, i]);
                    vec![]
                });
                vec![]
            });
            vec![]
        });
        self.define(&op, output)
    }

    pub(super) fn transpose_op(
        &mut self,
        b: &Builder<'c>,
        op: OperationRef<'c, '_>,
    ) -> Result<(), PassError> {
        let result = key(op.result(0).map_err(|e| op_error(&op, e))?.into());
        if self.cancelled.inputs.contains_key(&result) || self.values.contains_key(&result) {
            // Read in place by its gemm, or already computed by the gemm it transposes.
            return Ok(());
        }
        let input = self.operand(&op, 0)?;
        let (rows, cols) = (input.shape()[0], input.shape()[1]);
        let output = self.result(&op, &[cols, rows])?;
        let source = match &input {
            Tensor::Weight { .. } => self.read(b, &input, &[rows, cols]),
            activation => self.view(b, activation),
        };
        let target = self.view(b, &output);
        transpose(b, source, target, rows, cols, self.lanes);
        self.define(&op, output)
    }
}
