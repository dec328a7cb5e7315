//! Random small conv graphs (chains and diamonds of convs, batch norms,
//! activations and adds) through the graph passes, against the reference
//! interpreter on the unoptimised graph.

use super::save;

use crate::common::*;
use grim_compiler::driver::{self, Options};
use grim_model::{
    mask_multiplied_bcr_weight, run_reference, BlockSize, Graph, Node, Op, Tensor, ValueInfo,
};
use proptest::{prelude::*, test_runner::TestRunner};
use std::collections::BTreeMap;
/// An activation of the random graphs.
#[derive(Debug, Clone, Copy)]
enum Act {
    Relu,
    Clip6,
    LeakyRelu,
    Sigmoid,
    Tanh,
    HardSwish,
}

impl Act {
    /// The ONNX op (Clip with the ReLU6 bounds, LeakyRelu with slope 0.1).
    fn op(self) -> Op {
        match self {
            Act::Relu => Op::Relu,
            Act::Clip6 => Op::Clip {
                min: Some(0.0),
                max: Some(6.0),
            },
            Act::LeakyRelu => Op::LeakyRelu { alpha: 0.1 },
            Act::Sigmoid => Op::Sigmoid,
            Act::Tanh => Op::Tanh,
            Act::HardSwish => Op::HardSwish,
        }
    }
}

/// One step of a random graph. Shapes are resolved when the graph is built:
/// a conv inside a diamond keeps its input's shape (so the branches can be
/// added), elsewhere it takes `channels` and its pads.
#[derive(Debug, Clone)]
enum Layer {
    Conv {
        /// Output channels (outside diamonds).
        channels: usize,
        /// 1 or 3.
        kernel: usize,
        /// Top, left, bottom, right (outside diamonds; 0 or 1 each).
        pads: [usize; 4],
        bias: bool,
        /// BCR-pruned by mask multiplication (8x: 4x8 blocks keeping half
        /// the rows and a quarter of the columns), else dense.
        pruned: bool,
    },
    BatchNorm,
    Act(Act),
    /// `Add(left(x), right(x))` of two branches from the current value; an
    /// empty branch is `x` itself (a residual; both empty: `x + x`).
    Diamond {
        left: Vec<Layer>,
        right: Vec<Layer>,
    },
}

/// A random graph: input `[batch, channels, h, w]`, the layers in order,
/// then, if `head` is set, Flatten and a Gemm to that many outputs (pruned
/// or not).
#[derive(Debug, Clone)]
struct GraphCase {
    batch: usize,
    channels: usize,
    hw: (usize, usize),
    layers: Vec<Layer>,
    head: Option<(usize, bool)>,
    seed: u64,
}

/// Any of the activations.
fn acts() -> impl Strategy<Value = Act> {
    prop_oneof![
        Just(Act::Relu),
        Just(Act::Clip6),
        Just(Act::LeakyRelu),
        Just(Act::Sigmoid),
        Just(Act::Tanh),
        Just(Act::HardSwish),
    ]
}

/// Convs, batch norms and activations (no diamonds).
fn simple_layers() -> impl Strategy<Value = Layer> {
    let conv = (
        prop_oneof![4usize..12, 16usize..33],
        prop_oneof![Just(1usize), Just(3)],
        [0usize..2, 0..2, 0..2, 0..2],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(channels, kernel, pads, bias, pruned)| Layer::Conv {
            channels,
            kernel,
            pads,
            bias,
            pruned,
        });
    prop_oneof![
        3 => conv,
        1 => Just(Layer::BatchNorm),
        2 => acts().prop_map(Layer::Act),
    ]
}

/// Chains of simple layers and diamonds of them.
fn layers() -> impl Strategy<Value = Layer> {
    prop_oneof![
        3 => simple_layers(),
        1 => (
            proptest::collection::vec(simple_layers(), 0..3),
            proptest::collection::vec(simple_layers(), 0..2),
        )
            .prop_map(|(left, right)| Layer::Diamond { left, right }),
    ]
}

/// Random [`GraphCase`]s: batch 1-2, 1-4 or 8-16 input channels, images
/// 3-8 a side, 1-5 layers, a head half the time.
fn graph_cases() -> impl Strategy<Value = GraphCase> {
    (
        1usize..3,
        prop_oneof![1usize..5, 8usize..17],
        (3usize..9, 3usize..9),
        proptest::collection::vec(layers(), 1..6),
        proptest::option::of((1usize..20, any::<bool>())),
        0u64..1_000_000,
    )
        .prop_map(|(batch, channels, hw, layers, head, seed)| GraphCase {
            batch,
            channels,
            hw,
            layers,
            head,
            seed,
        })
}

