//! `grim.pool`: 2-D max or average pooling over NCHW, its typed builder,
//! accessor and shape check (the one place that knows its attributes).

use super::build;
use crate::attr;
use melior::{
    ir::{
        operation::{OperationBuilder, OperationLike},
        Location, Operation, Type, Value,
    },
    Context,
};

/// `grim.pool` — 2-D max or average pooling (ONNX MaxPool, AveragePool,
/// GlobalMaxPool, GlobalAveragePool).
pub const POOL: &str = "grim.pool";

/// The reduction of a `grim.pool` (attribute `kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolKind {
    /// `"max"`.
    Max,
    /// `"average"`.
    Average,
}

impl PoolKind {
    /// The attribute value.
    pub fn name(self) -> &'static str {
        match self {
            PoolKind::Max => "max",
            PoolKind::Average => "average",
        }
    }
}

/// The attributes of a `grim.pool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolAttrs {
    /// Max or average.
    pub kind: PoolKind,
    /// `[kh, kw]`.
    pub kernel: [i64; 2],
    /// `[sh, sw]`.
    pub strides: [i64; 2],
    /// `[top, left, bottom, right]`.
    pub pads: [i64; 4],
    /// `[dh, dw]`.
    pub dilations: [i64; 2],
    /// Average over the padded window, padding counted as zeros (unit
    /// attribute `count_include_pad`).
    pub count_include_pad: bool,
}

impl PoolAttrs {
    /// The output sizes along `axis` (0: H, 1: W) for `input`: the floored
    /// and the ceiled one (ONNX `ceil_mode`, the last window starting inside
    /// the input or its leading pad); `None` if the window does not fit.
    pub fn output_sizes(&self, axis: usize, input: i64) -> Option<(i64, i64)> {
        let (begin, end) = (self.pads[axis], self.pads[axis + 2]);
        let span = self.dilations[axis] * (self.kernel[axis] - 1) + 1;
        let room = input + begin + end - span;
        let stride = self.strides[axis];
        if room < 0 || stride < 1 {
            return None;
        }
        let floor = room / stride + 1;
        let mut ceil = floor + i64::from(room % stride != 0);
        if (ceil - 1) * stride >= input + begin {
            ceil -= 1;
        }
        Some((floor, ceil.max(floor)))
    }
}

/// Builds `grim.pool(input)` with `attrs` and the result type `result`.
pub fn pool<'c>(
    context: &'c Context,
    input: Value<'c, '_>,
    attrs: &PoolAttrs,
    result: Type<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    let mut attributes = vec![
        attr::named_str(context, "kind", attrs.kind.name()),
        attr::named_i64_array(context, "kernel", &attrs.kernel),
        attr::named_i64_array(context, "strides", &attrs.strides),
        attr::named_i64_array(context, "pads", &attrs.pads),
        attr::named_i64_array(context, "dilations", &attrs.dilations),
    ];
    if attrs.count_include_pad {
        attributes.push(attr::named_unit(context, "count_include_pad"));
    }
    build(
        OperationBuilder::new(POOL, location)
            .add_operands(&[input])
            .add_results(&[result])
            .add_attributes(&attributes),
    )
}

/// Reads the attributes of a `grim.pool` (`None` if one is missing or malformed).
pub fn pool_attrs<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<PoolAttrs> {
    let kind = match attr::string(op, "kind")?.as_str() {
        "max" => PoolKind::Max,
        "average" => PoolKind::Average,
        _ => return None,
    };
    Some(PoolAttrs {
        kind,
        kernel: attr::i64_array(op, "kernel")?.try_into().ok()?,
        strides: attr::i64_array(op, "strides")?.try_into().ok()?,
        pads: attr::i64_array(op, "pads")?.try_into().ok()?,
        dilations: attr::i64_array(op, "dilations")?.try_into().ok()?,
        count_include_pad: op.has_attribute("count_include_pad"),
    })
}

/// The verifier's check of a `grim.pool` of input `x` and result `y`.
pub(super) fn check(attrs: &PoolAttrs, x: &[i64], y: &[i64]) -> Result<(), String> {
    if attrs
        .kernel
        .iter()
        .chain(&attrs.strides)
        .chain(&attrs.dilations)
        .any(|v| *v < 1)
        || attrs.pads.iter().any(|p| *p < 0)
    {
        return Err(format!(
            "kernel, strides and dilations must be >= 1 and pads >= 0, got {:?}, {:?}, {:?} and {:?}",
            attrs.kernel, attrs.strides, attrs.dilations, attrs.pads
        ));
    }
    let &[n, c, h, w] = x else {
        return Err(format!("input must be NCHW, got {x:?}"));
    };
    let (Some((h_floor, h_ceil)), Some((w_floor, w_ceil))) =
        (attrs.output_sizes(0, h), attrs.output_sizes(1, w))
    else {
        return Err(format!(
            "the {:?} window does not fit the input {x:?}",
            attrs.kernel
        ));
    };
    let fits = |size: i64, floor: i64, ceil: i64| size == floor || size == ceil;
    match y {
        &[yn, yc, ho, wo] if yn == n && yc == c && fits(ho, h_floor, h_ceil) && fits(wo, w_floor, w_ceil) => {
            Ok(())
        }
        _ => Err(format!(
            "result must be [{n}, {c}, {h_floor}, {w_floor}] (or [{n}, {c}, {h_ceil}, {w_ceil}] with ceil_mode), got {y:?}"
        )),
    }
}
