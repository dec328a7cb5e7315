//! Per family: what the rules must make equal, and what they must not.

use super::all;
use crate::graph::egraph::{
    facts::{Facts, Graph},
    lang::Node,
};
use egg::{Id, RecExpr, Runner};

/// An e-graph with the given argument and constant shapes, holding `exprs`.
fn graph(inputs: &[&[i64]], constants: &[&[i64]], exprs: &[&str]) -> (Graph, Vec<Id>) {
    let mut egraph = Graph::new(Facts {
        inputs: inputs.iter().map(|s| s.to_vec()).collect(),
        constants: constants.iter().map(|s| s.to_vec()).collect(),
        ..Facts::default()
    });
    let ids = exprs
        .iter()
        .map(|e| {
            let expr: RecExpr<Node> = e.parse().expect("test expressions parse");
            egraph.add_expr(&expr)
        })
        .collect();
    (egraph, ids)
}

/// Saturates `exprs` together and tells whether the first two are equal.
fn equal_after(inputs: &[&[i64]], constants: &[&[i64]], a: &str, b: &str) -> bool {
    let (egraph, ids) = graph(inputs, constants, &[a, b]);
    let runner = Runner::default()
        .with_egraph(egraph)
        .with_iter_limit(20)
        .run(&all());
    runner.egraph.find(ids[0]) == runner.egraph.find(ids[1])
}

const RELU: &str = "act:relu:0:0";
const CONV: &str = "conv:1,1:1,1,1,1:1,1";
/// A 3x3 conv of a [1, 4, 8, 8] input (in:0) by c:0 = [8, 4, 3, 3]: [1, 8, 8, 8].
const CONV_SHAPES: (&[&[i64]], &[&[i64]]) = (
    &[&[1, 4, 8, 8], &[1, 8, 8, 8]],
    &[&[8, 4, 3, 3], &[8], &[8], &[8], &[8], &[8], &[1, 8, 1, 1]],
);

fn conv(activation: &str, bias: &str, residual: &str) -> String {
    format!("(conv {CONV} {activation} name:0 in:0 c:0 {bias} {residual})")
}

#[test]
fn folding_bn_into_a_conv() {
    let (inputs, constants) = CONV_SHAPES;
    let bn = format!(
        "(bn f32:925353388 name:1 {} c:1 c:2 c:3 c:4)",
        conv("act:none", "none", "none")
    );
    let folded = format!(
        "(conv {CONV} act:none name:0 in:0 (bn-weight f32:925353388 c:0 c:1 c:4) (bn-bias f32:925353388 c:2 none c:1 c:3 c:4) none)"
    );
    assert!(equal_after(inputs, constants, &bn, &folded));
}

#[test]
fn folding_stops_at_an_activation() {
    // bn(relu(conv)) cannot scale through the relu: it must not fold.
    let (inputs, constants) = CONV_SHAPES;
    let bn = format!(
        "(bn f32:925353388 name:1 {} c:1 c:2 c:3 c:4)",
        conv(RELU, "none", "none")
    );
    let folded = format!(
        "(conv {CONV} {RELU} name:0 in:0 (bn-weight f32:925353388 c:0 c:1 c:4) (bn-bias f32:925353388 c:2 none c:1 c:3 c:4) none)"
    );
    assert!(!equal_after(inputs, constants, &bn, &folded));
}

#[test]
fn fusion_of_activation_residual_and_bias() {
    let (inputs, constants) = CONV_SHAPES;
    let plain = conv("act:none", "none", "none");
    // relu(conv) is the conv with a relu epilogue.
    assert!(equal_after(
        inputs,
        constants,
        &format!("(act {RELU} name:1 {plain})"),
        &conv(RELU, "none", "none")
    ));
    // relu(conv + y) is the conv with a residual and a relu; either add order.
    let fused = conv(RELU, "none", "in:1");
    for add in [
        format!("(add name:2 {plain} in:1)"),
        format!("(add name:2 in:1 {plain})"),
    ] {
        assert!(equal_after(
            inputs,
            constants,
            &format!("(act {RELU} name:1 {add})"),
            &fused
        ));
    }
    // conv + c with c one value per channel ([1, 8, 1, 1]) is the conv with a bias.
    let biased = format!("(conv {CONV} act:none name:0 in:0 c:0 (const-as shape:8 c:6) none)");
    assert!(equal_after(
        inputs,
        constants,
        &format!("(add name:2 {plain} c:6)"),
        &biased
    ));
}

#[test]
fn fusion_keeps_the_epilogue_order() {
    // relu(conv) + y is not relu(conv + y): the residual comes before the activation.
    let (inputs, constants) = CONV_SHAPES;
    let relu_then_add = format!(
        "(add name:2 (act {RELU} name:1 {}) in:1)",
        conv("act:none", "none", "none")
    );
    assert!(!equal_after(
        inputs,
        constants,
        &relu_then_add,
        &conv(RELU, "none", "in:1")
    ));
    // A c that is not per channel ([8] aligns with W, not C) is no bias.
    let add = format!("(add name:2 {} c:1)", conv("act:none", "none", "none"));
    let wrong = format!("(conv {CONV} act:none name:0 in:0 c:0 (const-as shape:8 c:1) none)");
    assert!(!equal_after(inputs, constants, &add, &wrong));
}

