//! The extracted e-graph back into the function body: the best node of
//! every class the results need, built in dependency order before the
//! function's `func.return`; constant expressions evaluated into new
//! `grim.constant`s; then the old ops no longer used are erased.
//!
//! A rebuilt op takes its name leaf's location (the ONNX node name), and a
//! rebuilt product takes the choices already on the source product of that
//! name (kernel, block, order, schedule), so running graph-simplify again
//! changes nothing.

use super::{
    convert::Converted,
    cost::GraphCost,
    evaluate::{self, Constant},
    facts::Graph,
    lang::{Leaf, Node},
};
use crate::{
    builder::{erase_op, V},
    op_error, PassError,
};
use egg::{Extractor, Id};
use grim_dialects::{
    grim::{self, Product},
    weights,
};
use melior::{
    ir::{
        block::BlockLike,
        operation::{OperationLike, OperationMutLike, OperationRef, OperationRefMut},
        BlockRef, Location, Operation, Value, ValueLike,
    },
    Context,
};
use std::collections::{HashMap, HashSet};

struct Rebuild<'c, 'x> {
    context: &'c Context,
    body: BlockRef<'c, 'c>,
    terminator: OperationRef<'c, 'c>,
    converted: &'x Converted<'c>,
    extractor: Extractor<'x, GraphCost<'x>, Node, super::facts::Facts>,
    egraph: &'x Graph,
    values: HashMap<Id, V<'c>>,
    constants: HashMap<Id, (Constant, String)>,
    built: HashSet<usize>,
}

/// Rebuilds the body from the cheapest form of every result, then erases
/// what is no longer used.
pub fn rebuild<'c>(
    context: &'c Context,
    body: BlockRef<'c, 'c>,
    converted: &Converted<'c>,
    egraph: &Graph,
    cost: GraphCost,
) -> Result<(), PassError> {
    let terminator = body
        .terminator()
        .ok_or_else(|| PassError::Unsupported("error: function body has no terminator".into()))?;
    let mut rebuild = Rebuild {
        context,
        body,
        terminator,
        converted,
        extractor: Extractor::new(egraph, cost),
        egraph,
        values: HashMap::new(),
        constants: HashMap::new(),
        built: HashSet::new(),
    };
    let mut results = Vec::new();
    for root in &converted.roots {
        results.push(rebuild.value(*root)?);
    }
    // SAFETY: the terminator is alive; the new values dominate it.
    let mut terminator = unsafe { OperationRefMut::from_raw(terminator.to_raw()) };
    let results: Vec<Value> = results.into_iter().collect();
    terminator.set_operands(&results);
    rebuild.erase_dead();
    Ok(())
}

fn raw(op: &OperationRef) -> usize {
    op.to_raw().ptr as usize
}

