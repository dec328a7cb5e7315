//! `grim_prune` end to end on files: projection structure, the LR file,
//! bad inputs (documented error, no output), and ADMM on the digits MLP.

use std::path::{Path, PathBuf};

use grim_model::onnx::to_proto;
use grim_model::{load_onnx, LrFile, Sparsity};
use grim_prune::examples::Digits;
use grim_prune::{prune, Method, PruneOptions, Schedule};
use npyz::WriterBuilder;
use prost::Message;

fn write_model(dir: &Path, kind: Digits) -> PathBuf {
    let path = dir.join("model.onnx");
    std::fs::write(&path, to_proto(&kind.graph(3)).encode_to_vec()).unwrap();
    path
}

fn options(model: &Path, out: &Path) -> PruneOptions {
    PruneOptions {
        model: model.to_path_buf(),
        output: out.to_path_buf(),
        lr_out: Some(out.with_extension("json")),
        rate: 8.0,
        block: "8x16".parse().unwrap(),
        auto: false,
        cost_target: "avx2".into(),
        method: None,
        data: None,
        val_data: None,
        loss: grim_prune::Loss::CrossEntropy,
        batch_axis: None,
        input_shapes: Default::default(),
        schedule: Schedule {
            quiet: true,
            ..Schedule::default()
        },
    }
}

fn write_npz(path: &Path, x: Option<(&[u64], Vec<f32>)>, y: Option<Vec<i64>>) {
    let mut npz = npyz::npz::NpzWriter::create(path).unwrap();
    if let Some((shape, data)) = x {
        let mut w = npz
            .array::<f32>("x", Default::default())
            .unwrap()
            .default_dtype()
            .shape(shape)
            .begin_nd()
            .unwrap();
        w.extend(data).unwrap();
        w.finish().unwrap();
    }
    if let Some(y) = y {
        let n = y.len() as u64;
        let mut w = npz
            .array::<i64>("y", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[n])
            .begin_nd()
            .unwrap();
        w.extend(y).unwrap();
        w.finish().unwrap();
    }
}

/// Per 8x16 block of a row-major matrix: (rows with a nonzero, columns
/// with a nonzero, nonzeros), counted from the values alone.
fn block_counts(w: &[f32], m: usize, k: usize) -> Vec<(usize, usize, usize)> {
    let mut out = Vec::new();
    for r0 in (0..m).step_by(8) {
        for c0 in (0..k).step_by(16) {
            let (br, bc) = (8.min(m - r0), 16.min(k - c0));
            let nz = |i: usize, j: usize| w[(r0 + i) * k + c0 + j] != 0.0;
            out.push((
                (0..br).filter(|&i| (0..bc).any(|j| nz(i, j))).count(),
                (0..bc).filter(|&j| (0..br).any(|i| nz(i, j))).count(),
                (0..br).map(|i| (0..bc).filter(|&j| nz(i, j)).count()).sum(),
            ));
        }
    }
    out
}

#[test]
fn projection_writes_bcr_weights_into_the_same_graph_and_an_lr_file() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), Digits::Mlp);
    let out = dir.path().join("pruned.onnx");
    let report = prune(&options(&model, &out), &mut |_| {}).unwrap();
    assert_eq!(report.layers.len(), 3);
    assert!((report.kept_fraction() - 0.125).abs() < 1e-9);
    let before = load_onnx(&model).unwrap();
    let after = load_onnx(&out).unwrap();
    assert_eq!(before.nodes, after.nodes);
    for (name, m, k) in [
        ("fc1.weight", 256, 64),
        ("fc2.weight", 128, 256),
        ("fc3.weight", 10, 128),
    ] {
        let w = &after.initializers[name].data;
        for (i, &(rows, cols, nz)) in block_counts(w, m, k).iter().enumerate() {
            let edge_rows = 8.min(m - (i / k.div_ceil(16)) * 8);
            let want_rows = (4 * edge_rows).div_ceil(8);
            assert_eq!(
                (rows, cols, nz),
                (want_rows, 4, want_rows * 4),
                "{name} block {i}"
            );
        }
        assert!(
            w.iter().all(|v| *v != 0.0 || v.to_bits() == 0),
            "{name}: -0.0 written"
        );
        // Kept values are the original ones.
        let orig = &before.initializers[name].data;
        assert!(w.iter().zip(orig).all(|(a, b)| *a == 0.0 || a == b));
    }
    // Biases are untouched without training.
    assert_eq!(
        before.initializers["fc1.bias"],
        after.initializers["fc1.bias"]
    );
    let lr = LrFile::load(&out.with_extension("json")).unwrap();
    assert_eq!(lr.layers.len(), 3);
    for l in &lr.layers {
        assert_eq!(
            l.sparsity,
            Sparsity::Bcr {
                block_rows: 8,
                block_cols: 16,
                row_keep: Some(0.5),
                col_keep: Some(0.25)
            }
        );
        assert!((l.rate.unwrap() - 8.0).abs() < 1e-9);
    }
}

