//! The `bcr` loop-level sparse dialect: typed builders, accessors and the
//! semantic verifier.
//!
//! A BCRC-packed matrix is four arrays in the model's weight blob (see
//! docs/lr-and-bcrc.md): `strips` (i32), `block_col` (i16), `masks` (i8) and
//! `values` (f32). `bcr.packed` yields them; `bcr.spmm` and `bcr.spmv`
//! consume them. A layer that stays dense is a `bcr.gemm` reading a
//! `bcr.dense` weight stored in row panels. Ops carry their schedule as
//! attributes, so each loop transformation is a pass that rewrites
//! attributes or ops.

mod pack;
mod verify;

pub use pack::{
    pack_panels, pack_panels_floats, pack_panels_of, PackPanels, PACK_PANELS, PACK_PANELS_MAX_ROWS,
    SCALE_ATTR, TRANSPOSED_ATTR,
};
pub use verify::verify;

use crate::{attr, shape};
use melior::ir::attribute::AttributeLike;
use melior::{
    ir::{
        attribute::{IntegerAttribute, StringAttribute},
        operation::{OperationBuilder, OperationLike},
        r#type::TypeLike,
        r#type::{IntegerType, MemRefType},
        Attribute, Identifier, Location, Operation, Type, Value, ValueLike,
    },
    Context,
};

/// `bcr.packed` — the BCRC arrays of one weight matrix.
pub const PACKED: &str = "bcr.packed";
/// `bcr.dense` — a dense f32 array from the weight blob.
pub const DENSE: &str = "bcr.dense";
/// `bcr.spmm` — `C[M,N] += W[M,K] * X[K,N]`.
pub const SPMM: &str = "bcr.spmm";
/// `bcr.spmv` — `c[M] += W[M,K] * x[K]`.
pub const SPMV: &str = "bcr.spmv";
/// `bcr.gemm` — dense `C[M,N] += W[M,K] * X[K,N]` (or `c[M] += W x`).
pub const GEMM: &str = "bcr.gemm";
/// `bcr.im2col` — the patch matrix of one image, for a convolution's GEMM view.
pub const IM2COL: &str = "bcr.im2col";
/// Attribute of `bcr.im2col` and of a `bcr.gemm` that reads an image:
/// `array<i64: kh, kw, sh, sw, pt, pl, pb, pr, dh, dw>`.
pub const IM2COL_ATTR: &str = "im2col";

/// Number of blob slots a `bcr.packed` occupies (one per BCRC array).
pub const PACKED_SLOTS: i64 = 4;

/// Unit attribute on `bcr.packed`: the order was chosen per layer (LR file)
/// and passes must not change it.
pub const PINNED_ATTR: &str = "pinned";

/// Schedule attribute of every product: the most threads its parallel loop
/// may use (from the LR file; absent = all of the runtime's).
pub const THREADS_ATTR: &str = "threads";
/// Schedule attribute of every product: the target's vector registers (set
/// by `bcr-vectorize`), which `bcr-lre` fills with its register tile.
pub const REGISTERS_ATTR: &str = "registers";
/// Schedule attribute of every product: f32 lanes per vector (set by
/// `bcr-vectorize`; absent = scalar code).
pub const VECTOR_WIDTH_ATTR: &str = "vector_width";
/// Schedule attribute of `bcr.gemm`: rows of W per parallel work item (bcr-tile).
pub const TILE_M_ATTR: &str = "tile_m";
/// Schedule attribute of `bcr.gemm`: columns of W (rows of X) per cache block (bcr-tile).
pub const TILE_K_ATTR: &str = "tile_k";
/// Attribute of a `bcr.dense` weight in [`LAYOUT_ROW_PANELS`]: rows per panel
/// (set by `bcr-lre` to the product's register tile; absent = 1, row-major).
pub const PANEL_ROWS_ATTR: &str = "panel_rows";
/// `bcr.dense` layout of a `bcr.gemm` weight: panels of `panel_rows` rows,
/// each stored K-major (`panel_rows` values per column), the last panel
/// zero-padded.
pub const LAYOUT_ROW_PANELS: &str = "row_panels";

