//! `grimc inspect`: per layer (product), keyed by its ONNX node name, the
//! kernel chosen and every candidate's estimate, the packed storage, and
//! the memory plan's figures.

use crate::{blob::PackedLayer, driver::Memory};
use grim_dialects::grim;
use melior::ir::{
    operation::{OperationLike, WalkOrder, WalkResult},
    AttributeLike, Module,
};

/// A product at the graph level: what the graph passes decided for it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Product {
    /// The ONNX node name (else `<op>#<index>`).
    pub layer: String,
    /// `gemm` or `conv2d`.
    pub op: String,
    /// The weight's name (the constant's), if it is a named constant.
    pub weight: Option<String>,
    /// `bcr` or `dense`.
    pub kernel: String,
    /// Every candidate's estimate in ns (`dense`, `bcr 8x16`, ...), as
    /// graph-choose-kernel recorded them.
    pub estimates: Vec<(String, f64)>,
    /// Why the kernel is what it is, in words.
    pub reason: String,
    /// A conv's im2col route.
    pub im2col: Option<String>,
    /// `[M, K]` of the product's weight matrix (its GEMM view).
    pub matrix: [usize; 2],
    /// A recurrent op's steps (its unit's estimate and a layer's time
    /// cover them all).
    pub steps: Option<usize>,
}

/// The `estimates` dictionary of a product.
fn estimates(op: &melior::ir::OperationRef) -> Vec<(String, f64)> {
    let Ok(attribute) = op.attribute(grim::ESTIMATES_ATTR) else {
        return Vec::new();
    };
    let raw = attribute.to_raw();
    // SAFETY: read-only queries, checked to be a dictionary of floats.
    unsafe {
        if !mlir_sys::mlirAttributeIsADictionary(raw) {
            return Vec::new();
        }
        (0..mlir_sys::mlirDictionaryAttrGetNumElements(raw))
            .filter_map(|i| {
                let entry = mlir_sys::mlirDictionaryAttrGetElement(raw, i);
                if !mlir_sys::mlirAttributeIsAFloat(entry.attribute) {
                    return None;
                }
                let name = mlir_sys::mlirIdentifierStr(entry.name);
                let bytes = std::slice::from_raw_parts(name.data as *const u8, name.length);
                Some((
                    String::from_utf8_lossy(bytes).into_owned(),
                    mlir_sys::mlirFloatAttrGetValueDouble(entry.attribute),
                ))
            })
            .collect()
    }
}

fn duration(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else {
        format!("{:.1} us", ns / 1e3)
    }
}

/// The reason for a product's kernel, from what the passes recorded.
fn reason(
    kernel: &str,
    block: Option<(i64, i64)>,
    estimates: &[(String, f64)],
    recorded: Option<String>,
) -> String {
    let dense = estimates.iter().find(|(label, _)| label == "dense");
    let best_bcr = estimates
        .iter()
        .filter(|(label, _)| label.starts_with("bcr"))
        .min_by(|a, b| a.1.total_cmp(&b.1));
    let chosen = match (kernel, block) {
        ("bcr", Some((r, c))) => format!("bcr {r}x{c}"),
        _ => kernel.to_string(),
    };
    if let Some(recorded) = recorded {
        // A fixed kernel: say who fixed it, and what the estimates thought.
        return match (estimates.iter().find(|(l, _)| *l == chosen), dense) {
            (Some((_, ns)), Some((_, d))) if chosen != "dense" => format!(
                "{chosen} {recorded} ({} vs dense {})",
                duration(*ns),
                duration(*d)
            ),
            (_, Some((_, d))) if chosen == "dense" => match best_bcr {
                Some((label, b)) => format!(
                    "dense {recorded} ({} vs best {label} {})",
                    duration(*d),
                    duration(*b)
                ),
                None => format!("dense {recorded}"),
            },
            _ => recorded,
        };
    }
    match (kernel, dense, best_bcr) {
        ("dense", Some((_, d)), Some((label, b))) if d <= b => format!(
            "dense is estimated cheaper: dense {} <= best {label} {}",
            duration(*d),
            duration(*b)
        ),
        ("dense", _, _) => "dense".to_string(),
        ("bcr", Some((_, d)), Some(_)) => {
            match estimates.iter().find(|(label, _)| *label == chosen) {
                Some((_, ns)) if *ns <= *d => {
                    format!(
                        "{chosen} {} vs dense {} ({:.1}x)",
                        duration(*ns),
                        duration(*d),
                        d / ns.max(1e-9)
                    )
                }
                Some((_, ns)) => format!("{chosen} ({} vs dense {})", duration(*ns), duration(*d)),
                None => chosen,
            }
        }
        _ => String::new(),
    }
}

