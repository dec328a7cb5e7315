//! The trainer's forward pass (candle) equals grim's reference interpreter
//! on every op family it trains: training must optimise the function the
//! compiled model computes.

use std::path::Path;

use grim_model::recurrent::{
    single_node, Cell, Direction, Optional, Recurrent, RecurrentActivation,
};
use grim_model::{run_reference, Architecture, Graph, Tensor, ZooModel};
use grim_prune::examples::Digits;
use grim_prune::{Loss, Trainer};

/// max |y - r| / max |r|.
fn relative_error(y: &[f32], r: &[f32]) -> f32 {
    let d = y
        .iter()
        .zip(r)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    d / r.iter().fold(0.0f32, |m, v| m.max(v.abs()))
}

fn check(graph: &Graph, x: &Tensor, what: &str) {
    let names: Vec<String> = graph.initializers.keys().cloned().collect();
    let trainer = Trainer::new(graph, Path::new(what), &names, Loss::Mse, 1).unwrap();
    let got = trainer.output(x).unwrap();
    let want = &run_reference(graph, std::slice::from_ref(x)).unwrap()[0];
    assert_eq!(got.shape, want.shape, "{what}");
    let e = relative_error(&got.data, &want.data);
    assert!(e <= 1e-4, "{what}: relative error {e}");
}

fn input(shape: Vec<usize>, seed: u64) -> Tensor {
    let n = shape.iter().product();
    Tensor::new(shape, grim_model::tensor::fixed_seed_values(seed, n)).unwrap()
}

#[test]
fn zoo_cnns_run_as_the_reference_runs_them() {
    // Batch norm, pools with pads, residual adds, clips, depthwise and
    // strided convs, global pooling, flatten, gemm.
    for architecture in [Architecture::ResNet18, Architecture::MobileNetV2] {
        let spec = ZooModel {
            size: 32,
            classes: 10,
            rate: None,
            ..ZooModel::new(architecture)
        };
        let graph = grim_model::zoo_model(&spec).unwrap();
        check(&graph, &input(vec![1, 3, 32, 32], 5), architecture.name());
    }
}

#[test]
fn digits_models_run_as_the_reference_runs_them() {
    for kind in [Digits::Mlp, Digits::Cnn, Digits::Gru] {
        let graph = kind.graph(11);
        check(
            &graph,
            &input(kind.input_shape(), 6),
            Digits::NAMES[kind as usize],
        );
    }
}

#[test]
fn recurrent_variants_run_as_the_reference_runs_them() {
    let all = Optional {
        bias: true,
        initial_h: true,
        initial_c: false,
        peepholes: false,
    };
    let mut cases = Vec::new();
    for lbr in [false, true] {
        for direction in [
            Direction::Forward,
            Direction::Reverse,
            Direction::Bidirectional,
        ] {
            let cell = Cell::Gru {
                linear_before_reset: lbr,
            };
            cases.push(Recurrent {
                cell,
                direction,
                hidden_size: 5,
                batch_major: lbr,
                clip: None,
                activations: (0..direction.count())
                    .flat_map(|_| cell.default_activations())
                    .collect(),
                sequence_lens: None,
                optional: all,
            });
        }
    }
    let lstm = Cell::Lstm {
        input_forget: false,
    };
    cases.push(Recurrent {
        cell: lstm,
        direction: Direction::Bidirectional,
        hidden_size: 4,
        batch_major: false,
        clip: Some(0.7),
        activations: (0..2).flat_map(|_| lstm.default_activations()).collect(),
        sequence_lens: None,
        optional: Optional {
            initial_c: true,
            peepholes: true,
            ..all
        },
    });
    cases.push(Recurrent {
        cell: Cell::Rnn,
        direction: Direction::Forward,
        hidden_size: 6,
        batch_major: false,
        clip: None,
        activations: vec![RecurrentActivation::LeakyRelu { alpha: 0.1 }],
        sequence_lens: None,
        optional: Optional::default(),
    });
    for (i, r) in cases.iter().enumerate() {
        let (mut graph, x) = single_node(r, 4, 1, 3, i as u64).unwrap();
        // Each output in turn (the trainer reads the first).
        for k in 0..graph.outputs.len() {
            let mut g = graph.clone();
            g.outputs = vec![graph.outputs[k].clone()];
            check(&g, &x, &format!("case {i} ({:?}) output {k}", r.cell));
        }
        graph.outputs.truncate(1);
    }
}

#[test]
fn pools_with_pads_and_ceil_mode_run_as_the_reference_runs_them() {
    use grim_model::pool::{Pool, PoolKind};
    use grim_model::{Node, Op, ValueInfo};
    for (kind, ceil_mode, count_include_pad) in [
        (PoolKind::Average, true, false),
        (PoolKind::Average, true, true),
        (PoolKind::Average, false, true),
        (PoolKind::Max, true, false),
    ] {
        let pool = Pool {
            kind,
            kernel: [3, 3],
            strides: [2, 2],
            pads: [1, 0, 1, 1],
            dilations: [1, 1],
            ceil_mode,
            count_include_pad,
        };
        let mut graph = Graph {
            name: "pool".into(),
            inputs: vec![ValueInfo {
                name: "x".into(),
                shape: vec![1, 2, 8, 7],
            }],
            outputs: vec![],
            nodes: vec![
                Node {
                    name: "p".into(),
                    op: Op::Pool(pool),
                    inputs: vec!["x".into()],
                    outputs: vec!["y".into()],
                },
                Node {
                    name: "s".into(),
                    op: Op::Softmax {
                        axis: 1,
                        axis_end: 4,
                    },
                    inputs: vec!["y".into()],
                    outputs: vec!["z".into()],
                },
            ],
            initializers: Default::default(),
        };
        let shapes = graph.infer_shapes().unwrap();
        graph.outputs = vec![ValueInfo {
            name: "y".into(),
            shape: shapes["y"].clone(),
        }];
        // Negative inputs: a max pool padded with zeros would differ.
        let mut x = input(vec![1, 2, 8, 7], 9);
        x.data.iter_mut().for_each(|v| *v -= 2.0);
        check(
            &graph,
            &x,
            &format!("{kind:?} ceil {ceil_mode} include {count_include_pad}"),
        );
        graph.outputs[0] = ValueInfo {
            name: "z".into(),
            shape: shapes["z"].clone(),
        };
        check(&graph, &x, &format!("softmax after {kind:?}"));
    }
}
