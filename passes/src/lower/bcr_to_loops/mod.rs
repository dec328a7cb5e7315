//! lower-bcr-to-loops: lower bcr ops to scf/vector/memref/arith loops that walk the BCRC arrays.
//!
//! * `bcr.packed` and `bcr.dense` become `memref.view`s of the weight blob.
//!   The blob starts with a slot table (16 bytes of header, then one
//!   `(byte offset: u64, element count: u64)` pair per slot), so the code
//!   depends on a weight's shape and block size but not on its values, and
//!   a blob file can be swapped without recompiling (docs/lr-and-bcrc.md).
//! * `bcr.spmm` becomes: for each stored strip, for each stored block of the
//!   strip (in the packed work order), decode the block's row and column
//!   masks with `cttz` into two small index lists (stack arrays hoisted out
//!   of the loops), then for each register tile of `register_tile` kept rows
//!   (the schedule `bcr-lre` chose; leftover rows one at a time) and each
//!   chunk of `vectors` x `vector_width` columns: load the output tile once,
//!   per kept column load the activation vectors once and broadcast each
//!   row's weight once, `vector.fma`, store the tile once. Columns left over
//!   run as one vector, then one masked vector (`vector.maskedload` /
//!   `maskedstore`) for the last `N mod vector_width`.
//!   With `tile_n` (bcr-tile) the strip walks its blocks once per N tile.
//!   A `bcr.spmm` reading an image (`im2col`, implicit im2col) flattens it,
//!   turns each block's kept patch rows into image offsets and walks the
//!   output rows one by one (their columns are contiguous in the image).
//! * `bcr.spmv` over column panels (`layout = "col_panels"`): per strip, the
//!   `block_rows` sums stay in vector registers across its blocks; per kept
//!   column, one broadcast activation times one panel load; only column
//!   masks are decoded; the sums are added to the output once per strip.
//!   Over row-major values it is the spmm walk with scalar `math.fma`.
//! * `bcr.spmv` and `bcr.spmm` over compact panels (`layout =
//!   "compact_panels"`, compact.rs): each kept column's kept rows expanded
//!   to the block's height by the row mask as they load; the strip's sums
//!   stay in registers across its blocks, one vector per output column
//!   (spmm: a narrow product, at most 16 columns as lower-grim-to-bcr
//!   packs it), added to the output once per strip.
//! * `bcr.gemm` (dense): row-panel weights; for a matrix, work items of
//!   `tile_m` rows or of one N tile (bcr-tile), K blocks of `tile_k`, each
//!   activation block packed GotoBLAS-style into register-chunk panels (an
//!   image's patches copied in on the way: implicit im2col), and the
//!   `register_tile` x `vectors` register tile over each block; for a
//!   vector, the panel's sums in registers over all of K.
//! * `bcr.pack_panels`: a runtime weight written into row panels by a
//!   parallel loop over its rows, the last panel's padding zeroed (pack.rs).
//! * `bcr.im2col`: a parallel loop over items of patch rows (at least
//!   `IM2COL_ITEM_FLOATS` floats each), each row a walk over output
//!   rows with bounds computed once per row (lower/im2col.rs).
//!
//! The loop over strips (row groups, N tiles, patch rows) is marked
//! `grim.parallel` for `bcr-parallelize`, with the product's `threads` cap.
//! Values of a block are read in their packed order, so the value offset is
//! carried through the block loop.
//!
//! Before: `"bcr.spmm"(%strips, %cols, %masks, %values, %x, %c) {...}`
//! After:  `scf.for` nests with `vector.load`/`vector.fma`/`vector.store`.

// One file per pattern; the BCRC walk is shared by spmm and spmv, the
// register tile by spmm and the dense GEMM.
mod compact;
mod dense_gemm;
mod masks;
mod pack;
mod packing;
mod panel;
mod register_tile;
mod schedule;
mod slots;
mod spmm;
mod spmv;
mod strips;

