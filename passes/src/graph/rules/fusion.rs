//! Epilogue fusion: an activation, a residual add or a bias add right
//! after a product becomes part of the product (GRIM's graph-level
//! fusion). The epilogue's order is fixed: accumulate, add the bias, add
//! the residual, then apply the activation. So only a product without an
//! activation takes a residual or a bias (relu-then-add is not
//! add-then-relu), and only a product without one takes an activation.

use super::{bound, is_none, no_activation, product_rule, ProductChildren, ProductKind};
use crate::graph::egraph::{
    facts::{self, Facts, Graph},
    lang::{Leaf, Node},
};
use egg::{Rewrite, Subst};

/// The fusion rules.
pub fn rules() -> Vec<Rewrite<Node, Facts>> {
    let mut rules = Vec::new();
    for (kind, product) in [(ProductKind::Conv, "conv"), (ProductKind::Gemm, "gemm")] {
        rules.push(product_rule(
            &format!("{product}-activation-fuse"),
            "(act ?k ?an ?p)",
            kind,
            fuse_activation,
        ));
        rules.push(product_rule(
            &format!("{product}-residual-fuse"),
            "(add ?an ?p ?y)",
            kind,
            fuse_residual,
        ));
        rules.push(product_rule(
            &format!("{product}-residual-fuse-rhs"),
            "(add ?an ?y ?p)",
            kind,
            fuse_residual,
        ));
        rules.push(product_rule(
            &format!("{product}-bias-fuse"),
            "(add ?an ?p ?y)",
            kind,
            match kind {
                ProductKind::Conv => fuse_conv_bias,
                ProductKind::Gemm => fuse_gemm_bias,
            },
        ));
        rules.push(product_rule(
            &format!("{product}-bias-fuse-rhs"),
            "(add ?an ?y ?p)",
            kind,
            match kind {
                ProductKind::Conv => fuse_conv_bias,
                ProductKind::Gemm => fuse_gemm_bias,
            },
        ));
    }
    rules
}

/// `act(p)` with `p` free of an activation: `p` with the activation.
fn fuse_activation(
    egraph: &mut Graph,
    subst: &Subst,
    c: ProductChildren,
) -> Option<ProductChildren> {
    let [attrs, activation, name, input, weight, bias, residual] = c;
    if !no_activation(egraph, activation) {
        return None;
    }
    Some([
        attrs,
        bound(subst, "?k"),
        name,
        input,
        weight,
        bias,
        residual,
    ])
}

/// `p + y` with `y` an activation of `p`'s shape and `p` free of an
/// activation and a residual: `p` with the residual `y`.
fn fuse_residual(egraph: &mut Graph, subst: &Subst, c: ProductChildren) -> Option<ProductChildren> {
    let [attrs, activation, name, input, weight, bias, residual] = c;
    let (product, y) = (bound(subst, "?p"), bound(subst, "?y"));
    let same_shape = facts::shape(egraph, product).is_some()
        && facts::shape(egraph, product) == facts::shape(egraph, y);
    if !no_activation(egraph, activation)
        || !is_none(egraph, residual)
        || !same_shape
        || facts::constant(egraph, y)
    {
        return None;
    }
    Some([attrs, activation, name, input, weight, bias, y])
}

/// The bias a constant `c` added after a product makes: `c` as `[M]`
/// (added to an existing constant bias), or `None` when `c` is not one
/// value per output channel, per the channel axis `axis` of the output.
fn bias_of(egraph: &mut Graph, subst: &Subst, c: ProductChildren, axis: usize) -> Option<egg::Id> {
    let [_, activation, _, _, _, bias, residual] = c;
    let y = bound(subst, "?y");
    let output = facts::shape(egraph, bound(subst, "?p"))?.to_vec();
    let added = facts::shape(egraph, y)?.to_vec();
    let m = *output.get(axis)?;
    // Right-aligned broadcasting: one value per channel, 1 everywhere else
    // (a scalar adds the same value to every channel, which a bias can too).
    let offset = output.len().checked_sub(added.len())?;
    let per_channel =
        added
            .iter()
            .enumerate()
            .all(|(i, d)| if i + offset == axis { *d == m } else { *d == 1 });
    if !per_channel
        || !facts::constant(egraph, y)
        || !no_activation(egraph, activation)
        || !is_none(egraph, residual)
    {
        return None;
    }
    let vector = if added == [m] {
        y
    } else {
        let shape = egraph.add(Node::Leaf(Leaf::Shape(vec![m])));
        egraph.add(Node::ConstAs([shape, y]))
    };
    if is_none(egraph, bias) {
        Some(vector)
    } else if facts::constant(egraph, bias) && facts::shape(egraph, bias) == Some(&[m][..]) {
        Some(egraph.add(Node::ConstAdd([bias, vector])))
    } else {
        None
    }
}

/// `conv + c` with `c` one value per output channel (`[M, 1, 1]` or
/// `[1, M, 1, 1]`): the conv with that bias.
fn fuse_conv_bias(
    egraph: &mut Graph,
    subst: &Subst,
    c: ProductChildren,
) -> Option<ProductChildren> {
    let bias = bias_of(egraph, subst, c, 1)?;
    let [attrs, activation, name, input, weight, _, residual] = c;
    Some([attrs, activation, name, input, weight, bias, residual])
}

/// `gemm + c` (MatMul + Add) with `c` one value per output (`[M]` or
/// `[1, M]`) and the gemm canonical: the gemm with that bias.
fn fuse_gemm_bias(
    egraph: &mut Graph,
    subst: &Subst,
    c: ProductChildren,
) -> Option<ProductChildren> {
    let canonical =
        matches!(facts::leaf(egraph, c[0]), Some(Leaf::Gemm(g)) if g.attrs().is_canonical());
    if !canonical {
        return None;
    }
    let bias = bias_of(egraph, subst, c, 1)?;
    let [attrs, activation, name, input, weight, _, residual] = c;
    Some([attrs, activation, name, input, weight, bias, residual])
}
