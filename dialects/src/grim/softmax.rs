//! `grim.softmax`: `exp(x) / sum(exp(x))` over the dims `[axis, axis_end)`
//! (ONNX Softmax: one dim from opset 13, every dim from `axis` on before),
//! its builder, accessor and shape check.

use super::build;
use crate::attr;
use melior::{
    ir::{
        operation::{OperationBuilder, OperationLike},
        Location, Operation, Type, Value,
    },
    Context,
};

/// `grim.softmax` — softmax over a span of dims.
pub const SOFTMAX: &str = "grim.softmax";

/// Builds `grim.softmax(input) {axis, axis_end}`.
pub fn softmax<'c>(
    context: &'c Context,
    input: Value<'c, '_>,
    axis: i64,
    axis_end: i64,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(SOFTMAX, location)
            .add_operands(&[input])
            .add_attributes(&[
                attr::named_i64(context, "axis", axis),
                attr::named_i64(context, "axis_end", axis_end),
            ])
            .add_results(&[result]),
    )
}

/// The reduced span `[axis, axis_end)` of a `grim.softmax`.
pub fn softmax_span<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<(i64, i64)> {
    Some((attr::int(op, "axis")?, attr::int(op, "axis_end")?))
}

/// Checks the span against the input and the result's shape.
pub(super) fn check(span: (i64, i64), x: &[i64], y: &[i64]) -> Result<(), String> {
    let (axis, end) = span;
    if !(0 <= axis && axis < end && end <= x.len() as i64) {
        return Err(format!(
            "reduces dims {axis}..{end}, which must be a non-empty span of the {} dims of {x:?}",
            x.len()
        ));
    }
    if x != y {
        return Err(format!("result must be {x:?}, got {y:?}"));
    }
    Ok(())
}
