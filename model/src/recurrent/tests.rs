use super::*;
use crate::graph::{Graph, Op};
use crate::reference::run_reference;

fn single(r: &Recurrent, seq: usize, batch: usize, input: usize, seed: u64) -> (Graph, Tensor) {
    single_node(r, seq, batch, input, seed).expect("shapes")
}

/// A recurrent op of `cell` with its default activations.
fn recurrent(cell: Cell, direction: Direction, hidden: usize, optional: Optional) -> Recurrent {
    Recurrent {
        cell,
        direction,
        hidden_size: hidden,
        batch_major: false,
        clip: None,
        activations: (0..direction.count())
            .flat_map(|_| cell.default_activations())
            .collect(),
        sequence_lens: None,
        optional,
    }
}

fn gru(linear_before_reset: bool, direction: Direction, hidden: usize) -> Recurrent {
    let optional = Optional {
        bias: true,
        initial_h: true,
        ..Optional::default()
    };
    recurrent(
        Cell::Gru {
            linear_before_reset,
        },
        direction,
        hidden,
        optional,
    )
}

fn lstm(input_forget: bool, direction: Direction, hidden: usize) -> Recurrent {
    let optional = Optional {
        bias: true,
        initial_h: true,
        initial_c: true,
        peepholes: true,
    };
    recurrent(Cell::Lstm { input_forget }, direction, hidden, optional)
}

fn run(graph: &Graph, x: &Tensor) -> Vec<Tensor> {
    run_reference(graph, std::slice::from_ref(x)).expect("reference")
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn gru_one_unit_by_hand() {
    // H = I = 1, one step: every product is a scalar.
    let r = gru(false, Direction::Forward, 1);
    let (mut graph, _) = single(&r, 1, 1, 1, 1);
    let set = |g: &mut Graph, name: &str, data: Vec<f32>| {
        g.initializers.get_mut(name).expect(name).data = data
    };
    set(&mut graph, "W", vec![0.5, -1.0, 2.0]);
    set(&mut graph, "R", vec![0.25, 0.75, -0.5]);
    set(&mut graph, "B", vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6]);
    set(&mut graph, "initial_h", vec![0.8]);
    let x = Tensor {
        shape: vec![1, 1, 1],
        data: vec![1.5],
    };
    let (xv, h) = (1.5f64, 0.8f64);
    let z = sigmoid(0.5 * xv + 0.25 * h + 0.1 + 0.4);
    let rg = sigmoid(-1.0 * xv + 0.75 * h + 0.2 + 0.5);
    let n = (2.0 * xv + -0.5 * (rg * h) + 0.6 + 0.3).tanh();
    let want = (1.0 - z) * n + z * h;
    let out = run(&graph, &x);
    assert!(
        (out[0].data[0] as f64 - want).abs() < 1e-6,
        "{out:?} vs {want}"
    );
    assert_eq!(out[0].data, out[1].data, "Y_h is the last Y");
}

#[test]
fn linear_before_reset_changes_the_result() {
    let (g0, x) = single(&gru(false, Direction::Forward, 4), 3, 2, 3, 7);
    let (g1, _) = single(&gru(true, Direction::Forward, 4), 3, 2, 3, 7);
    let (a, b) = (run(&g0, &x), run(&g1, &x));
    assert_ne!(a[0].data, b[0].data);
}

/// Reversing a sequence and walking it forwards is the reverse walk.
#[test]
fn reverse_is_forward_on_the_flipped_sequence() {
    for r in [
        gru(true, Direction::Forward, 5),
        lstm(false, Direction::Forward, 5),
    ] {
        let (seq, batch, input) = (4, 2, 3);
        let (forward, x) = single(&r, seq, batch, input, 11);
        let mut reverse = forward.clone();
        if let Op::Recurrent(rr) = &mut reverse.nodes[0].op {
            rr.direction = Direction::Reverse;
        }
        let step = batch * input;
        let flipped = Tensor {
            shape: x.shape.clone(),
            data: (0..seq)
                .rev()
                .flat_map(|t| x.data[t * step..(t + 1) * step].to_vec())
                .collect(),
        };
        let (f, rv) = (run(&forward, &flipped), run(&reverse, &x));
        let hb = batch * r.hidden_size;
        for t in 0..seq {
            assert_eq!(
                rv[0].data[t * hb..(t + 1) * hb],
                f[0].data[(seq - 1 - t) * hb..(seq - t) * hb]
            );
        }
        assert_eq!(rv[1].data, f[1].data);
    }
}

