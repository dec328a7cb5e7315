//! Unit tests of the graph and its shape inference.

use super::*;

fn node(name: &str, op: Op, ins: &[&str], out: &str) -> Node {
    Node {
        name: name.into(),
        op,
        inputs: ins.iter().map(|s| s.to_string()).collect(),
        outputs: vec![out.into()],
    }
}

fn gemm(ta: bool, tb: bool) -> Op {
    Op::Gemm {
        alpha: 1.0,
        beta: 1.0,
        trans_a: ta,
        trans_b: tb,
    }
}

fn graph(nodes: Vec<Node>, inits: &[(&str, Vec<usize>)]) -> Graph {
    Graph {
        name: "g".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![2, 3],
        }],
        outputs: vec![],
        nodes,
        initializers: inits
            .iter()
            .map(|(n, s)| (n.to_string(), Tensor::zeros(s.clone())))
            .collect(),
    }
}

#[test]
fn broadcasting() {
    assert_eq!(broadcast_shapes(&[2, 3], &[3]), Some(vec![2, 3]));
    assert_eq!(broadcast_shapes(&[2, 1], &[1, 4]), Some(vec![2, 4]));
    assert_eq!(broadcast_shapes(&[], &[5]), Some(vec![5]));
    assert_eq!(broadcast_shapes(&[2, 3], &[2]), None);
    assert!(unidirectional_broadcastable(&[4], &[2, 4]));
    assert!(unidirectional_broadcastable(&[1, 4], &[2, 4]));
    assert!(!unidirectional_broadcastable(&[2, 4], &[4]));
    assert!(!unidirectional_broadcastable(&[3], &[2, 4]));
}

#[test]
fn gemm_shapes_with_transposes() {
    // x: [2,3]; W: [5,3] with trans_b -> [2,5]; bias [5].
    let g = graph(
        vec![node("fc", gemm(false, true), &["x", "w", "b"], "y")],
        &[("w", vec![5, 3]), ("b", vec![5])],
    );
    assert_eq!(g.infer_shapes().unwrap()["y"], vec![2, 5]);
    // trans_a: x^T is [3,2]; B [2,4] -> [3,4].
    let g = graph(
        vec![node("fc", gemm(true, false), &["x", "w"], "y")],
        &[("w", vec![2, 4])],
    );
    assert_eq!(g.infer_shapes().unwrap()["y"], vec![3, 4]);
}

#[test]
fn gemm_mismatch_names_node_and_shapes() {
    let g = graph(
        vec![node("fc1", gemm(false, false), &["x", "w"], "y")],
        &[("w", vec![4, 5])],
    );
    let e = g.infer_shapes().unwrap_err().to_string();
    assert!(e.contains("fc1"), "{e}");
    assert!(e.contains("[2, 3]") && e.contains("[4, 5]"), "{e}");
    let g = graph(
        vec![node("fc1", gemm(false, true), &["x", "w", "b"], "y")],
        &[("w", vec![5, 3]), ("b", vec![3])],
    );
    let e = g.infer_shapes().unwrap_err().to_string();
    assert!(
        e.contains("fc1") && e.contains("[3]") && e.contains("[2, 5]"),
        "{e}"
    );
}

#[test]
fn undefined_input_names_node() {
    let g = graph(
        vec![
            node("", Op::Relu, &["h"], "y"),
            node("first", Op::Relu, &["x"], "h"),
        ],
        &[],
    );
    let e = g.infer_shapes().unwrap_err().to_string();
    assert!(e.contains("'#0'") && e.contains("'h'"), "{e}");
}