/// Schedule attribute of products: kept rows per register tile (on `bcr.gemm`: rows per panel).
pub const REGISTER_TILE_ATTR: &str = "register_tile";
/// Schedule attribute of `bcr.spmm`: vectors along N per row in registers.
pub const VECTORS_ATTR: &str = "vectors";
/// Schedule attribute of `bcr.spmm`: output columns per cache tile (bcr-tile).
pub const TILE_N_ATTR: &str = "tile_n";

/// Work order of the blocks in a packed matrix (BCR.md, "Reorder").
pub const ORDER_NATURAL: &str = "natural";
/// Blocks with equal kept rows adjacent, strips by descending work.
pub const ORDER_GROUPED: &str = "grouped";

/// Static description of a packed matrix, as carried by `bcr.packed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackedInfo {
    /// Name of the weight in the model.
    pub name: String,
    /// First blob slot of the four arrays.
    pub slot: i64,
    /// Rows (M) of the matrix.
    pub rows: i64,
    /// Columns (K) of the matrix.
    pub cols: i64,
    /// Block rows.
    pub block_rows: i64,
    /// Block columns.
    pub block_cols: i64,
    /// Work order, [`ORDER_NATURAL`] or [`ORDER_GROUPED`].
    pub order: String,
    /// Value layout, [`LAYOUT_ROW_MAJOR`] or [`LAYOUT_COL_PANELS`].
    pub layout: String,
    /// `Some((rows, cols))`: every stored block keeps exactly `rows` rows and
    /// `cols` columns ([`KEPT_ROWS_ATTR`], [`KEPT_COLS_ATTR`], set by
    /// `bcr-uniform-blocks` and checked when the blob is packed).
    pub kept: Option<(i64, i64)>,
}

/// Attribute of `bcr.packed`: the rows every stored block keeps.
pub const KEPT_ROWS_ATTR: &str = "kept_rows";
/// Attribute of `bcr.packed`: the columns every stored block keeps.
pub const KEPT_COLS_ATTR: &str = "kept_cols";

/// Attribute of `bcr.packed` and `bcr.dense`: the weight's values (the graph
/// level's weight attribute, read when the blob is packed).
pub const VALUE_ATTR: &str = "value";

/// The weight values a `bcr.packed` or `bcr.dense` carries.
pub fn weight_value<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<Attribute<'c>> {
    op.attribute(VALUE_ATTR).ok()
}

/// Attribute of `bcr.packed`: how `values` is laid out (absent: row-major).
pub const LAYOUT_ATTR: &str = "layout";
/// Each block's kept sub-matrix row-major (GEMM-shaped work).
pub const LAYOUT_ROW_MAJOR: &str = "row_major";
/// Each kept column as a full block-height panel, zeros for pruned rows
/// (matrix-vector work keeps a strip's outputs in registers).
pub const LAYOUT_COL_PANELS: &str = "col_panels";
/// Each kept column as a panel of the block's kept rows only (the
/// row-major sub-matrix transposed): matrix-vector work expands a panel to
/// the block's height by the row mask as it loads it, reading half the
/// bytes of a column panel when half the rows are pruned. `bcr.spmm` reads
/// it too, keeping one sum per output column in registers (narrow
/// products: see [`COMPACT_SPMM_MAX_N`]).
pub const LAYOUT_COMPACT_PANELS: &str = "compact_panels";

/// The most output columns of a `bcr.spmm` whose weight lower-grim-to-bcr
/// stores as compact panels: the kernel keeps a strip's sums as one vector
/// of the block's rows per column, and 16 of them plus the loaded panel
/// and its broadcasts fit AVX-512's 32 registers. (A wider product over
/// compact panels is still correct; its sums spill.)
pub const COMPACT_SPMM_MAX_N: i64 = 16;

/// Whether `layout` is one of the layouts the matrix-vector kernels read.
pub fn is_panel_layout(layout: &str) -> bool {
    layout == LAYOUT_COL_PANELS || layout == LAYOUT_COMPACT_PANELS
}

fn dynamic_memref<'c>(element: Type<'c>) -> Type<'c> {
    MemRefType::new(element, &[i64::MIN], None, None).into()
}

