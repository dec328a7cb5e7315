//! `cargo xtask bench mca`: static throughput of grim's aarch64 inner loops
//! under llvm-mca, since there is no phone to time them on.
//!
//! For every layer of layers.json at 8x sparsity with 8x16 blocks, grimc
//! compiles the single-gemm model for `aarch64-linux-gnu` (cortex-a76) and
//! writes assembly; the hottest innermost loop is the one with the most
//! `fmla`/`fmadd` instructions among the blocks that branch back to their
//! own label. llvm-mca-22 then simulates 500 iterations of it on cortex-a76
//! and cortex-a55. Reported per loop: FMAs per iteration, cycles per
//! iteration, the FP/ASIMD pipes' busy share (resource pressure on those
//! pipes / (pipes x cycles)) and the FMA issue rate against the core's peak
//! of one FMA per FP pipe per cycle.

use anyhow::{bail, Context as _, Result};
use serde_json::{json, Value};
use std::{fmt::Write as _, path::Path, process::Command};

/// One analysed loop.
pub struct LoopFigures {
    /// Layer name.
    pub layer: String,
    /// `spmm` or `spmv`.
    pub kernel: &'static str,
    /// FMA instructions per iteration.
    pub fmas: usize,
    /// Instructions per iteration.
    pub instructions: usize,
    /// Per CPU: (name, cycles per iteration, pipes busy share, FMA rate vs peak).
    pub cpus: Vec<(String, f64, f64, f64)>,
}

/// FP/ASIMD pipes that execute FMAs, and how llvm-mca names their resources.
fn fp_pipes(cpu: &str) -> (usize, &'static [&'static str]) {
    match cpu {
        // LLVM 22 has no Cortex-A76 model of its own: -mcpu=cortex-a76 uses
        // the Cortex-A57 one, whose FP/ASIMD pipes are W and X.
        "cortex-a76" => (2, &["A57UnitW", "A57UnitX"]),
        // Cortex-A55: the two FP multiply-accumulate pipes.
        _ => (2, &["CortexA55UnitFPMAC"]),
    }
}

/// The innermost hot loop of an assembly file: the self-branching block with the most FMAs.
pub fn hot_loop(assembly: &str) -> Option<Vec<String>> {
    let mut best: Option<(usize, Vec<String>)> = None;
    let mut current: Option<(String, Vec<String>, bool)> = None;
    let mut finish = |block: Option<(String, Vec<String>, bool)>| {
        if let Some((_, lines, true)) = block {
            let fmas = lines.iter().filter(|l| is_fma(l)).count();
            if fmas > 0 && best.as_ref().is_none_or(|(n, _)| fmas > *n) {
                best = Some((fmas, lines));
            }
        }
    };
    for line in assembly.lines() {
        if let Some(label) = line
            .strip_suffix(':')
            .filter(|l| !l.starts_with(['\t', ' ']) && !l.contains(' '))
        {
            finish(current.take());
            current = Some((label.to_string(), Vec::new(), false));
            continue;
        }
        let Some((label, lines, closed)) = current.as_mut() else {
            continue;
        };
        let text = line.trim();
        if *closed || text.is_empty() || text.starts_with('.') || text.starts_with("//") {
            continue;
        }
        lines.push(text.to_string());
        let branch = text.split_whitespace().next().unwrap_or("");
        if (branch == "b"
            || branch.starts_with("b.")
            || ["cbz", "cbnz", "tbz", "tbnz"].contains(&branch))
            && text.split([' ', ',', '\t']).any(|t| t == label.as_str())
        {
            *closed = true;
        }
    }
    finish(current.take());
    best.map(|(_, lines)| lines)
}

fn is_fma(line: &str) -> bool {
    let op = line.split_whitespace().next().unwrap_or("");
    op == "fmla" || op == "fmadd"
}