#[test]
fn a_first_conv_too_small_for_the_block_stays_dense_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), Digits::Cnn);
    let out = dir.path().join("pruned.onnx");
    let report = prune(&options(&model, &out), &mut |_| {}).unwrap();
    let pruned: Vec<&str> = report.layers.iter().map(|l| l.node.as_str()).collect();
    assert_eq!(pruned, ["conv2", "fc1", "fc2"]);
    assert_eq!(report.skipped.len(), 1);
    assert_eq!(report.skipped[0].node, "conv1");
    assert!(
        report.skipped[0].reason.contains("16x9"),
        "{}",
        report.skipped[0].reason
    );
    let lr = LrFile::load(&out.with_extension("json")).unwrap();
    assert_eq!(lr.layer("conv1").unwrap().sparsity, Sparsity::Dense);
}

fn expect_error(options: &PruneOptions, needle: &str) {
    let err = prune(options, &mut |_| {}).expect_err("must fail");
    let text = err.to_string();
    assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    assert!(!options.output.exists(), "an output was written");
    assert!(
        !options.output.with_extension("json").exists(),
        "an LR file was written"
    );
}

#[test]
fn bad_inputs_are_documented_errors_without_output() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), Digits::Mlp);
    let out = dir.path().join("pruned.onnx");
    let base = options(&model, &out);

    expect_error(
        &PruneOptions {
            rate: 0.5,
            ..base.clone()
        },
        "--rate must be a number >= 1",
    );
    expect_error(
        &PruneOptions {
            method: Some(Method::Admm),
            ..base.clone()
        },
        "--data TRAIN.npz",
    );

    let data = |name: &str, x: Option<(&[u64], Vec<f32>)>, y: Option<Vec<i64>>| {
        let p = dir.path().join(name);
        write_npz(&p, x, y);
        PruneOptions {
            data: Some(p),
            ..base.clone()
        }
    };
    let ok_x = || Some((&[4u64, 64][..], vec![0.5f32; 4 * 64]));
    expect_error(
        &data("nox.npz", None, Some(vec![0, 1, 2, 3])),
        "has no array 'x'",
    );
    expect_error(&data("noy.npz", ok_x(), None), "has no array 'y'");
    expect_error(
        &data("range.npz", ok_x(), Some(vec![0, 1, 10, 3])),
        "label y[2] = 10 is out of range",
    );
    expect_error(
        &data(
            "shape.npz",
            Some((&[4, 63], vec![0.5; 4 * 63])),
            Some(vec![0, 1, 2, 3]),
        ),
        "'x' has shape [4, 63] but the model's input is [1, 64]",
    );
    expect_error(
        &PruneOptions {
            data: Some(dir.path().join("missing.npz")),
            ..base.clone()
        },
        "missing.npz: cannot read the archive",
    );
    expect_error(
        &PruneOptions {
            block: "64x64".parse().unwrap(),
            model: write_small(dir.path()),
            ..base.clone()
        },
        "nothing to prune",
    );
}

/// The digits MLP's 10x128 classifier alone: 10 rows never fit a 64x64
/// block.
fn write_small(dir: &Path) -> PathBuf {
    let mut g = Digits::Mlp.graph(1);
    g.nodes.retain(|n| n.name == "fc3");
    g.nodes[0].inputs[0] = "x".into();
    g.inputs[0].shape = vec![1, 128];
    g.outputs[0].name = g.nodes[0].outputs[0].clone();
    g.initializers.retain(|k, _| k.starts_with("fc3"));
    let path = dir.join("small.onnx");
    std::fs::write(&path, to_proto(&g).encode_to_vec()).unwrap();
    path
}

fn digits_dir() -> PathBuf {
    PathBuf::from(std::env::var("GRIM_DIGITS_DIR").expect(
        "GRIM_DIGITS_DIR is not set: run through `cargo xtask test`, or `cargo xtask digits` \
         and set it to target/digits",
    ))
}

