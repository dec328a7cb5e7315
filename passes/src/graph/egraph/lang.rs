//! The e-graph language of a grim function: one node per grim op, op
//! attributes as one typed leaf (never positional children), and constant
//! expressions that are evaluated when the function is rebuilt.
//!
//! Node children, by kind:
//!
//! | node | children |
//! |---|---|
//! | `gemm`, `conv` | attrs, activation, name, input, weight, bias or `none`, residual or `none` |
//! | `bn` | epsilon, name, x, scale, bias, mean, var |
//! | `act` | activation, name, x |
//! | `add` | name, a, b |
//! | `transpose`, `identity` | name, x |
//! | `reshape` | shape, name, x |
//! | `bn-weight` | epsilon, weight, scale, var |
//! | `bn-bias` | epsilon, bn bias, product bias or `none`, scale, mean, var |
//! | `scale` | factor, c |
//! | `const-transpose` | c |
//! | `const-as` | shape, c (reshaped, or broadcast to the shape) |
//! | `const-add` | a, b (broadcast) |
//!
//! A `name` leaf indexes the function's table of op locations, so a
//! rebuilt op keeps its ONNX node name (a fused product keeps the
//! product's). Ops the language does not model are `Opaque`: kept as they
//! are, with their operands as children; an op with several results has
//! one `Result` node per result past the first, a child of its `Opaque`.

use grim_dialects::grim::{Activation, ConvAttrs, GemmAttrs};
use std::{fmt, str::FromStr};

// egg's macro cannot carry docs on variants; the module doc's table is
// their documentation.
#[allow(missing_docs)]
mod nodes {
    use super::{Leaf, OpaqueOp, ResultOf};
    use egg::{define_language, Id};

    define_language! {
        /// A grim function as an e-graph language (see the module doc).
        pub enum Node {
            "gemm" = Gemm([Id; 7]),
            "conv" = Conv([Id; 7]),
            "bn" = BatchNorm([Id; 7]),
            "act" = Act([Id; 3]),
            "add" = Add([Id; 3]),
            "transpose" = Transpose([Id; 2]),
            "reshape" = Reshape([Id; 3]),
            "identity" = Identity([Id; 2]),
            "bn-weight" = BnWeight([Id; 4]),
            "bn-bias" = BnBias([Id; 6]),
            "scale" = Scale([Id; 2]),
            "const-transpose" = ConstTranspose(Id),
            "const-as" = ConstAs([Id; 2]),
            "const-add" = ConstAdd([Id; 2]),
            Leaf(Leaf),
            Opaque(OpaqueOp, Vec<Id>),
            Result(ResultOf, Vec<Id>),
        }
    }
}

pub use nodes::Node;

impl Node {
    /// Whether the node is a constant expression (evaluated at rebuild).
    pub fn is_constant_expression(&self) -> bool {
        matches!(
            self,
            Node::BnWeight(_)
                | Node::BnBias(_)
                | Node::Scale(_)
                | Node::ConstTranspose(_)
                | Node::ConstAs(_)
                | Node::ConstAdd(_)
        )
    }
}

/// An op the language does not model, by its index in the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpaqueOp(pub usize);

impl fmt::Display for OpaqueOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "op:{}", self.0)
    }
}

impl FromStr for OpaqueOp {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.strip_prefix("op:")
            .and_then(|n| n.parse().ok())
            .map(OpaqueOp)
            .ok_or_else(|| format!("not an opaque op: '{text}'"))
    }
}

/// Result `index` of opaque op `op`, whose only child is that op's node:
/// how an op with several results (`grim.recurrent`) enters the e-graph,
/// the opaque node itself standing for its first result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ResultOf {
    /// The opaque op's index.
    pub op: usize,
    /// The result's index.
    pub index: usize,
}

impl fmt::Display for ResultOf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "result:{}.{}", self.op, self.index)
    }
}

impl FromStr for ResultOf {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        text.strip_prefix("result:")
            .and_then(|rest| rest.split_once('.'))
            .and_then(|(op, index)| {
                Some(ResultOf {
                    op: op.parse().ok()?,
                    index: index.parse().ok()?,
                })
            })
            .ok_or_else(|| format!("not an op result: '{text}'"))
    }
}

/// An f32 kept as its bits, so leaves can be hashed and ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bits(pub u32);

impl Bits {
    /// The value.
    pub fn value(self) -> f32 {
        f32::from_bits(self.0)
    }
}

impl From<f32> for Bits {
    fn from(value: f32) -> Self {
        Bits(value.to_bits())
    }
}

/// A gemm's ONNX attributes, as a leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GemmLeaf {
    /// `alpha`.
    pub alpha: Bits,
    /// `beta`.
    pub beta: Bits,
    /// `trans_a`.
    pub trans_a: bool,
    /// `trans_b`.
    pub trans_b: bool,
}

