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
//! * `bcr.gemm` (dense): row-panel weights; for a matrix, work items of
//!   `tile_m` rows or of one N tile (bcr-tile), K blocks of `tile_k`, each
//!   activation block packed GotoBLAS-style into register-chunk panels (an
//!   image's patches copied in on the way: implicit im2col), and the
//!   `register_tile` x `vectors` register tile over each block; for a
//!   vector, the panel's sums in registers over all of K.
//! * `bcr.im2col`: a parallel loop over patch rows, each a walk over output
//!   rows with bounds computed once per row (lower/im2col.rs).
//!
//! The loop over strips (row groups, N tiles, patch rows) is marked
//! `grim.parallel` for `bcr-parallelize`, with the product's `threads` cap.
//! Values of a block are read in their packed order, so the value offset is
//! carried through the block loop.
//!
//! Before: `"bcr.spmm"(%strips, %cols, %masks, %values, %x, %c) {...}`
//! After:  `scf.for` nests with `vector.load`/`vector.fma`/`vector.store`.

use crate::lower::im2col::Geometry;
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
pub const SUMMARY: &str =
    "lower bcr ops to scf/vector/memref/arith loops that walk the BCRC arrays";
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
            if [
                bcr::PACKED,
                bcr::DENSE,
                bcr::SPMM,
                bcr::SPMV,
                bcr::GEMM,
                bcr::IM2COL,
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
                        let view = slot_view(&b, blob, info.slot + index as i64, ty, None);
                        replace_all_uses(
                            op.result(index).map_err(|e| op_error(&op, e))?.into(),
                            view,
                        );
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
                    // Rows are independent: bcr-parallelize spreads them over the threads.
                    let parallel = [(
                        crate::bcr::parallelize::PARALLEL_ATTR,
                        melior::ir::Attribute::unit(context),
                    )];
                    let (c0, c1) = (b.index(0), b.index(1));
                    b.for_loop_with(c0, b.index(rows[0]), c1, &[], &parallel, |b, kk, _| {
                        geometry.copy_full_row(b, x, kk, out, &|_, position| vec![kk, position]);
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
                    dense_gemm(&b, &product, image, c_shape[0], k, c_shape.get(1).copied());
                }
                _ => {
                    let product = bcr::sparse_product(&op)
                        .ok_or_else(|| op_error(&op, "has malformed operands"))?;
                    let c_shape = shape::static_shape(product.c.r#type())
                        .ok_or_else(|| op_error(&op, "needs a static output"))?;
                    let panels = product.packed.strips.is_operation_result()
                        && bcr::defining_packed(product.packed.strips)
                            .is_some_and(|p| p.layout == bcr::LAYOUT_COL_PANELS);
                    if panels && name == bcr::SPMV {
                        panel_spmv(&b, &product, c_shape[0]);
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
                        sparse_product(&b, &product, &c_shape, name == bcr::SPMM, image);
                    }
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
fn slot_view<'c>(
    b: &Builder<'c>,
    blob: V<'c>,
    slot: i64,
    ty: Type<'c>,
    shape: Option<Vec<i64>>,
) -> V<'c> {
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
fn sparse_product<'c>(
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

    // Hoisted out of every loop: an alloca inside a loop grows the stack.
    let kept_rows = b.alloca(&[block_rows], b.index_type());
    let kept_cols = b.alloca(&[block_cols], b.index_type());
    strip_loop(
        b,
        &p,
        product.threads,
        |b,
         Strip {
             strip,
             first_block,
             first_value,
             end_block,
         }| {
            let row_base = b.muli(strip, b.index(block_rows));
            // One walk over the strip's blocks for the output columns [n_base, n_base + n_len).
            let walk = |b: &Builder<'c>, n_base: V<'c>, n_len: i64| {
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
                        let rows =
                            decode_mask(b, p.masks, mask_base, block_rows, row_base, kept_rows);
                        let cols_mask_base = b.addi(mask_base, b.index(row_mask_bytes));
                        let cols = decode_mask(
                            b,
                            p.masks,
                            cols_mask_base,
                            block_cols,
                            column_base,
                            kept_cols,
                        );
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
                                b.for_loop(zero, b.index(n_len / image.wo), one, &[], |b, r, _| {
                                    let oh = b.addi(first_row, r);
                                    let row_base = b.muli(oh, wo);
                                    let shift = b.muli(
                                        oh,
                                        b.index(image.patch.conv.strides[0] * image.w - image.wo),
                                    );
                                    tiles(b, row_base, image.wo, Some(shift));
                                    vec![]
                                });
                            }
                        }
                        let size = b.muli(rows, cols);
                        vec![b.addi(value_offset, size)]
                    },
                );
            };
            // bcr-tile: the strip's blocks once per tile of N, so the strip's output
            // tile and the activation panel stay in cache while every block uses them.
            n_tiles(b, n, tile_n, walk);
        },
    );
}

