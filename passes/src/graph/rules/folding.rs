//! Batch-norm folding: an inference batch norm right after a conv (or a
//! canonical gemm) without an epilogue scales the product's weights per
//! output channel and shifts its bias:
//! `w' = w * s / sqrt(v + eps)`, `b' = (b - m) * s / sqrt(v + eps) + t`.
//! The new weight and bias are constant expressions (`bn-weight`,
//! `bn-bias`) that graph-simplify evaluates when it rebuilds the function.
//! A product with an activation or a residual does not fold: the batch
//! norm would have to scale through them.

use super::{bound, is_none, no_activation, product_rule, ProductChildren, ProductKind};
use crate::graph::egraph::{
    facts::{self, Facts, Graph},
    lang::{Leaf, Node},
};
use egg::{Rewrite, Subst};

/// The folding rules.
pub fn rules() -> Vec<Rewrite<Node, Facts>> {
    vec![
        product_rule(
            "conv-bn-fold",
            "(bn ?eps ?bn ?p ?s ?t ?m ?v)",
            ProductKind::Conv,
            fold,
        ),
        product_rule(
            "gemm-bn-fold",
            "(bn ?eps ?bn ?p ?s ?t ?m ?v)",
            ProductKind::Gemm,
            fold,
        ),
    ]
}

/// The folded product, when the batch norm's parameters and the product's
/// weight and bias are constants and the product has no epilogue.
fn fold(egraph: &mut Graph, subst: &Subst, c: ProductChildren) -> Option<ProductChildren> {
    let [attrs, activation, name, input, weight, bias, residual] = c;
    let parameters = ["?s", "?t", "?m", "?v"].map(|v| bound(subst, v));
    let gemm_ok = match facts::leaf(egraph, attrs) {
        Some(Leaf::Gemm(g)) => g.attrs().is_canonical(),
        _ => true,
    };
    let foldable = gemm_ok
        && no_activation(egraph, activation)
        && is_none(egraph, residual)
        && facts::constant(egraph, weight)
        && (is_none(egraph, bias) || facts::constant(egraph, bias))
        && parameters.iter().all(|p| facts::constant(egraph, *p));
    if !foldable {
        return None;
    }
    let [scale, shift, mean, var] = parameters;
    let epsilon = bound(subst, "?eps");
    let folded_weight = egraph.add(Node::BnWeight([epsilon, weight, scale, var]));
    let folded_bias = egraph.add(Node::BnBias([epsilon, shift, bias, scale, mean, var]));
    Some([
        attrs,
        activation,
        name,
        input,
        folded_weight,
        folded_bias,
        residual,
    ])
}
