//! Decoding a BCR block's row or column mask into an index list.
//!
//! The kernels loop over the list instead of testing bits, so a block
//! costs one iteration per kept row or column, not per row or column.

use crate::builder::{Builder, V};
use melior::dialect::arith::CmpiPredicate;

/// Writes `base + i` for every set bit `i` of the `bits`-bit mask at
/// `masks[mask_base..]` into `list`; returns how many were written.
///
/// The mask bytes are assembled into one i64 and walked with `cttz`, one
/// iteration per kept row or column: a block is decoded in a few dozen
/// instructions however large it is.
pub(super) fn decode_mask<'c>(
    b: &Builder<'c>,
    masks: V<'c>,
    mask_base: V<'c>,
    bits: i64,
    base: V<'c>,
    list: V<'c>,
) -> V<'c> {
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
    let start = b.index(0);
    let results = b.while_loop(
        &[word, start],
        |b, carried| {
            let zero = b.int(0, 64);
            b.cmpi(CmpiPredicate::Ne, carried[0], zero)
        },
        |b, carried| {
            let (word, count) = (carried[0], carried[1]);
            let bit = b.cttz(word);
            let bit = b.to_index(bit);
            let position = b.addi(base, bit);
            b.store(position, list, &[count]);
            let one = b.int(1, 64);
            let lower = b.subi(word, one);
            let rest = b.andi(word, lower);
            let next = b.addi(count, b.index(1));
            vec![rest, next]
        },
    );
    results[1]
}
