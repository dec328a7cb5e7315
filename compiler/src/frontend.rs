//! Frontends: an ONNX graph or an MLIR file becomes a grim module plus a
//! weight store (weights stay out of the IR; `grim.weight` names them).
//!
//! ONNX normalisation happens here, once: Gemm's `alpha`, `beta`, `transB`
//! and MatMul's `[K, M]` weight are folded into one `[M, K]` (out x in)
//! weight at compile time; `transA` becomes `grim.transpose`; a bias of
//! shape `[M]`, `[1, M]` or a scalar becomes the gemm's bias operand and any
//! other `C` a `grim.add`. Every op carries a location naming its ONNX node.

use crate::CompileError;
use grim_dialects::{diag, grim};
use grim_model::{graph::node_label, Graph, Op, Tensor};
use melior::{
    ir::{
        attribute::{StringAttribute, TypeAttribute},
        block::BlockLike,
        operation::{OperationLike, OperationMutLike},
        r#type::{FunctionType, RankedTensorType},
        Attribute, Block, Location, Module, Region, RegionLike, Type, Value, ValueLike,
    },
    Context,
};
use std::{collections::BTreeMap, path::Path};

/// Weights by name, row-major f32.
pub type WeightStore = BTreeMap<String, Tensor>;

/// The function name every frontend gives the model's entry.
pub const ENTRY: &str = "graph";

fn tensor_type<'c>(context: &'c Context, shape: &[usize]) -> Type<'c> {
    let dims: Vec<u64> = shape.iter().map(|d| *d as u64).collect();
    RankedTensorType::new(&dims, Type::float32(context), None).into()
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

