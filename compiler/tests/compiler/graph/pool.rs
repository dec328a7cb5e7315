//! Pooling (MaxPool with padding and ceil_mode, AveragePool with and
//! without counted padding, GlobalAveragePool) after a BCR conv, compiled
//! for the host and for aarch64 (qemu), against the reference.

use crate::common::*;
use grim_model::{
    bcrc::random_bcr_weight,
    conv_layer,
    pool::{Pool, PoolKind},
    run_reference, BlockSize, Node, Op,
};

#[test]
fn pools_after_a_conv_match_the_reference_on_host_and_aarch64() {
    let weight = random_bcr_weight(8, 3 * 9, BlockSize::new(4, 8).unwrap(), 0.5, 0.5, 4);
    let conv = |tail: Vec<(Op, &str)>| {
        let mut graph = conv_layer(
            1,
            3,
            11,
            11,
            8,
            [3, 3],
            [1, 1],
            [1; 4],
            [1, 1],
            true,
            weight.clone(),
        )
        .unwrap();
        let mut last = "y".to_string();
        for (index, (op, name)) in tail.into_iter().enumerate() {
            let out = format!("p{index}");
            graph.nodes.push(Node {
                name: name.into(),
                op,
                inputs: vec![last.clone()],
                outputs: vec![out.clone()],
            });
            last = out;
        }
        let shapes = graph.infer_shapes().unwrap();
        graph.outputs[0].name = last.clone();
        graph.outputs[0].shape = shapes[&last].clone();
        graph
    };
    let pool = |kind, k, s, pads, ceil_mode, count_include_pad| {
        Op::Pool(Pool {
            kind,
            kernel: [k, k],
            strides: [s, s],
            pads,
            dilations: [1, 1],
            ceil_mode,
            count_include_pad,
        })
    };
    let cases = [
        // ResNet's stem pool shape: 3x3, stride 2, pad 1 (11 -> 6), then global.
        vec![
            (pool(PoolKind::Max, 3, 2, [1; 4], false, false), "maxpool"),
            (Op::GlobalPool(PoolKind::Average), "gap"),
        ],
        // Ceiled windows past the input, padding counted or not.
        vec![(
            pool(PoolKind::Average, 2, 2, [0, 0, 1, 1], true, false),
            "avg",
        )],
        vec![(
            pool(PoolKind::Average, 3, 2, [1, 0, 1, 0], true, true),
            "avg_pad",
        )],
        vec![(Op::GlobalPool(PoolKind::Max), "gmp")],
    ];
    let x = lcg_input(vec![1, 3, 11, 11], 8);
    for tail in cases {
        let graph = conv(tail);
        let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
        for target in ["host", "aarch64-linux-gnu"] {
            let actual = compile_and_run(&graph, target, (4, 8), true, 1, std::slice::from_ref(&x));
            assert_close(&actual, &expected);
        }
    }
}

/// Max pools on rows wide enough for the vector interior (8 lanes on
/// AVX2, 4 on NEON), with a scalar rest and borders: ResNet's 3x3 stride 2
/// pad 1, VGG's 2x2 stride 2, stride 1, a ceiled window and a dilated one.
/// The input holds negative values only in places, so a vector maximum
/// seeded wrongly (0 instead of -inf) or reading the wrong lanes shows.
#[test]
fn vectorised_max_pools_match_the_reference_on_host_and_aarch64() {
    let cases = [
        ([3, 3], [2, 2], [1; 4], [1, 1], false),
        ([2, 2], [2, 2], [0; 4], [1, 1], false),
        ([3, 3], [1, 1], [1; 4], [1, 1], false),
        ([3, 3], [2, 2], [0; 4], [1, 1], true),
        ([3, 3], [1, 1], [2; 4], [2, 2], false),
    ];
    let x = {
        let mut x = lcg_input(vec![1, 2, 9, 45], 21);
        // Rows of negatives only: a maximum seeded with 0 would be wrong.
        for v in x.data[..45 * 3].iter_mut() {
            *v = -v.abs() - 0.5;
        }
        x
    };
    for (kernel, strides, pads, dilations, ceil_mode) in cases {
        let op = Op::Pool(Pool {
            kind: PoolKind::Max,
            kernel,
            strides,
            pads,
            dilations,
            ceil_mode,
            count_include_pad: false,
        });
        let mut graph = grim_model::Graph {
            name: "maxpool".into(),
            inputs: vec![grim_model::ValueInfo {
                name: "x".into(),
                shape: x.shape.clone(),
            }],
            outputs: vec![grim_model::ValueInfo {
                name: "y".into(),
                shape: vec![],
            }],
            nodes: vec![Node {
                name: "pool".into(),
                op,
                inputs: vec!["x".into()],
                outputs: vec!["y".into()],
            }],
            initializers: Default::default(),
        };
        graph.outputs[0].shape = graph.infer_shapes().unwrap()["y"].clone();
        let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
        for target in ["host", "aarch64-linux-gnu"] {
            let actual = compile_and_run(&graph, target, (4, 8), true, 1, std::slice::from_ref(&x));
            assert_close(&actual, &expected);
        }
    }
}
