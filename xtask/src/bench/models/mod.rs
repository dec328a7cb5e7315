//! `cargo xtask bench models`: the zoo networks at 224x224, batch 1, on 1
//! and 2 threads, all in one run: grim BCR (the pruned model, grimc's
//! default flags: the cost model picks each layer's kernel), grim dense (the
//! dense model, `--kernel dense`), and the dense engines on the same files
//! (onnxruntime, tract, MNN: `xtask/bench/models_peers.py` in a venv under
//! target/bench/models-venv), plus the per-layer breakdown of the grim BCR
//! runs and the time to compile ResNet-18 for aarch64. The report goes to
//! docs/benchmarks/models.{md,json,png}; `--quick` (ResNet-18 and
//! MobileNet-V2, 1 thread, few runs) writes it to target/bench/models-quick/;
//! `--report-only` rewrites models.md and models.png from models.json.
//!
//! apache-tvm and LiteRT/XNNPACK are not run; the report says why.

mod report;

use crate::{capture, heading, repo_root, run, target_dir, venv};
use anyhow::{bail, Context as _, Result};
use grim_model::{write_npy, Architecture, Tensor};
use serde_json::{json, Value};
use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

/// The peers' Python packages.
const PEER_PACKAGES: &[&str] = &["numpy", "onnx", "onnxruntime==1.32.0", "tract", "MNN"];

/// Engines that could not run here and why (the report repeats it).
const NOT_RUN: &[(&str, &str)] = &[
    (
        "apache-tvm",
        "untuned TVM is the only form that runs here (its tuning pipeline crashed, STACK-NOTES.md), and untuned it is far slower than onnxruntime on CPUs, so it would not be the fastest dense peer",
    ),
    (
        "LiteRT/XNNPACK",
        "LiteRT runs .tflite files; converting these ONNX models needs onnx2tf and TensorFlow, which this benchmark does not install",
    ),
];

/// What a run measures.
struct Options {
    quick: bool,
    threads: Vec<usize>,
    runs: usize,
}

fn parse(args: &[&str]) -> Result<Options> {
    let mut options = Options {
        quick: false,
        threads: vec![1, 2],
        runs: 20,
    };
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        match *arg {
            "--quick" => {
                options.quick = true;
                options.threads = vec![1];
                options.runs = 5;
            }
            "--threads" => {
                let list = rest.next().context("--threads needs a list such as 1,2")?;
                options.threads = list
                    .split(',')
                    .map(|t| t.trim().parse::<usize>().ok().filter(|&t| t > 0))
                    .collect::<Option<Vec<_>>>()
                    .with_context(|| format!("--threads: '{list}' is not a list of thread counts"))?;
            }
            "--runs" => {
                let n = rest.next().context("--runs needs a number")?;
                options.runs = n
                    .parse()
                    .ok()
                    .filter(|&r: &usize| r >= 2)
                    .with_context(|| format!("--runs: '{n}' is not a number >= 2"))?;
            }
            other => bail!("bench models: unknown argument `{other}` (usage: cargo xtask bench models [--quick] [--threads 1,2] [--runs R] | --report-only)"),
        }
    }
    Ok(options)
}

/// One model file of the run.
pub(super) struct Model {
    pub(super) architecture: Architecture,
    pub(super) dense: bool,
    pub(super) path: PathBuf,
}

impl Model {
    pub(super) fn id(&self) -> String {
        let variant = if self.dense { "dense" } else { "bcr" };
        format!("{}_{variant}", self.architecture.name())
    }
}

