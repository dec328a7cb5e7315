//! The BCR projection of every pruned weight, and the distance to it.

use super::*;

/// Projects every matrix of `layer` in its weight `w` (in place); the
/// counts over all of them, `magnitude_kept` weighted by each matrix's
/// squared magnitude.
pub(super) fn project_layer(
    layer: &Layer,
    block: BlockSize,
    keep: Keep,
    w: &mut [f32],
) -> Result<grim_model::projection::Projection, PruneError> {
    let mut sum = grim_model::projection::Projection {
        kept: 0,
        total: 0,
        exact_blocks: 0,
        blocks: 0,
        magnitude_kept: 0.0,
    };
    let (mut kept_sq, mut total_sq) = (0.0, 0.0);
    for m in &layer.matrices {
        let mut mat = m.get(w);
        let sq: f64 = mat.iter().map(|v| (*v as f64).powi(2)).sum();
        let p = project(&mut mat, m.rows, m.cols, block, keep)?;
        m.put(w, &mat);
        sum.kept += p.kept;
        sum.total += p.total;
        sum.exact_blocks += p.exact_blocks;
        sum.blocks += p.blocks;
        kept_sq += p.magnitude_kept * sq;
        total_sq += sq;
    }
    sum.magnitude_kept = if total_sq > 0.0 {
        kept_sq / total_sq
    } else {
        1.0
    };
    Ok(sum)
}

/// The BCR projection of every pruned weight in `weights`.
pub(super) fn project_all(
    layers: &[Layer],
    plan: &[(BlockSize, Keep)],
    weights: &mut BTreeMap<String, Vec<f32>>,
) -> Result<Vec<LayerReport>, PruneError> {
    let mut reports = Vec::new();
    for (layer, &(block, keep)) in layers.iter().zip(plan) {
        let Some(w) = weights.get_mut(&layer.weight) else {
            continue;
        };
        let p = project_layer(layer, block, keep, w)?;
        reports.push(LayerReport {
            node: layer.node.clone(),
            unit: layer.unit.clone(),
            op: layer.op,
            weight: layer.weight.clone(),
            block,
            keep,
            elements: p.total,
            kept: p.kept,
            exact_blocks: p.exact_blocks,
            blocks: p.blocks,
        });
    }
    Ok(reports)
}

/// Squared distance of the pruned weights from their projection, relative.
pub(super) fn distance(
    layers: &[Layer],
    plan: &[(BlockSize, Keep)],
    weights: &BTreeMap<String, Vec<f32>>,
) -> Result<f64, PruneError> {
    let (mut d, mut n) = (0.0, 0.0);
    for (l, &(block, keep)) in layers.iter().zip(plan) {
        if let Some(a) = weights.get(&l.weight) {
            let mut b = a.clone();
            project_layer(l, block, keep, &mut b)?;
            d += a
                .iter()
                .zip(&b)
                .map(|(x, y)| ((x - y) as f64).powi(2))
                .sum::<f64>();
            n += a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>();
        }
    }
    Ok((d / n.max(f64::MIN_POSITIVE)).sqrt())
}
