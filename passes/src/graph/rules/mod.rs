//! graph-simplify's rewrite rules, as data: one file per family, each rule
//! with a law name and named conditions, in the style of egg's own tests.
//!
//! | family | file | what it makes equal |
//! |---|---|---|
//! | folding | `folding.rs` | a batch norm after a conv or gemm, and the product with scaled weights and bias |
//! | fusion | `fusion.rs` | an activation, residual add or bias add after a product, and the product with that epilogue |
//! | canonical | `canonical.rs` | an ONNX Gemm (transB, alpha, beta, transA, a broadcast C) and the canonical gemm lowering wants |
//! | layout | `layout.rs` | transposes and reshapes that cancel or act on constants |
//! | cleanup | `cleanup.rs` | an identity and its input |
//!
//! How to add a rule: docs/egg-rules.md. In short: write the searcher as a
//! pattern; use a pattern applier when the right-hand side is a pattern,
//! else a small applier from this module ([`ProductApplier`]) that rebuilds
//! matched product nodes; give it the conditions it needs from this module
//! (each named for what it checks); add an equal-after test and a
//! must-not-be-equal test to its family. No rule states commutativity in
//! general: where an operand order matters (`add(p, y)` and `add(y, p)`),
//! both orders are written as two named rules.

mod canonical;
mod cleanup;
mod folding;
mod fusion;
mod layout;
#[cfg(test)]
mod tests;

use super::egraph::{
    facts::{self, Facts, Graph},
    lang::{ActLeaf, Leaf, Node},
};
use egg::{Applier, Id, PatternAst, Rewrite, Subst, Symbol, Var};

/// Every rule, in family order.
pub fn all() -> Vec<Rewrite<Node, Facts>> {
    let mut rules = Vec::new();
    rules.extend(folding::rules());
    rules.extend(fusion::rules());
    rules.extend(canonical::rules());
    rules.extend(layout::rules());
    rules.extend(cleanup::rules());
    rules
}

/// The rule families and their rules' law names (for docs and tests).
pub fn families() -> Vec<(&'static str, Vec<String>)> {
    let names =
        |rules: Vec<Rewrite<Node, Facts>>| rules.iter().map(|r| r.name.to_string()).collect();
    vec![
        ("folding", names(folding::rules())),
        ("fusion", names(fusion::rules())),
        ("canonical", names(canonical::rules())),
        ("layout", names(layout::rules())),
        ("cleanup", names(cleanup::rules())),
    ]
}

/// A pattern variable (rules name theirs as string literals).
fn var(name: &str) -> Var {
    name.parse().expect("rule variables are written ?name")
}

/// The class a variable of the match is bound to.
fn bound(subst: &Subst, name: &str) -> Id {
    subst[var(name)]
}

/// Condition: the variable's value is a compile-time constant.
fn is_constant(name: &'static str) -> impl Fn(&mut Graph, Id, &Subst) -> bool {
    move |egraph, _, subst| facts::constant(egraph, bound(subst, name))
}

/// Condition: the variable's value has the shape of the shape leaf bound
/// to `shape`.
fn has_shape_of_leaf(
    value: &'static str,
    shape: &'static str,
) -> impl Fn(&mut Graph, Id, &Subst) -> bool {
    move |egraph, _, subst| match facts::leaf(egraph, bound(subst, shape)) {
        Some(Leaf::Shape(s)) => facts::shape(egraph, bound(subst, value)) == Some(&s[..]),
        _ => false,
    }
}

/// Whether class `id` is the absent-operand leaf.
fn is_none(egraph: &Graph, id: Id) -> bool {
    matches!(facts::leaf(egraph, id), Some(Leaf::None))
}

/// Whether class `id` is the no-activation leaf.
fn no_activation(egraph: &Graph, id: Id) -> bool {
    matches!(facts::leaf(egraph, id), Some(Leaf::Act(ActLeaf::None)))
}

/// Whether the original function uses class `id`'s value more than once.
fn shared(egraph: &Graph, id: Id) -> bool {
    let id = egraph.find(id);
    egraph.analysis.shared.iter().any(|s| egraph.find(*s) == id)
}

