//! What `--auto` needs from the model: each layer's products for the cost
//! model, and its sensitivity (on data, or by magnitude).

use super::*;

/// The product each matrix of each layer runs (for the cost model): a
/// gemm's batch rows, a conv's output pixels per image, a recurrent op's
/// input projection over all steps and its recurrent product per step.
pub(super) fn layer_costs(
    graph: &Graph,
    layers: &[Layer],
) -> Result<Vec<crate::auto::LayerCost>, PruneError> {
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
pub(super) fn auto_blocks(
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
pub(super) fn auto_keeps(
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
pub(super) fn sensitivity_of_magnitude(
    layers: &[Layer],
    plan: &[(BlockSize, Keep)],
    weights: &BTreeMap<String, Vec<f32>>,
) -> Result<Vec<[f64; 5]>, PruneError> {
    anchors(layers, plan, weights, |_, _, removed| Ok(removed))
}

/// For every layer and anchor rate, `f(layer, projected weight, magnitude
/// removed)` of that layer alone projected at the rate.
fn anchors(
    layers: &[Layer],
    plan: &[(BlockSize, Keep)],
    weights: &BTreeMap<String, Vec<f32>>,
    mut f: impl FnMut(&Layer, &[f32], f64) -> Result<f64, PruneError>,
) -> Result<Vec<[f64; 5]>, PruneError> {
    let mut out = Vec::new();
    for (layer, &(block, _)) in layers.iter().zip(plan) {
        let mut at = [0.0; 5];
        if let Some(original) = weights.get(&layer.weight) {
            for (a, rate) in crate::auto::ANCHORS.iter().enumerate() {
                let mut w = original.clone();
                let p = project_layer(layer, block, split_rate(block, *rate)?, &mut w)?;
                at[a] = f(layer, &w, 1.0 - p.magnitude_kept)?;
            }
        }
        out.push(at);
    }
    Ok(out)
}

/// Sensitivity with validation data: the accuracy (classification) or the
/// relative loss lost when one layer alone is projected, plus a hundredth
/// of the magnitude removed to order layers whose accuracy does not move.
pub(super) fn sensitivity_on_data(
    trainer: &mut Trainer,
    layers: &[Layer],
    plan: &[(BlockSize, Keep)],
    val: &Dataset,
    dense: Metric,
) -> Result<Vec<[f64; 5]>, PruneError> {
    let weights = trainer.weights()?;
    let out = anchors(layers, plan, &weights, |layer, w, removed| {
        trainer.set(&layer.weight, w)?;
        let metric = trainer.evaluate(val)?;
        trainer.set(&layer.weight, &weights[&layer.weight])?;
        let lost = match (dense.accuracy, metric.accuracy) {
            (Some(d), Some(p)) => (d - p).max(0.0),
            _ => ((metric.loss - dense.loss) / dense.loss.max(f64::MIN_POSITIVE)).max(0.0),
        };
        Ok(lost + 0.01 * removed)
    })?;
    Ok(out)
}
