//! Writing a [`Graph`] as ONNX (the zoo and test models).

use std::collections::BTreeSet;
use std::path::Path;

use prost::Message;

use crate::error::ModelError;
use crate::fsutil::write_atomic;
use crate::graph::{Graph, Op};
use crate::tensor::Tensor;

use super::proto::tensor_shape_proto::{dimension, Dimension};
use super::proto::type_proto;
use super::proto::*;
use super::{attr_type, data_type};

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

pub(super) fn vi_proto(name: &str, shape: &[usize]) -> ValueInfoProto {
    ValueInfoProto {
        name: name.to_string(),
        r#type: tensor_type(shape),
    }
}

pub(super) fn attr_f(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        f,
        r#type: attr_type::FLOAT,
        ..Default::default()
    }
}

pub(super) fn attr_i(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        i,
        r#type: attr_type::INT,
        ..Default::default()
    }
}

fn attr_s(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        s: v.as_bytes().to_vec(),
        r#type: attr_type::STRING,
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
pub(super) fn f32_tensor_proto(name: &str, t: &Tensor) -> TensorProto {
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
    let shapes = graph.infer_shapes().unwrap_or_default();
    for n in &graph.nodes {
        if let Op::Softmax { axis, axis_end } = n.op {
            let shape = n.inputs.first().and_then(|x| shapes.get(x));
            if let Some(nodes) =
                softmax_nodes(n, axis, axis_end, shape, opset, &mut used, &mut initializer)
            {
                node.extend(nodes);
                continue;
            }
        }
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
            Op::Pad { mode, pads, value } => {
                let mut attrs = Vec::new();
                if *mode != crate::pad::PadMode::Constant {
                    attrs.push(attr_s("mode", mode.name()));
                }
                if opset < 11 {
                    attrs.push(attr_ints("pads", pads));
                    if value.to_bits() != 0 {
                        attrs.push(attr_f("value", *value));
                    }
                } else {
                    let out = n.outputs.first().map_or("pad", |s| s.as_str());
                    let name = unique_name(&mut used, format!("{out}_pads"));
                    initializer.push(TensorProto {
                        dims: vec![pads.len() as i64],
                        data_type: data_type::INT64,
                        name: name.clone(),
                        raw_data: pads
                            .iter()
                            .flat_map(|&v| (v as i64).to_le_bytes())
                            .collect(),
                        ..Default::default()
                    });
                    inputs.push(name);
                    if value.to_bits() != 0 {
                        let name = unique_name(&mut used, format!("{out}_value"));
                        let scalar = Tensor {
                            shape: vec![],
                            data: vec![*value],
                        };
                        initializer.push(f32_tensor_proto(&name, &scalar));
                        inputs.push(name);
                    }
                }
                attrs
            }
            Op::Conv {
                strides,
                pads,
                dilations,
                group,
            } => {
                let mut attrs = vec![
                    attr_ints("strides", strides),
                    attr_ints("pads", pads),
                    attr_ints("dilations", dilations),
                ];
                if *group != 1 {
                    attrs.push(attr_i("group", *group as i64));
                }
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
            // A span the opset reads directly (softmax_nodes writes the others).
            Op::Softmax { axis, .. } => vec![attr_i("axis", *axis as i64)],
            Op::Concat { axis } => vec![attr_i("axis", *axis as i64)],
            Op::Lrn {
                alpha,
                beta,
                bias,
                size,
            } => vec![
                attr_f("alpha", *alpha),
                attr_f("beta", *beta),
                attr_f("bias", *bias),
                attr_i("size", *size as i64),
            ],
            Op::HardSigmoid { alpha, beta } => {
                vec![attr_f("alpha", *alpha), attr_f("beta", *beta)]
            }
            Op::MatMul
            | Op::Add
            | Op::Sub
            | Op::Mul
            | Op::Div
            | Op::Max
            | Op::Min
            | Op::Relu
            | Op::Sigmoid
            | Op::Tanh
            | Op::HardSwish
            | Op::Identity => vec![],
            Op::Recurrent(r) => {
                let lens = r.sequence_lens.as_ref().map(|lens| {
                    let base = format!("{}_sequence_lens", n.name);
                    let name = unique_name(&mut used, base);
                    initializer.push(TensorProto {
                        dims: vec![lens.len() as i64],
                        data_type: data_type::INT32,
                        name: name.clone(),
                        raw_data: lens
                            .iter()
                            .flat_map(|&l| (l as i32).to_le_bytes())
                            .collect(),
                        ..Default::default()
                    });
                    name
                });
                let (attributes, positional) =
                    super::recurrent::export(r, &n.inputs, lens.as_deref());
                inputs = positional;
                attributes
            }
            Op::Transpose { perm } => vec![AttributeProto {
                name: "perm".into(),
                ints: perm.iter().map(|&p| p as i64).collect(),
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

/// The nodes of a Softmax over dims `[axis, end)` of `shape` that `opset`
/// cannot read from one Softmax (before 13 Softmax reduces every dim from
/// its axis, from 13 only its axis): the span moved last by a Transpose,
/// flattened into one dim from opset 13, the Softmax, then the layout
/// restored. `None` when one Softmax says it (or the shape is unknown,
/// which only an invalid graph has).
fn softmax_nodes(
    n: &crate::graph::Node,
    axis: usize,
    end: usize,
    shape: Option<&Vec<usize>>,
    opset: i64,
    used: &mut BTreeSet<String>,
    initializer: &mut Vec<TensorProto>,
) -> Option<Vec<NodeProto>> {
    let shape = shape?;
    let rank = shape.len();
    if (opset >= 13 && end == axis + 1) || (opset < 13 && end == rank) {
        return None;
    }
    let out = n.outputs.first()?.clone();
    let mut fresh = |what: &str| unique_name(used, format!("{out}/{what}"));
    let node =
        |op: &str, inputs: Vec<String>, output: String, attribute: Vec<AttributeProto>| NodeProto {
            input: inputs,
            output: vec![output],
            name: format!("{}/{}", n.name, op.to_lowercase()),
            op_type: op.into(),
            attribute,
            domain: String::new(),
        };
    let ints = |name: &str, v: &[usize]| AttributeProto {
        name: name.into(),
        ints: v.iter().map(|&p| p as i64).collect(),
        r#type: attr_type::INTS,
        ..Default::default()
    };
    let mut nodes = Vec::new();
    let mut current = n.inputs.first()?.clone();
    // Move the span last.
    let perm: Vec<usize> = (0..axis).chain(end..rank).chain(axis..end).collect();
    let moved = perm != (0..rank).collect::<Vec<_>>();
    if moved {
        let t = fresh("span_last");
        nodes.push(node(
            "Transpose",
            vec![current],
            t.clone(),
            vec![ints("perm", &perm)],
        ));
        current = t;
    }
    let first = rank - (end - axis);
    let moved_shape: Vec<usize> = perm.iter().map(|&p| shape[p]).collect();
    let softmax_out = if moved { fresh("softmax") } else { out.clone() };
    if opset >= 13 && end > axis + 1 {
        let flat = fresh("flat");
        nodes.push(node(
            "Flatten",
            vec![current],
            flat.clone(),
            vec![attr_i("axis", first as i64)],
        ));
        let reduced = fresh("reduced");
        nodes.push(node(
            "Softmax",
            vec![flat],
            reduced.clone(),
            vec![attr_i("axis", 1)],
        ));
        let shape_name = fresh("shape");
        initializer.push(TensorProto {
            dims: vec![rank as i64],
            data_type: data_type::INT64,
            name: shape_name.clone(),
            raw_data: moved_shape
                .iter()
                .flat_map(|&v| (v as i64).to_le_bytes())
                .collect(),
            ..Default::default()
        });
        nodes.push(node(
            "Reshape",
            vec![reduced, shape_name],
            softmax_out.clone(),
            vec![],
        ));
    } else {
        nodes.push(node(
            "Softmax",
            vec![current],
            softmax_out.clone(),
            vec![attr_i("axis", first as i64)],
        ));
    }
    if moved {
        let mut back = vec![0; rank];
        for (i, &p) in perm.iter().enumerate() {
            back[p] = i;
        }
        nodes.push(node(
            "Transpose",
            vec![softmax_out],
            out,
            vec![ints("perm", &back)],
        ));
    }
    Some(nodes)
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
