//! One pruning run: read the model, choose what to prune, project or
//! retrain, write the pruned model and its LR file.

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

fn read_model(path: &Path) -> Result<ModelProto, PruneError> {
    let bytes = std::fs::read(path).map_err(|e| ModelError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    ModelProto::decode(bytes.as_slice()).map_err(|e| {
        PruneError::Model(ModelError::OnnxDecode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    })
}

/// The axis of the model's input holding samples: the symbolic one, else
/// 1 for a layout-0 recurrent first consumer, else 0.
fn batch_axis(proto: &ModelProto, graph: &Graph) -> usize {
    let Some(input) = graph.inputs.first() else {
        return 0;
    };
    let declared = proto
        .graph
        .as_ref()
        .and_then(|g| g.input.iter().find(|vi| vi.name == input.name))
        .and_then(|vi| vi.r#type.as_ref())
        .and_then(|t| match &t.value {
            Some(Type::TensorType(t)) => t.shape.as_ref(),
            None => None,
        });
    if let Some(shape) = declared {
        let symbolic = shape.dim.iter().position(|d| match &d.value {
            Some(Dim::DimParam(_)) | None => true,
            Some(Dim::DimValue(v)) => *v <= 0,
        });
        if let Some(axis) = symbolic {
            return axis;
        }
    }
    let consumer = graph
        .nodes
        .iter()
        .find(|n| n.inputs.first() == Some(&input.name));
    match consumer.map(|n| &n.op) {
        Some(Op::Recurrent(r)) if !r.batch_major => 1,
        _ => 0,
    }
}

/// The model imported with `batch` samples along `axis` of input `input`
/// (whatever batch the file declares: its input's dim there is made free,
/// and the outputs' declared shapes, which hold the old batch, dropped).
fn at_batch(
    proto: &ModelProto,
    path: &Path,
    load: &LoadOptions,
    input: &str,
    axis: usize,
    shape: &[usize],
    batch: usize,
) -> Result<Graph, PruneError> {
    let mut free = proto.clone();
    if let Some(g) = free.graph.as_mut() {
        for vi in g.input.iter_mut().filter(|vi| vi.name == input) {
            if let Some(Type::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                if let Some(d) = t.shape.as_mut().and_then(|s| s.dim.get_mut(axis)) {
                    d.value = Some(Dim::DimParam("batch".into()));
                }
            }
        }
        for vi in &mut g.output {
            if let Some(Type::TensorType(t)) = vi.r#type.as_mut().and_then(|t| t.value.as_mut()) {
                t.shape = None;
            }
        }
    }
    let mut shape = shape.to_vec();
    shape[axis] = batch;
    let mut load = load.clone();
    load.input_shapes.insert(input.to_string(), shape);
    Ok(grim_model::onnx::from_proto_with(&free, path, &load)?.graph)
}

/// Trains a digits example dense on `data` and writes it to `output` as
/// ONNX; returns its validation metric.
pub fn train_example(
    kind: crate::examples::Digits,
    data: &Path,
    val: Option<&Path>,
    schedule: &Schedule,
    output: &Path,
    log: &mut dyn FnMut(&str),
) -> Result<Metric, PruneError> {
    let graph = kind.graph(schedule.seed);
    let mut proto = grim_model::onnx::to_proto(&graph);
    let axis = batch_axis(&proto, &graph);
    let input = &graph.inputs[0];
    let all = data::load(data, &input.shape, axis, true)?;
    let (train_set, val_set) = match val {
        Some(v) => (all, data::load(v, &input.shape, axis, true)?),
        None => all.split(0.1, schedule.seed),
    };
    let batch = schedule.batch.min(train_set.len()).max(1);
    let tgraph = at_batch(
        &proto,
        output,
        &LoadOptions::default(),
        &input.name,
        axis,
        &input.shape,
        batch,
    )?;
    let names: Vec<String> = graph.initializers.keys().cloned().collect();
    let mut trainer = Trainer::new(&tgraph, output, &names, Loss::CrossEntropy, batch)?;
    for set in [&train_set, &val_set] {
        set.check_classes(10)?;
    }
    let mut opt = trainer.adam(schedule.lr)?;
    let mut rng = train::rng(schedule.seed);
    let mut metric = trainer.evaluate(&val_set)?;
    for e in 0..schedule.epochs {
        let bar = train::bar(
            schedule.quiet,
            trainer.steps(&train_set),
            format!("train {}/{}", e + 1, schedule.epochs),
        );
        let loss = trainer.epoch(
            &mut opt,
            &train_set,
            &mut rng,
            &|_| Ok(None),
            &mut |_| Ok(()),
            &bar,
        )?;
        metric = trainer.evaluate(&val_set)?;
        let msg = format!("loss {loss:.4}, {metric}");
        bar.finish_with_message(msg.clone());
        if bar.is_hidden() {
            log(&format!("train epoch {}/{}: {msg}", e + 1, schedule.epochs));
        }
    }
    let tensors: BTreeMap<String, Tensor> = trainer
        .weights()?
        .into_iter()
        .filter_map(|(n, data)| {
            Some((
                n.clone(),
                Tensor {
                    shape: graph.initializers.get(&n)?.shape.clone(),
                    data,
                },
            ))
        })
        .collect();
    crate::write::update(&mut proto, &tensors);
    grim_model::write_atomic(output, &proto.encode_to_vec())?;
    Ok(metric)
}

/// The weights training may change: the pruned ones, the biases of their
/// products, a bias added after a MatMul, and batch-norm scales and
/// offsets (never running statistics or initial states).
fn trainable(graph: &Graph, layers: &[Layer]) -> Vec<String> {
    let mut names: BTreeSet<String> = layers.iter().map(|l| l.weight.clone()).collect();
    let producers: BTreeMap<&str, &Op> = graph
        .nodes
        .iter()
        .flat_map(|n| n.outputs.iter().map(move |o| (o.as_str(), &n.op)))
        .collect();
    let mut add = |n: Option<&String>| {
        if let Some(n) = n.filter(|n| graph.initializers.contains_key(*n)) {
            names.insert(n.clone());
        }
    };
    for node in &graph.nodes {
        match &node.op {
            Op::Gemm { .. } | Op::Conv { .. } => add(node.inputs.get(2)),
            Op::BatchNormalization { .. } => {
                add(node.inputs.get(1));
                add(node.inputs.get(2));
            }
            Op::Recurrent(r) => add(r
                .operand_index(grim_model::recurrent::OperandKind::Bias)
                .and_then(|i| node.inputs.get(i))),
            Op::Add => {
                let after_matmul = |i: usize| {
                    node.inputs
                        .get(i)
                        .and_then(|n| producers.get(n.as_str()))
                        .is_some_and(|op| matches!(op, Op::MatMul))
                };
                if after_matmul(0) {
                    add(node.inputs.get(1));
                } else if after_matmul(1) {
                    add(node.inputs.first());
                }
            }
            _ => {}
        }
    }
    names.into_iter().collect()
}

/// The BCR projection of every pruned weight in `weights`.
fn project_all(
    layers: &[Layer],
    plan: &[(BlockSize, Keep)],
    weights: &mut BTreeMap<String, Vec<f32>>,
) -> Result<Vec<LayerReport>, PruneError> {
    let mut reports = Vec::new();
    for (layer, &(block, keep)) in layers.iter().zip(plan) {
        let Some(w) = weights.get_mut(&layer.weight) else {
            continue;
        };
        let mut r = LayerReport {
            node: layer.node.clone(),
            unit: layer.unit.clone(),
            op: layer.op,
            weight: layer.weight.clone(),
            block,
            keep,
            elements: 0,
            kept: 0,
            exact_blocks: 0,
            blocks: 0,
        };
        for m in &layer.matrices {
            let mut mat = m.get(w);
            let p = project(&mut mat, m.rows, m.cols, block, keep)?;
            m.put(w, &mat);
            r.elements += p.total;
            r.kept += p.kept;
            r.exact_blocks += p.exact_blocks;
            r.blocks += p.blocks;
        }
        reports.push(r);
    }
    Ok(reports)
}

/// Squared distance of the pruned weights from their projection, relative.
fn distance(
    layers: &[Layer],
    plan: &[(BlockSize, Keep)],
    weights: &BTreeMap<String, Vec<f32>>,
) -> Result<f64, PruneError> {
    let mut projected = weights.clone();
    project_all(layers, plan, &mut projected)?;
    let (mut d, mut n) = (0.0, 0.0);
    for l in layers {
        if let (Some(a), Some(b)) = (weights.get(&l.weight), projected.get(&l.weight)) {
            d += a
                .iter()
                .zip(b)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum::<f64>();
            n += a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
        }
    }
    Ok((d / n.max(f64::MIN_POSITIVE)).sqrt())
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
            .unwrap_or_else(|| batch_axis(&proto, &graph));
        if axis >= input.shape.len() {
            return Err(PruneError::Options(format!(
                "--batch-axis {axis} is out of range for input '{}' of shape {:?}",
                input.name, input.shape
            )));
        }
        let ce = options.loss == Loss::CrossEntropy;
        // Outputs per sample, from the model as declared (batch as loaded).
        let classes = graph.outputs[0].shape.iter().product::<usize>() / input.shape[axis].max(1);
        let all = data::load(train_path, &input.shape, axis, ce)?;
        all.check_classes(classes)?;
        let (train_set, val_set) = match &options.val_data {
            Some(v) => {
                let val = data::load(v, &input.shape, axis, ce)?;
                val.check_classes(classes)?;
                (all, val)
            }
            None => all.split(0.1, s.seed),
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
            Method::Project => ctx.finetune_projected(&mut trainer, &train_set, &val_set, log)?,
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

/// The product each matrix of each layer runs (for the cost model): a
/// gemm's batch rows, a conv's output pixels per image, a recurrent op's
/// input projection over all steps and its recurrent product per step.
fn layer_costs(graph: &Graph, layers: &[Layer]) -> Result<Vec<crate::auto::LayerCost>, PruneError> {
    use grim_model::cost::{ConvGeometry, Product};
    let shapes = graph.infer_shapes()?;
    let shape = |n: &str| shapes.get(n).cloned().unwrap_or_default();
    let mut out = Vec::new();
    for layer in layers {
        let node = &graph.nodes[layer.index];
        let x = shape(&node.inputs[0]);
        let y = shape(&node.outputs[0]);
        let products = match &node.op {
            Op::Conv {
                strides,
                pads,
                group,
                ..
            } if x.len() == 4 && y.len() == 4 => {
                let m = &layer.matrices[0];
                let k = &layer.shape;
                if *group == 1 {
                    let geometry = ConvGeometry {
                        channels: x[1],
                        input: [x[2], x[3]],
                        kernel: [k[2], k[3]],
                        stride: *strides,
                        pads: *pads,
                        output: [y[2], y[3]],
                    };
                    vec![(Product::conv(m.rows, x[0], geometry), 1.0)]
                } else {
                    vec![(Product::gemm(m.rows, m.cols, y[2] * y[3] * x[0]), 1.0)]
                }
            }
            Op::Recurrent(r) => {
                let (seq, batch) = if r.batch_major {
                    (x[1], x[0])
                } else {
                    (x[0], x[1])
                };
                let recurrent = layer.unit.ends_with(".R");
                layer
                    .matrices
                    .iter()
                    .map(|m| {
                        if recurrent {
                            (Product::gemm(m.rows, m.cols, batch), seq as f64)
                        } else {
                            (Product::gemm(m.rows, m.cols, seq * batch), 1.0)
                        }
                    })
                    .collect()
            }
            _ => {
                let n: usize = x[..x.len().saturating_sub(1)]
                    .iter()
                    .product::<usize>()
                    .max(1);
                let m = &layer.matrices[0];
                vec![(Product::gemm(m.rows, m.cols, n), 1.0)]
            }
        };
        out.push(crate::auto::LayerCost { products });
    }
    Ok(out)
}

/// Each layer's block by the cost model; a recurrent op's W and R share the
/// block best for both (the compiler gives the op one).
fn auto_blocks(
    target: &grim_model::cost::Target,
    graph: &Graph,
    layers: &[Layer],
    rate: f64,
) -> Result<Vec<BlockSize>, PruneError> {
    let costs = layer_costs(graph, layers)?;
    // Merge the units of one node into one layer for the choice.
    let mut nodes: Vec<(String, Layer, crate::auto::LayerCost)> = Vec::new();
    for (l, c) in layers.iter().zip(&costs) {
        match nodes.iter_mut().find(|(n, _, _)| *n == l.node) {
            Some((_, merged, mc)) => {
                merged.matrices.extend(l.matrices.iter().cloned());
                mc.products.extend(c.products.iter().cloned());
            }
            None => nodes.push((l.node.clone(), l.clone(), c.clone())),
        }
    }
    let merged: Vec<Layer> = nodes.iter().map(|n| n.1.clone()).collect();
    let merged_costs: Vec<crate::auto::LayerCost> = nodes.iter().map(|n| n.2.clone()).collect();
    let choices = crate::auto::choose_blocks(target, &merged, &merged_costs, rate)?;
    Ok(layers
        .iter()
        .map(|l| {
            let i = nodes.iter().position(|n| n.0 == l.node).unwrap_or(0);
            choices[i].block
        })
        .collect())
}

/// Per-layer keeps for the overall rate from sensitivities at the anchors.
fn auto_keeps(
    layers: &[Layer],
    plan: Vec<(BlockSize, Keep)>,
    sens: &[[f64; 5]],
    rate: f64,
) -> Result<Vec<(BlockSize, Keep)>, PruneError> {
    let blocks: Vec<BlockSize> = plan.iter().map(|p| p.0).collect();
    let keeps = crate::auto::choose_keeps(layers, &blocks, sens, rate)?;
    Ok(blocks.into_iter().zip(keeps).collect())
}

/// Sensitivity without data: the squared magnitude each projection of one
/// layer alone removes, as a fraction of the layer's.
fn sensitivity_of_magnitude(
    layers: &[Layer],
    plan: &[(BlockSize, Keep)],
    weights: &BTreeMap<String, Vec<f32>>,
) -> Result<Vec<[f64; 5]>, PruneError> {
    let mut out = Vec::new();
    for (layer, &(block, _)) in layers.iter().zip(plan) {
        let mut at = [0.0; 5];
        for (a, rate) in crate::auto::ANCHORS.iter().enumerate() {
            let keep = split_rate(block, *rate)?;
            let (mut kept, mut total) = (0.0, 0.0);
            if let Some(w) = weights.get(&layer.weight) {
                for m in &layer.matrices {
                    let mut mat = m.get(w);
                    let sq: f64 = mat.iter().map(|v| (*v as f64).powi(2)).sum();
                    let p = project(&mut mat, m.rows, m.cols, block, keep)?;
                    kept += p.magnitude_kept * sq;
                    total += sq;
                }
            }
            at[a] = if total > 0.0 { 1.0 - kept / total } else { 0.0 };
        }
        out.push(at);
    }
    Ok(out)
}

/// Sensitivity with validation data: the accuracy (classification) or the
/// relative loss lost when one layer alone is projected, plus a hundredth
/// of the magnitude removed to order layers whose accuracy does not move.
fn sensitivity_on_data(
    trainer: &mut Trainer,
    layers: &[Layer],
    plan: &[(BlockSize, Keep)],
    val: &Dataset,
    dense: Metric,
) -> Result<Vec<[f64; 5]>, PruneError> {
    let weights = trainer.weights()?;
    let magnitude = sensitivity_of_magnitude(layers, plan, &weights)?;
    let mut out = Vec::new();
    for (i, (layer, &(block, _))) in layers.iter().zip(plan).enumerate() {
        let mut at = [0.0; 5];
        for (a, rate) in crate::auto::ANCHORS.iter().enumerate() {
            let keep = split_rate(block, *rate)?;
            let mut w = weights[&layer.weight].clone();
            for m in &layer.matrices {
                let mut mat = m.get(&w);
                project(&mut mat, m.rows, m.cols, block, keep)?;
                m.put(&mut w, &mat);
            }
            trainer.set(&layer.weight, &w)?;
            let metric = trainer.evaluate(val)?;
            let lost = match (dense.accuracy, metric.accuracy) {
                (Some(d), Some(p)) => (d - p).max(0.0),
                _ => ((metric.loss - dense.loss) / dense.loss.max(f64::MIN_POSITIVE)).max(0.0),
            };
            at[a] = lost + 0.01 * magnitude[i][a];
        }
        trainer.set(&layer.weight, &weights[&layer.weight])?;
        out.push(at);
    }
    Ok(out)
}

/// The LR file of a run: a BCR entry per pruned node (block, keeps, rate),
/// a dense one per node left dense.
fn lr_file(report: &PruneReport, graph: &Graph, path: &Path) -> LrFile {
    let model = path.file_stem().map(|s| s.to_string_lossy().into_owned());
    let mut lr = LrFile::new(model);
    let mut seen = BTreeSet::new();
    // One entry per node: a recurrent op's units share one kernel and block
    // in the compiler (graph-apply-lr), so its W and R are one entry.
    for r in &report.layers {
        if !seen.insert(r.node.clone()) {
            continue;
        }
        let same: Vec<&LayerReport> = report.layers.iter().filter(|x| x.node == r.node).collect();
        let elements: usize = same.iter().map(|x| x.elements).sum();
        let kept: usize = same.iter().map(|x| x.kept).sum();
        lr.layers.push(LrLayer {
            name: r.node.clone(),
            op: Some(r.op.to_string()),
            shape: graph.initializers.get(&r.weight).map(|t| t.shape.clone()),
            sparsity: {
                // Kept fractions are recorded when the node's units agree.
                let agree = same.iter().all(|x| x.keep == r.keep);
                Sparsity::Bcr {
                    block_rows: r.block.rows,
                    block_cols: r.block.cols,
                    row_keep: agree.then(|| r.keep.row_keep(r.block)),
                    col_keep: agree.then(|| r.keep.col_keep(r.block)),
                }
            },
            order: None,
            schedule: None,
            latency_ms: None,
            estimates_ns: None,
            rate: Some(elements as f64 / kept.max(1) as f64),
        });
    }
    for s in &report.skipped {
        if seen.insert(s.node.clone()) {
            lr.layers.push(LrLayer {
                name: s.node.clone(),
                op: Some(s.op.to_string()),
                shape: None,
                sparsity: Sparsity::Dense,
                order: None,
                schedule: None,
                latency_ms: None,
                estimates_ns: None,
                rate: None,
            });
        }
    }
    lr
}

/// The retraining half of a run.
struct Retrain<'a> {
    layers: &'a [Layer],
    plan: &'a [(BlockSize, Keep)],
    schedule: &'a Schedule,
}

impl Retrain<'_> {
    fn project(&self, w: &mut BTreeMap<String, Vec<f32>>) -> Result<Vec<LayerReport>, PruneError> {
        project_all(self.layers, self.plan, w)
    }

    fn load(
        &self,
        trainer: &mut Trainer,
        w: &BTreeMap<String, Vec<f32>>,
    ) -> Result<(), PruneError> {
        for (n, v) in w {
            trainer.set(n, v)?;
        }
        Ok(())
    }

    /// ADMM epochs, hard pruning, masked fine-tuning.
    fn admm(
        &self,
        trainer: &mut Trainer,
        train_set: &Dataset,
        val: &Dataset,
        log: &mut dyn FnMut(&str),
    ) -> Result<Vec<LayerReport>, PruneError> {
        let s = self.schedule;
        let pruned: Vec<String> = self.layers.iter().map(|l| l.weight.clone()).collect();
        let mut w = trainer.weights()?;
        let mut z = w.clone();
        self.project(&mut z)?;
        let mut u: BTreeMap<String, Vec<f32>> = pruned
            .iter()
            .map(|n| (n.clone(), vec![0.0; w[n].len()]))
            .collect();
        let mut opt = trainer.adam(s.lr)?;
        let mut rng = train::rng(s.seed);
        let mut rho = s.rho;
        for e in 0..s.epochs {
            // The W-step's target Z - U, fixed for the epoch.
            let targets: Vec<(String, candle_core::Tensor)> = pruned
                .iter()
                .map(|n| {
                    let t: Vec<f32> = z[n].iter().zip(&u[n]).map(|(a, b)| a - b).collect();
                    let dims = trainer.params[n].as_tensor().dims().to_vec();
                    let t = candle_core::Tensor::from_vec(t, dims, &candle_core::Device::Cpu);
                    t.map(|t| (n.clone(), t))
                })
                .collect::<candle_core::Result<_>>()
                .map_err(|source| PruneError::Candle {
                    during: "the ADMM targets".into(),
                    source,
                })?;
            let half_rho = rho / 2.0;
            let extra = |p: &crate::train::forward::Params| -> candle_core::Result<Option<candle_core::Tensor>> {
                let mut sum: Option<candle_core::Tensor> = None;
                for (n, t) in &targets {
                    let d = p[n].as_tensor().sub(t)?.sqr()?.sum_all()?;
                    sum = Some(match sum {
                        Some(s) => s.add(&d)?,
                        None => d,
                    });
                }
                sum.map(|s| s.affine(half_rho, 0.0)).transpose()
            };
            let bar = train::bar(
                s.quiet,
                trainer.steps(train_set),
                format!("admm {}/{}", e + 1, s.epochs),
            );
            let loss =
                trainer.epoch(&mut opt, train_set, &mut rng, &extra, &mut |_| Ok(()), &bar)?;
            w = trainer.weights()?;
            // Z-step and U-step.
            let mut wu = w.clone();
            for n in &pruned {
                for (a, b) in wu.get_mut(n).into_iter().flatten().zip(&u[n]) {
                    *a += b;
                }
            }
            self.project(&mut wu)?;
            for n in &pruned {
                let (wn, zn) = (&w[n], &wu[n]);
                for ((uv, a), b) in u.get_mut(n).into_iter().flatten().zip(wn).zip(zn) {
                    *uv += a - b;
                }
            }
            z = wu;
            let metric = trainer.evaluate(val)?;
            let dist = distance(self.layers, self.plan, &w)?;
            let msg = format!("loss {loss:.4}, {metric}, distance to BCR {dist:.4}, rho {rho:.2e}");
            bar.finish_with_message(msg.clone());
            if bar.is_hidden() {
                log(&format!("admm epoch {}/{}: {msg}", e + 1, s.epochs));
            }
            // U is the scaled dual (lambda / rho): when rho grows, U
            // shrinks by the same factor, or the old duals would pull W
            // harder than the multipliers they stand for.
            rho *= s.rho_growth;
            for v in u.values_mut().flatten() {
                *v /= s.rho_growth as f32;
            }
        }
        self.masked_finetune(trainer, train_set, val, s.finetune_epochs, "finetune", log)
    }

    /// One-shot projection, then (with epochs) masked fine-tuning.
    fn finetune_projected(
        &self,
        trainer: &mut Trainer,
        train_set: &Dataset,
        val: &Dataset,
        log: &mut dyn FnMut(&str),
    ) -> Result<Vec<LayerReport>, PruneError> {
        self.masked_finetune(
            trainer,
            train_set,
            val,
            self.schedule.epochs,
            "finetune",
            log,
        )
    }

    /// Projects, then trains `epochs` with the pruned values held at zero.
    fn masked_finetune(
        &self,
        trainer: &mut Trainer,
        train_set: &Dataset,
        val: &Dataset,
        epochs: usize,
        what: &str,
        log: &mut dyn FnMut(&str),
    ) -> Result<Vec<LayerReport>, PruneError> {
        let s = self.schedule;
        let mut w = trainer.weights()?;
        let reports = self.project(&mut w)?;
        self.load(trainer, &w)?;
        let masks: Vec<(String, candle_core::Tensor)> = self
            .layers
            .iter()
            .map(|l| {
                let m: Vec<f32> = w[&l.weight]
                    .iter()
                    .map(|v| (*v != 0.0) as u8 as f32)
                    .collect();
                let dims = trainer.params[&l.weight].as_tensor().dims().to_vec();
                candle_core::Tensor::from_vec(m, dims, &candle_core::Device::Cpu)
                    .map(|t| (l.weight.clone(), t))
            })
            .collect::<candle_core::Result<_>>()
            .map_err(|source| PruneError::Candle {
                during: "the pruning masks".into(),
                source,
            })?;
        let mut opt = trainer.adam(s.lr)?;
        let mut rng = train::rng(s.seed.wrapping_add(1));
        let mut reapply = |p: &crate::train::forward::Params| -> Result<(), PruneError> {
            for (n, m) in &masks {
                let v = &p[n];
                let t = v.as_tensor().mul(m).map_err(|source| PruneError::Candle {
                    during: "masking".into(),
                    source,
                })?;
                v.set(&t).map_err(|source| PruneError::Candle {
                    during: "masking".into(),
                    source,
                })?;
            }
            Ok(())
        };
        for e in 0..epochs {
            let bar = train::bar(
                s.quiet,
                trainer.steps(train_set),
                format!("{what} {}/{epochs}", e + 1),
            );
            let loss = trainer.epoch(
                &mut opt,
                train_set,
                &mut rng,
                &|_| Ok(None),
                &mut reapply,
                &bar,
            )?;
            let metric = trainer.evaluate(val)?;
            let msg = format!("loss {loss:.4}, {metric}");
            bar.finish_with_message(msg.clone());
            if bar.is_hidden() {
                log(&format!("{what} epoch {}/{epochs}: {msg}", e + 1));
            }
        }
        Ok(reports)
    }
}
