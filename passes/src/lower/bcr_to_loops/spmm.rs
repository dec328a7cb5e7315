//! The sparse GEMM walk of `bcr.spmm` (and row-major `bcr.spmv`), with
//! implicit im2col for a product that reads an image.
//!
//! Per stored strip and block the masks are decoded into index lists, and
//! the kept rows run through the register tile in groups of
//! `register_tile`; an image is read in place through patch offsets, so no
//! patch matrix is ever materialised.
//!
//! When the packed weight states `kept_rows`/`kept_cols`
//! (bcr-uniform-blocks), the decoding, the row tiles and the loop over
//! kept columns have constant trip counts, and a matrix (not image) walk
//! prefetches the activation rows of the block [`PREFETCH_DISTANCE`] ahead.

use super::{
    masks::{decode_word, for_each_kept, has_bits, mask_word},
    register_tile::{RowTile, Walk},
    strips::{column_base, operands, strip_tile_loop, Strip},
};
use crate::builder::{Builder, V};
use crate::lower::im2col::Geometry;
use grim_dialects::{bcr, shape};
use melior::ir::ValueLike;

/// Emits the BCRC walk for `bcr.spmm` (`vectorised`) or `bcr.spmv`.
pub(super) fn sparse_product<'c>(
    b: &Builder<'c>,
    product: &bcr::SparseProduct<'c, '_>,
    c_shape: &[i64],
    spmm: bool,
    image: Option<Geometry>,
) {
    let (block_rows, block_cols) = (product.block_rows, product.block_cols);
    let (p, x, c, row_mask_bytes, mask_stride) = operands(product);
    // An image is read as one flat array: a kept patch row becomes the
    // offset of its first element, and output row oh adds oh * sh * W - oh * Wo.
    let x = match &image {
        Some(_) => flatten(b, x),
        None => x,
    };
    let n = if spmm { c_shape[1] } else { 1 };
    let lanes = if spmm { product.vector_width.max(1) } else { 1 };
    let register_tile = product.register_tile.max(1);
    let vectors = if spmm { product.vectors.max(1) } else { 1 };
    let tile_n = if spmm { product.tile_n } else { 0 };
    // An image is walked by whole output rows: so are its tiles.
    let tile_n = match &image {
        Some(image) if tile_n > 0 => (tile_n / image.wo).max(1) * image.wo,
        _ => tile_n,
    };

    // Every block keeps the same rows and columns: constant trip counts.
    let kept = bcr::defining_packed(product.packed.strips).and_then(|info| info.kept);
    // Hoisted out of every loop: an alloca inside a loop grows the stack.
    let kept_rows = b.alloca(&[block_rows], b.index_type());
    let kept_cols = b.alloca(&[block_cols], b.index_type());
    // bcr-tile: the strip's blocks once per tile of N, so the strip's output
    // tile and the activation panel stay in cache while every block uses them;
    // a patch or activation matrix tile-major, an image in place strip-major.
    strip_tile_loop(
        b,
        &p,
        product.threads,
        n,
        tile_n,
        image.is_none(),
        |b,
         Strip {
             strip,
             first_block,
             first_value,
             end_block,
         },
         n_base,
         n_len| {
            let row_base = b.muli(strip, b.index(block_rows));
            // One walk over the strip's blocks for the output columns [n_base, n_base + n_len).
            {
                let one = b.index(1);
                b.for_loop(
                    first_block,
                    end_block,
                    one,
                    &[first_value],
                    |b, block, carried| {
                        let value_offset = carried[0];
                        let column_base = column_base(b, &p, block, block_cols);
                        let mask_base = b.muli(block, b.index(mask_stride));
                        let row_word = mask_word(b, p.masks, mask_base, block_rows);
                        let cols_mask_base = b.addi(mask_base, b.index(row_mask_bytes));
                        let col_word = mask_word(b, p.masks, cols_mask_base, block_cols);
                        // The block's products, its counts known or counted.
                        let products = |b: &Builder<'c>, known: Option<(i64, i64)>| {
                            let rows =
                                decode_word(b, row_word, known.map(|k| k.0), row_base, kept_rows);
                            let cols = decode_word(
                                b,
                                col_word,
                                known.map(|k| k.1),
                                column_base,
                                kept_cols,
                            );
                            if let (Some((_, kept_cols)), true, None) = (known, spmm, &image) {
                                let blocks = Blocks {
                                    packed: p,
                                    block_cols,
                                    mask_stride,
                                    row_mask_bytes,
                                    kept_cols,
                                };
                                prefetch_ahead(b, &blocks, block, end_block, x, n_base, n_len);
                            }
                            // Kept rows in tiles of `register_tile` that share every activation load
                            // (bcr-lre), then the rows left over one at a time.
                            let walk = Walk::Kept {
                                kept_rows,
                                kept_cols,
                                cols,
                                value_offset,
                                values: p.values,
                            };
                            let tiles =
                                |b: &Builder<'c>,
                                 n_base: V<'c>,
                                 n_len: i64,
                                 image_shift: Option<V<'c>>| {
                                    let tile = RowTile {
                                        walk,
                                        x,
                                        packed: None,
                                        image_shift,
                                        c,
                                        matrix: spmm,
                                        n_base,
                                        n: n_len,
                                        lanes,
                                        vectors,
                                    };
                                    let zero = b.index(0);
                                    let step = b.index(register_tile);
                                    let full = b.divui(rows, step);
                                    let full = b.muli(full, step);
                                    if register_tile > 1 {
                                        b.for_loop(zero, full, step, &[], |b, first, _| {
                                            tile.emit(b, first, register_tile as usize);
                                            vec![]
                                        });
                                    }
                                    let one = b.index(1);
                                    let start = if register_tile > 1 { full } else { zero };
                                    b.for_loop(start, rows, one, &[], |b, first, _| {
                                        tile.emit(b, first, 1);
                                        vec![]
                                    });
                                };
                            match &image {
                                None => tiles(b, n_base, n_len, None),
                                Some(image) => {
                                    // The kept patch rows as image offsets, then one
                                    // walk per output row (its columns are contiguous
                                    // in the image), as many as the N tile holds.
                                    image.patch_offsets(b, kept_cols, cols);
                                    let wo = b.index(image.wo);
                                    let first_row = b.divui(n_base, wo);
                                    let (zero, one) = (b.index(0), b.index(1));
                                    b.for_loop(
                                        zero,
                                        b.index(n_len / image.wo),
                                        one,
                                        &[],
                                        |b, r, _| {
                                            let oh = b.addi(first_row, r);
                                            let row_base = b.muli(oh, wo);
                                            let shift = b.muli(
                                                oh,
                                                b.index(
                                                    image.patch.conv.strides[0] * image.w
                                                        - image.wo,
                                                ),
                                            );
                                            tiles(b, row_base, image.wo, Some(shift));
                                            vec![]
                                        },
                                    );
                                }
                            }
                        };
                        match kept {
                            // Versioned on the block's own counts: a blob other than the
                            // one compiled with (`--emit weights`) may not have them, and
                            // the constant trip counts would then read past the block.
                            Some((r, c)) => {
                                let uniform =
                                    b.andi(has_bits(b, row_word, r), has_bits(b, col_word, c));
                                b.if_else(
                                    uniform,
                                    &[],
                                    |b| {
                                        products(b, kept);
                                        vec![]
                                    },
                                    |b| {
                                        products(b, None);
                                        vec![]
                                    },
                                );
                            }
                            None => products(b, None),
                        }
                        let rows = b.to_index(b.ctpop(row_word));
                        let cols = b.to_index(b.ctpop(col_word));
                        let size = b.muli(rows, cols);
                        vec![b.addi(value_offset, size)]
                    },
                );
            }
        },
    );
}

