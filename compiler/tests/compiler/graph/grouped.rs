//! Grouped and depthwise convs (the direct kernel) as MobileNet and
//! ShuffleNet have them, with batch-norm folded into them and ReLU6 fused,
//! on the host and on aarch64 (qemu), against the reference.

use crate::common::*;
use grim_model::{run_reference, Graph, Node, Op, Tensor, ValueInfo};

/// `x -> conv(group) -> BatchNormalization -> Clip(0, 6)`.
fn grouped_block(
    c: usize,
    m: usize,
    group: usize,
    kernel: usize,
    strides: [usize; 2],
    pads: [usize; 4],
    hw: [usize; 2],
) -> Graph {
    let [h, w] = hw;
    let ho = (h + pads[0] + pads[2] - kernel) / strides[0] + 1;
    let wo = (w + pads[1] + pads[3] - kernel) / strides[1] + 1;
    let mut graph = Graph {
        name: "grouped".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![1, c, h, w],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![1, m, ho, wo],
        }],
        nodes: Vec::new(),
        initializers: Default::default(),
    };
    let mut add = |name: &str, t: Tensor| graph.initializers.insert(name.into(), t);
    add("w", lcg_input(vec![m, c / group, kernel, kernel], 3));
    add("b", lcg_input(vec![m], 4));
    add("scale", lcg_input(vec![m], 5));
    add("shift", lcg_input(vec![m], 6));
    add("mean", lcg_input(vec![m], 7));
    let var: Vec<f32> = (0..m).map(|i| 0.5 + i as f32 * 0.125).collect();
    add("var", Tensor::new(vec![m], var).unwrap());
    for (name, op, inputs, output) in [
        (
            "conv",
            Op::Conv {
                strides,
                pads,
                dilations: [1, 1],
                group,
            },
            vec!["x", "w", "b"],
            "t1",
        ),
        (
            "bn",
            Op::BatchNormalization { epsilon: 1e-5 },
            vec!["t1", "scale", "shift", "mean", "var"],
            "t2",
        ),
        (
            "relu6",
            Op::Clip {
                min: Some(0.0),
                max: Some(6.0),
            },
            vec!["t2"],
            "y",
        ),
    ] {
        graph.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.into()],
        });
    }
    graph
}

#[test]
fn grouped_and_depthwise_convs_match_the_reference_on_host_and_aarch64() {
    for (c, m, group, kernel, strides, pads, hw) in [
        // MobileNet-V2's depthwise 3x3, stride 2, pads 1.
        (8, 8, 8, 3, [2, 2], [1; 4], [9, 10]),
        // Depthwise with a channel multiplier of 2 and asymmetric pads.
        (3, 6, 3, 3, [1, 1], [0, 1, 2, 0], [6, 5]),
        // ShuffleNet's grouped 1x1 and a grouped 3x3.
        (8, 4, 2, 1, [1, 1], [0; 4], [5, 5]),
        (4, 6, 2, 3, [1, 2], [1; 4], [7, 8]),
        // Rows wide enough for the vector interior (8 lanes on AVX2, 4 on
        // NEON) with a scalar rest: stride 1, stride 2, and a 5x5 kernel
        // whose stride-2 vectors must stop before the row's end.
        (4, 4, 4, 3, [1, 1], [1; 4], [3, 37]),
        (4, 4, 4, 3, [2, 2], [1; 4], [5, 41]),
        (2, 4, 2, 5, [2, 2], [2; 4], [5, 36]),
    ] {
        let graph = grouped_block(c, m, group, kernel, strides, pads, hw);
        let inputs = [lcg_input(graph.inputs[0].shape.clone(), 11)];
        let expected = run_reference(&graph, &inputs).unwrap();
        // ReLU6 bites on both sides, so an epilogue left out would show.
        let clipped = |v: f32| expected[0].data.iter().filter(|x| **x == v).count();
        assert!(clipped(0.0) > 0, "{:?}", expected[0].data);
        for target in ["host", "aarch64-linux-gnu"] {
            let actual = compile_and_run(&graph, target, (4, 8), true, 2, &inputs);
            assert_close(&actual, &expected);
        }
    }
}

/// At the graph level the block is one grouped conv: batch-norm folded
/// into its weight and bias, ReLU6 its epilogue.
#[test]
fn batch_norm_folds_into_a_grouped_conv_and_relu6_fuses() {
    let dir = tempfile::tempdir().unwrap();
    let graph = grouped_block(3, 6, 3, 3, [1, 1], [1; 4], [6, 6]);
    let path = dir.path().join("dw.onnx");
    grim_model::save_onnx(&graph, &path).unwrap();
    let text = String::from_utf8(grimc_stdout(&[
        "lower",
        path.to_str().unwrap(),
        "--compile-to",
        "graph",
    ]))
    .unwrap();
    assert_eq!(text.matches("\"grim.conv2d\"").count(), 1, "{text}");
    assert!(text.contains("group = 3 : i64"), "{text}");
    assert!(text.contains("activation = \"clip\""), "{text}");
    assert!(
        !text.contains("grim.batch_norm") && !text.contains("grim.clip"),
        "{text}"
    );
}

