//! The LR file of a run.

use super::*;

/// The LR file of a run: a BCR entry per pruned node (block, keeps, rate),
/// a dense one per node left dense.
pub(super) fn lr_file(report: &PruneReport, graph: &Graph, path: &Path) -> LrFile {
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
