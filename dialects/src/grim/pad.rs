//! `grim.pad`: ONNX Pad with static pads (constant, reflect, edge or wrap),
//! its typed builder, accessor and shape check. The modes and the shape
//! rule are `grim_model::pad`'s, the ones the reference interpreter uses.

use super::build;
use crate::attr;
use grim_model::pad::PadMode;
use melior::{
    ir::{
        operation::{OperationBuilder, OperationLike},
        Location, Operation, Type, Value,
    },
    Context,
};

/// `grim.pad` — the input padded per dim, the border filled by `mode`.
pub const PAD: &str = "grim.pad";

/// The attributes of a `grim.pad`.
#[derive(Debug, Clone, PartialEq)]
pub struct PadAttrs {
    /// How the border is filled.
    pub mode: PadMode,
    /// `[begin_0, .., begin_{r-1}, end_0, .., end_{r-1}]`, all >= 0.
    pub pads: Vec<i64>,
    /// The fill of `constant` mode.
    pub value: f32,
}

/// Builds `grim.pad(input) {mode, pads, value}`.
pub fn pad<'c>(
    context: &'c Context,
    input: Value<'c, '_>,
    attrs: &PadAttrs,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    build(
        OperationBuilder::new(PAD, location)
            .add_operands(&[input])
            .add_attributes(&[
                attr::named_str(context, "mode", attrs.mode.name()),
                attr::named_i64_array(context, "pads", &attrs.pads),
                attr::named_f32(context, "value", attrs.value),
            ])
            .add_results(&[result]),
    )
}

/// Reads a `grim.pad`'s attributes (`None` if one is missing, the mode is
/// unknown or a pad is negative).
pub fn pad_attrs<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<PadAttrs> {
    let pads = attr::i64_array(op, "pads")?;
    if pads.iter().any(|&p| p < 0) {
        return None;
    }
    Some(PadAttrs {
        mode: PadMode::from_name(&attr::string(op, "mode")?)?,
        pads,
        value: attr::float(op, "value")?,
    })
}

/// Checks that padding `x` as `attrs` says gives `y`.
pub(super) fn check(attrs: &PadAttrs, x: &[i64], y: &[i64]) -> Result<(), String> {
    let dims = |s: &[i64]| s.iter().map(|&d| d as usize).collect::<Vec<_>>();
    let pads = dims(&attrs.pads);
    let expected = grim_model::pad::output_shape(&dims(x), &pads, attrs.mode)?;
    if dims(y) != expected {
        return Err(format!("result must be {expected:?}, got {y:?}"));
    }
    Ok(())
}
