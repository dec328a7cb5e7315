//! `grimc prune`: the command line of `grim_prune`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use grim_prune::{Loss, Method, PruneOptions, Schedule};

/// `grimc prune` arguments.
#[derive(clap::Args)]
pub struct PruneArgs {
    /// The trained model (.onnx).
    model: PathBuf,
    /// Dense values per kept one (>= 1): every prunable layer keeps about
    /// 1/RATE of its weights, as close as its blocks allow.
    #[arg(long)]
    rate: f64,
    /// The BCR block RxC (without --auto).
    #[arg(long, default_value = "8x16")]
    block: String,
    /// Choose each layer's block with the cost model (for --target) and
    /// each layer's rate from its sensitivity, meeting --rate overall
    /// within 2%.
    #[arg(long)]
    auto: bool,
    /// --auto: the target the model will be compiled for (host or
    /// aarch64-linux-gnu).
    #[arg(long, default_value = "host")]
    target: String,
    /// --auto: CPU name (default: cortex-a76 for aarch64, the host CPU for host).
    #[arg(long)]
    cpu: Option<String>,
    /// admm (retrain; the default with --data) or project (one-shot; with
    /// --data and --epochs, then masked fine-tuning).
    #[arg(long, value_parser = ["admm", "project"])]
    method: Option<String>,
    /// Training data: .npz with x (float32 samples along the model input's
    /// batch axis) and y (int64 labels, or float32 targets with --loss mse).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Validation data (default: a seeded tenth of --data held out).
    #[arg(long)]
    val_data: Option<PathBuf>,
    /// ADMM epochs (or fine-tuning epochs after --method project).
    #[arg(long, default_value_t = Schedule::default().epochs)]
    epochs: usize,
    /// Masked fine-tuning epochs after ADMM.
    #[arg(long, default_value_t = Schedule::default().finetune_epochs)]
    finetune_epochs: usize,
    /// Samples per training batch.
    #[arg(long, default_value_t = Schedule::default().batch)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = Schedule::default().lr)]
    learning_rate: f64,
    /// ADMM's first rho.
    #[arg(long, default_value_t = Schedule::default().rho)]
    rho: f64,
    /// rho's growth factor per ADMM epoch.
    #[arg(long, default_value_t = Schedule::default().rho_growth)]
    rho_growth: f64,
    /// Seeds the batch order and the validation split.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// ce (cross-entropy on class labels) or mse.
    #[arg(long, default_value = "ce", value_parser = ["ce", "mse"])]
    loss: String,
    /// The axis of x holding the samples (default: the model input's
    /// symbolic axis, 1 for a layout-0 RNN, else 0).
    #[arg(long)]
    batch_axis: Option<usize>,
    /// The shape of a graph input, fixing its free dimensions (repeatable).
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    input_shape: Vec<String>,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    /// The pruned model.
    #[arg(short = 'o', long = "output")]
    output: PathBuf,
    /// The LR file of the pruned model (blocks, kept rows/columns, rates).
    #[arg(long)]
    lr_out: Option<PathBuf>,
}

/// Runs `grimc prune`.
pub fn run(
    args: PruneArgs,
    parse_input_shape: fn(&str) -> Result<(String, Vec<usize>)>,
) -> Result<()> {
    let block = args
        .block
        .parse::<grim_model::BlockSize>()
        .with_context(|| format!("--block must be RxC with 1..=64 each, got '{}'", args.block))?;
    let mut input_shapes = std::collections::BTreeMap::new();
    for text in &args.input_shape {
        let (name, dims) = parse_input_shape(text)?;
        if input_shapes.insert(name.clone(), dims).is_some() {
            anyhow::bail!("--input-shape gives '{name}' twice");
        }
    }
    let options = PruneOptions {
        model: args.model,
        output: args.output.clone(),
        lr_out: args.lr_out.clone(),
        rate: args.rate,
        block,
        auto: args.auto,
        cost_target: grim_compiler::codegen::TargetSpec::new(&args.target, args.cpu.as_deref())?
            .cost_target,
        method: args.method.as_deref().map(|m| {
            if m == "admm" {
                Method::Admm
            } else {
                Method::Project
            }
        }),
        data: args.data,
        val_data: args.val_data,
        loss: if args.loss == "mse" {
            Loss::Mse
        } else {
            Loss::CrossEntropy
        },
        batch_axis: args.batch_axis,
        input_shapes,
        schedule: Schedule {
            epochs: args.epochs,
            finetune_epochs: args.finetune_epochs,
            batch: args.batch_size,
            lr: args.learning_rate,
            rho: args.rho,
            rho_growth: args.rho_growth,
            seed: args.seed,
            quiet: args.quiet,
            ..Schedule::default()
        },
    };
    let quiet = args.quiet;
    let report = grim_prune::prune(&options, &mut |line| {
        if !quiet {
            eprintln!("{line}")
        }
    })?;
    for note in &report.notes {
        eprintln!("note: {note}");
    }
    let width = report
        .layers
        .iter()
        .map(|l| l.unit.len() + l.weight.len() + 3)
        .max()
        .unwrap_or(5)
        .max(5);
    println!(
        "{:<width$} {:>7} {:>7} {:>10} {:>7}  exact",
        "layer", "block", "keeps", "kept", "rate"
    );
    for l in &report.layers {
        println!(
            "{:<width$} {:>7} {:>7} {:>10} {:>7.2}  {}/{}",
            format!("{} ({})", l.unit, l.weight),
            l.block.to_string(),
            format!("{}x{}", l.keep.rows, l.keep.cols),
            format!("{}/{}", l.kept, l.elements),
            l.elements as f64 / l.kept.max(1) as f64,
            l.exact_blocks,
            l.blocks
        );
    }
    for s in &report.skipped {
        println!(
            "{:<width$} dense: {}",
            format!("{} ({})", s.unit, s.op),
            s.reason
        );
    }
    println!(
        "kept {:.4} of the pruned weights (rate {:.2})",
        report.kept_fraction(),
        1.0 / report.kept_fraction().max(f64::MIN_POSITIVE)
    );
    if let (Some(d), Some(p)) = (report.dense, report.pruned) {
        println!("validation: dense {d}; pruned {p}");
    }
    println!("wrote {}", args.output.display());
    if let Some(lr) = &args.lr_out {
        println!("wrote {}", lr.display());
    }
    Ok(())
}
