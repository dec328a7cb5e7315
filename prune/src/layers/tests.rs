use grim_model::{BlockSize, Graph, Node, Op, Tensor, ValueInfo};

use super::*;

fn graph(nodes: Vec<Node>, inits: Vec<(&str, Vec<usize>)>) -> Graph {
    Graph {
        name: "g".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![1, 64],
        }],
        outputs: vec![],
        nodes,
        initializers: inits
            .into_iter()
            .map(|(n, s)| {
                let len = s.iter().product();
                (
                    n.to_string(),
                    Tensor::new(s, (0..len).map(|v| v as f32).collect()).unwrap(),
                )
            })
            .collect(),
    }
}

fn node(name: &str, op: Op, inputs: &[&str]) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![format!("{name}.out")],
    }
}

#[test]
fn gemm_without_trans_b_is_pruned_as_its_transpose() {
    let gemm = Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: false,
        trans_b: false,
    };
    let g = graph(
        vec![node("fc", gemm, &["x", "w"])],
        vec![("w", vec![64, 32])],
    );
    let (layers, skipped) = find(&g, BlockSize::new(8, 16).unwrap());
    assert!(skipped.is_empty());
    let m = &layers[0].matrices[0];
    assert_eq!((m.rows, m.cols, m.transposed), (32, 64, true));
    // Element (row 1, col 2) of W^T is W[2][1] = 2 * 32 + 1.
    let data = &g.initializers["w"].data;
    assert_eq!(m.get(data)[64 + 2], 65.0);
    let mut back = vec![0.0; data.len()];
    m.put(&mut back, &m.get(data));
    assert_eq!(&back, data);
}

#[test]
fn small_depthwise_and_runtime_weights_stay_dense_with_reasons() {
    let conv = |group| Op::Conv {
        strides: [1, 1],
        pads: [0; 4],
        dilations: [1, 1],
        group,
    };
    let g = graph(
        vec![
            node("first", conv(1), &["x", "w1"]),
            node("dw", conv(32), &["x", "w2"]),
            node("rt", Op::MatMul, &["x", "runtime"]),
            node("ok", conv(1), &["x", "w3"]),
        ],
        vec![
            ("w1", vec![32, 1, 3, 3]),
            ("w2", vec![32, 1, 3, 3]),
            ("w3", vec![32, 16, 3, 3]),
        ],
    );
    let (layers, skipped) = find(&g, BlockSize::new(8, 16).unwrap());
    assert_eq!(layers.len(), 1);
    assert_eq!(
        (layers[0].matrices[0].rows, layers[0].matrices[0].cols),
        (32, 144)
    );
    let reasons: Vec<&str> = skipped.iter().map(|s| s.reason.as_str()).collect();
    assert!(
        reasons[0].contains("too small: its 32x9 matrix"),
        "{reasons:?}"
    );
    assert_eq!(reasons[1], "depthwise conv");
    assert!(reasons[2].contains("not a constant"), "{reasons:?}");
}

#[test]
fn put_writes_pruned_negative_zeros_as_positive_zeros() {
    let m = Matrix {
        rows: 1,
        cols: 2,
        offset: 0,
        transposed: false,
        part: None,
    };
    let mut data = vec![1.0, 1.0];
    m.put(&mut data, &[-0.0, -2.0]);
    assert_eq!(data[0].to_bits(), 0);
    assert_eq!(data[1], -2.0);
}
