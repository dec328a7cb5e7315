//! grimc: compile, run and inspect BCR-sparse models.

use anyhow::{bail, Context as _, Result};
use clap::{Parser, Subcommand};
use grim_compiler::{
    driver::{self, Options},
    inspect, link,
    output::write_atomically,
};
use grim_model::write_npy;
use grim_passes::levels::Level;
use std::{path::PathBuf, process::ExitCode};

#[path = "grimc/prune.rs"]
mod prune;
#[path = "grimc/runner.rs"]
mod runner;
use runner::{layer_times, model_inputs, read_inputs, run_compiled, run_in};

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
    /// BCR block size RxC of every layer the LR file leaves open (default:
    /// the cost model chooses per layer among 4x16, 8x16, 16x16, 16x32, 32x32).
    #[arg(long)]
    block: Option<String>,
    /// The kernel of every layer the LR file leaves open: dense or bcr
    /// (default: the cost model chooses per layer).
    #[arg(long, value_parser = ["dense", "bcr"])]
    kernel: Option<String>,
    /// Layerwise representation (JSON): per-layer kernel, block, order and schedule.
    #[arg(long)]
    lr: Option<PathBuf>,
    /// Keep the natural block order instead of GRIM's reorder.
    #[arg(long)]
    no_reorder: bool,
    /// Print weights in full in MLIR output (a whole model that compiles
    /// again); by default they are elided.
    #[arg(long)]
    print_weights: bool,
    /// Give every intermediate tensor its own scratch bytes (no reuse; for
    /// checking the memory plan).
    #[arg(long)]
    no_memory_reuse: bool,
    /// The shape of a graph input, fixing its free dimensions (repeatable):
    /// NAME=1x3x224x224. A free batch dimension is otherwise taken as 1.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    input_shape: Vec<String>,
}

/// `--compile-to`: a level name.
fn parse_level(text: &str) -> Result<Level, String> {
    text.parse()
}

