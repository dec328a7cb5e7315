//! Reading a node's attributes, with errors that name the node and op.

use crate::error::ModelError;

use super::attr_type;
use super::proto::*;

/// Reads the attributes of one node, checking names and types.
pub(super) struct Attrs<'a> {
    pub(super) label: &'a str,
    pub(super) op_type: &'a str,
}

impl Attrs<'_> {
    pub(super) fn unsupported(&self, what: String) -> ModelError {
        ModelError::Unsupported {
            node: self.label.to_string(),
            op_type: self.op_type.to_string(),
            what,
        }
    }

    pub(super) fn check_type(
        &self,
        a: &AttributeProto,
        want: i32,
        want_name: &str,
    ) -> Result<(), ModelError> {
        if a.r#type != want && a.r#type != attr_type::UNDEFINED {
            return Err(self.unsupported(format!(
                "attribute '{}' must be {want_name} (attribute type {}), got type {}",
                a.name, want, a.r#type
            )));
        }
        Ok(())
    }

    pub(super) fn float(&self, a: &AttributeProto) -> Result<f32, ModelError> {
        self.check_type(a, attr_type::FLOAT, "a float")?;
        Ok(a.f)
    }

    pub(super) fn int(&self, a: &AttributeProto) -> Result<i64, ModelError> {
        self.check_type(a, attr_type::INT, "an int")?;
        Ok(a.i)
    }

    pub(super) fn bool01(&self, a: &AttributeProto) -> Result<bool, ModelError> {
        match self.int(a)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.unsupported(format!("attribute '{}' must be 0 or 1, got {v}", a.name))),
        }
    }

    pub(super) fn ints<'b>(&self, a: &'b AttributeProto) -> Result<&'b [i64], ModelError> {
        self.check_type(a, attr_type::INTS, "a list of ints")?;
        Ok(&a.ints)
    }

    pub(super) fn floats<'b>(&self, a: &'b AttributeProto) -> Result<&'b [f32], ModelError> {
        self.check_type(a, attr_type::FLOATS, "a list of floats")?;
        Ok(&a.floats)
    }

    pub(super) fn strings(&self, a: &AttributeProto) -> Result<Vec<String>, ModelError> {
        self.check_type(a, attr_type::STRINGS, "a list of strings")?;
        a.strings
            .iter()
            .map(|s| {
                String::from_utf8(s.clone()).map_err(|_| {
                    self.unsupported(format!("attribute '{}' is not valid UTF-8", a.name))
                })
            })
            .collect()
    }

    pub(super) fn string(&self, a: &AttributeProto) -> Result<String, ModelError> {
        self.check_type(a, attr_type::STRING, "a string")?;
        String::from_utf8(a.s.clone())
            .map_err(|_| self.unsupported(format!("attribute '{}' is not valid UTF-8", a.name)))
    }

    /// An INTS attribute with exactly `N` values, each at least `min` (a
    /// Conv's per-spatial-axis attributes, hence the 2-D wording of the error).
    pub(super) fn ints_n<const N: usize>(
        &self,
        a: &AttributeProto,
        min: i64,
        meaning: &str,
    ) -> Result<[usize; N], ModelError> {
        let v = self.ints(a)?;
        if v.len() != N {
            return Err(self.unsupported(format!(
                "attribute '{}' must have {N} values ({meaning}), got {} ({v:?}); \
                 only 2-D convolution and pooling are supported",
                a.name,
                v.len()
            )));
        }
        let mut out = [0; N];
        for (o, &x) in out.iter_mut().zip(v) {
            *o = usize::try_from(x)
                .ok()
                .filter(|_| x >= min)
                .ok_or_else(|| {
                    self.unsupported(format!(
                        "attribute '{}' values must be >= {min}, got {v:?}",
                        a.name
                    ))
                })?;
        }
        Ok(out)
    }

    pub(super) fn unknown(&self, a: &AttributeProto) -> ModelError {
        self.unsupported(format!("unsupported attribute '{}'", a.name))
    }
}

/// ONNX `auto_pad` modes.
#[derive(Clone, Copy, PartialEq)]
pub(super) enum AutoPad {
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

impl AutoPad {
    /// The mode an `auto_pad` attribute names.
    pub(super) fn parse(at: &Attrs, a: &AttributeProto) -> Result<AutoPad, ModelError> {
        Ok(match at.string(a)?.as_str() {
            "NOTSET" | "" => AutoPad::NotSet,
            "VALID" => AutoPad::Valid,
            "SAME_UPPER" => AutoPad::SameUpper,
            "SAME_LOWER" => AutoPad::SameLower,
            other => {
                return Err(at.unsupported(format!(
                    "auto_pad '{other}' (expected NOTSET, VALID, SAME_UPPER or SAME_LOWER)"
                )))
            }
        })
    }
}
