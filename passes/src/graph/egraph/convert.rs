//! A grim function's body into an e-graph: every op one e-node, the
//! function's arguments, constants and op locations as leaves indexing
//! tables kept here for the way back.

use super::{
    facts::{Facts, Graph},
    lang::{ActLeaf, GemmLeaf, Leaf, Node, OpaqueOp, ResultOf},
};
use crate::{op_error, PassError};
use egg::Id;
use grim_dialects::grim::{self, Activation};
use melior::ir::{
    block::BlockLike,
    operation::{OperationLike, OperationRef},
    BlockRef, Location, Value, ValueLike,
};
use std::collections::HashMap;

/// A function's body in an e-graph, with the tables its leaves index.
pub struct Converted<'c> {
    /// The e-graph.
    pub egraph: Graph,
    /// The classes of what `func.return` returns, in order.
    pub roots: Vec<Id>,
    /// The function's `grim.constant` ops, by `Leaf::Const` index.
    pub constants: Vec<OperationRef<'c, 'c>>,
    /// The ops the language does not model, by `OpaqueOp` index.
    pub opaque: Vec<OperationRef<'c, 'c>>,
    /// The source op of each `Leaf::Name` index (its location and, for a
    /// product, the choices already made on it).
    pub named: Vec<OperationRef<'c, 'c>>,
}

/// A value's identity.
fn key(value: Value) -> usize {
    value.to_raw().ptr as usize
}

/// The number of uses of `value`.
fn use_count(value: Value) -> usize {
    let mut count = 0;
    // SAFETY: walking the use list of a live value.
    unsafe {
        let mut operand = mlir_sys::mlirValueGetFirstUse(value.to_raw());
        while !mlir_sys::mlirOpOperandIsNull(operand) {
            count += 1;
            operand = mlir_sys::mlirOpOperandGetNextUse(operand);
        }
    }
    count
}

