//! `cargo xtask bench rnns`: the recurrent zoo (the speech GRU, 2 x 1024,
//! and the LSTM, 2 x 650; `grimc example --model gru-speech|lstm`) at
//! sequence length 100, batch 1 and 8, on 1 and 2 threads, all in one run:
//! grim BCR (the 10x-pruned model, grimc's default flags: the cost model
//! picks the kernel), grim dense (the dense model, `--kernel dense`), and
//! onnxruntime and tract on the same files (`xtask/bench/models_peers.py`
//! in target/bench/models-venv, as `bench models` runs them). Latency per
//! sequence and per step (the sequence's time / 100). The report goes to
//! docs/benchmarks/rnns.{md,json}; `--quick` (the GRU only, batch 1, 1
//! thread, few runs) writes it to target/bench/rnns-quick/.

use super::models::number;
use crate::{heading, repo_root, run, target_dir, venv};
use anyhow::{bail, Context as _, Result};
use grim_model::{write_npy, Tensor};
use serde_json::{json, Value};
use std::{fmt::Write as _, path::Path, process::Command, time::Instant};

/// Steps per sequence.
const SEQ: usize = 100;
/// Input features of both models.
const FEATURES: usize = 153;

/// One model file of the run.
struct Model {
    name: &'static str,
    batch: usize,
    dense: bool,
    path: std::path::PathBuf,
    input: std::path::PathBuf,
}

impl Model {
    fn id(&self) -> String {
        let variant = if self.dense { "dense" } else { "bcr" };
        format!("{}_b{}_{variant}", self.name, self.batch)
    }
}

/// `cargo xtask bench rnns [--quick]`.
pub fn rnns(args: &[&str]) -> Result<()> {
    let quick = match args {
        [] => false,
        ["--quick"] => true,
        _ => bail!("bench rnns: usage: cargo xtask bench rnns [--quick]"),
    };
    let started = Instant::now();
    crate::runtime()?;
    let grimc = crate::build_grimc("bench rnns")?;
    let bench_dir = target_dir().join("bench");
    let dir = bench_dir.join(if quick { "rnns-quick" } else { "rnns" });
    std::fs::create_dir_all(&dir)?;
    let report_dir = if quick {
        dir.clone()
    } else {
        repo_root().join("docs").join("benchmarks")
    };
    let (names, batches, threads, runs): (&[&str], &[usize], &[usize], usize) = if quick {
        (&["gru-speech"], &[1], &[1], 5)
    } else {
        (&["gru-speech", "lstm"], &[1, 8], &[1, 2], 20)
    };
    heading("bench rnns: make the models");
    let mut models = Vec::new();
    for &name in names {
        for &batch in batches {
            let input = dir.join(format!("input_b{batch}.npy"));
            let x = Tensor::new(
                vec![SEQ, batch, FEATURES],
                grim_model::tensor::fixed_seed_values(7, SEQ * batch * FEATURES),
            )?;
            write_npy(&input, &x)?;
            for dense in [false, true] {
                let mut model = Model {
                    name,
                    batch,
                    dense,
                    path: Default::default(),
                    input: input.clone(),
                };
                model.path = dir.join(format!("{}.onnx", model.id()));
                if !model.path.exists() {
                    let mut example = Command::new(&grimc);
                    example
                        .args(["example", "--model", name, "--seq", &SEQ.to_string()])
                        .args(["--batch", &batch.to_string(), "-o"])
                        .arg(&model.path);
                    if dense {
                        example.arg("--dense");
                    }
                    run("bench rnns (grimc example)", &mut example)?;
                }
                models.push(model);
            }
        }
    }
    heading("bench rnns: grim");
    let mut grim = Vec::new();
    for model in &models {
        for &t in threads {
            let mut command = Command::new(&grimc);
            command.arg("bench").arg(&model.path).args([
                "--threads",
                &t.to_string(),
                "--runs",
                &runs.to_string(),
                "--json",
            ]);
            if model.dense {
                command.args(["--kernel", "dense"]);
            }
            let timing = super::measure::bench_json(
                &format!("bench rnns (grimc bench {})", model.id()),
                &mut command,
            )?;
            let implementation = if model.dense {
                "grim-dense"
            } else {
                "grim-bcr"
            };
            println!(
                "bench rnns: {:<22} {implementation:<11} {t} thread(s) {:9.2} ms",
                model.id(),
                number(&timing, "median_ms")?
            );
            grim.push(json!({"model": model.id(), "implementation": implementation, "threads": t, "timing": timing}));
        }
    }
    heading("bench rnns: peers");
    let python = venv::create("bench rnns", &bench_dir.join("models-venv"))?;
    for package in ["numpy", "onnx", "onnxruntime==1.32.0", "tract"] {
        if let Err(failure) = venv::pip_install(&python, package) {
            println!("{failure}");
        }
    }
    let spec = json!({
        "threads": threads,
        "budget_s": if quick { 0.5 } else { 3.0 },
        "min_reps": if quick { 2 } else { 5 },
        "max_reps": 200,
        "work_dir": dir,
        "peers": ["onnxruntime", "tract"],
        "models": models.iter().map(|m| json!({"id": m.id(), "path": m.path, "input": m.input})).collect::<Vec<_>>(),
    });
    let spec_path = dir.join("peers-spec.json");
    let out_path = dir.join("peers.json");
    std::fs::write(&spec_path, serde_json::to_string_pretty(&spec)?)?;
    run(
        "bench rnns (models_peers.py)",
        Command::new(&python)
            .arg(repo_root().join("xtask/bench/models_peers.py"))
            .arg(&spec_path)
            .arg(&out_path),
    )?;
    let peers: Value = serde_json::from_str(
        &std::fs::read_to_string(&out_path).with_context(|| format!("{}", out_path.display()))?,
    )?;
    let results = json!({
        "machine": super::machine::machine_facts(),
        "git": super::machine::git_state(),
        "date": super::machine::utc_now(),
        "quick": quick,
        "seq": SEQ,
        "runs": runs,
        "grim": grim,
        "peers": peers,
    });
    write_report(&report_dir, &results)?;
    println!(
        "bench rnns: wrote {} ({:.0} s)",
        report_dir.join("rnns.md").display(),
        started.elapsed().as_secs_f32()
    );
    Ok(())
}

