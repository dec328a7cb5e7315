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
