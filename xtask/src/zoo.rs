//! `cargo xtask zoo`: every zoo network (ResNet-18, ResNet-50, VGG-16,
//! MobileNet-V2), dense and BCR-pruned, made by `grimc example`, compiled
//! and run by `grimc run`, and compared with onnxruntime (the version the
//! conformance manifest pins): max |y - ref| / max |ref| <= 1e-4, the
//! tolerance used everywhere here. The pruned ResNet-18 and MobileNet-V2
//! also run compiled for aarch64 under qemu-aarch64. The recurrent zoo
//! (the speech GRU and the LSTM, dense and BCR-pruned 10x) runs at short
//! sequences: 8 steps on the host (the GRU at batch 2), 3 under qemu.
//!
//! The models are 64x64 here so that the run fits the test budget with a
//! debug grimc; the benchmark runs them at 224x224 (and the recurrent ones
//! at 100 steps). Part of `cargo xtask test`.

use crate::{cargo, heading, repo_root, run, target_dir};
use anyhow::{anyhow, bail, Context as _, Result};
use grim_model::{read_npy, write_npy, Architecture, Tensor};
use std::{
    path::Path,
    process::Command,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
};

/// Image side of the checked models.
const SIZE: usize = 64;
/// max |y - ref| / max |ref| allowed.
const TOLERANCE: f32 = 1e-4;

/// A zoo network as `grimc example` makes it.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Net {
    /// An image network at SIZE x SIZE.
    Image(Architecture),
    /// `gru-speech` or `lstm` over `seq` steps of `batch` sequences.
    Recurrent {
        name: &'static str,
        seq: usize,
        batch: usize,
    },
    /// A digits example (`digits-mlp`, ...) trained briefly and pruned 8x by
    /// `grimc prune` (ADMM) on the digits splits in `layout`.
    Digits {
        name: &'static str,
        layout: &'static str,
    },
}

impl Net {
    fn name(&self) -> String {
        match self {
            Net::Image(a) => a.name().to_string(),
            Net::Recurrent { name, seq, batch } => format!("{name}_t{seq}_b{batch}"),
            Net::Digits { name, .. } => name.to_string(),
        }
    }

    /// `grimc example` arguments after `--model NAME`.
    fn example_args(&self) -> Vec<String> {
        match self {
            Net::Image(a) => vec![
                "--model".into(),
                a.name().into(),
                "--size".into(),
                SIZE.to_string(),
            ],
            Net::Recurrent { name, seq, batch } => vec![
                "--model".into(),
                name.to_string(),
                "--seq".into(),
                seq.to_string(),
                "--batch".into(),
                batch.to_string(),
            ],
            Net::Digits { name, layout } => {
                let train = target_dir()
                    .join("digits")
                    .join(format!("train-{layout}.npz"));
                vec![
                    "--model".into(),
                    name.to_string(),
                    "--train".into(),
                    "--epochs".into(),
                    "3".into(),
                    "--data".into(),
                    train.display().to_string(),
                ]
            }
        }
    }

    /// The model's input.
    fn input(&self) -> Result<Tensor> {
        let shape = match self {
            Net::Image(_) => vec![1, 3, SIZE, SIZE],
            Net::Recurrent { seq, batch, .. } => vec![*seq, *batch, 153],
            Net::Digits { layout, .. } => match *layout {
                "flat" => vec![1, 64],
                "image" => vec![1, 1, 8, 8],
                _ => vec![8, 1, 8],
            },
        };
        let n = shape.iter().product();
        Ok(Tensor::new(
            shape,
            grim_model::tensor::fixed_seed_values(2024, n),
        )?)
    }
}

/// One model on one target.
struct Check {
    net: Net,
    dense: bool,
    target: &'static str,
}

impl Check {
    fn model(&self) -> String {
        let variant = if self.dense { "dense" } else { "bcr" };
        format!("{}_{variant}", self.net.name())
    }

    fn name(&self) -> String {
        format!("{} ({})", self.model(), self.target)
    }
}

/// Every check, the slowest first so that two workers finish together.
fn checks() -> Vec<Check> {
    use Architecture::*;
    let host = |architecture, dense| Check {
        net: Net::Image(architecture),
        dense,
        target: "host",
    };
    let qemu = |architecture| Check {
        net: Net::Image(architecture),
        dense: false,
        target: "aarch64-linux-gnu",
    };
    let recurrent = |name, seq, batch, dense, target| Check {
        net: Net::Recurrent { name, seq, batch },
        dense,
        target,
    };
    let digits = |name, layout| Check {
        net: Net::Digits { name, layout },
        dense: false,
        target: "host",
    };
    vec![
        host(Vgg16, true),
        host(ResNet50, true),
        host(Vgg16, false),
        host(ResNet50, false),
        host(ResNet18, true),
        qemu(MobileNetV2),
        qemu(ResNet18),
        recurrent("gru-speech", 3, 1, false, "aarch64-linux-gnu"),
        recurrent("lstm", 3, 1, false, "aarch64-linux-gnu"),
        recurrent("gru-speech", 8, 2, false, "host"),
        recurrent("gru-speech", 8, 2, true, "host"),
        recurrent("lstm", 8, 1, false, "host"),
        recurrent("lstm", 8, 1, true, "host"),
        host(MobileNetV2, true),
        host(MobileNetV2, false),
        host(ResNet18, false),
        digits("digits-cnn", "image"),
        digits("digits-mlp", "flat"),
        digits("digits-gru", "rows"),
    ]
}