impl GemmLeaf {
    /// The dialect's form.
    pub fn attrs(&self) -> GemmAttrs {
        GemmAttrs {
            alpha: self.alpha.value(),
            beta: self.beta.value(),
            trans_a: self.trans_a,
            trans_b: self.trans_b,
        }
    }
}

impl From<GemmAttrs> for GemmLeaf {
    fn from(attrs: GemmAttrs) -> Self {
        GemmLeaf {
            alpha: attrs.alpha.into(),
            beta: attrs.beta.into(),
            trans_a: attrs.trans_a,
            trans_b: attrs.trans_b,
        }
    }
}

/// An activation, as a leaf (`None`: a product without one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ActLeaf {
    /// No activation.
    None,
    /// An activation: its kind's name and up to two parameters.
    Some(&'static str, [Bits; 2]),
}

impl ActLeaf {
    /// The activation (`None` for [`ActLeaf::None`]).
    pub fn activation(&self) -> Option<Activation> {
        match *self {
            ActLeaf::None => None,
            ActLeaf::Some(kind, params) => {
                let count = Activation::from_parts(kind, &[])
                    .map(|_| 0)
                    .or_else(|_| Activation::from_parts(kind, &[0.0]).map(|_| 1))
                    .unwrap_or(2);
                let values: Vec<f32> = params[..count].iter().map(|b| b.value()).collect();
                Activation::from_parts(kind, &values).ok()
            }
        }
    }
}

impl From<Option<Activation>> for ActLeaf {
    fn from(activation: Option<Activation>) -> Self {
        match activation {
            None => ActLeaf::None,
            Some(activation) => {
                let params = activation.params();
                let bits = |i: usize| Bits::from(params.get(i).copied().unwrap_or(0.0));
                ActLeaf::Some(activation.kind(), [bits(0), bits(1)])
            }
        }
    }
}

/// The kinds an [`ActLeaf`] can name (static strings for the leaf).
const ACTIVATION_KINDS: [&str; 7] = [
    "relu",
    "clip",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "hard_sigmoid",
    "hard_swish",
];

/// A leaf: an operand that is not an op, or an op's attribute.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Leaf {
    /// An absent operand (a product without bias or residual).
    None,
    /// The function's argument of this index.
    Input(usize),
    /// The function's constant of this index.
    Const(usize),
    /// The op location of this index (an ONNX node name).
    Name(usize),
    /// An activation.
    Act(ActLeaf),
    /// Gemm attributes.
    Gemm(GemmLeaf),
    /// Conv geometry.
    Conv(ConvAttrs),
    /// A static shape.
    Shape(Vec<i64>),
    /// An f32 attribute (epsilon, a scale factor).
    F32(Bits),
}

fn join(values: &[i64]) -> String {
    values
        .iter()
        .map(|v| v.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn ints(text: &str) -> Result<Vec<i64>, String> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|v| v.parse().map_err(|_| format!("not an integer: '{v}'")))
        .collect()
}

impl fmt::Display for Leaf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Leaf::None => write!(f, "none"),
            Leaf::Input(i) => write!(f, "in:{i}"),
            Leaf::Const(i) => write!(f, "c:{i}"),
            Leaf::Name(i) => write!(f, "name:{i}"),
            Leaf::Act(ActLeaf::None) => write!(f, "act:none"),
            Leaf::Act(ActLeaf::Some(kind, [a, b])) => write!(f, "act:{kind}:{}:{}", a.0, b.0),
            Leaf::Gemm(g) => write!(
                f,
                "gemm:{}:{}:{}:{}",
                g.alpha.0, g.beta.0, g.trans_a as u8, g.trans_b as u8
            ),
            Leaf::Conv(c) => {
                write!(
                    f,
                    "conv:{}:{}:{}",
                    join(&c.strides),
                    join(&c.pads),
                    join(&c.dilations)
                )?;
                // Groups only when grouped, so plain convs print as before.
                if c.group != 1 {
                    write!(f, ":{}", c.group)?;
                }
                Ok(())
            }
            Leaf::Shape(s) => write!(f, "shape:{}", join(s)),
            Leaf::F32(b) => write!(f, "f32:{}", b.0),
        }
    }
}

impl FromStr for Leaf {
    type Err = String;

