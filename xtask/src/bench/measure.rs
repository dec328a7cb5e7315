//! Measurements: timing one grim case with `grimc bench`, reading the cost
//! model's choice with `grimc inspect`, and the result rows (GFLOP/s) the
//! report is built from.

use super::{
    cases::{kernel_flags, Case},
    layers::{Layer, LayersFile},
};
use crate::capture;
use anyhow::{bail, Context as _, Result};
use serde_json::Value;
use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// One timed implementation on one case and thread count.
#[derive(Debug, Clone, serde::Serialize)]
pub(super) struct Row {
    pub(super) implementation: String,
    pub(super) layer: String,
    pub(super) sparsity: Option<String>,
    pub(super) block: Option<String>,
    pub(super) threads: usize,
    pub(super) median_ms: f64,
    pub(super) min_ms: f64,
    pub(super) max_ms: f64,
    pub(super) runs: usize,
    /// Nonzero weights of the W this implementation multiplies.
    pub(super) nonzeros: usize,
    /// 2 * nonzeros * N / median.
    pub(super) useful_gflops: f64,
    /// 2 * M * K * N / median.
    pub(super) dense_equiv_gflops: f64,
    pub(super) seed: Option<u64>,
}

pub(super) struct Budget {
    pub(super) seconds: f64,
    pub(super) min_runs: usize,
    pub(super) max_runs: usize,
}

pub(super) fn runs_for(budget: &Budget, ms: f64) -> usize {
    ((budget.seconds * 1e3 / ms.max(1e-6)).ceil() as usize).clamp(budget.min_runs, budget.max_runs)
}

pub(super) struct GrimTiming {
    pub(super) median_ms: f64,
    pub(super) min_ms: f64,
    pub(super) max_ms: f64,
    pub(super) runs: usize,
    pub(super) json: Value,
}

/// Runs a `grimc bench ... --json` command and parses the JSON line it
/// prints last (per-layer tables and notes come before it).
pub(super) fn bench_json(what: &str, command: &mut Command) -> Result<Value> {
    let stdout = capture(what, command)?;
    let line = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .context("grimc bench printed no JSON")?;
    serde_json::from_str(line).with_context(|| format!("grimc bench printed invalid JSON: {line}"))
}

pub(super) fn grimc_bench(
    grimc: &Path,
    case: &Case,
    threads: usize,
    runs: usize,
) -> Result<GrimTiming> {
    let mut command = Command::new(grimc);
    command
        .arg("bench")
        .arg(&case.model)
        .args(kernel_flags(case));
    command.args([
        "--threads",
        &threads.to_string(),
        "--runs",
        &runs.to_string(),
        "--json",
    ]);
    let json = bench_json(&format!("bench (grimc bench {})", case.id), &mut command)?;
    let line = json.to_string();
    let number = |name: &str| {
        json[name]
            .as_f64()
            .with_context(|| format!("grimc bench JSON has no number `{name}`: {line}"))
    };
    Ok(GrimTiming {
        median_ms: number("median_ms")?,
        min_ms: number("min_ms")?,
        max_ms: number("max_ms")?,
        runs: number("runs")? as usize,
        json,
    })
}

/// The first layer row of `grimc inspect MODEL --json` with the case's kernel flags.
pub(super) fn inspect_layer(grimc: &Path, case: &Case) -> Result<Value> {
    let mut command = Command::new(grimc);
    command
        .arg("inspect")
        .arg(&case.model)
        .args(kernel_flags(case))
        .arg("--json");
    let text = capture("bench (grimc inspect)", &mut command)?;
    let report: Value =
        serde_json::from_str(&text).context("grimc inspect printed invalid JSON")?;
    match report["layers"].as_array().and_then(|l| l.first()) {
        Some(row) => Ok(row.clone()),
        None => bail!("grimc inspect printed no layer: {text}"),
    }
}

/// The models llvm-mca reads: each GEMM-view layer at 8x with block 8x16,
/// as `(layer, N, model file)`.
pub(super) fn mca_models(file: &LayersFile, cases: &[Case]) -> Vec<(String, usize, PathBuf)> {
    cases
        .iter()
        .filter(|c| c.is_gemm_8x_8x16(file))
        .map(|c| {
            (
                file.layers[c.layer].name.clone(),
                file.layers[c.layer].n,
                c.model.clone(),
            )
        })
        .collect()
}

fn gflops(flop_count: f64, ms: f64) -> f64 {
    flop_count / (ms * 1e6)
}

#[allow(clippy::too_many_arguments)]
pub(super) fn make_row(
    implementation: &str,
    layer: &Layer,
    sparsity: Option<&str>,
    block: Option<String>,
    threads: usize,
    timing: (f64, f64, f64, usize),
    nonzeros: usize,
    seed: Option<u64>,
) -> Row {
    let (median_ms, min_ms, max_ms, runs) = timing;
    Row {
        implementation: implementation.to_string(),
        layer: layer.name.clone(),
        sparsity: sparsity.map(str::to_string),
        block,
        threads,
        median_ms,
        min_ms,
        max_ms,
        runs,
        nonzeros,
        useful_gflops: gflops(2.0 * nonzeros as f64 * layer.n as f64, median_ms),
        dense_equiv_gflops: gflops(2.0 * (layer.m * layer.k * layer.n) as f64, median_ms),
        seed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adaptive_runs_are_clamped() {
        let b = Budget {
            seconds: 0.5,
            min_runs: 10,
            max_runs: 1000,
        };
        assert_eq!(runs_for(&b, 50.0), 10);
        assert_eq!(runs_for(&b, 1.0), 500);
        assert_eq!(runs_for(&b, 0.0001), 1000);
    }
}
