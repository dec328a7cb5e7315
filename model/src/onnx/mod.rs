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
use crate::graph::{node_output_shapes, Graph, Node, Op, ValueInfo};
use crate::tensor::Tensor;

mod attrs;
mod decode;
mod export;
mod fold;
mod ops;
pub mod proto;
pub mod pytorch_rnn;
mod recurrent;

use attrs::Attrs;
use decode::{decode_tensor, input_shape, model_err, output_shape, Const};
pub use export::{save_onnx, save_onnx_with_opset, to_proto, to_proto_with_opset};
use ops::*;

/// `TensorProto.DataType` values grim handles.
pub mod data_type {
    /// float32.
    pub const FLOAT: i32 = 1;
    /// int32 (read as int64: sequence lengths).
    pub const INT32: i32 = 6;
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
    /// `floats`.
    pub const FLOATS: i32 = 6;
    /// `ints`.
    pub const INTS: i32 = 7;
    /// `strings`.
    pub const STRINGS: i32 = 8;
}

use proto::*;

/// Appends `node`, whose inputs must be defined, and records its output's shape.
fn push_node(
    nodes: &mut Vec<Node>,
    shapes: &mut BTreeMap<String, Vec<usize>>,
    label: &str,
    node: Node,
) -> Result<(), ModelError> {
    let mut ins: Vec<&[usize]> = Vec::new();
    for name in &node.inputs {
        ins.push(shapes.get(name).ok_or_else(|| ModelError::Shape {
            node: label.to_string(),
            message: format!(
                "input '{name}' is not defined before this node \
                 (unknown value, non-float constant, or nodes not topologically sorted)"
            ),
        })?);
    }
    let out_shapes = node_output_shapes(label, &node, &ins)?;
    for (name, shape) in node.outputs.iter().zip(out_shapes) {
        if !name.is_empty() {
            shapes.insert(name.clone(), shape);
        }
    }
    nodes.push(node);
    Ok(())
}

/// How a model is loaded.
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// Shapes for graph inputs by name (`--input-shape NAME=1x3x224x224`),
    /// fixing their free dimensions as onnxruntime and tract let users do.
    pub input_shapes: BTreeMap<String, Vec<usize>>,
}

/// A loaded model and what the loader decided on the user's behalf.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The graph.
    pub graph: Graph,
    /// Notes for the user (a free batch dimension taken as 1, ...).
    pub notes: Vec<String>,
}

/// Reads and converts an ONNX model.
///
/// Errors name the file, and for node-level problems the node (its name, or
/// `#index`), its op type and what is unsupported or missing.
pub fn load_onnx(path: &Path) -> Result<Graph, ModelError> {
    load_onnx_with(path, &LoadOptions::default()).map(|loaded| loaded.graph)
}

