//! The extraction cost: estimated nanoseconds on one core of the module's
//! target, from the compiler's one cost model (`grim_model::cost`).
//!
//! An e-node costs what its op costs when it runs, plus its children (egg
//! sums tree costs): a standalone activation or add is a pass over its
//! tensor (`elementwise_ns`), the same work fused into a product's epilogue
//! is applied while the output is hot (`epilogue_ns`), a product costs its
//! dense-kernel estimate (the kernel is chosen later; the estimate is the
//! same for every form of one product, so only what the rewrites change
//! decides). Constant expressions are evaluated by the compiler, not at run
//! time: they cost a token [`EPSILON_NS`], as do reshapes (free views), so
//! costs grow strictly along every path and extraction cannot pick a
//! cycle. A form lowering cannot compile (a gemm not yet canonical, a bias
//! that is not one value per output) costs [`NOT_LOWERABLE_NS`] more, so it
//! is extracted only when no canonical form exists; lowering then says why.

use super::{
    facts::{self, Graph},
    lang::{Leaf, Node},
};
use egg::{CostFunction, Id, Language};
use grim_dialects::grim::Activation;
use grim_model::cost::{self, ConvGeometry, Kernel, Product, Target};

/// The cost of a node that does no run-time work, in ns.
pub const EPSILON_NS: f64 = 1e-3;
/// The extra cost of a form lowering cannot compile, in ns.
pub const NOT_LOWERABLE_NS: f64 = 1e12;

/// The cost function: estimated ns of a node on `target`.
pub struct GraphCost<'a> {
    /// The e-graph (for the shapes of children).
    pub egraph: &'a Graph,
    /// The module's target.
    pub target: &'a Target,
}

/// Arithmetic per element of an activation, in flops (a rough count: the
/// transcendental ones expand to a polynomial and a division).
fn activation_flops(activation: Option<Activation>) -> f64 {
    match activation {
        None => 0.0,
        Some(Activation::Relu) => 1.0,
        Some(Activation::Clip { .. } | Activation::LeakyRelu { .. }) => 2.0,
        Some(Activation::HardSigmoid { .. }) => 3.0,
        Some(Activation::HardSwish) => 4.0,
        Some(Activation::Sigmoid | Activation::Tanh) => 12.0,
    }
}

impl GraphCost<'_> {
    fn shape(&self, id: Id) -> Vec<usize> {
        facts::shape(self.egraph, id)
            .map(|s| s.iter().map(|d| (*d).max(0) as usize).collect())
            .unwrap_or_default()
    }

    fn elements(&self, id: Id) -> usize {
        self.shape(id).iter().product::<usize>().max(1)
    }

    fn activation(&self, id: Id) -> Option<Activation> {
        match facts::leaf(self.egraph, id) {
            Some(Leaf::Act(act)) => act.activation(),
            _ => None,
        }
    }

    /// The epilogue of a product writing `elements` values.
    fn epilogue(&self, elements: usize, activation: Id, residual: Id) -> f64 {
        let act = self.activation(activation);
        let has_residual = !matches!(facts::leaf(self.egraph, residual), Some(Leaf::None));
        if act.is_none() && !has_residual {
            return 0.0;
        }
        cost::epilogue_ns(
            self.target,
            elements,
            has_residual as usize,
            activation_flops(act) + has_residual as u8 as f64,
        )
    }

    /// The run-time cost of the node alone, in ns.
    fn own(&self, node: &Node) -> f64 {
        match node {
            Node::Leaf(_) => 0.0,
            node if node.is_constant_expression() => EPSILON_NS,
            Node::Reshape(_) => EPSILON_NS,
            Node::Identity(_) | Node::Opaque(..) => 1.0,
            Node::Result(..) => 0.0,
            Node::Gemm([attrs, activation, _, input, weight, bias, residual]) => {
                let (a, w) = (self.shape(*input), self.shape(*weight));
                let canonical = matches!(
                    facts::leaf(self.egraph, *attrs),
                    Some(Leaf::Gemm(g)) if g.attrs().is_canonical()
                );
                let (n, k) = (
                    a.first().copied().unwrap_or(1),
                    a.get(1).copied().unwrap_or(1),
                );
                let m = if canonical {
                    w.first().copied().unwrap_or(1)
                } else {
                    w.get(1).copied().unwrap_or(1)
                };
                let bias_ok = match facts::leaf(self.egraph, *bias) {
                    Some(Leaf::None) => true,
                    _ => self.shape(*bias) == [m],
                };
                let penalty = if canonical && bias_ok {
                    0.0
                } else {
                    NOT_LOWERABLE_NS
                };
                cost::product_ns(self.target, &Product::gemm(m, k, n), &Kernel::Dense)
                    + self.epilogue(n * m, *activation, *residual)
                    + penalty
            }
            Node::Conv([attrs, activation, _, input, weight, _, residual]) => {
                let (x, w) = (self.shape(*input), self.shape(*weight));
                let (Some(Leaf::Conv(conv)), [images, channels, h, wi], [m, _, kh, kw]) =
                    (facts::leaf(self.egraph, *attrs), &x[..], &w[..])
                else {
                    return NOT_LOWERABLE_NS;
                };
                let (ho, wo) = conv
                    .output(*h as i64, *wi as i64, *kh as i64, *kw as i64)
                    .unwrap_or((1, 1));
                let geometry = ConvGeometry {
                    channels: *channels,
                    input: [*h, *wi],
                    kernel: [*kh, *kw],
                    stride: conv.strides.map(|v| v as usize),
                    pads: conv.pads.map(|v| v as usize),
                    output: [ho as usize, wo as usize],
                };
                cost::product_ns(
                    self.target,
                    &Product::conv(*m, *images, geometry),
                    &Kernel::Dense,
                ) + self.epilogue(images * m * (ho * wo) as usize, *activation, *residual)
            }
            Node::BatchNorm([_, _, x, ..]) => {
                cost::elementwise_ns(self.target, self.elements(*x), 1, 1, 2.0)
            }
            Node::Act([activation, _, x]) => cost::elementwise_ns(
                self.target,
                self.elements(*x),
                1,
                1,
                activation_flops(self.activation(*activation)),
            ),
            Node::Add([_, a, b]) => {
                let elements = self.elements(*a).max(self.elements(*b));
                cost::elementwise_ns(self.target, elements, 2, 1, 1.0)
            }
            Node::Transpose([_, x]) => {
                let s = self.shape(*x);
                cost::transpose_ns(
                    self.target,
                    s.first().copied().unwrap_or(1),
                    s.get(1).copied().unwrap_or(1),
                )
            }
            _ => EPSILON_NS,
        }
    }
}

impl CostFunction<Node> for GraphCost<'_> {
    type Cost = f64;

    fn cost<C>(&mut self, enode: &Node, mut costs: C) -> f64
    where
        C: FnMut(Id) -> f64,
    {
        let own = self.own(enode);
        // Leaves cost nothing; every other node costs more than its
        // children, so extraction never prefers a cycle.
        let floor = if matches!(enode, Node::Leaf(_)) {
            0.0
        } else {
            EPSILON_NS
        };
        enode
            .children()
            .iter()
            .fold(own.max(floor), |sum, child| sum + costs(*child))
    }
}
