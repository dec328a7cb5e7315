//! Generated BCR-pruned MLPs (the demo model and test models of every size)
//! and single-convolution test models.
//!
//! Generated rather than shipped so that tests and the demo need no binary
//! fixtures and can vary shapes, block sizes and keeps freely.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bcrc::{bcr_project, BlockSize};
use crate::error::ModelError;
use crate::graph::{Graph, Node, Op, ValueInfo};
use crate::tensor::{checked_numel, Tensor};

/// The demo model: `x[1,256] -> fc1(512) -> relu -> fc2(512) -> relu -> fc3(10) -> y[1,10]`,
/// with fc1 and fc2 BCR-pruned at block 8x16, row_keep 0.5, col_keep 0.25
/// (8x compression) and fc3 dense.
pub fn demo_mlp(seed: u64) -> Graph {
    let block = BlockSize { rows: 8, cols: 16 };
    match mlp(1, &[256, 512, 512, 10], block, 0.5, 0.25, seed) {
        Ok(g) => g,
        // The arguments are constants that mlp() accepts.
        Err(e) => unreachable!("demo_mlp parameters are valid: {e}"),
    }
}

/// Rescales a pruned `[rows, k]` weight so each output has the variance He
/// initialisation gives a dense ReLU layer (`sum_k w^2 = 2` per row, averaged
/// over the rows that survived pruning): activations stay O(1) however
/// hard the layers are pruned.
pub(crate) fn he_scale(w: &mut [f32], k: usize) {
    let mut sum_sq = 0.0f64;
    let mut live_rows = 0usize;
    for row in w.chunks(k) {
        let s: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum();
        if s > 0.0 {
            sum_sq += s;
            live_rows += 1;
        }
    }
    if live_rows > 0 {
        let scale = (2.0 * live_rows as f64 / sum_sq).sqrt() as f32;
        w.iter_mut().for_each(|v| *v *= scale);
    }
}

/// A general MLP: input `x` of shape `[batch, dims[0]]`, Gemm layers `fc1`..
/// (weights `fcN.weight` of shape `[out, in]` with `transB = 1`, biases
/// `fcN.bias`), ReLU between layers, output `y` of shape `[batch, dims[last]]`.
///
/// Every layer but the last is BCR-projected with `block`, `row_keep` and
/// `col_keep`; the last stays dense (small classifier layers are not worth
/// pruning). Weights are rescaled after pruning so each output has the
/// variance He initialisation would give a dense layer, which keeps
/// activations O(1) however hard the layers are pruned.
pub fn mlp(
    batch: usize,
    dims: &[usize],
    block: BlockSize,
    row_keep: f64,
    col_keep: f64,
    seed: u64,
) -> Result<Graph, ModelError> {
    if dims.len() < 2 || batch == 0 || dims.contains(&0) {
        return Err(ModelError::Bcr {
            message: format!(
                "mlp needs batch > 0 and at least two non-zero dims, got batch {batch}, dims {dims:?}"
            ),
        });
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let mut initializers = BTreeMap::new();
    let mut nodes = Vec::new();
    let n_layers = dims.len() - 1;
    let mut cur = "x".to_string();
    for l in 0..n_layers {
        let (k, m) = (dims[l], dims[l + 1]);
        let name = format!("fc{}", l + 1);
        let mut w: Vec<f32> = (0..m * k).map(|_| rng.gen_range(-1.0f32..=1.0)).collect();
        if l + 1 < n_layers {
            bcr_project(&mut w, m, k, block, row_keep, col_keep)?;
        }
        he_scale(&mut w, k);
        let b: Vec<f32> = (0..m).map(|_| rng.gen_range(-0.1f32..=0.1)).collect();
        let (wn, bn) = (format!("{name}.weight"), format!("{name}.bias"));
        initializers.insert(wn.clone(), Tensor::new(vec![m, k], w)?);
        initializers.insert(bn.clone(), Tensor::new(vec![m], b)?);
        let out = if l + 1 == n_layers {
            "y".to_string()
        } else {
            format!("{name}.out")
        };
        nodes.push(Node {
            name: name.clone(),
            op: Op::LINEAR,
            inputs: vec![cur, wn, bn],
            outputs: vec![out.clone()],
        });
        cur = out;
        if l + 1 < n_layers {
            let relu_out = format!("relu{}.out", l + 1);
            nodes.push(Node {
                name: format!("relu{}", l + 1),
                op: Op::Relu,
                inputs: vec![cur],
                outputs: vec![relu_out.clone()],
            });
            cur = relu_out;
        }
    }
    Ok(Graph {
        name: "mlp".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![batch, dims[0]],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![batch, dims[n_layers]],
        }],
        nodes,
        initializers,
    })
}

