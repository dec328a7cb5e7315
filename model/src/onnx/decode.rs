//! Decoding initializers and value infos: the element types and shapes grim handles.

use std::path::Path;

use crate::error::ModelError;
use crate::tensor::{checked_numel, Tensor};

use super::data_type;
use super::proto::tensor_shape_proto::dimension;
use super::proto::type_proto;
use super::proto::*;

/// A decoded constant: the only element types grim uses (BOOL only for
/// flags such as Dropout's `training_mode`).
pub(super) enum Const {
    F32(Tensor),
    I64(Vec<usize>, Vec<i64>),
    Bool(Vec<usize>, Vec<bool>),
}

pub(super) fn model_err(path: &Path, message: String) -> ModelError {
    ModelError::OnnxModel {
        path: path.to_path_buf(),
        message,
    }
}

/// Decodes a tensor; errors are messages for the caller to place.
pub(super) fn decode_tensor(t: &TensorProto) -> Result<Const, String> {
    let mut shape = Vec::with_capacity(t.dims.len());
    for &d in &t.dims {
        shape.push(
            usize::try_from(d).map_err(|_| format!("negative dimension {d} in {:?}", t.dims))?,
        );
    }
    let n = checked_numel(&shape).ok_or_else(|| format!("dims {:?} are too large", t.dims))?;
    let raw = |width: usize| -> Result<Option<&[u8]>, String> {
        if t.raw_data.is_empty() {
            return Ok(None);
        }
        if Some(t.raw_data.len()) != n.checked_mul(width) {
            return Err(format!(
                "raw_data has {} bytes, dims {:?} need {}",
                t.raw_data.len(),
                t.dims,
                n.saturating_mul(width)
            ));
        }
        Ok(Some(&t.raw_data))
    };
    let count_err = |have: usize| {
        format!(
            "has {have} values but dims {:?} need {n} (external data is not supported)",
            t.dims
        )
    };
    match t.data_type {
        data_type::FLOAT => {
            let data: Vec<f32> = match raw(4)? {
                Some(b) => b
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
                None => t.float_data.clone(),
            };
            if data.len() != n {
                return Err(count_err(data.len()));
            }
            Ok(Const::F32(Tensor { shape, data }))
        }
        data_type::INT64 => {
            let data: Vec<i64> = match raw(8)? {
                Some(b) => b
                    .chunks_exact(8)
                    .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
                    .collect(),
                None => t.int64_data.clone(),
            };
            if data.len() != n {
                return Err(count_err(data.len()));
            }
            Ok(Const::I64(shape, data))
        }
        data_type::INT32 => {
            // Widened: sequence lengths and the odd int32 shape tensor.
            let data: Vec<i64> = match raw(4)? {
                Some(b) => b
                    .chunks_exact(4)
                    .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                    .collect(),
                None => t.int32_data.iter().map(|&v| v as i64).collect(),
            };
            if data.len() != n {
                return Err(count_err(data.len()));
            }
            Ok(Const::I64(shape, data))
        }
        data_type::BOOL => {
            let data: Vec<bool> = match raw(1)? {
                Some(b) => b.iter().map(|&v| v != 0).collect(),
                None => t.int32_data.iter().map(|&v| v != 0).collect(),
            };
            if data.len() != n {
                return Err(count_err(data.len()));
            }
            Ok(Const::Bool(shape, data))
        }
        other => Err(format!(
            "element type {} ({other}) is not supported (grim handles FLOAT, INT64 and \
             INT32 shapes and lengths, and BOOL flags)",
            data_type::name(other)
        )),
    }
}

/// The static f32 shape of a graph input/output, `Ok(None)` if the type or
/// shape is absent (allowed for outputs, which are then inferred).
/// One dim of a value's declared shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Dim {
    Static(usize),
    /// A free dimension: its `dim_param` name, or `None` when unnamed.
    Free(Option<String>),
}

