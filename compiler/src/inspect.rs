//! `grimc inspect`: one row per weight matrix of a product (BCR or dense).

use crate::blob::PackedLayer;

/// One row of the inspect table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// Weight name.
    pub layer: String,
    /// `[rows, cols]`.
    pub shape: [usize; 2],
    /// `RxC`, or `dense` for a layer that runs the dense kernel.
    pub block: String,
    /// Work order.
    pub order: String,
    /// Value layout: `row_major`, `col_panels` (BCR matrix-vector
    /// products) or `row_panels` (dense layers).
    pub layout: String,
    /// Stored blocks.
    pub blocks: usize,
    /// Runs of blocks that keep the same rows (reorder groups).
    pub groups: usize,
    /// Values stored (zeros inside kept sub-blocks included).
    pub stored_values: usize,
    /// Nonzero weights.
    pub nonzeros: usize,
    /// nonzeros / stored values.
    pub fill: f64,
    /// Dense elements / stored values.
    pub compression: f64,
    /// Bytes of BCRC index data (every byte that is not a value).
    pub bcrc_index_bytes: usize,
    /// Bytes a CSR with 32-bit indices would need for its indices.
    pub csr_index_bytes: usize,
    /// BCRC index bytes as a fraction of value bytes.
    pub index_to_value: f64,
}

/// Rows for the packed layers.
pub fn rows(layers: &[PackedLayer]) -> Vec<Row> {
    layers
        .iter()
        .map(|l| Row {
            layer: l.name.clone(),
            shape: l.shape,
            block: l
                .block
                .map_or_else(|| "dense".to_string(), |b| format!("{}x{}", b.rows, b.cols)),
            order: l.order.map_or_else(|| "-".to_string(), |o| o.to_string()),
            layout: l.layout.clone(),
            blocks: l.stats.blocks,
            groups: l.stats.groups,
            stored_values: l.stats.stored_values,
            nonzeros: l.stats.nonzeros,
            fill: l.stats.fill,
            compression: (l.shape[0] * l.shape[1]) as f64 / l.stats.stored_values.max(1) as f64,
            bcrc_index_bytes: l.stats.index_bytes,
            csr_index_bytes: l.stats.csr_index_bytes,
            index_to_value: l.stats.index_bytes as f64 / l.stats.value_bytes.max(1) as f64,
        })
        .collect()
}

/// The table as text.
pub fn table(rows: &[Row]) -> String {
    let mut out = format!(
        "{:<16} {:>11} {:>6} {:>8} {:>10} {:>7} {:>7} {:>9} {:>9} {:>6} {:>7} {:>10} {:>10} {:>7}\n",
        "layer", "shape", "block", "order", "layout", "blocks", "groups", "stored", "nonzero", "fill", "compr", "bcrc_idx_B", "csr_idx_B", "idx/val"
    );
    for r in rows {
        out.push_str(&format!(
            "{:<16} {:>11} {:>6} {:>8} {:>10} {:>7} {:>7} {:>9} {:>9} {:>6.3} {:>6.2}x {:>10} {:>10} {:>6.1}%\n",
            r.layer,
            format!("{}x{}", r.shape[0], r.shape[1]),
            r.block,
            r.order,
            r.layout,
            r.blocks,
            r.groups,
            r.stored_values,
            r.nonzeros,
            r.fill,
            r.compression,
            r.bcrc_index_bytes,
            r.csr_index_bytes,
            100.0 * r.index_to_value
        ));
    }
    out
}
