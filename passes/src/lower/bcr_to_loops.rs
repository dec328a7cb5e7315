//! lower-bcr-to-loops: lower bcr ops to scf/vector/memref/arith loops that walk the BCRC arrays.
//!
//! * `bcr.packed` and `bcr.dense` become `memref.view`s of the weight blob.
//!   The blob starts with a slot table (16 bytes of header, then one
//!   `(byte offset: u64, element count: u64)` pair per slot), so the code
//!   depends on a weight's shape and block size but not on its values, and
//!   a blob file can be swapped without recompiling (docs/lr-and-bcrc.md).
//! * `bcr.spmm` becomes: for each stored strip, for each stored block of the
//!   strip (in the packed work order), decode the block's row and column
//!   masks into two small index lists (stack arrays hoisted out of the
//!   loops), then for each kept row and each `vector_width`-wide column
//!   chunk of the output, load the output vector once, accumulate one
//!   broadcast weight times one activation vector per kept column with
//!   `vector.fma`, and store it once; a scalar loop handles the columns
//!   left over when N is not a multiple of the vector width.
//! * `bcr.spmv` becomes the same walk with a scalar `math.fma` chain per
//!   kept row.
//!
//! The loop over strips is marked `grim.parallel` for `bcr-parallelize`.
//!
//! What it does not do (later passes of the same level will): register
//! tiling across kept rows (bcr-lre), tiling over N (bcr-tile). Values of a block are read in their packed order,
//! so the value offset is carried through the block loop.
//!
//! Before: `"bcr.spmm"(%strips, %cols, %masks, %values, %x, %c) {...}`
//! After:  `scf.for` nests with `vector.load`/`vector.fma`/`vector.store`.

use crate::{
    builder::{erase, erase_op, replace_all_uses, Builder, V},
    op_error, Pass, PassError, PassOptions,
};
use grim_dialects::{bcr, shape};
use melior::{
    dialect::arith::CmpiPredicate,
    ir::{
        operation::{OperationLike, OperationRef, WalkOrder, WalkResult},
        Module, Type, ValueLike,
    },
    Context,
};

/// Pipeline flag.
pub const FLAG: &str = "lower-bcr-to-loops";
/// One-line summary.
pub const SUMMARY: &str = "lower bcr ops to scf/vector/memref/arith loops that walk the BCRC arrays";
/// Accepted options.
pub const OPTIONS: &[&str] = &[];

/// Size of the blob header before the slot table.
pub const BLOB_HEADER_BYTES: i64 = 16;
/// Bytes per slot-table entry.
pub const SLOT_BYTES: i64 = 16;

/// The pass object.
pub struct LowerBcrToLoops;

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_known(FLAG, &[])?;
    Ok(Box::new(LowerBcrToLoops))
}

