//! Reading a packed BCRC matrix: the loop over its strip records, a
//! block's first column, and a sparse product's arrays and mask layout.
//!
//! Shared by the spmm walk and the column-panel spmv, which differ only in
//! what they do with a strip's blocks.

use super::schedule::parallel_attrs;
use crate::builder::{erase, Builder, V};
use grim_dialects::bcr;

/// One strip record of a BCRC matrix.
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
    let (c0, c1, c3) = (b.index(0), b.index(1), b.index(3));
    // Three words per record plus a sentinel record.
    let records = b.divui(b.dim(p.strips, 0), c3);
    let strips = b.subi(records, c1);
    b.for_loop_with(
        c0,
        strips,
        c1,
        &[],
        &parallel_attrs(b, threads),
        |b, s, _| {
            let base = b.muli(s, b.index(3));
            let word = |offset: i64| {
                let at = b.addi(base, b.index(offset));
                b.to_index(b.load(p.strips, &[at]))
            };
            body(
                b,
                Strip {
                    strip: word(0),
                    first_block: word(1),
                    first_value: word(2),
                    end_block: word(4),
                },
            );
            vec![]
        },
    );
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