/// A static memref as one flat row-major array (`memref.collapse_shape`),
/// keeping a static offset of its layout (an image of a batch).
fn flatten<'c>(b: &Builder<'c>, x: V<'c>) -> V<'c> {
    let ty = x.r#type();
    let dims = shape::static_shape(ty).unwrap_or_default();
    let flat = match shape::static_offset(ty) {
        Some(offset) if offset != 0 => format!(
            "memref<{}xf32, strided<[1], offset: {offset}>>",
            shape::numel(&dims)
        ),
        _ => format!("memref<{}xf32>", shape::numel(&dims)),
    };
    let flat = Type::parse(b.context, &flat).expect("a flat memref type");
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

/// Calls `walk(b, first column, columns)` for each tile of `tile_n` of the
/// `n` output columns (0 = one tile): full tiles in a loop, then the last,
/// shorter one, so every walk knows its width statically.
fn n_tiles<'c>(b: &Builder<'c>, n: i64, tile_n: i64, walk: impl Fn(&Builder<'c>, V<'c>, i64)) {
    if tile_n > 0 && tile_n < n {
        let full = n / tile_n * tile_n;
        let (start, end, step) = (b.index(0), b.index(full), b.index(tile_n));
        b.for_loop(start, end, step, &[], |b, n_base, _| {
            walk(b, n_base, tile_n);
            vec![]
        });
        if full < n {
            walk(b, b.index(full), n - full);
        }
    } else {
        walk(b, b.index(0), n);
    }
}

/// One strip record of a BCRC matrix.
struct Strip<'c> {
    /// Strip (block-row) index.
    strip: V<'c>,
    /// Its blocks are `[first_block, end_block)`.
    first_block: V<'c>,
    end_block: V<'c>,
    /// Offset of its first value.
    first_value: V<'c>,
}

/// The loop over a packed matrix's stored strips, marked `grim.parallel`
/// (strips write disjoint output rows, so bcr-parallelize may run them on
/// any thread, with the product's `threads` cap); `body` gets each record.
fn strip_loop<'c>(
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
fn column_base<'c>(
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
fn operands<'c>(
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

