//! grimc: compile, run and inspect BCR-sparse models.

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use grim_compiler::{
    driver::{self, Level, Options},
    inspect, link,
    output::write_atomically,
};
use grim_model::{read_npy, write_npy};
use std::{path::PathBuf, process::ExitCode};

#[derive(Parser)]
#[command(
    name = "grimc",
    version,
    about = "Compile neural networks with BCR block sparsity to native aarch64/host code"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// The model: .onnx or .mlir (grim dialect).
    model: PathBuf,
    /// Default BCR block size RxC for layers the LR file does not name.
    #[arg(long, default_value = "8x16")]
    block: String,
    /// Layerwise representation (JSON): per-layer block size and order.
    #[arg(long)]
    lr: Option<PathBuf>,
    /// Keep the natural block order instead of GRIM's reorder.
    #[arg(long)]
    no_reorder: bool,
    /// Print weights in full in MLIR output (a whole model that compiles
    /// again); by default they are elided.
    #[arg(long)]
    print_weights: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Compile a model to an object, assembly, LLVM IR, MLIR and a C header.
    Compile {
        #[command(flatten)]
        model: ModelArgs,
        /// host or aarch64-linux-gnu.
        #[arg(long, default_value = "host")]
        target: String,
        /// CPU name (default: cortex-a76 for aarch64, the host CPU for host).
        #[arg(long)]
        cpu: Option<String>,
        /// Comma-separated: obj,asm,llvm,mlir,header,weights (weights: blob file instead of embedding).
        #[arg(long, default_value = "obj,header")]
        emit: String,
        /// C name of the model (default: from the file name).
        #[arg(long)]
        name: Option<String>,
        /// Output directory.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Compile, link with the runtime and run (aarch64 under qemu-aarch64).
    Run {
        #[command(flatten)]
        model: ModelArgs,
        /// Input .npy files, in the graph's input order.
        #[arg(long = "input", required = true)]
        inputs: Vec<PathBuf>,
        /// Output .npy files, in the graph's output order.
        #[arg(long = "output", required = true)]
        outputs: Vec<PathBuf>,
        /// Threads in the runtime's pool.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// host or aarch64-linux-gnu.
        #[arg(long, default_value = "host")]
        target: String,
    },
    /// Print one row per layer: shape, block, groups, stored values, fill, index bytes vs CSR.
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print the MLIR of a model at one level (graph, bcr, loops, llvm).
    Lower {
        #[command(flatten)]
        model: ModelArgs,
        /// The level to print.
        #[arg(long = "compile-to", value_enum)]
        level: Level,
        /// host or aarch64-linux-gnu (decides the vector width).
        #[arg(long, default_value = "host")]
        target: String,
    },
    /// Compile for the host and time R runs after a warm-up: median, min and max latency.
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        /// Input .npy files, in the graph's input order (default: fixed-seed values in [-1, 1)).
        #[arg(long = "input")]
        inputs: Vec<PathBuf>,
        /// Threads in the runtime's pool.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Timed runs (after one warm-up run).
        #[arg(long, default_value_t = 50)]
        runs: usize,
        /// Print one JSON object instead of a line.
        #[arg(long)]
        json: bool,
        /// Also time every layer (compiles with profiling calls around each
        /// layer; their cost is a clock read per layer boundary).
        #[arg(long)]
        per_layer: bool,
    },
    /// Write a built-in BCR-pruned example model as ONNX (no download): the
    /// MLP, or with --cnn a small CNN (3x3, strided 3x3 and 1x1 convs, FC).
    Example {
        /// Random seed of the weights.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// The CNN instead of the MLP.
        #[arg(long)]
        cnn: bool,
        /// Output .onnx file.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

fn options(model: &ModelArgs, target: &str) -> Result<Options> {
    let mut options = Options::new(&model.model, target);
    options.block = grim_passes::parse_block(&model.block).with_context(|| {
        format!(
            "--block must be RxC with 1..=64 each, got '{}'",
            model.block
        )
    })?;
    options.lr = model.lr.clone();
    options.reorder = !model.no_reorder;
    options.print_weights = model.print_weights;
    Ok(options)
}

/// Per-layer mean milliseconds per run, from the runner's `layer_ms:` lines
/// (totals over `runs` timed runs), named by the compiled model's layer list.
fn layer_times(stdout: &str, names: &[String], runs: usize) -> Result<Vec<(String, f64)>> {
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
fn run_compiled(
    compiled: &driver::Compiled,
    inputs: &[grim_model::Tensor],
    threads: usize,
    repeat: usize,
) -> Result<(Vec<grim_model::Tensor>, String)> {
    let work = tempfile::tempdir()?;
    let object = work.path().join("model.o");
    std::fs::write(&object, &compiled.artifacts.object)?;
    let exe = work.path().join("model-runner");
    link::link_runner(&compiled.target, &object, work.path(), &exe)?;
    Ok(link::run_runner(
        &compiled.target,
        &exe,
        work.path(),
        inputs,
        &compiled.interface.outputs,
        threads,
        repeat,
    )?)
}

/// The given inputs (checked against the model's shapes), or fixed-seed values in [-1, 1).
fn model_inputs(shapes: &[Vec<usize>], paths: &[PathBuf]) -> Result<Vec<grim_model::Tensor>> {
    if !paths.is_empty() && paths.len() != shapes.len() {
        bail!(
            "the model has {} inputs, {} --input given",
            shapes.len(),
            paths.len()
        );
    }
    let mut tensors = Vec::new();
    for (index, shape) in shapes.iter().enumerate() {
        let tensor = match paths.get(index) {
            Some(path) => {
                let tensor = read_npy(path)?;
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

fn main() -> ExitCode {
    // A closed pipe (`grimc lower ... | head`) ends grimc quietly, as it
    // would any Unix tool, instead of making println! panic on EPIPE.
    // SAFETY: restoring the default disposition of a signal at startup,
    // before any thread exists.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // The typed errors already carry their causes; add anyhow's context chain only when it says more.
            let mut text = error.to_string();
            for cause in error.chain().skip(1) {
                let cause = cause.to_string();
                if !text.contains(&cause) {
                    text = format!("{text}: {cause}");
                }
            }
            if text.contains("error:") {
                eprintln!("{text}");
            } else {
                eprintln!("grimc: error: {text}");
            }
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Compile {
            model,
            target,
            cpu,
            emit,
            name,
            output,
        } => {
            let kinds: Vec<&str> = emit
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .collect();
            if let Some(bad) = kinds
                .iter()
                .find(|k| !["obj", "asm", "llvm", "mlir", "header", "weights"].contains(k))
            {
                bail!(
                    "--emit: unknown kind '{bad}' (expected obj, asm, llvm, mlir, header, weights)"
                );
            }
            let mut options = options(&model, &target)?;
            options.cpu = cpu;
            options.name = name;
            let embed = !kinds.contains(&"weights");
            let compiled = driver::compile(&options, embed, false)?;
            std::fs::create_dir_all(&output)
                .with_context(|| format!("{}: cannot create directory", output.display()))?;
            let base = output.join(&compiled.interface.name);
            // Everything is generated before anything is written, and each file is written atomically.
            let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
            for kind in &kinds {
                match *kind {
                    "obj" => {
                        files.push((base.with_extension("o"), compiled.artifacts.object.clone()))
                    }
                    "asm" => files.push((
                        base.with_extension("s"),
                        compiled.artifacts.assembly.clone().into_bytes(),
                    )),
                    "llvm" => files.push((
                        base.with_extension("ll"),
                        compiled.artifacts.llvm_ir.clone().into_bytes(),
                    )),
                    "mlir" => {
                        for (level, text) in &compiled.stages {
                            files.push((
                                output.join(
                                    format!("{}.{:?}.mlir", compiled.interface.name, level)
                                        .to_lowercase(),
                                ),
                                text.clone().into_bytes(),
                            ));
                        }
                    }
                    "header" => {
                        files.push((
                            base.with_extension("h"),
                            grim_compiler::codegen::header(
                                &compiled.interface,
                                compiled.blob.bytes.len(),
                                embed,
                                &compiled.target,
                            )
                            .into_bytes(),
                        ));
                        files.push((
                            output.join("grim_runtime.h"),
                            link::RUNTIME_H.as_bytes().to_vec(),
                        ));
                    }
                    "weights" => {
                        files.push((base.with_extension("weights"), compiled.blob.bytes.clone()))
                    }
                    _ => unreachable!("checked above"),
                }
            }
            for (path, bytes) in &files {
                write_atomically(path, bytes)
                    .with_context(|| format!("{}: cannot write", path.display()))?;
                println!("wrote {}", path.display());
            }
            println!(
                "target {} (cpu {}, {}), scratch {} bytes, weights {} bytes",
                compiled.target.triple,
                compiled.target.cpu,
                compiled.target.isa,
                compiled.interface.scratch_bytes,
                compiled.blob.bytes.len()
            );
            Ok(())
        }
        Command::Run {
            model,
            inputs,
            outputs,
            threads,
            target,
        } => {
            let options = options(&model, &target)?;
            let compiled = driver::compile(&options, true, true)?;
            if inputs.len() != compiled.interface.inputs.len() {
                bail!(
                    "the model has {} inputs, {} --input given",
                    compiled.interface.inputs.len(),
                    inputs.len()
                );
            }
            if outputs.len() != compiled.interface.outputs.len() {
                bail!(
                    "the model has {} outputs, {} --output given",
                    compiled.interface.outputs.len(),
                    outputs.len()
                );
            }
            let tensors = model_inputs(&compiled.interface.inputs, &inputs)?;
            let (results, _) = run_compiled(&compiled, &tensors, threads, 1)?;
            for (path, tensor) in outputs.iter().zip(&results) {
                write_npy(path, tensor)?;
            }
            Ok(())
        }
        Command::Inspect { model, json } => {
            let options = options(&model, "host")?;
            // The packing is decided at the bcr level; no code is generated.
            let lowered = driver::lower(&options, Level::Bcr)?;
            let rows = inspect::rows(&lowered.blob.layers);
            if json {
                println!("{}", serde_json::to_string_pretty(&rows)?);
            } else {
                print!("{}", inspect::table(&rows));
            }
            Ok(())
        }
        Command::Lower {
            model,
            level,
            target,
        } => {
            let options = options(&model, &target)?;
            let lowered = driver::lower(&options, level)?;
            let (_, text) = lowered
                .stages
                .iter()
                .find(|(l, _)| *l == level)
                .context("level not produced")?;
            print!("{text}");
            Ok(())
        }
        Command::Bench {
            model,
            inputs,
            threads,
            runs,
            json,
            per_layer,
        } => {
            if runs < 1 {
                bail!("--runs must be at least 1");
            }
            let mut options = options(&model, "host")?;
            options.profile = per_layer;
            let compiled = driver::compile(&options, true, true)?;
            let tensors = model_inputs(&compiled.interface.inputs, &inputs)?;
            // The runner warms up once, then times R runs; it prints timing for R > 1 only.
            let (_, stdout) = run_compiled(&compiled, &tensors, threads, runs.max(2))?;
            let timing = stdout
                .lines()
                .find_map(|l| l.strip_prefix("timing_ms: "))
                .context("the runner printed no timing line")?;
            let field = |name: &str| -> Result<f64> {
                timing
                    .split_whitespace()
                    .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
                    .and_then(|v| v.parse().ok())
                    .with_context(|| format!("timing line without {name}: {timing}"))
            };
            let (median, min, max, mean) = (
                field("median")?,
                field("min")?,
                field("max")?,
                field("mean")?,
            );
            let layers = if per_layer {
                layer_times(&stdout, &compiled.interface.layers, runs.max(2))?
            } else {
                Vec::new()
            };
            if json {
                let mut value = serde_json::json!({
                    "model": model.model.display().to_string(),
                    "median_ms": median, "min_ms": min, "max_ms": max, "mean_ms": mean,
                    "runs": runs.max(2), "threads": threads,
                    "target": compiled.target.triple, "cpu": compiled.target.cpu, "isa": compiled.target.isa,
                });
                if per_layer {
                    value["layers"] = serde_json::json!(layers
                        .iter()
                        .map(|(name, mean)| serde_json::json!({"name": name, "mean_ms": mean}))
                        .collect::<Vec<_>>());
                }
                println!("{value}");
            } else {
                println!(
                    "{}: median {median:.4} ms, min {min:.4} ms, max {max:.4} ms over {} runs, {threads} thread(s), {} ({}, {})",
                    model.model.display(), runs.max(2), compiled.target.triple, compiled.target.cpu, compiled.target.isa
                );
                if per_layer {
                    let total: f64 = layers.iter().map(|(_, mean)| mean).sum();
                    let width = layers
                        .iter()
                        .map(|(name, _)| name.len())
                        .max()
                        .unwrap_or(5)
                        .max(5);
                    println!("{:<width$} {:>10} {:>7}", "layer", "mean ms", "share");
                    for (name, mean) in &layers {
                        println!(
                            "{name:<width$} {mean:>10.4} {:>6.1}%",
                            100.0 * mean / total.max(f64::MIN_POSITIVE)
                        );
                    }
                    println!("{:<width$} {total:>10.4} (of a mean run of {mean:.4} ms; the rest is the entry and copies)", "layers");
                }
            }
            Ok(())
        }
        Command::Example { seed, cnn, output } => {
            let graph = if cnn {
                grim_model::demo_cnn(seed)
            } else {
                grim_model::demo_mlp(seed)
            };
            grim_model::save_onnx(&graph, &output)?;
            println!("wrote {}", output.display());
            Ok(())
        }
    }
}
