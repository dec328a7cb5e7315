//! One pruning run: read the model, choose what to prune, project or
//! retrain, write the pruned model and its LR file.
//!
//! `model.rs` reads and re-imports the model (at the training batch),
//! `project.rs` projects every pruned weight, `plan.rs` feeds `--auto` the
//! layers' costs and sensitivities, `retrain.rs` runs ADMM and masked
//! fine-tuning, `lr.rs` writes the LR file.

mod lr;
mod model;
mod plan;
mod project;
mod retrain;

use lr::*;
use model::*;
use plan::*;
use project::*;
use retrain::*;

pub use model::{evaluate, train_example};

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use grim_model::onnx::proto::tensor_shape_proto::dimension::Value as Dim;
use grim_model::onnx::proto::type_proto::Value as Type;
use grim_model::onnx::proto::ModelProto;
use grim_model::projection::{project, split_rate, Keep};
use grim_model::{
    BlockSize, Graph, LoadOptions, LrFile, LrLayer, ModelError, Op, Sparsity, Tensor,
};
use prost::Message;

use crate::data::{self, Dataset};
use crate::error::PruneError;
use crate::layers::{self, Layer, Skipped};
use crate::train::{self, Loss, Metric, Schedule, Trainer};

/// How the weights are made BCR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// One-shot BCR projection (then masked fine-tuning when data and
    /// epochs are given).
    Project,
    /// ADMM retraining, hard pruning, masked fine-tuning.
    Admm,
}

/// What `grimc prune` was asked to do.
#[derive(Debug, Clone)]
pub struct PruneOptions {
    /// The trained model.
    pub model: PathBuf,
    /// Where the pruned model goes.
    pub output: PathBuf,
    /// Where its LR file goes.
    pub lr_out: Option<PathBuf>,
    /// Dense values per kept one, >= 1.
    pub rate: f64,
    /// The block of every layer (without `auto`).
    pub block: BlockSize,
    /// Blocks by the cost model and rates by sensitivity ([`crate::auto`]).
    pub auto: bool,
    /// The cost model's target in its text form (`avx2`, `neon`, ...), for
    /// `auto`.
    pub cost_target: String,
    /// `None`: ADMM with data, projection without.
    pub method: Option<Method>,
    /// Training data.
    pub data: Option<PathBuf>,
    /// Validation data (default: a seeded tenth of the training data).
    pub val_data: Option<PathBuf>,
    /// The loss.
    pub loss: Loss,
    /// The samples' axis in `x` (default: the model input's batch axis).
    pub batch_axis: Option<usize>,
    /// `--input-shape` overrides.
    pub input_shapes: BTreeMap<String, Vec<usize>>,
    /// Epochs, batch, learning rate, rho, seed.
    pub schedule: Schedule,
}

/// What happened to one weight.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerReport {
    /// The node.
    pub node: String,
    /// The LR file's layer name ([`Layer::unit`]).
    pub unit: String,
    /// Its op type.
    pub op: &'static str,
    /// The weight's value name.
    pub weight: String,
    /// The block.
    pub block: BlockSize,
    /// Kept rows and columns per full block.
    pub keep: Keep,
    /// Elements pruned over.
    pub elements: usize,
    /// Elements kept.
    pub kept: usize,
    /// Blocks whose selection is provably optimal, of all blocks.
    pub exact_blocks: usize,
    /// Blocks.
    pub blocks: usize,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct PruneReport {
    /// Pruned weights.
    pub layers: Vec<LayerReport>,
    /// Layers left dense, and why.
    pub skipped: Vec<Skipped>,
    /// Notes for the user.
    pub notes: Vec<String>,
    /// Validation metric of the model as given (with data).
    pub dense: Option<Metric>,
    /// Validation metric of the pruned model (with data).
    pub pruned: Option<Metric>,
}

impl PruneReport {
    /// Kept elements over all pruned weights, as a fraction.
    pub fn kept_fraction(&self) -> f64 {
        let e: usize = self.layers.iter().map(|l| l.elements).sum();
        let k: usize = self.layers.iter().map(|l| l.kept).sum();
        k as f64 / e.max(1) as f64
    }
}

