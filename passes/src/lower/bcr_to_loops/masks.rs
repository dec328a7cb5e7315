//! Decoding a BCR block's row or column mask into an index list (or
//! visiting the kept indices, as the activation prefetch does).
//!
//! The kernels loop over the list instead of testing bits, so a block
//! costs one iteration per kept row or column, not per row or column.

use crate::builder::{Builder, V};
use melior::dialect::arith::CmpiPredicate;

/// The `bits`-bit mask at `masks[mask_base..]` as one i64.
pub(super) fn mask_word<'c>(b: &Builder<'c>, masks: V<'c>, mask_base: V<'c>, bits: i64) -> V<'c> {
    let mut word = b.int(0, 64);
    for byte_index in 0..(bits + 7) / 8 {
        let at = b.addi(mask_base, b.index(byte_index));
        let byte = b.load(masks, &[at]);
        let byte = b.extui(byte, 64);
        let byte = if byte_index == 0 {
            byte
        } else {
            b.shli(byte, b.int(8 * byte_index, 64))
        };
        word = b.ori(word, byte);
    }
    word
}

/// Calls `each(b, base + i, count)` for every set bit `i` of the mask, in
/// order, walking the word with `cttz`: one iteration per kept row or
/// column, however large the block. With `known = Some(n)` (the packed
/// weight's `kept_rows`/`kept_cols`: every block has `n` bits set) the walk
/// is a loop of constant trip count, which unrolls. Returns how many bits
/// were set.
fn for_each_bit<'c>(
    b: &Builder<'c>,
    word: V<'c>,
    base: V<'c>,
    known: Option<i64>,
    each: impl FnOnce(&Builder<'c>, V<'c>, V<'c>),
) -> V<'c> {
    // One step: the lowest set bit, then the word without it.
    let step = |b: &Builder<'c>, word: V<'c>, count: V<'c>| {
        let bit = b.to_index(b.cttz(word));
        each(b, b.addi(base, bit), count);
        let lower = b.subi(word, b.int(1, 64));
        b.andi(word, lower)
    };
    if let Some(n) = known {
        b.for_range(0, n, 1, &[word], |b, count, carried| {
            vec![step(b, carried[0], count)]
        });
        return b.index(n);
    }
    let start = b.index(0);
    let results = b.while_loop(
        &[word, start],
        |b, carried| {
            let zero = b.int(0, 64);
            b.cmpi(CmpiPredicate::Ne, carried[0], zero)
        },
        |b, carried| {
            let (word, count) = (carried[0], carried[1]);
            let rest = step(b, word, count);
            vec![rest, b.addi(count, b.index(1))]
        },
    );
    results[1]
}

/// Writes `base + i` for every set bit `i` of `word` into `list`; returns
/// how many were written (`known`: see [`for_each_bit`]).
pub(super) fn decode_word<'c>(
    b: &Builder<'c>,
    word: V<'c>,
    known: Option<i64>,
    base: V<'c>,
    list: V<'c>,
) -> V<'c> {
    for_each_bit(b, word, base, known, |b, position, count| {
        b.store(position, list, &[count]);
    })
}

/// [`decode_word`] of the `bits`-bit mask at `masks[mask_base..]`.
pub(super) fn decode_mask<'c>(
    b: &Builder<'c>,
    masks: V<'c>,
    mask_base: V<'c>,
    bits: i64,
    base: V<'c>,
    list: V<'c>,
) -> V<'c> {
    let word = mask_word(b, masks, mask_base, bits);
    decode_word(b, word, None, base, list)
}

/// Calls `each(b, base + i)` for every set bit `i` of `word`, without
/// storing a list (`known`: see [`for_each_bit`]).
pub(super) fn for_each_kept<'c>(
    b: &Builder<'c>,
    word: V<'c>,
    known: Option<i64>,
    base: V<'c>,
    each: impl Fn(&Builder<'c>, V<'c>),
) {
    for_each_bit(b, word, base, known, |b, position, _| each(b, position));
}

/// Whether `word` has exactly `n` bits set.
pub(super) fn has_bits<'c>(b: &Builder<'c>, word: V<'c>, n: i64) -> V<'c> {
    b.cmpi(CmpiPredicate::Eq, b.ctpop(word), b.int(n, 64))
}
