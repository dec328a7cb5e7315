//! Reading a packed BCRC matrix: the loop over its strip records, a
//! block's first column, and a sparse product's arrays and mask layout.
//!
//! Shared by the spmm walk and the column-panel spmv, which differ only in
//! what they do with a strip's blocks.

use super::schedule::{n_tiles, parallel_attrs};
use crate::builder::{erase, Builder, V};
use grim_dialects::bcr;

/// One strip record of a BCRC matrix.
#[derive(Clone, Copy)]
pub(super) struct Strip<'c> {
    /// Strip (block-row) index.
    pub(super) strip: V<'c>,
    /// Its blocks are `[first_block, end_block)`.
    pub(super) first_block: V<'c>,
    pub(super) end_block: V<'c>,
    /// Offset of its first value.
    pub(super) first_value: V<'c>,
}

/// The loop over a packed matrix's stored strips, marked `grim.parallel`
/// (strips write disjoint output rows, so bcr-parallelize may run them on
/// any thread, with the product's `threads` cap); `body` gets each record.
pub(super) fn strip_loop<'c>(
    b: &Builder<'c>,
    p: &bcr::Packed<'c, 'c>,
    threads: i64,
    body: impl FnOnce(&Builder<'c>, Strip<'c>),
) {
    grained_strip_loop(b, p, threads, 1, body)
}

/// [`strip_loop`] handing out at least `grain` strips per work item.
pub(super) fn grained_strip_loop<'c>(
    b: &Builder<'c>,
    p: &bcr::Packed<'c, 'c>,
    threads: i64,
    grain: i64,
    body: impl FnOnce(&Builder<'c>, Strip<'c>),
) {
    let (c0, c1) = (b.index(0), b.index(1));
    let strips = strip_count(b, p);
    b.for_loop_with(
        c0,
        strips,
        c1,
        &[],
        &super::schedule::grained_parallel_attrs(b, threads, grain),
        |b, s, _| {
            body(b, record(b, p, s));
            vec![]
        },
    );
}

/// The loop over a packed matrix's stored strips and the `n` output
/// columns in tiles of `tile_n` (0 = one tile); `body` gets each strip
/// record with its tile's first column and (static) width.
///
/// `tile_major`: one parallel loop over (full tile, strip) pairs with every
/// strip of a tile before the next tile, then one over the strips for the
/// shorter last tile, so the activation panel of one tile (`K x tile_n`)
/// stays in cache while every strip reads it (strip-major, each strip
/// streams all the rows of `X` it keeps, 4.5 MB of a 512 x 4608 x 784
/// conv's patch matrix). Otherwise strip-major: per strip, its tiles in
/// turn (an image read in place, whose tiles are whole output rows, is
/// faster so: measured in docs/benchmarks/analysis.md).
pub(super) fn strip_tile_loop<'c>(
    b: &Builder<'c>,
    p: &bcr::Packed<'c, 'c>,
    threads: i64,
    n: i64,
    tile_n: i64,
    tile_major: bool,
    body: impl Fn(&Builder<'c>, Strip<'c>, V<'c>, i64),
) {
    if !tile_major || tile_n <= 0 || tile_n >= n {
        strip_loop(b, p, threads, |b, strip| {
            n_tiles(b, n, tile_n, |b, n_base, n_len| {
                body(b, strip, n_base, n_len)
            })
        });
        return;
    }
    let (c0, c1) = (b.index(0), b.index(1));
    let strips = strip_count(b, p);
    let full_tiles = n / tile_n;
    let items = b.muli(strips, b.index(full_tiles));
    b.for_loop_with(
        c0,
        items,
        c1,
        &[],
        &parallel_attrs(b, threads),
        |b, item, _| {
            let tile = b.divui(item, strips);
            let s = b.remui(item, strips);
            let n_base = b.muli(tile, b.index(tile_n));
            body(b, record(b, p, s), n_base, tile_n);
            vec![]
        },
    );
    let full = full_tiles * tile_n;
    if full < n {
        strip_loop(b, p, threads, |b, strip| {
            body(b, strip, b.index(full), n - full)
        });
    }
}

/// The number of stored strips: three words per record plus a sentinel
/// record.
fn strip_count<'c>(b: &Builder<'c>, p: &bcr::Packed<'c, 'c>) -> V<'c> {
    let records = b.divui(b.dim(p.strips, 0), b.index(3));
    b.subi(records, b.index(1))
}

/// Strip record `s` (three words per record; the next record's first
/// block ends this one's).
fn record<'c>(b: &Builder<'c>, p: &bcr::Packed<'c, 'c>, s: V<'c>) -> Strip<'c> {
    let base = b.muli(s, b.index(3));
    let word = |offset: i64| {
        let at = b.addi(base, b.index(offset));
        b.to_index(b.load(p.strips, &[at]))
    };
    Strip {
        strip: word(0),
        first_block: word(1),
        first_value: word(2),
        end_block: word(4),
    }
}

/// The first weight column of `block` (its block column times the block width).
pub(super) fn column_base<'c>(
    b: &Builder<'c>,
    p: &bcr::Packed<'c, 'c>,
    block: V<'c>,
    block_cols: i64,
) -> V<'c> {
    let column_block = b.to_index(b.extui(b.load(p.block_col, &[block]), 64));
    b.muli(column_block, b.index(block_cols))
}

/// A product's operands with the block-lifetime erased, and the mask layout:
/// `(arrays, x, c, row mask bytes, mask bytes per block)`.
pub(super) fn operands<'c>(
    product: &bcr::SparseProduct<'c, '_>,
) -> (bcr::Packed<'c, 'c>, V<'c>, V<'c>, i64, i64) {
    let p = bcr::Packed {
        strips: erase(product.packed.strips),
        block_col: erase(product.packed.block_col),
        masks: erase(product.packed.masks),
        values: erase(product.packed.values),
    };
    let row_mask_bytes = (product.block_rows + 7) / 8;
    (
        p,
        erase(product.x),
        erase(product.c),
        row_mask_bytes,
        row_mask_bytes + (product.block_cols + 7) / 8,
    )
}