/// Blocks ahead of the current one whose activation rows are prefetched.
/// Measured on the 1536x1536 gemm on a batch of 64 (Zen 3, AVX2): one
/// block ahead hides less of the L2 latency than two; four is no better.
const PREFETCH_DISTANCE: i64 = 2;

/// 64-byte lines prefetched at the start of each activation row the block
/// ahead reads. Only the start: the hardware's stream prefetcher follows a
/// row once it is being read, while prefetching all of it (49 lines at
/// N = 784) made `prefetcht0` 36% of the samples of an 8x16 BCR conv of
/// 512x4608x784 (perf, Sapphire Rapids; docs/benchmarks/analysis.md).
const PREFETCH_LINES: i64 = 4;

/// Prefetches the activation rows `[n_base, n_base + n_len)` that the block
/// [`PREFETCH_DISTANCE`] ahead in this strip reads (the strip's last block
/// when fewer remain): the first [`PREFETCH_LINES`] 64-byte lines of each.
///
/// The activation rows a block reads are scattered over `X`, so the
/// hardware prefetchers cannot guess them. Only with uniform counts: the
/// column mask is then walked in a few unrolled instructions, while a
/// counted walk per block costs about what the prefetch saves (measured).
fn prefetch_ahead<'c>(
    b: &Builder<'c>,
    blocks: &Blocks<'c>,
    block: V<'c>,
    end_block: V<'c>,
    x: V<'c>,
    n_base: V<'c>,
    n_len: i64,
) {
    let ahead = b.addi(block, b.index(PREFETCH_DISTANCE));
    let last = b.subi(end_block, b.index(1));
    let ahead = b.minui(ahead, last);
    let base = column_base(b, &blocks.packed, ahead, blocks.block_cols);
    let mask = b.muli(ahead, b.index(blocks.mask_stride));
    let mask = b.addi(mask, b.index(blocks.row_mask_bytes));
    let word = mask_word(b, blocks.packed.masks, mask, blocks.block_cols);
    let lines = ((n_len + 15) / 16).min(PREFETCH_LINES);
    // The block ahead is walked as if it kept `kept_cols` columns; one that
    // keeps fewer (a blob other than the compiled one) must not prefetch
    // past X's last row.
    let last_row = b.subi(b.dim(x, 0), b.index(1));
    let known = Some(blocks.kept_cols);
    for_each_kept(b, word, known, base, |b, row| {
        let row = b.minui(row, last_row);
        for line in 0..lines {
            let column = b.addi(n_base, b.index(line * 16));
            b.prefetch(x, &[row, column]);
        }
    });
}

