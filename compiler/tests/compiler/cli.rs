//! grimc's commands as a user runs them: the error contract on bad inputs
//! (exit 1, a message naming the culprit, no output left behind) and
//! `grimc bench`.

use crate::common::*;
use grim_model::save_onnx;

#[test]
fn bad_inputs_give_documented_errors_and_no_output() {
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let out = dir.join("out");
    let out_str = out.to_str().unwrap();
    let good = dir.join("good.onnx");
    save_onnx(&grim_model::demo_mlp(1), &good).unwrap();

    // Truncated ONNX.
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.onnx");
    write(&truncated, &bytes[..bytes.len() / 3]);
    let (code, err) = grimc(&["compile", truncated.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("truncated.onnx"), "{err}");

    // Unknown op: the loader names the node and op type.
    let mut graph = grim_model::demo_mlp(1);
    let mut proto = grim_model::onnx::to_proto(&graph);
    if let Some(g) = proto.graph.as_mut() {
        g.node[1].op_type = "Softsign".into();
    }
    let unknown = dir.join("unknown.onnx");
    write(&unknown, &prost::Message::encode_to_vec(&proto));
    let (code, err) = grimc(&["compile", unknown.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("Softsign") && err.contains("relu1"), "{err}");

    // Shape mismatch: an fc2 weight whose K does not match fc1's output.
    let w = graph.initializers.get_mut("fc2.weight").unwrap();
    w.shape = vec![256, 1024];
    let mismatch = dir.join("mismatch.onnx");
    write(
        &mismatch,
        &prost::Message::encode_to_vec(&grim_model::onnx::to_proto(&graph)),
    );
    let (code, err) = grimc(&["compile", mismatch.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("fc2"), "{err}");

    // Malformed MLIR: file:line:col.
    let mlir = dir.join("bad.mlir");
    write(&mlir, b"func.func @f(%x: tensor<2xf32>) -> tensor<2xf32> {\n  %y = \"grim.relu\"(%x) : (tensor<2xf32>) -> tensor<3xf32>\n  return %y : tensor<3xf32>\n}\n");
    let (code, err) = grimc(&["compile", mlir.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.mlir:"), "{err}");
    write(&mlir, b"func.func @f( {\n");
    let (code, err) = grimc(&["compile", mlir.to_str().unwrap(), "-o", out_str]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.mlir:1:"), "{err}");

    // Malformed LR: file:line:col from the JSON parser; an unknown layer is named.
    let lr = dir.join("bad.lr.json");
    write(&lr, b"{\n  \"version\": 1,\n  \"layers\": [ { \"name\": \"fc1\", \"sparsity\": {\"kind\": \"bcr\", \"block_rows\": 8 } ]\n}\n");
    let (code, err) = grimc(&[
        "compile",
        good.to_str().unwrap(),
        "--lr",
        lr.to_str().unwrap(),
        "-o",
        out_str,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("bad.lr.json:3:"), "{err}");
    write(&lr, b"{\"version\": 1, \"layers\": [ { \"name\": \"nope\", \"sparsity\": {\"kind\": \"bcr\", \"block_rows\": 8, \"block_cols\": 8 } } ]}");
    let (code, err) = grimc(&[
        "compile",
        good.to_str().unwrap(),
        "--lr",
        lr.to_str().unwrap(),
        "-o",
        out_str,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("'nope'"), "{err}");

    // Missing file.
    let (code, err) = grimc(&[
        "compile",
        dir.join("missing.onnx").to_str().unwrap(),
        "-o",
        out_str,
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("missing.onnx"), "{err}");

    // None of the failures wrote anything.
    assert!(
        !out.exists() || std::fs::read_dir(&out).unwrap().next().is_none(),
        "a failed command left output behind"
    );

    // And the good model compiles with every artifact.
    let (code, err) = grimc(&[
        "compile",
        good.to_str().unwrap(),
        "--target",
        "aarch64-linux-gnu",
        "--emit",
        "obj,asm,llvm-ir,mlir,header,weights",
        "-o",
        out_str,
    ]);
    assert_eq!(code, 0, "{err}");
    for file in [
        "good.o",
        "good.s",
        "good.ll",
        "good.h",
        "good.weights",
        "good.input.mlir",
        "good.graph.mlir",
        "good.bcr.mlir",
        "good.loops.mlir",
        "good.llvm.mlir",
        "grim_runtime.h",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let header = std::fs::read_to_string(out.join("good.h")).unwrap();
    assert!(
        header.contains("grim_good_run_with_weights")
            && header.contains("GRIM_GOOD_INPUT0_SIZE 256"),
        "{header}"
    );
}

#[test]
fn bench_prints_json_with_latency_figures() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("bench.onnx");
    save_onnx(&grim_model::demo_mlp(3), &model).unwrap();
    let value = grimc_json(&[
        "bench",
        model.to_str().unwrap(),
        "--runs",
        "5",
        "--threads",
        "2",
        "--json",
    ]);
    let (median, min, max) = (
        value["median_ms"].as_f64().unwrap(),
        value["min_ms"].as_f64().unwrap(),
        value["max_ms"].as_f64().unwrap(),
    );
    assert!(0.0 < min && min <= median && median <= max, "{value}");
    assert_eq!(value["runs"], 5);
    assert_eq!(value["threads"], 2);
    assert!(
        value.get("layers").is_none(),
        "per-layer times only when asked: {value}"
    );

    // --per-layer: every layer of the MLP by its ONNX node name, each timed.
    let value = grimc_json(&[
        "bench",
        model.to_str().unwrap(),
        "--runs",
        "20",
        "--per-layer",
        "--json",
    ]);
    let layers = value["layers"].as_array().expect("a layers array");
    let names: Vec<&str> = layers.iter().map(|l| l["name"].as_str().unwrap()).collect();
    // The relus are fused into their gemms' epilogues: three layers run.
    assert_eq!(names, ["fc1", "fc2", "fc3"], "{value}");
    let times: Vec<f64> = layers
        .iter()
        .map(|l| l["mean_ms"].as_f64().unwrap())
        .collect();
    assert!(times.iter().all(|t| *t > 0.0), "{value}");
    // The per-layer times are parts of each run: their means cannot add up
    // to more than the mean run (1e-6: the printed precision).
    assert!(
        times.iter().sum::<f64>() <= value["mean_ms"].as_f64().unwrap() + 1e-5,
        "{value}"
    );
    // fc3 (10x512, dense) does far less work than fc1 and fc2 (512-wide).
    assert!(times[2] < times[0] && times[2] < times[1], "{value}");
    // Beside each time, the kernel chosen and the cost model's estimate, as
    // `grimc inspect` reports them.
    let report = grimc_json(&["inspect", "--json", model.to_str().unwrap()]);
    for (layer, row) in layers.iter().zip(report["layers"].as_array().unwrap()) {
        assert_eq!(layer["name"], row["layer"], "{value}");
        let ns = row["estimate_ns"].as_f64().unwrap();
        assert!(
            (layer["estimate_ms"].as_f64().unwrap() - ns / 1e6).abs() < 1e-9,
            "{value}"
        );
        assert!(layer["kernel"]
            .as_str()
            .unwrap()
            .starts_with(row["kernel"].as_str().unwrap()));
    }
    // The choice itself depends on the host's vector width (bcr for fc1 on
    // AVX2, dense on AVX-512); a BCR layer names its block.
    for layer in layers {
        let kernel = layer["kernel"].as_str().unwrap();
        assert!(
            kernel == "dense" || (kernel.starts_with("bcr ") && kernel.contains('x')),
            "{value}"
        );
    }
}

/// `grimc bench --keep DIR` leaves the runner it timed, with its inputs and
/// a `run.sh`, so that a profiler can rerun exactly that binary; the rerun
/// computes the model (its output equals the reference interpreter's).
#[test]
fn bench_keep_leaves_a_runner_that_reruns_the_model() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("keep.onnx");
    let graph = grim_model::demo_mlp(5);
    save_onnx(&graph, &model).unwrap();
    let keep = work.path().join("kept");
    let (code, stderr) = grimc(&[
        "bench",
        model.to_str().unwrap(),
        "--runs",
        "3",
        "--keep",
        keep.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    for file in ["model-runner", "model.o", "run.sh", "in0.raw"] {
        assert!(keep.join(file).is_file(), "no {file} in {keep:?}");
    }
    std::fs::remove_file(keep.join("out0.raw")).unwrap();
    let status = std::process::Command::new("sh")
        .arg(keep.join("run.sh"))
        .status()
        .unwrap();
    assert!(status.success());
    let floats = |name: &str| -> Vec<f32> {
        std::fs::read(keep.join(name))
            .unwrap()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect()
    };
    let input = grim_model::Tensor {
        shape: graph.inputs[0].shape.clone(),
        data: floats("in0.raw"),
    };
    let expected = grim_model::reference::run_reference(&graph, &[input]).unwrap();
    let got = floats("out0.raw");
    assert_eq!(got.len(), expected[0].data.len());
    for (g, e) in got.iter().zip(&expected[0].data) {
        assert!((g - e).abs() <= 1e-4 * e.abs().max(1.0), "{g} vs {e}");
    }
}

/// A dynamic batch as PyTorch's `dynamic_axes` writes it: every command
/// that reads the model takes it as 1 with a note, `--input-shape` fixes
/// it (the compiled model then runs that batch), and a wrong or unknown
/// `--input-shape` is an error naming the input.
#[test]
fn input_shape_fixes_a_dynamic_batch() {
    use grim_model::onnx::proto::{tensor_shape_proto::dimension, type_proto};
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let mut proto = grim_model::onnx::to_proto(&grim_model::demo_mlp(1));
    if let Some(g) = proto.graph.as_mut() {
        for vi in g.input.iter_mut().chain(g.output.iter_mut()) {
            if let Some(type_proto::Value::TensorType(t)) =
                vi.r#type.as_mut().and_then(|t| t.value.as_mut())
            {
                t.shape.as_mut().unwrap().dim[0].value =
                    Some(dimension::Value::DimParam("batch".into()));
            }
        }
    }
    let model = dir.join("dynamic.onnx");
    write(&model, &prost::Message::encode_to_vec(&proto));
    let model = model.to_str().unwrap();
    let input_name = proto.graph.as_ref().unwrap().input[0].name.clone();
    let features = grim_model::demo_mlp(1).inputs[0].shape[1];

    let (code, err) = grimc(&["inspect", model]);
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("dynamic.onnx: note:")
            && err.contains("free batch dimension 'batch'; taken as 1"),
        "{err}"
    );

    let x = grim_model::Tensor::new(
        vec![3, features],
        (0..3 * features)
            .map(|i| (i % 13) as f32 * 0.1 - 0.6)
            .collect(),
    )
    .unwrap();
    let x_path = dir.join("x.npy");
    grim_model::write_npy(&x_path, &x).unwrap();
    let y_path = dir.join("y.npy");
    let shape = format!("{input_name}=3x{features}");
    let (code, err) = grimc(&[
        "run",
        model,
        "--input-shape",
        &shape,
        "--input",
        x_path.to_str().unwrap(),
        "--output",
        y_path.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("note:"), "{err}");
    let y = grim_model::read_npy(&y_path).unwrap();
    let mut fixed = grim_model::demo_mlp(1);
    fixed.inputs[0].shape[0] = 3;
    fixed.outputs[0].shape[0] = 3;
    let expected = grim_model::run_reference(&fixed, &[x]).unwrap();
    assert_close(&[y], &expected);

    for (flag, says) in [
        (
            format!("{input_name}=3x{}", features + 1),
            "does not match the declared shape",
        ),
        (
            "nosuch=1x4".to_string(),
            "'nosuch', which is not a graph input",
        ),
        (
            format!("{input_name}=3xq"),
            "--input-shape must be NAME=DxDx...",
        ),
    ] {
        let out = dir.join("never.o");
        let (code, err) = grimc(&[
            "compile",
            model,
            "--input-shape",
            &flag,
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{flag}: {err}");
        assert!(err.contains(says), "{flag}: {err}");
        assert!(!out.exists());
    }
}

/// `grimc example` of a zoo network writes the model as asked (the rate
/// and size reach it) and refuses bad arguments with exit 1 and no file.
#[test]
fn example_writes_zoo_networks_and_refuses_bad_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let p = path.to_str().unwrap();
    let (code, stderr) = grimc(&[
        "example",
        "--model",
        "mobilenetv2",
        "--size",
        "32",
        "--rate",
        "8",
        "--classes",
        "10",
        "-o",
        p,
    ]);
    assert_eq!(code, 0, "{stderr}");
    let g = grim_model::load_onnx(&path).unwrap();
    assert_eq!(g.inputs[0].shape, [1, 3, 32, 32]);
    assert_eq!(g.outputs[0].shape, [1, 10]);
    // 8x: 4 of 8 rows and 4 of 16 columns of each 1x1 conv's blocks kept.
    let w = &g.initializers["features.18.0.weight"];
    let kept = w.data.iter().filter(|&&v| v != 0.0).count();
    assert_eq!(kept * 8, w.data.len());
    for (args, want) in [
        (vec!["--model", "resnet"], "unknown model 'resnet' (expected mlp, cnn, resnet-stage, resnet18, resnet50, vgg16, mobilenetv2, gru-speech, lstm)"),
        (vec!["--model", "gru-speech", "--seq", "0"], "a recurrent zoo model needs a sequence, batch, hidden size and layers >= 1, got seq 0"),
        (vec!["--model", "lstm", "--rate", "0.5"], "a pruning rate must be a number >= 1, got 0.5"),
        (vec!["--model", "vgg16", "--size", "16"], "vgg16 needs a size of at least 32"),
        (vec!["--model", "resnet18", "--rate", "0.5"], "a pruning rate must be a number >= 1, got 0.5"),
    ] {
        let bad = dir.path().join("bad.onnx");
        let mut all = vec!["example"];
        all.extend(args);
        all.extend(["-o", bad.to_str().unwrap()]);
        let (code, stderr) = grimc(&all);
        assert_eq!(code, 1, "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
        assert!(!bad.exists());
    }
}

/// A recurrent node with shapes or attributes that do not fit: exit 1, an
/// error naming the node and what is wrong, no output file.
#[test]
fn bad_recurrent_models_give_documented_errors_and_no_output() {
    use grim_model::onnx::proto::AttributeProto;
    use grim_model::recurrent::{Cell, Direction, Optional, Recurrent};
    let work = tempfile::tempdir().unwrap();
    let dir = work.path();
    let cell = Cell::Gru {
        linear_before_reset: true,
    };
    let (h, i) = (4, 3);
    let graph = grim_model::Graph {
        name: "gru".into(),
        inputs: vec![grim_model::ValueInfo {
            name: "X".into(),
            shape: vec![2, 1, i],
        }],
        outputs: vec![grim_model::ValueInfo {
            name: "Y".into(),
            shape: vec![2, 1, 1, h],
        }],
        nodes: vec![grim_model::Node {
            name: "gru0".into(),
            op: grim_model::Op::Recurrent(Box::new(Recurrent {
                cell,
                direction: Direction::Forward,
                hidden_size: h,
                batch_major: false,
                clip: None,
                activations: cell.default_activations(),
                sequence_lens: None,
                optional: Optional {
                    bias: true,
                    ..Optional::default()
                },
            })),
            inputs: vec!["X".into(), "W".into(), "R".into(), "B".into()],
            outputs: vec!["Y".into(), String::new()],
        }],
        initializers: [
            ("W", vec![1, 3 * h, i]),
            ("R", vec![1, 3 * h, h]),
            ("B", vec![1, 6 * h]),
        ]
        .into_iter()
        .map(|(n, s)| (n.to_string(), lcg_input(s, 1)))
        .collect(),
    };
    let good = grim_model::onnx::to_proto(&graph);
    let cases: Vec<(&str, Box<dyn Fn(&mut grim_model::onnx::proto::GraphProto)>, &str)> = vec![
        (
            "R too narrow",
            Box::new(|g| {
                let r = g.initializer.iter_mut().find(|t| t.name == "R").unwrap();
                r.dims = vec![1, 12, 3];
                r.raw_data.truncate(36 * 4);
            }),
            "GRU R must be [num_directions, 3 * hidden_size, hidden_size] = [1, 12, 4], got [1, 12, 3]",
        ),
        (
            "B of one gate",
            Box::new(|g| {
                let b = g.initializer.iter_mut().find(|t| t.name == "B").unwrap();
                b.dims = vec![1, 8];
                b.raw_data.truncate(8 * 4);
            }),
            "GRU B must be [1, 24], got [1, 8]",
        ),
        (
            "hidden_size disagreeing with W",
            Box::new(|g| {
                let a = g.node[0]
                    .attribute
                    .iter_mut()
                    .find(|a| a.name == "hidden_size")
                    .unwrap();
                a.i = 5;
            }),
            "GRU W must be [num_directions, 3 * hidden_size, input_size] = [1, 15, 3]",
        ),
        (
            "an activation grim does not generate",
            Box::new(|g| {
                g.node[0].attribute.push(AttributeProto {
                    name: "activations".into(),
                    strings: vec![b"Sigmoid".to_vec(), b"Softsign".to_vec()],
                    r#type: 8,
                    ..Default::default()
                });
            }),
            "activation 'Softsign' is not supported (supported: Sigmoid, Tanh, Relu, LeakyRelu, HardSigmoid)",
        ),
    ];
    for (what, tamper, says) in cases {
        let mut proto = good.clone();
        tamper(proto.graph.as_mut().unwrap());
        let model = dir.join("bad_gru.onnx");
        write(&model, &prost::Message::encode_to_vec(&proto));
        let out = dir.join("never.o");
        let (code, err) = grimc(&[
            "compile",
            model.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{what}: {err}");
        assert!(err.contains("gru0") && err.contains(says), "{what}: {err}");
        assert!(!out.exists(), "{what}");
    }
}

/// `grimc inspect` and `grimc bench --per-layer` of the pruned speech GRU
/// (3 steps): each recurrent node's units (`<node>.W`, `<node>.R`) with
/// their gates, kernel and packed storage, and the layers' time per step.
#[test]
fn inspect_and_bench_show_recurrent_units_and_steps() {
    let work = tempfile::tempdir().unwrap();
    let model = work.path().join("gru.onnx");
    let model_str = model.to_str().unwrap();
    let (code, err) = grimc(&[
        "example",
        "--model",
        "gru-speech",
        "--seq",
        "3",
        "-o",
        model_str,
    ]);
    assert_eq!(code, 0, "{err}");
    let report = grimc_json(&["inspect", model_str, "--json"]);
    let layers = report["layers"].as_array().unwrap();
    for (weight, op, shape) in [
        ("/gru/GRU.W", "gru W (z r h)", [3072, 153]),
        ("/gru/GRU.R", "gru R (z r h)", [3072, 1024]),
        ("/gru/GRU_1.R", "gru R (z r h)", [3072, 1024]),
    ] {
        let row = layers
            .iter()
            .find(|r| r["weight"] == weight)
            .unwrap_or_else(|| panic!("no {weight} in {report}"));
        assert_eq!(row["op"], op);
        assert_eq!(row["steps"], 3);
        assert_eq!(row["shape"], serde_json::json!(shape));
        // 4 of 8 rows and 3 of 16 columns kept: the cost model picks BCR.
        assert_eq!(row["kernel"], "bcr", "{row}");
        assert!(row["compression"].as_f64().unwrap() > 10.0, "{row}");
    }
    let timing = grimc_json(&["bench", model_str, "--runs", "2", "--per-layer", "--json"]);
    let gru = timing["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "/gru/GRU")
        .unwrap_or_else(|| panic!("no /gru/GRU in {timing}"));
    assert_eq!(gru["steps"], 3);
    assert!(gru["kernel"].as_str().unwrap().starts_with("bcr"), "{gru}");
}

#[test]
fn grimc_prune_errors_exit_1_naming_the_problem_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("mlp.onnx");
    let (code, err) = grimc(&[
        "example",
        "--model",
        "digits-mlp",
        "-o",
        model.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    let out = dir.path().join("pruned.onnx");
    let o = out.to_str().unwrap();
    let m = model.to_str().unwrap();
    for (args, needle) in [
        (
            vec!["prune", m, "--rate", "0.5", "-o", o],
            "--rate must be a number >= 1",
        ),
        (
            vec!["prune", m, "--rate", "8", "--block", "8x99", "-o", o],
            "--block must be RxC",
        ),
        (
            vec!["prune", m, "--rate", "8", "--method", "admm", "-o", o],
            "--data TRAIN.npz",
        ),
        (
            vec![
                "prune",
                m,
                "--rate",
                "8",
                "--data",
                "/nonexistent/train.npz",
                "-o",
                o,
            ],
            "/nonexistent/train.npz",
        ),
        (
            vec!["prune", "/nonexistent/m.onnx", "--rate", "8", "-o", o],
            "/nonexistent/m.onnx",
        ),
    ] {
        let (code, err) = grimc(&args);
        assert_eq!(code, 1, "{args:?}: {err}");
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(!out.exists(), "{args:?} wrote {o}");
    }
    // And the happy path writes both files and prints the per-layer table.
    let lr = dir.path().join("lr.json");
    let (code, err) = grimc(&[
        "prune",
        m,
        "--rate",
        "8",
        "-o",
        o,
        "--lr-out",
        lr.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.exists() && lr.exists());
}