impl Pass for LowerBcrToLoops {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let mut ops = Vec::new();
        module.as_operation().walk(WalkOrder::PreOrder, |op| {
            let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
            if [bcr::PACKED, bcr::DENSE, bcr::SPMM, bcr::SPMV].contains(&name.as_str()) {
                ops.push((name, op.to_raw()));
            }
            WalkResult::Advance
        });
        // Products first, so the packed arrays they read are still defined
        // by `bcr.packed` when they are checked.
        ops.sort_by_key(|(name, _)| name == bcr::PACKED || name == bcr::DENSE);
        for (name, raw) in ops {
            // SAFETY: collected above; each op is erased once, after its rewrite.
            let op = unsafe { OperationRef::from_raw(raw) };
            let b = Builder::before(context, op);
            match name.as_str() {
                bcr::PACKED => {
                    let info = bcr::packed_info(&op).ok_or_else(|| op_error(&op, "has malformed attributes"))?;
                    let blob = erase(op.operand(0).map_err(|e| op_error(&op, e))?);
                    for (index, ty) in bcr::packed_result_types(context).into_iter().enumerate() {
                        let view = slot_view(&b, blob, info.slot + index as i64, ty, None);
                        replace_all_uses(op.result(index).map_err(|e| op_error(&op, e))?.into(), view);
                    }
                }
                bcr::DENSE => {
                    let slot = grim_slot(&op)?;
                    let blob = erase(op.operand(0).map_err(|e| op_error(&op, e))?);
                    let result = op.result(0).map_err(|e| op_error(&op, e))?;
                    let ty = result.r#type();
                    let view = slot_view(&b, blob, slot, ty, shape::static_shape(ty));
                    replace_all_uses(result.into(), view);
                }
                _ => {
                    let product = bcr::sparse_product(&op).ok_or_else(|| op_error(&op, "has malformed operands"))?;
                    let x_shape = shape::static_shape(product.x.r#type()).ok_or_else(|| op_error(&op, "needs a static input"))?;
                    let c_shape = shape::static_shape(product.c.r#type()).ok_or_else(|| op_error(&op, "needs a static output"))?;
                    sparse_product(&b, &product, &x_shape, &c_shape, name == bcr::SPMM);
                }
            }
            erase_op(op);
        }
        Ok(())
    }
}

fn grim_slot(op: &OperationRef) -> Result<i64, PassError> {
    op.attribute("slot")
        .ok()
        .and_then(|a| melior::ir::attribute::IntegerAttribute::try_from(a).ok())
        .map(|a| a.value())
        .ok_or_else(|| op_error(op, "has no integer 'slot'"))
}

/// A view of blob slot `slot`: dynamic 1-D of its element count, or `shape` when static.
fn slot_view<'c>(b: &Builder<'c>, blob: V<'c>, slot: i64, ty: Type<'c>, shape: Option<Vec<i64>>) -> V<'c> {
    let table_type = b.memref_type(&[2], b.int_type(64));
    let entry_offset = b.index(BLOB_HEADER_BYTES + SLOT_BYTES * slot);
    let entry = b.view(blob, entry_offset, &[], table_type);
    let zero = b.index(0);
    let one = b.index(1);
    let offset = b.load(entry, &[zero]);
    let offset = b.to_index(offset);
    match shape {
        Some(_) => b.view(blob, offset, &[], ty),
        None => {
            let count = b.load(entry, &[one]);
            let count = b.to_index(count);
            b.view(blob, offset, &[count], ty)
        }
    }
}

/// Emits the BCRC walk for `bcr.spmm` (`vectorised`) or `bcr.spmv`.
fn sparse_product<'c>(b: &Builder<'c>, product: &bcr::SparseProduct<'c, '_>, x_shape: &[i64], c_shape: &[i64], spmm: bool) {
    let (block_rows, block_cols) = (product.block_rows, product.block_cols);
    let row_mask_bytes = (block_rows + 7) / 8;
    let mask_stride = row_mask_bytes + (block_cols + 7) / 8;
    let p = bcr::Packed {
        strips: erase(product.packed.strips),
        block_col: erase(product.packed.block_col),
        masks: erase(product.packed.masks),
        values: erase(product.packed.values),
    };
    let (x, c) = (erase(product.x), erase(product.c));
    let n = if spmm { c_shape[1] } else { 1 };
    let _ = x_shape;
    let lanes = if spmm { product.vector_width.max(1) } else { 1 };
    let vector_end = n / lanes * lanes;

    // Hoisted out of every loop: an alloca inside a loop grows the stack.
    let kept_rows = b.alloca(&[block_rows], b.index_type());
    let kept_cols = b.alloca(&[block_cols], b.index_type());
    let index = |v: i64| b.index(v);
    let (c0, c1, c3) = (index(0), index(1), index(3));
    let strip_words = b.dim(p.strips, 0);
    let records = b.divui(strip_words, c3);
    let strips = b.subi(records, c1);
    // Strips write disjoint output rows: bcr-parallelize may run them on any thread.
    let parallel = [(crate::bcr::parallelize::PARALLEL_ATTR, melior::ir::Attribute::unit(b.context))];
    b.for_loop_with(c0, strips, c1, &[], &parallel, |b, s, _| {
        let c3 = b.index(3);
        let base = b.muli(s, c3);
        let word = |offset: i64| {
            let at = b.index(offset);
            let at = b.addi(base, at);
            let w = b.load(p.strips, &[at]);
            b.to_index(w)
        };
        let strip = word(0);
        let first_block = word(1);
        let first_value = word(2);
        let end_block = word(4);
        let row_base = b.muli(strip, b.index(block_rows));
        let one = b.index(1);
        b.for_loop(first_block, end_block, one, &[first_value], |b, block, carried| {
            let value_offset = carried[0];
            let column_block = b.load(p.block_col, &[block]);
            let column_block = b.extui(column_block, 64);
            let column_block = b.to_index(column_block);
            let column_base = b.muli(column_block, b.index(block_cols));
            let mask_base = b.muli(block, b.index(mask_stride));
            let rows = decode_mask(b, p.masks, mask_base, block_rows, row_base, kept_rows);
            let cols_mask_base = b.addi(mask_base, b.index(row_mask_bytes));
            let cols = decode_mask(b, p.masks, cols_mask_base, block_cols, column_base, kept_cols);
            let zero = b.index(0);
            let one = b.index(1);
            b.for_loop(zero, rows, one, &[], |b, i, _| {
                let row = b.load(kept_rows, &[i]);
                let row_values = b.muli(i, cols);
                let row_values = b.addi(value_offset, row_values);
                let zero = b.index(0);
                let one = b.index(1);
                if spmm {
                    if vector_end > 0 {
                        let lanes_step = b.index(lanes);
                        let end = b.index(vector_end);
                        b.for_loop(zero, end, lanes_step, &[], |b, column, _| {
                            let acc = b.vload(c, &[row, column], lanes as u64);
                            let zero = b.index(0);
                            let one = b.index(1);
                            let acc = b.for_loop(zero, cols, one, &[acc], |b, j, acc| {
                                let k = b.load(kept_cols, &[j]);
                                let at = b.addi(row_values, j);
                                let w = b.load(p.values, &[at]);
                                let w = b.broadcast(w, lanes as u64);
                                let xv = b.vload(x, &[k, column], lanes as u64);
                                vec![b.vfma(w, xv, acc[0])]
                            });
                            b.vstore(acc[0], c, &[row, column]);
                            vec![]
                        });
                    }
                    if vector_end < n {
                        let start = b.index(vector_end);
                        let end = b.index(n);
                        b.for_loop(start, end, one, &[], |b, column, _| {
                            scalar_row(b, &p, kept_cols, cols, row_values, x, c, row, Some(column));
                            vec![]
                        });
                    }
                } else {
                    scalar_row(b, &p, kept_cols, cols, row_values, x, c, row, None);
                }
                vec![]
            });
            let size = b.muli(rows, cols);
            vec![b.addi(value_offset, size)]
        });
        vec![]
    });
}

