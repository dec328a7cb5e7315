//! Frontends: an ONNX graph or an MLIR file becomes a grim module whose
//! weights are part of it (`grim.constant {value = dense_resource<...>}`).
//!
//! The ONNX graph is translated op by op, and nothing is decided here:
//! every op carries a location naming its ONNX node, every initializer
//! becomes one named constant, Gemm keeps its ONNX attributes and MatMul is
//! a Gemm with ONNX's defaults. Making gemms canonical, folding batch norms
//! and fusing epilogues are graph-simplify's rules, so `grim-opt` replays
//! them.

use crate::CompileError;
use grim_dialects::{
    diag,
    grim::{self, Activation, GemmAttrs, Product},
    weights,
};
use grim_model::{graph::node_label, Graph, Op, Tensor};
use melior::{
    ir::{
        attribute::{StringAttribute, TypeAttribute},
        block::BlockLike,
        r#type::FunctionType,
        Block, Location, Module, Region, RegionLike, Type, Value, ValueLike,
    },
    Context,
};
use std::{collections::BTreeMap, path::Path};

/// The function name every frontend gives the model's entry.
pub const ENTRY: &str = "graph";

fn tensor_type<'c>(context: &'c Context, shape: &[usize]) -> Type<'c> {
    let dims: Vec<i64> = shape.iter().map(|d| *d as i64).collect();
    weights::tensor_type(context, &dims)
}

fn internal(error: impl std::fmt::Display) -> CompileError {
    CompileError::Internal(error.to_string())
}

/// Builds the ops of one function body from an ONNX graph.
struct Translation<'c, 'b> {
    context: &'c Context,
    block: &'b Block<'c>,
    /// Initializers not yet placed in the module; each moves into its
    /// resource on first use (a VGG-16 has 138 M parameters: not copied).
    initializers: BTreeMap<String, Tensor>,
    /// Values by ONNX name: graph inputs, node outputs, constants made.
    values: BTreeMap<String, mlir_sys::MlirValue>,
}

impl<'c> Translation<'c, '_> {
    fn value(&self, raw: mlir_sys::MlirValue) -> Value<'c, 'static> {
        // SAFETY: every recorded value belongs to an op of this block, which
        // lives as long as the module.
        unsafe { Value::from_raw(raw) }
    }

    /// Appends `op` and returns its result.
    fn append(&self, op: melior::ir::Operation<'c>) -> Result<Value<'c, 'static>, CompileError> {
        let op = self.block.append_operation(op);
        let raw = op.result(0).map_err(internal)?.to_raw();
        Ok(self.value(raw))
    }

    /// A named constant holding `tensor` (moved into its resource).
    fn constant(
        &mut self,
        name: &str,
        tensor: Tensor,
        location: Location<'c>,
    ) -> Result<Value<'c, 'static>, CompileError> {
        let shape: Vec<i64> = tensor.shape.iter().map(|d| *d as i64).collect();
        let ty = weights::tensor_type(self.context, &shape);
        let value = weights::resource(self.context, name, &shape, tensor.data);
        let result = self.append(grim::constant(
            self.context,
            Some(name),
            value,
            ty,
            location,
        ))?;
        self.values.insert(name.to_string(), result.to_raw());
        Ok(result)
    }

    /// The value of an ONNX name: an activation, or an initializer made a
    /// constant on first use.
    fn operand(
        &mut self,
        name: &str,
        location: Location<'c>,
        missing: impl FnOnce() -> CompileError,
    ) -> Result<Value<'c, 'static>, CompileError> {
        if let Some(raw) = self.values.get(name) {
            return Ok(self.value(*raw));
        }
        let tensor = self.initializers.remove(name).ok_or_else(missing)?;
        self.constant(name, tensor, location)
    }
}