/// The product kinds a [`ProductApplier`] rebuilds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ProductKind {
    Gemm,
    Conv,
}

/// A product node's children: attrs, activation, name, input, weight,
/// bias, residual.
type ProductChildren = [Id; 7];

impl ProductKind {
    fn children(self, node: &Node) -> Option<ProductChildren> {
        match (self, node) {
            (ProductKind::Gemm, Node::Gemm(c)) | (ProductKind::Conv, Node::Conv(c)) => Some(*c),
            _ => None,
        }
    }

    fn node(self, children: ProductChildren) -> Node {
        match self {
            ProductKind::Gemm => Node::Gemm(children),
            ProductKind::Conv => Node::Conv(children),
        }
    }
}

/// How a [`ProductApplier`] makes the new product from a matched one: it
/// gets the e-graph, the match and the product's children, and returns the
/// new children (`None`: this product does not qualify).
type Rebuild = fn(&mut Graph, &Subst, ProductChildren) -> Option<ProductChildren>;

/// An applier for rules whose left-hand side has a product bound to `?p`
/// below the matched op: for every product node of `kind` in `?p`'s class
/// (unless the original function shares that value: the product would run
/// twice), `rebuild` says what the fused or folded product is; each is
/// added and made equal to the matched op.
struct ProductApplier {
    kind: ProductKind,
    rebuild: Rebuild,
}

impl Applier<Node, Facts> for ProductApplier {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<Node>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        let product = bound(subst, "?p");
        if shared(egraph, product) {
            return Vec::new();
        }
        let candidates: Vec<ProductChildren> = egraph[product]
            .nodes
            .iter()
            .filter_map(|node| self.kind.children(node))
            .collect();
        let mut changed = Vec::new();
        for children in candidates {
            let Some(rebuilt) = (self.rebuild)(egraph, subst, children) else {
                continue;
            };
            let id = egraph.add(self.kind.node(rebuilt));
            if egraph.union(eclass, id) {
                changed.push(id);
            }
        }
        changed
    }
}

/// An applier for rules that rewrite a matched product's own children
/// (`?p` is the matched class itself): like [`ProductApplier`], without
/// the sharing check (the value stays the same single value).
struct OwnChildrenApplier {
    kind: ProductKind,
    rebuild: Rebuild,
}

impl Applier<Node, Facts> for OwnChildrenApplier {
    fn apply_one(
        &self,
        egraph: &mut Graph,
        eclass: Id,
        subst: &Subst,
        _searcher_ast: Option<&PatternAst<Node>>,
        _rule_name: Symbol,
    ) -> Vec<Id> {
        let candidates: Vec<ProductChildren> = egraph[eclass]
            .nodes
            .iter()
            .filter_map(|node| self.kind.children(node))
            .collect();
        let mut changed = Vec::new();
        for children in candidates {
            let Some(rebuilt) = (self.rebuild)(egraph, subst, children) else {
                continue;
            };
            let id = egraph.add(self.kind.node(rebuilt));
            if egraph.union(eclass, id) {
                changed.push(id);
            }
        }
        changed
    }
}

/// A rule whose applier is a [`ProductApplier`].
fn product_rule(
    name: &str,
    searcher: &str,
    kind: ProductKind,
    rebuild: Rebuild,
) -> Rewrite<Node, Facts> {
    let searcher: egg::Pattern<Node> = searcher.parse().expect("rule patterns parse");
    Rewrite::new(name, searcher, ProductApplier { kind, rebuild }).expect("a well-formed rule")
}

/// A rule rewriting a product's own children.
fn own_children_rule(name: &str, kind: ProductKind, rebuild: Rebuild) -> Rewrite<Node, Facts> {
    let searcher: egg::Pattern<Node> = match kind {
        ProductKind::Gemm => "(gemm ?a ?k ?n ?x ?w ?b ?r)",
        ProductKind::Conv => "(conv ?a ?k ?n ?x ?w ?b ?r)",
    }
    .parse()
    .expect("rule patterns parse");
    Rewrite::new(name, searcher, OwnChildrenApplier { kind, rebuild }).expect("a well-formed rule")
}