/// Emits `bcr.spmv` over column panels: each strip's `block_rows` outputs
/// stay in vector registers across all of its blocks; per kept column, one
/// activation is broadcast and multiplied with the column's panel (one
/// vector load per `lanes` rows). Row masks are not read at all. The strip's
/// sums are added to the output with vector loads and stores, or row by row
/// for a bottom strip that `rows` cuts short.
fn panel_spmv<'c>(b: &Builder<'c>, product: &bcr::SparseProduct<'c, '_>, rows: i64) {
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
    strip_loop(
        b,
        &p,
        product.threads,
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

/// A panel of `lanes * vectors` output rows whose sums were kept in vector
/// registers (matrix-vector products).
struct Panel<'c> {
    /// The output vector.
    c: V<'c>,
    /// A stack buffer of the panel's height, for a panel that `rows` cuts short.
    sums: V<'c>,
    /// Rows of the output.
    rows: i64,
    lanes: i64,
    vectors: i64,
}

impl<'c> Panel<'c> {
    /// Adds `results` (one per vector) into `c[row_base ..]`: with vector
    /// loads and stores, or row by row for a bottom panel that `rows` cuts short.
    fn add(&self, b: &Builder<'c>, row_base: V<'c>, results: &[V<'c>]) {
        let (c, lanes) = (self.c, self.lanes);
        let load = |b: &Builder<'c>, memref: V<'c>, at: V<'c>| {
            if lanes == 1 {
                b.load(memref, &[at])
            } else {
                b.vload(memref, &[at], lanes as u64)
            }
        };
        let row_end = b.addi(row_base, b.index(lanes * self.vectors));
        let full = b.cmpi(
            melior::dialect::arith::CmpiPredicate::Ule,
            row_end,
            b.index(self.rows),
        );
        b.if_else(
            full,
            &[],
            |b| {
                for (v, result) in results.iter().enumerate() {
                    let at = b.addi(row_base, b.index(v as i64 * lanes));
                    let old = load(b, c, at);
                    let new = b.addf(old, *result);
                    if lanes == 1 {
                        b.store(new, c, &[at])
                    } else {
                        b.vstore(new, c, &[at])
                    }
                }
                vec![]
            },
            |b| {
                for (v, result) in results.iter().enumerate() {
                    let at = b.index(v as i64 * lanes);
                    if lanes == 1 {
                        b.store(*result, self.sums, &[at])
                    } else {
                        b.vstore(*result, self.sums, &[at])
                    }
                }
                let valid = b.subi(b.index(self.rows), row_base);
                let (zero, one) = (b.index(0), b.index(1));
                b.for_loop(zero, valid, one, &[], |b, i, _| {
                    let row = b.addi(row_base, i);
                    let old = b.load(c, &[row]);
                    let add = b.load(self.sums, &[i]);
                    b.store(b.addf(old, add), c, &[row]);
                    vec![]
                });
                vec![]
            },
        );
    }
}

/// The attributes of a product's parallel loop: `grim.parallel`, and the
/// layer's thread cap (`threads`, from the LR file) as `grim.threads`.
fn parallel_attrs<'c>(
    b: &Builder<'c>,
    threads: i64,
) -> Vec<(&'static str, melior::ir::Attribute<'c>)> {
    let mut attributes = vec![(
        crate::bcr::parallelize::PARALLEL_ATTR,
        melior::ir::Attribute::unit(b.context),
    )];
    if threads > 0 {
        let value = melior::ir::attribute::IntegerAttribute::new(b.int_type(64), threads).into();
        attributes.push((crate::bcr::parallelize::THREADS_ATTR, value));
    }
    attributes
}

/// Lanes that tile a panel of `rows` exactly: the widest of `vector_width`,
/// 8, 4, 2, 1 that divides it.
fn panel_lanes(vector_width: i64, rows: i64) -> i64 {
    [vector_width.max(1), 8, 4, 2, 1]
        .into_iter()
        .find(|l| *l <= rows && rows % l == 0)
        .unwrap_or(1)
}