/// `cargo xtask zoo`.
pub fn command(args: &[&str]) -> Result<()> {
    if !args.is_empty() {
        bail!("zoo: unknown arguments {args:?} (usage: cargo xtask zoo)");
    }
    crate::setup()?;
    heading("zoo: build grimc");
    run(
        "zoo (cargo build)",
        cargo().args(["build", "-p", "grim-compiler", "--bin", "grimc"]),
    )?;
    let passed = suite(&target_dir().join("debug").join("grimc"))?;
    println!("zoo: all {passed} checks within {TOLERANCE} of onnxruntime");
    Ok(())
}

/// Makes, runs and checks every zoo model with `grimc`; returns how many
/// checks passed, or an error listing the ones that did not.
pub fn suite(grimc: &Path) -> Result<usize> {
    heading(&format!(
        "zoo: the model zoo at {SIZE}x{SIZE} against onnxruntime"
    ));
    let python = crate::conformance::venv_python()?;
    crate::digits::ensure()?;
    let dir = target_dir().join("zoo");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;

    let checks = checks();
    // Each model once (a qemu check may be the only one of its model).
    let mut models: Vec<&Check> = Vec::new();
    for check in &checks {
        if !models.iter().any(|m| m.model() == check.model()) {
            models.push(check);
        }
    }
    let mut failures = on_two_threads(
        &models,
        |c| c.model(),
        |c| make_model(grimc, &python, &dir, c).map(|()| "made".to_string()),
    );
    if failures.is_empty() {
        failures = on_two_threads(&checks, Check::name, |c| {
            run_check(grimc, &dir, c).map(|e| format!("pass (relative error {e:.1e})"))
        });
    }
    if !failures.is_empty() {
        bail!(
            "zoo: {} check(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
    Ok(checks.len())
}

/// Makes the model of `check` with `grimc example` and onnxruntime's output
/// for `input`.
fn make_model(grimc: &Path, python: &Path, dir: &Path, check: &Check) -> Result<()> {
    let model_dir = dir.join(check.model());
    let model = model_dir.join("model.onnx");
    std::fs::create_dir_all(&model_dir)?;
    let input = model_dir.join("input.npy");
    write_npy(&input, &check.net.input()?)?;
    let mut example = Command::new(grimc);
    example
        .arg("example")
        .args(check.net.example_args())
        .arg("-o")
        .arg(&model);
    if check.dense {
        example.arg("--dense");
    }
    quiet("grimc example", &mut example)?;
    if let Net::Digits { layout, .. } = check.net {
        prune_digits(grimc, &model_dir, layout)?;
    }
    quiet(
        "onnxruntime",
        Command::new(python)
            .arg(repo_root().join("xtask/zoo/reference.py"))
            .arg(&model)
            .arg(&input)
            .arg(model_dir.join("reference.npy")),
    )
}

/// Prunes a trained digits model in place with `grimc prune` (a short ADMM
/// run, 8x with 8x16 blocks), writing `lr.json`; checks that `grimc
/// inspect` with that LR compiles every pruned layer as BCR 8x16 with no
/// stored zero (fill 1.000).
fn prune_digits(grimc: &Path, model_dir: &Path, layout: &str) -> Result<()> {
    let model = model_dir.join("model.onnx");
    let trained = model_dir.join("trained.onnx");
    std::fs::rename(&model, &trained)?;
    let data = target_dir().join("digits");
    let lr = model_dir.join("lr.json");
    quiet(
        "grimc prune",
        Command::new(grimc)
            .arg("prune")
            .arg(&trained)
            .args([
                "--rate",
                "8",
                "--epochs",
                "2",
                "--finetune-epochs",
                "1",
                "--quiet",
            ])
            .arg("--data")
            .arg(data.join(format!("train-{layout}.npz")))
            .arg("--val-data")
            .arg(data.join(format!("val-{layout}.npz")))
            .arg("-o")
            .arg(&model)
            .arg("--lr-out")
            .arg(&lr),
    )?;
    let lr_file = grim_model::LrFile::load(&lr)?;
    let output = Command::new(grimc)
        .arg("inspect")
        .arg(&model)
        .arg("--lr")
        .arg(&lr)
        .output()
        .context("cannot run grimc inspect")?;
    let table = String::from_utf8_lossy(&output.stdout);
    for layer in &lr_file.layers {
        if layer.sparsity == grim_model::Sparsity::Dense {
            continue;
        }
        // The layer's row, or a recurrent op's unit rows (`gru.W`, `gru.R`).
        let unit = format!("{}.", layer.name);
        let rows: Vec<&str> = table
            .lines()
            .take_while(|l| !l.trim().is_empty())
            .filter(|l| {
                let first = l.split_whitespace().next().unwrap_or("");
                first == layer.name || first.starts_with(&unit)
            })
            .collect();
        if rows.is_empty() {
            bail!("grimc inspect does not list pruned layer '{}'", layer.name);
        }
        for row in rows {
            let fields: Vec<&str> = row.split_whitespace().collect();
            if !(fields.contains(&"bcr") && fields.contains(&"8x16") && fields.contains(&"1.000")) {
                bail!(
                    "pruned layer '{}' does not compile as BCR 8x16 with fill 1: {row}",
                    layer.name
                );
            }
        }
    }
    Ok(())
}

/// One check: grimc's output on `input` against onnxruntime's; returns the
/// relative error.
fn run_check(grimc: &Path, dir: &Path, check: &Check) -> Result<f32> {
    let model_dir = dir.join(check.model());
    let input = model_dir.join("input.npy");
    let got = model_dir.join(format!("got_{}.npy", check.target));
    quiet(
        "grimc run",
        Command::new(grimc)
            .arg("run")
            .arg(model_dir.join("model.onnx"))
            .args(if matches!(check.net, Net::Digits { .. }) {
                vec![
                    "--lr".to_string(),
                    model_dir.join("lr.json").display().to_string(),
                ]
            } else {
                vec![]
            })
            .args(["--target", check.target, "--input"])
            .arg(&input)
            .arg("--output")
            .arg(&got),
    )?;
    let (y, r) = (read_npy(&got)?, read_npy(&model_dir.join("reference.npy"))?);
    if y.shape != r.shape {
        bail!("output shape {:?}, onnxruntime's {:?}", y.shape, r.shape);
    }
    let error = relative_error(&y.data, &r.data);
    if error.is_nan() || error > TOLERANCE {
        bail!("max |y - ref| / max |ref| = {error:.2e} > {TOLERANCE}");
    }
    Ok(error)
}

/// `work` on every item, two at a time; the error messages of the items
/// that failed, named by `name`.
fn on_two_threads<T: Sync>(
    items: &[T],
    name: impl Fn(&T) -> String + Sync,
    work: impl Fn(&T) -> Result<String> + Sync,
) -> Vec<String> {
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..2 {
            scope.spawn(|| loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(index) else { break };
                let started = std::time::Instant::now();
                let outcome = work(item);
                let seconds = started.elapsed().as_secs_f32();
                match &outcome {
                    Ok(what) => println!("zoo: {:<36} {what} ({seconds:.0} s)", name(item)),
                    Err(e) => println!("zoo: {:<36} FAIL: {e:#}", name(item)),
                }
                if let (Err(e), Ok(mut failures)) = (outcome, failures.lock()) {
                    failures.push(format!("{}: {e:#}", name(item)));
                }
            });
        }
    });
    failures.into_inner().unwrap_or_default()
}

