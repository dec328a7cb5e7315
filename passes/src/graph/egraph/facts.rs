//! What the rules may ask about an e-class: its value's static shape and
//! whether it is a compile-time constant (egg's analysis), plus the
//! function-wide facts the conversion records (argument and constant
//! shapes, values the original function uses more than once).

use super::lang::{Leaf, Node};
use egg::{Analysis, DidMerge, EGraph, Id};
use std::collections::HashSet;

/// The facts of one e-class.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// The static shape of the class's value (`None` for attribute leaves).
    pub shape: Option<Vec<i64>>,
    /// Whether the value is known at compile time (a constant, or a
    /// constant expression of constants).
    pub constant: bool,
}

/// The analysis, with the function-wide facts.
#[derive(Debug, Default)]
pub struct Facts {
    /// Shapes of the function's arguments, by index.
    pub inputs: Vec<Vec<i64>>,
    /// Shapes of the function's constants, by index.
    pub constants: Vec<Vec<i64>>,
    /// First-result shapes of the opaque ops, by index.
    pub opaque: Vec<Vec<i64>>,
    /// Every result's shape of the opaque ops, by index.
    pub opaque_results: Vec<Vec<Vec<i64>>>,
    /// Classes whose value the original function uses more than once (or
    /// uses and returns): fusing an epilogue into such a product would
    /// compute the product twice.
    pub shared: HashSet<Id>,
}

/// The e-graph of a grim function.
pub type Graph = EGraph<Node, Facts>;

/// The shape of class `id`, if it has one.
pub fn shape(egraph: &Graph, id: Id) -> Option<&[i64]> {
    egraph[id].data.shape.as_deref()
}

/// Whether class `id` is a compile-time constant.
pub fn constant(egraph: &Graph, id: Id) -> bool {
    egraph[id].data.constant
}

/// The leaf in class `id`, if it has one (attribute and operand leaves
/// are alone in their class).
pub fn leaf(egraph: &Graph, id: Id) -> Option<&Leaf> {
    egraph[id].nodes.iter().find_map(|n| match n {
        Node::Leaf(leaf) => Some(leaf),
        _ => None,
    })
}

/// Numpy broadcasting of two shapes.
pub fn broadcast(a: &[i64], b: &[i64]) -> Option<Vec<i64>> {
    grim_dialects::grim::broadcast(a, b)
}

fn output_shape(egraph: &Graph, node: &Node) -> Option<Vec<i64>> {
    let shape = |id: &Id| shape(egraph, *id).map(<[i64]>::to_vec);
    match node {
        Node::Leaf(Leaf::Input(i)) => egraph.analysis.inputs.get(*i).cloned(),
        Node::Leaf(Leaf::Const(i)) => egraph.analysis.constants.get(*i).cloned(),
        Node::Leaf(_) => None,
        Node::Opaque(op, _) => egraph.analysis.opaque.get(op.0).cloned(),
        Node::Result(of, _) => egraph
            .analysis
            .opaque_results
            .get(of.op)
            .and_then(|results| results.get(of.index))
            .cloned(),
        Node::Gemm([attrs, _, _, input, weight, ..]) => {
            let Some(Leaf::Gemm(g)) = leaf(egraph, *attrs) else {
                return None;
            };
            let (a, w) = (shape(input)?, shape(weight)?);
            let n = if g.trans_a { *a.get(1)? } else { *a.first()? };
            let m = if g.trans_b { *w.first()? } else { *w.get(1)? };
            Some(vec![n, m])
        }
        Node::Conv([attrs, _, _, input, weight, ..]) => {
            let Some(Leaf::Conv(c)) = leaf(egraph, *attrs) else {
                return None;
            };
            let (x, w) = (shape(input)?, shape(weight)?);
            let (ho, wo) = c.output(*x.get(2)?, *x.get(3)?, *w.get(2)?, *w.get(3)?)?;
            Some(vec![x[0], w[0], ho, wo])
        }
        Node::BatchNorm([_, _, x, ..])
        | Node::Act([_, _, x])
        | Node::Identity([_, x])
        | Node::Scale([_, x]) => shape(x),
        Node::Add([_, a, b]) | Node::ConstAdd([a, b]) => broadcast(&shape(a)?, &shape(b)?),
        Node::Transpose([_, x]) | Node::ConstTranspose(x) => {
            let s = shape(x)?;
            (s.len() == 2).then(|| vec![s[1], s[0]])
        }
        Node::Reshape([target, ..]) | Node::ConstAs([target, _]) => match leaf(egraph, *target) {
            Some(Leaf::Shape(s)) => Some(s.clone()),
            _ => None,
        },
        Node::BnWeight([_, w, ..]) => shape(w),
        Node::BnBias([_, _, _, scale, ..]) => shape(scale),
    }
}

impl Analysis<Node> for Facts {
    type Data = Data;

    fn make(egraph: &mut Graph, node: &Node, _id: Id) -> Data {
        let constant = match node {
            Node::Leaf(Leaf::Const(_)) => true,
            node if node.is_constant_expression() => true,
            _ => false,
        };
        Data {
            shape: output_shape(egraph, node),
            constant,
        }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        // Equal values have equal shapes: only missing facts are filled in.
        let mut changed_a = false;
        if a.shape.is_none() && b.shape.is_some() {
            a.shape = b.shape.clone();
            changed_a = true;
        }
        if !a.constant && b.constant {
            a.constant = true;
            changed_a = true;
        }
        let changed_b = a.shape != b.shape || a.constant != b.constant;
        DidMerge(changed_a, changed_b)
    }
}
