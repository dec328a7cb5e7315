//! Activations: one type for the standalone ops (`grim.relu`, `grim.clip`,
//! ...) and for the epilogue a product carries after fusion
//! (`activation = "clip", activation_params = array<f32: 0.0, 6.0>`), so the
//! two spellings cannot drift apart.

use crate::attr;
use melior::{
    ir::{
        attribute::FloatAttribute, operation::OperationLike, Attribute, AttributeLike, Identifier,
    },
    Context,
};

/// Epilogue attribute of a product: the activation's kind (its op name
/// without `grim.`).
pub const ACTIVATION_ATTR: &str = "activation";
/// Epilogue attribute of a product: the activation's parameters
/// (`array<f32: ...>`, see [`Activation::params`]).
pub const ACTIVATION_PARAMS_ATTR: &str = "activation_params";

/// An elementwise activation (ONNX semantics).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `max(x, 0)`.
    Relu,
    /// `min(max(x, min), max)`, a bound absent when `None` (ReLU6 is 0..6).
    Clip {
        /// Lower bound.
        min: Option<f32>,
        /// Upper bound.
        max: Option<f32>,
    },
    /// `x` if `x >= 0`, else `alpha * x`.
    LeakyRelu {
        /// Slope below zero.
        alpha: f32,
    },
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x * max(0, min(1, x / 6 + 1 / 2))`.
    HardSwish,
}

impl Activation {
    /// The kind's name: the standalone op is `grim.<kind>`.
    pub fn kind(&self) -> &'static str {
        match self {
            Activation::Relu => "relu",
            Activation::Clip { .. } => "clip",
            Activation::LeakyRelu { .. } => "leaky_relu",
            Activation::Sigmoid => "sigmoid",
            Activation::Tanh => "tanh",
            Activation::HardSigmoid { .. } => "hard_sigmoid",
            Activation::HardSwish => "hard_swish",
        }
    }

    /// The standalone op's name.
    pub fn op_name(&self) -> String {
        format!("grim.{}", self.kind())
    }

    /// Parameters as the epilogue stores them: clip `[min, max]` with an
    /// absent bound as -inf / +inf, leaky relu `[alpha]`, hard sigmoid
    /// `[alpha, beta]`, none for the others.
    pub fn params(&self) -> Vec<f32> {
        match *self {
            Activation::Clip { min, max } => vec![
                min.unwrap_or(f32::NEG_INFINITY),
                max.unwrap_or(f32::INFINITY),
            ],
            Activation::LeakyRelu { alpha } => vec![alpha],
            Activation::HardSigmoid { alpha, beta } => vec![alpha, beta],
            _ => vec![],
        }
    }

    /// The activation of `kind` with the epilogue's `params`.
    pub fn from_parts(kind: &str, params: &[f32]) -> Result<Activation, String> {
        let want = |n: usize| {
            if params.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "activation '{kind}' takes {n} parameters, got {}",
                    params.len()
                ))
            }
        };
        let bound = |v: f32| v.is_finite().then_some(v);
        Ok(match kind {
            "relu" => {
                want(0)?;
                Activation::Relu
            }
            "clip" => {
                want(2)?;
                Activation::Clip {
                    min: bound(params[0]),
                    max: bound(params[1]),
                }
            }
            "leaky_relu" => {
                want(1)?;
                Activation::LeakyRelu { alpha: params[0] }
            }
            "sigmoid" => {
                want(0)?;
                Activation::Sigmoid
            }
            "tanh" => {
                want(0)?;
                Activation::Tanh
            }
            "hard_sigmoid" => {
                want(2)?;
                Activation::HardSigmoid {
                    alpha: params[0],
                    beta: params[1],
                }
            }
            "hard_swish" => {
                want(0)?;
                Activation::HardSwish
            }
            other => return Err(format!("unknown activation '{other}'")),
        })
    }

    /// The value for one input, in f64 (the reference semantics the
    /// generated code and graph rewrites must match).
    pub fn apply(&self, x: f64) -> f64 {
        match *self {
            Activation::Relu => x.max(0.0),
            Activation::Clip { min, max } => {
                let low = min.map_or(x, |m| x.max(m as f64));
                max.map_or(low, |m| low.min(m as f64))
            }
            Activation::LeakyRelu { alpha } => {
                if x >= 0.0 {
                    x
                } else {
                    alpha as f64 * x
                }
            }
            Activation::Sigmoid => 1.0 / (1.0 + (-x).exp()),
            Activation::Tanh => x.tanh(),
            Activation::HardSigmoid { alpha, beta } => {
                (alpha as f64 * x + beta as f64).clamp(0.0, 1.0)
            }
            Activation::HardSwish => x * (x / 6.0 + 0.5).clamp(0.0, 1.0),
        }
    }

    /// The attributes of the standalone op (`grim.clip {min, max}`, ...).
    pub fn op_attributes<'c>(&self, context: &'c Context) -> Vec<(Identifier<'c>, Attribute<'c>)> {
        let f32_attr = |name: &str, value: f32| {
            (
                Identifier::new(context, name),
                FloatAttribute::new(context, melior::ir::Type::float32(context), value as f64)
                    .into(),
            )
        };
        match *self {
            Activation::Clip { min, max } => min
                .map(|v| f32_attr("min", v))
                .into_iter()
                .chain(max.map(|v| f32_attr("max", v)))
                .collect(),
            Activation::LeakyRelu { alpha } => vec![f32_attr("alpha", alpha)],
            Activation::HardSigmoid { alpha, beta } => {
                vec![f32_attr("alpha", alpha), f32_attr("beta", beta)]
            }
            _ => vec![],
        }
    }

    /// The activation a standalone op computes (`None` for other ops, or
    /// when a required attribute is missing).
    pub fn of_op<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<Activation> {
        let name = op.name().as_string_ref().as_str().ok()?.to_string();
        let float = |n: &str| attr::float(op, n);
        Some(match name.strip_prefix("grim.")? {
            "relu" => Activation::Relu,
            "clip" => Activation::Clip {
                min: float("min"),
                max: float("max"),
            },
            "leaky_relu" => Activation::LeakyRelu {
                alpha: float("alpha")?,
            },
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "hard_sigmoid" => Activation::HardSigmoid {
                alpha: float("alpha")?,
                beta: float("beta")?,
            },
            "hard_swish" => Activation::HardSwish,
            _ => return None,
        })
    }

    /// The epilogue attributes of a product that applies this activation.
    pub fn epilogue_attributes<'c>(
        &self,
        context: &'c Context,
    ) -> Vec<(Identifier<'c>, Attribute<'c>)> {
        let mut attributes = vec![attr::named_str(context, ACTIVATION_ATTR, self.kind())];
        let params = self.params();
        if !params.is_empty() {
            attributes.push((
                Identifier::new(context, ACTIVATION_PARAMS_ATTR),
                f32_array_attribute(context, &params),
            ));
        }
        attributes
    }

    /// A product's epilogue activation: `Ok(None)` without one, an error
    /// naming what is wrong when the attributes are malformed.
    pub fn of_epilogue<'c: 'a, 'a>(
        op: &impl OperationLike<'c, 'a>,
    ) -> Result<Option<Activation>, String> {
        let Some(kind) = attr::string(op, ACTIVATION_ATTR) else {
            if op.has_attribute(ACTIVATION_ATTR) {
                return Err(format!("'{ACTIVATION_ATTR}' must be a string"));
            }
            return Ok(None);
        };
        let params = match op.attribute(ACTIVATION_PARAMS_ATTR) {
            Err(_) => Vec::new(),
            Ok(attribute) => f32_array(attribute)
                .ok_or_else(|| format!("'{ACTIVATION_PARAMS_ATTR}' must be an array<f32>"))?,
        };
        Activation::from_parts(&kind, &params).map(Some)
    }
}

/// `array<f32: ...>` (melior wraps only the integer dense arrays).
pub fn f32_array_attribute<'c>(context: &'c Context, values: &[f32]) -> Attribute<'c> {
    // SAFETY: the context is alive and the values are copied during the call.
    unsafe {
        Attribute::from_raw(mlir_sys::mlirDenseF32ArrayGet(
            context.to_raw(),
            values.len() as isize,
            values.as_ptr(),
        ))
    }
}

/// The values of an `array<f32: ...>` attribute.
pub fn f32_array(attribute: Attribute) -> Option<Vec<f32>> {
    let raw = attribute.to_raw();
    // SAFETY: read-only queries, checked to be a dense f32 array first.
    unsafe {
        if !mlir_sys::mlirAttributeIsADenseF32Array(raw) {
            return None;
        }
        Some(
            (0..mlir_sys::mlirDenseArrayGetNumElements(raw))
                .map(|i| mlir_sys::mlirDenseF32ArrayGetElement(raw, i))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters_round_trip() {
        for activation in [
            Activation::Relu,
            Activation::Clip {
                min: Some(0.0),
                max: Some(6.0),
            },
            Activation::Clip {
                min: None,
                max: Some(1.5),
            },
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Activation::HardSwish,
        ] {
            let back = Activation::from_parts(activation.kind(), &activation.params());
            assert_eq!(back, Ok(activation));
        }
        assert!(Activation::from_parts("clip", &[1.0]).is_err());
        assert!(Activation::from_parts("gelu", &[]).is_err());
    }

    #[test]
    fn values_follow_onnx() {
        let relu6 = Activation::Clip {
            min: Some(0.0),
            max: Some(6.0),
        };
        assert_eq!(relu6.apply(-1.0), 0.0);
        assert_eq!(relu6.apply(7.0), 6.0);
        assert_eq!(Activation::LeakyRelu { alpha: 0.5 }.apply(-2.0), -1.0);
        assert_eq!(Activation::HardSwish.apply(-3.0), 0.0);
        assert_eq!(Activation::HardSwish.apply(3.0), 3.0);
        assert!((Activation::HardSwish.apply(1.0) - 1.0 * (1.0 / 6.0 + 0.5)).abs() < 1e-12);
        assert!((Activation::Sigmoid.apply(0.0) - 0.5).abs() < 1e-12);
    }
}
