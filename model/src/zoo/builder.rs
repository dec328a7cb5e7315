//! The graph builder every generated model shares: PyTorch's export names,
//! He-initialised weights, BCR pruning by mask multiplication, and batch
//! norms whose running statistics are calibrated while the graph is built.
//!
//! Random running means and variances would make activations explode or
//! die out after a few layers, and then any output comparison is
//! meaningless. So, when calibration is on, the reference interpreter runs
//! each new node on a small random calibration input, and each batch norm's
//! running mean and variance are set to the per-channel mean and
//! (population) variance of its input there, as a trained network's
//! statistics would be. Models without batch norms (VGG) build without
//! calibration, which also lets their classifier's size follow the image
//! size.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::bcrc::{random_bcr_weight, BlockSize};
use crate::error::ModelError;
use crate::graph::{Graph, Node, Op, ValueInfo};
use crate::pool::{Pool, PoolKind};
use crate::reference::run_reference;
use crate::tensor::Tensor;

/// Mixed into the seed of the calibration input, so that it does not shift
/// with the number of weights drawn before it.
const CALIBRATION_SALT: u64 = 0x6361_6c69_6272_6174;

/// BCR pruning by mask multiplication: per block of a weight's GEMM view,
/// a random choice of `row_keep` of its rows and `col_keep` of its columns
/// (both rounded up) keeps its values; every other weight is multiplied by
/// zero, so the negative ones are `-0.0`, as after numpy's `w *= mask`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BcrPrune {
    /// Block shape in the GEMM view (`[M, C*kh*kw]` of a conv, `[out, in]`
    /// of a fully connected layer).
    pub block: BlockSize,
    /// Fraction of each block's rows kept, rounded up (in (0, 1]).
    pub row_keep: f64,
    /// Fraction of each block's columns kept, rounded up (in (0, 1]).
    pub col_keep: f64,
}

impl BcrPrune {
    /// An error unless the block is valid and both keeps are in (0, 1].
    pub fn validate(&self) -> Result<(), ModelError> {
        BlockSize::new(self.block.rows, self.block.cols)?;
        for (what, keep) in [("row_keep", self.row_keep), ("col_keep", self.col_keep)] {
            if !(keep > 0.0 && keep <= 1.0) {
                return Err(ModelError::Bcr {
                    message: format!("{what} must be in (0, 1], got {keep}"),
                });
            }
        }
        Ok(())
    }
}

/// One convolution for [`Builder::conv`].
pub(crate) struct Conv<'a> {
    /// The ONNX node's name without the trailing `/Conv`
    /// (`/layer1/layer1.0/conv1`).
    pub module: &'a str,
    /// The PyTorch parameter prefix (`layer1.0.conv1`).
    pub params: &'a str,
    /// The input value.
    pub input: &'a str,
    /// Input and output channels.
    pub channels: [usize; 2],
    /// Square kernel side.
    pub kernel: usize,
    /// Stride in both dims.
    pub stride: usize,
    /// Groups (the input channels for a depthwise conv).
    pub group: usize,
    /// A bias input (PyTorch convs followed by a batch norm have none).
    pub bias: bool,
    /// Multiplied by the BCR mask, if the builder prunes.
    pub pruned: bool,
}

/// The graph under construction and, when calibrating, the calibration
/// activation of every value computed so far.
pub(crate) struct Builder {
    rng: StdRng,
    prune: Option<BcrPrune>,
    nodes: Vec<Node>,
    initializers: BTreeMap<String, Tensor>,
    calibration: Option<BTreeMap<String, Tensor>>,
}

impl Builder {
    /// A builder drawing weights from `seed`, pruning with `prune` the
    /// layers asked to be pruned, and calibrating on a fixed-seed input of
    /// `calibration` shape named `input` (none: no calibration).
    pub fn new(seed: u64, prune: Option<BcrPrune>, calibration: Option<Vec<usize>>) -> Self {
        let calibration = calibration.map(|shape| {
            BTreeMap::from([(
                "input".to_string(),
                Tensor::fixed_seed(shape, seed ^ CALIBRATION_SALT),
            )])
        });
        Builder {
            rng: StdRng::seed_from_u64(seed),
            prune,
            nodes: Vec::new(),
            initializers: BTreeMap::new(),
            calibration,
        }
    }

    /// A calibration input shape for an image model at `size`: at most
    /// 64x64 (the naive reference stays fast), and enough images that a
    /// 32x downsampled activation still has 16 values per channel. With 4
    /// (one 32x32 image), a deep ResNet's last batch norms divide by
    /// variances that are small by chance, and a new input's logits come
    /// out 50 times too large.
    pub fn calibration_shape(size: usize) -> Vec<usize> {
        let side = size.min(64);
        let last = (side / 32).max(1);
        let batch = 16usize.div_ceil(last * last).clamp(1, 16);
        vec![batch, 3, side, side]
    }

