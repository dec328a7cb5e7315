//! `grim.concat`: two tensors joined along `axis`, its builder, accessor
//! and shape check. ONNX Concat of more inputs is a left fold of these: an
//! IRDL variadic operand group collapses to one type, so one op cannot
//! take inputs of different shapes.

use super::build;
use crate::attr;
use melior::{
    ir::{
        operation::{OperationBuilder, OperationLike},
        Location, Operation, Type, Value,
    },
    Context,
};

/// `grim.concat` — `lhs` then `rhs` along `axis`.
pub const CONCAT: &str = "grim.concat";

/// Builds `grim.concat(lhs, rhs) {axis}`.
pub fn concat<'c>(
    context: &'c Context,
    lhs: Value<'c, '_>,
    rhs: Value<'c, '_>,
    axis: i64,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(CONCAT, location)
            .add_operands(&[lhs, rhs])
            .add_attributes(&[attr::named_i64(context, "axis", axis)])
            .add_results(&[result]),
    )
}

/// The joined dim of a `grim.concat`.
pub fn concat_axis<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<i64> {
    attr::int(op, "axis")
}

/// Checks that `a` and `b` join along `axis` into `y`.
pub(super) fn check(axis: i64, a: &[i64], b: &[i64], y: &[i64]) -> Result<(), String> {
    let d = usize::try_from(axis).ok().filter(|d| *d < a.len());
    let Some(d) = d
        .filter(|_| a.len() == b.len() && (0..a.len()).all(|i| i == axis as usize || a[i] == b[i]))
    else {
        return Err(format!("cannot join {a:?} and {b:?} along axis {axis}"));
    };
    let mut out = a.to_vec();
    out[d] += b[d];
    if out != y {
        return Err(format!("result must be {out:?}, got {y:?}"));
    }
    Ok(())
}
