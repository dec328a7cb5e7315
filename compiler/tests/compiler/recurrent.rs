//! RNN, GRU and LSTM compiled against the reference interpreter: random
//! hidden and input sizes, sequence lengths (1 included), batches,
//! directions, layouts, sequence lengths per entry, optional operands,
//! block sizes and keep ratios, on the dense and the BCR kernels, on the
//! host and on aarch64 under qemu.

use crate::common::{assert_close, lcg_input, run_native};
use grim_compiler::driver::{self, Options};
use grim_model::{
    bcrc::random_bcr_weight,
    recurrent::{Cell, Direction, Optional, Recurrent},
    run_reference, save_onnx, BlockSize, Graph, Node, Op, Tensor, ValueInfo,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

/// One random recurrent layer.
#[derive(Debug, Clone)]
struct Case {
    cell: Cell,
    direction: Direction,
    batch_major: bool,
    hidden: usize,
    input: usize,
    seq: usize,
    batch: usize,
    lens: Option<Vec<usize>>,
    optional: Optional,
    clip: Option<f32>,
    bcr: bool,
    block: (usize, usize),
    keep: (f64, f64),
    seed: u64,
}

fn cases(max_hidden: usize, max_seq: usize) -> impl Strategy<Value = Case> {
    let cell = prop_oneof![
        Just(Cell::Rnn),
        any::<bool>().prop_map(|l| Cell::Gru {
            linear_before_reset: l
        }),
        any::<bool>().prop_map(|f| Cell::Lstm { input_forget: f }),
    ];
    let direction = prop_oneof![
        Just(Direction::Forward),
        Just(Direction::Reverse),
        Just(Direction::Bidirectional)
    ];
    (
        (cell, direction, any::<bool>()),
        (1..=max_hidden, 1..=12usize, 1..=max_seq, 1..=3usize),
        (any::<bool>(), any::<[bool; 4]>(), any::<bool>()),
        (
            any::<bool>(),
            prop::sample::select(vec![(4usize, 4usize), (8, 16), (4, 8)]),
            prop::sample::select(vec![(0.5f64, 0.5f64), (0.5, 0.25), (1.0, 0.5)]),
        ),
        any::<u64>(),
    )
        .prop_map(
            |(
                (cell, direction, batch_major),
                (hidden, input, seq, batch),
                (lens, opt, clip),
                (bcr, block, keep),
                seed,
            )| {
                let lstm = matches!(cell, Cell::Lstm { .. });
                let lens = lens.then(|| {
                    (0..batch)
                        .map(|b| 1 + (seed as usize / (b + 1)) % seq)
                        .collect()
                });
                Case {
                    cell,
                    direction,
                    batch_major,
                    hidden,
                    input,
                    seq,
                    batch,
                    lens,
                    optional: Optional {
                        bias: opt[0],
                        initial_h: opt[1],
                        initial_c: opt[2] && lstm,
                        peepholes: opt[3] && lstm,
                    },
                    clip: clip.then_some(0.7),
                    bcr,
                    block,
                    keep,
                    seed,
                }
            },
        )
}

/// The case's graph: X a graph input, everything else an initializer; W
/// and R BCR-structured (per direction) when the case runs the BCR kernel.
fn graph(case: &Case) -> (Graph, Tensor) {
    let (d, g, h) = (case.direction.count(), case.cell.gates(), case.hidden);
    let r = Recurrent {
        cell: case.cell,
        direction: case.direction,
        hidden_size: h,
        batch_major: case.batch_major,
        clip: case.clip,
        activations: (0..d)
            .flat_map(|_| case.cell.default_activations())
            .collect(),
        sequence_lens: case.lens.clone(),
        optional: case.optional,
    };
    let block = BlockSize::new(case.block.0, case.block.1).unwrap();
    let matrix = |rows: usize, cols: usize, seed: u64| -> Vec<f32> {
        (0..d)
            .flat_map(|dir| {
                let values = lcg_input(vec![rows * cols], seed + dir as u64).data;
                if case.bcr {
                    let pattern = random_bcr_weight(
                        rows,
                        cols,
                        block,
                        case.keep.0,
                        case.keep.1,
                        seed + 10 + dir as u64,
                    );
                    values
                        .iter()
                        .zip(pattern)
                        .map(|(v, p)| if p != 0.0 { *v } else { 0.0 })
                        .collect::<Vec<_>>()
                } else {
                    values
                }
            })
            .collect()
    };
    let state = if case.batch_major {
        vec![case.batch, d, h]
    } else {
        vec![d, case.batch, h]
    };
    let mut initializers = BTreeMap::new();
    let mut inputs = vec!["X".to_string()];
    let mut add = |name: &str, t: Tensor| {
        initializers.insert(name.to_string(), t);
        inputs.push(name.to_string());
    };
    let s = case.seed % 1000;
    add(
        "W",
        Tensor::new(vec![d, g * h, case.input], matrix(g * h, case.input, s)).unwrap(),
    );
    add(
        "R",
        Tensor::new(vec![d, g * h, h], matrix(g * h, h, s + 100)).unwrap(),
    );
    let o = case.optional;
    if o.bias {
        add("B", lcg_input(vec![d, 2 * g * h], s + 200));
    }
    if o.initial_h {
        add("initial_h", lcg_input(state.clone(), s + 300));
    }
    if o.initial_c {
        add("initial_c", lcg_input(state.clone(), s + 400));
    }
    if o.peepholes {
        add("P", lcg_input(vec![d, 3 * h], s + 500));
    }
    let x_shape = if case.batch_major {
        vec![case.batch, case.seq, case.input]
    } else {
        vec![case.seq, case.batch, case.input]
    };
    let names: Vec<String> = ["Y", "Y_h", "Y_c"][..case.cell.outputs()]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut graph = Graph {
        name: "recurrent".into(),
        inputs: vec![ValueInfo {
            name: "X".into(),
            shape: x_shape.clone(),
        }],
        outputs: vec![],
        nodes: vec![Node {
            name: "rnn".into(),
            op: Op::Recurrent(Box::new(r)),
            inputs,
            outputs: names.clone(),
        }],
        initializers,
    };
    let shapes = graph.infer_shapes().unwrap();
    graph.outputs = names
        .iter()
        .map(|n| ValueInfo {
            name: n.clone(),
            shape: shapes[n].clone(),
        })
        .collect();
    (graph, lcg_input(x_shape, s + 600))
}

fn check(case: &Case, target: &str, threads: usize) {
    let (graph, x) = graph(case);
    let expected = run_reference(&graph, std::slice::from_ref(&x)).unwrap();
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("model.onnx");
    save_onnx(&graph, &model).unwrap();
    let mut options = Options::new(&model, target);
    options.kernel = Some(if case.bcr { "bcr" } else { "dense" }.into());
    options.block = Some((case.block.0 as i64, case.block.1 as i64));
    let compiled = driver::compile(&options, true, true).unwrap_or_else(|e| panic!("{e}"));
    let bcr_level = crate::common::bcr_stage(&compiled);
    // The kernel asked for is the one that runs.
    assert_eq!(bcr_level.contains("\"bcr.spm"), case.bcr, "{case:?}");
    let actual = run_native(&compiled, work.path(), &[x], threads);
    assert_close(&actual, &expected);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 14, failure_persistence: None, .. ProptestConfig::default() })]

    /// Random recurrent layers equal the reference on the host, 1-2 threads.
    #[test]
    fn recurrent_matches_reference_on_host(case in cases(20, 5)) {
        check(&case, "host", 1 + (case.seed % 2) as usize);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, failure_persistence: None, .. ProptestConfig::default() })]

    /// The same under qemu-aarch64.
    #[test]
    fn recurrent_matches_reference_on_aarch64(case in cases(12, 3)) {
        check(&case, "aarch64-linux-gnu", 2);
    }
}