/// A packed matrix, where each block's column mask is, and how many
/// columns every block keeps.
struct Blocks<'c> {
    packed: bcr::Packed<'c, 'c>,
    block_cols: i64,
    mask_stride: i64,
    row_mask_bytes: i64,
    kept_cols: i64,
}

/// A static memref as one flat row-major array (`memref.collapse_shape`),
/// keeping a static offset of its layout (an image of a batch).
fn flatten<'c>(b: &Builder<'c>, x: V<'c>) -> V<'c> {
    let ty = x.r#type();
    let dims = shape::static_shape(ty).unwrap_or_default();
    let numel = shape::numel(&dims);
    let flat = match shape::static_offset(ty) {
        Some(offset) if offset != 0 => {
            shape::strided_memref_type(b.context, &[numel], &[1], offset)
        }
        _ => b.memref_type(&[numel], b.f32_type()),
    };
    let all: Vec<melior::ir::Attribute<'c>> = (0..dims.len() as i64)
        .map(|d| melior::ir::attribute::IntegerAttribute::new(b.int_type(64), d).into())
        .collect();
    let group = melior::ir::attribute::ArrayAttribute::new(b.context, &all).into();
    let reassociation = melior::ir::attribute::ArrayAttribute::new(b.context, &[group]).into();
    b.op(
        "memref.collapse_shape",
        &[x],
        &[flat],
        &[("reassociation", reassociation)],
    )[0]
}