#[derive(Subcommand)]
enum Command {
    /// BCR-prune an ONNX model: one-shot projection, or ADMM retraining on
    /// the user's data; writes the same graph with pruned weights (+0.0)
    /// and its LR file.
    Prune(prune::PruneArgs),
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
        /// Comma-separated: any level (input, graph, bcr, loops, llvm,
        /// llvm-ir, asm, obj), `mlir` (every MLIR level), header, weights
        /// (the blob as a file instead of embedded).
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
        /// Input .npy files, in the graph's input order (one per graph
        /// input; none for a model without inputs).
        #[arg(long = "input")]
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
    /// Print one row per layer (by ONNX node name): the kernel chosen and
    /// every candidate's estimate, shape, block, stored values, fill, index
    /// bytes vs CSR; then the memory plan.
    Inspect {
        #[command(flatten)]
        model: ModelArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        /// Also write the compiler's choices as an LR file (version 2),
        /// ready to edit and pass back with --lr.
        #[arg(long)]
        lr_out: Option<PathBuf>,
    },
    /// Print a model at one level: input, graph, bcr, loops, llvm (MLIR),
    /// llvm-ir or asm.
    Lower {
        #[command(flatten)]
        model: ModelArgs,
        /// The level to print.
        #[arg(long = "compile-to", value_parser = parse_level)]
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
        /// Keep the linked runner, its object and its inputs in this
        /// directory (for `perf record DIR/model-runner ...`; the command
        /// line is in DIR/run.sh).
        #[arg(long, value_name = "DIR")]
        keep: Option<PathBuf>,
    },
    /// Write a built-in BCR-pruned example model as ONNX (no download): the
    /// MLP, a small CNN, a ResNet stage, or a zoo network (resnet18,
    /// resnet50, vgg16, mobilenetv2) as PyTorch exports torchvision's.
    Example {
        /// Random seed of the weights.
        #[arg(long, default_value_t = 7)]
        seed: u64,
        /// digits-mlp, digits-cnn, digits-gru: train the model dense on
        /// --data before writing it.
        #[arg(long)]
        train: bool,
        /// --train: the training data (.npz, as `cargo xtask digits` writes).
        #[arg(long)]
        data: Option<PathBuf>,
        /// --train: validation data (default: a seeded tenth of --data).
        #[arg(long)]
        val_data: Option<PathBuf>,
        /// --train: epochs.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// Which model: mlp, cnn, resnet-stage (a stem conv and basic
        /// blocks of Conv, BatchNormalization, Relu, Conv,
        /// BatchNormalization, residual Add, Relu, as PyTorch exports them),
        /// resnet18, resnet50, vgg16, mobilenetv2, gru-speech (2 GRU layers
        /// of 1024 on 153 features, 61 classes), lstm (2 LSTM layers of
        /// 650), or digits-mlp, digits-cnn, digits-gru (scikit-learn's 8x8
        /// digits; see --train).
        #[arg(long, default_value = "mlp")]
        model: String,
        /// The CNN instead of the MLP (the same as --model cnn).
        #[arg(long)]
        cnn: bool,
        /// resnet-stage: basic blocks.
        #[arg(long, default_value_t = 6)]
        blocks: usize,
        /// resnet-stage: channels.
        #[arg(long, default_value_t = 64)]
        channels: usize,
        /// Image height and width (default: 56 for resnet-stage, 224 for the
        /// zoo networks, at least 32).
        #[arg(long)]
        size: Option<usize>,
        /// Zoo networks: images per batch.
        #[arg(long, default_value_t = 1)]
        batch: usize,
        /// Zoo networks: classes (default 1000; 61 for gru-speech and lstm).
        #[arg(long)]
        classes: Option<usize>,
        /// gru-speech, lstm: sequence length.
        #[arg(long, default_value_t = 100)]
        seq: usize,
        /// Zoo networks: the pruning rate of the pruned layers with 8x16
        /// blocks (default: 6 for the ResNets, 8 for VGG-16, 4 for
        /// MobileNet-V2's 1x1 convs, 10 for the recurrent weights of
        /// gru-speech and lstm; 1 is dense).
        #[arg(long)]
        rate: Option<f64>,
        /// Leave every weight dense (default: BCR-pruned by mask
        /// multiplication with 8x16 blocks; resnet-stage keeps 4 of 8 rows
        /// and 4 of 16 columns).
        #[arg(long)]
        dense: bool,
        /// Output .onnx file.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

fn options(model: &ModelArgs, target: &str) -> Result<Options> {
    let mut options = Options::new(&model.model, target);
    options.block = match &model.block {
        None => None,
        Some(text) => Some(
            grim_passes::parse_block(text)
                .with_context(|| format!("--block must be RxC with 1..=64 each, got '{text}'"))?,
        ),
    };
    options.lr = model.lr.clone();
    options.kernel = model.kernel.clone();
    options.reorder = !model.no_reorder;
    options.print_weights = model.print_weights;
    options.reuse = !model.no_memory_reuse;
    for text in &model.input_shape {
        let (name, dims) = parse_input_shape(text)?;
        if options.input_shapes.insert(name.clone(), dims).is_some() {
            bail!("--input-shape gives '{name}' twice");
        }
    }
    Ok(options)
}

/// `NAME=1x3x224x224`: a graph input's name and its dims (each >= 1).
fn parse_input_shape(text: &str) -> Result<(String, Vec<usize>)> {
    let usage =
        || format!("--input-shape must be NAME=DxDx... (e.g. input=1x3x224x224), got '{text}'");
    let (name, dims) = text.rsplit_once('=').with_context(usage)?;
    if name.is_empty() {
        bail!(usage());
    }
    let dims = dims
        .split('x')
        .map(|d| d.parse::<usize>().ok().filter(|d| *d >= 1))
        .collect::<Option<Vec<_>>>()
        .with_context(usage)?;
    Ok((name.to_string(), dims))
}

/// Prints the loader's notes (a free batch dimension taken as 1, ...).
fn print_notes(notes: &[String]) {
    for note in notes {
        eprintln!("{note}");
    }
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
            let mut kinds: Vec<String> = Vec::new();
            for kind in emit.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                match kind {
                    "mlir" => kinds.extend(Level::ALL.iter().filter(|l| l.is_mlir()).map(|l| l.name().to_string())),
                    "header" | "weights" => kinds.push(kind.to_string()),
                    level if level.parse::<Level>().is_ok() => kinds.push(level.to_string()),
                    bad => bail!(
                        "--emit: unknown kind '{bad}' (expected a level: {}; or mlir, header, weights)",
                        Level::ALL.map(|l| l.name()).join(", ")
                    ),
                }
            }
            let mut options = options(&model, &target)?;
            options.cpu = cpu;
            options.name = name;
            let embed = !kinds.iter().any(|k| k == "weights");
            let compiled = driver::compile(&options, embed, false)?;
            print_notes(&compiled.notes);
            std::fs::create_dir_all(&output)
                .with_context(|| format!("{}: cannot create directory", output.display()))?;
            let file = |suffix: &str| output.join(format!("{}.{suffix}", compiled.interface.name));
            // Everything is generated before anything is written, and each file is written atomically.
            let mut files: Vec<(PathBuf, Vec<u8>)> = Vec::new();
            for kind in &kinds {
                match kind.as_str() {
                    "header" => {
                        files.push((
                            file("h"),
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
                    "weights" => files.push((file("weights"), compiled.blob.bytes.clone())),
                    level => {
                        let level: Level = level.parse().map_err(anyhow::Error::msg)?;
                        let bytes = match level {
                            Level::LlvmIr => compiled.artifacts.llvm_ir.clone().into_bytes(),
                            Level::Asm => compiled.artifacts.assembly.clone().into_bytes(),
                            Level::Obj => compiled.artifacts.object.clone(),
                            mlir => match compiled.stages.iter().find(|(l, _)| *l == mlir) {
                                Some((_, text)) => text.clone().into_bytes(),
                                // A .mlir input starts at its own level.
                                None => continue,
                            },
                        };
                        files.push((file(level.file_suffix()), bytes));
                    }
                }
            }
            for (path, bytes) in &files {
                write_atomically(path, bytes).context("cannot write an output file")?;
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
            let given = read_inputs(&inputs)?;
            let compiled = driver::compile(&options, true, true)?;
            print_notes(&compiled.notes);
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
            let tensors = model_inputs(&compiled.interface.inputs, given)?;
            let (results, _) = run_compiled(&compiled, &tensors, threads, 1)?;
            for (path, tensor) in outputs.iter().zip(&results) {
                write_npy(path, tensor)?;
            }
            Ok(())
        }
        Command::Inspect {
            model,
            json,
            lr_out,
        } => {
            let options = options(&model, "host")?;
            // The packing is decided at the bcr level; no code is generated.
            let lowered = driver::lower(&options, Level::Bcr)?;
            print_notes(&lowered.notes);
            let report = inspect::Report {
                layers: inspect::rows(&lowered.products, &lowered.blob.layers),
                memory: lowered.memory,
            };
            if let Some(path) = &lr_out {
                inspect::lr_file(&report, &options.model).save(path)?;
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", inspect::table(&report));
            }
            if let Some(path) = &lr_out {
                eprintln!("wrote {}", path.display());
            }
            Ok(())
        }
        Command::Lower {
            model,
            level,
            target,
        } => {
            let options = options(&model, &target)?;
            match level {
                Level::Obj => {
                    bail!("--compile-to obj is binary; write it with `grimc compile --emit obj`")
                }
                Level::LlvmIr | Level::Asm => {
                    let compiled = driver::compile(&options, true, false)?;
                    print_notes(&compiled.notes);
                    if level == Level::LlvmIr {
                        print!("{}", compiled.artifacts.llvm_ir);
                    } else {
                        print!("{}", compiled.artifacts.assembly);
                    }
                }
                _ => {
                    let lowered = driver::lower(&options, level)?;
                    print_notes(&lowered.notes);
                    let (_, text) = lowered
                        .stages
                        .iter()
                        .find(|(l, _)| *l == level)
                        .with_context(|| {
                            format!(
                                "{}: the model starts past the '{level}' level",
                                options.model.display()
                            )
                        })?;
                    print!("{text}");
                }
            }
            Ok(())
        }
        Command::Bench {
            model,
            inputs,
            threads,
            runs,
            json,
            per_layer,
            keep,
        } => {
            if runs < 1 {
                bail!("--runs must be at least 1");
            }
            let mut options = options(&model, "host")?;
            options.profile = per_layer;
            let given = read_inputs(&inputs)?;
            let compiled = driver::compile(&options, true, true)?;
            print_notes(&compiled.notes);
            let tensors = model_inputs(&compiled.interface.inputs, given)?;
            // The runner warms up once, then times R runs; it prints timing for R > 1 only.
            let (_, stdout) = match &keep {
                Some(dir) => run_in(&compiled, &tensors, threads, runs.max(2), dir)?,
                None => run_compiled(&compiled, &tensors, threads, runs.max(2))?,
            };
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
            // Beside each product's measured time, the kernel chosen and the
            // cost model's estimate of it (what `grimc inspect` shows).
            // A recurrent layer's steps, for its time per step.
            let mut steps: std::collections::BTreeMap<String, usize> = Default::default();
            let estimates: std::collections::BTreeMap<String, (String, Option<f64>)> = if per_layer
            {
                let mut plain = options.clone();
                plain.profile = false;
                let lowered = driver::lower(&plain, Level::Bcr)?;
                let rows = inspect::rows(&lowered.products, &lowered.blob.layers);
                for r in &rows {
                    if let Some(n) = r.steps {
                        steps.insert(r.layer.clone(), n);
                    }
                }
                rows.into_iter()
                    .map(|r| {
                        let kernel = if r.kernel == "bcr" {
                            format!("bcr {}", r.block)
                        } else {
                            r.kernel.clone()
                        };
                        (r.layer, (kernel, r.estimate_ns.map(|ns| ns / 1e6)))
                    })
                    .collect()
            } else {
                Default::default()
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
                        .map(|(name, mean)| {
                            let (kernel, estimate) = estimates.get(name).cloned().unzip();
                            serde_json::json!({"name": name, "mean_ms": mean,
                                "kernel": kernel, "estimate_ms": estimate.flatten(),
                                "steps": steps.get(name)})
                        })
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
                    println!(
                        "{:<width$} {:>10} {:>7}  {:<12} {:>11}  {:>11}",
                        "layer", "mean ms", "share", "kernel", "estimate ms", "per step us"
                    );
                    for (name, mean) in &layers {
                        let (kernel, estimate) = match estimates.get(name) {
                            Some((kernel, Some(ms))) => (kernel.as_str(), format!("{ms:.4}")),
                            Some((kernel, None)) => (kernel.as_str(), "-".to_string()),
                            None => ("", String::new()),
                        };
                        let per_step = steps.get(name).map_or(String::new(), |n| {
                            format!("{:.1}", 1000.0 * mean / *n as f64)
                        });
                        println!(
                            "{name:<width$} {mean:>10.4} {:>6.1}%  {kernel:<12} {estimate:>11}  {per_step:>11}",
                            100.0 * mean / total.max(f64::MIN_POSITIVE)
                        );
                    }
                    println!("{:<width$} {total:>10.4} (of a mean run of {mean:.4} ms; the rest is the entry and copies)", "layers");
                }
            }
            Ok(())
        }
        Command::Prune(args) => prune::run(args, parse_input_shape),
        Command::Example {
            seed,
            model,
            train,
            data,
            val_data,
            epochs,
            cnn,
            blocks,
            channels,
            size,
            batch,
            classes,
            rate,
            dense,
            output,
            seq,
        } => {
            let model = if cnn { "cnn".to_string() } else { model };
            if let Some(kind) = grim_prune::examples::Digits::named(&model) {
                if !train {
                    let graph = kind.graph(seed);
                    grim_model::save_onnx(&graph, &output)?;
                    println!(
                        "wrote {} (untrained; --train --data TRAIN.npz trains it)",
                        output.display()
                    );
                    return Ok(());
                }
                let data = data.context("--train needs the training data: --data TRAIN.npz (cargo xtask digits writes them)")?;
                let schedule = grim_prune::Schedule {
                    epochs,
                    seed,
                    ..grim_prune::Schedule::default()
                };
                let metric = grim_prune::train_example(
                    kind,
                    &data,
                    val_data.as_deref(),
                    &schedule,
                    &output,
                    &mut |l| eprintln!("{l}"),
                )?;
                println!("trained {model}: {metric}");
                println!("wrote {}", output.display());
                return Ok(());
            }
            if let Some(mut spec) = grim_model::zoo::speech::SpeechModel::named(&model) {
                spec.seq = seq;
                spec.batch = batch;
                spec.classes = classes.unwrap_or(spec.classes);
                spec.seed = seed;
                spec.rate = if dense { None } else { rate.or(spec.rate) };
                spec.save(&output)?;
                println!("wrote {}", output.display());
                return Ok(());
            }
            let graph = match model.as_str() {
                "mlp" => grim_model::demo_mlp(seed),
                "cnn" => grim_model::demo_cnn(seed),
                "resnet-stage" => {
                    let mut spec = grim_model::resnet::ResidualStack::resnet_stage(blocks);
                    spec.channels = channels;
                    spec.size = size.unwrap_or(56);
                    spec.seed = seed;
                    if dense {
                        spec.prune = None;
                    }
                    grim_model::resnet::try_residual_stack(&spec)?
                }
                other => match grim_model::Architecture::from_name(other) {
                    Some(architecture) => {
                        let mut spec = grim_model::ZooModel::new(architecture);
                        spec.size = size.unwrap_or(spec.size);
                        spec.batch = batch;
                        spec.classes = classes.unwrap_or(spec.classes);
                        spec.seed = seed;
                        spec.rate = if dense { None } else { rate.or(spec.rate) };
                        grim_model::zoo_model(&spec)?
                    }
                    None => bail!(
                        "--model: unknown model '{other}' (expected mlp, cnn, resnet-stage, {}, {})",
                        grim_model::Architecture::ALL.map(|a| a.name()).join(", "),
                        grim_model::zoo::speech::SpeechModel::NAMES.join(", ")
                    ),
                },
            };
            grim_model::save_onnx(&graph, &output)?;
            println!("wrote {}", output.display());
            Ok(())
        }
    }
}