use crate::lower::im2col::Geometry;
use crate::{
    builder::{erase, erase_op, replace_all_uses, Builder},
    op_error, Pass, PassError, PassOptions,
};
use grim_dialects::{bcr, shape};
use melior::{
    ir::{
        operation::{OperationLike, OperationRef, WalkOrder, WalkResult},
        Module, ValueLike,
    },
    Context,
};

/// Patch-matrix floats one parallel item of `bcr.im2col` copies at least:
/// handing out 4608 rows of 49 floats one at a time made a 2-thread
/// ResNet-18 layer4 conv slower than one thread (docs/benchmarks/analysis.md).
const IM2COL_ITEM_FLOATS: i64 = 8192;

/// Pipeline flag.
pub const FLAG: &str = "lower-bcr-to-loops";
/// One-line summary.
pub const SUMMARY: &str =
    "lower bcr ops to scf/vector/memref/arith loops that walk the BCRC arrays";
/// Accepted options.
pub const OPTIONS: &[&str] = &[];

/// The pass object.
pub struct LowerBcrToLoops;

/// Makes the pass from its options.
pub fn create(options: &PassOptions) -> Result<Box<dyn Pass>, PassError> {
    options.check_documented(FLAG, OPTIONS)?;
    Ok(Box::new(LowerBcrToLoops))
}