/// Prunes `options.model`, writing `options.output` (and the LR file);
/// `log` gets one line per stage.
pub fn prune(options: &PruneOptions, log: &mut dyn FnMut(&str)) -> Result<PruneReport, PruneError> {
    let s = &options.schedule;
    if !(options.rate.is_finite() && options.rate >= 1.0) {
        return Err(PruneError::Options(format!(
            "--rate must be a number >= 1 (dense values per kept one), got {}",
            options.rate
        )));
    }
    let method = options.method.unwrap_or(if options.data.is_some() {
        Method::Admm
    } else {
        Method::Project
    });
    if method == Method::Admm && options.data.is_none() {
        return Err(PruneError::Options(
            "--method admm retrains: give the training data with --data TRAIN.npz".into(),
        ));
    }
    if s.batch == 0 {
        return Err(PruneError::Options(
            "--batch-size must be at least 1".into(),
        ));
    }
    let path = &options.model;
    let mut proto = read_model(path)?;
    let load = LoadOptions {
        input_shapes: options.input_shapes.clone(),
    };
    let loaded = grim_model::onnx::from_proto_with(&proto, path, &load)?;
    let mut notes = loaded.notes.clone();
    let graph = loaded.graph;
    // With --auto a layer is too small only for the smallest candidate.
    let find_block = if options.auto {
        grim_model::cost::BLOCK_CANDIDATES[0]
    } else {
        options.block
    };
    let (layers, skipped) = layers::find(&graph, find_block);
    if layers.is_empty() {
        let reasons = if skipped.is_empty() {
            "it has no Conv, Gemm, MatMul, GRU, LSTM or RNN with a constant weight".to_string()
        } else {
            skipped
                .iter()
                .map(|s| format!("'{}' ({}): {}", s.node, s.op, s.reason))
                .collect::<Vec<_>>()
                .join("; ")
        };
        return Err(PruneError::NothingPrunable {
            path: path.clone(),
            reasons,
        });
    }
    let mut plan = if options.auto {
        let target = grim_model::cost::Target::parse(&options.cost_target)
            .map_err(|e| PruneError::Options(format!("the cost model's target: {e}")))?;
        let blocks = auto_blocks(&target, &graph, &layers, options.rate)?;
        blocks
            .into_iter()
            .map(|b| Ok((b, split_rate(b, options.rate)?)))
            .collect::<Result<Vec<_>, PruneError>>()?
    } else {
        vec![(options.block, split_rate(options.block, options.rate)?); layers.len()]
    };
    log(&format!(
        "{} weights to prune; {} layers left dense",
        layers.len(),
        skipped.len()
    ));

    let mut weights: BTreeMap<String, Vec<f32>> = trainable(&graph, &layers)
        .into_iter()
        .filter_map(|n| graph.initializers.get(&n).map(|t| (n, t.data.clone())))
        .collect();
    let (mut dense, mut pruned) = (None, None);
    let reports;
    if let Some(train_path) = &options.data {
        let input = graph.inputs.first().ok_or_else(|| {
            PruneError::Options(format!(
                "{}: the model has no runtime input to feed",
                path.display()
            ))
        })?;
        if graph.inputs.len() > 1 {
            return Err(PruneError::Options(format!(
                "{}: training needs a model with one runtime input, it has {}",
                path.display(),
                graph.inputs.len()
            )));
        }
        let axis = options
            .batch_axis
            .unwrap_or_else(|| batch_axis_of(&proto, &graph));
        if axis >= input.shape.len() {
            return Err(PruneError::Options(format!(
                "--batch-axis {axis} is out of range for input '{}' of shape {:?}",
                input.name, input.shape
            )));
        }
        let ce = options.loss == Loss::CrossEntropy;
        // Outputs per sample, from the model as declared (batch as loaded).
        let classes = outputs_per_sample(&graph, path, input.shape[axis])?;
        let all = data::load(train_path, &input.shape, axis, ce)?;
        all.check_classes(classes)?;
        all.check_targets(classes)?;
        let (train_set, val_set) = match &options.val_data {
            Some(v) => {
                let val = data::load(v, &input.shape, axis, ce)?;
                val.check_classes(classes)?;
                val.check_targets(classes)?;
                (all, val)
            }
            None => all.split(0.1, s.seed)?,
        };
        let batch = s.batch.min(train_set.len());
        let tgraph = at_batch(&proto, path, &load, &input.name, axis, &input.shape, batch)?;
        let names: Vec<String> = weights.keys().cloned().collect();
        let mut trainer = Trainer::new(&tgraph, path, &names, options.loss, batch)?;
        let d = trainer.evaluate(&val_set)?;
        log(&format!("dense model: {d}"));
        dense = Some(d);
        if options.auto {
            let sens = sensitivity_on_data(&mut trainer, &layers, &plan, &val_set, d)?;
            plan = auto_keeps(&layers, plan, &sens, options.rate)?;
        }
        let ctx = Retrain {
            layers: &layers,
            plan: &plan,
            schedule: s,
        };
        reports = match method {
            Method::Admm => ctx.admm(&mut trainer, &train_set, &val_set, log)?,
            // One-shot projection, then (with epochs) masked fine-tuning.
            Method::Project => ctx.masked_finetune(
                &mut trainer,
                &train_set,
                &val_set,
                s.epochs,
                "finetune",
                log,
            )?,
        };
        let p = trainer.evaluate(&val_set)?;
        log(&format!("pruned model: {p}"));
        pruned = Some(p);
        weights = trainer.weights()?;
    } else {
        if options.auto {
            let sens = sensitivity_of_magnitude(&layers, &plan, &weights)?;
            plan = auto_keeps(&layers, plan, &sens, options.rate)?;
        }
        reports = project_all(&layers, &plan, &mut weights)?;
    }

    let tensors: BTreeMap<String, Tensor> = weights
        .into_iter()
        .filter_map(|(n, data)| {
            let shape = graph.initializers.get(&n)?.shape.clone();
            Some((n, Tensor { shape, data }))
        })
        .collect();
    notes.extend(crate::write::update(&mut proto, &tensors));
    let report = PruneReport {
        layers: reports,
        skipped,
        notes,
        dense,
        pruned,
    };
    // The LR file first: a failure there leaves no pruned model behind.
    if let Some(lr) = &options.lr_out {
        lr_file(&report, &graph, path).save(lr)?;
    }
    grim_model::write_atomic(&options.output, &proto.encode_to_vec())?;
    Ok(report)
}