/// `c[row(, column)] += sum_j values[row_values + j] * x[kept_cols[j](, column)]`.
#[allow(clippy::too_many_arguments)]
fn scalar_row<'c>(
    b: &Builder<'c>,
    p: &bcr::Packed<'c, 'c>,
    kept_cols: V<'c>,
    cols: V<'c>,
    row_values: V<'c>,
    x: V<'c>,
    c: V<'c>,
    row: V<'c>,
    column: Option<V<'c>>,
) {
    let at = |i: V<'c>| -> Vec<V<'c>> { column.map_or(vec![i], |n| vec![i, n]) };
    let acc = b.load(c, &at(row));
    let zero = b.index(0);
    let one = b.index(1);
    let acc = b.for_loop(zero, cols, one, &[acc], |b, j, acc| {
        let k = b.load(kept_cols, &[j]);
        let offset = b.addi(row_values, j);
        let w = b.load(p.values, &[offset]);
        let xv = b.load(x, &at(k));
        vec![b.fma(w, xv, acc[0])]
    });
    b.store(acc[0], c, &at(row));
}

/// Writes `base + i` for every set bit `i` of the `bits`-bit mask at
/// `masks[mask_base..]` into `list`; returns how many were written.
fn decode_mask<'c>(b: &Builder<'c>, masks: V<'c>, mask_base: V<'c>, bits: i64, base: V<'c>, list: V<'c>) -> V<'c> {
    let start = b.index(0);
    let count = b.for_range(0, bits, 1, &[start], |b, i, count| {
        let eight = b.index(8);
        let byte_index = b.divui(i, eight);
        let byte_index = b.addi(mask_base, byte_index);
        let byte = b.load(masks, &[byte_index]);
        let byte = b.extui(byte, 32);
        let shift = b.remui(i, eight);
        let shift = b.from_index(shift, 32);
        let bit = b.shrui(byte, shift);
        let one = b.int(1, 32);
        let bit = b.andi(bit, one);
        let zero = b.int(0, 32);
        let kept = b.cmpi(CmpiPredicate::Ne, bit, zero);
        let count = count[0];
        let index_type = b.index_type();
        b.if_else(
            kept,
            &[index_type],
            |b| {
                let position = b.addi(base, i);
                b.store(position, list, &[count]);
                let one = b.index(1);
                vec![b.addi(count, one)]
            },
            |_| vec![count],
        )
    });
    count[0]
}
