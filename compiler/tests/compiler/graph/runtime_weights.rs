//! Products whose weight is a graph input (no initializer), as the ONNX
//! node tests and weight-feeding models give them: the weight is packed
//! into row panels at run time (`bcr.pack_panels`) and multiplied by the
//! generated dense kernel, on the host and on aarch64 (qemu), against the
//! reference; `grimc inspect` says why such a layer is dense.

use crate::common::*;
use grim_model::{run_reference, Graph, Node, Op, Tensor, ValueInfo};

fn input(name: &str, shape: &[usize]) -> ValueInfo {
    ValueInfo {
        name: name.into(),
        shape: shape.to_vec(),
    }
}

/// One node over graph inputs `inputs` (every operand given at run time).
fn one_node(op: Op, inputs: &[ValueInfo], output: &[usize]) -> Graph {
    Graph {
        name: "runtime".into(),
        inputs: inputs.to_vec(),
        outputs: vec![input("y", output)],
        nodes: vec![Node {
            name: "product".into(),
            op,
            inputs: inputs.iter().map(|v| v.name.clone()).collect(),
            outputs: vec!["y".into()],
        }],
        initializers: Default::default(),
    }
}

fn data(graph: &Graph) -> Vec<Tensor> {
    (0..)
        .zip(&graph.inputs)
        .map(|(seed, v)| lcg_input(v.shape.clone(), 40 + seed))
        .collect()
}

/// Gemm with every attribute and a C that broadcasts along rows ([N, 1])
/// or is a scalar, for 1 row (the matrix-vector kernel) and 13 rows; M = 19
/// is no multiple of any panel height, so the last panel is padded.
#[test]
fn runtime_gemm_with_every_attribute_matches_the_reference_on_host_and_aarch64() {
    for (n, trans_a, trans_b, c_shape) in [
        (13, true, false, vec![13, 1]),
        (13, false, true, vec![]),
        (1, false, false, vec![19]),
        (1, true, true, vec![1, 19]),
    ] {
        let (k, m) = (11, 19);
        let a = if trans_a { [k, n] } else { [n, k] };
        let b = if trans_b { [m, k] } else { [k, m] };
        let op = Op::Gemm {
            alpha: 0.75,
            beta: -1.5,
            trans_a,
            trans_b,
        };
        let graph = one_node(
            op,
            &[input("a", &a), input("b", &b), input("c", &c_shape)],
            &[n, m],
        );
        let inputs = data(&graph);
        let expected = run_reference(&graph, &inputs).unwrap();
        for target in ["host", "aarch64-linux-gnu"] {
            let actual = compile_and_run(&graph, target, (4, 8), true, 2, &inputs);
            assert_close(&actual, &expected);
        }
    }
}

/// A conv with its weight and bias given at run time: padded and strided
/// (implicit im2col on the dense kernel) and pointwise, 2 images.
#[test]
fn runtime_conv_matches_the_reference_on_host_and_aarch64() {
    for (kernel, strides, pads) in [(3, [2, 1], [1, 0, 2, 1]), (1, [1, 1], [0; 4])] {
        let (images, c, h, w, m) = (2, 3, 7, 6, 5);
        let ho = (h + pads[0] + pads[2] - kernel) / strides[0] + 1;
        let wo = (w + pads[1] + pads[3] - kernel) / strides[1] + 1;
        let op = Op::Conv {
            strides,
            pads,
            dilations: [1, 1],
            group: 1,
        };
        let graph = one_node(
            op,
            &[
                input("x", &[images, c, h, w]),
                input("w", &[m, c, kernel, kernel]),
                input("bias", &[m]),
            ],
            &[images, m, ho, wo],
        );
        let inputs = data(&graph);
        let expected = run_reference(&graph, &inputs).unwrap();
        for target in ["host", "aarch64-linux-gnu"] {
            let actual = compile_and_run(&graph, target, (4, 8), true, 1, &inputs);
            assert_close(&actual, &expected);
        }
    }
}

/// `grimc inspect` names the layer's kernel and why it is not BCR.
#[test]
fn inspect_says_a_runtime_weight_stays_dense() {
    let dir = tempfile::tempdir().unwrap();
    let graph = one_node(
        Op::MatMul,
        &[input("a", &[4, 8]), input("b", &[8, 6])],
        &[4, 6],
    );
    let path = dir.path().join("m.onnx");
    grim_model::save_onnx(&graph, &path).unwrap();
    let report = grimc_json(&["inspect", "--json", path.to_str().unwrap()]);
    let layer = &report["layers"][0];
    assert_eq!(layer["kernel"], "dense", "{report}");
    assert_eq!(layer["layout"], "runtime", "{report}");
    // The matrix the dense kernel multiplies: W = B^T, [M, K] = [6, 8].
    assert_eq!(layer["shape"], serde_json::json!([6, 8]), "{report}");
    let reason = layer["reason"].as_str().unwrap_or("");
    assert!(reason.contains("the weight is not a constant"), "{report}");
}

/// Attention-shaped: `q [2, 3, 4] x permute(k [2, 5, 4], [0, 2, 1])` (two
/// activations, batched), then a 3-D activation times a constant 2-D
/// matrix (a gemm over the flattened rows, pruned so it may run BCR) and a
/// 1-D vector, on the host and on aarch64, against the reference.
#[test]
fn batched_matmul_and_permute_match_the_reference_on_host_and_aarch64() {
    let mut graph = Graph {
        name: "attention".into(),
        inputs: vec![
            input("q", &[2, 3, 4]),
            input("k", &[2, 5, 4]),
            input("v", &[8]),
        ],
        outputs: vec![input("y", &[2, 3])],
        nodes: Vec::new(),
        initializers: Default::default(),
    };
    // Every other column pair of w zero, as pruning by mask multiplication leaves it.
    let w: Vec<f32> = lcg_input(vec![5, 8], 9)
        .data
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if (i / 2) % 2 == 1 {
                -0.0 * v.signum()
            } else {
                *v
            }
        })
        .collect();
    graph
        .initializers
        .insert("w".into(), Tensor::new(vec![5, 8], w).unwrap());
    for (name, op, inputs, output) in [
        (
            "kt",
            Op::Transpose {
                perm: vec![0, 2, 1],
            },
            vec!["k"],
            "kt",
        ),
        ("scores", Op::MatMul, vec!["q", "kt"], "s"),
        ("project", Op::MatMul, vec!["s", "w"], "p"),
        ("reduce", Op::MatMul, vec!["p", "v"], "y"),
    ] {
        graph.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.into()],
        });
    }
    let inputs = data(&graph);
    let expected = run_reference(&graph, &inputs).unwrap();
    assert_eq!(expected[0].shape, [2, 3]);
    for target in ["host", "aarch64-linux-gnu"] {
        let actual = compile_and_run(&graph, target, (4, 8), true, 2, &inputs);
        assert_close(&actual, &expected);
    }
}