/// Builds the grim module of an ONNX graph.
pub fn from_graph<'c>(
    context: &'c Context,
    graph: Graph,
    path: &Path,
) -> Result<Module<'c>, CompileError> {
    let shapes = graph.validate()?;
    let Graph {
        inputs: graph_inputs,
        outputs: graph_outputs,
        nodes,
        initializers,
        ..
    } = graph;
    let file = Location::new(context, &path.display().to_string(), 0, 0);
    let module = Module::new(file);
    let input_types: Vec<Type> = graph_inputs
        .iter()
        .map(|i| tensor_type(context, &i.shape))
        .collect();
    let output_types: Vec<Type> = graph_outputs
        .iter()
        .map(|o| tensor_type(context, &o.shape))
        .collect();
    let block = Block::new(&input_types.iter().map(|t| (*t, file)).collect::<Vec<_>>());
    let mut t = Translation {
        context,
        block: &block,
        initializers,
        values: BTreeMap::new(),
    };
    for (index, input) in graph_inputs.iter().enumerate() {
        let argument = block.argument(index).map_err(internal)?;
        t.values.insert(input.name.clone(), argument.to_raw());
    }
    let unsupported = |node: &str, op_type: &str, what: String| {
        CompileError::Model(grim_model::ModelError::Unsupported {
            node: node.into(),
            op_type: op_type.into(),
            what,
        })
    };

    for (index, node) in nodes.iter().enumerate() {
        let label = node_label(node, index);
        let location = Location::name(context, &label, file);
        let op_type = node.op.op_type();
        let not_defined = |name: &str| {
            let name = name.to_string();
            let label = label.clone();
            move || {
                unsupported(
                    &label,
                    op_type,
                    format!("input '{name}' is not defined before this node"),
                )
            }
        };
        // A recurrent node's first output may be unused (an empty name).
        let first_output = node
            .outputs
            .iter()
            .find(|o| !o.is_empty())
            .cloned()
            .unwrap_or_default();
        let output_shape = shapes
            .get(&first_output)
            .cloned()
            .ok_or_else(|| unsupported(&label, op_type, "output shape unknown".into()))?;
        let result_type = tensor_type(context, &output_shape);
        let input = |t: &mut Translation<'c, '_>, i: usize| {
            let name = node.inputs[i].clone();
            t.operand(&name, location, not_defined(&name))
        };
        let result: Value = match &node.op {
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                let a = input(&mut t, 0)?;
                let w = input(&mut t, 1)?;
                let c = match node.inputs.get(2).filter(|n| !n.is_empty()) {
                    Some(_) => Some(input(&mut t, 2)?),
                    None => None,
                };
                let attrs = GemmAttrs {
                    alpha: *alpha,
                    beta: *beta,
                    trans_a: *trans_a,
                    trans_b: *trans_b,
                };
                let operands = Product {
                    input: a,
                    weight: w,
                    bias: c,
                    residual: None,
                };
                t.append(grim::gemm(
                    context,
                    &operands,
                    &attrs,
                    None,
                    result_type,
                    location,
                ))?
            }
            // Batched, or a 1-D right operand: numpy matmul as it is.
            Op::MatMul if shapes.get(&node.inputs[1]).is_none_or(|b| b.len() != 2) => {
                let a = input(&mut t, 0)?;
                let b = input(&mut t, 1)?;
                t.append(grim::matmul(a, b, result_type, location))?
            }
            Op::MatMul => {
                let a_shape = shapes.get(&node.inputs[0]).cloned().unwrap_or_default();
                let b_shape = shapes.get(&node.inputs[1]).cloned().unwrap_or_default();
                // Any rows times a 2-D matrix is a gemm over the rows
                // (flattened), so a constant matrix can be BCR.
                let (k, m) = (b_shape[0], b_shape[1]);
                let rows = a_shape[..a_shape.len().saturating_sub(1)]
                    .iter()
                    .product::<usize>();
                let mut a = input(&mut t, 0)?;
                if a_shape.len() != 2 {
                    a = t.append(grim::reshape(a, tensor_type(context, &[rows, k]), location))?;
                }
                let operands = Product {
                    input: a,
                    weight: input(&mut t, 1)?,
                    bias: None,
                    residual: None,
                };
                let out = t.append(grim::gemm(
                    context,
                    &operands,
                    &GemmAttrs::ONNX_DEFAULT,
                    None,
                    tensor_type(context, &[rows, m]),
                    location,
                ))?;
                if a_shape.len() != 2 {
                    t.append(grim::reshape(out, result_type, location))?
                } else {
                    out
                }
            }
            Op::Conv {
                strides,
                pads,
                dilations,
                group,
            } => {
                let x = input(&mut t, 0)?;
                let w = input(&mut t, 1)?;
                let bias = match node.inputs.get(2).filter(|n| !n.is_empty()) {
                    Some(_) => Some(input(&mut t, 2)?),
                    None => None,
                };
                let conv = grim::ConvAttrs {
                    strides: strides.map(|v| v as i64),
                    pads: pads.map(|v| v as i64),
                    dilations: dilations.map(|v| v as i64),
                    group: *group as i64,
                };
                let operands = Product {
                    input: x,
                    weight: w,
                    bias,
                    residual: None,
                };
                t.append(grim::conv2d(
                    context,
                    &operands,
                    &conv,
                    None,
                    result_type,
                    location,
                ))?
            }
            Op::BatchNormalization { epsilon } => {
                let mut operands = Vec::new();
                for i in 0..5 {
                    operands.push(input(&mut t, i)?);
                }
                let operands: [Value; 5] =
                    operands.try_into().map_err(|_| internal("five operands"))?;
                t.append(grim::batch_norm(context, operands, *epsilon, location))?
            }
            Op::Pool(p) => {
                let x = input(&mut t, 0)?;
                let attrs = grim::PoolAttrs {
                    kind: pool_kind(p.kind),
                    kernel: p.kernel.map(|v| v as i64),
                    strides: p.strides.map(|v| v as i64),
                    pads: p.pads.map(|v| v as i64),
                    dilations: p.dilations.map(|v| v as i64),
                    count_include_pad: p.count_include_pad,
                };
                t.append(grim::pool(context, x, &attrs, result_type, location))?
            }
            Op::GlobalPool(kind) => {
                let x = input(&mut t, 0)?;
                // The window of the whole [N, C, H, W] image.
                let shape = grim_dialects::shape::static_shape(x.r#type()).unwrap_or_default();
                let attrs = grim::PoolAttrs {
                    kind: pool_kind(*kind),
                    kernel: [
                        shape.get(2).copied().unwrap_or(1),
                        shape.get(3).copied().unwrap_or(1),
                    ],
                    strides: [1, 1],
                    pads: [0; 4],
                    dilations: [1, 1],
                    count_include_pad: false,
                };
                t.append(grim::pool(context, x, &attrs, result_type, location))?
            }
            Op::Add | Op::Sub | Op::Mul | Op::Div | Op::Max | Op::Min => {
                let a = input(&mut t, 0)?;
                let b = input(&mut t, 1)?;
                let name = match node.op {
                    Op::Add => grim::ADD,
                    Op::Sub => grim::SUB,
                    Op::Mul => grim::MUL,
                    Op::Div => grim::DIV,
                    Op::Max => grim::MAX,
                    _ => grim::MIN,
                };
                t.append(grim::binary(name, a, b, result_type, location))?
            }
            Op::Relu
            | Op::Clip { .. }
            | Op::LeakyRelu { .. }
            | Op::Sigmoid
            | Op::Tanh
            | Op::HardSigmoid { .. }
            | Op::HardSwish => {
                let activation = match node.op {
                    Op::Relu => Activation::Relu,
                    Op::Clip { min, max } => Activation::Clip { min, max },
                    Op::LeakyRelu { alpha } => Activation::LeakyRelu { alpha },
                    Op::Sigmoid => Activation::Sigmoid,
                    Op::Tanh => Activation::Tanh,
                    Op::HardSigmoid { alpha, beta } => Activation::HardSigmoid { alpha, beta },
                    _ => Activation::HardSwish,
                };
                let x = input(&mut t, 0)?;
                t.append(grim::activation(context, &activation, x, location))?
            }
            Op::Identity => {
                let x = input(&mut t, 0)?;
                t.append(grim::identity(x, location))?
            }
            // The 2-D swap is the transpose gemms absorb; no permutation at
            // all is the input itself.
            Op::Transpose { perm } if perm[..] == [1, 0] => {
                let x = input(&mut t, 0)?;
                t.append(grim::transpose(x, result_type, location))?
            }
            Op::Transpose { perm } if perm.iter().enumerate().all(|(i, p)| i == *p) => {
                let x = input(&mut t, 0)?;
                t.append(grim::identity(x, location))?
            }
            Op::Transpose { perm } => {
                let x = input(&mut t, 0)?;
                let perm: Vec<i64> = perm.iter().map(|&p| p as i64).collect();
                t.append(grim::permute(context, x, &perm, result_type, location))?
            }
            Op::Pad { mode, pads, value } => {
                let x = input(&mut t, 0)?;
                let attrs = grim::PadAttrs {
                    mode: *mode,
                    pads: pads.iter().map(|&p| p as i64).collect(),
                    value: *value,
                };
                t.append(grim::pad(context, x, &attrs, result_type, location))?
            }
            Op::Lrn {
                alpha,
                beta,
                bias,
                size,
            } => {
                let x = input(&mut t, 0)?;
                let attrs = grim::LrnAttrs {
                    alpha: *alpha,
                    beta: *beta,
                    bias: *bias,
                    size: *size as i64,
                };
                t.append(grim::lrn(context, x, &attrs, result_type, location))?
            }
            Op::Concat { axis } => {
                // A left fold: each step joins the next input.
                let mut joined = input(&mut t, 0)?;
                let mut shape = shapes.get(&node.inputs[0]).cloned().unwrap_or_default();
                for (i, name) in node.inputs.iter().enumerate().skip(1) {
                    let next = input(&mut t, i)?;
                    let add = shapes.get(name).map_or(0, |s| s[*axis]);
                    shape[*axis] += add;
                    let ty = if i + 1 == node.inputs.len() {
                        result_type
                    } else {
                        tensor_type(context, &shape)
                    };
                    joined = t.append(grim::concat(
                        context,
                        joined,
                        next,
                        *axis as i64,
                        ty,
                        location,
                    ))?;
                }
                joined
            }
            Op::Softmax { axis, axis_end } => {
                let x = input(&mut t, 0)?;
                t.append(grim::softmax(
                    context,
                    x,
                    *axis as i64,
                    *axis_end as i64,
                    result_type,
                    location,
                ))?
            }
            Op::Flatten { .. } | Op::Reshape { .. } => {
                let x = input(&mut t, 0)?;
                t.append(grim::reshape(x, result_type, location))?
            }
            Op::Recurrent(r) => {
                let mut values = Vec::new();
                for i in 0..node.inputs.len() {
                    values.push(input(&mut t, i)?);
                }
                let optional = |kind| r.operand_index(kind).map(|i| values[i]);
                use grim_model::recurrent::OperandKind;
                let operands = grim::RecurrentOperands {
                    input: values[0],
                    weight: values[1],
                    recurrence: values[2],
                    bias: optional(OperandKind::Bias),
                    initial_h: optional(OperandKind::InitialH),
                    initial_c: optional(OperandKind::InitialC),
                    peepholes: optional(OperandKind::Peepholes),
                };
                let ins: Vec<&[usize]> = node
                    .inputs
                    .iter()
                    .map(|name| shapes.get(name).map_or(&[][..], Vec::as_slice))
                    .collect();
                let types: Vec<Type> = r
                    .output_shapes(&label, &ins)?
                    .iter()
                    .map(|s| tensor_type(context, s))
                    .collect();
                let op = block
                    .append_operation(grim::recurrent(context, &operands, r, &types, location));
                for (i, name) in node.outputs.iter().enumerate() {
                    if !name.is_empty() {
                        let raw = op.result(i).map_err(internal)?.to_raw();
                        t.values.insert(name.clone(), raw);
                    }
                }
                continue;
            }
        };
        t.values.insert(node.outputs[0].clone(), result.to_raw());
    }
    let mut results = Vec::new();
    for output in &graph_outputs {
        let name = output.name.clone();
        let value = t.operand(&name, file, || {
            unsupported(
                &name,
                "output",
                "the graph output is not produced by any node".into(),
            )
        })?;
        results.push(value);
    }
    block.append_operation(melior::dialect::func::r#return(&results, file));
    let region = Region::new();
    region.append_block(block);
    let function_type = FunctionType::new(context, &input_types, &output_types);
    module.body().append_operation(melior::dialect::func::func(
        context,
        StringAttribute::new(context, ENTRY),
        TypeAttribute::new(function_type.into()),
        region,
        &[],
        file,
    ));
    grim_dialects::verify_module(context, &module)
        .map_err(|e| CompileError::Internal(format!("frontend built an invalid module: {e}")))?;
    Ok(module)
}

/// Parses a grim MLIR file; its weights are in it (`grim.constant` values,
/// `dense_resource` blobs in the resource section). A file printed with
/// elided weights is an error naming the first weight without data.
pub fn from_mlir<'c>(context: &'c Context, path: &Path) -> Result<Module<'c>, CompileError> {
    let module = diag::parse_file(context, path).map_err(CompileError::Diagnostics)?;
    grim_dialects::verify_module(context, &module)
        .map_err(|e| CompileError::Diagnostics(e.to_string()))?;
    Ok(module)
}

/// The grim dialect's name for a pool's reduction.
fn pool_kind(kind: grim_model::pool::PoolKind) -> grim::PoolKind {
    match kind {
        grim_model::pool::PoolKind::Max => grim::PoolKind::Max,
        grim_model::pool::PoolKind::Average => grim::PoolKind::Average,
    }
}