/// The result types of `bcr.packed`: `memref<?xi32>, memref<?xi16>, memref<?xi8>, memref<?xf32>`.
pub fn packed_result_types(context: &Context) -> [Type<'_>; 4] {
    [
        dynamic_memref(IntegerType::new(context, 32).into()),
        dynamic_memref(IntegerType::new(context, 16).into()),
        dynamic_memref(IntegerType::new(context, 8).into()),
        dynamic_memref(Type::float32(context)),
    ]
}

/// Builds `bcr.packed(blob) {name, slot, rows, cols, block_rows, block_cols, order}`.
pub fn packed<'c>(
    context: &'c Context,
    blob: Value<'c, '_>,
    info: &PackedInfo,
    value: Attribute<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    OperationBuilder::new(PACKED, location)
        .add_operands(&[blob])
        .add_attributes(&[
            (Identifier::new(context, VALUE_ATTR), value),
            attr::named_str(context, "name", &info.name),
            attr::named_i64(context, "slot", info.slot),
            attr::named_i64(context, "rows", info.rows),
            attr::named_i64(context, "cols", info.cols),
            attr::named_i64(context, "block_rows", info.block_rows),
            attr::named_i64(context, "block_cols", info.block_cols),
            attr::named_str(context, "order", &info.order),
            attr::named_str(context, LAYOUT_ATTR, &info.layout),
        ])
        .add_attributes(
            &info
                .kept
                .map(|(rows, cols)| {
                    vec![
                        attr::named_i64(context, KEPT_ROWS_ATTR, rows),
                        attr::named_i64(context, KEPT_COLS_ATTR, cols),
                    ]
                })
                .unwrap_or_default(),
        )
        .add_results(&packed_result_types(context))
        .build()
        .expect("bcr.packed matches its IRDL declaration")
}

/// Reads the attributes of a `bcr.packed`.
pub fn packed_info<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<PackedInfo> {
    Some(PackedInfo {
        name: attr::string(op, "name")?,
        slot: attr::int(op, "slot")?,
        rows: attr::int(op, "rows")?,
        cols: attr::int(op, "cols")?,
        block_rows: attr::int(op, "block_rows")?,
        block_cols: attr::int(op, "block_cols")?,
        order: attr::string(op, "order")?,
        layout: attr::string(op, LAYOUT_ATTR).unwrap_or_else(|| LAYOUT_ROW_MAJOR.to_string()),
        kept: attr::int(op, KEPT_ROWS_ATTR).zip(attr::int(op, KEPT_COLS_ATTR)),
    })
}

/// Records on a `bcr.packed` that every stored block keeps `rows` rows and
/// `cols` columns (used by `bcr-uniform-blocks`).
pub fn set_kept<'c>(
    op: &mut melior::ir::operation::OperationRefMut<'c, '_>,
    context: &'c Context,
    rows: i64,
    cols: i64,
) {
    set_int(op, context, KEPT_ROWS_ATTR, rows);
    set_int(op, context, KEPT_COLS_ATTR, cols);
}

/// Sets the work order of a `bcr.packed` (used by `bcr-reorder`).
pub fn set_order<'c>(
    op: &mut melior::ir::operation::OperationRefMut<'c, '_>,
    context: &'c Context,
    order: &str,
) {
    use melior::ir::operation::OperationMutLike;
    op.set_attribute("order", StringAttribute::new(context, order).into());
}

/// Builds `bcr.dense(blob) {name, slot}` with a static f32 memref result.
pub fn dense<'c>(
    context: &'c Context,
    blob: Value<'c, '_>,
    name: &str,
    slot: i64,
    shape: &[i64],
    value: Attribute<'c>,
    location: Location<'c>,
) -> Operation<'c> {
    OperationBuilder::new(DENSE, location)
        .add_operands(&[blob])
        .add_attributes(&[
            (Identifier::new(context, VALUE_ATTR), value),
            attr::named_str(context, "name", name),
            attr::named_i64(context, "slot", slot),
        ])
        .add_results(&[MemRefType::new(Type::float32(context), shape, None, None).into()])
        .build()
        .expect("bcr.dense matches its IRDL declaration")
}

