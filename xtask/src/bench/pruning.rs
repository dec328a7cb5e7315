//! `cargo xtask bench pruning`: the digits examples (MLP, CNN, GRU) trained
//! dense by grim, then pruned at 4x, 8x and 16x with 8x16 blocks four ways
//! (one-shot projection; one-shot + masked fine-tuning for as many epochs
//! as ADMM runs in all; ADMM; ADMM with `--auto`), over three seeds. Test
//! accuracy is measured by onnxruntime on the pruned ONNX files
//! (`xtask/bench/pruning_eval.py`) on the test split no pruning run sees;
//! grim's latency by `grimc bench` with the run's LR file. The report goes
//! to docs/benchmarks/pruning.{md,json}; `--quick` (the MLP, one seed, 8x)
//! to target/bench/pruning-quick/.

use crate::{capture, heading, repo_root, run, target_dir};
use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use std::{fmt::Write as _, path::Path, process::Command, time::Instant};

/// ADMM epochs and fine-tuning epochs (grimc prune's defaults).
const ADMM_EPOCHS: usize = 30;
const FINETUNE_EPOCHS: usize = 20;
/// Dense training epochs.
const TRAIN_EPOCHS: usize = 60;

/// (model, data layout, samples' axis).
const MODELS: [(&str, &str, usize); 3] = [
    ("digits-mlp", "flat", 0),
    ("digits-cnn", "image", 0),
    ("digits-gru", "rows", 1),
];

/// The ways a model is pruned: (name, grimc prune flags).
fn methods() -> Vec<(&'static str, Vec<String>)> {
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let all = (ADMM_EPOCHS + FINETUNE_EPOCHS).to_string();
    vec![
        ("one-shot", s(&["--method", "project"])),
        ("one-shot+ft", s(&["--method", "project", "--epochs", &all])),
        ("admm", s(&[])),
        ("admm --auto", s(&["--auto"])),
    ]
}

fn accuracy(python: &Path, model: &Path, test: &Path, axis: usize) -> Result<f64> {
    let out = capture(
        "bench pruning (pruning_eval.py)",
        Command::new(python)
            .arg(repo_root().join("xtask/bench/pruning_eval.py"))
            .arg(model)
            .arg(test)
            .arg(axis.to_string()),
    )?;
    let v: Value = serde_json::from_str(out.trim()).context("pruning_eval.py printed no JSON")?;
    v["accuracy"].as_f64().context("no accuracy")
}

fn latency_ms(grimc: &Path, model: &Path, lr: Option<&Path>, runs: usize) -> Result<(f64, Value)> {
    let mut command = Command::new(grimc);
    command
        .arg("bench")
        .arg(model)
        .args(["--threads", "1", "--runs", &runs.to_string(), "--json"]);
    match lr {
        Some(lr) => {
            command.arg("--lr").arg(lr);
        }
        None => {
            command.args(["--kernel", "dense"]);
        }
    }
    let v = super::measure::bench_json("bench pruning (grimc bench)", &mut command)?;
    Ok((v["median_ms"].as_f64().context("no median_ms")?, v))
}

