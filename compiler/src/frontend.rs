//! Frontends: an ONNX graph or an MLIR file becomes a grim module whose
//! weights are part of it (`grim.constant {value = dense_resource<...>}`).
//!
//! The ONNX graph is translated op by op: every op carries a location
//! naming its ONNX node, every initializer becomes one named constant. The
//! one normalisation still done here is Gemm's: `alpha`, `beta`, `transB`
//! and MatMul's `[K, M]` weight are folded into one `[M, K]` (out x in)
//! weight, `transA` becomes `grim.transpose`, and a C of shape `[M]`,
//! `[1, M]` or a scalar becomes the gemm's bias (any other C a `grim.add`),
//! so every `grim.gemm` is in the canonical form lowering wants.

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

fn transpose(data: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; data.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = data[r * cols + c];
        }
    }
    out
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
    /// Shapes of constants, by ONNX name (they leave `initializers`).
    constant_shapes: BTreeMap<String, Vec<usize>>,
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
        self.constant_shapes
            .insert(name.to_string(), tensor.shape.clone());
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

    /// The shape of a constant (placed or not); `None` when `name` is not one.
    fn constant_shape(&self, name: &str) -> Option<Vec<usize>> {
        self.initializers
            .get(name)
            .map(|t| t.shape.clone())
            .or_else(|| self.constant_shapes.get(name).cloned())
    }

    /// A constant's values (for the Gemm folding), placed or not; `None`
    /// when `name` is not a constant.
    fn constant_tensor(&self, name: &str) -> Option<Tensor> {
        if let Some(tensor) = self.initializers.get(name) {
            return Some(tensor.clone());
        }
        let constant = grim::defining_constant(self.value(*self.values.get(name)?))?;
        Some(Tensor {
            shape: self.constant_shapes.get(name)?.clone(),
            data: weights::read(grim::constant_value(&constant)?)?,
        })
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
        constant_shapes: BTreeMap::new(),
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
        let output_shape = shapes
            .get(&node.outputs[0])
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
                let a_shape = shapes.get(&node.inputs[0]).cloned().unwrap_or_default();
                gemm(
                    &mut t,
                    GemmNode {
                        label: &label,
                        a: &node.inputs[0],
                        a_shape: &a_shape,
                        b: &node.inputs[1],
                        c: node.inputs.get(2).map(String::as_str),
                        alpha: *alpha,
                        beta: *beta,
                        trans_a: *trans_a,
                        trans_b: *trans_b,
                    },
                    result_type,
                    location,
                )?
            }
            Op::MatMul => {
                let a_shape = shapes.get(&node.inputs[0]).cloned().unwrap_or_default();
                let b_shape = shapes.get(&node.inputs[1]).cloned().unwrap_or_default();
                if b_shape.len() != 2 || !(a_shape.len() == 2 || a_shape.len() == 1) {
                    return Err(unsupported(&label, op_type, format!("only [N, K] x [K, M] (or [K] x [K, M]) is supported, got {a_shape:?} x {b_shape:?}")));
                }
                let (k, m) = (b_shape[0], b_shape[1]);
                let rows = if a_shape.len() == 1 { 1 } else { a_shape[0] };
                let a = if a_shape.len() == 1 {
                    let a = input(&mut t, 0)?;
                    let reshaped =
                        t.append(grim::reshape(a, tensor_type(context, &[1, k]), location))?;
                    let name = format!("{label}.input");
                    t.values.insert(name.clone(), reshaped.to_raw());
                    name
                } else {
                    node.inputs[0].clone()
                };
                let out = gemm(
                    &mut t,
                    GemmNode {
                        label: &label,
                        a: &a,
                        a_shape: &[rows, k],
                        b: &node.inputs[1],
                        c: None,
                        alpha: 1.0,
                        beta: 1.0,
                        trans_a: false,
                        trans_b: false,
                    },
                    tensor_type(context, &[rows, m]),
                    location,
                )?;
                if a_shape.len() == 1 {
                    t.append(grim::reshape(out, result_type, location))?
                } else {
                    out
                }
            }
            Op::Conv {
                strides,
                pads,
                dilations,
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
            Op::Add => {
                let a = input(&mut t, 0)?;
                let b = input(&mut t, 1)?;
                t.append(grim::add(a, b, result_type, location))?
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
            Op::Transpose => {
                let x = input(&mut t, 0)?;
                t.append(grim::transpose(x, result_type, location))?
            }
            Op::Flatten { .. } | Op::Reshape { .. } => {
                let x = input(&mut t, 0)?;
                t.append(grim::reshape(x, result_type, location))?
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

/// An ONNX Gemm (or a MatMul as one) to translate.
struct GemmNode<'a> {
    label: &'a str,
    a: &'a str,
    a_shape: &'a [usize],
    b: &'a str,
    c: Option<&'a str>,
    alpha: f32,
    beta: f32,
    trans_a: bool,
    trans_b: bool,
}

/// A canonical `grim.gemm` for an ONNX Gemm: the weight folded to `[M, K]`
/// (renamed `<node>.weight` when its values change), the bias to `[M]`
/// (`<node>.bias`), any other C added after (`<node>.c`).
fn gemm<'c>(
    t: &mut Translation<'c, '_>,
    node: GemmNode,
    result_type: Type<'c>,
    location: Location<'c>,
) -> Result<Value<'c, 'static>, CompileError> {
    let context = t.context;
    let unsupported = |what: String| {
        CompileError::Model(grim_model::ModelError::Unsupported {
            node: node.label.into(),
            op_type: "Gemm".into(),
            what,
        })
    };
    let Some(b_shape) = t.constant_shape(node.b) else {
        return Err(unsupported(format!(
            "input B '{}' must be a constant initializer (products of two activations are not supported)",
            node.b
        )));
    };
    let (m, k) = if node.trans_b {
        (b_shape[0], b_shape[1])
    } else {
        (b_shape[1], b_shape[0])
    };
    let weight = if node.trans_b && node.alpha == 1.0 {
        // Already [M, K] (out x in): used as it is.
        t.operand(node.b, location, || internal("weight vanished"))?
    } else {
        let b = t
            .constant_tensor(node.b)
            .ok_or_else(|| internal("weight vanished"))?;
        let mut w = if node.trans_b {
            b.data
        } else {
            transpose(&b.data, b.shape[0], b.shape[1])
        };
        w.iter_mut().for_each(|v| *v *= node.alpha);
        t.constant(
            &format!("{}.weight", node.label),
            Tensor::new(vec![m, k], w)?,
            location,
        )?
    };
    let mut a = t.operand(node.a, location, || internal("gemm input vanished"))?;
    if node.trans_a {
        a = t.append(grim::transpose(
            a,
            tensor_type(context, &[node.a_shape[1], node.a_shape[0]]),
            location,
        ))?;
    }
    // C: the bias when it is one value per output (or a scalar), else an add after.
    let mut bias = None;
    let mut add_after = None;
    if let Some(c_name) = node.c.filter(|n| !n.is_empty()) {
        let c = match t.constant_tensor(c_name) {
            Some(c) => c,
            None => {
                return Err(unsupported(format!(
                    "input C '{c_name}' must be a constant initializer"
                )))
            }
        };
        let per_output = c.data.len() == m && c.shape.iter().rev().skip(1).all(|d| *d == 1);
        let scalar = c.data.len() == 1;
        let scaled = |c: &Tensor| -> Vec<f32> { c.data.iter().map(|v| v * node.beta).collect() };
        if per_output || scalar {
            bias = Some(if node.beta == 1.0 && per_output && c.shape.len() == 1 {
                t.operand(c_name, location, || internal("bias vanished"))?
            } else {
                let data = scaled(&c);
                let data = if scalar { vec![data[0]; m] } else { data };
                t.constant(
                    &format!("{}.bias", node.label),
                    Tensor::new(vec![m], data)?,
                    location,
                )?
            });
        } else {
            add_after = Some(Tensor::new(c.shape.clone(), scaled(&c))?);
        }
    }
    let operands = Product {
        input: a,
        weight,
        bias,
        residual: None,
    };
    let out = t.append(grim::gemm(
        context,
        &operands,
        &GemmAttrs::CANONICAL,
        None,
        result_type,
        location,
    ))?;
    match add_after {
        Some(c) => {
            let c = t.constant(&format!("{}.c", node.label), c, location)?;
            t.append(grim::add(out, c, result_type, location))
        }
        None => Ok(out),
    }
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
