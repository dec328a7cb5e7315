//! exp, sigmoid and tanh as inline arith code (scalars or vectors), for the
//! recurrent gates: `math.exp`/`math.tanh` become libm calls, one per
//! element even in a vector, and a speech GRU evaluates three of them per
//! hidden unit per step.
//!
//! `exp` is Cephes' `expf`: `x = n ln2 + r` with `n = floor(x log2(e) +
//! 1/2)`, `ln2` split in two constants so that `r` is exact, a degree-5
//! polynomial for `(e^r - 1 - r) / r^2`, and `2^n` built in the exponent
//! bits; `x` is clamped to `[-87.34, 88.38]` so that `2^n` stays a normal
//! float (below, the result is `~1.2e-38` instead of a denormal or 0;
//! above, `~2.4e38` instead of inf). `sigmoid(x) = 1 / (1 + exp(-x))` and
//! `tanh(x) = 1 - 2 / (exp(2x) + 1)`, which saturate to exactly 0, 1 and
//! -1 where the clamp applies. Measured against f64 over `[-100, 100]`
//! (`gate_activations_are_within_their_documented_error` in
//! `compiler/tests/compiler/recurrent.rs`, which asserts the bounds):
//! sigmoid's absolute error is at most `8.4e-8` and its relative error
//! `1.1e-7` down to `x = -80` (there it is exp's); tanh's absolute error at
//! most `1.7e-7` (relative error is not bounded near 0, where `1 - 2 / (e^2x
//! + 1)` cancels; the gates need the absolute one). The test allows `3e-7`
//! absolute and `5e-7` relative.

use crate::builder::{Builder, V};
use grim_dialects::grim::Activation;
use melior::ir::Type;

/// A constant of `lanes` lanes (`None`: a scalar).
fn splat<'c>(b: &Builder<'c>, value: f64, lanes: Option<u64>) -> V<'c> {
    let scalar = b.f32(value);
    match lanes {
        Some(lanes) => b.broadcast(scalar, lanes),
        None => scalar,
    }
}

fn int_splat<'c>(b: &Builder<'c>, value: i64, lanes: Option<u64>) -> V<'c> {
    let scalar = b.int(value, 32);
    match lanes {
        Some(lanes) => b.op(
            "vector.broadcast",
            &[scalar],
            &[Type::vector(&[lanes], b.int_type(32))],
            &[],
        )[0],
        None => scalar,
    }
}

/// `e^x` (see the module doc).
pub(super) fn exp<'c>(b: &Builder<'c>, x: V<'c>, lanes: Option<u64>) -> V<'c> {
    let c = |v: f64| splat(b, v, lanes);
    let x = b.minimumf(b.maximumf(x, c(-87.336_55)), c(88.376_26));
    let fx = b.math("math.floor", b.fma(x, c(std::f64::consts::LOG2_E), c(0.5)));
    let r = b.fma(fx, c(-0.693_359_375), x);
    let r = b.fma(fx, c(2.121_944_4e-4), r);
    let mut p = c(1.987_569_15e-4);
    for coefficient in [
        1.398_199_95e-3,
        8.333_451_9e-3,
        4.166_579_59e-2,
        1.666_666_55e-1,
        5.000_000_12e-1,
    ] {
        p = b.fma(p, r, c(coefficient));
    }
    let z = b.mulf(r, r);
    let y = b.addf(b.fma(p, z, r), c(1.0));
    let int_type = match lanes {
        Some(lanes) => Type::vector(&[lanes], b.int_type(32)),
        None => b.int_type(32),
    };
    let float_type = match lanes {
        Some(lanes) => b.vector_type(lanes),
        None => b.f32_type(),
    };
    let n = b.op("arith.fptosi", &[fx], &[int_type], &[])[0];
    let biased = b.addi(n, int_splat(b, 127, lanes));
    let bits = b.shli(biased, int_splat(b, 23, lanes));
    let scale = b.op("arith.bitcast", &[bits], &[float_type], &[])[0];
    b.mulf(y, scale)
}

/// `activation(x)` with sigmoid and tanh through [`exp`]; the others as
/// the element-wise lowering computes them.
pub(super) fn activate<'c>(
    b: &Builder<'c>,
    x: V<'c>,
    activation: &Activation,
    lanes: Option<u64>,
) -> V<'c> {
    let c = |v: f64| splat(b, v, lanes);
    match activation {
        Activation::Sigmoid => {
            let e = exp(b, b.subf(c(0.0), x), lanes);
            b.divf(c(1.0), b.addf(c(1.0), e))
        }
        Activation::Tanh => {
            let e = exp(b, b.addf(x, x), lanes);
            b.subf(c(1.0), b.divf(c(2.0), b.addf(e, c(1.0))))
        }
        other => super::elementwise::activate_lanes(b, x, other, lanes),
    }
}
