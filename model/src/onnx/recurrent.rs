//! Importing ONNX RNN, GRU and LSTM nodes.
//!
//! Their inputs are positional with empty names for omitted ones
//! (`X, W, R, B, sequence_lens, initial_h, initial_c, P`), and so are
//! their outputs (`Y, Y_h, Y_c`, any of them unused). The node keeps the
//! present float operands in order ([`Optional`] says which) and every
//! output position; `sequence_lens`, an integer tensor, must be a constant
//! and becomes an attribute.

use std::collections::BTreeMap;

use crate::error::ModelError;
use crate::graph::Op;
use crate::recurrent::{Cell, Direction, Optional, Recurrent, RecurrentActivation};

use super::attrs::Attrs;
use super::proto::NodeProto;

/// The op of a recurrent node and its graph inputs (present operands in
/// order); the names it consumed as constants go into `folded`.
pub(super) fn recurrent_op(
    at: &Attrs,
    np: &NodeProto,
    ints: &BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    folded: &mut Vec<String>,
) -> Result<(Op, Vec<String>), ModelError> {
    let mut hidden_size = None;
    let mut direction = Direction::Forward;
    let mut batch_major = false;
    let mut clip = None;
    let mut names: Option<Vec<String>> = None;
    let (mut alphas, mut betas): (Vec<f32>, Vec<f32>) = (Vec::new(), Vec::new());
    let mut linear_before_reset = false;
    let mut input_forget = false;
    for a in &np.attribute {
        match (a.name.as_str(), np.op_type.as_str()) {
            ("hidden_size", _) => {
                let h = at.int(a)?;
                hidden_size =
                    Some(usize::try_from(h).ok().filter(|h| *h >= 1).ok_or_else(|| {
                        at.unsupported(format!("hidden_size {h} must be at least 1"))
                    })?);
            }
            ("direction", _) => {
                direction = match at.string(a)?.as_str() {
                    "forward" => Direction::Forward,
                    "reverse" => Direction::Reverse,
                    "bidirectional" => Direction::Bidirectional,
                    other => {
                        return Err(at.unsupported(format!(
                            "direction '{other}' (expected forward, reverse or bidirectional)"
                        )))
                    }
                }
            }
            ("layout", _) => batch_major = at.bool01(a)?,
            ("clip", _) => {
                let c = at.float(a)?;
                if !(c > 0.0) {
                    return Err(at.unsupported(format!("clip {c} must be positive")));
                }
                clip = Some(c);
            }
            ("activations", _) => names = Some(at.strings(a)?),
            ("activation_alpha", _) => alphas = at.floats(a)?.to_vec(),
            ("activation_beta", _) => betas = at.floats(a)?.to_vec(),
            ("linear_before_reset", "GRU") => linear_before_reset = at.bool01(a)?,
            ("input_forget", "LSTM") => input_forget = at.bool01(a)?,
            _ => return Err(at.unknown(a)),
        }
    }
    let cell = match np.op_type.as_str() {
        "RNN" => Cell::Rnn,
        "GRU" => Cell::Gru {
            linear_before_reset,
        },
        _ => Cell::Lstm { input_forget },
    };
    let hidden_size =
        hidden_size.ok_or_else(|| at.unsupported("missing attribute 'hidden_size'".into()))?;
    let per_direction = cell.activations_per_direction();
    let activations = match names {
        None => (0..direction.count())
            .flat_map(|_| cell.default_activations())
            .collect(),
        Some(names) => {
            if names.len() != per_direction * direction.count() {
                return Err(at.unsupported(format!(
                    "activations {names:?}: a {} {} takes {} ({per_direction} per direction)",
                    direction.name(),
                    cell.op_type(),
                    per_direction * direction.count()
                )));
            }
            activations(at, &names, &alphas, &betas)?
        }
    };

    let input = |i: usize| np.input.get(i).filter(|s| !s.is_empty()).cloned();
    let mut inputs = Vec::new();
    for (i, what) in ["X", "W", "R"].iter().enumerate() {
        inputs.push(
            input(i)
                .ok_or_else(|| at.unsupported(format!("the required input {what} is missing")))?,
        );
    }
    let lstm = matches!(cell, Cell::Lstm { .. });
    if !lstm && np.input.len() > 6 {
        return Err(at.unsupported(format!(
            "{} takes at most 6 inputs, got {}",
            cell.op_type(),
            np.input.len()
        )));
    }
    if np.input.len() > 8 {
        return Err(at.unsupported(format!(
            "LSTM takes at most 8 inputs, got {}",
            np.input.len()
        )));
    }
    let sequence_lens = match input(4) {
        None => None,
        Some(name) => {
            let (_, lens) = ints.get(&name).ok_or_else(|| {
                at.unsupported(format!(
                    "sequence_lens '{name}' must be a constant (an initializer or Constant): grim \
                     compiles for static shapes"
                ))
            })?;
            folded.push(name);
            Some(
                lens.iter()
                    .map(|&l| usize::try_from(l).unwrap_or(0))
                    .collect(),
            )
        }
    };
    let mut optional = Optional::default();
    for (position, flag) in [
        (3, &mut optional.bias),
        (5, &mut optional.initial_h),
        (6, &mut optional.initial_c),
        (7, &mut optional.peepholes),
    ] {
        if let Some(name) = input(position) {
            *flag = true;
            inputs.push(name);
        }
    }
    let outputs = np.output.len();
    if outputs > cell.outputs() {
        return Err(at.unsupported(format!(
            "{} has at most {} outputs, got {outputs}",
            cell.op_type(),
            cell.outputs()
        )));
    }
    Ok((
        Op::Recurrent(Box::new(Recurrent {
            cell,
            direction,
            hidden_size,
            batch_major,
            clip,
            activations,
            sequence_lens,
            optional,
        })),
        inputs,
    ))
}