fn mca(loop_file: &Path, cpu: &str) -> Result<(f64, f64, f64, usize)> {
    let output = Command::new(format!("{}/llvm-mca", crate::LLVM_BIN))
        .args([
            "-mtriple=aarch64",
            &format!("-mcpu={cpu}"),
            "-iterations=500",
        ])
        .arg(loop_file)
        .output()
        .context("bench mca: cannot run llvm-mca (LLVM 22 tools; `cargo xtask setup`)")?;
    if !output.status.success() {
        bail!(
            "bench mca: llvm-mca failed for {cpu}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let field = |name: &str| -> Result<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("bench mca: llvm-mca printed no '{name}'"))
    };
    let (iterations, cycles) = (field("Iterations:")?, field("Total Cycles:")?);
    let per_iteration = cycles / iterations;
    // "Resources:" maps [n] to names; "Resource pressure per iteration:" gives each one's cycles.
    let mut names: Vec<(String, String)> = Vec::new();
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if line.starts_with("Resources:") {
            break;
        }
    }
    for line in lines.by_ref() {
        let line = line.trim();
        if line.is_empty() {
            break;
        }
        if let Some((id, name)) = line.split_once(" - ") {
            names.push((id.trim().to_string(), name.trim().to_string()));
        }
    }
    let mut pressure = Vec::new();
    let mut lines = text.lines();
    for line in lines.by_ref() {
        if line.starts_with("Resource pressure per iteration:") {
            break;
        }
    }
    let ids: Vec<String> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(String::from)
        .collect();
    let values: Vec<f64> = lines
        .next()
        .unwrap_or("")
        .split_whitespace()
        .map(|v| v.parse().unwrap_or(0.0))
        .collect();
    for (id, value) in ids.iter().zip(&values) {
        if let Some((_, name)) = names.iter().find(|(n, _)| n == id) {
            pressure.push((name.clone(), *value));
        }
    }
    let (pipes, pipe_names) = fp_pipes(cpu);
    let fp_pressure: f64 = pressure
        .iter()
        .filter(|(name, _)| pipe_names.iter().any(|p| name == p))
        .map(|(_, v)| v)
        .sum();
    let instructions = field("Instructions:")? / iterations;
    Ok((
        per_iteration,
        fp_pressure / (pipes as f64 * per_iteration),
        pipes as f64,
        instructions as usize,
    ))
}

/// Analyses the aarch64 inner loop of each model; `models` are (layer, N, model path).
pub fn analyse(
    grimc: &Path,
    models: &[(String, usize, std::path::PathBuf)],
    work: &Path,
) -> Result<Vec<LoopFigures>> {
    std::fs::create_dir_all(work)
        .with_context(|| format!("bench mca: cannot create {}", work.display()))?;
    let mut out = Vec::new();
    for (layer, n, model) in models {
        let id: String = layer
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let dir = work.join(id);
        let status = Command::new(grimc)
            .args(["compile"])
            .arg(model)
            .args([
                "--target",
                "aarch64-linux-gnu",
                "--block",
                "8x16",
                "--emit",
                "asm",
                "--name",
                "kernel",
                "-o",
            ])
            .arg(&dir)
            .output()
            .context("bench mca: cannot run grimc")?;
        if !status.status.success() {
            bail!(
                "bench mca: grimc compile {} failed: {}",
                model.display(),
                String::from_utf8_lossy(&status.stderr)
            );
        }
        let assembly =
            std::fs::read_to_string(dir.join("kernel.s")).context("bench mca: no assembly")?;
        let Some(body) = hot_loop(&assembly) else {
            bail!("bench mca: no FMA loop in the assembly of {layer}")
        };
        let loop_file = dir.join("hot-loop.s");
        std::fs::write(&loop_file, body.join("\n") + "\n")?;
        let fmas = body.iter().filter(|l| is_fma(l)).count();
        let mut cpus = Vec::new();
        let mut instructions = body.len();
        for cpu in ["cortex-a76", "cortex-a55"] {
            let (cycles, busy, pipes, count) = mca(&loop_file, cpu)?;
            instructions = count;
            cpus.push((
                cpu.to_string(),
                cycles,
                busy,
                fmas as f64 / (pipes * cycles),
            ));
        }
        out.push(LoopFigures {
            layer: layer.clone(),
            kernel: if *n == 1 { "spmv" } else { "spmm" },
            fmas,
            instructions,
            cpus,
        });
    }
    Ok(out)
}

