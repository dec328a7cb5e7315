//! ONNX import and export for the supported subset.
//!
//! The protobuf messages are declared by hand with `prost` derives (only the
//! fields grim reads or writes; prost skips the others while decoding), so the
//! build needs no `protoc`. Field numbers follow `onnx/onnx.proto`. ONNX is
//! proto2: repeated scalars without `[packed = true]` (dims, ints, floats) are
//! written unpacked, as onnx itself does; the decoder accepts both encodings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use prost::Message;

use crate::error::ModelError;
use crate::fsutil::write_atomic;
use crate::graph::{node_output_shape, Graph, Node, Op, ValueInfo};
use crate::tensor::{checked_numel, Tensor};

/// The ONNX protobuf messages (subset).
pub mod proto {
    /// `onnx.ModelProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ModelProto {
        /// IR version.
        #[prost(int64, tag = "1")]
        pub ir_version: i64,
        /// Operator sets the model uses.
        #[prost(message, repeated, tag = "8")]
        pub opset_import: Vec<OperatorSetIdProto>,
        /// Producer tool name.
        #[prost(string, tag = "2")]
        pub producer_name: String,
        /// The main graph.
        #[prost(message, optional, tag = "7")]
        pub graph: Option<GraphProto>,
    }

    /// `onnx.OperatorSetIdProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct OperatorSetIdProto {
        /// Domain ("" or "ai.onnx" is the default domain).
        #[prost(string, tag = "1")]
        pub domain: String,
        /// Opset version.
        #[prost(int64, tag = "2")]
        pub version: i64,
    }

    /// `onnx.GraphProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct GraphProto {
        /// Nodes, topologically sorted.
        #[prost(message, repeated, tag = "1")]
        pub node: Vec<NodeProto>,
        /// Graph name.
        #[prost(string, tag = "2")]
        pub name: String,
        /// Constant tensors.
        #[prost(message, repeated, tag = "5")]
        pub initializer: Vec<TensorProto>,
        /// Inputs (may include initializers).
        #[prost(message, repeated, tag = "11")]
        pub input: Vec<ValueInfoProto>,
        /// Outputs.
        #[prost(message, repeated, tag = "12")]
        pub output: Vec<ValueInfoProto>,
        /// Types of intermediate values.
        #[prost(message, repeated, tag = "13")]
        pub value_info: Vec<ValueInfoProto>,
    }

    /// `onnx.NodeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct NodeProto {
        /// Input value names.
        #[prost(string, repeated, tag = "1")]
        pub input: Vec<String>,
        /// Output value names.
        #[prost(string, repeated, tag = "2")]
        pub output: Vec<String>,
        /// Node name.
        #[prost(string, tag = "3")]
        pub name: String,
        /// Operator type.
        #[prost(string, tag = "4")]
        pub op_type: String,
        /// Attributes.
        #[prost(message, repeated, tag = "5")]
        pub attribute: Vec<AttributeProto>,
        /// Operator domain.
        #[prost(string, tag = "7")]
        pub domain: String,
    }

    /// `onnx.AttributeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct AttributeProto {
        /// Attribute name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// FLOAT value.
        #[prost(float, tag = "2")]
        pub f: f32,
        /// INT value.
        #[prost(int64, tag = "3")]
        pub i: i64,
        /// STRING value.
        #[prost(bytes = "vec", tag = "4")]
        pub s: Vec<u8>,
        /// TENSOR value.
        #[prost(message, optional, tag = "5")]
        pub t: Option<TensorProto>,
        /// FLOATS value.
        #[prost(float, repeated, packed = "false", tag = "7")]
        pub floats: Vec<f32>,
        /// INTS value.
        #[prost(int64, repeated, packed = "false", tag = "8")]
        pub ints: Vec<i64>,
        /// Attribute type (see [`attr_type`](super::attr_type)).
        #[prost(int32, tag = "20")]
        pub r#type: i32,
    }

    /// `onnx.TensorProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorProto {
        /// Dimensions.
        #[prost(int64, repeated, packed = "false", tag = "1")]
        pub dims: Vec<i64>,
        /// Element type (see [`data_type`](super::data_type)).
        #[prost(int32, tag = "2")]
        pub data_type: i32,
        /// FLOAT data (when `raw_data` is empty).
        #[prost(float, repeated, tag = "4")]
        pub float_data: Vec<f32>,
        /// INT32 (and smaller) data.
        #[prost(int32, repeated, tag = "5")]
        pub int32_data: Vec<i32>,
        /// INT64 data.
        #[prost(int64, repeated, tag = "7")]
        pub int64_data: Vec<i64>,
        /// Tensor (value) name.
        #[prost(string, tag = "8")]
        pub name: String,
        /// Little-endian raw bytes of the data.
        #[prost(bytes = "vec", tag = "9")]
        pub raw_data: Vec<u8>,
        /// DOUBLE data.
        #[prost(double, repeated, tag = "10")]
        pub double_data: Vec<f64>,
    }

    /// `onnx.ValueInfoProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueInfoProto {
        /// Value name.
        #[prost(string, tag = "1")]
        pub name: String,
        /// Value type.
        #[prost(message, optional, tag = "2")]
        pub r#type: Option<TypeProto>,
    }

    /// `onnx.TypeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TypeProto {
        /// The kind of type (only tensors are modelled).
        #[prost(oneof = "type_proto::Value", tags = "1")]
        pub value: Option<type_proto::Value>,
    }

    /// Nested types of `TypeProto`.
    pub mod type_proto {
        /// `TypeProto.Tensor`.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Tensor {
            /// Element type (see [`data_type`](super::super::data_type)).
            #[prost(int32, tag = "1")]
            pub elem_type: i32,
            /// Shape, if known.
            #[prost(message, optional, tag = "2")]
            pub shape: Option<super::TensorShapeProto>,
        }

        /// The `value` oneof.
        #[derive(Clone, PartialEq, prost::Oneof)]
        pub enum Value {
            /// A tensor type.
            #[prost(message, tag = "1")]
            TensorType(Tensor),
        }
    }

    /// `onnx.TensorShapeProto`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct TensorShapeProto {
        /// Dimensions.
        #[prost(message, repeated, tag = "1")]
        pub dim: Vec<tensor_shape_proto::Dimension>,
    }

    /// Nested types of `TensorShapeProto`.
    pub mod tensor_shape_proto {
        /// `TensorShapeProto.Dimension`.
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct Dimension {
            /// Static size or symbolic name.
            #[prost(oneof = "dimension::Value", tags = "1, 2")]
            pub value: Option<dimension::Value>,
        }

        /// Nested types of `Dimension`.
        pub mod dimension {
            /// The `value` oneof.
            #[derive(Clone, PartialEq, prost::Oneof)]
            pub enum Value {
                /// A static size.
                #[prost(int64, tag = "1")]
                DimValue(i64),
                /// A symbolic (dynamic) size.
                #[prost(string, tag = "2")]
                DimParam(String),
            }
        }
    }
}

