//! `bcr.spmv` over column panels (`layout = "col_panels"`).
//!
//! A column's kept weights are consecutive in the panel, so the strip's
//! sums stay in vector registers across all of its blocks and only column
//! masks are decoded; the row-major spmv takes the spmm walk instead.

use super::{
    masks::{decode_mask, has_bits, mask_word},
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
fn spmv_grain(product: &bcr::SparseProduct) -> i64 {
    let (rows, cols) =
        bcr::defining_packed(product.packed.strips).map_or((0, 0), |info| (info.rows, info.cols));
    let blocks_per_strip = (cols + product.block_cols - 1) / product.block_cols;
    let strips = (rows + product.block_rows - 1) / product.block_rows;
    // At least four items, so that a small matrix still splits.
    (SPMV_ITEM_BLOCKS / blocks_per_strip.max(1))
        .min(strips / 4)
        .max(1)
}

/// Blocks per iteration of the compact walk, each with its own sum.
const UNROLL: i64 = 4;

/// Emits `bcr.spmv` over compact column panels (`layout =
/// "compact_panels"`, blocks of 8 or 16 rows): as [`panel_spmv`], each
/// strip's outputs stay in one vector register across its blocks, but a
/// column stores only its kept rows, and each is expanded to the block's
/// height by the block's row mask as it is loaded (`vector.expandload`:
/// one `vexpandps` with AVX-512). Half the rows pruned, half the bytes
/// read, which is what keeps a recurrent matrix in L2 (lower-grim-to-bcr
/// picks this layout only for targets with an expanding load).
pub(super) fn compact_spmv<'c>(b: &Builder<'c>, product: &bcr::SparseProduct<'c, '_>, rows: i64) {
    let (block_rows, block_cols) = (product.block_rows, product.block_cols);
    let (p, x, c, row_mask_bytes, mask_stride) = operands(product);
    let lanes = block_rows;
    let vector = b.vector_type(lanes as u64);
    let mask_type = melior::ir::Type::vector(&[lanes as u64], b.int_type(1));
    let bytes_type = melior::ir::Type::vector(&[row_mask_bytes as u64], b.int_type(8));
    let kept_cols = b.alloca(&[block_cols], b.index_type());
    let sums = b.alloca(&[block_rows], b.f32_type());
    let kept = bcr::defining_packed(product.packed.strips).and_then(|info| info.kept);
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
            // One block into `sum`: (the next block's first value, the new sum).
            let step = |b: &Builder<'c>, block: V<'c>, value: V<'c>, sum: V<'c>| -> [V<'c>; 2] {
                let column_base = column_base(b, &p, block, block_cols);
                let mask_base = b.muli(block, b.index(mask_stride));
                // The row mask as lanes of i1, and its count.
                let bytes = b.op("vector.load", &[p.masks, mask_base], &[bytes_type], &[])[0];
                let mask = b.op("vector.bitcast", &[bytes], &[mask_type], &[])[0];
                let row_word = mask_word(b, p.masks, mask_base, block_rows);
                let cols_mask_base = b.addi(mask_base, b.index(row_mask_bytes));
                let col_word = mask_word(b, p.masks, cols_mask_base, block_cols);
                let height = b.to_index(b.ctpop(row_word));
                let cols = b.to_index(b.ctpop(col_word));
                let passthru = b.broadcast(b.f32(0.0), lanes as u64);
                // sum += the panel of column base + k, `at` values in.
                let column = |b: &Builder<'c>, k: V<'c>, at: V<'c>, sum: V<'c>| {
                    let xk = b.broadcast(b.load(x, &[k]), lanes as u64);
                    let w = b.op(
                        "vector.expandload",
                        &[p.values, at, mask, passthru],
                        &[vector],
                        &[],
                    )[0];
                    b.vfma(w, xk, sum)
                };
                // Every column with a counted walk over the mask.
                let counted = |b: &Builder<'c>, sum: V<'c>| -> V<'c> {
                    let kept = decode_mask(
                        b,
                        p.masks,
                        cols_mask_base,
                        block_cols,
                        column_base,
                        kept_cols,
                    );
                    let (zero_index, one) = (b.index(0), b.index(1));
                    b.for_loop(zero_index, kept, one, &[sum], |b, j, sum| {
                        let k = b.load(kept_cols, &[j]);
                        vec![column(b, k, b.addi(value, b.muli(j, height)), sum[0])]
                    })[0]
                };
                let sum = match kept {
                    // Every block of the packed weight keeps `rows` x `cols`:
                    // straight-line code for that block, versioned on the
                    // block's own counts (a blob swapped in with --emit
                    // weights may differ).
                    Some((rows, kept_cols)) => {
                        let uniform = b.andi(
                            has_bits(b, row_word, rows),
                            has_bits(b, col_word, kept_cols),
                        );
                        b.if_else(
                            uniform,
                            &[vector],
                            |b| {
                                let mut word = col_word;
                                let mut sum = sum;
                                for j in 0..kept_cols {
                                    let k = b.addi(column_base, b.to_index(b.cttz(word)));
                                    let at = b.addi(value, b.index(j * rows));
                                    sum = column(b, k, at, sum);
                                    word = b.andi(word, b.subi(word, b.int(1, 64)));
                                }
                                vec![sum]
                            },
                            |b| vec![counted(b, sum)],
                        )[0]
                    }
                    None => counted(b, sum),
                };
                [b.addi(value, b.muli(cols, height)), sum]
            };
            // UNROLL blocks per iteration, each into its own sum, so that
            // the multiply-adds of consecutive blocks do not wait for each
            // other (one sum would chain every FMA of the strip).
            let zero = b.broadcast(b.f32(0.0), lanes as u64);
            let count = b.subi(end_block, first_block);
            let unroll = b.index(UNROLL);
            let full_end = b.addi(first_block, b.muli(b.divui(count, unroll), unroll));
            let mut inits = vec![first_value];
            inits.extend(std::iter::repeat_n(zero, UNROLL as usize));
            let unrolled = b.for_loop(
                first_block,
                full_end,
                unroll,
                &inits,
                |b, block, carried| {
                    let mut value = carried[0];
                    let mut next = vec![value];
                    for u in 0..UNROLL as usize {
                        let block = b.addi(block, b.index(u as i64));
                        let [v, sum] = step(b, block, value, carried[1 + u]);
                        value = v;
                        next.push(sum);
                    }
                    next[0] = value;
                    next
                },
            );
            let one = b.index(1);
            let rest = b.for_loop(
                full_end,
                end_block,
                one,
                &[unrolled[0], unrolled[1]],
                |b, block, carried| step(b, block, carried[0], carried[1]).to_vec(),
            );
            let mut total = rest[1];
            for sum in &unrolled[2..] {
                total = b.op("arith.addf", &[total, *sum], &[vector], &[])[0];
            }
            let results = [rest[0], total];
            let row_base = b.muli(strip, b.index(block_rows));
            let panel = Panel {
                c,
                sums,
                rows,
                lanes,
                vectors: 1,
            };
            panel.add(b, row_base, &results[1..]);
        },
    );
}