    /// Appends node `name` computing `op` of `inputs` (values or
    /// initializers) into `{name}_output_0`, runs it on the calibration
    /// activations of its inputs when calibrating, and returns the output.
    pub fn push(&mut self, name: &str, op: Op, inputs: &[&str]) -> Result<String, ModelError> {
        let output = format!("{name}_output_0");
        let node = Node {
            name: name.to_string(),
            op,
            inputs: inputs.iter().map(|s| s.to_string()).collect(),
            outputs: vec![output.clone()],
        };
        if let Some(calibration) = &self.calibration {
            let mut one = Graph {
                name: name.to_string(),
                outputs: vec![ValueInfo {
                    name: output.clone(),
                    shape: vec![],
                }],
                ..Graph::default()
            };
            let mut values = Vec::new();
            for &input in inputs {
                if let Some(w) = self.initializers.get(input) {
                    one.initializers.insert(input.to_string(), w.clone());
                } else if !one.inputs.iter().any(|v| v.name == input) {
                    let t = calibration.get(input).ok_or_else(|| ModelError::Shape {
                        node: name.to_string(),
                        message: format!("input '{input}' is not defined before this node"),
                    })?;
                    one.inputs.push(ValueInfo {
                        name: input.to_string(),
                        shape: t.shape.clone(),
                    });
                    values.push(t.clone());
                }
            }
            one.nodes.push(node.clone());
            let out = run_reference(&one, &values)?.remove(0);
            if let Some(calibration) = &mut self.calibration {
                calibration.insert(output.clone(), out);
            }
        }
        self.nodes.push(node);
        Ok(output)
    }

    /// Adds initializer `name`.
    fn initializer(
        &mut self,
        name: &str,
        shape: Vec<usize>,
        data: Vec<f32>,
    ) -> Result<(), ModelError> {
        self.initializers
            .insert(name.to_string(), Tensor::new(shape, data)?);
        Ok(())
    }

    /// Appends `{module}/Conv` (pad `kernel / 2`, weight
    /// `{params}.weight`, bias `{params}.bias` in [-0.1, 0.1] if asked) and
    /// returns its output.
    pub fn conv(&mut self, c: Conv) -> Result<String, ModelError> {
        let [cin, cout] = c.channels;
        let k = cin / c.group * c.kernel * c.kernel;
        let weight = format!("{}.weight", c.params);
        let w = self.he_weight(cout, k, c.pruned);
        self.initializer(&weight, vec![cout, cin / c.group, c.kernel, c.kernel], w)?;
        let mut inputs = vec![c.input.to_string(), weight];
        if c.bias {
            let bias = format!("{}.bias", c.params);
            let b = (0..cout)
                .map(|_| self.rng.gen_range(-0.1f32..=0.1))
                .collect();
            self.initializer(&bias, vec![cout], b)?;
            inputs.push(bias);
        }
        let op = Op::Conv {
            strides: [c.stride; 2],
            pads: [c.kernel / 2; 4],
            dilations: [1, 1],
            group: c.group,
        };
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        self.push(&format!("{}/Conv", c.module), op, &inputs)
    }

    /// Appends `{module}/BatchNormalization` on `input` of `channels`
    /// channels (parameters `{params}.weight`, `.bias`, `.running_mean`,
    /// `.running_var`), its running statistics calibrated on its input.
    pub fn batch_norm(
        &mut self,
        module: &str,
        params: &str,
        input: &str,
        channels: usize,
    ) -> Result<String, ModelError> {
        let (mean, var) = match self.calibration.as_ref().and_then(|c| c.get(input)) {
            Some(t) => channel_moments(t),
            None => (vec![0.0; channels], vec![1.0; channels]),
        };
        let gamma = (0..channels)
            .map(|_| self.rng.gen_range(0.5f32..=1.5))
            .collect();
        let beta = (0..channels)
            .map(|_| self.rng.gen_range(-0.2f32..=0.2))
            .collect();
        let names =
            ["weight", "bias", "running_mean", "running_var"].map(|p| format!("{params}.{p}"));
        for (name, v) in names.iter().zip([gamma, beta, mean, var]) {
            self.initializer(name, vec![channels], v)?;
        }
        let inputs = [input, &names[0], &names[1], &names[2], &names[3]];
        self.push(
            &format!("{module}/BatchNormalization"),
            Op::BatchNormalization { epsilon: 1e-5 },
            &inputs,
        )
    }

    /// Appends a `{module}/Gemm` fully connected layer (`transB = 1`,
    /// weight `{params}.weight` `[out, in]` He-initialised like the convs,
    /// bias `{params}.bias` uniform in `±1/sqrt(in)`). PyTorch's own
    /// initialisation (`±1/sqrt(in)`, or VGG's N(0, 0.01)) shrinks the
    /// variance at every layer: VGG-16's logits would be nearly constant.
    pub fn linear(
        &mut self,
        module: &str,
        params: &str,
        input: &str,
        features: [usize; 2],
        pruned: bool,
    ) -> Result<String, ModelError> {
        let [fin, fout] = features;
        let a = 1.0 / (fin as f32).sqrt();
        let w = self.he_weight(fout, fin, pruned);
        let b = (0..fout).map(|_| self.rng.gen_range(-a..=a)).collect();
        let (weight, bias) = (format!("{params}.weight"), format!("{params}.bias"));
        self.initializer(&weight, vec![fout, fin], w)?;
        self.initializer(&bias, vec![fout], b)?;
        let op = Op::Gemm {
            alpha: 1.0,
            beta: 1.0,
            trans_a: false,
            trans_b: true,
        };
        self.push(&format!("{module}/Gemm"), op, &[input, &weight, &bias])
    }