/// The products of a module at the graph level.
pub fn products(module: &Module) -> Vec<Product> {
    let mut products = Vec::new();
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
        if name == grim::RECURRENT {
            recurrent_units(&op, &mut products);
            return WalkResult::Advance;
        }
        if !grim::PRODUCTS.contains(&name.as_str()) {
            return WalkResult::Advance;
        }
        let index = products.len();
        let layer = grim_passes::graph::apply_lr::node_name(&op)
            .unwrap_or_else(|| format!("{}#{index}", name.trim_start_matches("grim.")));
        let kernel = grim_dialects::attr::string(&op, grim::KERNEL_ATTR)
            .unwrap_or_else(|| grim::KERNEL_BCR.into());
        let block = grim_dialects::attr::int(&op, grim::BLOCK_ATTR)
            .zip(grim_dialects::attr::int(&op, grim::BLOCK_COLS_ATTR));
        let estimates = estimates(&op);
        let recorded = grim_dialects::attr::string(&op, grim::KERNEL_REASON_ATTR);
        products.push(Product {
            reason: reason(&kernel, block, &estimates, recorded),
            layer,
            op: name.trim_start_matches("grim.").to_string(),
            weight: grim::product_weight_name(&op),
            kernel,
            estimates,
            im2col: grim_dialects::attr::string(&op, grim::IM2COL_ATTR),
            matrix: grim_passes::graph::layer::Layer::of(&op).map_or([0, 0], |l| [l.m, l.k]),
            steps: None,
        });
        WalkResult::Advance
    });
    products
}

/// A recurrent op's weight matrices (per direction W and R, a GRU's
/// `R_zr` and `R_h`), one product each: the op's kernel and block apply to
/// all of them, and its estimates are the sums over its products.
fn recurrent_units(op: &melior::ir::OperationRef, products: &mut Vec<Product>) {
    let Ok((r, dims)) = grim_passes::lower::grim_to_bcr::recurrent_dims(op) else {
        return;
    };
    let layer = grim_passes::graph::apply_lr::node_name(op)
        .unwrap_or_else(|| format!("recurrent#{}", products.len()));
    let kernel = grim_dialects::attr::string(op, grim::KERNEL_ATTR)
        .unwrap_or_else(|| grim::KERNEL_DENSE.into());
    let block = grim_dialects::attr::int(op, grim::BLOCK_ATTR)
        .zip(grim_dialects::attr::int(op, grim::BLOCK_COLS_ATTR));
    let estimates = estimates(op);
    let recorded = grim_dialects::attr::string(op, grim::KERNEL_REASON_ATTR);
    let cell = r.cell.op_type().to_lowercase();
    let gate_by_gate = kernel == grim::KERNEL_BCR
        && block.is_some_and(|(rows, _)| {
            grim_passes::lower::grim_to_bcr::recurrent_per_gate(dims.hidden, rows as usize)
        });
    for d in 0..dims.directions {
        for unit in
            grim_passes::lower::grim_to_bcr::recurrent_units(&r, &dims, &layer, d, gate_by_gate)
        {
            let matrix = match unit.source {
                grim_passes::lower::grim_to_bcr::RecurrentMatrix::W => "W",
                grim_passes::lower::grim_to_bcr::RecurrentMatrix::R => "R",
            };
            products.push(Product {
                layer: layer.clone(),
                op: format!("{cell} {matrix} ({})", unit.gates.join(" ")),
                weight: Some(unit.name),
                kernel: kernel.clone(),
                estimates: estimates.clone(),
                reason: reason(&kernel, block, &estimates, recorded.clone()),
                im2col: None,
                matrix: unit.matrix,
                steps: Some(dims.seq),
            });
        }
    }
}