/// rnns.json and the table in rnns.md.
fn write_report(dir: &Path, results: &Value) -> Result<()> {
    std::fs::write(
        dir.join("rnns.json"),
        serde_json::to_string_pretty(results)?,
    )?;
    let machine = &results["machine"];
    let mut md = String::new();
    let _ = writeln!(md, "# Recurrent networks: grim against dense engines\n");
    let _ = writeln!(
        md,
        "Written by `cargo xtask bench rnns` ({}; git {}). Machine: {} ({} logical CPUs, kernel {}); grim generates for {} (**{}**). Sequence length {}, median of {} runs per grim figure; peers by `xtask/bench/models_peers.py` (two warm-ups, then a time budget). Weights: PyTorch's initialisation; the BCR models multiply each gate's W and R by a mask of 8x16 blocks keeping 4 of 8 rows and 3 of 16 columns (10.7x), drawn per block from a fixed seed; grim BCR runs grimc's default flags (the cost model picks the kernel), grim dense the dense file with `--kernel dense`, onnxruntime and tract the very same files. Ratios are from this run only.\n",
        results["date"].as_str().unwrap_or("?"),
        results["git"]["head"].as_str().unwrap_or("?"),
        machine["cpu_model"].as_str().unwrap_or("?"),
        machine["logical_cpus"],
        machine["kernel"].as_str().unwrap_or("?"),
        grim_cpu(results),
        grim_isa(results),
        results["seq"],
        results["runs"],
    );
    let _ = writeln!(
        md,
        "| model | batch | threads | grim BCR ms | per step µs | grim dense ms | onnxruntime ms | tract ms | onnxruntime / grim BCR | grim dense / onnxruntime |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let grim = results["grim"].as_array().cloned().unwrap_or_default();
    let peer_results = results["peers"]["results"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let seq = results["seq"].as_f64().unwrap_or(100.0);
    let grim_ms = |model: &str, threads: u64| {
        grim.iter()
            .find(|g| g["model"] == model && g["threads"] == threads)
            .and_then(|g| g["timing"]["median_ms"].as_f64())
    };
    let peer_ms = |model: &str, peer: &str, threads: u64| {
        peer_results
            .iter()
            .find(|p| p["model"] == model && p["peer"] == peer && p["threads"] == threads)
            .and_then(|p| p["median_ms"].as_f64())
    };
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}"));
    let mut rows: Vec<(String, u64, u64)> = grim
        .iter()
        .filter(|g| g["implementation"] == "grim-bcr")
        .map(|g| {
            (
                g["model"].as_str().unwrap_or("").to_string(),
                g["threads"].as_u64().unwrap_or(1),
                0,
            )
        })
        .collect();
    rows.dedup();
    for (model, threads, _) in rows {
        let dense_model = model.replace("_bcr", "_dense");
        let (name, batch) = model
            .trim_end_matches("_bcr")
            .rsplit_once("_b")
            .map(|(n, b)| (n.to_string(), b.to_string()))
            .unwrap_or_default();
        let bcr = grim_ms(&model, threads);
        let dense = grim_ms(&dense_model, threads);
        // The peers run the BCR file (dense engines do the same work on either).
        let ort = peer_ms(&model, "onnxruntime", threads);
        let tract = peer_ms(&model, "tract", threads);
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
            _ => "-".into(),
        };
        let _ = writeln!(
            md,
            "| {name} | {batch} | {threads} | {} | {} | {} | {} | {} | {} | {} |",
            fmt(bcr),
            bcr.map_or("-".into(), |b| format!("{:.0}", 1000.0 * b / seq)),
            fmt(dense),
            fmt(ort),
            fmt(tract),
            ratio(ort, bcr),
            ratio(dense, peer_ms(&dense_model, "onnxruntime", threads)),
        );
    }
    let _ = writeln!(
        md,
        "\ntract's Python bindings run one thread, so it has figures at 1 thread only. Every peer's output is checked against onnxruntime's in `rnns.json` (`peers.checks`); grim's equality to onnxruntime is tested by `cargo xtask zoo`. The analysis of each figure against its target is in [analysis.md](analysis.md#recurrent-networks).\n"
    );
    if let Some(unavailable) = results["peers"]["unavailable"].as_object() {
        for (peer, why) in unavailable {
            let _ = writeln!(md, "- {peer} did not run: {}", why.as_str().unwrap_or("?"));
        }
    }
    std::fs::write(dir.join("rnns.md"), md)?;
    Ok(())
}

fn grim_cpu(results: &Value) -> String {
    results["grim"][0]["timing"]["cpu"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}

fn grim_isa(results: &Value) -> String {
    results["grim"][0]["timing"]["isa"]
        .as_str()
        .unwrap_or("?")
        .to_string()
}