#[test]
fn flatten_reshape_matmul_add() {
    let g = graph(
        vec![
            node(
                "r",
                Op::Reshape {
                    shape: vec![0, -1, 1],
                },
                &["x"],
                "a",
            ),
            node("f", Op::Flatten { axis: -1 }, &["a"], "b"),
            node("m", Op::MatMul, &["b", "w"], "c"),
            node("p", Op::Add, &["c", "bias"], "d"),
        ],
        &[("w", vec![1, 7]), ("bias", vec![1, 7])],
    );
    let s = g.infer_shapes().unwrap();
    assert_eq!(s["a"], vec![2, 3, 1]);
    assert_eq!(s["b"], vec![6, 1]);
    assert_eq!(s["c"], vec![6, 7]);
    assert_eq!(s["d"], vec![6, 7]);
    let bad = graph(
        vec![node(
            "r",
            Op::Reshape {
                shape: vec![4, -1, -1],
            },
            &["x"],
            "a",
        )],
        &[],
    );
    assert!(bad.infer_shapes().is_err());
    let bad = graph(
        vec![node("r", Op::Reshape { shape: vec![4, 2] }, &["x"], "a")],
        &[],
    );
    let e = bad.infer_shapes().unwrap_err().to_string();
    assert!(e.contains("8 elements") && e.contains("6"), "{e}");
}

fn conv(strides: [usize; 2], pads: [usize; 4], dilations: [usize; 2]) -> Op {
    Op::Conv {
        strides,
        pads,
        dilations,
        group: 1,
    }
}

/// Shapes of a one-Conv graph on input `x`, with initializers `w` and
/// (if given) `b`.
fn conv_shape_of(
    op: Op,
    x: &[usize],
    w: &[usize],
    b: Option<&[usize]>,
) -> Result<Vec<usize>, ModelError> {
    let mut inits = vec![("w", w.to_vec())];
    let mut ins = vec!["x", "w"];
    if let Some(b) = b {
        inits.push(("b", b.to_vec()));
        ins.push("b");
    }
    let mut g = graph(vec![node("c1", op, &ins, "y")], &inits);
    g.inputs[0].shape = x.to_vec();
    g.infer_shapes().map(|mut s| s.remove("y").unwrap())
}

#[test]
fn conv_shapes() {
    let plain = conv([1, 1], [0; 4], [1, 1]);
    // 3x3 kernel, no padding: 8x10 -> 6x8.
    assert_eq!(
        conv_shape_of(plain.clone(), &[2, 3, 8, 10], &[5, 3, 3, 3], Some(&[5])).unwrap(),
        vec![2, 5, 6, 8]
    );
    // Kernel exactly the input size gives 1x1; bias is optional.
    assert_eq!(
        conv_shape_of(plain, &[1, 2, 4, 3], &[7, 2, 4, 3], None).unwrap(),
        vec![1, 7, 1, 1]
    );
    // Stride 2 rounds down: (8-3)/2+1 = 3, (9-3)/2+1 = 4.
    assert_eq!(
        conv_shape_of(
            conv([2, 2], [0; 4], [1, 1]),
            &[1, 1, 8, 9],
            &[1, 1, 3, 3],
            None
        )
        .unwrap(),
        vec![1, 1, 3, 4]
    );
    // Asymmetric pads [top, left, bottom, right]: H 5+1+2 = 8 -> 6, W 5+0+3 = 8 -> 6;
    // with stride (2,3): (8-3)/2+1 = 3, (8-3)/3+1 = 2.
    assert_eq!(
        conv_shape_of(
            conv([1, 1], [1, 0, 2, 3], [1, 1]),
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            None
        )
        .unwrap(),
        vec![1, 1, 6, 6]
    );
    assert_eq!(
        conv_shape_of(
            conv([2, 3], [1, 0, 2, 3], [1, 1]),
            &[1, 1, 5, 5],
            &[1, 1, 3, 3],
            None
        )
        .unwrap(),
        vec![1, 1, 3, 2]
    );
    // Dilation (2,3) stretches a 3x2 kernel to span 5x4: 9x9 -> 5x6.
    assert_eq!(
        conv_shape_of(
            conv([1, 1], [0; 4], [2, 3]),
            &[1, 1, 9, 9],
            &[1, 1, 3, 2],
            None
        )
        .unwrap(),
        vec![1, 1, 5, 6]
    );
    // Everything at once: H (10+1+1-2*2-1)/3+1 = 3, W (7+2+0-1*3-1)/2+1 = 3.
    assert_eq!(
        conv_shape_of(
            conv([3, 2], [1, 2, 1, 0], [2, 1]),
            &[4, 2, 10, 7],
            &[6, 2, 3, 4],
            Some(&[6])
        )
        .unwrap(),
        vec![4, 6, 3, 3]
    );
}