/// Emits a dense `bcr.gemm`.
///
/// Matrix products (`X[K, N]`): the rows of W are split into work items of
/// `tile_m` rows (the loop `bcr-parallelize` hands to the threads); each
/// item walks N in tiles of `tile_n` and K in blocks of `tile_k`, and in
/// each block runs every panel of `register_tile` rows through the register
/// tile: per chunk of `vectors x vector_width` output columns the C tile is
/// loaded once, then per column `k` of the block the activation vectors are
/// loaded once and each of the panel's weights (consecutive in the panel)
/// broadcast once, and the tile is stored once. The bottom panel that `M`
/// cuts short runs with a shorter tile (its padded rows are never touched).
///
/// Matrix-vector products (`x[K]`): per panel of `register_tile` rows the
/// sums stay in `register_tile / lanes` vector registers over all of K; per
/// `k`, one broadcast activation times one vector load per `lanes` rows.
fn dense_gemm<'c>(
    b: &Builder<'c>,
    product: &bcr::DenseProduct<'c, '_>,
    image: Option<Geometry>,
    m: i64,
    k: i64,
    n: Option<i64>,
) {
    let (w, x, c) = (erase(product.w), erase(product.x), erase(product.c));
    let panel_rows = product.register_tile.max(1);
    let parallel = parallel_attrs(b, product.threads);
    let Some(n) = n else {
        let lanes = panel_lanes(product.vector_width, panel_rows);
        let vectors = panel_rows / lanes;
        let sums = b.alloca(&[panel_rows], b.f32_type());
        let panels = (m + panel_rows - 1) / panel_rows;
        let (c0, c1) = (b.index(0), b.index(1));
        b.for_loop_with(c0, b.index(panels), c1, &[], &parallel, |b, p, _| {
            let base = b.muli(p, b.index(k * panel_rows));
            let zero = if lanes == 1 {
                b.f32(0.0)
            } else {
                b.broadcast(b.f32(0.0), lanes as u64)
            };
            let inits = vec![zero; vectors as usize];
            let (c0, c1) = (b.index(0), b.index(1));
            let results = b.for_loop(c0, b.index(k), c1, &inits, |b, kk, sums| {
                let xk = b.load(x, &[kk]);
                let xk = if lanes == 1 {
                    xk
                } else {
                    b.broadcast(xk, lanes as u64)
                };
                let column = b.muli(kk, b.index(panel_rows));
                let column = b.addi(base, column);
                (0..vectors as usize)
                    .map(|v| {
                        let at = b.addi(column, b.index(v as i64 * lanes));
                        if lanes == 1 {
                            b.fma(b.load(w, &[at]), xk, sums[v])
                        } else {
                            b.vfma(b.vload(w, &[at], lanes as u64), xk, sums[v])
                        }
                    })
                    .collect()
            });
            let row_base = b.muli(p, b.index(panel_rows));
            Panel {
                c,
                sums,
                rows: m,
                lanes,
                vectors,
            }
            .add(b, row_base, &results);
            vec![]
        });
        return;
    };
    let lanes = product.vector_width.max(1);
    let vectors = product.vectors.max(1);
    let tile_m = if product.tile_m > 0 {
        product.tile_m
    } else {
        panel_rows
    };
    let panels_per_item = (tile_m / panel_rows).max(1);
    let full_panels = m / panel_rows;
    let short_rows = m % panel_rows;
    let m_items = (m + tile_m - 1) / tile_m;
    let tile_k = if product.tile_k > 0 {
        product.tile_k.min(k)
    } else {
        k
    };
    let tile_n = if product.tile_n > 0 && product.tile_n < n {
        product.tile_n
    } else {
        n
    };
    let n_items = (n + tile_n - 1) / tile_n;
    // The activation block of a work item is packed once per (N tile, K
    // block) into a cache-line aligned stack buffer (PackedX) and read by
    // every panel of the item. Narrow N (at most two register chunks) is
    // read in place: its rows are already short and close together.
    let width = lanes * vectors;
    // An image's patch row for the tile, before it is cut into chunks.
    let line = image
        .is_some()
        .then(|| b.alloca_aligned(&[tile_n], b.f32_type(), 64));
    let buffer = (n > 2 * width || image.is_some()).then(|| {
        let chunks = (tile_n + width - 1) / width;
        b.alloca_aligned(&[chunks * tile_k * width], b.f32_type(), 64)
    });
    // One (N tile) x (panels) block of work, K block by K block.
    let block = |b: &Builder<'c>,
                 panels: (V<'c>, V<'c>),
                 short: Option<V<'c>>,
                 n_base: V<'c>,
                 n_len: i64| {
        let (c0, step) = (b.index(0), b.index(tile_k));
        b.for_loop(c0, b.index(k), step, &[], |b, k0, _| {
            let k_end = b.addi(k0, b.index(tile_k));
            let k_end = b.minui(k_end, b.index(k));
            let packed = buffer.map(|buffer| {
                let packed = PackedX {
                    k0,
                    n0: n_base,
                    depth: tile_k,
                    width,
                };
                packed.fill(b, x, image.as_ref().zip(line), buffer, k_end, n_len, lanes);
                (buffer, packed)
            });
            let run = |b: &Builder<'c>, p: V<'c>, rows: usize| {
                let panel = b.muli(p, b.index(k * panel_rows));
                let walk = Walk::Panel {
                    panel,
                    panel_rows,
                    k0,
                    k_end,
                    values: w,
                };
                let first_row = b.muli(p, b.index(panel_rows));
                RowTile {
                    walk,
                    x: packed.map_or(x, |(buffer, _)| buffer),
                    packed: packed.map(|(_, packed)| packed),
                    image_shift: None,
                    c,
                    matrix: true,
                    n_base,
                    n: n_len,
                    lanes,
                    vectors,
                }
                .emit(b, first_row, rows);
            };
            let one = b.index(1);
            b.for_loop(panels.0, panels.1, one, &[], |b, p, _| {
                run(b, p, panel_rows as usize);
                vec![]
            });
            if short_rows > 0 {
                let tail = |b: &Builder<'c>| {
                    run(b, b.index(full_panels), short_rows as usize);
                    vec![]
                };
                match short {
                    Some(condition) => {
                        b.if_else(condition, &[], tail, |_| vec![]);
                    }
                    None => {
                        tail(b);
                    }
                }
            }
            vec![]
        });
    };
    let (c0, c1) = (b.index(0), b.index(1));
    if m_items == 1 && n_items > 1 {
        // Work items are N tiles over all rows (bcr-tile chose this for long
        // N): each activation is packed once, and W streams from the outer
        // cache once per tile.
        let last = n - (n_items - 1) * tile_n;
        b.for_loop_with(c0, b.index(n_items), c1, &[], &parallel, |b, item, _| {
            let n_base = b.muli(item, b.index(tile_n));
            let panels = (b.index(0), b.index(full_panels));
            if last == tile_n {
                block(b, panels, None, n_base, tile_n);
            } else {
                let is_last = b.cmpi(CmpiPredicate::Eq, item, b.index(n_items - 1));
                b.if_else(
                    is_last,
                    &[],
                    |b| {
                        block(b, panels, None, n_base, last);
                        vec![]
                    },
                    |b| {
                        block(b, panels, None, n_base, tile_n);
                        vec![]
                    },
                );
            }
            vec![]
        });
        return;
    }
    // Work items are groups of `tile_m` rows, each walking all of N.
    b.for_loop_with(c0, b.index(m_items), c1, &[], &parallel, |b, item, _| {
        let first_panel = b.muli(item, b.index(panels_per_item));
        let end_panel = b.addi(first_panel, b.index(panels_per_item));
        let end_panel = b.minui(end_panel, b.index(full_panels));
        let last_item = b.cmpi(CmpiPredicate::Eq, item, b.index(m_items - 1));
        n_tiles(b, n, product.tile_n, |b, n_base, n_len| {
            block(b, (first_panel, end_panel), Some(last_item), n_base, n_len);
        });
        vec![]
    });
}