    /// Parses the form [`fmt::Display`] writes; rules spell the literals
    /// `none`, `act:none` and `gemm:canonical`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bits = |v: &str| {
            v.parse::<u32>()
                .map(Bits)
                .map_err(|_| format!("not f32 bits: '{v}'"))
        };
        let index = |v: &str| {
            v.parse::<usize>()
                .map_err(|_| format!("not an index: '{v}'"))
        };
        if text == "none" {
            return Ok(Leaf::None);
        }
        if text == "act:none" {
            return Ok(Leaf::Act(ActLeaf::None));
        }
        if text == "gemm:canonical" {
            return Ok(Leaf::Gemm(GemmAttrs::CANONICAL.into()));
        }
        let (tag, rest) = text
            .split_once(':')
            .ok_or_else(|| format!("not a leaf: '{text}'"))?;
        match tag {
            "in" => Ok(Leaf::Input(index(rest)?)),
            "c" => Ok(Leaf::Const(index(rest)?)),
            "name" => Ok(Leaf::Name(index(rest)?)),
            "shape" => Ok(Leaf::Shape(ints(rest)?)),
            "f32" => Ok(Leaf::F32(bits(rest)?)),
            "act" => {
                let parts: Vec<&str> = rest.split(':').collect();
                let [kind, a, b] = parts[..] else {
                    return Err(format!("not an activation leaf: '{text}'"));
                };
                let kind = ACTIVATION_KINDS
                    .iter()
                    .find(|k| **k == kind)
                    .ok_or_else(|| format!("unknown activation '{kind}'"))?;
                Ok(Leaf::Act(ActLeaf::Some(kind, [bits(a)?, bits(b)?])))
            }
            "gemm" => {
                let parts: Vec<&str> = rest.split(':').collect();
                let [alpha, beta, trans_a, trans_b] = parts[..] else {
                    return Err(format!("not a gemm leaf: '{text}'"));
                };
                Ok(Leaf::Gemm(GemmLeaf {
                    alpha: bits(alpha)?,
                    beta: bits(beta)?,
                    trans_a: trans_a == "1",
                    trans_b: trans_b == "1",
                }))
            }
            "conv" => {
                let parts: Vec<&str> = rest.split(':').collect();
                let (strides, pads, dilations, group) = match parts[..] {
                    [s, p, d] => (s, p, d, 1),
                    [s, p, d, g] => (
                        s,
                        p,
                        d,
                        g.parse().map_err(|_| format!("bad group in '{text}'"))?,
                    ),
                    _ => return Err(format!("not a conv leaf: '{text}'")),
                };
                let fixed = |v: Vec<i64>, n: usize| {
                    if v.len() == n {
                        Ok(v)
                    } else {
                        Err(format!("conv leaf '{text}' needs {n} values"))
                    }
                };
                let (s, p, d) = (
                    fixed(ints(strides)?, 2)?,
                    fixed(ints(pads)?, 4)?,
                    fixed(ints(dilations)?, 2)?,
                );
                Ok(Leaf::Conv(ConvAttrs {
                    strides: [s[0], s[1]],
                    pads: [p[0], p[1], p[2], p[3]],
                    dilations: [d[0], d[1]],
                    group,
                }))
            }
            _ => Err(format!("not a leaf: '{text}'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_print_and_parse_back() {
        let leaves = [
            Leaf::None,
            Leaf::Input(2),
            Leaf::Const(7),
            Leaf::Name(3),
            Leaf::Act(ActLeaf::None),
            Leaf::Act(ActLeaf::from(Some(Activation::Clip {
                min: Some(0.0),
                max: Some(6.0),
            }))),
            Leaf::Gemm(GemmAttrs::ONNX_DEFAULT.into()),
            Leaf::Conv(ConvAttrs {
                strides: [2, 1],
                pads: [1, 0, 1, 0],
                dilations: [1, 1],
                group: 1,
            }),
            Leaf::Conv(ConvAttrs {
                strides: [1, 1],
                pads: [1; 4],
                dilations: [1, 1],
                group: 32,
            }),
            Leaf::Shape(vec![1, 64]),
            Leaf::Shape(vec![]),
            Leaf::F32(1e-5f32.into()),
        ];
        for leaf in leaves {
            assert_eq!(leaf.to_string().parse::<Leaf>(), Ok(leaf.clone()), "{leaf}");
        }
        assert_eq!(
            "gemm:canonical".parse::<Leaf>(),
            Ok(Leaf::Gemm(GemmAttrs::CANONICAL.into()))
        );
        assert!("act:gelu:0:0".parse::<Leaf>().is_err());
    }

    #[test]
    fn activation_leaves_keep_their_parameters() {
        for activation in [
            Activation::Relu,
            Activation::LeakyRelu { alpha: 0.2 },
            Activation::HardSigmoid {
                alpha: 0.2,
                beta: 0.5,
            },
            Activation::Clip {
                min: None,
                max: Some(1.0),
            },
        ] {
            assert_eq!(
                ActLeaf::from(Some(activation)).activation(),
                Some(activation)
            );
        }
    }
}