/// `y = W x` in the kernels' own layout: input `x` of shape `[K, N]`,
/// output `y` of shape `[M, N]`, written as Transpose (`xt`), Gemm (`fc`,
/// weight `fc.weight` `[M, K]` = `w`, `transB = 1`, no bias), Transpose
/// (`yt`). A compiler that cancels the transposes against its gemm's reads
/// `x` and writes `y` in place; the kernel benchmark and the tests use it to
/// time and check exactly the matrix product a layer is.
pub fn kn_gemm(name: &str, m: usize, k: usize, n: usize, w: Vec<f32>) -> Result<Graph, ModelError> {
    let node = |name: &str, op: Op, inputs: &[&str], output: &str| Node {
        name: name.into(),
        op,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: vec![output.into()],
    };
    Ok(Graph {
        name: name.into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![k, n],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![m, n],
        }],
        nodes: vec![
            node("xt", Op::Transpose { perm: vec![1, 0] }, &["x"], "a"),
            node("fc", Op::LINEAR, &["a", "fc.weight"], "b"),
            node("yt", Op::Transpose { perm: vec![1, 0] }, &["b"], "y"),
        ],
        initializers: BTreeMap::from([("fc.weight".to_string(), Tensor::new(vec![m, k], w)?)]),
    })
}

/// One fully connected layer as PyTorch exports `nn.Linear(k, m, bias=False)`
/// on a batch of `n`: input `x` of shape `[N, K]`, a Gemm `fc` with weight
/// initializer `fc.weight` of shape `[M, K]` (`transB = 1`), output `y` of
/// shape `[N, M]`. `w` is the weight row-major, as the user's framework
/// holds it (so a mask-multiplied pruned weight keeps its `-0.0`s).
pub fn linear_layer(
    name: &str,
    m: usize,
    k: usize,
    n: usize,
    w: Vec<f32>,
) -> Result<Graph, ModelError> {
    Ok(Graph {
        name: name.into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![n, k],
        }],
        outputs: vec![ValueInfo {
            name: "y".into(),
            shape: vec![n, m],
        }],
        nodes: vec![Node {
            name: "fc".into(),
            op: Op::LINEAR,
            inputs: vec!["x".into(), "fc.weight".into()],
            outputs: vec!["y".into()],
        }],
        initializers: BTreeMap::from([("fc.weight".to_string(), Tensor::new(vec![m, k], w)?)]),
    })
}

/// Seed of the bias [`conv_layer`] generates, fixed so the same arguments
/// always give the same model.
const CONV_BIAS_SEED: u64 = 0xC0DE;

