//! Running a compiled model from `grimc`: its inputs (given `.npy` files
//! or fixed-seed values), the linked runner in a temporary or kept
//! directory, and the per-layer times the runner prints.

use anyhow::{bail, Context as _, Result};
use grim_compiler::{driver, link};
use grim_model::read_npy;
use std::path::{Path, PathBuf};

/// Per-layer mean milliseconds per run, from the runner's `layer_ms:` lines
/// (totals over `runs` timed runs), named by the compiled model's layer list.
pub fn layer_times(stdout: &str, names: &[String], runs: usize) -> Result<Vec<(String, f64)>> {
    let mut times = vec![0.0; names.len()];
    for line in stdout.lines().filter_map(|l| l.strip_prefix("layer_ms: ")) {
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
        };
        let index: usize = field("index")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("malformed profile line: {line}"))?;
        let total: f64 = field("total")
            .and_then(|v| v.parse().ok())
            .with_context(|| format!("malformed profile line: {line}"))?;
        let slot = times.get_mut(index).with_context(|| {
            format!(
                "the runner timed layer {index}, the model has {}",
                names.len()
            )
        })?;
        *slot = total / runs as f64;
    }
    Ok(names.iter().cloned().zip(times).collect())
}

/// Links the compiled model with the runner and the runtime in a temporary
/// directory and runs it `repeat` times; returns the outputs and the runner's stdout.
pub fn run_compiled(
    compiled: &driver::Compiled,
    inputs: &[grim_model::Tensor],
    threads: usize,
    repeat: usize,
) -> Result<(Vec<grim_model::Tensor>, String)> {
    let work = tempfile::tempdir()?;
    run_in(compiled, inputs, threads, repeat, work.path())
}

/// [`run_compiled`] in `dir`, which keeps the object, the runner, its
/// inputs and a `run.sh` that reruns it (`grimc bench --keep`).
pub fn run_in(
    compiled: &driver::Compiled,
    inputs: &[grim_model::Tensor],
    threads: usize,
    repeat: usize,
    dir: &Path,
) -> Result<(Vec<grim_model::Tensor>, String)> {
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let object = dir.join("model.o");
    std::fs::write(&object, &compiled.artifacts.object)
        .with_context(|| format!("{}: cannot write", object.display()))?;
    let exe = dir.join("model-runner");
    link::link_runner(&compiled.target, &object, dir, &exe)?;
    let ins: Vec<String> = (0..inputs.len()).map(link::input_file).collect();
    let outs: Vec<String> = (0..compiled.interface.outputs.len())
        .map(link::output_file)
        .collect();
    let script = format!(
        "#!/bin/sh\n# Reruns the benchmarked model (written by grimc).\ncd \"$(dirname \"$0\")\" && exec ./model-runner --threads {threads} --repeat {repeat} {} -- {}\n",
        ins.join(" "),
        outs.join(" ")
    );
    let run_sh = dir.join("run.sh");
    std::fs::write(&run_sh, script)
        .with_context(|| format!("{}: cannot write", run_sh.display()))?;
    Ok(link::run_runner(
        &compiled.target,
        &exe,
        dir,
        inputs,
        &compiled.interface.outputs,
        threads,
        repeat,
    )?)
}

/// The given inputs (checked against the model's shapes), or fixed-seed values in [-1, 1).
/// Reads the `--input` files before anything is compiled, so a missing or
/// malformed file fails in milliseconds, not after a compile.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<(PathBuf, grim_model::Tensor)>> {
    paths
        .iter()
        .map(|path| Ok((path.clone(), read_npy(path)?)))
        .collect()
}

pub fn model_inputs(
    shapes: &[Vec<usize>],
    given: Vec<(PathBuf, grim_model::Tensor)>,
) -> Result<Vec<grim_model::Tensor>> {
    if !given.is_empty() && given.len() != shapes.len() {
        bail!(
            "the model has {} inputs, {} --input given",
            shapes.len(),
            given.len()
        );
    }
    let mut given = given.into_iter();
    let mut tensors = Vec::new();
    for (index, shape) in shapes.iter().enumerate() {
        let tensor = match given.next() {
            Some((path, tensor)) => {
                if tensor.shape != *shape {
                    bail!(
                        "{}: error: input {index} has shape {:?}, the model wants {:?}",
                        path.display(),
                        tensor.shape,
                        shape
                    );
                }
                tensor
            }
            None => grim_model::Tensor::fixed_seed(
                shape.clone(),
                0x9e37_79b9_7f4a_7c15u64 ^ index as u64,
            ),
        };
        tensors.push(tensor);
    }
    Ok(tensors)
}