#[test]
fn fusion_skips_a_shared_product() {
    // The conv's value is used twice in the source: fusing the relu into it
    // would compute the conv twice, so the two forms stay apart.
    let (inputs, constants) = CONV_SHAPES;
    let plain = conv("act:none", "none", "none");
    let (mut egraph, ids) = graph(
        inputs,
        constants,
        &[
            &format!("(act {RELU} name:1 {plain})"),
            &conv(RELU, "none", "none"),
        ],
    );
    let shared: RecExpr<Node> = plain.parse().unwrap();
    let shared = egraph.add_expr(&shared);
    egraph.analysis.shared.insert(shared);
    let runner = Runner::default().with_egraph(egraph).run(&all());
    assert_ne!(runner.egraph.find(ids[0]), runner.egraph.find(ids[1]));
}

/// A MatMul-shaped gemm: in:0 [2, 16] times c:0 [16, 8] (in x out).
const GEMM_SHAPES: (&[&[i64]], &[&[i64]]) = (
    &[&[2, 16], &[2, 8], &[16, 2]],
    &[&[16, 8], &[8], &[1, 8], &[2, 8], &[8, 16]],
);
const ONNX_GEMM: &str = "gemm:1065353216:1065353216:0:0";
const CANONICAL: &str = "gemm:canonical";

#[test]
fn canonical_gemm_from_onnx_forms() {
    let (inputs, constants) = GEMM_SHAPES;
    // MatMul + Add: a transposed weight and the add as the bias.
    let matmul_add =
        format!("(add name:1 (gemm {ONNX_GEMM} act:none name:0 in:0 c:0 none none) c:1)");
    let canonical =
        format!("(gemm {CANONICAL} act:none name:0 in:0 (const-transpose c:0) c:1 none)");
    assert!(equal_after(inputs, constants, &matmul_add, &canonical));
    // alpha = 2 scales the weight; a [1, 8] C becomes the [8] bias.
    let scaled =
        "(gemm gemm:1073741824:1065353216:0:1 act:none name:0 in:0 c:4 c:2 none)".to_string();
    let folded = format!("(gemm {CANONICAL} act:none name:0 in:0 (scale f32:1073741824 c:4) (const-as shape:8 c:2) none)");
    assert!(equal_after(inputs, constants, &scaled, &folded));
    // transA: the input is transposed by its own op.
    let trans_a =
        "(gemm gemm:1065353216:1065353216:1:1 act:none name:0 in:2 c:4 none none)".to_string();
    let split = format!("(gemm {CANONICAL} act:none name:0 (transpose name:0 in:2) c:4 none none)");
    assert!(equal_after(inputs, constants, &trans_a, &split));
    // A C of the output's shape is the epilogue's residual.
    let full_c = format!("(gemm {CANONICAL} act:none name:0 in:0 c:4 in:1 none)");
    let residual = format!("(gemm {CANONICAL} act:none name:0 in:0 c:4 none in:1)");
    assert!(equal_after(inputs, constants, &full_c, &residual));
}

#[test]
fn canonical_gemm_keeps_the_weight_layout_apart() {
    // x W (W in x out) is not x W^T: trans_b is not dropped or added freely.
    let (inputs, constants) = GEMM_SHAPES;
    let in_out = format!("(gemm {ONNX_GEMM} act:none name:0 in:2 in:1 none none)");
    let out_in = format!("(gemm {CANONICAL} act:none name:0 in:2 in:1 none none)");
    assert!(!equal_after(inputs, constants, &in_out, &out_in));
}

#[test]
fn layout_cancellation() {
    let inputs: &[&[i64]] = &[&[4, 6]];
    assert!(equal_after(
        inputs,
        &[],
        "(transpose name:0 (transpose name:1 in:0))",
        "in:0"
    ));
    assert!(equal_after(
        inputs,
        &[],
        "(reshape shape:24 name:0 (reshape shape:2,12 name:1 in:0))",
        "(reshape shape:24 name:0 in:0)"
    ));
    assert!(equal_after(
        inputs,
        &[],
        "(reshape shape:4,6 name:0 in:0)",
        "in:0"
    ));
}

#[test]
fn layout_keeps_a_single_transpose() {
    let inputs: &[&[i64]] = &[&[4, 6]];
    assert!(!equal_after(inputs, &[], "(transpose name:0 in:0)", "in:0"));
    assert!(!equal_after(
        inputs,
        &[],
        "(reshape shape:6,4 name:0 in:0)",
        "in:0"
    ));
}

#[test]
fn cleanup_removes_identities_only() {
    let inputs: &[&[i64]] = &[&[4, 6]];
    assert!(equal_after(
        inputs,
        &[],
        "(identity name:0 (identity name:1 in:0))",
        "in:0"
    ));
    assert!(!equal_after(
        inputs,
        &[],
        &format!("(act {RELU} name:0 in:0)"),
        "in:0"
    ));
}

#[test]
fn every_rule_has_a_law_name_in_its_family() {
    let families = super::families();
    let total: usize = families.iter().map(|(_, rules)| rules.len()).sum();
    assert_eq!(total, all().len());
    for (family, rules) in families {
        assert!(!rules.is_empty(), "{family}");
        for rule in rules {
            assert!(
                rule.chars().all(|c| c.is_ascii_lowercase() || c == '-'),
                "{rule}"
            );
        }
    }
}