/// Builds `bcr.dense(blob) {name, slot, layout = "row_panels", rows}`: a
/// weight matrix of `rows` rows (its value read row-major, whatever shape
/// the constant has) for `bcr.gemm`, `memref<?xf32>` because its padded
/// length depends on the panel height that `bcr-lre` chooses later.
pub fn dense_panels<'c>(
    context: &'c Context,
    blob: Value<'c, '_>,
    name: &str,
    slot: i64,
    value: Attribute<'c>,
    rows: i64,
    location: Location<'c>,
) -> Operation<'c> {
    OperationBuilder::new(DENSE, location)
        .add_operands(&[blob])
        .add_attributes(&[
            (Identifier::new(context, VALUE_ATTR), value),
            attr::named_str(context, "name", name),
            attr::named_i64(context, "slot", slot),
            attr::named_str(context, LAYOUT_ATTR, LAYOUT_ROW_PANELS),
            attr::named_i64(context, "rows", rows),
        ])
        .add_results(&[dynamic_memref(Type::float32(context))])
        .build()
        .expect("bcr.dense matches its IRDL declaration")
}

/// Builds `bcr.gemm(w, x, c)`.
pub fn gemm<'c>(
    w: Value<'c, '_>,
    x: Value<'c, '_>,
    c: Value<'c, '_>,
    location: Location<'c>,
) -> Operation<'c> {
    OperationBuilder::new(GEMM, location)
        .add_operands(&[w, x, c])
        .build()
        .expect("bcr.gemm matches its IRDL declaration")
}

/// Operands and schedule of a `bcr.gemm`.
pub struct DenseProduct<'c, 'a> {
    /// The weight panels (`memref<?xf32>`).
    pub w: Value<'c, 'a>,
    /// Activations: `[K, N]`, or `[K]` for a matrix-vector product.
    pub x: Value<'c, 'a>,
    /// Accumulated output: `[M, N]`, or `[M]`.
    pub c: Value<'c, 'a>,
    /// f32 lanes per vector (1 until bcr-vectorize).
    pub vector_width: i64,
    /// Rows per panel = rows of the register tile (default 1).
    pub register_tile: i64,
    /// Vectors along N per row in registers (default 1).
    pub vectors: i64,
    /// Rows per parallel work item (0 = one panel).
    pub tile_m: i64,
    /// Output columns per cache block (0 = all of N).
    pub tile_n: i64,
    /// Reduction depth per cache block (0 = all of K).
    pub tile_k: i64,
    /// Thread cap of the product's parallel loop (0 = none).
    pub threads: i64,
}

/// Reads a `bcr.gemm`.
pub fn dense_product<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<DenseProduct<'c, 'a>> {
    Some(DenseProduct {
        w: op.operand(0).ok()?,
        x: op.operand(1).ok()?,
        c: op.operand(2).ok()?,
        vector_width: attr::int(op, VECTOR_WIDTH_ATTR).unwrap_or(1),
        register_tile: attr::int(op, REGISTER_TILE_ATTR).unwrap_or(1),
        vectors: attr::int(op, VECTORS_ATTR).unwrap_or(1),
        tile_m: attr::int(op, TILE_M_ATTR).unwrap_or(0),
        tile_n: attr::int(op, TILE_N_ATTR).unwrap_or(0),
        tile_k: attr::int(op, TILE_K_ATTR).unwrap_or(0),
        threads: attr::int(op, THREADS_ATTR).unwrap_or(0),
    })
}

/// The op that defines the row panels `value` of a `bcr.gemm`: a
/// `bcr.dense` (a constant weight) or a `bcr.pack_panels` (a runtime one);
/// both carry `panel_rows`.
pub fn defining_panels<'c, 'a>(value: Value<'c, 'a>) -> Option<melior::ir::OperationRef<'c, 'a>> {
    if !value.is_operation_result() {
        return None;
    }
    // SAFETY: the value is alive; an op result always has an owner.
    let op = unsafe {
        melior::ir::OperationRef::from_raw(mlir_sys::mlirOpResultGetOwner(value.to_raw()))
    };
    [DENSE, PACK_PANELS]
        .contains(&op.name().as_string_ref().as_str().ok()?)
        .then_some(op)
}

/// Rows per panel of a `bcr.dense` in row panels (1 when not set yet).
pub fn panel_rows<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> i64 {
    attr::int(op, PANEL_ROWS_ATTR).unwrap_or(1)
}