/// Converts the body of `function` (its one block).
pub fn convert<'c>(body: BlockRef<'c, 'c>) -> Result<Converted<'c>, PassError> {
    let mut egraph = Graph::new(Facts::default());
    let mut values: HashMap<usize, Id> = HashMap::new();
    let mut constants = Vec::new();
    let mut opaque = Vec::new();
    let mut named = Vec::new();
    let mut roots = Vec::new();
    let mut shared = Vec::new();
    for index in 0..body.argument_count() {
        let argument: Value = body
            .argument(index)
            .map_err(|e| PassError::Unsupported(e.to_string()))?
            .into();
        let shape = grim_dialects::shape::static_shape(argument.r#type()).unwrap_or_default();
        egraph.analysis.inputs.push(shape);
        let id = egraph.add(Node::Leaf(Leaf::Input(index)));
        values.insert(key(argument), id);
        if use_count(argument) > 1 {
            shared.push(id);
        }
    }
    let mut next = body.first_operation();
    while let Some(op) = next {
        next = op.next_in_block();
        let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
        if name == "func.return" {
            for operand in op.operands() {
                roots.push(operand_id(&values, &op, operand)?);
            }
            continue;
        }
        let operand = |index: usize| -> Result<Id, PassError> {
            let value = op.operand(index).map_err(|e| op_error(&op, e))?;
            operand_id(&values, &op, value)
        };
        let mut name_leaf = |egraph: &mut Graph| {
            named.push(op);
            egraph.add(Node::Leaf(Leaf::Name(named.len() - 1)))
        };
        let node = match name.as_str() {
            grim::CONSTANT => {
                let value =
                    grim::constant_value(&op).ok_or_else(|| op_error(&op, "has no value"))?;
                let shape = grim_dialects::weights::shape(value)
                    .ok_or_else(|| op_error(&op, "value must be f32 weights"))?;
                egraph.analysis.constants.push(shape);
                constants.push(op);
                Node::Leaf(Leaf::Const(constants.len() - 1))
            }
            grim::GEMM | grim::CONV2D => {
                let product =
                    grim::product(&op).ok_or_else(|| op_error(&op, "has malformed operands"))?;
                let attrs = if name == grim::GEMM {
                    Leaf::Gemm(GemmLeaf::from(grim::gemm_attrs(&op)))
                } else {
                    Leaf::Conv(
                        grim::conv_attrs(&op)
                            .ok_or_else(|| op_error(&op, "has malformed geometry"))?,
                    )
                };
                let activation = Activation::of_epilogue(&op).map_err(|e| op_error(&op, e))?;
                let none = egraph.add(Node::Leaf(Leaf::None));
                let optional = |value: Option<Value<'c, '_>>| -> Result<Id, PassError> {
                    match value {
                        Some(value) => operand_id(&values, &op, value),
                        None => Ok(none),
                    }
                };
                let children = [
                    egraph.add(Node::Leaf(attrs)),
                    egraph.add(Node::Leaf(Leaf::Act(ActLeaf::from(activation)))),
                    name_leaf(&mut egraph),
                    operand_id(&values, &op, product.input)?,
                    operand_id(&values, &op, product.weight)?,
                    optional(product.bias)?,
                    optional(product.residual)?,
                ];
                if name == grim::GEMM {
                    Node::Gemm(children)
                } else {
                    Node::Conv(children)
                }
            }
            grim::BATCH_NORM => {
                let epsilon = grim_dialects::attr::float(&op, "epsilon")
                    .ok_or_else(|| op_error(&op, "needs an f32 'epsilon'"))?;
                Node::BatchNorm([
                    egraph.add(Node::Leaf(Leaf::F32(epsilon.into()))),
                    name_leaf(&mut egraph),
                    operand(0)?,
                    operand(1)?,
                    operand(2)?,
                    operand(3)?,
                    operand(4)?,
                ])
            }
            grim::ADD => Node::Add([name_leaf(&mut egraph), operand(0)?, operand(1)?]),
            grim::TRANSPOSE => Node::Transpose([name_leaf(&mut egraph), operand(0)?]),
            grim::IDENTITY => Node::Identity([name_leaf(&mut egraph), operand(0)?]),
            grim::RESHAPE => {
                let result = op.result(0).map_err(|e| op_error(&op, e))?;
                let shape = grim_dialects::shape::static_shape(result.r#type())
                    .ok_or_else(|| op_error(&op, "needs a static result shape"))?;
                Node::Reshape([
                    egraph.add(Node::Leaf(Leaf::Shape(shape))),
                    name_leaf(&mut egraph),
                    operand(0)?,
                ])
            }
            name if grim::ACTIVATIONS.contains(&name) => {
                let activation = Activation::of_op(&op)
                    .ok_or_else(|| op_error(&op, "has malformed activation attributes"))?;
                Node::Act([
                    egraph.add(Node::Leaf(Leaf::Act(ActLeaf::from(Some(activation))))),
                    name_leaf(&mut egraph),
                    operand(0)?,
                ])
            }
            _ => {
                if op.result_count() == 0 {
                    return Err(op_error(
                        &op,
                        "has no grim meaning and no result; graph-simplify keeps only ops with results",
                    ));
                }
                let mut children = Vec::new();
                for index in 0..op.operand_count() {
                    children.push(operand(index)?);
                }
                let shapes: Vec<Vec<i64>> = op
                    .results()
                    .map(|r| grim_dialects::shape::static_shape(r.r#type()).unwrap_or_default())
                    .collect();
                egraph.analysis.opaque.push(shapes[0].clone());
                egraph.analysis.opaque_results.push(shapes);
                opaque.push(op);
                Node::Opaque(OpaqueOp(opaque.len() - 1), children)
            }
        };
        let id = egraph.add(node.clone());
        // Results past the first: a projection each.
        if let Node::Opaque(OpaqueOp(index), _) = node {
            for result_index in 1..op.result_count() {
                let projection = egraph.add(Node::Result(
                    ResultOf {
                        op: index,
                        index: result_index,
                    },
                    vec![id],
                ));
                let result = op.result(result_index).map_err(|e| op_error(&op, e))?;
                values.insert(key(result.into()), projection);
                if use_count(result.into()) > 1 {
                    shared.push(projection);
                }
            }
        }
        let result = op.result(0).map_err(|e| op_error(&op, e))?;
        values.insert(key(result.into()), id);
        if use_count(result.into()) > 1 {
            shared.push(id);
        }
    }
    egraph.analysis.shared.extend(shared);
    egraph.rebuild();
    Ok(Converted {
        egraph,
        roots,
        constants,
        opaque,
        named,
    })
}

fn operand_id(
    values: &HashMap<usize, Id>,
    op: &OperationRef,
    value: Value,
) -> Result<Id, PassError> {
    values
        .get(&key(value))
        .copied()
        .ok_or_else(|| op_error(op, "reads a value defined outside the function body"))
}

/// The location of a `Leaf::Name`.
pub fn location<'c>(converted: &Converted<'c>, index: usize) -> Option<Location<'c>> {
    converted.named.get(index).map(|op| op.location())
}