#[test]
fn conv_shape_errors_name_the_node() {
    let plain = conv([1, 1], [0; 4], [1, 1]);
    let err = |op: Op, x: &[usize], w: &[usize], b: Option<&[usize]>| {
        let e = conv_shape_of(op, x, w, b).unwrap_err();
        assert!(matches!(e, ModelError::Shape { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("'c1'"), "{e}");
        e
    };
    let e = err(plain.clone(), &[3, 8, 8], &[1, 3, 3, 3], None);
    assert!(e.contains("4-D") && e.contains("[3, 8, 8]"), "{e}");
    let e = err(plain.clone(), &[1, 3, 8, 8], &[1, 3, 3], None);
    assert!(e.contains("4-D") && e.contains("[1, 3, 3]"), "{e}");
    let e = err(plain.clone(), &[1, 3, 8, 8], &[4, 2, 3, 3], None);
    assert!(
        e.contains("C=3") && e.contains("needs C/group = 3") && e.contains("not 2"),
        "{e}"
    );
    let e = err(plain.clone(), &[1, 3, 8, 8], &[4, 3, 3, 3], Some(&[3]));
    assert!(
        e.contains("bias") && e.contains("[3]") && e.contains("[4]"),
        "{e}"
    );
    let e = err(plain.clone(), &[1, 3, 8, 8], &[4, 3, 3, 3], Some(&[1, 4]));
    assert!(e.contains("bias"), "{e}");
    // Kernel larger than the (padded) input.
    let e = err(plain.clone(), &[1, 1, 2, 8], &[1, 1, 3, 3], None);
    assert!(e.contains("height") && e.contains("spans 3"), "{e}");
    let e = err(
        conv([1, 1], [0, 1, 0, 0], [1, 1]),
        &[1, 1, 8, 2],
        &[1, 1, 3, 4],
        None,
    );
    assert!(
        e.contains("width") && e.contains("padded input is only 3"),
        "{e}"
    );
    // ... but padding can make it fit.
    assert_eq!(
        conv_shape_of(
            conv([1, 1], [1, 0, 0, 0], [1, 1]),
            &[1, 1, 2, 3],
            &[1, 1, 3, 3],
            None
        )
        .unwrap(),
        vec![1, 1, 1, 1]
    );
    // Dilation can push the kernel past the input.
    let e = err(
        conv([1, 1], [0; 4], [1, 4]),
        &[1, 1, 8, 8],
        &[1, 1, 3, 3],
        None,
    );
    assert!(e.contains("width") && e.contains("spans 9"), "{e}");
    let e = err(
        conv([0, 1], [0; 4], [1, 1]),
        &[1, 1, 8, 8],
        &[1, 1, 3, 3],
        None,
    );
    assert!(e.contains("strides [0, 1]"), "{e}");
    let e = err(
        conv([1, 1], [0; 4], [1, 0]),
        &[1, 1, 8, 8],
        &[1, 1, 3, 3],
        None,
    );
    assert!(e.contains("dilations [1, 0]"), "{e}");
    let e = err(plain.clone(), &[1, 1, 8, 8], &[1, 1, 0, 3], None);
    assert!(e.contains("kernel height is 0"), "{e}");
    // Absurd sizes are errors, not overflows.
    let e = err(
        conv([1, 1], [usize::MAX, 0, 1, 0], [1, 1]),
        &[1, 1, 8, 8],
        &[1, 1, 3, 3],
        None,
    );
    assert!(e.contains("overflows"), "{e}");
    let e = err(
        conv([1, 1], [0; 4], [usize::MAX, 1]),
        &[1, 1, 8, 8],
        &[1, 1, 3, 3],
        None,
    );
    assert!(e.contains("overflows"), "{e}");
    // Arity.
    let mut g = graph(vec![node("c1", plain, &["x"], "y")], &[]);
    g.inputs[0].shape = vec![1, 1, 4, 4];
    let e = g.infer_shapes().unwrap_err().to_string();
    assert!(
        e.contains("'c1'") && e.contains("Conv takes 2 to 3 inputs"),
        "{e}"
    );
}

#[test]
fn batch_norm_shapes() {
    let bn = |x: &[usize], params: [&[usize]; 4]| {
        let names = ["s", "b", "m", "v"];
        let inits: Vec<(&str, Vec<usize>)> = names
            .iter()
            .zip(params)
            .map(|(n, s)| (*n, s.to_vec()))
            .collect();
        let mut g = graph(
            vec![node(
                "bn1",
                Op::BatchNormalization { epsilon: 1e-5 },
                &["x", "s", "b", "m", "v"],
                "y",
            )],
            &inits,
        );
        g.inputs[0].shape = x.to_vec();
        g.infer_shapes().map(|mut s| s.remove("y").unwrap())
    };
    assert_eq!(
        bn(&[2, 3, 4, 5], [&[3], &[3], &[3], &[3]]).unwrap(),
        vec![2, 3, 4, 5]
    );
    // Rank 2 is allowed: channels are still axis 1.
    assert_eq!(bn(&[2, 3], [&[3], &[3], &[3], &[3]]).unwrap(), vec![2, 3]);
    let err = |x: &[usize], params: [&[usize]; 4]| {
        let e = bn(x, params).unwrap_err();
        assert!(matches!(e, ModelError::Shape { .. }), "{e:?}");
        let e = e.to_string();
        assert!(e.contains("'bn1'"), "{e}");
        e
    };
    let e = err(&[1, 3, 4, 4], [&[4], &[3], &[3], &[3]]);
    assert!(e.contains("scale [4]") && e.contains("[C] = [3]"), "{e}");
    let e = err(&[1, 3, 4, 4], [&[3], &[3], &[3], &[1, 3]]);
    assert!(e.contains("var [1, 3]"), "{e}");
    let e = err(&[1, 3, 4, 4], [&[3], &[2], &[3], &[3]]);
    assert!(e.contains("B [2]"), "{e}");
    let e = err(&[3], [&[3], &[3], &[3], &[3]]);
    assert!(e.contains("rank >= 2"), "{e}");
    // Arity: the four parameters are all required.
    let g = graph(
        vec![node(
            "bn1",
            Op::BatchNormalization { epsilon: 1e-5 },
            &["x", "s"],
            "y",
        )],
        &[("s", vec![3])],
    );
    let e = g.infer_shapes().unwrap_err().to_string();
    assert!(
        e.contains("'bn1'") && e.contains("BatchNormalization takes 5 inputs, got 2"),
        "{e}"
    );
}

#[test]
fn element_wise_ops_keep_the_shape_and_take_one_input() {
    for op in [
        Op::Clip {
            min: Some(0.0),
            max: None,
        },
        Op::Sigmoid,
        Op::Tanh,
        Op::HardSwish,
        Op::LeakyRelu { alpha: 0.1 },
        Op::HardSigmoid {
            alpha: 0.2,
            beta: 0.5,
        },
        Op::Identity,
    ] {
        let name = op.op_type();
        let g = graph(vec![node("u", op.clone(), &["x"], "y")], &[]);
        assert_eq!(g.infer_shapes().unwrap()["y"], vec![2, 3], "{name}");
        let g = graph(vec![node("u", op, &["x", "x"], "y")], &[]);
        let e = g.infer_shapes().unwrap_err().to_string();
        assert!(
            e.contains("'u'") && e.contains(&format!("{name} takes 1 inputs, got 2")),
            "{e}"
        );
    }
}

#[test]
fn validate_checks_declared_outputs() {
    let mut g = graph(vec![node("relu", Op::Relu, &["x"], "y")], &[]);
    g.outputs.push(ValueInfo {
        name: "y".into(),
        shape: vec![2, 3],
    });
    assert!(g.validate().is_ok());
    g.outputs[0].shape = vec![3, 2];
    let e = g.validate().unwrap_err().to_string();
    assert!(e.contains("[3, 2]") && e.contains("[2, 3]"), "{e}");
    g.outputs[0].name = "nope".into();
    assert!(g.validate().is_err());
}