/// Builds a [`GraphCase`]'s graph node by node, tracking the current value
/// and its shape `[N, C, H, W]`.
struct Builder {
    nodes: Vec<Node>,
    initializers: BTreeMap<String, Tensor>,
    seed: u64,
}

impl Builder {
    /// A fresh name with `prefix`, and the next weight seed.
    fn fresh(&mut self, prefix: &str) -> (String, u64) {
        self.seed += 1;
        (format!("{prefix}{}", self.nodes.len()), self.seed)
    }

    /// Appends node `name` computing `op` of `inputs`; returns its output.
    fn push(&mut self, name: &str, op: Op, inputs: Vec<String>) -> String {
        let output = format!("{name}.out");
        self.nodes.push(Node {
            name: name.to_string(),
            op,
            inputs,
            outputs: vec![output.clone()],
        });
        output
    }

    /// A `[rows, cols]` weight scaled to keep activations O(1): dense from
    /// the LCG, or mask-multiplied BCR (pruned values `-0.0` where negative).
    fn weight(&mut self, rows: usize, cols: usize, pruned: bool, seed: u64) -> Vec<f32> {
        let scale = (6.0 / cols as f32).sqrt();
        let w = if pruned {
            let block = BlockSize::new(4, 8).unwrap();
            mask_multiplied_bcr_weight(rows, cols, block, 0.5, 0.25, seed)
        } else {
            Tensor::fixed_seed(vec![rows * cols], seed).data
        };
        w.into_iter().map(|v| v * scale).collect()
    }

    /// Appends `layer` on value `x` of `shape`; returns the new current
    /// value and its shape (a conv in a diamond keeps the shape).
    fn layer(
        &mut self,
        layer: &Layer,
        x: String,
        shape: [usize; 4],
        in_diamond: bool,
    ) -> (String, [usize; 4]) {
        let [n, c, h, w] = shape;
        match layer {
            Layer::Conv {
                channels,
                kernel,
                pads,
                bias,
                pruned,
            } => {
                let (name, seed) = self.fresh("conv");
                let (m, pads) = if in_diamond {
                    (c, [kernel / 2; 4])
                } else if *kernel == 3 && (h + pads[0] + pads[2] < 3 || w + pads[1] + pads[3] < 3) {
                    // The kernel would not fit the padded image.
                    (*channels, [1; 4])
                } else {
                    (*channels, *pads)
                };
                let k = c * kernel * kernel;
                let weight = self.weight(m, k, *pruned, seed);
                let w_name = format!("{name}.weight");
                self.initializers.insert(
                    w_name.clone(),
                    Tensor::new(vec![m, c, *kernel, *kernel], weight).unwrap(),
                );
                let mut inputs = vec![x, w_name];
                if *bias {
                    let b_name = format!("{name}.bias");
                    let b = Tensor::fixed_seed(vec![m], seed ^ 0xb1a5);
                    self.initializers.insert(b_name.clone(), b);
                    inputs.push(b_name);
                }
                let op = Op::Conv {
                    strides: [1, 1],
                    pads,
                    dilations: [1, 1],
                    group: 1,
                };
                let out = self.push(&name, op, inputs);
                let ho = h + pads[0] + pads[2] - kernel + 1;
                let wo = w + pads[1] + pads[3] - kernel + 1;
                (out, [n, m, ho, wo])
            }
            Layer::BatchNorm => {
                let (name, seed) = self.fresh("bn");
                let values = |salt: u64, base: f32, spread: f32| {
                    let t = Tensor::fixed_seed(vec![c], seed ^ salt);
                    Tensor::new(vec![c], t.data.iter().map(|v| base + spread * v).collect())
                        .unwrap()
                };
                // Scale in [0.5, 1.5], shift and mean in [-0.5, 0.5],
                // variance in [0.5, 1.5]: activations stay O(1).
                let mut inputs = vec![x];
                for (param, tensor) in [
                    ("scale", values(1, 1.0, 0.5)),
                    ("bias", values(2, 0.0, 0.5)),
                    ("mean", values(3, 0.0, 0.5)),
                    ("var", values(4, 1.0, 0.5)),
                ] {
                    let p = format!("{name}.{param}");
                    self.initializers.insert(p.clone(), tensor);
                    inputs.push(p);
                }
                let op = Op::BatchNormalization { epsilon: 1e-5 };
                (self.push(&name, op, inputs), shape)
            }
            Layer::Act(act) => {
                let (name, _) = self.fresh("act");
                (self.push(&name, act.op(), vec![x]), shape)
            }
            Layer::Diamond { left, right } => {
                let mut branch = |layers: &[Layer]| {
                    let mut value = x.clone();
                    for layer in layers {
                        value = self.layer(layer, value, shape, true).0;
                    }
                    value
                };
                let (a, b) = (branch(left), branch(right));
                let (name, _) = self.fresh("add");
                (self.push(&name, Op::Add, vec![a, b]), shape)
            }
        }
    }
}

