//! Reading the model, its batch axis, re-importing it at a batch, and the
//! weights training may change; evaluation and the digits examples' dense
//! training.

use super::*;

pub(super) fn read_model(path: &Path) -> Result<ModelProto, PruneError> {
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
pub(super) fn batch_axis_of(proto: &ModelProto, graph: &Graph) -> usize {
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
pub(super) fn at_batch(
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

/// The loss and accuracy of the ONNX model at `model` on the `.npz` at
/// `data` (samples along the input's batch axis, or `batch_axis`): what the
/// tests and the examples measure held-out accuracy with.
pub fn evaluate(
    model: &Path,
    data: &Path,
    loss: Loss,
    batch_axis: Option<usize>,
) -> Result<Metric, PruneError> {
    let proto = read_model(model)?;
    let load = LoadOptions::default();
    let graph = grim_model::onnx::from_proto_with(&proto, model, &load)?.graph;
    let input = graph.inputs.first().ok_or_else(|| {
        PruneError::Options(format!(
            "{}: the model has no runtime input to feed",
            model.display()
        ))
    })?;
    let axis = batch_axis.unwrap_or_else(|| batch_axis_of(&proto, &graph));
    let set = data::load(data, &input.shape, axis, loss == Loss::CrossEntropy)?;
    let classes = outputs_per_sample(&graph, model, input.shape[axis])?;
    set.check_classes(classes)?;
    let batch = set.len().min(64);
    let tgraph = at_batch(&proto, model, &load, &input.name, axis, &input.shape, batch)?;
    let trainer = Trainer::new(&tgraph, model, &[], loss, batch)?;
    trainer.evaluate(&set)
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
    let axis = batch_axis_of(&proto, &graph);
    let input = &graph.inputs[0];
    let all = data::load(data, &input.shape, axis, true)?;
    let (train_set, val_set) = match val {
        Some(v) => (all, data::load(v, &input.shape, axis, true)?),
        None => all.split(0.1, schedule.seed)?,
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
        let epoch = train::Epoch::start(
            schedule.quiet,
            trainer.steps(&train_set),
            "train",
            e,
            schedule.epochs,
        );
        let loss = trainer.epoch(
            &mut opt,
            &train_set,
            &mut rng,
            &|_| Ok(None),
            &mut |_| Ok(()),
            &epoch.bar,
        )?;
        metric = trainer.evaluate(&val_set)?;
        epoch.finish(format!("loss {loss:.4}, {metric}"), log);
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

/// Values of the model's first output per sample (the classes of a
/// classifier), `batch` samples being what the model was imported with.
pub(super) fn outputs_per_sample(
    graph: &Graph,
    path: &Path,
    batch: usize,
) -> Result<usize, PruneError> {
    let out = graph.outputs.first().ok_or_else(|| {
        PruneError::Options(format!("{}: the model has no graph output", path.display()))
    })?;
    Ok(out.shape.iter().product::<usize>() / batch.max(1))
}

/// The weights training may change: the pruned ones, the biases of their
/// products, a bias added after a MatMul, and batch-norm scales and
/// offsets (never running statistics or initial states).
pub(super) fn trainable(graph: &Graph, layers: &[Layer]) -> Vec<String> {
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