/// The declared dims of a float tensor value (`None`: no shape given).
pub(super) fn value_dims(vi: &ValueInfoProto, what: &str) -> Result<Option<Vec<Dim>>, String> {
    let Some(tp) = &vi.r#type else {
        return Ok(None);
    };
    let Some(type_proto::Value::TensorType(tt)) = &tp.value else {
        return Err(format!("{what} '{}' is not a tensor", vi.name));
    };
    if tt.elem_type != data_type::FLOAT && tt.elem_type != 0 {
        return Err(format!(
            "{what} '{}' has element type {}; grim supports FLOAT only",
            vi.name,
            data_type::name(tt.elem_type)
        ));
    }
    let Some(shape) = &tt.shape else {
        return Ok(None);
    };
    Ok(Some(
        shape
            .dim
            .iter()
            .map(|d| match &d.value {
                Some(dimension::Value::DimValue(v)) if *v >= 0 => Dim::Static(*v as usize),
                Some(dimension::Value::DimParam(p)) if !p.is_empty() => Dim::Free(Some(p.clone())),
                _ => Dim::Free(None),
            })
            .collect(),
    ))
}

/// The shape of graph input `vi`: `given` (from `--input-shape`) if any,
/// checked against the declared dims; else the declared dims with a free
/// leading (batch) dim taken as 1, which `notes` records. Any other free
/// dim is an error that says how to fix it.
pub(super) fn input_shape(
    vi: &ValueInfoProto,
    given: Option<&Vec<usize>>,
    notes: &mut Vec<String>,
) -> Result<Vec<usize>, String> {
    let name = &vi.name;
    let dims = value_dims(vi, "graph input")?;
    let fix = |dims: &[Dim]| {
        let example: Vec<String> = dims
            .iter()
            .map(|d| match d {
                Dim::Static(v) => v.to_string(),
                Dim::Free(_) => "N".into(),
            })
            .collect();
        format!(
            "give its shape with --input-shape {name}={}",
            example.join("x")
        )
    };
    let Some(dims) = dims else {
        return given.cloned().ok_or_else(|| {
            format!("graph input '{name}' has no shape; give it with --input-shape {name}=DxDx...")
        });
    };
    if let Some(given) = given {
        let agrees = given.len() == dims.len()
            && dims.iter().zip(given).all(|(d, g)| match d {
                Dim::Static(v) => v == g,
                Dim::Free(_) => true,
            });
        if !agrees {
            return Err(format!(
                "--input-shape {name}={} does not match the declared shape {}",
                given
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join("x"),
                describe(&dims)
            ));
        }
        return Ok(given.clone());
    }
    let mut shape = Vec::with_capacity(dims.len());
    for (i, d) in dims.iter().enumerate() {
        match d {
            Dim::Static(v) => shape.push(*v),
            Dim::Free(label) if i == 0 => {
                notes.push(format!(
                    "graph input '{name}' has the free batch dimension {}; taken as 1 ({})",
                    label
                        .as_deref()
                        .map_or("(unnamed)".to_string(), |l| format!("'{l}'")),
                    fix(&dims)
                ));
                shape.push(1);
            }
            Dim::Free(label) => {
                return Err(format!(
                    "graph input '{name}' has dynamic dimension {} at index {i}; grim compiles \
                     for static shapes: {}",
                    label
                        .as_deref()
                        .map_or("(unnamed)".to_string(), |l| format!("'{l}'")),
                    fix(&dims)
                ))
            }
        }
    }
    Ok(shape)
}

/// A declared shape as text: `[1, 3, 'h', ?]`.
fn describe(dims: &[Dim]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| match d {
            Dim::Static(v) => v.to_string(),
            Dim::Free(Some(l)) => format!("'{l}'"),
            Dim::Free(None) => "?".into(),
        })
        .collect();
    format!("[{}]", parts.join(", "))
}

/// The declared shape of a graph output when every dim is static (a free
/// dim leaves the shape to inference).
pub(super) fn output_shape(vi: &ValueInfoProto) -> Result<Option<Vec<usize>>, String> {
    Ok(value_dims(vi, "graph output")?.and_then(|dims| {
        dims.iter()
            .map(|d| match d {
                Dim::Static(v) => Some(*v),
                Dim::Free(_) => None,
            })
            .collect()
    }))
}