/// A speech-sized hidden layer (multiple strips and N tiles) on both
/// kernels: a 2-step GRU of 64 units in PyTorch's form, batch 4.
#[test]
fn wide_gru_matches_reference() {
    for bcr in [false, true] {
        let case = Case {
            cell: Cell::Gru {
                linear_before_reset: true,
            },
            direction: Direction::Forward,
            batch_major: false,
            hidden: 64,
            input: 40,
            seq: 2,
            batch: 4,
            lens: None,
            optional: Optional {
                bias: true,
                initial_h: true,
                ..Optional::default()
            },
            clip: None,
            bcr,
            block: (8, 16),
            keep: (0.5, 0.25),
            seed: 9,
        };
        check(&case, "host", 2);
    }
}

/// The gates' inline sigmoid and tanh (`fast_math.rs`) against f64: an RNN
/// of one unit with W = 1 and R = 0 outputs act(x) at every step; over
/// x from -100 to 100 (dense near 0) the absolute error stays within the
/// documented 3e-7, and sigmoid's relative error within 5e-7 down to
/// x = -80 (where it is exp's).
#[test]
fn gate_activations_are_within_their_documented_error() {
    use grim_model::recurrent::RecurrentActivation;
    let xs: Vec<f32> = (0..1200)
        .map(|i| {
            let u = i as f64 / 1199.0 * 2.0 - 1.0;
            (100.0 * u * u * u) as f32
        })
        .collect();
    let t = xs.len();
    for (activation, exact) in [
        (
            RecurrentActivation::Sigmoid,
            (|x: f64| 1.0 / (1.0 + (-x).exp())) as fn(f64) -> f64,
        ),
        (RecurrentActivation::Tanh, f64::tanh as fn(f64) -> f64),
    ] {
        let r = Recurrent {
            cell: Cell::Rnn,
            direction: Direction::Forward,
            hidden_size: 1,
            batch_major: false,
            clip: None,
            activations: vec![activation],
            sequence_lens: None,
            optional: Optional::default(),
        };
        let one = |v: f32| Tensor::new(vec![1, 1, 1], vec![v]).unwrap();
        let graph = Graph {
            name: "act".into(),
            inputs: vec![ValueInfo {
                name: "X".into(),
                shape: vec![t, 1, 1],
            }],
            outputs: vec![ValueInfo {
                name: "Y".into(),
                shape: vec![t, 1, 1, 1],
            }],
            nodes: vec![Node {
                name: "rnn".into(),
                op: Op::Recurrent(Box::new(r)),
                inputs: vec!["X".into(), "W".into(), "R".into()],
                outputs: vec!["Y".into(), String::new()],
            }],
            initializers: BTreeMap::from([("W".into(), one(1.0)), ("R".into(), one(0.0))]),
        };
        let work = tempfile::tempdir().unwrap();
        let model = work.path().join("model.onnx");
        save_onnx(&graph, &model).unwrap();
        let options = Options::new(&model, "host");
        let compiled = driver::compile(&options, true, true).unwrap_or_else(|e| panic!("{e}"));
        let x = Tensor::new(vec![t, 1, 1], xs.clone()).unwrap();
        let y = run_native(&compiled, work.path(), &[x], 1).remove(0);
        let (mut worst_abs, mut worst_rel) = (0.0f64, 0.0f64);
        for (&xv, &yv) in xs.iter().zip(&y.data) {
            let want = exact(xv as f64);
            let abs = (yv as f64 - want).abs();
            worst_abs = worst_abs.max(abs);
            if activation == RecurrentActivation::Sigmoid && (-80.0..=0.0).contains(&xv) {
                worst_rel = worst_rel.max(abs / want);
            }
        }
        assert!(
            worst_abs <= 3e-7,
            "{activation:?}: max abs error {worst_abs:e}"
        );
        assert!(
            worst_rel <= 5e-7,
            "{activation:?}: max rel error {worst_rel:e}"
        );
        eprintln!("{activation:?}: max abs error {worst_abs:e}, rel {worst_rel:e}");
    }
}