/// `cargo xtask bench pruning [--quick]`.
pub fn pruning(args: &[&str]) -> Result<()> {
    let quick = match args {
        [] => false,
        ["--quick"] => true,
        _ => bail!("bench pruning: usage: cargo xtask bench pruning [--quick]"),
    };
    let started = Instant::now();
    crate::runtime()?;
    let grimc = crate::build_grimc("bench pruning")?;
    let digits = crate::digits::ensure()?;
    let python = crate::conformance::venv_python()?;
    let dir = target_dir()
        .join("bench")
        .join(if quick { "pruning-quick" } else { "pruning" });
    std::fs::create_dir_all(&dir)?;
    let report_dir = if quick {
        dir.clone()
    } else {
        repo_root().join("docs").join("benchmarks")
    };
    let (models, seeds, rates, runs): (&[(&str, &str, usize)], &[u64], &[f64], usize) = if quick {
        (&MODELS[..1], &[0], &[8.0], 20)
    } else {
        (&MODELS, &[0, 1, 2], &[4.0, 8.0, 16.0], 200)
    };
    let mut rows = Vec::new();
    let mut isa = Value::Null;
    for &(model, layout, axis) in models {
        let train = digits.join(format!("train-{layout}.npz"));
        let val = digits.join(format!("val-{layout}.npz"));
        let test = digits.join(format!("test-{layout}.npz"));
        for &seed in seeds {
            heading(&format!("bench pruning: {model} seed {seed}"));
            let dense = dir.join(format!("{model}-s{seed}-dense.onnx"));
            let t = Instant::now();
            run(
                "bench pruning (grimc example --train)",
                Command::new(&grimc)
                    .args([
                        "example",
                        "--model",
                        model,
                        "--train",
                        "--epochs",
                        &TRAIN_EPOCHS.to_string(),
                    ])
                    .args(["--seed", &seed.to_string(), "--data"])
                    .arg(&train)
                    .arg("--val-data")
                    .arg(&val)
                    .arg("-o")
                    .arg(&dense),
            )?;
            let train_s = t.elapsed().as_secs_f64();
            let acc = accuracy(&python, &dense, &test, axis)?;
            let (ms, timing) = latency_ms(&grimc, &dense, None, runs)?;
            isa = timing["isa"].clone();
            println!(
                "bench pruning: {model} seed {seed} dense: test {:.2}%, {ms:.4} ms",
                100.0 * acc
            );
            rows.push(
                json!({"model": model, "seed": seed, "rate": 1.0, "method": "dense",
                "accuracy": acc, "latency_ms": ms, "seconds": train_s}),
            );
            for &rate in rates {
                for (method, flags) in methods() {
                    let tag = method.replace([' ', '+'], "_").replace("--", "");
                    let out = dir.join(format!("{model}-s{seed}-r{rate}-{tag}.onnx"));
                    let lr = out.with_extension("json");
                    let mut command = Command::new(&grimc);
                    command
                        .arg("prune")
                        .arg(&dense)
                        .args([
                            "--rate",
                            &rate.to_string(),
                            "--seed",
                            &seed.to_string(),
                            "--quiet",
                        ])
                        .args(&flags)
                        .arg("-o")
                        .arg(&out)
                        .arg("--lr-out")
                        .arg(&lr);
                    if method != "one-shot" {
                        command
                            .arg("--data")
                            .arg(&train)
                            .arg("--val-data")
                            .arg(&val);
                    }
                    let t = Instant::now();
                    capture("bench pruning (grimc prune)", &mut command)?;
                    let seconds = t.elapsed().as_secs_f64();
                    let acc = accuracy(&python, &out, &test, axis)?;
                    let (ms, _) = latency_ms(&grimc, &out, Some(&lr), runs)?;
                    println!(
                        "bench pruning: {model} seed {seed} {rate}x {method:<12} test {:.2}%, {ms:.4} ms, pruned in {seconds:.1} s",
                        100.0 * acc
                    );
                    rows.push(
                        json!({"model": model, "seed": seed, "rate": rate, "method": method,
                        "accuracy": acc, "latency_ms": ms, "seconds": seconds}),
                    );
                }
            }
        }
    }
    let results = json!({
        "machine": super::machine::machine_facts(),
        "git": super::machine::git_state(),
        "date": super::machine::utc_now(),
        "isa": isa,
        "quick": quick,
        "train_epochs": TRAIN_EPOCHS,
        "admm_epochs": ADMM_EPOCHS,
        "finetune_epochs": FINETUNE_EPOCHS,
        "rows": rows,
    });
    std::fs::write(
        report_dir.join("pruning.json"),
        serde_json::to_string_pretty(&results)?,
    )?;
    std::fs::write(report_dir.join("pruning.md"), report(&results))?;
    println!(
        "bench pruning: wrote {} ({:.0} s)",
        report_dir.join("pruning.md").display(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

/// Mean and sample standard deviation.
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n.max(1.0);
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// The table: per model, rate and method, test accuracy mean ± sd over
/// the seeds, grim's latency (mean) and the pruning time.
fn report(results: &Value) -> String {
    let rows = results["rows"].as_array().cloned().unwrap_or_default();
    let machine = &results["machine"];
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Pruning: accuracy and latency of the digits examples\n"
    );
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench pruning` ({}; git {}). Machine: {} ({} logical CPUs); grim generates for **{}**. Each model trained dense by `grimc example --train` ({} epochs), then pruned by `grimc prune` with 8x16 blocks: one-shot projection, one-shot + {} epochs of masked fine-tuning, ADMM ({} ADMM + {} fine-tuning epochs), and ADMM with `--auto` (per-layer blocks and rates). Test accuracy by onnxruntime on the 360-sample test split (one sample is 0.28 points), mean ± standard deviation over the seeds; latency: `grimc bench`, 1 thread, batch 1, median of runs, with the LR file `grimc prune` wrote, mean over seeds.\n",
        results["date"].as_str().unwrap_or("?"),
        results["git"]["head"].as_str().unwrap_or("?"),
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["logical_cpus"],
        results["isa"].as_str().unwrap_or("?"),
        results["train_epochs"],
        results["admm_epochs"].as_u64().unwrap_or(0) + results["finetune_epochs"].as_u64().unwrap_or(0),
        results["admm_epochs"],
        results["finetune_epochs"],
    );
    let _ = writeln!(
        md,
        "| model | rate | method | test accuracy % | vs dense (points) | latency us | pruning s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    let mut keys: Vec<(String, String, String)> = Vec::new();
    for r in &rows {
        let k = (
            r["model"].as_str().unwrap_or("").to_string(),
            format!("{}", r["rate"].as_f64().unwrap_or(0.0)),
            r["method"].as_str().unwrap_or("").to_string(),
        );
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let pick = |m: &str, rate: &str, method: &str, field: &str| -> Vec<f64> {
        rows.iter()
            .filter(|r| {
                r["model"] == m
                    && format!("{}", r["rate"].as_f64().unwrap_or(0.0)) == rate
                    && r["method"] == method
            })
            .filter_map(|r| r[field].as_f64())
            .collect()
    };
    for (m, rate, method) in &keys {
        let acc: Vec<f64> = pick(m, rate, method, "accuracy")
            .iter()
            .map(|a| 100.0 * a)
            .collect();
        let dense: Vec<f64> = pick(m, "1", "dense", "accuracy")
            .iter()
            .map(|a| 100.0 * a)
            .collect();
        let (a, sd) = mean_sd(&acc);
        let (d, _) = mean_sd(&dense);
        let (lat, _) = mean_sd(&pick(m, rate, method, "latency_ms"));
        let (secs, _) = mean_sd(&pick(m, rate, method, "seconds"));
        let rate_label = if method == "dense" {
            "1".to_string()
        } else {
            format!("{rate}x")
        };
        let _ = writeln!(
            md,
            "| {m} | {rate_label} | {method} | {a:.2} ± {sd:.2} | {:+.2} | {:.1} | {secs:.1} |",
            a - d,
            1000.0 * lat
        );
    }
    md
}