/// A convolution's patch geometry, as `bcr.im2col` and an implicit-im2col
/// `bcr.gemm` carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Im2col {
    /// Kernel height.
    pub kh: i64,
    /// Kernel width.
    pub kw: i64,
    /// Strides, pads and dilations.
    pub conv: crate::grim::ConvAttrs,
}

impl Im2col {
    /// The attribute value.
    pub fn to_array(&self) -> [i64; 10] {
        let c = &self.conv;
        [
            self.kh,
            self.kw,
            c.strides[0],
            c.strides[1],
            c.pads[0],
            c.pads[1],
            c.pads[2],
            c.pads[3],
            c.dilations[0],
            c.dilations[1],
        ]
    }

    /// `(K, Ho, Wo)` for an image `[C, H, W]` (`None` if the kernel does not fit).
    pub fn output(&self, image: &[i64]) -> Option<(i64, i64, i64)> {
        let [c, h, w] = image[..] else { return None };
        let (ho, wo) = self.conv.output(h, w, self.kh, self.kw)?;
        Some((c * self.kh * self.kw, ho, wo))
    }
}

/// `(name, array<i64: ...>)` of an [`Im2col`], to attach to an op.
pub fn im2col_attr<'c>(
    context: &'c Context,
    geometry: &Im2col,
) -> (melior::ir::Identifier<'c>, melior::ir::Attribute<'c>) {
    (
        melior::ir::Identifier::new(context, IM2COL_ATTR),
        melior::ir::attribute::DenseI64ArrayAttribute::new(context, &geometry.to_array()).into(),
    )
}

/// The im2col geometry on an op (`None` if absent or malformed).
pub fn im2col_of<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Option<Im2col> {
    let attribute = op.attribute(IM2COL_ATTR).ok()?;
    let raw = attribute.to_raw();
    // SAFETY: read-only queries on a live attribute, checked to be a dense i64 array first.
    let values: Vec<i64> = unsafe {
        if !mlir_sys::mlirAttributeIsADenseI64Array(raw) {
            return None;
        }
        (0..mlir_sys::mlirDenseArrayGetNumElements(raw))
            .map(|i| mlir_sys::mlirDenseI64ArrayGetElement(raw, i))
            .collect()
    };
    let [kh, kw, sh, sw, pt, pl, pb, pr, dh, dw] = values[..] else {
        return None;
    };
    Some(Im2col {
        kh,
        kw,
        conv: crate::grim::ConvAttrs {
            strides: [sh, sw],
            pads: [pt, pl, pb, pr],
            dilations: [dh, dw],
            group: 1,
        },
    })
}

/// Builds `bcr.im2col(x, out) {im2col}`.
pub fn im2col<'c>(
    context: &'c Context,
    x: Value<'c, '_>,
    out: Value<'c, '_>,
    geometry: &Im2col,
    location: Location<'c>,
) -> Operation<'c> {
    OperationBuilder::new(IM2COL, location)
        .add_operands(&[x, out])
        .add_attributes(&[im2col_attr(context, geometry)])
        .build()
        .expect("bcr.im2col matches its IRDL declaration")
}

/// The four BCRC operands of a sparse product, in operand order.
#[derive(Clone, Copy)]
pub struct Packed<'c, 'a> {
    /// `memref<?xi32>` strip records.
    pub strips: Value<'c, 'a>,
    /// `memref<?xi16>` block columns.
    pub block_col: Value<'c, 'a>,
    /// `memref<?xi8>` row and column masks.
    pub masks: Value<'c, 'a>,
    /// `memref<?xf32>` kept sub-matrices.
    pub values: Value<'c, 'a>,
}

/// Builds `bcr.spmm(strips, block_col, masks, values, x, c) {block_rows, block_cols}`.
pub fn spmm<'c>(
    context: &'c Context,
    packed: Packed<'c, '_>,
    x: Value<'c, '_>,
    c: Value<'c, '_>,
    block_rows: i64,
    block_cols: i64,
    location: Location<'c>,
) -> Operation<'c> {
    sparse_op(
        context,
        SPMM,
        packed,
        x,
        c,
        &[("block_rows", block_rows), ("block_cols", block_cols)],
        location,
    )
}

