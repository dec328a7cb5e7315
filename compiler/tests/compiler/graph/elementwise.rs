//! The binary elementwise ops (Add, Sub, Mul, Div, Max, Min with numpy broadcasting)
//! after a BCR gemm, compiled for the host and for aarch64 (qemu), against
//! the reference.

use crate::common::*;
use grim_model::{run_reference, BlockSize, Node, Op, Tensor, ValueInfo};

/// `y = min(max(((fc(x) - c) * s) / d + x2, lo), hi)` with `c [8]`, `d [1, 8]` constants
/// (d away from zero), `s [4, 1]` and `x2 [4, 8]` graph inputs: each
/// operand broadcast differently, operand order mattering for Sub and Div.
#[test]
fn sub_mul_div_after_a_gemm_match_the_reference_on_host_and_aarch64() {
    let mut graph = gemm_graph(8, 16, 4, BlockSize::new(4, 8).unwrap(), 0.5, 0.5, 3, true);
    graph.outputs[0].name = "out".into();
    graph
        .initializers
        .insert("c".into(), lcg_input(vec![8], 21));
    let d: Vec<f32> = (0..8).map(|i| 0.5 + i as f32 * 0.25).collect();
    graph
        .initializers
        .insert("d".into(), Tensor::new(vec![1, 8], d).unwrap());
    graph.inputs.push(ValueInfo {
        name: "s".into(),
        shape: vec![4, 1],
    });
    graph.inputs.push(ValueInfo {
        name: "x2".into(),
        shape: vec![4, 8],
    });
    for (name, op, inputs, output) in [
        ("sub", Op::Sub, ["y", "c"], "t1"),
        ("mul", Op::Mul, ["t1", "s"], "t2"),
        ("div", Op::Div, ["t2", "d"], "t3"),
        ("add", Op::Add, ["t3", "x2"], "t4"),
        // A Clip with bounds given at run time, as it loads.
        ("lower", Op::Max, ["t4", "lo"], "t5"),
        ("upper", Op::Min, ["t5", "hi"], "out"),
    ] {
        graph.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.into()],
        });
    }
    for name in ["lo", "hi"] {
        graph.inputs.push(ValueInfo {
            name: name.into(),
            shape: vec![],
        });
    }
    let inputs = [
        lcg_input(vec![4, 16], 1),
        lcg_input(vec![4, 1], 2),
        lcg_input(vec![4, 8], 3),
        Tensor::new(vec![], vec![-0.5]).unwrap(),
        Tensor::new(vec![], vec![0.75]).unwrap(),
    ];
    let expected = run_reference(&graph, &inputs).unwrap();
    // Both bounds bite somewhere, so dropping either op would show.
    let clipped = |v: f32| expected[0].data.iter().filter(|x| **x == v).count();
    assert!(
        clipped(-0.5) > 0 && clipped(0.75) > 0,
        "{:?}",
        expected[0].data
    );
    for target in ["host", "aarch64-linux-gnu"] {
        let actual = compile_and_run(&graph, target, (4, 8), true, 2, &inputs);
        assert_close(&actual, &expected);
    }
}

/// A classifier's head: `softmax(fc(x))` over the classes (opset 13), and
/// over every dim from 1 of a 3-D tensor (the pre-13 reading), with large
/// logits so that an unshifted exp would overflow.
#[test]
fn softmax_matches_the_reference_on_host_and_aarch64() {
    let mut graph = gemm_graph(8, 16, 4, BlockSize::new(4, 8).unwrap(), 0.5, 0.5, 3, true);
    graph.outputs[0].name = "p".into();
    graph.nodes.push(Node {
        name: "scale".into(),
        op: Op::Mul,
        inputs: vec!["y".into(), "big".into()],
        outputs: vec!["logits".into()],
    });
    graph
        .initializers
        .insert("big".into(), Tensor::new(vec![1], vec![60.0]).unwrap());
    graph.nodes.push(Node {
        name: "softmax".into(),
        op: Op::Softmax {
            axis: 1,
            axis_end: 2,
        },
        inputs: vec!["logits".into()],
        outputs: vec!["p".into()],
    });
    let inputs = [lcg_input(vec![4, 16], 1)];
    let expected = run_reference(&graph, &inputs).unwrap();
    assert!(expected[0].data.iter().all(|v| v.is_finite()));
    for target in ["host", "aarch64-linux-gnu"] {
        let actual = compile_and_run(&graph, target, (4, 8), true, 2, &inputs);
        assert_close(&actual, &expected);
    }
    let legacy = grim_model::Graph {
        name: "legacy".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![2, 3, 5],
        }],
        outputs: vec![ValueInfo {
            name: "p".into(),
            shape: vec![2, 3, 5],
        }],
        nodes: vec![Node {
            name: "softmax".into(),
            op: Op::Softmax {
                axis: 1,
                axis_end: 3,
            },
            inputs: vec!["x".into()],
            outputs: vec!["p".into()],
        }],
        initializers: Default::default(),
    };
    let inputs = [lcg_input(vec![2, 3, 5], 2)];
    let expected = run_reference(&legacy, &inputs).unwrap();
    for target in ["host", "aarch64-linux-gnu"] {
        let actual = compile_and_run(&legacy, target, (4, 8), true, 1, &inputs);
        assert_close(&actual, &expected);
    }
}
