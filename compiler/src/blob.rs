//! The weight blob: every weight the generated code reads, in one buffer.
//!
//! The layout is `grim_dialects::abi::blob` (shared with the lowering that
//! reads it). `lower-grim-to-bcr` numbers the slots; this module fills them
//! from the `bcr.packed` / `bcr.dense` ops of the lowered module, packing
//! BCRC with the block size and work order those ops carry, from the
//! weight values the ops carry (`value`): the blob is a codegen-time
//! product of the bcr level, not an attribute of it (the packed arrays
//! would double the module's size, and nothing after this level reads
//! weight values).

use crate::CompileError;
use grim_dialects::{abi, bcr};
use grim_model::{Bcrc, BcrcStats, BlockSize, Order};
use melior::ir::{
    operation::{OperationLike, WalkOrder, WalkResult},
    Module, ValueLike,
};

/// Magic bytes at the start of every blob.
pub const MAGIC: &[u8; 8] = abi::blob::MAGIC;

/// One weight matrix of a product, for `grimc inspect` and the LR file.
#[derive(Debug, Clone)]
pub struct PackedLayer {
    /// Weight name.
    pub name: String,
    /// Rows x columns.
    pub shape: [usize; 2],
    /// Block size used; `None` for a layer that stays dense (`bcr.gemm`).
    pub block: Option<BlockSize>,
    /// Work order used (`None` when dense).
    pub order: Option<Order>,
    /// Value layout (`row_major`, `col_panels` for BCR matrix-vector
    /// products, `row_panels` for dense layers).
    pub layout: String,
    /// Storage statistics.
    pub stats: BcrcStats,
}

/// The blob bytes plus what was packed.
pub struct Blob {
    /// The bytes, ready to embed or write.
    pub bytes: Vec<u8>,
    /// Packed layers in slot order.
    pub layers: Vec<PackedLayer>,
}

/// The values a `bcr.packed` / `bcr.dense` carries.
fn weight_values<'c: 'a, 'a>(
    op: &impl OperationLike<'c, 'a>,
    name: &str,
) -> Result<(Vec<i64>, Vec<f32>), CompileError> {
    let value = bcr::weight_value(op)
        .ok_or_else(|| CompileError::Internal(format!("weight '{name}' carries no value")))?;
    match (
        grim_dialects::weights::shape(value),
        grim_dialects::weights::read(value),
    ) {
        (Some(shape), Some(data)) => Ok((shape, data)),
        _ => Err(CompileError::Internal(format!(
            "weight '{name}' is not f32 dense elements or a dense_resource"
        ))),
    }
}

fn align(bytes: &mut Vec<u8>) {
    while !bytes.len().is_multiple_of(64) {
        bytes.push(0);
    }
}

/// Storage figures of a dense layer: every value stored, no index bytes.
fn dense_stats(data: &[f32], rows: usize, stored: usize) -> BcrcStats {
    let nonzeros = data.iter().filter(|v| **v != 0.0).count();
    BcrcStats {
        stored_values: stored,
        nonzeros,
        fill: nonzeros as f64 / stored.max(1) as f64,
        blocks: 0,
        strips: 0,
        groups: 0,
        value_bytes: 4 * stored,
        index_bytes: 0,
        csr_index_bytes: 4 * nonzeros + 4 * (rows + 1),
    }
}

