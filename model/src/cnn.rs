//! The demo CNN: a small VGG/MobileNet-like network with every kind of
//! convolution grim compiles differently, BCR-pruned where real models are.
//!
//! `x[1,3,16,16] -> conv1 3x3 (16) -> relu -> conv2 3x3 stride 2 (32) ->
//! relu -> conv3 1x1 (64) -> relu -> flatten -> fc (10) -> y[1,10]`.
//! conv1 (3 input channels: too few weights to prune) and fc stay dense, so
//! they run the dense kernels (conv1 through the implicit im2col); conv2
//! (a strided 3x3, explicit im2col) and conv3 (pointwise, no im2col) are
//! BCR-pruned at block 8x16 with row keep 0.5 and column keep 0.25 (8x).

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bcrc::{bcr_project, BlockSize};
use crate::error::ModelError;
use crate::graph::{Graph, Node, Op, ValueInfo};
use crate::mlp::he_scale;
use crate::tensor::Tensor;

/// One conv layer of the demo: `(name, in, out, kernel, stride, pad, pruned)`.
type ConvSpec = (&'static str, usize, usize, usize, usize, usize, bool);

const CONVS: [ConvSpec; 3] = [
    ("conv1", 3, 16, 3, 1, 1, false),
    ("conv2", 16, 32, 3, 2, 1, true),
    ("conv3", 32, 64, 1, 1, 0, true),
];

/// The demo CNN (see the module docs), weights from `seed`.
pub fn demo_cnn(seed: u64) -> Graph {
    match cnn(seed) {
        Ok(graph) => graph,
        // The shapes are constants that every step accepts.
        Err(e) => unreachable!("demo_cnn parameters are valid: {e}"),
    }
}

fn cnn(seed: u64) -> Result<Graph, ModelError> {
    let block = BlockSize { rows: 8, cols: 16 };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut initializers = BTreeMap::new();
    let mut nodes = Vec::new();
    let mut cur = "x".to_string();
    let mut side = 16;
    for (name, cin, cout, kernel, stride, pad, pruned) in CONVS {
        let k = cin * kernel * kernel;
        let mut w: Vec<f32> = (0..cout * k)
            .map(|_| rng.gen_range(-1.0f32..=1.0))
            .collect();
        if pruned {
            // Pruned in the GEMM view [cout, cin*kh*kw], the matrix the kernels multiply.
            bcr_project(&mut w, cout, k, block, 0.5, 0.25)?;
        }
        he_scale(&mut w, k);
        let b: Vec<f32> = (0..cout).map(|_| rng.gen_range(-0.1f32..=0.1)).collect();
        let (wn, bn) = (format!("{name}.weight"), format!("{name}.bias"));
        initializers.insert(wn.clone(), Tensor::new(vec![cout, cin, kernel, kernel], w)?);
        initializers.insert(bn.clone(), Tensor::new(vec![cout], b)?);
        let (conv_out, relu_out) = (format!("{name}.out"), format!("{name}.relu"));
        nodes.push(Node {
            name: name.into(),
            op: Op::Conv {
                strides: [stride; 2],
                pads: [pad; 4],
                dilations: [1, 1],
                group: 1,
            },
            inputs: vec![cur, wn, bn],
            outputs: vec![conv_out.clone()],
        });
        nodes.push(Node {
            name: format!("{name}.relu"),
            op: Op::Relu,
            inputs: vec![conv_out],
            outputs: vec![relu_out.clone()],
        });
        cur = relu_out;
        side = (side + 2 * pad - kernel) / stride + 1;
    }
    let features = CONVS[CONVS.len() - 1].2 * side * side;
    nodes.push(Node {
        name: "flatten".into(),
        op: Op::Flatten { axis: 1 },
        inputs: vec![cur],
        outputs: vec!["features".into()],
    });
    let mut w: Vec<f32> = (0..10 * features)
        .map(|_| rng.gen_range(-1.0f32..=1.0))
        .collect();
    he_scale(&mut w, features);
    initializers.insert("fc.weight".into(), Tensor::new(vec![10, features], w)?);
    initializers.insert(
        "fc.bias".into(),
        Tensor::new(
            vec![10],
            (0..10).map(|_| rng.gen_range(-0.1f32..=0.1)).collect(),
        )?,
    );
    nodes.push(Node {
        name: "fc".into(),
        op: Op::LINEAR,
        inputs: vec!["features".into(), "fc.weight".into(), "fc.bias".into()],
        outputs: vec!["y".into()],
    });
    let graph = Graph {
        name: "demo_cnn".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![1, 3, 16, 16],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![1, 10],
        }],
        nodes,
        initializers,
    };
    graph.infer_shapes()?;
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reference::run_reference;

    #[test]
    fn pruned_where_documented_and_runs() {
        let graph = demo_cnn(1);
        let zeros = |name: &str| {
            let w = &graph.initializers[name];
            w.data.iter().filter(|v| **v == 0.0).count() as f64 / w.data.len() as f64
        };
        assert_eq!(zeros("conv1.weight"), 0.0);
        assert_eq!(zeros("fc.weight"), 0.0);
        // 8x: seven eighths of the pruned convs' weights are zero.
        for name in ["conv2.weight", "conv3.weight"] {
            assert!(
                (zeros(name) - 0.875).abs() < 0.01,
                "{name}: {}",
                zeros(name)
            );
        }
        let x = Tensor::fixed_seed(vec![1, 3, 16, 16], 3);
        let y = run_reference(&graph, &[x]).unwrap();
        assert_eq!(y[0].shape, vec![1, 10]);
        // He scaling keeps the logits O(1), neither vanishing nor exploding.
        let max = y[0].data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert!(max > 0.01 && max < 100.0, "{:?}", y[0].data);
    }
}
