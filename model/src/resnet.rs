//! A generated residual stack: the shape of a ResNet stage as PyTorch
//! exports it, for benchmarks and end-to-end tests of Conv + BatchNorm +
//! residual Add without downloading a model.
//!
//! `input[N, 3, S, S] -> stem (conv 3x3, bn, relu) -> blocks x basic block
//! -> output[N, C, S, S]`, where a basic block is `conv 3x3 -> bn -> relu ->
//! conv 3x3 -> bn -> Add(skip) -> relu` and every conv has stride 1, pad 1
//! and no bias (PyTorch convs followed by a batch norm have `bias=False`).
//! Node, value and weight names follow `torch.onnx.export` of a torchvision
//! ResNet (`/layer1/layer1.0/conv1/Conv`, `layer1.0.bn1.running_mean`, ...),
//! so tools that key on those names see what they would see in a real model.
//!
//! Conv weights are He-initialised (uniform with variance `2 / fan_in`).
//! With [`BcrPrune`], every conv but the stem (3 input channels: too few
//! weights to prune) is pruned the way users prune: the dense weight is
//! multiplied by a BCR mask in its GEMM view `[M, C*3*3]`, so pruned weights
//! that were negative are `-0.0`, as after numpy's `w *= mask`.
//!
//! Batch-norm scales and shifts are random (gamma in [0.5, 1.5], beta in
//! [-0.2, 0.2]), but the running statistics are *calibrated*: random running
//! means and variances would make activations explode or die out after a few
//! blocks, and then any output comparison is meaningless. While the graph is
//! built, the reference interpreter runs each new node on a small random
//! calibration input (batch 1, at most 16x16, so generation stays fast), and
//! each batch norm's running mean and variance are set to the per-channel
//! mean and (population) variance of its input there, as a trained network's
//! statistics would be. Activations then stay O(1) through the whole stack.

use crate::bcrc::BlockSize;
use crate::error::ModelError;
use crate::graph::{Graph, Op};
use crate::zoo::builder::{Builder, Conv};

pub use crate::zoo::BcrPrune;

/// What [`residual_stack`] generates.
#[derive(Debug, Clone, PartialEq)]
pub struct ResidualStack {
    /// Number of basic blocks after the stem (0 gives the stem alone).
    pub blocks: usize,
    /// Channels of the stem output and every block.
    pub channels: usize,
    /// Height and width of the input (and of every activation: all convs
    /// keep the size).
    pub size: usize,
    /// Batch size of the input.
    pub batch: usize,
    /// BCR pruning of every conv but the stem, or `None` for dense weights.
    pub prune: Option<BcrPrune>,
    /// Seed of all weights and of the calibration input.
    pub seed: u64,
}

impl ResidualStack {
    /// A ResNet-18/34 first stage of `blocks` basic blocks: 64 channels at
    /// 56x56, batch 1, pruned at block 8x16 keeping 4 of 8 rows and 4 of 16
    /// columns per block (an eighth of the weights), seed 0.
    pub fn resnet_stage(blocks: usize) -> Self {
        ResidualStack {
            blocks,
            channels: 64,
            size: 56,
            batch: 1,
            prune: Some(BcrPrune {
                block: BlockSize { rows: 8, cols: 16 },
                row_keep: 0.5,
                col_keep: 0.25,
            }),
            seed: 0,
        }
    }
}

/// The residual stack `spec` describes (see the module docs).
///
/// # Panics
///
/// If [`try_residual_stack`] rejects `spec` (a zero channel count, size or
/// batch, or an invalid [`BcrPrune`]).
pub fn residual_stack(spec: &ResidualStack) -> Graph {
    match try_residual_stack(spec) {
        Ok(graph) => graph,
        Err(e) => panic!("invalid residual stack {spec:?}: {e}"),
    }
}

