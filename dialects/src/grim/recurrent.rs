//! `grim.recurrent`: ONNX RNN, GRU and LSTM, its typed builder, accessors
//! and shape check (the one place that knows its attributes).
//!
//! The attributes are `grim_model::recurrent::Recurrent` spelled as MLIR
//! attributes, so the op and the reference interpreter share one type and
//! one shape rule ([`Recurrent::dims`]). Activations use the epilogue's
//! kind names (`sigmoid`, `tanh`, `relu`, `leaky_relu`, `hard_sigmoid`)
//! with their parameters concatenated in `activation_params`.

use super::{build, f32_array, f32_array_attribute, SEGMENTS_ATTR};
use crate::attr;
use grim_model::recurrent::{Cell, Direction, Optional, Recurrent, RecurrentActivation};
use melior::{
    ir::{
        attribute::{ArrayAttribute, DenseI32ArrayAttribute, StringAttribute},
        operation::{OperationBuilder, OperationLike},
        Attribute, Identifier, Location, Operation, Type, Value,
    },
    Context,
};

/// `grim.recurrent` — ONNX RNN, GRU or LSTM.
pub const RECURRENT: &str = "grim.recurrent";

/// The operands of a `grim.recurrent`, read through its `operandSegmentSizes`.
#[derive(Debug, Clone, Copy)]
pub struct RecurrentOperands<'c, 'a> {
    /// `X`.
    pub input: Value<'c, 'a>,
    /// `W`.
    pub weight: Value<'c, 'a>,
    /// `R`.
    pub recurrence: Value<'c, 'a>,
    /// `B`.
    pub bias: Option<Value<'c, 'a>>,
    /// `initial_h`.
    pub initial_h: Option<Value<'c, 'a>>,
    /// `initial_c`.
    pub initial_c: Option<Value<'c, 'a>>,
    /// `P`.
    pub peepholes: Option<Value<'c, 'a>>,
}

fn cell_name(cell: Cell) -> &'static str {
    match cell {
        Cell::Rnn => "rnn",
        Cell::Gru { .. } => "gru",
        Cell::Lstm { .. } => "lstm",
    }
}

fn activation_parts(a: RecurrentActivation) -> (&'static str, Vec<f32>) {
    match a {
        RecurrentActivation::Sigmoid => ("sigmoid", vec![]),
        RecurrentActivation::Tanh => ("tanh", vec![]),
        RecurrentActivation::Relu => ("relu", vec![]),
        RecurrentActivation::LeakyRelu { alpha } => ("leaky_relu", vec![alpha]),
        RecurrentActivation::HardSigmoid { alpha, beta } => ("hard_sigmoid", vec![alpha, beta]),
    }
}

/// Builds `grim.recurrent` of `operands` with `attrs` (whose `optional`
/// must match the operands given) and the result types (`Y`, `Y_h`, and
/// `Y_c` for an LSTM).
pub fn recurrent<'c>(
    context: &'c Context,
    operands: &RecurrentOperands<'c, '_>,
    attrs: &Recurrent,
    results: &[Type<'c>],
    location: Location<'c>,
) -> Operation<'c> {
    let mut values = vec![operands.input, operands.weight, operands.recurrence];
    let optional = [
        operands.bias,
        operands.initial_h,
        operands.initial_c,
        operands.peepholes,
    ];
    values.extend(optional.iter().flatten());
    let mut segments = vec![1, 1, 1];
    segments.extend(optional.iter().map(|v| v.is_some() as i32));
    let (names, params): (Vec<&str>, Vec<Vec<f32>>) = attrs
        .activations
        .iter()
        .map(|a| activation_parts(*a))
        .unzip();
    let names: Vec<Attribute> = names
        .iter()
        .map(|n| StringAttribute::new(context, n).into())
        .collect();
    let params: Vec<f32> = params.concat();
    let mut attributes = vec![
        attr::named_str(context, "cell", cell_name(attrs.cell)),
        attr::named_str(context, "direction", attrs.direction.name()),
        attr::named_i64(context, "hidden_size", attrs.hidden_size as i64),
        (
            Identifier::new(context, "activations"),
            ArrayAttribute::new(context, &names).into(),
        ),
        (
            Identifier::new(context, SEGMENTS_ATTR),
            DenseI32ArrayAttribute::new(context, &segments).into(),
        ),
    ];
    if !params.is_empty() {
        attributes.push((
            Identifier::new(context, "activation_params"),
            f32_array_attribute(context, &params),
        ));
    }
    if let Some(clip) = attrs.clip {
        attributes.push(attr::named_f32(context, "clip", clip));
    }
    if let Some(lens) = &attrs.sequence_lens {
        let lens: Vec<i64> = lens.iter().map(|&l| l as i64).collect();
        attributes.push(attr::named_i64_array(context, "sequence_lens", &lens));
    }
    match attrs.cell {
        Cell::Gru {
            linear_before_reset: true,
        } => attributes.push(attr::named_unit(context, "linear_before_reset")),
        Cell::Lstm { input_forget: true } => {
            attributes.push(attr::named_unit(context, "input_forget"))
        }
        _ => {}
    }
    if attrs.batch_major {
        attributes.push(attr::named_unit(context, "batch_major"));
    }
    build(
        OperationBuilder::new(RECURRENT, location)
            .add_operands(&values)
            .add_attributes(&attributes)
            .add_results(results),
    )
}