/// An activation block `X[k0..k0 + depth, n0..]` copied into a 1-D buffer
/// the way GotoBLAS packs B: in chunks of `width` columns (one register
/// tile's columns), each chunk `depth` rows of `width` consecutive values,
/// the last chunk zero-padded. The register tile then reads one contiguous
/// stream of `width` values per column of W instead of rows `N * 4` bytes
/// apart (N = 3136: 196 cache lines apart, which map to 16 of the 64 L1
/// sets, and a new page every row).
#[derive(Clone, Copy)]
struct PackedX<'c> {
    k0: V<'c>,
    n0: V<'c>,
    depth: i64,
    width: i64,
}

impl<'c> PackedX<'c> {
    /// Chunks of a block `columns` wide.
    fn chunks(&self, columns: i64) -> i64 {
        (columns + self.width - 1) / self.width
    }

    /// Index of `X[k, column]` in the buffer (`column` absolute).
    fn address(&self, b: &Builder<'c>, k: V<'c>, column: V<'c>) -> V<'c> {
        let relative = b.subi(column, self.n0);
        let width = b.index(self.width);
        let chunk = b.divui(relative, width);
        let within = b.remui(relative, width);
        let row = b.subi(k, self.k0);
        let chunk_base = b.muli(chunk, b.index(self.depth * self.width));
        let row_base = b.muli(row, width);
        let at = b.addi(chunk_base, row_base);
        b.addi(at, within)
    }

    /// Copies `X[k0..k_end, n0..n0 + columns]` (or, for an image, those
    /// entries of its patch matrix) into `buffer`: per chunk and
    /// row, vectors of `lanes`, then the columns left over one by one; the
    /// padding of the last chunk is never read unmasked, so it is not written.
    #[allow(clippy::too_many_arguments)]
    fn fill(
        &self,
        b: &Builder<'c>,
        x: V<'c>,
        image: Option<(&Geometry, V<'c>)>,
        buffer: V<'c>,
        k_end: V<'c>,
        columns: i64,
        lanes: i64,
    ) {
        let one = b.index(1);
        b.for_loop(self.k0, k_end, one, &[], |b, kk, _| {
            let row = b.subi(kk, self.k0);
            let row = b.muli(row, b.index(self.width));
            // Column j of the block's row kk: X[kk, n0 + j], or for an image
            // its patch row, copied once into a line buffer (implicit im2col)
            // so the chunks below read it with plain vector loads.
            let (source, origin) = match image {
                Some((geometry, line)) => {
                    let end = b.addi(self.n0, b.index(columns));
                    geometry.copy_row(b, x, kk, self.n0, end, line, &|_, position| vec![position]);
                    (line, None)
                }
                None => (x, Some(kk)),
            };
            let read = |b: &Builder<'c>, j: i64, width: u64| {
                let column = b.index(j);
                let indices = match origin {
                    Some(kk) => vec![kk, b.addi(self.n0, column)],
                    None => vec![column],
                };
                if width == 1 {
                    b.load(source, &indices)
                } else {
                    b.vload(source, &indices, width)
                }
            };
            for chunk in 0..self.chunks(columns) {
                let first = chunk * self.width;
                let count = self.width.min(columns - first);
                let vector_end = if lanes > 1 { count / lanes * lanes } else { 0 };
                let base = b.addi(row, b.index(chunk * self.depth * self.width));
                for j in (0..vector_end).step_by(lanes.max(1) as usize) {
                    let v = read(b, first + j, lanes as u64);
                    b.vstore(v, buffer, &[b.addi(base, b.index(j))]);
                }
                for j in vector_end..count {
                    let v = read(b, first + j, 1);
                    b.store(v, buffer, &[b.addi(base, b.index(j))]);
                }
            }
            vec![]
        });
    }
}

/// Emits the products of a tile of kept rows of one block, over all of N.
///
/// For `tile` rows and chunks of `vectors` x `lanes` columns, the output
/// tile (`tile * vectors` accumulators) is loaded once, each kept column's
/// activation vectors are loaded once and reused by every row of the tile
/// (GRIM's register-level load-redundancy elimination), each weight is
/// broadcast once and reused by every vector, and the tile is stored once.
/// Columns left over run with one vector, then scalar; `lanes == 1` (spmv)
/// is all scalar.
struct RowTile<'c> {
    /// Which rows, columns and weights the tile reads.
    walk: Walk<'c>,
    x: V<'c>,
    /// `Some`: `x` is a packed activation block ([`PackedX`]), not `X`.
    packed: Option<PackedX<'c>>,
    /// `Some(shift)`: `x` is a flat image and the kept column list holds
    /// patch offsets: column `n` of kept patch row `k` is `x[k + shift + n]`.
    image_shift: Option<V<'c>>,
    c: V<'c>,
    /// `c` and `x` are matrices (spmm), not vectors (spmv).
    matrix: bool,
    /// First output column of this walk.
    n_base: V<'c>,
    /// Output columns in this walk.
    n: i64,
    lanes: i64,
    vectors: i64,
}