/// A one-node convolution model: input `x` of shape `[n, c, h, w]`, a Conv
/// node `conv` with weight initializer `w` of shape `[m, c, kernel[0],
/// kernel[1]]` holding `weight` (row-major), and, if `bias`, an initializer
/// `b` of shape `[m]` with [`Tensor::fixed_seed`] values; output `y` of shape
/// `[n, m, Ho, Wo]`.
///
/// The weight is passed in rather than generated so callers can hand in
/// pruned, patterned or hand-computed kernels. `strides`, `pads` (`[top,
/// left, bottom, right]`) and `dilations` mean what they mean in [`Op::Conv`].
///
/// Errors: a `weight` whose length is not `m*c*kh*kw` (a [`ModelError::Tensor`]
/// naming `w`), or shapes the Conv rejects (zero stride or dilation, empty
/// kernel, a kernel larger than the padded input: a [`ModelError::Shape`]
/// naming `conv`).
#[allow(clippy::too_many_arguments)] // mirrors the Conv attributes one to one
pub fn conv_layer(
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    m: usize,
    kernel: [usize; 2],
    strides: [usize; 2],
    pads: [usize; 4],
    dilations: [usize; 2],
    bias: bool,
    weight: Vec<f32>,
) -> Result<Graph, ModelError> {
    let w_shape = vec![m, c, kernel[0], kernel[1]];
    let need = checked_numel(&w_shape).ok_or_else(|| ModelError::Tensor {
        name: "w".into(),
        message: format!("weight shape {w_shape:?} has too many elements"),
    })?;
    if weight.len() != need {
        return Err(ModelError::Tensor {
            name: "w".into(),
            message: format!(
                "weight shape {w_shape:?} needs {need} values but {} were given",
                weight.len()
            ),
        });
    }
    let mut initializers = BTreeMap::new();
    initializers.insert("w".to_string(), Tensor::new(w_shape, weight)?);
    let mut inputs = vec!["x".to_string(), "w".to_string()];
    if bias {
        initializers.insert("b".to_string(), Tensor::fixed_seed(vec![m], CONV_BIAS_SEED));
        inputs.push("b".to_string());
    }
    let mut graph = Graph {
        name: "conv".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: vec![n, c, h, w],
        }],
        outputs: vec![],
        nodes: vec![Node {
            name: "conv".into(),
            op: Op::Conv {
                strides,
                pads,
                dilations,
                group: 1,
            },
            inputs,
            outputs: vec!["y".into()],
        }],
        initializers,
    };
    let mut shapes = graph.infer_shapes()?;
    let y_shape = shapes.remove("y").ok_or_else(|| ModelError::Shape {
        node: "conv".into(),
        message: "output 'y' was not inferred".into(),
    })?;
    graph.outputs.push(ValueInfo {
        name: "y".into(),
        shape: y_shape,
    });
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bcrc::{Bcrc, Order};
    use crate::reference::run_reference;

    #[test]
    fn demo_shapes_sparsity_and_scale() {
        let g = demo_mlp(1);
        g.validate().unwrap();
        assert_eq!(g.inputs[0].shape, vec![1, 256]);
        assert_eq!(g.outputs[0].shape, vec![1, 10]);
        assert_eq!(g, demo_mlp(1));
        assert_ne!(g, demo_mlp(2));
        let block = BlockSize::new(8, 16).unwrap();
        for (name, m, k) in [("fc1", 512, 256), ("fc2", 512, 512)] {
            let w = &g.initializers[&format!("{name}.weight")];
            assert_eq!(w.shape, vec![m, k]);
            let s = Bcrc::pack(&w.data, m, k, block, Order::Grouped)
                .unwrap()
                .stats();
            // Every 8x16 block keeps exactly 4 rows x 4 cols: 8x.
            assert_eq!(s.nonzeros, m * k / 8, "{name}");
            assert_eq!(s.fill, 1.0, "{name}");
        }
        let w3 = &g.initializers["fc3.weight"];
        assert!(w3.data.iter().all(|&v| v != 0.0), "fc3 is dense");

        let x = Tensor::new(
            vec![1, 256],
            (0..256)
                .map(|i| ((i * 37 % 101) as f32 / 50.0) - 1.0)
                .collect(),
        )
        .unwrap();
        let y = run_reference(&g, &[x]).unwrap();
        let max = y[0].data.iter().fold(0.0f32, |a, &v| a.max(v.abs()));
        assert!(
            max.is_finite() && max > 1e-2 && max < 1e2,
            "activations O(1): max |y| = {max}"
        );
    }

    #[test]
    fn general_mlp_and_errors() {
        let g = mlp(3, &[20, 9, 4], BlockSize::new(4, 4).unwrap(), 0.5, 0.5, 0).unwrap();
        g.validate().unwrap();
        assert_eq!(g.outputs[0].shape, vec![3, 4]);
        assert_eq!(g.nodes.len(), 3);
        assert!(mlp(1, &[4], BlockSize::new(4, 4).unwrap(), 0.5, 0.5, 0).is_err());
        assert!(
            mlp(1, &[4, 4], BlockSize::new(4, 4).unwrap(), 0.0, 0.5, 0).is_ok(),
            "last layer is not pruned"
        );
        assert!(mlp(1, &[4, 4, 4], BlockSize::new(4, 4).unwrap(), 0.0, 0.5, 0).is_err());
    }

    #[test]
    fn linear_layer_is_x_times_w_transposed() {
        // W = [[1, 2, 3], [-0.0, 5, 6]] (2 x 3), x = [[1, 0, -1]]: y = x W^T = [[-2, -6]].
        let g = linear_layer("lin", 2, 3, 1, vec![1.0, 2.0, 3.0, -0.0, 5.0, 6.0]).unwrap();
        g.validate().unwrap();
        assert_eq!(g.outputs[0].shape, vec![1, 2]);
        assert!(
            g.initializers["fc.weight"].data[3].is_sign_negative(),
            "-0.0 kept"
        );
        let x = Tensor::new(vec![1, 3], vec![1.0, 0.0, -1.0]).unwrap();
        assert_eq!(run_reference(&g, &[x]).unwrap()[0].data, vec![-2.0, -6.0]);
        assert!(linear_layer("lin", 2, 3, 1, vec![1.0; 5]).is_err());
    }

    #[test]
    fn conv_layer_shapes_and_errors() {
        // 7x6 input, 3x2 kernel, stride (2,1), pads (1,0,0,1), dilation (1,2):
        // Ho = (7+1+0-2-1)/2+1 = 3, Wo = (6+0+1-2-1)/1+1 = 5.
        let g = conv_layer(
            2,
            3,
            7,
            6,
            4,
            [3, 2],
            [2, 1],
            [1, 0, 0, 1],
            [1, 2],
            true,
            vec![0.5; 72],
        )
        .unwrap();
        g.validate().unwrap();
        assert_eq!(g.inputs[0].shape, vec![2, 3, 7, 6]);
        assert_eq!(g.outputs[0].shape, vec![2, 4, 3, 5]);
        assert_eq!(g.initializers["w"].shape, vec![4, 3, 3, 2]);
        assert_eq!(g.initializers["b"].shape, vec![4]);
        assert_eq!(g.nodes[0].name, "conv");
        assert_eq!(g.nodes[0].inputs, ["x", "w", "b"]);
        let same = conv_layer(
            2,
            3,
            7,
            6,
            4,
            [3, 2],
            [2, 1],
            [1, 0, 0, 1],
            [1, 2],
            true,
            vec![0.5; 72],
        );
        assert_eq!(same.unwrap(), g, "the bias is deterministic");

        let g = conv_layer(
            1,
            1,
            3,
            3,
            1,
            [1, 1],
            [1, 1],
            [0; 4],
            [1, 1],
            false,
            vec![2.0],
        )
        .unwrap();
        assert_eq!(g.nodes[0].inputs, ["x", "w"]);
        assert!(!g.initializers.contains_key("b"));

        let e = conv_layer(
            1,
            1,
            3,
            3,
            1,
            [2, 2],
            [1, 1],
            [0; 4],
            [1, 1],
            false,
            vec![1.0; 3],
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'w'") && e.contains("needs 4 values but 3"),
            "{e}"
        );
        let e = conv_layer(
            1,
            1,
            3,
            3,
            1,
            [4, 1],
            [1, 1],
            [0; 4],
            [1, 1],
            false,
            vec![1.0; 4],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'conv'") && e.contains("height"), "{e}");
        let e = conv_layer(
            1,
            1,
            3,
            3,
            1,
            [1, 1],
            [0, 1],
            [0; 4],
            [1, 1],
            false,
            vec![1.0],
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("'conv'") && e.contains("strides"), "{e}");
    }
}