/// The residual stack `spec` describes, or an error if `channels`, `size`
/// or `batch` is 0, or the pruning block or keeps are invalid.
pub fn try_residual_stack(spec: &ResidualStack) -> Result<Graph, ModelError> {
    if spec.channels == 0 || spec.size == 0 || spec.batch == 0 {
        return Err(ModelError::Shape {
            node: "input".into(),
            message: format!(
                "a residual stack needs channels, size and batch >= 1, got {}, {} and {}",
                spec.channels, spec.size, spec.batch
            ),
        });
    }
    if let Some(p) = &spec.prune {
        p.validate()?;
    }
    let cal_side = spec.size.min(16);
    let mut b = Builder::new(spec.seed, spec.prune, Some(vec![1, 3, cal_side, cal_side]));
    let c = spec.channels;
    let conv_bn = |b: &mut Builder,
                   module: &str,
                   params: &str,
                   names: [&str; 2],
                   input: &str,
                   cin: usize,
                   pruned: bool| {
        let h = b.conv(Conv {
            module: &format!("{module}/{}", names[0]),
            params: &format!("{params}.{}", names[0]),
            input,
            channels: [cin, c],
            kernel: 3,
            stride: 1,
            group: 1,
            bias: false,
            pruned,
        })?;
        b.batch_norm(
            &format!("{module}/{}", names[1]),
            &format!("{params}.{}", names[1]),
            &h,
            c,
        )
    };

    let h = conv_bn(&mut b, "/stem", "stem", ["conv", "bn"], "input", 3, false)?;
    let mut cur = b.push("/stem/relu/Relu", Op::Relu, &[&h])?;
    for i in 0..spec.blocks {
        let (module, params) = (format!("/layer1/layer1.{i}"), format!("layer1.{i}"));
        let pruned = spec.prune.is_some();
        let h = conv_bn(&mut b, &module, &params, ["conv1", "bn1"], &cur, c, pruned)?;
        let h = b.push(&format!("{module}/relu/Relu"), Op::Relu, &[&h])?;
        let h = conv_bn(&mut b, &module, &params, ["conv2", "bn2"], &h, c, pruned)?;
        let h = b.push(&format!("{module}/Add"), Op::Add, &[&h, &cur])?;
        cur = b.push(&format!("{module}/relu_1/Relu"), Op::Relu, &[&h])?;
    }

    let (n, s) = (spec.batch, spec.size);
    b.finish("residual_stack", vec![n, 3, s, s], &cur, vec![n, c, s, s])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bcrc::stored_values;
    use crate::reference::run_reference;
    use crate::tensor::Tensor;
    use crate::zoo::builder::TEST_CALIBRATION_SALT as CALIBRATION_SALT;

    /// A pruned stack small enough for debug-build tests: 16 channels make
    /// the GEMM view [16, 144], a whole number of 8x16 blocks.
    fn small(blocks: usize) -> ResidualStack {
        ResidualStack {
            blocks,
            channels: 16,
            size: 12,
            batch: 2,
            ..ResidualStack::resnet_stage(blocks)
        }
    }

    fn conv_weights(g: &Graph) -> Vec<(&str, &Tensor)> {
        g.nodes
            .iter()
            .filter(|n| n.op.op_type() == "Conv")
            .map(|n| (n.inputs[1].as_str(), &g.initializers[&n.inputs[1]]))
            .collect()
    }

    #[test]
    fn structure_and_names() {
        let g = residual_stack(&small(2));
        assert_eq!(g.nodes.len(), 3 + 7 * 2);
        let ops: Vec<&str> = g.nodes.iter().map(|n| n.op.op_type()).collect();
        let block = ["Conv", "BatchNormalization", "Relu"];
        let basic = [
            "Conv",
            "BatchNormalization",
            "Relu",
            "Conv",
            "BatchNormalization",
            "Add",
            "Relu",
        ];
        let want: Vec<&str> = block
            .iter()
            .chain(basic.iter())
            .chain(basic.iter())
            .copied()
            .collect();
        assert_eq!(ops, want);
        let names: Vec<&str> = g.nodes.iter().map(|n| n.name.as_str()).collect();
        assert_eq!(
            names[..10],
            [
                "/stem/conv/Conv",
                "/stem/bn/BatchNormalization",
                "/stem/relu/Relu",
                "/layer1/layer1.0/conv1/Conv",
                "/layer1/layer1.0/bn1/BatchNormalization",
                "/layer1/layer1.0/relu/Relu",
                "/layer1/layer1.0/conv2/Conv",
                "/layer1/layer1.0/bn2/BatchNormalization",
                "/layer1/layer1.0/Add",
                "/layer1/layer1.0/relu_1/Relu",
            ]
        );
        assert_eq!(names[16], "/layer1/layer1.1/relu_1/Relu");
        // The skip of block 1 is block 0's output; the last Relu is `output`.
        let add1 = &g.nodes[15];
        assert_eq!(
            add1.inputs,
            [
                "/layer1/layer1.1/bn2/BatchNormalization_output_0",
                "/layer1/layer1.0/relu_1/Relu_output_0"
            ]
        );
        assert_eq!(g.nodes[3].inputs[0], "/stem/relu/Relu_output_0");
        assert_eq!(g.nodes[16].outputs, ["output"]);
        assert_eq!(g.outputs[0].name, "output");
        assert_eq!(g.inputs[0].shape, [2, 3, 12, 12]);
        assert_eq!(g.outputs[0].shape, [2, 16, 12, 12]);
        // PyTorch weight names; no conv has a bias.
        assert_eq!(
            g.nodes[4].inputs,
            [
                "/layer1/layer1.0/conv1/Conv_output_0",
                "layer1.0.bn1.weight",
                "layer1.0.bn1.bias",
                "layer1.0.bn1.running_mean",
                "layer1.0.bn1.running_var",
            ]
        );
        assert!(g
            .nodes
            .iter()
            .filter(|n| n.op.op_type() == "Conv")
            .all(|n| n.inputs.len() == 2));
        let weights: Vec<&str> = conv_weights(&g).iter().map(|(n, _)| *n).collect();
        assert_eq!(
            weights,
            [
                "stem.conv.weight",
                "layer1.0.conv1.weight",
                "layer1.0.conv2.weight",
                "layer1.1.conv1.weight",
                "layer1.1.conv2.weight"
            ]
        );
        assert_eq!(g.initializers["stem.conv.weight"].shape, [16, 3, 3, 3]);
        assert_eq!(
            g.initializers["layer1.1.conv2.weight"].shape,
            [16, 16, 3, 3]
        );
        // 5 weights + 4 parameters for each of 5 batch norms.
        assert_eq!(g.initializers.len(), 5 + 4 * 5);
        // No blocks: the stem alone ends in `output`.
        let g = residual_stack(&small(0));
        assert_eq!(g.nodes.len(), 3);
        assert_eq!(g.nodes[2].outputs, ["output"]);
        // Seeded: the same spec gives the same graph, another seed another.
        assert_eq!(residual_stack(&small(1)), residual_stack(&small(1)));
        let other = ResidualStack {
            seed: 1,
            ..small(1)
        };
        assert_ne!(residual_stack(&other), residual_stack(&small(1)));
    }

    #[test]
    fn pruned_convs_are_mask_multiplied_bcr() {
        let spec = small(2);
        let block = spec.prune.unwrap().block;
        let g = residual_stack(&spec);
        let weights = conv_weights(&g);
        // The stem is dense (and no He draw is exactly zero).
        assert!(weights[0].1.data.iter().all(|&v| v != 0.0));
        for (name, w) in &weights[1..] {
            let (m, k) = (16, 16 * 9);
            // 4 of 8 rows x 4 of 16 columns: an eighth stored.
            assert_eq!(
                stored_values(&w.data, m, k, block).unwrap(),
                m * k / 8,
                "{name}"
            );
            let nonzeros = w.data.iter().filter(|&&v| v != 0.0).count();
            assert_eq!(
                nonzeros,
                m * k / 8,
                "{name}: kept sub-blocks are fully dense"
            );
            // Every block keeps exactly 4 rows and 4 columns.
            for r0 in (0..m).step_by(8) {
                for c0 in (0..k).step_by(16) {
                    let nz = |i: usize, j: usize| w.data[(r0 + i) * k + c0 + j] != 0.0;
                    let rows = (0..8).filter(|&i| (0..16).any(|j| nz(i, j))).count();
                    let cols = (0..16).filter(|&j| (0..8).any(|i| nz(i, j))).count();
                    assert_eq!((rows, cols), (4, 4), "{name} block ({r0}, {c0})");
                }
            }
            // Mask multiplication: negative pruned weights are -0.0 (about
            // half of the seven eighths pruned).
            let negative_zeros = w
                .data
                .iter()
                .filter(|v| v.to_bits() == (-0.0f32).to_bits())
                .count();
            assert!(
                negative_zeros > m * k / 4 && negative_zeros < m * k * 5 / 8,
                "{name}: {negative_zeros} -0.0 of {}",
                m * k
            );
        }
        // Patterns are drawn per conv, not shared.
        assert_ne!(
            weights[1]
                .1
                .data
                .iter()
                .map(|&v| v != 0.0)
                .collect::<Vec<_>>(),
            weights[2]
                .1
                .data
                .iter()
                .map(|&v| v != 0.0)
                .collect::<Vec<_>>()
        );
        // Unpruned: no zeros anywhere.
        let dense = residual_stack(&ResidualStack {
            prune: None,
            ..small(1)
        });
        for (name, w) in conv_weights(&dense) {
            assert!(w.data.iter().all(|&v| v != 0.0), "{name}");
        }
    }

    /// Finite, O(1) spread and Relu kept a good part alive.
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

    #[test]
    fn calibrated_activations_stay_healthy() {
        let spec = ResidualStack {
            size: 20,
            ..small(4)
        };
        let g = residual_stack(&spec);
        // A different input than the calibration one, at the generated size.
        let x = Tensor::fixed_seed(vec![2, 3, 20, 20], 77);
        let y = run_reference(&g, &[x]).unwrap();
        assert_eq!(y[0].shape, [2, 16, 20, 20]);
        assert_healthy(&y[0]);
        // The running statistics are the calibration moments, not defaults.
        let var = &g.initializers["layer1.3.bn2.running_var"];
        assert!(var.data.iter().all(|&v| v > 0.0) && var.data.iter().any(|&v| v != 1.0));
    }

    #[test]
    fn calibration_sets_moments_of_the_bn_input() {
        // At 16x16 with batch 1 the stack's input has the calibration
        // shape, so the stem bn's running statistics must be exactly the
        // moments of the stem conv's output on the calibration input.
        let spec = ResidualStack {
            blocks: 0,
            channels: 4,
            size: 16,
            batch: 1,
            prune: None,
            seed: 5,
        };
        let g = residual_stack(&spec);
        let x = Tensor::fixed_seed(vec![1, 3, 16, 16], spec.seed ^ CALIBRATION_SALT);
        let mut conv_only = g.clone();
        conv_only.nodes.truncate(1);
        conv_only.outputs[0].name = conv_only.nodes[0].outputs[0].clone();
        let h = run_reference(&conv_only, &[x]).unwrap().remove(0);
        for ch in 0..4 {
            let v = &h.data[ch * 256..][..256];
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / 256.0;
            let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / 256.0;
            let rm = g.initializers["stem.bn.running_mean"].data[ch] as f64;
            let rv = g.initializers["stem.bn.running_var"].data[ch] as f64;
            assert!((rm - mean).abs() < 1e-5 && (rv - var).abs() < 1e-5 * var.max(1.0));
        }
        for (name, lo, hi) in [("stem.bn.weight", 0.5, 1.5), ("stem.bn.bias", -0.2, 0.2)] {
            assert!(
                g.initializers[name]
                    .data
                    .iter()
                    .all(|v| (lo..=hi).contains(v)),
                "{name}"
            );
        }
    }

    #[test]
    fn onnx_round_trip_keeps_negative_zeros() {
        let g = residual_stack(&small(1));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("stack.onnx");
        crate::onnx::save_onnx(&g, &p).unwrap();
        let back = crate::onnx::load_onnx(&p).unwrap();
        assert_eq!(back, g);
        // PartialEq says -0.0 == 0.0; the bits must survive too.
        let bits = |t: &Tensor| t.data.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
        for (name, t) in &g.initializers {
            assert_eq!(bits(&back.initializers[name]), bits(t), "{name}");
        }
    }

    #[test]
    fn invalid_specs_are_errors() {
        let e = try_residual_stack(&ResidualStack {
            channels: 0,
            ..small(1)
        })
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("channels, size and batch >= 1") && e.contains("got 0, 12 and 2"),
            "{e}"
        );
        let mut spec = small(1);
        spec.prune = Some(BcrPrune {
            block: BlockSize { rows: 0, cols: 16 },
            row_keep: 0.5,
            col_keep: 0.5,
        });
        assert!(matches!(
            try_residual_stack(&spec),
            Err(ModelError::BlockSize { .. })
        ));
        spec.prune = Some(BcrPrune {
            block: BlockSize { rows: 8, cols: 16 },
            row_keep: 0.0,
            col_keep: 0.5,
        });
        let e = try_residual_stack(&spec).unwrap_err().to_string();
        assert!(e.contains("row_keep must be in (0, 1], got 0"), "{e}");
    }
}