/// The weights a [`RowTile`] multiplies.
#[derive(Clone, Copy)]
enum Walk<'c> {
    /// One BCR block: its kept rows and columns (index lists decoded from
    /// the masks), `cols` of them per row, the block's kept sub-matrix
    /// row-major in `values` from `value_offset`.
    Kept {
        kept_rows: V<'c>,
        kept_cols: V<'c>,
        cols: V<'c>,
        value_offset: V<'c>,
        values: V<'c>,
    },
    /// A block of a dense row panel: consecutive rows from the tile's first,
    /// columns `[k0, k_end)`, the weight of row `t` at column `k` at
    /// `panel + k * panel_rows + t` in `values`.
    Panel {
        panel: V<'c>,
        panel_rows: i64,
        k0: V<'c>,
        k_end: V<'c>,
        values: V<'c>,
    },
}

impl<'c> RowTile<'c> {
    /// `first`: index of the tile's first row in the kept-row list (BCR) or
    /// its first output row (dense panel).
    fn emit(&self, b: &Builder<'c>, first: V<'c>, tile: usize) {
        let mut rows = Vec::with_capacity(tile);
        let mut weights = Vec::with_capacity(tile);
        for t in 0..tile {
            let at = b.addi(first, b.index(t as i64));
            match self.walk {
                Walk::Kept {
                    kept_rows,
                    cols,
                    value_offset,
                    ..
                } => {
                    rows.push(b.load(kept_rows, &[at]));
                    let offset = b.muli(at, cols);
                    weights.push(b.addi(value_offset, offset));
                }
                Walk::Panel { panel, .. } => {
                    rows.push(at);
                    weights.push(b.addi(panel, b.index(t as i64)));
                }
            }
        }
        if !self.matrix {
            // spmv: c[row] (one value per row).
            self.chunks(b, &rows, &weights, None, 1, 1, None);
            return;
        }
        let wide = self.lanes * self.vectors;
        let wide_end = self.n / wide * wide;
        let single_end = self.n / self.lanes * self.lanes;
        if wide_end > 0 && self.lanes > 1 {
            self.chunk_loop(b, &rows, &weights, 0, wide_end, self.vectors);
        }
        if single_end > wide_end && self.lanes > 1 {
            self.chunk_loop(b, &rows, &weights, wide_end, single_end, 1);
        }
        if self.lanes > 1 && single_end < self.n {
            // The last columns: one masked vector, not a scalar loop (N = 196
            // with 8 lanes would otherwise spend a sixth of its time on 4 columns).
            let column = b.addi(self.n_base, b.index(single_end));
            self.chunks(
                b,
                &rows,
                &weights,
                Some(column),
                self.lanes,
                1,
                Some(self.n - single_end),
            );
            return;
        }
        let scalar_start = if self.lanes > 1 { single_end } else { 0 };
        if scalar_start < self.n {
            let (start, end, one) = (b.index(scalar_start), b.index(self.n), b.index(1));
            let (start, end) = (b.addi(self.n_base, start), b.addi(self.n_base, end));
            b.for_loop(start, end, one, &[], |b, column, _| {
                self.chunks(b, &rows, &weights, Some(column), 1, 1, None);
                vec![]
            });
        }
    }