/// One row of the inspect table.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Row {
    /// ONNX node name of the product.
    pub layer: String,
    /// `gemm` or `conv2d`.
    pub op: String,
    /// Weight name.
    pub weight: String,
    /// `[rows, cols]` of the weight matrix.
    pub shape: [usize; 2],
    /// `bcr` or `dense`.
    pub kernel: String,
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
    /// The chosen kernel's estimate, ns.
    pub estimate_ns: Option<f64>,
    /// Every candidate's estimate, ns, by label.
    pub estimates: std::collections::BTreeMap<String, f64>,
    /// Why the kernel is what it is.
    pub reason: String,
    /// A conv's im2col route.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub im2col: Option<String>,
    /// A recurrent op's steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps: Option<usize>,
}

/// The whole of `grimc inspect --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// One row per product.
    pub layers: Vec<Row>,
    /// The memory plan.
    pub memory: Memory,
}

/// Rows for the products, with the storage of their packed weights.
pub fn rows(products: &[Product], layers: &[PackedLayer]) -> Vec<Row> {
    products
        .iter()
        .map(|p| {
            let weight = p.weight.clone().unwrap_or_default();
            let packed = layers
                .iter()
                .find(|l| l.name == weight && (l.block.is_some() == (p.kernel == grim::KERNEL_BCR)))
                .or_else(|| layers.iter().find(|l| l.name == weight));
            let chosen = match packed.and_then(|l| l.block) {
                Some(b) if p.kernel == grim::KERNEL_BCR => format!("bcr {}x{}", b.rows, b.cols),
                _ => "dense".to_string(),
            };
            let estimate_ns = p
                .estimates
                .iter()
                .find(|(label, _)| *label == chosen)
                .map(|(_, ns)| *ns);
            let (shape, stats, block, order, layout) = match packed {
                Some(l) => (
                    l.shape,
                    l.stats.clone(),
                    l.block
                        .map_or_else(|| "dense".to_string(), |b| format!("{}x{}", b.rows, b.cols)),
                    l.order.map_or_else(|| "-".to_string(), |o| o.to_string()),
                    l.layout.clone(),
                ),
                None => (
                    p.matrix,
                    grim_model::BcrcStats::default(),
                    "dense".to_string(),
                    "-".to_string(),
                    "runtime".to_string(),
                ),
            };
            Row {
                layer: p.layer.clone(),
                op: p.op.clone(),
                weight,
                shape,
                kernel: p.kernel.clone(),
                block,
                order,
                layout,
                blocks: stats.blocks,
                groups: stats.groups,
                stored_values: stats.stored_values,
                nonzeros: stats.nonzeros,
                fill: stats.fill,
                compression: (shape[0] * shape[1]) as f64 / stats.stored_values.max(1) as f64,
                bcrc_index_bytes: stats.index_bytes,
                csr_index_bytes: stats.csr_index_bytes,
                index_to_value: stats.index_bytes as f64 / stats.value_bytes.max(1) as f64,
                estimate_ns,
                estimates: p.estimates.iter().cloned().collect(),
                reason: p.reason.clone(),
                im2col: p.im2col.clone(),
                steps: p.steps,
            }
        })
        .collect()
}