impl<'c> Rebuild<'c, '_> {
    fn insert(&mut self, op: Operation<'c>) -> Result<V<'c>, PassError> {
        let op = self.body.insert_operation_before(self.terminator, op);
        self.built.insert(raw(&op));
        let value: Value = op
            .result(0)
            .map_err(|e| PassError::Unsupported(e.to_string()))?
            .into();
        // SAFETY: the op is part of the module; only the borrow marker changes.
        Ok(unsafe { Value::from_raw(value.to_raw()) })
    }

    fn leaf(&self, id: Id) -> Option<&Leaf> {
        super::facts::leaf(self.egraph, id)
    }

    fn location(&self, name: Id) -> Location<'c> {
        match self.leaf(name) {
            Some(Leaf::Name(index)) => self.converted.named[*index].location(),
            _ => self.terminator.location(),
        }
    }

    /// The value of an optional operand (`None` for the absent leaf).
    fn optional(&mut self, id: Id) -> Result<Option<V<'c>>, PassError> {
        match self.leaf(id) {
            Some(Leaf::None) => Ok(None),
            _ => Ok(Some(self.value(id)?)),
        }
    }

    /// The value of class `id`: built once, from its cheapest node.
    fn value(&mut self, id: Id) -> Result<V<'c>, PassError> {
        let id = self.egraph.find(id);
        if let Some(value) = self.values.get(&id) {
            return Ok(*value);
        }
        let node = self.extractor.find_best_node(id).clone();
        let value = if node.is_constant_expression() {
            let (constant, name) = self.constant(id)?;
            let attribute = weights::resource(self.context, &name, &constant.shape, constant.data);
            let ty = weights::tensor_type(self.context, &constant.shape);
            let location = self.terminator.location();
            self.insert(grim::constant(
                self.context,
                Some(&name),
                attribute,
                ty,
                location,
            ))?
        } else {
            self.node(&node)?
        };
        self.values.insert(id, value);
        Ok(value)
    }

    fn node(&mut self, node: &Node) -> Result<V<'c>, PassError> {
        let context = self.context;
        let internal =
            |what: &str| PassError::Unsupported(format!("error: graph-simplify: {what}"));
        match node {
            Node::Leaf(Leaf::Input(index)) => {
                let argument: Value = self
                    .body
                    .argument(*index)
                    .map_err(|e| PassError::Unsupported(e.to_string()))?
                    .into();
                // SAFETY: the argument lives as long as the body.
                Ok(unsafe { Value::from_raw(argument.to_raw()) })
            }
            Node::Leaf(Leaf::Const(index)) => {
                let op = self.converted.constants[*index];
                self.built.insert(raw(&op));
                let value: Value = op.result(0).map_err(|e| op_error(&op, e))?.into();
                // SAFETY: the constant op stays in the body.
                Ok(unsafe { Value::from_raw(value.to_raw()) })
            }
            Node::Leaf(leaf) => Err(internal(&format!(
                "the attribute leaf '{leaf}' is not a value"
            ))),
            Node::Gemm([attrs, activation, name, input, weight, bias, residual])
            | Node::Conv([attrs, activation, name, input, weight, bias, residual]) => {
                let operands = Product {
                    input: self.value(*input)?,
                    weight: self.value(*weight)?,
                    bias: self.optional(*bias)?,
                    residual: self.optional(*residual)?,
                };
                let activation = match self.leaf(*activation) {
                    Some(Leaf::Act(act)) => act.activation(),
                    _ => None,
                };
                let location = self.location(*name);
                let result_shape = self.shape_of(node)?;
                let ty = weights::tensor_type(context, &result_shape);
                let op = match (node, self.leaf(*attrs)) {
                    (Node::Gemm(_), Some(Leaf::Gemm(g))) => {
                        grim::gemm(context, &operands, &g.attrs(), activation, ty, location)
                    }
                    (Node::Conv(_), Some(Leaf::Conv(c))) => {
                        grim::conv2d(context, &operands, c, activation, ty, location)
                    }
                    _ => return Err(internal("a product without its attributes")),
                };
                let value = self.insert(op)?;
                self.copy_choices(*name, value);
                Ok(value)
            }
            Node::BatchNorm([epsilon, name, x, scale, shift, mean, var]) => {
                let epsilon = match self.leaf(*epsilon) {
                    Some(Leaf::F32(bits)) => bits.value(),
                    _ => return Err(internal("a batch norm without its epsilon")),
                };
                let operands = [
                    self.value(*x)?,
                    self.value(*scale)?,
                    self.value(*shift)?,
                    self.value(*mean)?,
                    self.value(*var)?,
                ];
                let location = self.location(*name);
                self.insert(grim::batch_norm(context, operands, epsilon, location))
            }
            Node::Act([activation, name, x]) => {
                let activation = match self.leaf(*activation) {
                    Some(Leaf::Act(act)) => act.activation(),
                    _ => None,
                }
                .ok_or_else(|| internal("an activation without its kind"))?;
                let x = self.value(*x)?;
                let location = self.location(*name);
                self.insert(grim::activation(context, &activation, x, location))
            }
            Node::Add([name, a, b]) => {
                let (a, b) = (self.value(*a)?, self.value(*b)?);
                let ty = weights::tensor_type(context, &self.shape_of(node)?);
                let location = self.location(*name);
                self.insert(grim::add(a, b, ty, location))
            }
            Node::Transpose([name, x]) => {
                let x = self.value(*x)?;
                let ty = weights::tensor_type(context, &self.shape_of(node)?);
                let location = self.location(*name);
                self.insert(grim::transpose(x, ty, location))
            }
            Node::Reshape([_, name, x]) => {
                let x = self.value(*x)?;
                let ty = weights::tensor_type(context, &self.shape_of(node)?);
                let location = self.location(*name);
                self.insert(grim::reshape(x, ty, location))
            }
            Node::Identity([name, x]) => {
                let x = self.value(*x)?;
                let location = self.location(*name);
                self.insert(grim::identity(x, location))
            }
            Node::Opaque(op, children) => {
                let source = self.converted.opaque[op.0];
                let mut operands = Vec::new();
                for child in children {
                    operands.push(self.value(*child)?);
                }
                // SAFETY: cloning a live op; the clone is owned until inserted.
                let clone =
                    unsafe { Operation::from_raw(mlir_sys::mlirOperationClone(source.to_raw())) };
                let value = self.insert(clone)?;
                let owner = value_owner(value);
                // SAFETY: the clone was just inserted; only its operands change.
                let mut owner = unsafe { OperationRefMut::from_raw(owner.to_raw()) };
                owner.set_operands(&operands.to_vec());
                Ok(value)
            }
            Node::Result(of, children) => {
                let first = self.value(children[0])?;
                let owner = value_owner(first);
                let result: Value = owner
                    .result(of.index)
                    .map_err(|e| PassError::Unsupported(e.to_string()))?
                    .into();
                // SAFETY: the op is part of the module; only the borrow marker changes.
                Ok(unsafe { Value::from_raw(result.to_raw()) })
            }
            _ => Err(internal("a constant expression outside a constant")),
        }
    }

    /// The static shape of the value `node` makes (from the analysis).
    fn shape_of(&self, node: &Node) -> Result<Vec<i64>, PassError> {
        let id = self
            .egraph
            .lookup(node.clone())
            .ok_or_else(|| PassError::Unsupported("error: graph-simplify: node lost".into()))?;
        super::facts::shape(self.egraph, id)
            .map(<[i64]>::to_vec)
            .ok_or_else(|| {
                PassError::Unsupported(
                    "error: graph-simplify: a value without a static shape".into(),
                )
            })
    }

    /// The product named `name` in the source: its choices go to `value`'s op.
    fn copy_choices(&self, name: Id, value: V<'c>) {
        let Some(Leaf::Name(index)) = self.leaf(name) else {
            return;
        };
        let source = self.converted.named[*index];
        if !source
            .name()
            .as_string_ref()
            .as_str()
            .is_ok_and(|n| grim::PRODUCTS.contains(&n))
        {
            return;
        }
        // SAFETY: the op was just built; only attributes are added.
        let mut target = unsafe { OperationRefMut::from_raw(value_owner(value).to_raw()) };
        for choice in grim::PRODUCT_CHOICES {
            if let Ok(attribute) = source.attribute(choice) {
                target.set_attribute(choice, attribute);
            }
        }
        grim_dialects::schedule::Schedule::of(&source).apply(self.context, &mut target);
    }

    /// Evaluates the constant expression of class `id` (memoised), with the
    /// name its new constant gets: that of its first constant operand.
    fn constant(&mut self, id: Id) -> Result<(Constant, String), PassError> {
        let id = self.egraph.find(id);
        if let Some(known) = self.constants.get(&id) {
            return Ok(known.clone());
        }
        let node = self.extractor.find_best_node(id).clone();
        let failed = |what: &str| {
            PassError::Unsupported(format!("error: graph-simplify: cannot evaluate {what}"))
        };
        let f32_leaf = |this: &Self, id: Id| match this.leaf(id) {
            Some(Leaf::F32(bits)) => Ok(bits.value()),
            _ => Err(failed("a factor that is not an f32 leaf")),
        };
        let result = match &node {
            Node::Leaf(Leaf::Const(index)) => {
                let op = self.converted.constants[*index];
                let value =
                    grim::constant_value(&op).ok_or_else(|| op_error(&op, "has no value"))?;
                let shape =
                    weights::shape(value).ok_or_else(|| op_error(&op, "has no f32 shape"))?;
                let data =
                    weights::read(value).ok_or_else(|| op_error(&op, "has unreadable values"))?;
                let name = grim::constant_name(&op).unwrap_or_else(|| format!("const{index}"));
                (Constant { shape, data }, name)
            }
            Node::BnWeight([epsilon, w, scale, var]) => {
                let epsilon = f32_leaf(self, *epsilon)?;
                let ((w, name), (scale, _), (var, _)) = (
                    self.constant(*w)?,
                    self.constant(*scale)?,
                    self.constant(*var)?,
                );
                (evaluate::bn_weight(epsilon, &w, &scale, &var), name)
            }
            Node::BnBias([epsilon, shift, bias, scale, mean, var]) => {
                let epsilon = f32_leaf(self, *epsilon)?;
                let bias = match self.leaf(*bias) {
                    Some(Leaf::None) => None,
                    _ => Some(self.constant(*bias)?),
                };
                let (shift, name) = self.constant(*shift)?;
                let ((scale, _), (mean, _), (var, _)) = (
                    self.constant(*scale)?,
                    self.constant(*mean)?,
                    self.constant(*var)?,
                );
                let name = bias.as_ref().map_or(name, |(_, n)| n.clone());
                let folded = evaluate::bn_bias(
                    epsilon,
                    &shift,
                    bias.as_ref().map(|(c, _)| c),
                    &scale,
                    &mean,
                    &var,
                );
                (folded, name)
            }
            Node::Scale([factor, c]) => {
                let factor = f32_leaf(self, *factor)?;
                let (c, name) = self.constant(*c)?;
                (evaluate::scale(factor, &c), name)
            }
            Node::ConstTranspose(c) => {
                let (c, name) = self.constant(*c)?;
                (
                    evaluate::transpose(&c)
                        .ok_or_else(|| failed("the transpose of a tensor that is not 2-D"))?,
                    name,
                )
            }
            Node::ConstAs([shape, c]) => {
                let shape = match self.leaf(*shape) {
                    Some(Leaf::Shape(s)) => s.clone(),
                    _ => return Err(failed("a reshape without its shape")),
                };
                let (c, name) = self.constant(*c)?;
                (
                    evaluate::as_shape(&shape, &c)
                        .ok_or_else(|| failed("a broadcast that does not fit"))?,
                    name,
                )
            }
            Node::ConstAdd([a, b]) => {
                let ((a, name), (b, _)) = (self.constant(*a)?, self.constant(*b)?);
                (
                    evaluate::add(&a, &b).ok_or_else(|| failed("a sum that does not broadcast"))?,
                    name,
                )
            }
            other => return Err(failed(&format!("'{}' as a constant", other))),
        };
        self.constants.insert(id, result.clone());
        Ok(result)
    }

    /// Erases every op of the body that is neither built nor kept and whose
    /// results are unused, until none is left.
    fn erase_dead(&mut self) {
        loop {
            let mut dead = Vec::new();
            let mut next = self.body.first_operation();
            while let Some(op) = next {
                next = op.next_in_block();
                if raw(&op) == raw(&self.terminator) {
                    continue;
                }
                let unused = op.results().all(|r| {
                    // SAFETY: reading the use list of a live value.
                    unsafe {
                        mlir_sys::mlirOpOperandIsNull(mlir_sys::mlirValueGetFirstUse(r.to_raw()))
                    }
                });
                if unused {
                    dead.push(op);
                }
            }
            if dead.is_empty() {
                break;
            }
            for op in dead.into_iter().rev() {
                erase_op(op);
            }
        }
    }
}

/// The op defining an op result.
fn value_owner<'c>(value: V<'c>) -> OperationRef<'c, 'c> {
    // SAFETY: every value built here is an op result.
    unsafe { OperationRef::from_raw(mlir_sys::mlirOpResultGetOwner(value.to_raw())) }
}