/// The figures as JSON.
pub fn to_json(figures: &[LoopFigures]) -> Value {
    json!(figures
        .iter()
        .map(|f| json!({
            "layer": f.layer, "kernel": f.kernel, "fmas_per_iteration": f.fmas, "instructions_per_iteration": f.instructions,
            "cpus": f.cpus.iter().map(|(cpu, cycles, busy, rate)| json!({
                "cpu": cpu, "cycles_per_iteration": cycles, "fp_pipes_busy": busy, "fma_rate_vs_peak": rate
            })).collect::<Vec<_>>()
        }))
        .collect::<Vec<_>>())
}

/// The figures as a Markdown section (with the command that made them).
pub fn markdown(figures: &[LoopFigures]) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "## aarch64 inner loops under llvm-mca\n");
    let _ = writeln!(md, "Command: `cargo xtask bench mca` (writes docs/benchmarks/mca.md and mca.json). Each layer at 8x with 8x16 blocks, compiled by `grimc compile MODEL --target aarch64-linux-gnu --block 8x16 --emit asm` (cpu cortex-a76); the loop analysed is the self-branching block with the most FMAs, run through `llvm-mca-22 -mtriple=aarch64 -mcpu=CPU -iterations=500`. *FP pipes busy* = llvm-mca's resource pressure on the two FP/ASIMD pipes / (2 x cycles per iteration); *FMA rate* = FMAs per cycle / 2 (the peak of one FMA per pipe per cycle). LLVM 22 has no scheduling model of its own for Cortex-A76: `-mcpu=cortex-a76` uses the Cortex-A57 model, in which a 128-bit `fmla` occupies both FP pipes (W and X) for a cycle, so *FP pipes busy* near 100% means the loop issues one 128-bit FMA per cycle, the model's peak, while the real A76 can issue two (its *FMA rate* column assumes two). Both are shown.\n");
    let _ = writeln!(md, "| layer | kernel | FMAs / iter | instr / iter | A76 cycles / iter | A76 FP pipes busy | A76 FMA rate | A55 cycles / iter | A55 FMA rate |");
    let _ = writeln!(
        md,
        "| --- | --- | --: | --: | --: | --: | --: | --: | --: |"
    );
    for f in figures {
        let a76 = f.cpus.iter().find(|c| c.0 == "cortex-a76");
        let a55 = f.cpus.iter().find(|c| c.0 == "cortex-a55");
        let cell = |c: Option<&(String, f64, f64, f64)>, i: usize| match (c, i) {
            (Some(c), 1) => format!("{:.2}", c.1),
            (Some(c), 2) => format!("{:.0}%", 100.0 * c.2),
            (Some(c), 3) => format!("{:.0}%", 100.0 * c.3),
            _ => "-".into(),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            f.layer,
            f.kernel,
            f.fmas,
            f.instructions,
            cell(a76, 1),
            cell(a76, 2),
            cell(a76, 3),
            cell(a55, 1),
            cell(a55, 3)
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hot_loop_is_the_self_branching_block_with_most_fmas() {
        let assembly = "f:\n\tmov x0, #0\n.LBB0_1:\n\tfmla v0.4s, v1.4s, v2.s[0]\n\tb.ne .LBB0_1\n\tfmla v9.4s, v9.4s, v9.4s\n.LBB0_2:\n\tldr q0, [x1]\n\tfmla v0.4s, v1.4s, v2.s[0]\n\tfmla v3.4s, v1.4s, v2.s[0]\n\tsubs x2, x2, #1\n\tb.ne .LBB0_2\n\tret\n.LBB0_3:\n\tfmla v0.4s, v1.4s, v2.4s\n\tfmla v0.4s, v1.4s, v2.4s\n\tfmla v0.4s, v1.4s, v2.4s\n\tret\n";
        let body = hot_loop(assembly).unwrap();
        assert_eq!(body.len(), 5, "{body:?}");
        assert!(body.last().unwrap().contains(".LBB0_2"));
    }
}
