//! The BCR projection of every pruned weight, and the distance to it.

use super::*;

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
pub(super) fn distance(
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