/// Builds the blob for `module` (after `lower-grim-to-bcr`).
pub fn build(module: &Module) -> Result<Blob, CompileError> {
    let mut slots: Vec<Option<Vec<u8>>> = Vec::new();
    let mut counts: Vec<u64> = Vec::new();
    let mut layers = Vec::new();
    let mut failure = None;
    let mut put = |slot: usize, data: Vec<u8>, count: usize| {
        if slots.len() <= slot {
            slots.resize(slot + 1, None);
            counts.resize(slot + 1, 0);
        }
        slots[slot] = Some(data);
        counts[slot] = count as u64;
    };
    module.as_operation().walk(WalkOrder::PreOrder, |op| {
        let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
        let result = (|| -> Result<(), CompileError> {
            if name == bcr::PACKED {
                let info = bcr::packed_info(&op)
                    .ok_or_else(|| CompileError::Internal("malformed bcr.packed".into()))?;
                let (_, data) = weight_values(&op, &info.name)?;
                let (rows, cols) = (info.rows as usize, info.cols as usize);
                if data.len() != rows * cols {
                    return Err(CompileError::Internal(format!(
                        "weight '{}' has {} values, expected {rows}x{cols}",
                        info.name,
                        data.len()
                    )));
                }
                let block = BlockSize::new(info.block_rows as usize, info.block_cols as usize)?;
                let order = if info.order == bcr::ORDER_GROUPED {
                    Order::Grouped
                } else {
                    Order::Natural
                };
                let packed = Bcrc::pack(&data, rows, cols, block, order)?;
                // The kernels run kept_rows x kept_cols per block without counting.
                if let Some((kept_rows, kept_cols)) = info.kept {
                    let actual = grim_model::bcrc::uniform_counts(&data, rows, cols, block)?;
                    if actual != Some((kept_rows as usize, kept_cols as usize)) {
                        return Err(CompileError::Diagnostics(format!(
                            "{}: error: 'bcr.packed' op weight '{}' says every block keeps {kept_rows} rows and {kept_cols} columns (kept_rows, kept_cols), but its blocks keep {}",
                            grim_dialects::diag::format_location(op.location()),
                            info.name,
                            match actual {
                                Some((r, c)) => format!("{r} rows and {c} columns"),
                                None => "differing counts".to_string(),
                            }
                        )));
                    }
                }
                let slot = info.slot as usize;
                let mut stats = packed.stats();
                let panels = match info.layout.as_str() {
                    bcr::LAYOUT_COL_PANELS => Some(packed.col_panels()),
                    bcr::LAYOUT_COMPACT_PANELS => {
                        Some((packed.strips.clone(), packed.compact_panels()))
                    }
                    _ => None,
                };
                let (strips, values) = match &panels {
                    Some((strips, values)) => {
                        stats.stored_values = values.len();
                        stats.value_bytes = 4 * values.len();
                        stats.fill = if values.is_empty() {
                            1.0
                        } else {
                            stats.nonzeros as f64 / values.len() as f64
                        };
                        (&strips[..], &values[..])
                    }
                    None => (&packed.strips[..], &packed.values[..]),
                };
                put(
                    slot,
                    strips.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    strips.len(),
                );
                put(
                    slot + 1,
                    packed
                        .block_col
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect(),
                    packed.block_col.len(),
                );
                put(slot + 2, packed.masks.clone(), packed.masks.len());
                put(
                    slot + 3,
                    values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    values.len(),
                );
                layers.push(PackedLayer {
                    name: info.name,
                    shape: [rows, cols],
                    block: Some(block),
                    order: Some(order),
                    layout: info.layout,
                    stats,
                });
            } else if name == bcr::DENSE {
                let weight_name = grim_dialects::attr::string(&op, "name").unwrap_or_default();
                let slot = grim_dialects::attr::int(&op, "slot").unwrap_or(-1);
                let (shape, data) = weight_values(&op, &weight_name)?;
                if grim_dialects::attr::string(&op, bcr::LAYOUT_ATTR).as_deref()
                    == Some(bcr::LAYOUT_ROW_PANELS)
                {
                    // The matrix is `rows` x the rest, row-major: a conv's
                    // [M, C, kh, kw] is [M, C*kh*kw], a reshaped constant
                    // [1, 1, M, K] is [M, K]. Files without `rows` (written
                    // before it existed) have rows = the first dim.
                    let numel = shape.iter().product::<i64>();
                    let rows = grim_dialects::attr::int(&op, "rows")
                        .or_else(|| shape.first().copied())
                        .unwrap_or(0);
                    let (rows, cols) = match (rows, slot) {
                        (rows, slot) if rows > 0 && slot >= 0 && numel % rows == 0 => {
                            (rows as usize, (numel / rows) as usize)
                        }
                        _ => {
                            return Err(CompileError::Internal(format!(
                                "weight '{weight_name}' of shape {shape:?} is not a matrix for row panels"
                            )))
                        }
                    };
                    let panel_rows = bcr::panel_rows(&op) as usize;
                    let panels = grim_model::row_panels(&data, rows, cols, panel_rows)?;
                    put(
                        slot as usize,
                        panels.iter().flat_map(|v| v.to_le_bytes()).collect(),
                        panels.len(),
                    );
                    layers.push(PackedLayer {
                        name: weight_name,
                        shape: [rows, cols],
                        block: None,
                        order: None,
                        layout: bcr::LAYOUT_ROW_PANELS.into(),
                        stats: dense_stats(&data, rows, panels.len()),
                    });
                    return Ok(());
                }
                let expected = op
                    .result(0)
                    .ok()
                    .and_then(|r| grim_dialects::shape::static_shape(r.r#type()))
                    .map(|s| s.iter().product::<i64>() as usize)
                    .unwrap_or(0);
                if data.len() != expected || slot < 0 {
                    return Err(CompileError::Internal(format!(
                        "weight '{weight_name}' has {} values, bcr.dense wants {expected}",
                        data.len()
                    )));
                }
                put(
                    slot as usize,
                    data.iter().flat_map(|v| v.to_le_bytes()).collect(),
                    data.len(),
                );
            }
            Ok(())
        })();
        if let Err(error) = result {
            failure = Some(error);
            return WalkResult::Interrupt;
        }
        WalkResult::Advance
    });
    if let Some(error) = failure {
        return Err(error);
    }
    let mut bytes = Vec::new();
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(slots.len() as u64).to_le_bytes());
    let table_start = bytes.len();
    bytes.resize(table_start + 16 * slots.len(), 0);
    align(&mut bytes);
    for (index, slot) in slots.iter().enumerate() {
        let data = slot
            .as_ref()
            .ok_or_else(|| CompileError::Internal(format!("blob slot {index} is never filled")))?;
        let offset = bytes.len() as u64;
        bytes[table_start + 16 * index..table_start + 16 * index + 8]
            .copy_from_slice(&offset.to_le_bytes());
        bytes[table_start + 16 * index + 8..table_start + 16 * index + 16]
            .copy_from_slice(&counts[index].to_le_bytes());
        bytes.extend_from_slice(data);
        align(&mut bytes);
    }
    Ok(Blob { bytes, layers })
}