/// `TensorProto.DataType` values grim handles.
pub mod data_type {
    /// float32.
    pub const FLOAT: i32 = 1;
    /// int64.
    pub const INT64: i32 = 7;
    /// bool (one byte per value in `raw_data`).
    pub const BOOL: i32 = 9;

    /// The ONNX name of a data type, for error messages.
    pub fn name(t: i32) -> &'static str {
        match t {
            0 => "UNDEFINED",
            1 => "FLOAT",
            2 => "UINT8",
            3 => "INT8",
            4 => "UINT16",
            5 => "INT16",
            6 => "INT32",
            7 => "INT64",
            8 => "STRING",
            9 => "BOOL",
            10 => "FLOAT16",
            11 => "DOUBLE",
            12 => "UINT32",
            13 => "UINT64",
            16 => "BFLOAT16",
            _ => "unknown",
        }
    }
}

/// `AttributeProto.AttributeType` values grim handles.
pub mod attr_type {
    /// Type not set (old models): inferred from the filled field.
    pub const UNDEFINED: i32 = 0;
    /// `f`.
    pub const FLOAT: i32 = 1;
    /// `i`.
    pub const INT: i32 = 2;
    /// `s`.
    pub const STRING: i32 = 3;
    /// `t`.
    pub const TENSOR: i32 = 4;
    /// `ints`.
    pub const INTS: i32 = 7;
}

use proto::tensor_shape_proto::{dimension, Dimension};
use proto::type_proto;
use proto::*;

/// A decoded constant: the only element types grim uses (BOOL only for
/// flags such as Dropout's `training_mode`).
enum Const {
    F32(Tensor),
    I64(Vec<usize>, Vec<i64>),
    Bool(Vec<usize>, Vec<bool>),
}

fn model_err(path: &Path, message: String) -> ModelError {
    ModelError::OnnxModel {
        path: path.to_path_buf(),
        message,
    }
}

/// Decodes a tensor; errors are messages for the caller to place.
fn decode_tensor(t: &TensorProto) -> Result<Const, String> {
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
            "element type {} ({other}) is not supported (grim handles FLOAT, INT64 shapes and \
             BOOL flags)",
            data_type::name(other)
        )),
    }
}

/// The static f32 shape of a graph input/output, `Ok(None)` if the type or
/// shape is absent (allowed for outputs, which are then inferred).
fn value_shape(vi: &ValueInfoProto, what: &str) -> Result<Option<Vec<usize>>, String> {
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
    let mut dims = Vec::with_capacity(shape.dim.len());
    for (i, d) in shape.dim.iter().enumerate() {
        match &d.value {
            Some(dimension::Value::DimValue(v)) if *v >= 0 => dims.push(*v as usize),
            Some(dimension::Value::DimParam(p)) => {
                return Err(format!(
                    "{what} '{}' has dynamic dimension '{p}' at index {i}; grim needs static shapes",
                    vi.name
                ))
            }
            other => {
                return Err(format!(
                    "{what} '{}' has no static size at dimension {i} ({other:?}); grim needs static shapes",
                    vi.name
                ))
            }
        }
    }
    Ok(Some(dims))
}

/// Reads the attributes of one node, checking names and types.
struct Attrs<'a> {
    label: &'a str,
    op_type: &'a str,
}

impl Attrs<'_> {
    fn unsupported(&self, what: String) -> ModelError {
        ModelError::Unsupported {
            node: self.label.to_string(),
            op_type: self.op_type.to_string(),
            what,
        }
    }

    fn check_type(&self, a: &AttributeProto, want: i32, want_name: &str) -> Result<(), ModelError> {
        if a.r#type != want && a.r#type != attr_type::UNDEFINED {
            return Err(self.unsupported(format!(
                "attribute '{}' must be {want_name} (attribute type {}), got type {}",
                a.name, want, a.r#type
            )));
        }
        Ok(())
    }

    fn float(&self, a: &AttributeProto) -> Result<f32, ModelError> {
        self.check_type(a, attr_type::FLOAT, "a float")?;
        Ok(a.f)
    }

    fn int(&self, a: &AttributeProto) -> Result<i64, ModelError> {
        self.check_type(a, attr_type::INT, "an int")?;
        Ok(a.i)
    }

    fn bool01(&self, a: &AttributeProto) -> Result<bool, ModelError> {
        match self.int(a)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.unsupported(format!("attribute '{}' must be 0 or 1, got {v}", a.name))),
        }
    }

    fn ints<'b>(&self, a: &'b AttributeProto) -> Result<&'b [i64], ModelError> {
        self.check_type(a, attr_type::INTS, "a list of ints")?;
        Ok(&a.ints)
    }

    fn string(&self, a: &AttributeProto) -> Result<String, ModelError> {
        self.check_type(a, attr_type::STRING, "a string")?;
        String::from_utf8(a.s.clone())
            .map_err(|_| self.unsupported(format!("attribute '{}' is not valid UTF-8", a.name)))
    }

    /// An INTS attribute with exactly `N` values, each at least `min` (a
    /// Conv's per-spatial-axis attributes, hence the 2-D wording of the error).
    fn ints_n<const N: usize>(
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

    fn unknown(&self, a: &AttributeProto) -> ModelError {
        self.unsupported(format!("unsupported attribute '{}'", a.name))
    }
}

