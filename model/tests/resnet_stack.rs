//! The generated ResNet stage at its real size, through ONNX and the
//! reference interpreter.

use std::time::Instant;

use grim_model::bcrc::stored_values;
use grim_model::{load_onnx, residual_stack, run_reference, save_onnx, ResidualStack, Tensor};

/// Finite, O(1) spread, and Relu left at least a fifth of the outputs alive.
fn assert_healthy(y: &Tensor) {
    assert!(y.data.iter().all(|v| v.is_finite()));
    let n = y.data.len() as f64;
    let mean = y.data.iter().map(|&v| v as f64).sum::<f64>() / n;
    let std = (y
        .data
        .iter()
        .map(|&v| (v as f64 - mean).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let live = y.data.iter().filter(|&&v| v != 0.0).count() as f64 / n;
    assert!((0.1..10.0).contains(&std), "std {std}");
    assert!(live >= 0.2, "only {live} of the outputs are nonzero");
}

/// One basic block at ResNet size: cheap enough for a debug build.
#[test]
fn one_block_stage_round_trips_and_stays_healthy() {
    let spec = ResidualStack::resnet_stage(1);
    let g = residual_stack(&spec);
    assert_eq!(g.nodes.len(), 3 + 7);
    let block = spec.prune.unwrap().block;
    // [64, 576] is 8 x 36 blocks of 8x16, each storing 4 x 4.
    for name in ["layer1.0.conv1.weight", "layer1.0.conv2.weight"] {
        let w = &g.initializers[name];
        assert_eq!(w.shape, [64, 64, 3, 3]);
        assert_eq!(
            stored_values(&w.data, 64, 576, block).unwrap(),
            64 * 576 / 8
        );
        assert!(w.data.iter().any(|v| v.to_bits() == (-0.0f32).to_bits()));
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("stage.onnx");
    save_onnx(&g, &p).unwrap();
    assert_eq!(load_onnx(&p).unwrap(), g);
    let x = Tensor::fixed_seed(vec![1, 3, 56, 56], 11);
    let y = run_reference(&g, &[x]).unwrap();
    assert_eq!(y[0].shape, [1, 64, 56, 56]);
    assert_healthy(&y[0]);
}

/// The six-block stage the benchmarks compile: 13 convs of 64x56x56, about
/// 1.5 GMAC in the reference interpreter (the workspace builds grim-model
/// optimised in tests for this).
#[test]
fn six_block_stage_stays_healthy() {
    let started = Instant::now();
    let g = residual_stack(&ResidualStack::resnet_stage(6));
    let generated = started.elapsed();
    assert_eq!(g.nodes.len(), 3 + 7 * 6);
    let x = Tensor::fixed_seed(vec![1, 3, 56, 56], 12);
    let y = run_reference(&g, &[x]).unwrap();
    eprintln!(
        "resnet_stage(6): generated in {generated:?}, reference run in {:?}",
        started.elapsed() - generated
    );
    assert_healthy(&y[0]);
}