/// [`load_onnx`] with input shapes, returning the loader's notes too.
pub fn load_onnx_with(path: &Path, options: &LoadOptions) -> Result<Loaded, ModelError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::io(path, e))?;
    let model = ModelProto::decode(bytes.as_slice()).map_err(|e| ModelError::OnnxDecode {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    from_proto_with(&model, path, options)
}

/// Converts a decoded model; `path` is only used in error messages.
pub fn from_proto(model: &ModelProto, path: &Path) -> Result<Graph, ModelError> {
    from_proto_with(model, path, &LoadOptions::default()).map(|loaded| loaded.graph)
}

/// [`from_proto`] with input shapes, returning the loader's notes too.
pub fn from_proto_with(
    model: &ModelProto,
    path: &Path,
    options: &LoadOptions,
) -> Result<Loaded, ModelError> {
    let mut notes = Vec::new();
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

    let runtime_inputs: Vec<&str> = g
        .input
        .iter()
        .map(|vi| vi.name.as_str())
        .filter(|n| !floats.contains_key(*n) && !ints.contains_key(*n) && !bools.contains_key(*n))
        .collect();
    if let Some(unknown) = options
        .input_shapes
        .keys()
        .find(|name| !runtime_inputs.contains(&name.as_str()))
    {
        return Err(model_err(
            path,
            format!(
                "--input-shape names '{unknown}', which is not a graph input (inputs: {})",
                runtime_inputs.join(", ")
            ),
        ));
    }
    let mut inputs = Vec::new();
    for vi in &g.input {
        if floats.contains_key(&vi.name)
            || ints.contains_key(&vi.name)
            || bools.contains_key(&vi.name)
        {
            continue;
        }
        let shape = input_shape(vi, options.input_shapes.get(&vi.name), &mut notes)
            .map_err(|m| model_err(path, m))?;
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
    // Constants folded into a node's op (Clip bounds, Dropout's ratio) or
    // into a constant (fold.rs): they are dropped from the initializers
    // unless a graph op still reads them, so a loaded graph holds no dead
    // weights.
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
        if matches!(np.op_type.as_str(), "RNN" | "GRU" | "LSTM") {
            let mut consumed = Vec::new();
            let (op, inputs) = recurrent::recurrent_op(&at, np, &ints, &mut consumed)?;
            folded.extend(consumed);
            let mut outputs = np.output.clone();
            if let Op::Recurrent(r) = &op {
                outputs.resize(r.cell.outputs(), String::new());
            }
            let node = Node {
                name: np.name.clone(),
                op,
                inputs,
                outputs,
            };
            push_node(&mut nodes, &mut shapes, &label, node)?;
            continue;
        }
        let mut node_inputs: Vec<String> = np.input.clone();
        // An empty name marks an omitted optional input (Gemm's C, Conv's B)
        // or output.
        while node_inputs.last().is_some_and(|s| s.is_empty()) {
            node_inputs.pop();
        }
        // Clip, Dropout and Pad fold their optional inputs into the op, and
        // may omit one before a present one (Clip without min but with max,
        // Pad without constant_value but with axes).
        let folds_inputs = matches!(np.op_type.as_str(), "Clip" | "Dropout" | "Pad");
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

        // A 1-D Conv or pool ([N, C, L]) is the 2-D one over [N, C, 1, L]:
        // Reshapes around it, its attributes and weight given a height of 1.
        let lifted_np;
        let mut lifted_out = None;
        let np = match ops::lift_1d(np, &mut node_inputs, &mut shapes, &mut floats) {
            Some(lift) => {
                folded.extend(lift.consumed);
                for reshape in lift.before {
                    push_node(&mut nodes, &mut shapes, &label, reshape)?;
                }
                lifted_np = lift.node;
                lifted_out = Some(out_name.clone());
                &lifted_np
            }
            None => np,
        };
        let out_name = match &lifted_out {
            Some(name) => format!("{name}/as_2d"),
            None => out_name,
        };
        let constants = fold::Constants {
            floats: &floats,
            ints: &ints,
            shapes: &shapes,
        };
        if let Some(value) = fold::fold(&at, np, &node_inputs, opset, &constants)? {
            // Its inputs and itself stay initializers only if a graph op reads them.
            folded.extend(node_inputs.iter().cloned());
            folded.insert(out_name.clone());
            match value {
                fold::Folded::Floats(t) => {
                    shapes.insert(out_name.clone(), t.shape.clone());
                    floats.insert(out_name, t);
                }
                fold::Folded::Ints(s, v) => {
                    ints.insert(out_name, (s, v));
                }
            }
            continue;
        }
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
            "Sum" | "Max" | "Min" => {
                if let Some(a) = np.attribute.first() {
                    return Err(at.unknown(a));
                }
                let op = match np.op_type.as_str() {
                    "Sum" => Op::Add,
                    "Max" => Op::Max,
                    _ => Op::Min,
                };
                // A left fold into binary ops (the inputs broadcast alike);
                // one input is that input.
                if node_inputs.is_empty() {
                    return Err(at.unsupported(format!("{} needs at least one input", np.op_type)));
                }
                let step = op.op_type().to_lowercase();
                while node_inputs.len() > 2 {
                    let partial = format!("{out_name}/{step}{}", node_inputs.len() - 2);
                    let rest = node_inputs.split_off(2);
                    let node = Node {
                        name: format!("{}/{step}{}", np.name, rest.len()),
                        op: op.clone(),
                        inputs: std::mem::replace(&mut node_inputs, vec![partial.clone()]),
                        outputs: vec![partial],
                    };
                    push_node(&mut nodes, &mut shapes, &label, node)?;
                    node_inputs.extend(rest);
                }
                if node_inputs.len() == 1 {
                    Op::Identity
                } else {
                    op
                }
            }
            "Pad" => {
                let rank = node_inputs
                    .first()
                    .and_then(|x| shapes.get(x))
                    .map_or(0, Vec::len);
                let (mode, pads, value) =
                    ops::pad_args(&at, np, &node_inputs, opset, &constants, rank)?;
                folded.extend(node_inputs.drain(1..).filter(|s| !s.is_empty()));
                Op::Pad { mode, pads, value }
            }
            "LRN" => {
                let (mut alpha, mut beta, mut bias, mut size) = (1e-4, 0.75, 1.0, None);
                for a in &np.attribute {
                    match a.name.as_str() {
                        "alpha" => alpha = at.float(a)?,
                        "beta" => beta = at.float(a)?,
                        "bias" => bias = at.float(a)?,
                        "size" => {
                            let s = at.int(a)?;
                            size = Some(usize::try_from(s).ok().filter(|s| *s >= 1).ok_or_else(
                                || at.unsupported(format!("size {s} must be at least 1")),
                            )?);
                        }
                        _ => return Err(at.unknown(a)),
                    }
                }
                let size = size.ok_or_else(|| at.unsupported("missing attribute 'size'".into()))?;
                Op::Lrn {
                    alpha,
                    beta,
                    bias,
                    size,
                }
            }
            "Concat" => {
                // Constants were folded (fold.rs); this joins activations.
                let rank = node_inputs
                    .first()
                    .and_then(|x| shapes.get(x))
                    .map_or(0, Vec::len) as i64;
                let mut axis = None;
                for a in &np.attribute {
                    match a.name.as_str() {
                        "axis" => axis = Some(at.int(a)?),
                        _ => return Err(at.unknown(a)),
                    }
                }
                let axis = axis.ok_or_else(|| at.unsupported("missing attribute 'axis'".into()))?;
                if axis < -rank || axis >= rank {
                    return Err(at.unsupported(format!(
                        "axis {axis} is out of range for inputs of rank {rank}"
                    )));
                }
                Op::Concat {
                    axis: ((axis + rank) % rank) as usize,
                }
            }
            "Softmax" => {
                let rank = node_inputs
                    .first()
                    .and_then(|x| shapes.get(x))
                    .map_or(0, Vec::len) as i64;
                // The default axis moved from 1 to -1 with the 13 semantics.
                let mut axis = if opset < 13 { 1 } else { -1 };
                for a in &np.attribute {
                    match a.name.as_str() {
                        "axis" => axis = at.int(a)?,
                        _ => return Err(at.unknown(a)),
                    }
                }
                if axis < -rank || axis >= rank {
                    return Err(at.unsupported(format!(
                        "axis {axis} is out of range for an input of rank {rank}"
                    )));
                }
                let axis = ((axis + rank) % rank) as usize;
                let axis_end = if opset < 13 { rank as usize } else { axis + 1 };
                Op::Softmax { axis, axis_end }
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
                let clip = clip_op(&at, np, opset, &node_inputs, &floats, &shapes)?;
                if opset >= 11 {
                    folded.extend(
                        node_inputs
                            .drain(1..)
                            .filter(|s| !s.is_empty() && floats.contains_key(s)),
                    );
                }
                // Bounds given at run time become Max (the lower) and Min
                // (the upper) on the data, in the order min(max(x, lo), hi)
                // needs (a lower bound above the upper gives the upper).
                let (leading, (op, bound)) = clip.parts();
                for (index, (op, bound)) in (1..).zip(leading) {
                    let partial = format!("{out_name}/clip{index}");
                    let data = std::mem::replace(&mut node_inputs[0], partial.clone());
                    let node = Node {
                        name: format!("{}/clip{index}", np.name),
                        op,
                        inputs: std::iter::once(data).chain(bound).collect(),
                        outputs: vec![partial],
                    };
                    push_node(&mut nodes, &mut shapes, &label, node)?;
                }
                node_inputs.truncate(1);
                node_inputs.extend(bound);
                op
            }
            "Dropout" => {
                dropout_check(&at, np, &node_inputs, &floats, &shapes, &ints, &bools)?;
                folded.extend(node_inputs.drain(1..).filter(|s| !s.is_empty()));
                Op::Identity
            }
            "Transpose" => {
                let rank = node_inputs
                    .first()
                    .and_then(|x| shapes.get(x))
                    .map_or(0, Vec::len);
                // The default reverses the dims; shape inference checks a given one.
                let mut perm: Vec<usize> = (0..rank).rev().collect();
                for a in &np.attribute {
                    match a.name.as_str() {
                        "perm" => {
                            perm = at
                                .ints(a)?
                                .iter()
                                .map(|&p| usize::try_from(p).unwrap_or(usize::MAX))
                                .collect()
                        }
                        _ => return Err(at.unknown(a)),
                    }
                }
                Op::Transpose { perm }
            }
            "Squeeze" | "Unsqueeze" => {
                // Of a value computed at run time (constants were folded):
                // the same elements in a new shape.
                let axes = fold::axes(&at, np, &node_inputs, opset, &constants)?;
                let x_shape =
                    shapes
                        .get(&node_inputs[0])
                        .cloned()
                        .ok_or_else(|| ModelError::Shape {
                            node: label.clone(),
                            message: format!(
                                "input '{}' is not defined before this node",
                                node_inputs[0]
                            ),
                        })?;
                let out =
                    fold::squeeze_shape(&at, &x_shape, axes.as_deref(), np.op_type == "Squeeze")?;
                folded.extend(node_inputs.drain(1..));
                Op::Reshape {
                    shape: out.iter().map(|&d| d as i64).collect(),
                }
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
                let mut allowzero = false;
                for a in &np.attribute {
                    match a.name.as_str() {
                        "allowzero" => allowzero = at.bool01(a)?,
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
                // allowzero = 1 makes a 0 a zero-size dim rather than a copy
                // of the input's; without a 0 both readings agree.
                if allowzero && shape.contains(&0) {
                    return Err(at.unsupported(format!(
                        "allowzero = 1 with a 0 in the shape {shape:?} makes a zero-size tensor, which is not supported"
                    )));
                }
                Op::Reshape { shape }
            }
            "Conv" => {
                if !(2..=3).contains(&node_inputs.len()) {
                    return Err(at.unsupported(format!(
                        "expected 2 or 3 inputs (X, W, optional B), got {}",
                        node_inputs.len()
                    )));
                }
                // A weight given at run time (a graph input) runs the dense
                // kernel; only a constant one can be pruned and packed.
                let w_name = &node_inputs[1];
                let w_shape = match floats.get(w_name) {
                    Some(w) => w.shape.as_slice(),
                    None => shapes.get(w_name).map(Vec::as_slice).ok_or_else(|| {
                        ModelError::Shape {
                            node: label.clone(),
                            message: format!(
                                "weight W '{w_name}' is not defined before this node (or is not f32)"
                            ),
                        }
                    })?,
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
        if let Some(integer) = node_inputs.iter().find(|s| ints.contains_key(*s)) {
            return Err(at.unsupported(format!(
                "input '{integer}' is an integer tensor; grim computes on float32 only"
            )));
        }
        push_node(
            &mut nodes,
            &mut shapes,
            &label,
            Node {
                name: np.name.clone(),
                op,
                inputs: node_inputs,
                outputs: vec![out_name.clone()],
            },
        )?;
        if let Some(final_name) = lifted_out {
            // Back to [N, M, L'] from [N, M, 1, L'].
            let shape: Vec<i64> = shapes
                .get(&out_name)
                .map(|s| {
                    s.iter()
                        .enumerate()
                        .filter(|(d, _)| *d != 2)
                        .map(|(_, &v)| v as i64)
                        .collect()
                })
                .unwrap_or_default();
            push_node(
                &mut nodes,
                &mut shapes,
                &label,
                Node {
                    name: format!("{}/as_1d", np.name),
                    op: Op::Reshape { shape },
                    inputs: vec![out_name],
                    outputs: vec![final_name],
                },
            )?;
        }
    }

    let mut outputs = Vec::new();
    for vi in &g.output {
        let declared = output_shape(vi).map_err(|m| model_err(path, m))?;
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
    Ok(Loaded { graph, notes })
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ops;