/// `grimc inspect` says why a depthwise conv is not BCR.
#[test]
fn inspect_says_a_grouped_conv_runs_the_direct_kernel() {
    let dir = tempfile::tempdir().unwrap();
    let graph = grouped_block(8, 8, 8, 3, [1, 1], [1; 4], [6, 6]);
    let path = dir.path().join("dw.onnx");
    grim_model::save_onnx(&graph, &path).unwrap();
    let report = grimc_json(&["inspect", "--json", path.to_str().unwrap()]);
    let layer = &report["layers"][0];
    assert_eq!(layer["kernel"], "dense", "{report}");
    assert!(
        layer["reason"]
            .as_str()
            .unwrap_or("")
            .contains("grouped (depthwise) conv"),
        "{report}"
    );
    // The weight matrix of one group: 8 rows, 1 * 3 * 3 columns.
    assert_eq!(layer["shape"], serde_json::json!([8, 9]), "{report}");
}

/// Inception's join: three branches of different widths (a conv, a
/// depthwise conv and a max pool) concatenated along the channels, then
/// a channel shuffle (Reshape to 5-D, Transpose, Reshape) as ShuffleNet
/// does, on the host and on aarch64.
#[test]
fn concat_of_branches_and_channel_shuffle_match_the_reference() {
    let (c, h, w) = (4, 6, 6);
    let mut graph = Graph {
        name: "join".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![1, c, h, w],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![1, 12, h, w],
        }],
        nodes: Vec::new(),
        initializers: Default::default(),
    };
    graph
        .initializers
        .insert("w1".into(), lcg_input(vec![4, c, 1, 1], 21));
    graph
        .initializers
        .insert("w2".into(), lcg_input(vec![c, 1, 3, 3], 22));
    let conv = |pads, group| Op::Conv {
        strides: [1, 1],
        pads,
        dilations: [1, 1],
        group,
    };
    let pool = grim_model::pool::Pool {
        kind: grim_model::pool::PoolKind::Max,
        kernel: [3, 3],
        strides: [1, 1],
        pads: [1; 4],
        dilations: [1, 1],
        ceil_mode: false,
        count_include_pad: false,
    };
    for (name, op, inputs, output) in [
        ("b1", conv([0; 4], 1), vec!["x", "w1"], "t1"),
        ("b2", conv([1; 4], 4), vec!["x", "w2"], "t2"),
        ("b3", Op::Pool(pool), vec!["x"], "t3"),
        ("join", Op::Concat { axis: 1 }, vec!["t1", "t2", "t3"], "j"),
        (
            "split",
            Op::Reshape {
                shape: vec![1, 3, 4, h as i64, w as i64],
            },
            vec!["j"],
            "s",
        ),
        (
            "shuffle",
            Op::Transpose {
                perm: vec![0, 2, 1, 3, 4],
            },
            vec!["s"],
            "u",
        ),
        (
            "merge",
            Op::Reshape {
                shape: vec![1, 12, h as i64, w as i64],
            },
            vec!["u"],
            "y",
        ),
    ] {
        graph.nodes.push(Node {
            name: name.into(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.into()],
        });
    }
    let inputs = [lcg_input(vec![1, c, h, w], 23)];
    let expected = run_reference(&graph, &inputs).unwrap();
    for target in ["host", "aarch64-linux-gnu"] {
        let actual = compile_and_run(&graph, target, (4, 8), true, 2, &inputs);
        assert_close(&actual, &expected);
    }
}

/// A weight nothing was pruned from runs dense whatever the BCR estimates
/// say, and `grimc inspect` says why: ResNet's 7x7 stride-2 stem at
/// 224x224, where the cost model estimates BCR 32x32 below dense.
#[test]
fn inspect_says_an_unpruned_weight_stays_dense() {
    let dir = tempfile::tempdir().unwrap();
    let weight = lcg_input(vec![64, 3 * 7 * 7], 5).data;
    let graph = grim_model::conv_layer(
        1,
        3,
        224,
        224,
        64,
        [7, 7],
        [2, 2],
        [3; 4],
        [1, 1],
        false,
        weight,
    )
    .unwrap();
    let path = dir.path().join("stem.onnx");
    grim_model::save_onnx(&graph, &path).unwrap();
    let report = grimc_json(&["inspect", "--json", path.to_str().unwrap()]);
    let layer = &report["layers"][0];
    assert_eq!(layer["kernel"], "dense", "{report}");
    let estimates = layer["estimates"].as_object().unwrap();
    let dense = estimates["dense"].as_f64().unwrap();
    let cheaper = estimates
        .values()
        .filter_map(|v| v.as_f64())
        .any(|ns| ns < dense);
    let reason = layer["reason"].as_str().unwrap_or("");
    let want = if cheaper {
        "because nothing is pruned"
    } else {
        "dense is estimated cheaper"
    };
    assert!(reason.contains(want), "{report}");
}