/// The operands of a `grim.recurrent` (`None` when its segments are malformed).
pub fn recurrent_operands<'c: 'a, 'a>(
    op: &impl OperationLike<'c, 'a>,
) -> Option<RecurrentOperands<'c, 'a>> {
    let segments = super::segments(op)?;
    let [1, 1, 1, rest @ ..] = &segments[..] else {
        return None;
    };
    if rest.len() != 4 || rest.iter().any(|s| !(0..=1).contains(s)) {
        return None;
    }
    if op.operand_count() != 3 + rest.iter().sum::<i32>() as usize {
        return None;
    }
    let mut next = 3;
    let mut take = |present: i32| {
        (present == 1).then(|| {
            next += 1;
            op.operand(next - 1).ok()
        })
    };
    let (bias, initial_h, initial_c, peepholes) =
        (take(rest[0]), take(rest[1]), take(rest[2]), take(rest[3]));
    Some(RecurrentOperands {
        input: op.operand(0).ok()?,
        weight: op.operand(1).ok()?,
        recurrence: op.operand(2).ok()?,
        bias: bias.flatten(),
        initial_h: initial_h.flatten(),
        initial_c: initial_c.flatten(),
        peepholes: peepholes.flatten(),
    })
}

/// The attributes of a `grim.recurrent`, or what is malformed.
pub fn recurrent_attrs<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Result<Recurrent, String> {
    let cell = match attr::string(op, "cell").as_deref() {
        Some("rnn") => Cell::Rnn,
        Some("gru") => Cell::Gru {
            linear_before_reset: op.has_attribute("linear_before_reset"),
        },
        Some("lstm") => Cell::Lstm {
            input_forget: op.has_attribute("input_forget"),
        },
        other => {
            return Err(format!(
                "cell must be \"rnn\", \"gru\" or \"lstm\", got {}",
                other.map_or("none".into(), |o| format!("\"{o}\""))
            ))
        }
    };
    let direction = match attr::string(op, "direction").as_deref() {
        Some("forward") => Direction::Forward,
        Some("reverse") => Direction::Reverse,
        Some("bidirectional") => Direction::Bidirectional,
        other => {
            return Err(format!(
                "direction must be \"forward\", \"reverse\" or \"bidirectional\", got {}",
                other.map_or("none".into(), |o| format!("\"{o}\""))
            ))
        }
    };
    let hidden_size = attr::int(op, "hidden_size")
        .filter(|h| *h >= 1)
        .ok_or("hidden_size must be an integer >= 1")? as usize;
    let names =
        attr::strings(op, "activations").ok_or("activations must be an array of strings")?;
    let params = match op.attribute("activation_params") {
        Ok(a) => f32_array(a).ok_or("activation_params must be an array<f32>")?,
        Err(_) => Vec::new(),
    };
    let mut params = params.iter();
    let mut take = |name: &str| {
        params.next().copied().ok_or(format!(
            "activation '{name}' is missing its parameters in activation_params"
        ))
    };
    let mut activations = Vec::new();
    for name in &names {
        activations.push(match name.as_str() {
            "sigmoid" => RecurrentActivation::Sigmoid,
            "tanh" => RecurrentActivation::Tanh,
            "relu" => RecurrentActivation::Relu,
            "leaky_relu" => RecurrentActivation::LeakyRelu { alpha: take(name)? },
            "hard_sigmoid" => RecurrentActivation::HardSigmoid {
                alpha: take(name)?,
                beta: take(name)?,
            },
            other => {
                return Err(format!(
                    "unknown recurrent activation '{other}' (sigmoid, tanh, relu, leaky_relu, hard_sigmoid)"
                ))
            }
        });
    }
    if params.next().is_some() {
        return Err("activation_params has more values than the activations take".into());
    }
    let clip = match op.attribute("clip") {
        Ok(_) => Some(attr::float(op, "clip").ok_or("clip must be an f32")?),
        Err(_) => None,
    };
    let sequence_lens = match op.attribute("sequence_lens") {
        Ok(_) => Some(
            attr::i64_array(op, "sequence_lens")
                .ok_or("sequence_lens must be an array<i64>")?
                .iter()
                .map(|&l| usize::try_from(l).unwrap_or(0))
                .collect(),
        ),
        Err(_) => None,
    };
    let operands = recurrent_operands(op).ok_or(
        "operandSegmentSizes must be array<i32: 1, 1, 1, b, h, c, p> with b, h, c, p in {0, 1}",
    )?;
    Ok(Recurrent {
        cell,
        direction,
        hidden_size,
        batch_major: op.has_attribute("batch_major"),
        clip,
        activations,
        sequence_lens,
        optional: Optional {
            bias: operands.bias.is_some(),
            initial_h: operands.initial_h.is_some(),
            initial_c: operands.initial_c.is_some(),
            peepholes: operands.peepholes.is_some(),
        },
    })
}

/// The verifier's check: operand shapes (`ins`, in operand order) by the
/// model's rule, and the results' (`outs`).
pub(super) fn check(attrs: &Recurrent, ins: &[Vec<i64>], outs: &[Vec<i64>]) -> Result<(), String> {
    let ins: Vec<Vec<usize>> = ins
        .iter()
        .map(|s| s.iter().map(|&d| d.max(0) as usize).collect())
        .collect();
    let refs: Vec<&[usize]> = ins.iter().map(Vec::as_slice).collect();
    let want = attrs.output_shapes("", &refs).map_err(|e| match e {
        grim_model::ModelError::Shape { message, .. } => message,
        other => other.to_string(),
    })?;
    let got: Vec<Vec<usize>> = outs
        .iter()
        .map(|s| s.iter().map(|&d| d.max(0) as usize).collect())
        .collect();
    if got != want {
        return Err(format!("results must be {want:?}, got {got:?}"));
    }
    Ok(())
}
