//! ONNX Gemm to the canonical gemm lowering wants (`Y = A W^T + bias`, W
//! out x in, bias one value per output): a constant W that is in x out is
//! transposed, `alpha` scales a constant W and `beta` a constant C, a
//! transposed A becomes a `transpose` (which may cancel against another),
//! a C of one value per output becomes the bias vector, a C of the
//! output's shape becomes the epilogue's residual, and any other C an add
//! after the gemm. Until every gemm is canonical, extraction pays
//! `NOT_LOWERABLE_NS` for it.

use super::{is_none, no_activation, own_children_rule, ProductChildren, ProductKind};
use crate::graph::egraph::{
    facts::{self, Facts, Graph},
    lang::{Bits, GemmLeaf, Leaf, Node},
};
use egg::{Id, Rewrite, Subst};

/// The canonicalisation rules.
pub fn rules() -> Vec<Rewrite<Node, Facts>> {
    vec![
        own_children_rule("gemm-transb-fold", ProductKind::Gemm, transb_fold),
        own_children_rule("gemm-alpha-fold", ProductKind::Gemm, alpha_fold),
        own_children_rule("gemm-beta-fold", ProductKind::Gemm, beta_fold),
        own_children_rule("gemm-transa-split", ProductKind::Gemm, transa_split),
        own_children_rule("gemm-c-as-bias", ProductKind::Gemm, c_as_bias),
        own_children_rule("gemm-c-as-residual", ProductKind::Gemm, c_as_residual),
        Rewrite::new(
            "gemm-c-split",
            "(gemm ?a ?k ?n ?x ?w ?b ?r)"
                .parse::<egg::Pattern<Node>>()
                .expect("rule patterns parse"),
            CSplit,
        )
        .expect("a well-formed rule"),
    ]
}

/// `gemm-c-split`: in a canonical gemm without an epilogue, a C that is
/// neither one value per output nor the output's shape (e.g. `[N, 1]`)
/// becomes an add after the gemm.
struct CSplit;

impl egg::Applier<Node, Facts> for CSplit {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        _subst: &Subst,
        _searcher_ast: Option<&egg::PatternAst<Node>>,
        _rule_name: egg::Symbol,
    ) -> Vec<Id> {
        let gemms: Vec<ProductChildren> = egraph[eclass]
            .nodes
            .iter()
            .filter_map(|node| match node {
                Node::Gemm(c) => Some(*c),
                _ => None,
            })
            .collect();
        let mut changed = Vec::new();
        for [attrs, activation, name, input, weight, bias, residual] in gemms {
            let canonical = gemm_leaf(egraph, attrs).is_some_and(|g| g.attrs().is_canonical());
            let (Some(output), Some(c_shape)) = (
                facts::shape(egraph, eclass).map(<[i64]>::to_vec),
                facts::shape(egraph, bias).map(<[i64]>::to_vec),
            ) else {
                continue;
            };
            let m = output[1];
            let per_output = c_shape.iter().rev().skip(1).all(|d| *d == 1)
                && c_shape.last().is_none_or(|d| *d == m || *d == 1);
            if !canonical
                || is_none(egraph, bias)
                || !is_none(egraph, residual)
                || !no_activation(egraph, activation)
                || per_output
                || c_shape == output
            {
                continue;
            }
            let none = egraph.add(Node::Leaf(Leaf::None));
            let product = egraph.add(Node::Gemm([
                attrs, activation, name, input, weight, none, none,
            ]));
            let add = egraph.add(Node::Add([name, product, bias]));
            if egraph.union(eclass, add) {
                changed.push(add);
            }
        }
        changed
    }
}

fn gemm_leaf(egraph: &Graph, attrs: Id) -> Option<GemmLeaf> {
    match facts::leaf(egraph, attrs) {
        Some(Leaf::Gemm(g)) => Some(*g),
        _ => None,
    }
}

fn with_attrs(egraph: &mut Graph, attrs: GemmLeaf) -> Id {
    egraph.add(Node::Leaf(Leaf::Gemm(attrs)))
}

/// A constant W in x out (`trans_b` unset) becomes W^T with `trans_b`.
fn transb_fold(egraph: &mut Graph, _: &Subst, c: ProductChildren) -> Option<ProductChildren> {
    let [attrs, activation, name, input, weight, bias, residual] = c;
    let g = gemm_leaf(egraph, attrs)?;
    if g.trans_b || !facts::constant(egraph, weight) {
        return None;
    }
    let transposed = egraph.add(Node::ConstTranspose(weight));
    let attrs = with_attrs(egraph, GemmLeaf { trans_b: true, ..g });
    Some([attrs, activation, name, input, transposed, bias, residual])
}

