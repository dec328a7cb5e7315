//! `bcr.spmv` over column panels (`layout = "col_panels"`); compact panels
//! are `compact.rs`.
//!
//! A column's kept weights are consecutive in the panel, so the strip's
//! sums stay in vector registers across all of its blocks and only column
//! masks are decoded; the row-major spmv takes the spmm walk instead.

use super::{
    masks::decode_mask,
    panel::{panel_lanes, Panel},
    strips::{column_base, grained_strip_loop, operands, Strip},
};
use crate::builder::{Builder, V};
use grim_dialects::bcr;

/// Emits `bcr.spmv` over column panels: each strip's `block_rows` outputs
/// stay in vector registers across all of its blocks; per kept column, one
/// activation is broadcast and multiplied with the column's panel (one
/// vector load per `lanes` rows). Row masks are not read at all. The strip's
/// sums are added to the output with vector loads and stores, or row by row
/// for a bottom strip that `rows` cuts short.
pub(super) fn panel_spmv<'c>(b: &Builder<'c>, product: &bcr::SparseProduct<'c, '_>, rows: i64) {
    let (block_rows, block_cols) = (product.block_rows, product.block_cols);
    let (p, x, c, row_mask_bytes, mask_stride) = operands(product);
    // Vectors of `lanes` rows that tile the block height exactly.
    let lanes = panel_lanes(product.vector_width, block_rows);
    let vectors = block_rows / lanes;
    let load = |b: &Builder<'c>, memref: V<'c>, at: V<'c>| {
        if lanes == 1 {
            b.load(memref, &[at])
        } else {
            b.vload(memref, &[at], lanes as u64)
        }
    };

    let kept_cols = b.alloca(&[block_cols], b.index_type());
    let sums = b.alloca(&[block_rows], b.f32_type());
    grained_strip_loop(
        b,
        &p,
        product.threads,
        spmv_grain(product),
        |b,
         Strip {
             strip,
             first_block,
             first_value,
             end_block,
         }| {
            let zero = if lanes == 1 {
                b.f32(0.0)
            } else {
                b.broadcast(b.f32(0.0), lanes as u64)
            };
            let mut inits = vec![first_value];
            inits.extend(std::iter::repeat_n(zero, vectors as usize));
            let one = b.index(1);
            let results = b.for_loop(first_block, end_block, one, &inits, |b, block, carried| {
                let column_base = column_base(b, &p, block, block_cols);
                let mask_base = b.muli(block, b.index(mask_stride));
                let cols_mask_base = b.addi(mask_base, b.index(row_mask_bytes));
                let cols = decode_mask(
                    b,
                    p.masks,
                    cols_mask_base,
                    block_cols,
                    column_base,
                    kept_cols,
                );
                let (zero, one) = (b.index(0), b.index(1));
                let sums = b.for_loop(zero, cols, one, &carried[1..], |b, j, sums| {
                    let k = b.load(kept_cols, &[j]);
                    let xk = b.load(x, &[k]);
                    let xk = if lanes == 1 {
                        xk
                    } else {
                        b.broadcast(xk, lanes as u64)
                    };
                    let panel = b.muli(j, b.index(block_rows));
                    let panel = b.addi(carried[0], panel);
                    (0..vectors as usize)
                        .map(|v| {
                            let at = b.addi(panel, b.index(v as i64 * lanes));
                            let w = load(b, p.values, at);
                            if lanes == 1 {
                                b.fma(w, xk, sums[v])
                            } else {
                                b.vfma(w, xk, sums[v])
                            }
                        })
                        .collect()
                });
                let size = b.muli(cols, b.index(block_rows));
                let mut next = vec![b.addi(carried[0], size)];
                next.extend(sums);
                next
            });
            // Add the strip's sums into c[strip * block_rows ..].
            let row_base = b.muli(strip, b.index(block_rows));
            let panel = Panel {
                c,
                sums,
                rows,
                lanes,
                vectors,
            };
            panel.add(b, row_base, &results[1..]);
        },
    );
}

/// Blocks a matrix-vector work item should hold at least: a strip of 64
/// blocks runs in about 0.15 us, and one atomic hand-out per strip cost
/// more than the second thread gained (the speech GRU's R on 2 threads).
const SPMV_ITEM_BLOCKS: i64 = 1024;

/// The strips per work item of a matrix-vector product: enough for
/// [`SPMV_ITEM_BLOCKS`] blocks when every block column is stored, but no
/// more than a quarter of the strips.
pub(super) fn spmv_grain(product: &bcr::SparseProduct) -> i64 {
    narrow_grain(product, 1)
}

/// [`spmv_grain`] for a product over `n` columns, whose blocks each do `n`
/// times a matrix-vector block's work.
pub(super) fn narrow_grain(product: &bcr::SparseProduct, n: i64) -> i64 {
    let (rows, cols) =
        bcr::defining_packed(product.packed.strips).map_or((0, 0), |info| (info.rows, info.cols));
    let blocks_per_strip = (cols + product.block_cols - 1) / product.block_cols;
    let strips = (rows + product.block_rows - 1) / product.block_rows;
    // At least four items, so that a small matrix still splits.
    (SPMV_ITEM_BLOCKS / (blocks_per_strip * n).max(1))
        .min(strips / 4)
        .max(1)
}