/// `cargo xtask bench models ...`.
pub fn models(args: &[&str]) -> Result<()> {
    if args == ["--report-only"] {
        // Rewrite models.md and models.png from the last run's models.json.
        let dir = repo_root().join("docs").join("benchmarks");
        let path = dir.join("models.json");
        let text = std::fs::read_to_string(&path).with_context(|| format!("{}", path.display()))?;
        let results: Value = serde_json::from_str(&text)
            .with_context(|| format!("{}: invalid JSON", path.display()))?;
        report::write(&dir, &results)?;
        println!(
            "bench models: rewrote {} from {}",
            dir.join("models.md").display(),
            path.display()
        );
        return Ok(());
    }
    let options = parse(args)?;
    let started = Instant::now();
    crate::runtime()?;
    let grimc = crate::build_grimc("bench models")?;
    let bench_dir = target_dir().join("bench");
    let dir = bench_dir.join(if options.quick {
        "models-quick"
    } else {
        "models"
    });
    std::fs::create_dir_all(&dir)?;
    let report_dir = if options.quick {
        dir.clone()
    } else {
        repo_root().join("docs").join("benchmarks")
    };

    let architectures: Vec<Architecture> = if options.quick {
        vec![Architecture::ResNet18, Architecture::MobileNetV2]
    } else {
        Architecture::ALL.to_vec()
    };
    heading("bench models: make the zoo at 224x224");
    let mut models = Vec::new();
    for &architecture in &architectures {
        for dense in [false, true] {
            let mut model = Model {
                architecture,
                dense,
                path: PathBuf::new(),
            };
            model.path = dir.join(format!("{}.onnx", model.id()));
            if !model.path.exists() {
                let mut example = Command::new(&grimc);
                example
                    .args(["example", "--model", architecture.name(), "-o"])
                    .arg(&model.path);
                if dense {
                    example.arg("--dense");
                }
                run("bench models (grimc example)", &mut example)?;
            }
            models.push(model);
        }
    }
    let input = dir.join("input.npy");
    let x = Tensor::new(
        vec![1, 3, 224, 224],
        grim_model::tensor::fixed_seed_values(7, 3 * 224 * 224),
    )?;
    write_npy(&input, &x)?;

    heading("bench models: grim");
    let mut grim = Vec::new();
    for model in &models {
        for &threads in &options.threads {
            let kernel: &[&str] = if model.dense {
                &["--kernel", "dense"]
            } else {
                &[]
            };
            let timing = grimc_bench(&grimc, model, kernel, threads, options.runs, false)?;
            let implementation = if model.dense {
                "grim-dense"
            } else {
                "grim-bcr"
            };
            println!(
                "bench models: {:<20} {implementation:<11} {threads} thread(s) {:9.2} ms",
                model.id(),
                number(&timing, "median_ms")?
            );
            grim.push(
                json!({"model": model.id(), "implementation": implementation,
                "threads": threads, "timing": timing}),
            );
        }
    }
    heading("bench models: per-layer times of grim BCR (1 thread)");
    let mut per_layer = Vec::new();
    for model in models.iter().filter(|m| !m.dense) {
        let timing = grimc_bench(&grimc, model, &[], 1, options.runs.min(10), true)?;
        let estimates = inspect(&grimc, model)?;
        per_layer.push(json!({"model": model.id(), "timing": timing, "inspect": estimates}));
    }
    heading("bench models: compile ResNet-18 (BCR) for aarch64");
    let compile = compile_time(&grimc, &models, &dir)?;

    heading("bench models: peers");
    let peers = run_peers(&bench_dir, &dir, &models, &input, &options)?;

    let results = json!({
        "machine": super::machine::machine_facts(),
        "git": super::machine::git_state(),
        "date": super::machine::utc_now(),
        "quick": options.quick,
        "threads": options.threads,
        "runs": options.runs,
        "grim": grim,
        "per_layer": per_layer,
        "compile": compile,
        "peers": peers,
        "not_run": NOT_RUN.iter().map(|(k, v)| json!({"engine": k, "why": v})).collect::<Vec<_>>(),
    });
    report::write(&report_dir, &results)?;
    println!(
        "bench models: wrote {} ({:.0} s)",
        report_dir.join("models.md").display(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

/// `grimc bench` of `model`'s file as JSON.
fn grimc_bench(
    grimc: &Path,
    model: &Model,
    flags: &[&str],
    threads: usize,
    runs: usize,
    per_layer: bool,
) -> Result<Value> {
    let mut command = Command::new(grimc);
    command.arg("bench").arg(&model.path).args(flags).args([
        "--threads",
        &threads.to_string(),
        "--runs",
        &runs.to_string(),
        "--json",
    ]);
    if per_layer {
        command.arg("--per-layer");
    }
    super::measure::bench_json(
        &format!("bench models (grimc bench {})", model.id()),
        &mut command,
    )
}

/// `grimc inspect --json` of `model`: the kernel and the cost model's
/// estimates per layer.
fn inspect(grimc: &Path, model: &Model) -> Result<Value> {
    let stdout = capture(
        &format!("bench models (grimc inspect {})", model.id()),
        Command::new(grimc)
            .arg("inspect")
            .arg(&model.path)
            .arg("--json"),
    )?;
    serde_json::from_str(&stdout).context("grimc inspect printed invalid JSON")
}

pub(super) fn number(value: &Value, name: &str) -> Result<f64> {
    value[name]
        .as_f64()
        .with_context(|| format!("no number `{name}` in {value}"))
}

/// Seconds `grimc compile --target aarch64-linux-gnu` takes on the pruned
/// ResNet-18 (release grimc, no tuning).
fn compile_time(grimc: &Path, models: &[Model], dir: &Path) -> Result<Value> {
    let Some(model) = models
        .iter()
        .find(|m| m.architecture == Architecture::ResNet18 && !m.dense)
    else {
        return Ok(Value::Null);
    };
    let out = dir.join("resnet18_bcr.aarch64.o");
    let started = Instant::now();
    run(
        "bench models (grimc compile --target aarch64-linux-gnu)",
        Command::new(grimc)
            .arg("compile")
            .arg(&model.path)
            .args(["--target", "aarch64-linux-gnu", "-o"])
            .arg(&out),
    )?;
    let seconds = started.elapsed().as_secs_f64();
    println!("bench models: resnet18_bcr compiles for aarch64 in {seconds:.1} s");
    Ok(json!({"model": model.id(), "target": "aarch64-linux-gnu", "seconds": seconds}))
}

/// The peers' timings (models_peers.py's OUT.json), or why none ran.
fn run_peers(
    bench_dir: &Path,
    dir: &Path,
    models: &[Model],
    input: &Path,
    options: &Options,
) -> Result<Value> {
    let python = venv::create("bench models", &bench_dir.join("models-venv"))?;
    for package in PEER_PACKAGES {
        if let Err(failure) = venv::pip_install(&python, package) {
            println!("{failure}");
        }
    }
    let spec = json!({
        "threads": options.threads,
        "budget_s": if options.quick { 0.5 } else { 3.0 },
        "min_reps": if options.quick { 2 } else { 5 },
        "max_reps": 200,
        "work_dir": dir,
        "models": models.iter().map(|m| json!({"id": m.id(), "path": m.path, "input": input})).collect::<Vec<_>>(),
    });
    let spec_path = dir.join("peers-spec.json");
    let out_path = dir.join("peers.json");
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)?)?;
    run(
        "bench models (models_peers.py)",
        Command::new(&python)
            .arg(repo_root().join("xtask/bench/models_peers.py"))
            .arg(&spec_path)
            .arg(&out_path),
    )?;
    let text =
        std::fs::read_to_string(&out_path).with_context(|| format!("{}", out_path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{}: invalid JSON", out_path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_options() {
        let o = parse(&[]).unwrap();
        assert_eq!(
            (o.quick, o.threads.clone(), o.runs),
            (false, vec![1, 2], 20)
        );
        let o = parse(&["--quick"]).unwrap();
        assert_eq!((o.quick, o.threads.clone(), o.runs), (true, vec![1], 5));
        let o = parse(&["--threads", "2", "--runs", "7"]).unwrap();
        assert_eq!((o.threads.clone(), o.runs), (vec![2], 7));
        for bad in [&["--threads", "0"][..], &["--runs", "1"], &["--fast"]] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }
}