/// ONNX `auto_pad` modes.
#[derive(Clone, Copy, PartialEq)]
enum AutoPad {
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

impl AutoPad {
    /// The mode an `auto_pad` attribute names.
    fn parse(at: &Attrs, a: &AttributeProto) -> Result<AutoPad, ModelError> {
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

/// Reads a `Conv` node's attributes into [`Op::Conv`].
///
/// `x_shape` and `w_shape` are the shapes of the data and weight inputs: the
/// weight's spatial dims check `kernel_shape`, and `SAME_*` auto-padding is
/// resolved to explicit pads here, so the graph only ever holds explicit pads.
fn conv_op(
    at: &Attrs,
    np: &NodeProto,
    x_shape: &[usize],
    w_shape: &[usize],
) -> Result<Op, ModelError> {
    let mut strides = [1, 1];
    let mut pads = None;
    let mut dilations = [1, 1];
    let mut kernel_shape = None;
    let mut auto_pad = AutoPad::NotSet;
    for a in &np.attribute {
        match a.name.as_str() {
            "strides" => strides = at.ints_n(a, 1, "[stride_h, stride_w]")?,
            "dilations" => dilations = at.ints_n(a, 1, "[dilation_h, dilation_w]")?,
            "pads" => pads = Some(at.ints_n(a, 0, "[top, left, bottom, right]")?),
            "kernel_shape" => kernel_shape = Some(at.ints(a)?.to_vec()),
            "group" => {
                let g = at.int(a)?;
                if g != 1 {
                    return Err(at.unsupported(format!(
                        "group = {g}: group != 1 (grouped or depthwise convolution) is not supported"
                    )));
                }
            }
            "auto_pad" => auto_pad = AutoPad::parse(at, a)?,
            _ => return Err(at.unknown(a)),
        }
    }
    // A non-4-D weight is left to shape inference, which says what it needs.
    if let (Some(ks), [_, _, kh, kw]) = (&kernel_shape, w_shape) {
        if ks.len() != 2 || ks[0] != *kh as i64 || ks[1] != *kw as i64 {
            return Err(at.unsupported(format!(
                "kernel_shape {ks:?} does not match the spatial dims [{kh}, {kw}] of weight {w_shape:?}"
            )));
        }
    } else if let Some(ks) = &kernel_shape {
        if ks.len() != 2 {
            return Err(at.unsupported(format!(
                "kernel_shape {ks:?} must have 2 values; only 2-D convolution is supported"
            )));
        }
    }
    let pads = match auto_pad {
        AutoPad::NotSet => pads.unwrap_or([0; 4]),
        _ if pads.is_some_and(|p| p != [0; 4]) => {
            return Err(at.unsupported(
                "explicit non-zero pads together with auto_pad (ONNX allows pads only with \
                 auto_pad NOTSET)"
                    .into(),
            ))
        }
        AutoPad::Valid => [0; 4],
        AutoPad::SameUpper | AutoPad::SameLower => {
            let (&[_, _, h, w], &[_, _, kh, kw]) = (x_shape, w_shape) else {
                return Err(ModelError::Shape {
                    node: at.label.to_string(),
                    message: format!(
                        "Conv needs a 4-D NCHW input X and a 4-D weight W, got X {x_shape:?} \
                         and W {w_shape:?}"
                    ),
                });
            };
            let upper = auto_pad == AutoPad::SameUpper;
            let (top, bottom) = same_pads(at, h, kh, strides[0], dilations[0], upper)?;
            let (left, right) = same_pads(at, w, kw, strides[1], dilations[1], upper)?;
            [top, left, bottom, right]
        }
    };
    Ok(Op::Conv {
        strides,
        pads,
        dilations,
    })
}

/// Reads a `MaxPool`/`AveragePool` node's attributes into [`Op::Pool`]
/// (`x_shape`: the data input's, for `SAME_*` auto-padding).
fn pool_op(
    at: &Attrs,
    np: &NodeProto,
    kind: crate::pool::PoolKind,
    x_shape: &[usize],
) -> Result<Op, ModelError> {
    let mut pool = crate::pool::Pool {
        kind,
        kernel: [0, 0],
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
        ceil_mode: false,
        count_include_pad: false,
    };
    let (mut kernel, mut pads, mut auto_pad) = (None, None, AutoPad::NotSet);
    for a in &np.attribute {
        match a.name.as_str() {
            "kernel_shape" => kernel = Some(at.ints_n(a, 1, "[kh, kw]")?),
            "strides" => pool.strides = at.ints_n(a, 1, "[stride_h, stride_w]")?,
            "dilations" => pool.dilations = at.ints_n(a, 1, "[dilation_h, dilation_w]")?,
            "pads" => pads = Some(at.ints_n(a, 0, "[top, left, bottom, right]")?),
            "ceil_mode" => pool.ceil_mode = at.int(a)? != 0,
            "count_include_pad" if kind == crate::pool::PoolKind::Average => {
                pool.count_include_pad = at.int(a)? != 0
            }
            // Only the Indices output reads it, which is refused.
            "storage_order" if kind == crate::pool::PoolKind::Max => {}
            "auto_pad" => auto_pad = AutoPad::parse(at, a)?,
            _ => return Err(at.unknown(a)),
        }
    }
    pool.kernel =
        kernel.ok_or_else(|| at.unsupported("missing attribute 'kernel_shape'".into()))?;
    pool.pads = match auto_pad {
        AutoPad::NotSet => pads.unwrap_or([0; 4]),
        AutoPad::Valid => [0; 4],
        AutoPad::SameUpper | AutoPad::SameLower => {
            let &[_, _, h, w] = x_shape else {
                return Err(ModelError::Shape {
                    node: at.label.to_string(),
                    message: format!("pooling needs a 4-D NCHW input, got {x_shape:?}"),
                });
            };
            let upper = auto_pad == AutoPad::SameUpper;
            let (kh, kw) = (pool.kernel[0], pool.kernel[1]);
            let (top, bottom) = same_pads(at, h, kh, pool.strides[0], pool.dilations[0], upper)?;
            let (left, right) = same_pads(at, w, kw, pool.strides[1], pool.dilations[1], upper)?;
            [top, left, bottom, right]
        }
    };
    Ok(Op::Pool(pool))
}

/// `(begin, end)` padding of one axis for `SAME_UPPER`/`SAME_LOWER`: enough
/// that the output has `ceil(input / stride)` positions, the odd unit going to
/// the end (upper) or the beginning (lower), as the ONNX spec defines it.
fn same_pads(
    at: &Attrs,
    input: usize,
    kernel: usize,
    stride: usize,
    dilation: usize,
    upper: bool,
) -> Result<(usize, usize), ModelError> {
    let out = input.div_ceil(stride);
    let needed = kernel
        .checked_sub(1)
        .and_then(|k| k.checked_mul(dilation))
        .and_then(|span| span.checked_add(1))
        .and_then(|span| out.saturating_sub(1).checked_mul(stride)?.checked_add(span))
        .ok_or_else(|| {
            at.unsupported(format!(
                "auto_pad SAME: kernel {kernel} with dilation {dilation} and stride {stride} \
                 on input {input} is empty or overflows"
            ))
        })?
        .saturating_sub(input);
    let begin = if upper {
        needed / 2
    } else {
        needed - needed / 2
    };
    Ok((begin, needed - begin))
}

/// The model's default-domain (`""` or `"ai.onnx"`) opset version: the
/// forms of Clip and BatchNormalization depend on it. A model that imports
/// none is treated as opset 1; several imports take the highest.
fn default_opset(model: &ModelProto) -> i64 {
    model
        .opset_import
        .iter()
        .filter(|os| os.domain.is_empty() || os.domain == "ai.onnx")
        .map(|os| os.version)
        .max()
        .unwrap_or(1)
}

/// Reads an inference-mode `BatchNormalization` node's attributes.
fn batch_norm_op(at: &Attrs, np: &NodeProto, opset: i64) -> Result<Op, ModelError> {
    let mut epsilon = 1e-5;
    for a in &np.attribute {
        match a.name.as_str() {
            "epsilon" => epsilon = at.float(a)?,
            // The running statistics' update rate matters only in training.
            "momentum" => {
                at.float(a)?;
            }
            // Removed in opset 9, where statistics are always per channel.
            "spatial" if opset <= 8 => {
                let v = at.int(a)?;
                if v != 1 {
                    return Err(at.unsupported(format!(
                        "attribute 'spatial' = {v}: only spatial = 1 (one mean and variance per \
                         channel) is supported"
                    )));
                }
            }
            "training_mode" => {
                let v = at.int(a)?;
                if v != 0 {
                    return Err(at.unsupported(format!(
                        "attribute 'training_mode' = {v}: only inference (training_mode = 0) \
                         is supported"
                    )));
                }
            }
            "is_test" | "consumed_inputs" => {
                return Err(at.unsupported(format!(
                    "attribute '{}' belongs to BatchNormalization before opset 7, which is not \
                     supported (the model imports opset {opset}); re-export with opset 7 or later",
                    a.name
                )))
            }
            _ => return Err(at.unknown(a)),
        }
    }
    Ok(Op::BatchNormalization { epsilon })
}

/// Reads a `Clip` node: bounds from attributes before opset 11, from the
/// constant inputs 2 (min) and 3 (max) from opset 11 on. `inputs` are the
/// node's inputs with trailing empty names removed; an empty name is an
/// absent bound.
fn clip_op(
    at: &Attrs,
    np: &NodeProto,
    opset: i64,
    inputs: &[String],
    floats: &BTreeMap<String, Tensor>,
) -> Result<Op, ModelError> {
    let (mut min, mut max) = (None, None);
    for a in &np.attribute {
        match a.name.as_str() {
            "min" if opset < 11 => min = Some(at.float(a)?),
            "max" if opset < 11 => max = Some(at.float(a)?),
            "min" | "max" => {
                return Err(at.unsupported(format!(
                    "attribute '{}' is the Clip form before opset 11, but the model imports \
                     opset {opset}, where the bounds are inputs 2 and 3",
                    a.name
                )))
            }
            _ => return Err(at.unknown(a)),
        }
    }
    if opset < 11 {
        if inputs.len() != 1 {
            return Err(at.unsupported(format!(
                "expected 1 input before opset 11 (the bounds are attributes), got {}",
                inputs.len()
            )));
        }
        return Ok(Op::Clip { min, max });
    }
    if inputs.len() > 3 {
        return Err(at.unsupported(format!(
            "expected 1 to 3 inputs (input, min, max), got {}",
            inputs.len()
        )));
    }
    for (bound, (what, name)) in [&mut min, &mut max]
        .into_iter()
        .zip(["min", "max"].into_iter().zip(inputs.iter().skip(1)))
    {
        if !name.is_empty() {
            *bound = Some(const_scalar(at, floats, what, name)?);
        }
    }
    Ok(Op::Clip { min, max })
}

/// The value of the f32 scalar constant (shape `[]` or `[1]`) `name`, which
/// is input `what` of the node.
fn const_scalar(
    at: &Attrs,
    floats: &BTreeMap<String, Tensor>,
    what: &str,
    name: &str,
) -> Result<f32, ModelError> {
    match floats.get(name) {
        Some(t) if t.shape.len() <= 1 && t.data.len() == 1 => Ok(t.data[0]),
        Some(t) => Err(at.unsupported(format!(
            "{what} input '{name}' must be a scalar (shape [] or [1]), got shape {:?}",
            t.shape
        ))),
        None => Err(at.unsupported(format!(
            "{what} input '{name}' must be a constant f32 scalar (initializer or Constant); a \
             bound computed at run time is not supported"
        ))),
    }
}

/// Checks that a `Dropout` node is the inference-mode identity: any `ratio`
/// (attribute or constant input) and `seed`, and a `training_mode` input
/// that is absent or a constant false.
fn dropout_check(
    at: &Attrs,
    np: &NodeProto,
    inputs: &[String],
    floats: &BTreeMap<String, Tensor>,
    ints: &BTreeMap<String, (Vec<usize>, Vec<i64>)>,
    bools: &BTreeMap<String, (Vec<usize>, Vec<bool>)>,
) -> Result<(), ModelError> {
    for a in &np.attribute {
        match a.name.as_str() {
            // Inference scales nothing and draws nothing.
            "ratio" => {
                at.float(a)?;
            }
            "seed" => {
                at.int(a)?;
            }
            _ => return Err(at.unknown(a)),
        }
    }
    if inputs.len() > 3 {
        return Err(at.unsupported(format!(
            "expected 1 to 3 inputs (data, ratio, training_mode), got {}",
            inputs.len()
        )));
    }
    if let Some(ratio) = inputs.get(1).filter(|s| !s.is_empty()) {
        if !floats.contains_key(ratio) {
            return Err(at.unsupported(format!(
                "ratio input '{ratio}' must be a constant (initializer or Constant)"
            )));
        }
    }
    if let Some(mode) = inputs.get(2).filter(|s| !s.is_empty()) {
        let values: Option<Vec<bool>> = bools.get(mode).map(|(_, v)| v.clone()).or_else(|| {
            ints.get(mode)
                .map(|(_, v)| v.iter().map(|&x| x != 0).collect())
        });
        match values.as_deref() {
            Some([false]) => {}
            Some([true]) => {
                return Err(at.unsupported(format!(
                    "training_mode input '{mode}' is true: Dropout in training mode is not \
                     supported"
                )))
            }
            Some(v) => {
                return Err(at.unsupported(format!(
                    "training_mode input '{mode}' must be a scalar, got {} values",
                    v.len()
                )))
            }
            None => {
                return Err(at.unsupported(format!(
                    "training_mode input '{mode}' must be a constant false (initializer or \
                     Constant); a training mode chosen at run time is not supported"
                )))
            }
        }
    }
    Ok(())
}

/// Reads and converts an ONNX model.
///
/// Errors name the file, and for node-level problems the node (its name, or
/// `#index`), its op type and what is unsupported or missing.
pub fn load_onnx(path: &Path) -> Result<Graph, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| ModelError::OnnxDecode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    from_proto(&model, path)
}

/// Converts a decoded model; `path` is only used in error messages.
pub fn from_proto(model: &ModelProto, path: &Path) -> Result<Graph, ModelError> {
    let g = model.graph.as_ref().ok_or_else(|| {
        model_err(
            path,
            "the model has no graph (is this an ONNX file?)".to_string(),
        )
    })?;
    for os in &model.opset_import {
        if !(os.domain.is_empty() || os.domain == "ai.onnx") {
            return Err(model_err(
                path,
                format!("operator set domain '{}' is not supported", os.domain),
            ));
        }
    }
    let opset = default_opset(model);

    let mut floats: BTreeMap<String, Tensor> = BTreeMap::new();
    let mut ints: BTreeMap<String, (Vec<usize>, Vec<i64>)> = BTreeMap::new();
    let mut bools: BTreeMap<String, (Vec<usize>, Vec<bool>)> = BTreeMap::new();
    for t in &g.initializer {
        match decode_tensor(t)
            .map_err(|m| model_err(path, format!("initializer '{}': {m}", t.name)))?
        {
            Const::F32(x) => {
                floats.insert(t.name.clone(), x);
            }
            Const::I64(s, v) => {
                ints.insert(t.name.clone(), (s, v));
            }
            Const::Bool(s, v) => {
                bools.insert(t.name.clone(), (s, v));
            }
        }
    }

    let mut inputs = Vec::new();
    for vi in &g.input {
        if floats.contains_key(&vi.name)
            || ints.contains_key(&vi.name)
            || bools.contains_key(&vi.name)
        {
            continue;
        }
        let shape = value_shape(vi, "graph input")
            .map_err(|m| model_err(path, m))?
            .ok_or_else(|| {
                model_err(
                    path,
                    format!("graph input '{}' has no static tensor shape", vi.name),
                )
            })?;
        inputs.push(ValueInfo {
            name: vi.name.clone(),
            shape,
        });
    }

    // Shapes as nodes are converted: Conv resolves SAME padding from its
    // input's shape.
    let mut shapes: BTreeMap<String, Vec<usize>> = floats
        .iter()
        .map(|(k, t)| (k.clone(), t.shape.clone()))
        .collect();
    shapes.extend(inputs.iter().map(|v| (v.name.clone(), v.shape.clone())));
    // Everything the file reads: a Dropout mask may only be dropped if
    // nothing does.
    let read: BTreeSet<&str> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(g.output.iter().map(|o| &o.name))
        .map(String::as_str)
        .collect();
    // Constants folded into a node's op (Clip bounds, Dropout's ratio): they
    // are dropped from the initializers unless something else still reads
    // them, so a loaded graph holds no dead weights.
    let mut folded: BTreeSet<String> = BTreeSet::new();
    let mut nodes = Vec::new();

    for (index, np) in g.node.iter().enumerate() {
        let label = if np.name.is_empty() {
            format!("#{index}")
        } else {
            np.name.clone()
        };
        let at = Attrs {
            label: &label,
            op_type: &np.op_type,
        };
        if !(np.domain.is_empty() || np.domain == "ai.onnx") {
            return Err(at.unsupported(format!("operator domain '{}' is not supported", np.domain)));
        }
        let mut node_inputs: Vec<String> = np.input.clone();
        // An empty name marks an omitted optional input (Gemm's C, Conv's B)
        // or output.
        while node_inputs.last().is_some_and(|s| s.is_empty()) {
            node_inputs.pop();
        }
        // Clip and Dropout fold their optional inputs into the op, and may
        // omit one before a present one (Clip without min but with max).
        let folds_inputs = matches!(np.op_type.as_str(), "Clip" | "Dropout");
        if !folds_inputs && node_inputs.iter().any(|s| s.is_empty()) {
            return Err(at.unsupported("an omitted (empty) input before a present one".into()));
        }
        let mut outputs: &[String] = &np.output;
        while outputs.last().is_some_and(|s| s.is_empty()) {
            outputs = &outputs[..outputs.len() - 1];
        }
        match (np.op_type.as_str(), outputs) {
            ("BatchNormalization", [_, _, ..]) => {
                return Err(at.unsupported(format!(
                    "{} outputs: the training-mode outputs (running or saved mean and \
                     variance) are not supported, only inference with one output",
                    outputs.len()
                )))
            }
            ("Dropout", [_, mask]) if read.contains(mask.as_str()) => {
                return Err(at.unsupported(format!(
                    "the mask output '{mask}' is used (by a node or as a graph output); only \
                     inference-mode Dropout, whose mask nothing reads, is supported"
                )))
            }
            ("Dropout", [_, _]) | (_, [_]) => {}
            _ => {
                return Err(at.unsupported(format!(
                    "expected exactly one output, got {}",
                    outputs.len()
                )))
            }
        }
        if outputs[0].is_empty() {
            return Err(at.unsupported("the first output has an empty name".into()));
        }
        let out_name = outputs[0].clone();

        let op = match np.op_type.as_str() {
            "Gemm" => {
                let (mut alpha, mut beta, mut trans_a, mut trans_b) = (1.0, 1.0, false, false);
                for a in &np.attribute {
                    match a.name.as_str() {
                        "alpha" => alpha = at.float(a)?,
                        "beta" => beta = at.float(a)?,
                        "transA" => trans_a = at.bool01(a)?,
                        "transB" => trans_b = at.bool01(a)?,
                        _ => return Err(at.unknown(a)),
                    }
                }
                Op::Gemm {
                    alpha,
                    beta,
                    trans_a,
                    trans_b,
                }
            }
            "MatMul" | "Add" | "Sub" | "Mul" | "Div" | "Relu" | "Sigmoid" | "Tanh"
            | "HardSwish" | "Identity" => {
                if let Some(a) = np.attribute.first() {
                    return Err(at.unknown(a));
                }
                match np.op_type.as_str() {
                    "MatMul" => Op::MatMul,
                    "Add" => Op::Add,
                    "Sub" => Op::Sub,
                    "Mul" => Op::Mul,
                    "Div" => Op::Div,
                    "Relu" => Op::Relu,
                    "Sigmoid" => Op::Sigmoid,
                    "Tanh" => Op::Tanh,
                    "HardSwish" => Op::HardSwish,
                    _ => Op::Identity,
                }
            }
            "MaxPool" | "AveragePool" => {
                // A MaxPool with its Indices output stops at the one-output check above.
                let kind = if np.op_type == "MaxPool" {
                    crate::pool::PoolKind::Max
                } else {
                    crate::pool::PoolKind::Average
                };
                let x_shape = node_inputs
                    .first()
                    .and_then(|x| shapes.get(x))
                    .cloned()
                    .unwrap_or_default();
                pool_op(&at, np, kind, &x_shape)?
            }
            "GlobalMaxPool" | "GlobalAveragePool" => {
                if let Some(a) = np.attribute.first() {
                    return Err(at.unknown(a));
                }
                Op::GlobalPool(if np.op_type == "GlobalMaxPool" {
                    crate::pool::PoolKind::Max
                } else {
                    crate::pool::PoolKind::Average
                })
            }
            "Sum" => {
                if let Some(a) = np.attribute.first() {
                    return Err(at.unknown(a));
                }
                // A left fold into Adds (the data inputs broadcast alike);
                // one input is that input.
                if node_inputs.is_empty() {
                    return Err(at.unsupported("Sum needs at least one input".into()));
                }
                while node_inputs.len() > 2 {
                    let partial = format!("{out_name}/sum{}", node_inputs.len() - 2);
                    let rest = node_inputs.split_off(2);
                    let node = Node {
                        name: format!("{}/sum{}", np.name, rest.len()),
                        op: Op::Add,
                        inputs: std::mem::replace(&mut node_inputs, vec![partial.clone()]),
                        outputs: vec![partial.clone()],
                    };
                    let ins =
                        node.inputs
                            .iter()
                            .map(|name| {
                                shapes.get(name).map(Vec::as_slice).ok_or_else(|| {
                                    ModelError::Shape {
                                        node: label.clone(),
                                        message: format!(
                                            "input '{name}' is not defined before this node"
                                        ),
                                    }
                                })
                            })
                            .collect::<Result<Vec<_>, _>>()?;
                    let shape = node_output_shape(&label, &node, &ins)?;
                    shapes.insert(partial, shape);
                    nodes.push(node);
                    node_inputs.extend(rest);
                }
                if node_inputs.len() == 1 {
                    Op::Identity
                } else {
                    Op::Add
                }
            }
            "LeakyRelu" => {
                let mut alpha = 0.01;
                for a in &np.attribute {
                    match a.name.as_str() {
                        "alpha" => alpha = at.float(a)?,
                        _ => return Err(at.unknown(a)),
                    }
                }
                Op::LeakyRelu { alpha }
            }
            "HardSigmoid" => {
                let (mut alpha, mut beta) = (0.2, 0.5);
                for a in &np.attribute {
                    match a.name.as_str() {
                        "alpha" => alpha = at.float(a)?,
                        "beta" => beta = at.float(a)?,
                        _ => return Err(at.unknown(a)),
                    }
                }
                Op::HardSigmoid { alpha, beta }
            }
            "BatchNormalization" => batch_norm_op(&at, np, opset)?,
            "Clip" => {
                let op = clip_op(&at, np, opset, &node_inputs, &floats)?;
                if opset >= 11 {
                    folded.extend(node_inputs.drain(1..).filter(|s| !s.is_empty()));
                }
                op
            }
            "Dropout" => {
                dropout_check(&at, np, &node_inputs, &floats, &ints, &bools)?;
                folded.extend(node_inputs.drain(1..).filter(|s| !s.is_empty()));
                Op::Identity
            }
            "Transpose" => {
                for a in &np.attribute {
                    match a.name.as_str() {
                        // Only the 2-D swap; the default perm reverses the axes, which is the same.
                        "perm" if a.ints == [1, 0] => {}
                        "perm" => {
                            return Err(at.unsupported(format!(
                                "perm {:?} (only [1, 0] on 2-D inputs)",
                                a.ints
                            )))
                        }
                        _ => return Err(at.unknown(a)),
                    }
                }
                Op::Transpose
            }
            "Flatten" => {
                let mut axis = 1;
                for a in &np.attribute {
                    match a.name.as_str() {
                        "axis" => axis = at.int(a)?,
                        _ => return Err(at.unknown(a)),
                    }
                }
                Op::Flatten { axis }
            }
            "Reshape" => {
                for a in &np.attribute {
                    match a.name.as_str() {
                        // allowzero=1 gives 0 a different meaning; only the
                        // default is modelled, so reject the other value.
                        "allowzero" if at.int(a)? == 0 => {}
                        _ => return Err(at.unknown(a)),
                    }
                }
                if node_inputs.len() != 2 {
                    return Err(at.unsupported(format!(
                        "expected 2 inputs (data, shape), got {}",
                        node_inputs.len()
                    )));
                }
                let shape_name = node_inputs.pop().unwrap_or_default();
                let shape = match ints.get(&shape_name) {
                    Some((dims, v)) if dims.len() == 1 => v.clone(),
                    _ => {
                        return Err(at.unsupported(format!(
                            "shape input '{shape_name}' must be a constant 1-D INT64 tensor \
                             (initializer or Constant)"
                        )))
                    }
                };
                Op::Reshape { shape }
            }
            "Conv" => {
                if !(2..=3).contains(&node_inputs.len()) {
                    return Err(at.unsupported(format!(
                        "expected 2 or 3 inputs (X, W, optional B), got {}",
                        node_inputs.len()
                    )));
                }
                // Later stages compile (prune, pack) the weight, so like
                // the Gemm/MatMul weight in the compiler it must be known
                // at compile time.
                let w_name = &node_inputs[1];
                let w_shape = match floats.get(w_name) {
                    Some(w) => w.shape.as_slice(),
                    None => {
                        return Err(at.unsupported(format!(
                            "weight W '{w_name}' must be a constant initializer \
                                 (or Constant); convolution with a runtime weight is not supported"
                        )))
                    }
                };
                let x_name = &node_inputs[0];
                let x_shape = shapes.get(x_name).ok_or_else(|| ModelError::Shape {
                    node: label.clone(),
                    message: format!("input '{x_name}' is not defined before this node"),
                })?;
                conv_op(&at, np, x_shape, w_shape)?
            }
            "Constant" => {
                let mut value = None;
                for a in &np.attribute {
                    match a.name.as_str() {
                        "value" => {
                            at.check_type(a, attr_type::TENSOR, "a tensor")?;
                            let t = a.t.as_ref().ok_or_else(|| {
                                at.unsupported("attribute 'value' has no tensor".into())
                            })?;
                            value = Some(
                                decode_tensor(t)
                                    .map_err(|m| at.unsupported(format!("value: {m}")))?,
                            );
                        }
                        _ => return Err(at.unknown(a)),
                    }
                }
                match value {
                    Some(Const::F32(t)) => {
                        shapes.insert(out_name.clone(), t.shape.clone());
                        floats.insert(out_name, t);
                    }
                    Some(Const::I64(s, v)) => {
                        ints.insert(out_name, (s, v));
                    }
                    Some(Const::Bool(s, v)) => {
                        bools.insert(out_name, (s, v));
                    }
                    None => return Err(at.unsupported("missing attribute 'value'".into())),
                }
                continue;
            }
            other => {
                return Err(at.unsupported(format!("operator '{other}' is not supported")));
            }
        };
        if node_inputs.first().is_some_and(|s| s.is_empty()) {
            return Err(at.unsupported("the data input is omitted (empty name)".into()));
        }
        let node = Node {
            name: np.name.clone(),
            op,
            inputs: node_inputs,
            outputs: vec![out_name.clone()],
        };
        let mut ins: Vec<&[usize]> = Vec::new();
        for name in &node.inputs {
            ins.push(shapes.get(name).ok_or_else(|| ModelError::Shape {
                node: label.clone(),
                message: format!(
                    "input '{name}' is not defined before this node \
                     (unknown value, non-float constant, or nodes not topologically sorted)"
                ),
            })?);
        }
        let out_shape = node_output_shape(&label, &node, &ins)?;
        shapes.insert(out_name, out_shape);
        nodes.push(node);
    }

    let mut outputs = Vec::new();
    for vi in &g.output {
        let declared = value_shape(vi, "graph output").map_err(|m| model_err(path, m))?;
        let shape = match (declared, shapes.get(&vi.name)) {
            (Some(d), _) => d,
            (None, Some(s)) => s.clone(),
            (None, None) => {
                return Err(model_err(
                    path,
                    format!("graph output '{}' is never computed", vi.name),
                ))
            }
        };
        outputs.push(ValueInfo {
            name: vi.name.clone(),
            shape,
        });
    }

    let still_read: BTreeSet<&str> = nodes
        .iter()
        .flat_map(|n| n.inputs.iter())
        .chain(outputs.iter().map(|o| &o.name))
        .map(String::as_str)
        .collect();
    for name in &folded {
        if !still_read.contains(name.as_str()) {
            floats.remove(name);
        }
    }

    let graph = Graph {
        name: g.name.clone(),
        inputs,
        outputs,
        nodes,
        initializers: floats,
    };
    graph.validate()?;
    Ok(graph)
}

fn tensor_type(shape: &[usize]) -> Option<TypeProto> {
    Some(TypeProto {
        value: Some(type_proto::Value::TensorType(type_proto::Tensor {
            elem_type: data_type::FLOAT,
            shape: Some(TensorShapeProto {
                dim: shape
                    .iter()
                    .map(|&d| Dimension {
                        value: Some(dimension::Value::DimValue(d as i64)),
                    })
                    .collect(),
            }),
        })),
    })
}

fn vi_proto(name: &str, shape: &[usize]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: tensor_type(shape),
    }
}

fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: attr_type::FLOAT,
        ..Default::default()
    }
}

fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: attr_type::INT,
        ..Default::default()
    }
}

fn attr_ints(name: &str, v: &[usize]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        ints: v.iter().map(|&x| x as i64).collect(),
        r#type: attr_type::INTS,
        ..Default::default()
    }
}

/// `base`, or `base_1`, `base_2`, ... if taken; the result is marked taken.
fn unique_name(used: &mut BTreeSet<String>, base: String) -> String {
    let mut name = base.clone();
    let mut k = 1;
    while used.contains(&name) {
        name = format!("{base}_{k}");
        k += 1;
    }
    used.insert(name.clone());
    name
}

/// An f32 initializer in `raw_data`, as onnx itself writes them.
fn f32_tensor_proto(name: &str, t: &Tensor) -> TensorProto {
    TensorProto {
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: data_type::FLOAT,
        name: name.to_string(),
        raw_data: t.data.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

/// Converts a graph to an ONNX model (IR version 8, opset 17).
///
/// Same as [`to_proto_with_opset`] with opset 17.
pub fn to_proto(graph: &Graph) -> ModelProto {
    to_proto_with_opset(graph, 17)
}

/// Converts a graph to an ONNX model (IR version 8) importing the default
/// domain at `opset`.
///
/// Reshape targets become INT64 initializers named `<output>_shape` (made
/// unique if taken). Clip is written in its attribute form (`min`/`max`)
/// before opset 11 and from 11 on with scalar f32 initializers
/// `<output>_min`/`<output>_max` (made unique likewise) as inputs 2 and 3,
/// an absent bound leaving its input out. Every other op has one form,
/// written whatever `opset` says, so an opset older than an op (HardSwish
/// needs 14) gives a model other tools reject. Intermediate values get
/// `value_info` when shapes infer; the graph is otherwise written as given,
/// so invalid graphs can be saved to test the loader.
pub fn to_proto_with_opset(graph: &Graph, opset: i64) -> ModelProto {
    let mut used: BTreeSet<String> = graph.initializers.keys().cloned().collect();
    used.extend(graph.inputs.iter().map(|v| v.name.clone()));
    for n in &graph.nodes {
        used.extend(n.outputs.iter().cloned());
    }
    let mut initializer: Vec<TensorProto> = graph
        .initializers
        .iter()
        .map(|(name, t)| f32_tensor_proto(name, t))
        .collect();
    let mut node = Vec::with_capacity(graph.nodes.len());
    for n in &graph.nodes {
        let mut inputs = n.inputs.clone();
        let attribute = match &n.op {
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => vec![
                attr_f("alpha", *alpha),
                attr_f("beta", *beta),
                attr_i("transA", *trans_a as i64),
                attr_i("transB", *trans_b as i64),
            ],
            Op::Flatten { axis } => vec![attr_i("axis", *axis)],
            Op::Reshape { shape } => {
                let base = format!(
                    "{}_shape",
                    n.outputs.first().map_or("reshape", |s| s.as_str())
                );
                let name = unique_name(&mut used, base);
                initializer.push(TensorProto {
                    dims: vec![shape.len() as i64],
                    data_type: data_type::INT64,
                    name: name.clone(),
                    raw_data: shape.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    ..Default::default()
                });
                inputs.push(name);
                vec![]
            }
            Op::Conv {
                strides,
                pads,
                dilations,
            } => {
                let mut attrs = vec![
                    attr_ints("strides", strides),
                    attr_ints("pads", pads),
                    attr_ints("dilations", dilations),
                ];
                // Optional in ONNX, but some consumers want it; written only
                // when the weight is known, as the loader checks it against W.
                if let Some(w) = n.inputs.get(1).and_then(|w| graph.initializers.get(w)) {
                    if let [_, _, kh, kw] = w.shape[..] {
                        attrs.push(attr_ints("kernel_shape", &[kh, kw]));
                    }
                }
                attrs
            }
            Op::Clip { min, max } if opset < 11 => {
                let bounds = [("min", min), ("max", max)];
                bounds
                    .into_iter()
                    .filter_map(|(name, v)| v.map(|v| attr_f(name, v)))
                    .collect()
            }
            Op::Clip { min, max } => {
                let out = n.outputs.first().map_or("clip", |s| s.as_str());
                for (suffix, bound) in [("min", min), ("max", max)] {
                    match bound {
                        Some(v) => {
                            let name = unique_name(&mut used, format!("{out}_{suffix}"));
                            let scalar = Tensor {
                                shape: vec![],
                                data: vec![*v],
                            };
                            initializer.push(f32_tensor_proto(&name, &scalar));
                            inputs.push(name);
                        }
                        // Holds min's place when only max is given.
                        None => inputs.push(String::new()),
                    }
                }
                while inputs.len() > n.inputs.len() && inputs.last().is_some_and(|s| s.is_empty()) {
                    inputs.pop();
                }
                vec![]
            }
            Op::BatchNormalization { epsilon } => vec![attr_f("epsilon", *epsilon)],
            Op::Pool(pool) => {
                let mut attributes = vec![
                    attr_ints("kernel_shape", &pool.kernel),
                    attr_ints("strides", &pool.strides),
                    attr_ints("pads", &pool.pads),
                    attr_i("ceil_mode", pool.ceil_mode as i64),
                ];
                // AveragePool takes dilations only from opset 19: written when needed.
                if pool.dilations != [1, 1] {
                    attributes.push(attr_ints("dilations", &pool.dilations));
                }
                if pool.kind == crate::pool::PoolKind::Average {
                    attributes.push(attr_i("count_include_pad", pool.count_include_pad as i64));
                }
                attributes
            }
            Op::GlobalPool(_) => vec![],
            Op::LeakyRelu { alpha } => vec![attr_f("alpha", *alpha)],
            Op::HardSigmoid { alpha, beta } => {
                vec![attr_f("alpha", *alpha), attr_f("beta", *beta)]
            }
            Op::MatMul
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Relu
            | Op::Sigmoid
            | Op::Tanh
            | Op::HardSwish
            | Op::Identity => vec![],
            Op::Transpose => vec![AttributeProto {
                name: "perm".into(),
                ints: vec![1, 0],
                r#type: attr_type::INTS,
                ..Default::default()
            }],
        };
        node.push(NodeProto {
            input: inputs,
            output: n.outputs.clone(),
            name: n.name.clone(),
            op_type: n.op.op_type().to_string(),
            attribute,
            domain: String::new(),
        });
    }
    let outputs: BTreeSet<&str> = graph.outputs.iter().map(|o| o.name.as_str()).collect();
    let value_info = match graph.infer_shapes() {
        Ok(shapes) => graph
            .nodes
            .iter()
            .flat_map(|n| n.outputs.iter())
            .filter(|o| !outputs.contains(o.as_str()))
            .filter_map(|o| shapes.get(o).map(|s| vi_proto(o, s)))
            .collect(),
        Err(_) => vec![],
    };
    ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            domain: String::new(),
            version: opset,
        }],
        producer_name: "grim".into(),
        graph: Some(GraphProto {
            node,
            name: graph.name.clone(),
            initializer,
            input: graph
                .inputs
                .iter()
                .map(|v| vi_proto(&v.name, &v.shape))
                .collect(),
            output: graph
                .outputs
                .iter()
                .map(|v| vi_proto(&v.name, &v.shape))
                .collect(),
            value_info,
        }),
    }
}

/// Writes `graph` as an ONNX file, atomically.
pub fn save_onnx(graph: &Graph, path: &Path) -> Result<(), ModelError> {
    write_atomic(path, &to_proto(graph).encode_to_vec())
}

/// Writes `graph` as an ONNX file importing `opset`, atomically (see
/// [`to_proto_with_opset`] for what the opset changes).
pub fn save_onnx_with_opset(graph: &Graph, path: &Path, opset: i64) -> Result<(), ModelError> {
    write_atomic(path, &to_proto_with_opset(graph, opset).encode_to_vec())
}

#[cfg(test)]
mod tests;