/// Builds the grim module of an ONNX graph; returns it with its weights.
/// The graph's initializers move into the weight store (a VGG-16 has 138 M
/// parameters: they are not copied); weights the frontend derives (a
/// transposed or scaled Gemm B, a broadcast bias) are added beside them.
pub fn from_graph<'c>(
    context: &'c Context,
    graph: Graph,
    path: &Path,
) -> Result<(Module<'c>, WeightStore), CompileError> {
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
    let mut weights: WeightStore = initializers;
    let input_types: Vec<Type> = graph_inputs
        .iter()
        .map(|i| tensor_type(context, &i.shape))
        .collect();
    let output_types: Vec<Type> = graph_outputs
        .iter()
        .map(|o| tensor_type(context, &o.shape))
        .collect();
    let block = Block::new(&input_types.iter().map(|t| (*t, file)).collect::<Vec<_>>());
    let mut values: BTreeMap<String, mlir_sys::MlirValue> = BTreeMap::new();
    for (index, input) in graph_inputs.iter().enumerate() {
        values.insert(
            input.name.clone(),
            block
                .argument(index)
                .map_err(|e| CompileError::Internal(e.to_string()))?
                .to_raw(),
        );
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
        // An operand that is an activation, or a weight materialised as grim.weight.
        let operand = |name: &str,
                       block: &Block<'c>,
                       values: &mut BTreeMap<String, mlir_sys::MlirValue>,
                       weights: &WeightStore|
         -> Result<Value<'c, 'static>, CompileError> {
            if let Some(value) = values.get(name) {
                return Ok(unsafe { Value::from_raw(*value) });
            }
            let tensor = weights.get(name).ok_or_else(|| {
                unsupported(
                    &label,
                    op_type,
                    format!("input '{name}' is not defined before this node"),
                )
            })?;
            let op = block.append_operation(grim::weight(
                context,
                name,
                tensor_type(context, &tensor.shape),
                location,
            ));
            let value: Value = op
                .result(0)
                .map_err(|e| CompileError::Internal(e.to_string()))?
                .into();
            values.insert(name.to_string(), value.to_raw());
            Ok(unsafe { Value::from_raw(value.to_raw()) })
        };
        let output_shape = shapes
            .get(&node.outputs[0])
            .cloned()
            .ok_or_else(|| unsupported(&label, op_type, "output shape unknown".into()))?;
        let result_type = tensor_type(context, &output_shape);
        let result: Value = match &node.op {
            Op::Gemm {
                alpha,
                beta,
                trans_a,
                trans_b,
            } => {
                let b_name = &node.inputs[1];
                let b = weights.get(b_name).ok_or_else(|| {
                    unsupported(
                        &label,
                        op_type,
                        format!("input B '{b_name}' must be a constant initializer"),
                    )
                })?;
                let (m, k) = if *trans_b {
                    (b.shape[0], b.shape[1])
                } else {
                    (b.shape[1], b.shape[0])
                };
                let weight_name = if *trans_b && *alpha == 1.0 {
                    // Already [M, K] (out x in): used in place.
                    b_name.clone()
                } else {
                    let mut w = if *trans_b {
                        b.data.clone()
                    } else {
                        transpose(&b.data, b.shape[0], b.shape[1])
                    };
                    w.iter_mut().for_each(|v| *v *= alpha);
                    let derived = Tensor::new(vec![m, k], w)?;
                    weights.insert(format!("{label}.weight"), derived);
                    format!("{label}.weight")
                };
                let w_op = block.append_operation(grim::weight(
                    context,
                    &weight_name,
                    tensor_type(context, &[m, k]),
                    location,
                ));
                let mut a = operand(&node.inputs[0], &block, &mut values, &weights)?;
                if *trans_a {
                    let a_shape = shapes.get(&node.inputs[0]).cloned().unwrap_or_default();
                    let t = block.append_operation(grim::transpose(
                        a,
                        tensor_type(context, &[a_shape[1], a_shape[0]]),
                        location,
                    ));
                    a = unsafe {
                        Value::from_raw(
                            t.result(0)
                                .map_err(|e| CompileError::Internal(e.to_string()))?
                                .to_raw(),
                        )
                    };
                }
                let w_value: Value = w_op
                    .result(0)
                    .map_err(|e| CompileError::Internal(e.to_string()))?
                    .into();
                // C: bias operand when it is one value per output, else a broadcast add.
                let mut bias = None;
                let mut add_after = None;
                if let Some(c_name) = node.inputs.get(2).filter(|n| !n.is_empty()) {
                    let c = weights.get(c_name).ok_or_else(|| {
                        unsupported(
                            &label,
                            op_type,
                            format!("input C '{c_name}' must be a constant initializer"),
                        )
                    })?;
                    let per_output =
                        c.data.len() == m && c.shape.iter().rev().skip(1).all(|d| *d == 1);
                    let scalar = c.data.len() == 1;
                    let c_shape = c.shape.clone();
                    let scaled =
                        |c: &Tensor| -> Vec<f32> { c.data.iter().map(|v| v * beta).collect() };
                    if per_output || scalar {
                        let name = if *beta == 1.0 && per_output {
                            // One value per output, in order: used in place.
                            c_name.clone()
                        } else {
                            let data = scaled(c);
                            let data = if scalar { vec![data[0]; m] } else { data };
                            weights.insert(format!("{label}.bias"), Tensor::new(vec![m], data)?);
                            format!("{label}.bias")
                        };
                        let op = block.append_operation(grim::weight(
                            context,
                            &name,
                            tensor_type(context, &[m]),
                            location,
                        ));
                        bias = Some(
                            op.result(0)
                                .map_err(|e| CompileError::Internal(e.to_string()))?
                                .into(),
                        );
                    } else {
                        let name = format!("{label}.c");
                        let data = scaled(c);
                        weights.insert(name.clone(), Tensor::new(c_shape.clone(), data)?);
                        add_after = Some((name, c_shape));
                    }
                }
                let gemm =
                    block.append_operation(grim::gemm(a, w_value, bias, result_type, location));
                let mut out: Value = gemm
                    .result(0)
                    .map_err(|e| CompileError::Internal(e.to_string()))?
                    .into();
                if let Some((name, shape)) = add_after {
                    let c_op = block.append_operation(grim::weight(
                        context,
                        &name,
                        tensor_type(context, &shape),
                        location,
                    ));
                    let c_value: Value = c_op
                        .result(0)
                        .map_err(|e| CompileError::Internal(e.to_string()))?
                        .into();
                    let add =
                        block.append_operation(grim::add(out, c_value, result_type, location));
                    out = add
                        .result(0)
                        .map_err(|e| CompileError::Internal(e.to_string()))?
                        .into();
                }
                unsafe { Value::from_raw(out.to_raw()) }
            }
            Op::Conv {
                strides,
                pads,
                dilations,
            } => {
                // The weight (and bias) must be constants; the loader checked the shapes.
                for (index, what) in [(1, "W"), (2, "B")] {
                    if let Some(name) = node.inputs.get(index).filter(|n| !n.is_empty()) {
                        if !weights.contains_key(name) {
                            return Err(unsupported(
                                &label,
                                op_type,
                                format!("input {what} '{name}' must be a constant initializer"),
                            ));
                        }
                    }
                }
                let x = operand(&node.inputs[0], &block, &mut values, &weights)?;
                let w = operand(&node.inputs[1], &block, &mut values, &weights)?;
                let bias = match node.inputs.get(2).filter(|n| !n.is_empty()) {
                    Some(name) => Some(operand(name, &block, &mut values, &weights)?),
                    None => None,
                };
                let attrs = grim::ConvAttrs {
                    strides: [strides[0] as i64, strides[1] as i64],
                    pads: [
                        pads[0] as i64,
                        pads[1] as i64,
                        pads[2] as i64,
                        pads[3] as i64,
                    ],
                    dilations: [dilations[0] as i64, dilations[1] as i64],
                };
                let conv = block.append_operation(grim::conv2d(
                    context,
                    x,
                    w,
                    bias,
                    &attrs,
                    result_type,
                    location,
                ));
                let out: Value = conv
                    .result(0)
                    .map_err(|e| CompileError::Internal(e.to_string()))?
                    .into();
                unsafe { Value::from_raw(out.to_raw()) }
            }
            Op::MatMul => {
                let b_name = &node.inputs[1];
                let b = weights.get(b_name).ok_or_else(|| unsupported(&label, op_type, format!("input B '{b_name}' must be a constant initializer (products of two activations are not supported)")))?;
                let a_shape = shapes.get(&node.inputs[0]).cloned().unwrap_or_default();
                if b.shape.len() != 2 || !(a_shape.len() == 2 || a_shape.len() == 1) {
                    return Err(unsupported(&label, op_type, format!("only [N, K] x [K, M] (or [K] x [K, M]) is supported, got {a_shape:?} x {:?}", b.shape)));
                }
                let (k, m) = (b.shape[0], b.shape[1]);
                let name = format!("{label}.weight");
                weights.insert(
                    name.clone(),
                    Tensor::new(vec![m, k], transpose(&b.data, k, m))?,
                );
                let w_op = block.append_operation(grim::weight(
                    context,
                    &name,
                    tensor_type(context, &[m, k]),
                    location,
                ));
                let w_value: Value = w_op
                    .result(0)
                    .map_err(|e| CompileError::Internal(e.to_string()))?
                    .into();
                let mut a = operand(&node.inputs[0], &block, &mut values, &weights)?;
                let rows = if a_shape.len() == 1 { 1 } else { a_shape[0] };
                if a_shape.len() == 1 {
                    let r = block.append_operation(grim::reshape(
                        a,
                        tensor_type(context, &[1, k]),
                        location,
                    ));
                    a = unsafe {
                        Value::from_raw(
                            r.result(0)
                                .map_err(|e| CompileError::Internal(e.to_string()))?
                                .to_raw(),
                        )
                    };
                }
                let gemm = block.append_operation(grim::gemm(
                    a,
                    w_value,
                    None,
                    tensor_type(context, &[rows, m]),
                    location,
                ));
                let mut out: Value = gemm
                    .result(0)
                    .map_err(|e| CompileError::Internal(e.to_string()))?
                    .into();
                if a_shape.len() == 1 {
                    let r = block.append_operation(grim::reshape(out, result_type, location));
                    out = r
                        .result(0)
                        .map_err(|e| CompileError::Internal(e.to_string()))?
                        .into();
                }
                unsafe { Value::from_raw(out.to_raw()) }
            }
            Op::Add => {
                let a = operand(&node.inputs[0], &block, &mut values, &weights)?;
                let b = operand(&node.inputs[1], &block, &mut values, &weights)?;
                let op = block.append_operation(grim::add(a, b, result_type, location));
                unsafe {
                    Value::from_raw(
                        op.result(0)
                            .map_err(|e| CompileError::Internal(e.to_string()))?
                            .to_raw(),
                    )
                }
            }
            Op::Relu => {
                let a = operand(&node.inputs[0], &block, &mut values, &weights)?;
                let op = block.append_operation(grim::relu(a, location));
                unsafe {
                    Value::from_raw(
                        op.result(0)
                            .map_err(|e| CompileError::Internal(e.to_string()))?
                            .to_raw(),
                    )
                }
            }
            Op::Transpose => {
                let a = operand(&node.inputs[0], &block, &mut values, &weights)?;
                let op = block.append_operation(grim::transpose(a, result_type, location));
                unsafe {
                    Value::from_raw(
                        op.result(0)
                            .map_err(|e| CompileError::Internal(e.to_string()))?
                            .to_raw(),
                    )
                }
            }
            Op::Flatten { .. } | Op::Reshape { .. } => {
                let a = operand(&node.inputs[0], &block, &mut values, &weights)?;
                let op = block.append_operation(grim::reshape(a, result_type, location));
                unsafe {
                    Value::from_raw(
                        op.result(0)
                            .map_err(|e| CompileError::Internal(e.to_string()))?
                            .to_raw(),
                    )
                }
            }
        };
        values.insert(node.outputs[0].clone(), result.to_raw());
    }
    let mut results = Vec::new();
    for output in &graph_outputs {
        let value = values
            .get(&output.name)
            .map(|raw| unsafe { Value::from_raw(*raw) })
            .ok_or_else(|| {
                unsupported(
                    &output.name,
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
    Ok((module, weights))
}

/// Parses a grim MLIR file and moves the values of its `grim.constant`s
/// into a weight store (named as `lower-grim-to-bcr` names them).
pub fn from_mlir<'c>(
    context: &'c Context,
    path: &Path,
) -> Result<(Module<'c>, WeightStore), CompileError> {
    let module = diag::parse_file(context, path).map_err(CompileError::Diagnostics)?;
    grim_dialects::verify_module(context, &module)
        .map_err(|e| CompileError::Diagnostics(e.to_string()))?;
    let mut weights = WeightStore::new();
    let mut failure = None;
    for function in grim_passes::lower::grim_to_bcr::top_level_ops(&module) {
        if function.name().as_string_ref().as_str() != Ok("func.func") {
            continue;
        }
        let name = grim_dialects::attr::string(&function, "sym_name").unwrap_or_default();
        let mut index = 0;
        let Some(body) = function.region(0).ok().and_then(|r| r.first_block()) else {
            continue;
        };
        let mut next = body.first_operation();
        while let Some(op) = next {
            next = op.next_in_block();
            if op.name().as_string_ref().as_str() != Ok(grim::CONSTANT) {
                continue;
            }
            let weight = grim_passes::lower::grim_to_bcr::constant_name(&name, &op, index);
            index += 1;
            // Pin the name on the op: the driver renames the function before lowering.
            unsafe { melior::ir::operation::OperationRefMut::from_raw(op.to_raw()) }
                .set_attribute("name", StringAttribute::new(context, &weight).into());
            match constant_values(op.attribute("value").ok()) {
                Some((shape, data)) => {
                    weights.insert(weight, Tensor { shape, data });
                }
                None => {
                    failure = Some(format!(
                        "{}: error: 'grim.constant' value must be dense f32",
                        diag::format_location(op.location())
                    ))
                }
            }
        }
    }
    match failure {
        Some(message) => Err(CompileError::Diagnostics(message)),
        None => Ok((module, weights)),
    }
}

fn constant_values(attribute: Option<Attribute>) -> Option<(Vec<usize>, Vec<f32>)> {
    use melior::ir::AttributeLike;
    let attribute = attribute?;
    let raw = attribute.to_raw();
    // SAFETY: read-only queries on a live attribute, guarded by its kind.
    unsafe {
        if !mlir_sys::mlirAttributeIsADenseElements(raw) {
            return None;
        }
        let ty = Type::from_raw(mlir_sys::mlirAttributeGetType(raw));
        if !grim_dialects::shape::is_f32_shaped(ty) {
            return None;
        }
        let shape: Vec<usize> = grim_dialects::shape::static_shape(ty)?
            .iter()
            .map(|d| *d as usize)
            .collect();
        let count: usize = shape.iter().product();
        let data = if mlir_sys::mlirDenseElementsAttrIsSplat(raw) {
            vec![mlir_sys::mlirDenseElementsAttrGetFloatSplatValue(raw); count]
        } else {
            (0..count)
                .map(|i| mlir_sys::mlirDenseElementsAttrGetFloatValue(raw, i as isize))
                .collect()
        };
        Some((shape, data))
    }
}