    fn chunk_loop(
        &self,
        b: &Builder<'c>,
        rows: &[V<'c>],
        weights: &[V<'c>],
        start: i64,
        end: i64,
        vectors: i64,
    ) {
        let (start, end, step) = (b.index(start), b.index(end), b.index(self.lanes * vectors));
        let (start, end) = (b.addi(self.n_base, start), b.addi(self.n_base, end));
        b.for_loop(start, end, step, &[], |b, column, _| {
            self.chunks(b, rows, weights, Some(column), self.lanes, vectors, None);
            vec![]
        });
    }

    /// One register tile: rows x `vectors` chunks of `lanes` at `column`
    /// (`None`: the output and input are vectors, not matrices); with
    /// `valid = Some(t)`, one chunk whose first `t` lanes exist, read and
    /// written with masked vector loads and stores.
    #[allow(clippy::too_many_arguments)]
    fn chunks(
        &self,
        b: &Builder<'c>,
        rows: &[V<'c>],
        weights: &[V<'c>],
        column: Option<V<'c>>,
        lanes: i64,
        vectors: i64,
        valid: Option<i64>,
    ) {
        let mask = valid.map(|t| {
            let mask_type = Type::vector(&[lanes as u64], b.int_type(1));
            let sizes = melior::ir::attribute::DenseI64ArrayAttribute::new(b.context, &[t]).into();
            let mask = b.op(
                "vector.constant_mask",
                &[],
                &[mask_type],
                &[("mask_dim_sizes", sizes)],
            )[0];
            (mask, b.broadcast(b.f32(0.0), lanes as u64))
        });
        let at = |b: &Builder<'c>, row: V<'c>, v: i64| -> Vec<V<'c>> {
            match column {
                None => vec![row],
                Some(column) if v == 0 => vec![row, column],
                Some(column) => vec![row, b.addi(column, b.index(v * lanes))],
            }
        };
        let load = |b: &Builder<'c>, memref: V<'c>, indices: &[V<'c>]| match (lanes, mask) {
            (1, _) => b.load(memref, indices),
            (_, None) => b.vload(memref, indices, lanes as u64),
            (_, Some((mask, zero))) => {
                let mut operands = vec![memref];
                operands.extend_from_slice(indices);
                operands.extend([mask, zero]);
                b.op(
                    "vector.maskedload",
                    &operands,
                    &[b.vector_type(lanes as u64)],
                    &[],
                )[0]
            }
        };
        let mut accumulators = Vec::new();
        for row in rows {
            for v in 0..vectors {
                accumulators.push(load(b, self.c, &at(b, *row, v)));
            }
        }
        let (lo, hi, values) = match self.walk {
            Walk::Kept { cols, values, .. } => (b.index(0), cols, values),
            Walk::Panel {
                k0, k_end, values, ..
            } => (k0, k_end, values),
        };
        let one = b.index(1);
        let results = b.for_loop(lo, hi, one, &accumulators, |b, j, accumulators| {
            let (k, step) = match self.walk {
                Walk::Kept { kept_cols, .. } => (b.load(kept_cols, &[j]), j),
                Walk::Panel { panel_rows, .. } => (j, b.muli(j, b.index(panel_rows))),
            };
            let inputs: Vec<V<'c>> = (0..vectors)
                .map(|v| {
                    let indices = at(b, k, v);
                    match (&self.packed, self.image_shift, indices.get(1)) {
                        (Some(packed), _, Some(column)) => {
                            load(b, self.x, &[packed.address(b, k, *column)])
                        }
                        (None, Some(shift), Some(column)) => {
                            let at = b.addi(b.addi(k, shift), *column);
                            load(b, self.x, &[at])
                        }
                        _ => load(b, self.x, &indices),
                    }
                })
                .collect();
            let mut next = Vec::with_capacity(accumulators.len());
            for (t, base) in weights.iter().enumerate() {
                let offset = b.addi(*base, step);
                let w = b.load(values, &[offset]);
                let w = if lanes == 1 {
                    w
                } else {
                    b.broadcast(w, lanes as u64)
                };
                for (v, input) in inputs.iter().enumerate() {
                    let acc = accumulators[t * vectors as usize + v];
                    next.push(if lanes == 1 {
                        b.fma(w, *input, acc)
                    } else {
                        b.vfma(w, *input, acc)
                    });
                }
            }
            next
        });
        for (t, row) in rows.iter().enumerate() {
            for v in 0..vectors {
                let value = results[t * vectors as usize + v as usize];
                let indices = at(b, *row, v);
                match (lanes, mask) {
                    (1, _) => b.store(value, self.c, &indices),
                    (_, None) => b.vstore(value, self.c, &indices),
                    (_, Some((mask, _))) => {
                        let mut operands = vec![self.c];
                        operands.extend_from_slice(&indices);
                        operands.extend([mask, value]);
                        b.op("vector.maskedstore", &operands, &[], &[]);
                    }
                }
            }
        }
    }
}

/// Writes `base + i` for every set bit `i` of the `bits`-bit mask at
/// `masks[mask_base..]` into `list`; returns how many were written.
///
/// The mask bytes are assembled into one i64 and walked with `cttz`, one
/// iteration per kept row or column: a block is decoded in a few dozen
/// instructions however large it is.
fn decode_mask<'c>(
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