#[test]
fn admm_on_the_digits_mlp_beats_one_shot_projection() {
    let digits = digits_dir();
    let dir = tempfile::tempdir().unwrap();
    let dense = dir.path().join("dense.onnx");
    let schedule = Schedule {
        epochs: 30,
        quiet: true,
        ..Schedule::default()
    };
    let train = digits.join("train-flat.npz");
    let val = digits.join("val-flat.npz");
    let acc = grim_prune::train_example(
        Digits::Mlp,
        &train,
        Some(&val),
        &schedule,
        &dense,
        &mut |_| {},
    )
    .unwrap();
    assert!(acc.accuracy.unwrap() > 0.93, "dense training: {acc}");
    let base = PruneOptions {
        data: Some(train),
        val_data: Some(val),
        ..options(&dense, &dir.path().join("admm.onnx"))
    };
    let admm = prune(
        &PruneOptions {
            schedule: Schedule {
                epochs: 10,
                finetune_epochs: 10,
                quiet: true,
                ..Schedule::default()
            },
            ..base.clone()
        },
        &mut |_| {},
    )
    .unwrap();
    let one_shot = prune(
        &PruneOptions {
            method: Some(Method::Project),
            output: dir.path().join("project.onnx"),
            schedule: Schedule {
                epochs: 0,
                quiet: true,
                ..Schedule::default()
            },
            ..base.clone()
        },
        &mut |_| {},
    )
    .unwrap();
    let (a, p) = (
        admm.pruned.unwrap().accuracy.unwrap(),
        one_shot.pruned.unwrap().accuracy.unwrap(),
    );
    assert!(a > p + 0.05, "admm {a} vs one-shot {p}");
    assert!((admm.kept_fraction() - 0.125).abs() < 1e-9);
    // Same seed, same weights.
    let again = prune(
        &PruneOptions {
            output: dir.path().join("again.onnx"),
            schedule: Schedule {
                epochs: 10,
                finetune_epochs: 10,
                quiet: true,
                ..Schedule::default()
            },
            ..base
        },
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(again.pruned, admm.pruned);
}

#[test]
fn auto_meets_the_overall_rate_within_two_percent_with_per_layer_choices() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), Digits::Cnn);
    let out = dir.path().join("auto.onnx");
    for rate in [4.0, 8.0, 16.0] {
        let report = prune(
            &PruneOptions {
                auto: true,
                rate,
                ..options(&model, &out)
            },
            &mut |_| {},
        )
        .unwrap();
        let fraction = report.kept_fraction();
        assert!(
            (fraction * rate - 1.0).abs() <= 0.02,
            "rate {rate}: kept {fraction}"
        );
        let rates: Vec<f64> = report
            .layers
            .iter()
            .map(|l| l.elements as f64 / l.kept as f64)
            .collect();
        assert!(
            rates.iter().any(|r| (r - rates[0]).abs() > 0.5),
            "rate {rate}: one rate for all {rates:?}"
        );
        for l in &report.layers {
            assert!(
                grim_model::cost::BLOCK_CANDIDATES.contains(&l.block),
                "{l:?}"
            );
        }
        let lr = LrFile::load(&out.with_extension("json")).unwrap();
        let total: f64 = report.layers.iter().map(|l| l.elements as f64).sum();
        let kept: f64 = lr
            .layers
            .iter()
            .filter_map(|l| {
                Some(report.layers.iter().find(|r| r.node == l.name)?.elements as f64 / l.rate?)
            })
            .sum();
        assert!(
            (kept / total * rate - 1.0).abs() <= 0.02,
            "LR rates disagree: {kept} of {total}"
        );
    }
}

#[test]
fn mse_targets_train_and_a_wrong_target_count_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = write_model(dir.path(), Digits::Mlp);
    let out = dir.path().join("pruned.onnx");
    let write = |name: &str, per: u64| {
        let p = dir.path().join(name);
        let mut npz = npyz::npz::NpzWriter::create(&p).unwrap();
        let n = 40u64;
        let mut w = npz
            .array::<f32>("x", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[n, 64])
            .begin_nd()
            .unwrap();
        w.extend((0..n * 64).map(|i| (i % 7) as f32 / 7.0)).unwrap();
        w.finish().unwrap();
        let mut w = npz
            .array::<f32>("y", Default::default())
            .unwrap()
            .default_dtype()
            .shape(&[n, per])
            .begin_nd()
            .unwrap();
        w.extend((0..n * per).map(|i| (i % 3) as f32)).unwrap();
        w.finish().unwrap();
        p
    };
    let base = PruneOptions {
        loss: grim_prune::Loss::Mse,
        schedule: Schedule {
            epochs: 2,
            finetune_epochs: 1,
            batch: 8,
            quiet: true,
            ..Schedule::default()
        },
        ..options(&model, &out)
    };
    let wrong = PruneOptions {
        data: Some(write("wrong.npz", 3)),
        ..base.clone()
    };
    expect_error(
        &wrong,
        "'y' has 3 targets per sample but the model outputs 10",
    );
    let right = PruneOptions {
        data: Some(write("right.npz", 10)),
        ..base
    };
    let report = prune(&right, &mut |_| {}).unwrap();
    let (d, p) = (report.dense.unwrap(), report.pruned.unwrap());
    assert!(d.accuracy.is_none() && p.loss.is_finite());
    assert!(out.exists());
}
