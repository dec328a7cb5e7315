//! `grim.lrn`: ONNX LRN (local response normalization across channels),
//! its builder and accessor. The shape rule (result = input, rank >= 3) is
//! the unary check's.

use super::build;
use crate::attr;
use melior::{
    ir::{
        operation::{OperationBuilder, OperationLike},
        Location, Operation, Type, Value,
    },
    Context,
};

/// `grim.lrn` — `x / (bias + alpha / size * sum of x^2 over the window)^beta`.
pub const LRN: &str = "grim.lrn";

/// The attributes of a `grim.lrn`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrnAttrs {
    /// Scale of the sum of squares.
    pub alpha: f32,
    /// Exponent.
    pub beta: f32,
    /// Offset.
    pub bias: f32,
    /// Channels in the window: `[c - (size-1)/2, c + size/2]`.
    pub size: i64,
}

/// Builds `grim.lrn(input) {alpha, beta, bias, size}`.
pub fn lrn<'c>(
    context: &'c Context,
    input: Value<'c, '_>,
    attrs: &LrnAttrs,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(LRN, location)
            .add_operands(&[input])
            .add_attributes(&[
                attr::named_f32(context, "alpha", attrs.alpha),
                attr::named_f32(context, "beta", attrs.beta),
                attr::named_f32(context, "bias", attrs.bias),
                attr::named_i64(context, "size", attrs.size),
            ])
            .add_results(&[result]),
    )
}

/// Reads a `grim.lrn`'s attributes.
pub fn lrn_attrs<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<LrnAttrs> {
    Some(LrnAttrs {
        alpha: attr::float(op, "alpha")?,
        beta: attr::float(op, "beta")?,
        bias: attr::float(op, "bias")?,
        size: attr::int(op, "size").filter(|s| *s >= 1)?,
    })
}