/// `alpha != 1` with a constant W: W scaled, `alpha = 1`.
fn alpha_fold(egraph: &mut Graph, _: &Subst, c: ProductChildren) -> Option<ProductChildren> {
    let [attrs, activation, name, input, weight, bias, residual] = c;
    let g = gemm_leaf(egraph, attrs)?;
    if g.alpha.value() == 1.0 || !facts::constant(egraph, weight) {
        return None;
    }
    let factor = egraph.add(Node::Leaf(Leaf::F32(g.alpha)));
    let scaled = egraph.add(Node::Scale([factor, weight]));
    let attrs = with_attrs(
        egraph,
        GemmLeaf {
            alpha: Bits::from(1.0),
            ..g
        },
    );
    Some([attrs, activation, name, input, scaled, bias, residual])
}

/// `beta != 1`: a constant C scaled (a missing C needs no beta), `beta = 1`.
fn beta_fold(egraph: &mut Graph, _: &Subst, c: ProductChildren) -> Option<ProductChildren> {
    let [attrs, activation, name, input, weight, bias, residual] = c;
    let g = gemm_leaf(egraph, attrs)?;
    if g.beta.value() == 1.0 {
        return None;
    }
    let bias = if is_none(egraph, bias) {
        bias
    } else if facts::constant(egraph, bias) {
        let factor = egraph.add(Node::Leaf(Leaf::F32(g.beta)));
        egraph.add(Node::Scale([factor, bias]))
    } else {
        return None;
    };
    let attrs = with_attrs(
        egraph,
        GemmLeaf {
            beta: Bits::from(1.0),
            ..g
        },
    );
    Some([attrs, activation, name, input, weight, bias, residual])
}

/// `trans_a`: the input transposed by its own op, `trans_a` unset.
fn transa_split(egraph: &mut Graph, _: &Subst, c: ProductChildren) -> Option<ProductChildren> {
    let [attrs, activation, name, input, weight, bias, residual] = c;
    let g = gemm_leaf(egraph, attrs)?;
    if !g.trans_a {
        return None;
    }
    let transposed = egraph.add(Node::Transpose([name, input]));
    let attrs = with_attrs(
        egraph,
        GemmLeaf {
            trans_a: false,
            ..g
        },
    );
    Some([attrs, activation, name, transposed, weight, bias, residual])
}

/// In a canonical gemm, a constant C of one value per output (`[1, M]`, a
/// scalar) becomes the bias vector `[M]`.
fn c_as_bias(egraph: &mut Graph, subst: &Subst, c: ProductChildren) -> Option<ProductChildren> {
    let [attrs, activation, name, input, weight, bias, residual] = c;
    let _ = subst;
    if !gemm_leaf(egraph, attrs)?.attrs().is_canonical() || is_none(egraph, bias) {
        return None;
    }
    let m = *facts::shape(egraph, weight)?.first()?;
    let c_shape = facts::shape(egraph, bias)?.to_vec();
    let per_output = c_shape.iter().rev().skip(1).all(|d| *d == 1)
        && c_shape.last().is_none_or(|d| *d == m || *d == 1);
    if c_shape == [m] || !per_output || !facts::constant(egraph, bias) {
        return None;
    }
    let shape = egraph.add(Node::Leaf(Leaf::Shape(vec![m])));
    let vector = egraph.add(Node::ConstAs([shape, bias]));
    Some([attrs, activation, name, input, weight, vector, residual])
}

/// In a canonical gemm, a C of the output's shape `[N, M]` is added after
/// the bias exactly as the epilogue's residual is: it moves there.
fn c_as_residual(egraph: &mut Graph, subst: &Subst, c: ProductChildren) -> Option<ProductChildren> {
    let [attrs, activation, name, input, weight, bias, residual] = c;
    let _ = subst;
    if !gemm_leaf(egraph, attrs)?.attrs().is_canonical()
        || is_none(egraph, bias)
        || !is_none(egraph, residual)
    {
        return None;
    }
    let n = *facts::shape(egraph, input)?.first()?;
    let m = *facts::shape(egraph, weight)?.first()?;
    // With one row a constant [1, M] is a bias (gemm-c-as-bias).
    if facts::shape(egraph, bias)? != [n, m] || (n == 1 && facts::constant(egraph, bias)) {
        return None;
    }
    let none = egraph.add(Node::Leaf(Leaf::None));
    Some([attrs, activation, name, input, weight, none, bias])
}