/// The activations named, each taking its alpha and beta (for those with
/// parameters) from the lists in order, with ONNX's defaults past their end.
fn activations(
    at: &Attrs,
    names: &[String],
    alphas: &[f32],
    betas: &[f32],
) -> Result<Vec<RecurrentActivation>, ModelError> {
    let (mut alphas, mut betas) = (alphas.iter(), betas.iter());
    names
        .iter()
        .map(|name| {
            Ok(match name.to_ascii_lowercase().as_str() {
                "sigmoid" => RecurrentActivation::Sigmoid,
                "tanh" => RecurrentActivation::Tanh,
                "relu" => RecurrentActivation::Relu,
                "leakyrelu" => RecurrentActivation::LeakyRelu {
                    alpha: alphas.next().copied().unwrap_or(0.01),
                },
                "hardsigmoid" => RecurrentActivation::HardSigmoid {
                    alpha: alphas.next().copied().unwrap_or(0.2),
                    beta: betas.next().copied().unwrap_or(0.5),
                },
                _ => {
                    return Err(at.unsupported(format!(
                        "activation '{name}' is not supported (supported: Sigmoid, Tanh, Relu, \
                         LeakyRelu, HardSigmoid)"
                    )))
                }
            })
        })
        .collect()
}

impl RecurrentActivation {
    /// The ONNX name and the alpha/beta it takes.
    fn onnx(self) -> (&'static str, Option<f32>, Option<f32>) {
        match self {
            RecurrentActivation::Sigmoid => ("Sigmoid", None, None),
            RecurrentActivation::Tanh => ("Tanh", None, None),
            RecurrentActivation::Relu => ("Relu", None, None),
            RecurrentActivation::LeakyRelu { alpha } => ("LeakyRelu", Some(alpha), None),
            RecurrentActivation::HardSigmoid { alpha, beta } => {
                ("HardSigmoid", Some(alpha), Some(beta))
            }
        }
    }
}

/// The ONNX form of a recurrent node: its attributes, and its positional
/// inputs from the node's present ones (`sequence_lens` as the int32
/// initializer `lens_name`, which the caller adds).
pub(super) fn export(
    r: &Recurrent,
    present: &[String],
    lens_name: Option<&str>,
) -> (Vec<super::proto::AttributeProto>, Vec<String>) {
    use super::attr_type;
    use super::export::{attr_f, attr_i};
    use super::proto::AttributeProto;
    let mut attributes = vec![
        attr_i("hidden_size", r.hidden_size as i64),
        AttributeProto {
            name: "direction".into(),
            s: r.direction.name().as_bytes().to_vec(),
            r#type: attr_type::STRING,
            ..Default::default()
        },
    ];
    if r.batch_major {
        attributes.push(attr_i("layout", 1));
    }
    if let Some(c) = r.clip {
        attributes.push(attr_f("clip", c));
    }
    match r.cell {
        Cell::Gru {
            linear_before_reset: true,
        } => attributes.push(attr_i("linear_before_reset", 1)),
        Cell::Lstm { input_forget: true } => attributes.push(attr_i("input_forget", 1)),
        _ => {}
    }
    let defaults: Vec<RecurrentActivation> = (0..r.direction.count())
        .flat_map(|_| r.cell.default_activations())
        .collect();
    if r.activations != defaults {
        let (mut names, mut alphas, mut betas) = (Vec::new(), Vec::new(), Vec::new());
        for a in &r.activations {
            let (name, alpha, beta) = a.onnx();
            names.push(name.as_bytes().to_vec());
            alphas.extend(alpha);
            betas.extend(beta);
        }
        attributes.push(AttributeProto {
            name: "activations".into(),
            strings: names,
            r#type: attr_type::STRINGS,
            ..Default::default()
        });
        for (name, values) in [("activation_alpha", alphas), ("activation_beta", betas)] {
            if !values.is_empty() {
                attributes.push(AttributeProto {
                    name: name.into(),
                    floats: values,
                    r#type: attr_type::FLOATS,
                    ..Default::default()
                });
            }
        }
    }
    let mut inputs: Vec<String> = present[..3].to_vec();
    let mut rest = present[3..].iter();
    let mut take = |flag: bool| {
        if flag {
            rest.next().cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let o = r.optional;
    inputs.push(take(o.bias));
    inputs.push(lens_name.unwrap_or_default().to_string());
    inputs.push(take(o.initial_h));
    inputs.push(take(o.initial_c));
    inputs.push(take(o.peepholes));
    while inputs.last().is_some_and(String::is_empty) {
        inputs.pop();
    }
    (attributes, inputs)
}