#[test]
fn layout_1_is_layout_0_transposed() {
    let r = lstm(true, Direction::Bidirectional, 3);
    let (seq, batch, input) = (3, 2, 4);
    let (g0, x0) = single(&r, seq, batch, input, 3);
    let mut r1 = r.clone();
    r1.batch_major = true;
    let mut g1 = g0.clone();
    g1.nodes[0].op = Op::Recurrent(Box::new(r1));
    // initial states [D, B, H] -> [B, D, H]; X [T, B, I] -> [B, T, I].
    let (d, h) = (2, 3);
    for name in ["initial_h", "initial_c"] {
        let t = &g0.initializers[name];
        let mut data = vec![0.0; t.data.len()];
        for di in 0..d {
            for b in 0..batch {
                for j in 0..h {
                    data[(b * d + di) * h + j] = t.data[(di * batch + b) * h + j];
                }
            }
        }
        g1.initializers.insert(
            name.into(),
            Tensor {
                shape: vec![batch, d, h],
                data,
            },
        );
    }
    let mut x1 = vec![0.0; x0.data.len()];
    for t in 0..seq {
        for b in 0..batch {
            for i in 0..input {
                x1[(b * seq + t) * input + i] = x0.data[(t * batch + b) * input + i];
            }
        }
    }
    g1.inputs[0].shape = vec![batch, seq, input];
    let shapes = g1.infer_shapes().expect("shapes");
    for o in &mut g1.outputs {
        o.shape = shapes[&o.name].clone();
    }
    let (a, b) = (
        run(&g0, &x0),
        run(
            &g1,
            &Tensor {
                shape: vec![batch, seq, input],
                data: x1,
            },
        ),
    );
    for t in 0..seq {
        for di in 0..d {
            for bi in 0..batch {
                for j in 0..h {
                    assert_eq!(
                        a[0].data[((t * d + di) * batch + bi) * h + j],
                        b[0].data[((bi * seq + t) * d + di) * h + j]
                    );
                }
            }
        }
    }
}

#[test]
fn sequence_lens_stop_each_entry_and_zero_the_rest() {
    let mut r = gru(true, Direction::Bidirectional, 3);
    let (seq, batch) = (4, 2);
    let (full, x) = single(&r, seq, batch, 2, 5);
    r.sequence_lens = Some(vec![4, 2]);
    let mut short = full.clone();
    short.nodes[0].op = Op::Recurrent(Box::new(r));
    let (a, b) = (run(&full, &x), run(&short, &x));
    let at = |t: usize, d: usize, bi: usize| ((t * 2 + d) * batch + bi) * 3;
    for t in 0..seq {
        for d in 0..2 {
            // Entry 0 runs its whole sequence either way.
            assert_eq!(
                a[0].data[at(t, d, 0)..at(t, d, 0) + 3],
                b[0].data[at(t, d, 0)..at(t, d, 0) + 3]
            );
            if t >= 2 {
                assert_eq!(b[0].data[at(t, d, 1)..at(t, d, 1) + 3], [0.0; 3]);
            }
        }
    }
    // Entry 1's forward state is its step 1; its reverse walk starts at step 1.
    assert_eq!(b[1].data[3..6], b[0].data[at(1, 0, 1)..at(1, 0, 1) + 3]);
    assert_eq!(b[1].data[9..12], b[0].data[at(0, 1, 1)..at(0, 1, 1) + 3]);
    assert_ne!(
        b[0].data[at(1, 1, 1)..at(1, 1, 1) + 3],
        a[0].data[at(1, 1, 1)..at(1, 1, 1) + 3]
    );
}

#[test]
fn input_forget_and_clip_change_an_lstm() {
    let base = lstm(false, Direction::Forward, 4);
    let (g, x) = single(&base, 3, 1, 3, 9);
    let reference = run(&g, &x);
    let mut coupled = base.clone();
    coupled.cell = Cell::Lstm { input_forget: true };
    let mut clipped = base.clone();
    clipped.clip = Some(0.1);
    for variant in [coupled, clipped] {
        let mut g2 = g.clone();
        g2.nodes[0].op = Op::Recurrent(Box::new(variant));
        assert_ne!(run(&g2, &x)[0].data, reference[0].data);
    }
}

#[test]
fn shape_errors_name_the_operand() {
    let r = gru(false, Direction::Forward, 4);
    let (mut g, _) = single(&r, 2, 1, 3, 1);
    g.initializers.insert(
        "R".into(),
        Tensor {
            shape: vec![1, 12, 5],
            data: vec![0.0; 60],
        },
    );
    let e = g.infer_shapes().expect_err("bad R").to_string();
    assert!(e.contains("= [1, 12, 4], got [1, 12, 5]"), "{e}");
    let mut wrong_hidden = r.clone();
    wrong_hidden.hidden_size = 5;
    let (g, _) = single(&r, 2, 1, 3, 1);
    let mut g2 = g.clone();
    g2.nodes[0].op = Op::Recurrent(Box::new(wrong_hidden));
    let e = g2.infer_shapes().expect_err("hidden").to_string();
    assert!(
        e.contains("W must be [num_directions, 3 * hidden_size, input_size] = [1, 15, 3]"),
        "{e}"
    );
}

#[test]
fn onnx_round_trip_keeps_every_attribute() {
    let mut r = lstm(true, Direction::Bidirectional, 3);
    r.clip = Some(2.5);
    r.batch_major = true;
    r.activations = vec![
        RecurrentActivation::HardSigmoid {
            alpha: 0.3,
            beta: 0.4,
        },
        RecurrentActivation::Tanh,
        RecurrentActivation::LeakyRelu { alpha: 0.2 },
        RecurrentActivation::Sigmoid,
        RecurrentActivation::Relu,
        RecurrentActivation::Tanh,
    ];
    r.sequence_lens = Some(vec![2, 1]);
    r.optional.initial_c = false;
    let (mut g, x) = single(&r, 2, 2, 3, 4);
    g.nodes[0].outputs[1] = String::new();
    g.outputs.remove(1);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("rnn.onnx");
    crate::onnx::save_onnx(&g, &path).expect("save");
    let loaded = crate::onnx::load_onnx(&path).expect("load");
    assert_eq!(loaded.nodes, g.nodes);
    assert_eq!(run(&loaded, &x), run(&g, &x));
}