/// Builds `bcr.spmv(strips, block_col, masks, values, x, c) {block_rows, block_cols}`.
pub fn spmv<'c>(
    context: &'c Context,
    packed: Packed<'c, '_>,
    x: Value<'c, '_>,
    c: Value<'c, '_>,
    block_rows: i64,
    block_cols: i64,
    location: Location<'c>,
) -> Operation<'c> {
    sparse_op(
        context,
        SPMV,
        packed,
        x,
        c,
        &[("block_rows", block_rows), ("block_cols", block_cols)],
        location,
    )
}

fn sparse_op<'c>(
    context: &'c Context,
    name: &str,
    packed: Packed<'c, '_>,
    x: Value<'c, '_>,
    c: Value<'c, '_>,
    attributes: &[(&str, i64)],
    location: Location<'c>,
) -> Operation<'c> {
    let attributes: Vec<_> = attributes
        .iter()
        .map(|(n, v)| attr::named_i64(context, n, *v))
        .collect();
    OperationBuilder::new(name, location)
        .add_operands(&[
            packed.strips,
            packed.block_col,
            packed.masks,
            packed.values,
            x,
            c,
        ])
        .add_attributes(&attributes)
        .build()
        .expect("bcr sparse products match their IRDL declarations")
}

/// Operands and attributes of a `bcr.spmm` or `bcr.spmv`.
pub struct SparseProduct<'c, 'a> {
    /// The BCRC arrays.
    pub packed: Packed<'c, 'a>,
    /// Activations: `[K, N]` (spmm) or `[K]` (spmv).
    pub x: Value<'c, 'a>,
    /// Accumulated output: `[M, N]` (spmm) or `[M]` (spmv).
    pub c: Value<'c, 'a>,
    /// Block rows.
    pub block_rows: i64,
    /// Block columns.
    pub block_cols: i64,
    /// f32 lanes per vector (spmm only; 1 for spmv).
    pub vector_width: i64,
    /// Kept rows that share each activation load (`register_tile`, default 1).
    pub register_tile: i64,
    /// Vectors along N per row kept in registers (`vectors`, spmm only, default 1).
    pub vectors: i64,
    /// Output columns per cache tile (`tile_n`, spmm only; 0 = untiled).
    pub tile_n: i64,
    /// Thread cap of the product's parallel loop (0 = none).
    pub threads: i64,
}

/// Reads a `bcr.spmm` or `bcr.spmv`.
pub fn sparse_product<'c: 'a, 'a>(
    op: &impl OperationLike<'c, 'a>,
) -> Option<SparseProduct<'c, 'a>> {
    Some(SparseProduct {
        packed: Packed {
            strips: op.operand(0).ok()?,
            block_col: op.operand(1).ok()?,
            masks: op.operand(2).ok()?,
            values: op.operand(3).ok()?,
        },
        x: op.operand(4).ok()?,
        c: op.operand(5).ok()?,
        block_rows: attr::int(op, "block_rows")?,
        block_cols: attr::int(op, "block_cols")?,
        vector_width: attr::int(op, VECTOR_WIDTH_ATTR).unwrap_or(1),
        register_tile: attr::int(op, REGISTER_TILE_ATTR).unwrap_or(1),
        vectors: attr::int(op, VECTORS_ATTR).unwrap_or(1),
        tile_n: attr::int(op, TILE_N_ATTR).unwrap_or(0),
        threads: attr::int(op, THREADS_ATTR).unwrap_or(0),
    })
}

/// Sets an integer schedule attribute on a `bcr` op.
pub fn set_int<'c>(
    op: &mut melior::ir::operation::OperationRefMut<'c, '_>,
    context: &'c Context,
    name: &str,
    value: i64,
) {
    use melior::ir::operation::OperationMutLike;
    op.set_attribute(
        name,
        IntegerAttribute::new(IntegerType::new(context, 64).into(), value).into(),
    );
}

/// The `bcr.packed` that defines `value`, if any.
pub fn defining_packed(value: Value) -> Option<PackedInfo> {
    if !value.is_operation_result() {
        return None;
    }
    // SAFETY: the value is alive; an op result always has an owner.
    let owner = unsafe { mlir_sys::mlirOpResultGetOwner(value.to_raw()) };
    let op = unsafe { melior::ir::OperationRef::from_raw(owner) };
    (op.name().as_string_ref().as_str().ok()? == PACKED)
        .then(|| packed_info(&op))
        .flatten()
}
