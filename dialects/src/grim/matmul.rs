//! `grim.matmul`: numpy's matmul of two tensors of any rank (ONNX MatMul
//! where neither operand is a 2-D matrix a gemm could take as its weight,
//! or both are computed at run time with more than two dims), its builder
//! and shape check. The shape rules are `grim_model::MatMulShape`'s, the
//! reference interpreter's.

use super::build;
use grim_model::MatMulShape;
use melior::ir::{operation::OperationBuilder, Location, Operation, Type, Value};

/// `grim.matmul` — numpy matmul (batch dims broadcast, 1-D promoted).
pub const MATMUL: &str = "grim.matmul";

/// Builds `grim.matmul(lhs, rhs)`.
pub fn matmul<'c>(
    lhs: Value<'c, '_>,
    rhs: Value<'c, '_>,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(MATMUL, location)
            .add_operands(&[lhs, rhs])
            .add_results(&[result]),
    )
}

/// The shapes of `lhs x rhs` in `usize`, or why they do not multiply.
pub fn matmul_shape(lhs: &[i64], rhs: &[i64]) -> Result<MatMulShape, String> {
    let dims = |s: &[i64]| -> Result<Vec<usize>, String> {
        s.iter()
            .map(|&d| usize::try_from(d).map_err(|_| format!("dims must be static, got {s:?}")))
            .collect()
    };
    MatMulShape::of(&dims(lhs)?, &dims(rhs)?)
}

/// Checks that `y` is the numpy matmul shape of `a x b`.
pub(super) fn check(a: &[i64], b: &[i64], y: &[i64]) -> Result<(), String> {
    let shape = matmul_shape(a, b)?;
    let out: Vec<i64> = shape.out.iter().map(|&d| d as i64).collect();
    if out != y {
        return Err(format!("result must be {out:?}, got {y:?}"));
    }
    Ok(())
}
