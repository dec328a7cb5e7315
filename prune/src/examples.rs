//! The digits examples: three small models for scikit-learn's 8x8 digits
//! (an MLP, a CNN, a row-sequential GRU), built with random He-scaled
//! weights and trained dense by the same engine that prunes them.

use std::collections::BTreeMap;

use grim_model::recurrent::{Cell, Direction, Optional, Recurrent};
use grim_model::{Graph, Node, Op, Tensor, ValueInfo};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which digits model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Digits {
    /// `[N, 64]` -> 256 -> 128 -> 10, ReLU.
    Mlp,
    /// `[N, 1, 8, 8]` -> conv 3x3 16 -> conv 3x3 32 -> max pool 2 -> 64 -> 10.
    Cnn,
    /// `[8, N, 8]` (8 rows of 8 pixels) -> GRU 64 -> 10.
    Gru,
}

impl Digits {
    /// The `grimc example --model` names.
    pub const NAMES: [&'static str; 3] = ["digits-mlp", "digits-cnn", "digits-gru"];

    /// The model of a `--model` name.
    pub fn named(name: &str) -> Option<Digits> {
        match name {
            "digits-mlp" => Some(Digits::Mlp),
            "digits-cnn" => Some(Digits::Cnn),
            "digits-gru" => Some(Digits::Gru),
            _ => None,
        }
    }

    /// The input shape at batch 1 (the samples' axis is 1 for the GRU).
    pub fn input_shape(self) -> Vec<usize> {
        match self {
            Digits::Mlp => vec![1, 64],
            Digits::Cnn => vec![1, 1, 8, 8],
            Digits::Gru => vec![8, 1, 8],
        }
    }

    /// The untrained model, weights drawn from `seed`.
    pub fn graph(self, seed: u64) -> Graph {
        let mut b = Builder {
            rng: StdRng::seed_from_u64(seed),
            nodes: Vec::new(),
            inits: BTreeMap::new(),
        };
        let out = match self {
            Digits::Mlp => {
                let h = b.linear("fc1", "x", 64, 256, true);
                let h = b.linear("fc2", &h, 256, 128, true);
                b.linear("fc3", &h, 128, 10, false)
            }
            Digits::Cnn => {
                let h = b.conv("conv1", "x", 1, 16);
                let h = b.conv("conv2", &h, 16, 32);
                b.nodes.push(node(
                    "pool",
                    Op::Pool(grim_model::pool::Pool {
                        kind: grim_model::pool::PoolKind::Max,
                        kernel: [2, 2],
                        strides: [2, 2],
                        pads: [0; 4],
                        dilations: [1, 1],
                        ceil_mode: false,
                        count_include_pad: false,
                    }),
                    vec![h],
                ));
                b.nodes.push(node(
                    "flatten",
                    Op::Flatten { axis: 1 },
                    vec!["pool.out".into()],
                ));
                let h = b.linear("fc1", "flatten.out", 32 * 16, 64, true);
                b.linear("fc2", &h, 64, 10, false)
            }
            Digits::Gru => {
                let hidden = 64;
                let w = b.he("gru.W", vec![1, 3 * hidden, 8], 8);
                let r = b.he("gru.R", vec![1, 3 * hidden, hidden], hidden);
                b.inits.insert(
                    "gru.B".into(),
                    Tensor {
                        shape: vec![1, 6 * hidden],
                        data: vec![0.0; 6 * hidden],
                    },
                );
                b.nodes.push(Node {
                    name: "gru".into(),
                    op: Op::Recurrent(Box::new(Recurrent {
                        cell: Cell::Gru {
                            linear_before_reset: true,
                        },
                        direction: Direction::Forward,
                        hidden_size: hidden,
                        batch_major: false,
                        clip: None,
                        activations: Cell::Gru {
                            linear_before_reset: true,
                        }
                        .default_activations(),
                        sequence_lens: None,
                        optional: Optional {
                            bias: true,
                            ..Optional::default()
                        },
                    })),
                    inputs: vec!["x".into(), w, r, "gru.B".into()],
                    outputs: vec![String::new(), "gru.h".into()],
                });
                b.nodes.push(node(
                    "squeeze",
                    Op::Reshape {
                        shape: vec![-1, hidden as i64],
                    },
                    vec!["gru.h".into()],
                ));
                b.linear("fc", "squeeze.out", hidden, 10, false)
            }
        };
        let nodes = b.nodes;
        Graph {
            name: Digits::NAMES[self as usize].replace('-', "_"),
            inputs: vec![ValueInfo {
                name: "x".into(),
                shape: self.input_shape(),
            }],
            outputs: vec![ValueInfo {
                name: out,
                shape: vec![1, 10],
            }],
            nodes,
            initializers: b.inits,
        }
    }
}

fn node(name: &str, op: Op, inputs: Vec<String>) -> Node {
    Node {
        name: name.into(),
        op,
        inputs,
        outputs: vec![format!("{name}.out")],
    }
}

struct Builder {
    rng: StdRng,
    nodes: Vec<Node>,
    inits: BTreeMap<String, Tensor>,
}

impl Builder {
    /// A He-scaled uniform weight of `fan_in` inputs per output.
    fn he(&mut self, name: &str, shape: Vec<usize>, fan_in: usize) -> String {
        let bound = (6.0 / fan_in as f32).sqrt();
        let n = shape.iter().product();
        let data = (0..n).map(|_| self.rng.gen_range(-bound..bound)).collect();
        self.inits.insert(name.into(), Tensor { shape, data });
        name.into()
    }

    /// A zero bias of `n` values.
    fn zeros(&mut self, name: &str, n: usize) -> String {
        let t = Tensor {
            shape: vec![n],
            data: vec![0.0; n],
        };
        self.inits.insert(name.into(), t);
        name.into()
    }

    fn linear(&mut self, name: &str, x: &str, k: usize, m: usize, relu: bool) -> String {
        let w = self.he(&format!("{name}.weight"), vec![m, k], k);
        let bias = self.zeros(&format!("{name}.bias"), m);
        self.nodes
            .push(node(name, Op::LINEAR, vec![x.into(), w, bias]));
        self.relu(name, relu)
    }

    fn conv(&mut self, name: &str, x: &str, c: usize, m: usize) -> String {
        let w = self.he(&format!("{name}.weight"), vec![m, c, 3, 3], c * 9);
        let bias = self.zeros(&format!("{name}.bias"), m);
        let op = Op::Conv {
            strides: [1, 1],
            pads: [1; 4],
            dilations: [1, 1],
            group: 1,
        };
        self.nodes.push(node(name, op, vec![x.into(), w, bias]));
        self.relu(name, true)
    }

    fn relu(&mut self, name: &str, relu: bool) -> String {
        let out = format!("{name}.out");
        if !relu {
            return out;
        }
        self.nodes
            .push(node(&format!("{name}.relu"), Op::Relu, vec![out]));
        format!("{name}.relu.out")
    }
}