/// Runs `command`, keeping its output unless it fails.
fn quiet(what: &str, command: &mut Command) -> Result<()> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(anyhow!("{what} failed: {}", crate::venv::tail(&stderr, 5)));
    }
    Ok(())
}

/// max |y - r| / max |r| (infinite if any difference is not finite).
fn relative_error(y: &[f32], r: &[f32]) -> f32 {
    let mut diff = 0.0f32;
    for (a, b) in y.iter().zip(r) {
        let d = (a - b).abs();
        if !d.is_finite() {
            return f32::INFINITY;
        }
        diff = diff.max(d);
    }
    let scale = r.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    diff / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_is_against_the_largest_reference_value() {
        assert_eq!(relative_error(&[1.0, 2.5], &[1.0, 2.0]), 0.25);
        assert_eq!(relative_error(&[1.0, f32::NAN], &[1.0, 2.0]), f32::INFINITY);
        // A zero reference with a nonzero output is not within any tolerance.
        let e = relative_error(&[1.0], &[0.0]);
        assert!(e.is_nan() || e > TOLERANCE);
    }

    #[test]
    fn every_model_is_checked_dense_and_pruned_on_the_host() {
        let checks = checks();
        for a in Architecture::ALL {
            for dense in [false, true] {
                assert!(checks
                    .iter()
                    .any(|c| c.net == Net::Image(a) && c.dense == dense && c.target == "host"));
            }
        }
        for name in grim_model::zoo::speech::SpeechModel::NAMES {
            for dense in [false, true] {
                assert!(checks.iter().any(
                    |c| matches!(c.net, Net::Recurrent { name: n, .. } if n == name)
                        && c.dense == dense
                        && c.target == "host"
                ));
            }
            assert!(checks.iter().any(
                |c| matches!(c.net, Net::Recurrent { name: n, .. } if n == name)
                    && c.target != "host"
            ));
        }
    }
}