impl Pass for LowerBcrToLoops {
    fn run<'c>(&self, context: &'c Context, module: &Module<'c>) -> Result<(), PassError> {
        let mut ops = Vec::new();
        module.as_operation().walk(WalkOrder::PreOrder, |op| {
            let name = op.name().as_string_ref().as_str().unwrap_or("").to_string();
            if [
                bcr::PACKED,
                bcr::DENSE,
                bcr::SPMM,
                bcr::SPMV,
                bcr::GEMM,
                bcr::IM2COL,
                bcr::PACK_PANELS,
            ]
            .contains(&name.as_str())
            {
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
                    let info = bcr::packed_info(&op)
                        .ok_or_else(|| op_error(&op, "has malformed attributes"))?;
                    let blob = erase(op.operand(0).map_err(|e| op_error(&op, e))?);
                    for (index, ty) in bcr::packed_result_types(context).into_iter().enumerate() {
                        let view = slots::slot_view(&b, blob, info.slot + index as i64, ty, None);
                        replace_all_uses(
                            op.result(index).map_err(|e| op_error(&op, e))?.into(),
                            view,
                        );
                    }
                }
                bcr::DENSE => {
                    let slot = slots::grim_slot(&op)?;
                    let blob = erase(op.operand(0).map_err(|e| op_error(&op, e))?);
                    let result = op.result(0).map_err(|e| op_error(&op, e))?;
                    let ty = result.r#type();
                    let view = slots::slot_view(&b, blob, slot, ty, shape::static_shape(ty));
                    replace_all_uses(result.into(), view);
                }
                bcr::PACK_PANELS => {
                    let pack = bcr::pack_panels_of(&op)
                        .ok_or_else(|| op_error(&op, "needs a 2-D source and a buffer"))?;
                    let panels = pack::pack_panels(&b, &pack).map_err(|e| op_error(&op, e))?;
                    replace_all_uses(op.result(0).map_err(|e| op_error(&op, e))?.into(), panels);
                }
                bcr::IM2COL => {
                    let patch = bcr::im2col_of(&op)
                        .ok_or_else(|| op_error(&op, "has no im2col geometry"))?;
                    let (x, out) = (
                        erase(op.operand(0).map_err(|e| op_error(&op, e))?),
                        erase(op.operand(1).map_err(|e| op_error(&op, e))?),
                    );
                    let image = shape::static_shape(x.r#type())
                        .ok_or_else(|| op_error(&op, "needs a static image"))?;
                    let rows = shape::static_shape(out.r#type())
                        .ok_or_else(|| op_error(&op, "needs a static output"))?;
                    let geometry = Geometry::new(&patch, &image)
                        .ok_or_else(|| op_error(&op, "has a kernel that does not fit its image"))?;
                    // Rows are independent: bcr-parallelize spreads them over the
                    // threads, in items of whole rows copying at least
                    // IM2COL_ITEM_FLOATS each (one row of a 7 x 7 map is 49 floats,
                    // and the runtime hands out every item with one atomic).
                    let parallel = [(
                        crate::bcr::parallelize::PARALLEL_ATTR,
                        melior::ir::Attribute::unit(context),
                    )];
                    let per_item = (IM2COL_ITEM_FLOATS / (geometry.ho * geometry.wo).max(1))
                        .clamp(1, rows[0].max(1));
                    let items = (rows[0] + per_item - 1) / per_item;
                    let (c0, c1) = (b.index(0), b.index(1));
                    b.for_loop_with(c0, b.index(items), c1, &[], &parallel, |b, item, _| {
                        let first = b.muli(item, b.index(per_item));
                        let end = b.minui(b.addi(first, b.index(per_item)), b.index(rows[0]));
                        let c1 = b.index(1);
                        b.for_loop(first, end, c1, &[], |b, kk, _| {
                            geometry
                                .copy_full_row(b, x, kk, out, &|_, position| vec![kk, position]);
                            vec![]
                        });
                        vec![]
                    });
                }
                bcr::GEMM => {
                    let product = bcr::dense_product(&op)
                        .ok_or_else(|| op_error(&op, "has malformed operands"))?;
                    let c_shape = shape::static_shape(product.c.r#type())
                        .ok_or_else(|| op_error(&op, "needs a static output"))?;
                    let x_shape = shape::static_shape(product.x.r#type())
                        .ok_or_else(|| op_error(&op, "needs a static input"))?;
                    // An image read through its patch matrix (implicit im2col).
                    let image = match bcr::im2col_of(&op) {
                        Some(patch) => Some(Geometry::new(&patch, &x_shape).ok_or_else(|| {
                            op_error(&op, "has an im2col kernel that does not fit its image")
                        })?),
                        None => None,
                    };
                    let k = match &image {
                        Some(g) => x_shape[0] * g.patch.kh * g.patch.kw,
                        None => x_shape[0],
                    };
                    dense_gemm::dense_gemm(
                        &b,
                        &product,
                        image,
                        c_shape[0],
                        k,
                        c_shape.get(1).copied(),
                    );
                }
                _ => {
                    let product = bcr::sparse_product(&op)
                        .ok_or_else(|| op_error(&op, "has malformed operands"))?;
                    let c_shape = shape::static_shape(product.c.r#type())
                        .ok_or_else(|| op_error(&op, "needs a static output"))?;
                    let layout = if product.packed.strips.is_operation_result() {
                        bcr::defining_packed(product.packed.strips).map(|p| p.layout)
                    } else {
                        None
                    };
                    if layout.as_deref() == Some(bcr::LAYOUT_COL_PANELS) && name == bcr::SPMV {
                        spmv::panel_spmv(&b, &product, c_shape[0]);
                    } else if layout.as_deref() == Some(bcr::LAYOUT_COMPACT_PANELS) {
                        let columns = (name == bcr::SPMM).then(|| c_shape[1]);
                        compact::compact_product(&b, &product, c_shape[0], columns);
                    } else {
                        // An image read in place (implicit im2col over a padded image).
                        let image = match bcr::im2col_of(&op) {
                            Some(patch) => {
                                let x_shape = shape::static_shape(product.x.r#type())
                                    .ok_or_else(|| op_error(&op, "needs a static input"))?;
                                Some(Geometry::new(&patch, &x_shape).ok_or_else(|| {
                                    op_error(
                                        &op,
                                        "has an im2col kernel that does not fit its image",
                                    )
                                })?)
                            }
                            None => None,
                        };
                        spmm::sparse_product(&b, &product, &c_shape, name == bcr::SPMM, image);
                    }
                }
            }
            erase_op(op);
        }
        Ok(())
    }
}