fn bytes(value: u64) -> String {
    if value >= 1 << 20 {
        format!("{:.2} MiB", value as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", value as f64 / 1024.0)
    }
}

/// The report as text: the table, each layer's candidates, the memory line.
pub fn table(report: &Report) -> String {
    // A recurrent op's rows are its units (`<node>.W`, ...), with their gates.
    let shown = |r: &Row| match r.steps {
        Some(_) => format!("{} [{}]", r.weight, r.op),
        None => r.layer.clone(),
    };
    let width = report
        .layers
        .iter()
        .map(|r| shown(r).len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<width$} {:>11} {:>6} {:>6} {:>8} {:>10} {:>7} {:>7} {:>9} {:>9} {:>6} {:>7} {:>10} {:>10} {:>7} {:>10}\n",
        "layer", "shape", "kernel", "block", "order", "layout", "blocks", "groups", "stored", "nonzero", "fill", "compr", "bcrc_idx_B", "csr_idx_B", "idx/val", "estimate"
    );
    for r in &report.layers {
        out.push_str(&format!(
            "{:<width$} {:>11} {:>6} {:>6} {:>8} {:>10} {:>7} {:>7} {:>9} {:>9} {:>6.3} {:>6.2}x {:>10} {:>10} {:>6.1}% {:>10}\n",
            shown(r),
            format!("{}x{}", r.shape[0], r.shape[1]),
            r.kernel,
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
            100.0 * r.index_to_value,
            r.estimate_ns.map_or_else(|| "-".to_string(), duration)
        ));
    }
    out.push_str("\nwhy (estimated time of each candidate kernel, from the cost model):\n");
    let mut said = std::collections::BTreeSet::new();
    for r in &report.layers {
        // A recurrent op's units share its choice: said once, for the op.
        if r.steps.is_some() && !said.insert(r.layer.clone()) {
            continue;
        }
        let candidates: Vec<String> = r
            .estimates
            .iter()
            .map(|(label, ns)| format!("{label} {}", duration(*ns)))
            .collect();
        out.push_str(&format!("  {:<width$} {}\n", r.layer, r.reason));
        if !candidates.is_empty() {
            out.push_str(&format!(
                "  {:<width$}   candidates: {}\n",
                "",
                candidates.join(", ")
            ));
        }
    }
    let m = &report.memory;
    out.push_str(&format!(
        "\nmemory: arena {} (scratch the model asks for), activations {} in all, largest {}\n",
        bytes(m.arena_bytes),
        bytes(m.activations_bytes),
        bytes(m.largest_activation_bytes)
    ));
    out
}

/// The compiler's choices as an LR file (version 2): per layer its kernel,
/// block and order, and every candidate's estimate, so a user can edit a
/// choice and compile again with `--lr`.
pub fn lr_file(report: &Report, model: &std::path::Path) -> grim_model::LrFile {
    let mut lr =
        grim_model::LrFile::new(model.file_stem().map(|s| s.to_string_lossy().into_owned()));
    for row in &report.layers {
        let block = row
            .block
            .split_once('x')
            .and_then(|(r, c)| Some((r.parse().ok()?, c.parse().ok()?)));
        let sparsity = match (row.kernel.as_str(), block) {
            ("bcr", Some((block_rows, block_cols))) => grim_model::Sparsity::Bcr {
                block_rows,
                block_cols,
                row_keep: None,
                col_keep: None,
            },
            _ => grim_model::Sparsity::Dense,
        };
        let bcr = matches!(sparsity, grim_model::Sparsity::Bcr { .. });
        // Names are unique in an LR file; a second product of one node
        // (none today) would be named by its weight.
        if lr.layer(&row.layer).is_some() {
            continue;
        }
        lr.layers.push(grim_model::LrLayer {
            name: row.layer.clone(),
            op: Some(row.op.clone()),
            shape: Some(row.shape.to_vec()),
            sparsity,
            order: if bcr { row.order.parse().ok() } else { None },
            schedule: None,
            latency_ms: None,
            estimates_ns: (!row.estimates.is_empty()).then(|| row.estimates.clone()),
            rate: None,
        });
    }
    lr
}