/// The graph of a case.
fn build(case: &GraphCase) -> Graph {
    let mut b = Builder {
        nodes: Vec::new(),
        initializers: BTreeMap::new(),
        seed: case.seed,
    };
    let input = [case.batch, case.channels, case.hw.0, case.hw.1];
    let (mut x, mut shape) = ("x".to_string(), input);
    for layer in &case.layers {
        (x, shape) = b.layer(layer, x, shape, false);
    }
    let mut output_shape = shape.to_vec();
    if let Some((outputs, pruned)) = case.head {
        let flat = b.push("flatten", Op::Flatten { axis: 1 }, vec![x]);
        let features = shape[1] * shape[2] * shape[3];
        let weight = b.weight(outputs, features, pruned, case.seed ^ 0x6ead);
        b.initializers.insert(
            "fc.weight".into(),
            Tensor::new(vec![outputs, features], weight).unwrap(),
        );
        b.initializers.insert(
            "fc.bias".into(),
            Tensor::fixed_seed(vec![outputs], case.seed),
        );
        let op = Op::LINEAR;
        x = b.push("fc", op, vec![flat, "fc.weight".into(), "fc.bias".into()]);
        output_shape = vec![shape[0], outputs];
    }
    Graph {
        name: "random".into(),
        inputs: vec![ValueInfo {
            name: "x".into(),
            shape: input.to_vec(),
        }],
        outputs: vec![ValueInfo {
            name: x,
            shape: output_shape,
        }],
        nodes: b.nodes,
        initializers: b.initializers,
    }
}

/// Builds one case's graph, compiles it for the host with the default
/// options (the graph passes on), runs it on 2 threads and asserts it equals
/// the reference interpreter on the graph as built (before any rewrite).
/// Returns each packed weight's name and whether it runs the BCR kernel.
fn check_graph_case(case: &GraphCase) -> Vec<(String, bool)> {
    let graph = build(case);
    let x = lcg_input(graph.inputs[0].shape.clone(), case.seed);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let model = save(&graph, work.path(), "random");
    let compiled = driver::compile(&Options::new(&model, "host"), true, true)
        .unwrap_or_else(|e| panic!("compile: {e}\n{graph:#?}"));
    let actual = run_native(&compiled, work.path(), std::slice::from_ref(&x), 2);
    assert_close(&actual, &expected);
    compiled
        .blob
        .layers
        .iter()
        .map(|l| (l.name.clone(), l.block.is_some()))
        .collect()
}

/// Random chains and diamonds of convs (1x1 or 3x3, pads, bias or not,
/// dense or BCR-pruned), batch norms, activations and residual Adds, with
/// sometimes a Flatten + Gemm head, compiled with the default options (the
/// graph passes rewrite them: batch norms folded, activations and adds
/// fused), equal the reference interpreter on the unrewritten graph.
#[test]
fn random_conv_graphs_match_reference_through_the_graph_passes() {
    // First a fixed graph on which the cost model must pick both kernels
    // (the BCR kernel for the pruned convs, the dense one for the dense
    // head: a random sample may happen to miss one), so that the mix of
    // kernels in one model is always exercised.
    let conv = |pruned| Layer::Conv {
        channels: 16,
        kernel: 3,
        pads: [1; 4],
        bias: false,
        pruned,
    };
    let fixed = GraphCase {
        batch: 1,
        channels: 8,
        hw: (8, 8),
        layers: vec![
            conv(true),
            Layer::BatchNorm,
            Layer::Act(Act::Relu),
            Layer::Diamond {
                left: vec![conv(true), Layer::BatchNorm],
                right: vec![],
            },
            Layer::Act(Act::HardSwish),
        ],
        head: Some((10, false)),
        seed: 1,
    };
    let kernels = check_graph_case(&fixed);
    let names: Vec<&str> = kernels.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["conv0.weight", "conv3.weight", "fc.weight"],
        "{kernels:?}"
    );
    assert!(kernels[0].1 && kernels[1].1 && !kernels[2].1, "{kernels:?}");

    let config = ProptestConfig {
        cases: 14,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    // A panic in a case fails it; the runner shrinks it and reports the
    // smallest failing case.
    let result = TestRunner::new(config).run(&graph_cases(), |case| {
        check_graph_case(&case);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