    /// Appends a `{module}/MaxPool` of square `kernel`, `stride` and `pad`.
    pub fn max_pool(
        &mut self,
        module: &str,
        input: &str,
        kernel: usize,
        stride: usize,
        pad: usize,
    ) -> Result<String, ModelError> {
        let pool = Pool {
            kind: PoolKind::Max,
            kernel: [kernel; 2],
            strides: [stride; 2],
            pads: [pad; 4],
            dilations: [1, 1],
            ceil_mode: false,
            count_include_pad: false,
        };
        self.push(&format!("{module}/MaxPool"), Op::Pool(pool), &[input])
    }

    /// A row-major `[m, k]` He weight (variance `2 / k`), never exactly
    /// zero so that only pruning makes zeros. A pruned weight is drawn for
    /// the fan-in its kept values have (`k * row_keep * col_keep`), as
    /// retraining after pruning would scale it: otherwise each pruned layer
    /// shrinks the activations' variance by the rate, and a VGG-16 pruned
    /// 8x without batch norms would output nearly constant logits.
    fn he_weight(&mut self, m: usize, k: usize, pruned: bool) -> Vec<f32> {
        let kept = match (pruned, self.prune) {
            (true, Some(p)) => p.row_keep * p.col_keep,
            _ => 1.0,
        };
        let a = (6.0 / (k as f64 * kept)).sqrt() as f32;
        self.uniform_weight(m, k, a, pruned)
    }

    /// A row-major `[m, k]` weight uniform in `[-a, a]` and never zero;
    /// with `pruned` (and a pruning spec), multiplied by a BCR mask.
    fn uniform_weight(&mut self, m: usize, k: usize, a: f32, pruned: bool) -> Vec<f32> {
        let mut w: Vec<f32> = (0..m * k)
            .map(|_| loop {
                let v = self.rng.gen_range(-a..=a);
                if v != 0.0 {
                    break v;
                }
            })
            .collect();
        if let (true, Some(p)) = (pruned, self.prune) {
            // Only the pattern of random_bcr_weight is used: its nonzeros
            // are the kept positions.
            let pattern = random_bcr_weight(m, k, p.block, p.row_keep, p.col_keep, self.rng.gen());
            for (v, kept) in w.iter_mut().zip(pattern) {
                *v *= if kept != 0.0 { 1.0 } else { 0.0 };
            }
        }
        w
    }

    /// The finished graph `name` from `input` to `output` (renamed
    /// `output`, as `torch.onnx.export(..., output_names=["output"])`
    /// names it), validated.
    pub fn finish(
        mut self,
        name: &str,
        input: Vec<usize>,
        output: &str,
        output_shape: Vec<usize>,
    ) -> Result<Graph, ModelError> {
        for node in &mut self.nodes {
            for value in node.outputs.iter_mut().chain(node.inputs.iter_mut()) {
                if value == output {
                    *value = "output".to_string();
                }
            }
        }
        let graph = Graph {
            name: name.to_string(),
            inputs: vec![ValueInfo {
                name: "input".into(),
                shape: input,
            }],
            outputs: vec![ValueInfo {
                name: "output".into(),
                shape: output_shape,
            }],
            nodes: self.nodes,
            initializers: self.initializers,
        };
        graph.validate()?;
        Ok(graph)
    }
}

/// Per-channel (axis 1) mean and population variance of an NCHW tensor,
/// accumulated in f64.
pub(crate) fn channel_moments(t: &Tensor) -> (Vec<f32>, Vec<f32>) {
    let (n, c) = (t.shape[0], t.shape[1]);
    let inner: usize = t.shape[2..].iter().product();
    let count = (n * inner) as f64;
    let mut mean = vec![0.0f64; c];
    let mut var = vec![0.0f64; c];
    for (ch, (mu, sigma2)) in mean.iter_mut().zip(&mut var).enumerate() {
        let values = || (0..n).flat_map(move |b| t.data[(b * c + ch) * inner..][..inner].iter());
        *mu = values().map(|&v| v as f64).sum::<f64>() / count;
        *sigma2 = values().map(|&v| (v as f64 - *mu).powi(2)).sum::<f64>() / count;
    }
    let f32s = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (f32s(mean), f32s(var))
}

/// The calibration salt, for tests that recompute a calibration input.
#[cfg(test)]
pub(crate) const TEST_CALIBRATION_SALT: u64 = CALIBRATION_SALT;
