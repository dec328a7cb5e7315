//! Constants as blob slots: `bcr.packed` (BCRC arrays) and `bcr.dense`
//! (plain arrays, or row panels of a dense kernel's weight), each made once
//! per weight and layout and shared by every product that reads it.

use super::Lowering;
use crate::{
    builder::{erase, Builder, V},
    op_error, PassError,
};
use grim_dialects::{bcr, grim};
use melior::{
    ir::{
        operation::{OperationLike, OperationMutLike, OperationRef, OperationRefMut},
        Attribute, AttributeLike, Location, Operation,
    },
    Context,
};
use std::collections::HashMap;

/// A product's weight as its kernel reads it.
pub(super) enum Weights<'c> {
    /// BCRC arrays and the block size.
    Bcr((bcr::Packed<'c, 'c>, i64, i64)),
    /// Row panels of a layer that stays dense.
    Dense(V<'c>),
}

impl<'c> Weights<'c> {
    /// The product `c += W x`: `x`/`c` are `[K, N]`/`[M, N]` (`matrix`) or `[K]`/`[M]`.
    pub(super) fn product(
        &self,
        context: &'c Context,
        x: V<'c>,
        c: V<'c>,
        matrix: bool,
        location: Location<'c>,
    ) -> Operation<'c> {
        match self {
            Weights::Bcr((packed, rows, cols)) if matrix => {
                bcr::spmm(context, *packed, x, c, *rows, *cols, location)
            }
            Weights::Bcr((packed, rows, cols)) => {
                bcr::spmv(context, *packed, x, c, *rows, *cols, location)
            }
            Weights::Dense(w) => bcr::gemm(*w, x, c, location),
        }
    }
}

/// How a product reads its weight, which decides the weight's layout.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Reads {
    /// A matrix-vector product.
    Vector,
    /// A matrix product over this many columns of a `[K, N]` activation.
    Columns(i64),
    /// A conv's image, through (implicit) im2col: the row-major walk only.
    Image,
}

impl Reads {
    /// A matrix product over `n` columns (1: a matrix-vector product).
    pub(super) fn of_columns(n: i64) -> Reads {
        if n == 1 {
            Reads::Vector
        } else {
            Reads::Columns(n)
        }
    }
}

/// Whether a matrix-vector product's weight is stored as compact panels
/// (`grim_model::cost::compact_panels` says when).
fn compact_pays(
    isa: Option<grim_model::cost::Isa>,
    value: Attribute,
    m: i64,
    k: i64,
    block_rows: i64,
    block_cols: i64,
) -> bool {
    let (Some(isa), Some(data)) = (isa, grim_dialects::weights::read(value)) else {
        return false;
    };
    let block = grim_model::BlockSize {
        rows: block_rows as usize,
        cols: block_cols as usize,
    };
    grim_model::bcrc::bcr_shape(&data, m as usize, k as usize, block)
        .is_ok_and(|shape| grim_model::cost::compact_panels(isa, &shape))
}

/// Blob slots handed out so far, and the weight views already made.
pub(super) struct Slots<'c> {
    /// The next free slot.
    pub(super) next_slot: i64,
    /// Unnamed constants seen (they are named `<function>.const<index>`).
    constants: usize,
    packed: HashMap<(usize, i64, i64, &'static str), [V<'c>; 4]>,
    dense: HashMap<(usize, Vec<i64>), V<'c>>,
    /// Row-panel weights of dense products, by (weight, matrix-vector).
    panels: HashMap<(usize, bool), V<'c>>,
}

/// A weight attribute's identity (attributes are uniqued by the context).
fn identity(value: Attribute) -> usize {
    value.to_raw().ptr as usize
}

impl<'c> Slots<'c> {
    pub(super) fn new(next_slot: i64) -> Self {
        Slots {
            next_slot,
            constants: 0,
            packed: HashMap::new(),
            dense: HashMap::new(),
            panels: HashMap::new(),
        }
    }

    /// The index the next unnamed constant gets.
    pub(super) fn constants(&mut self) -> usize {
        self.constants += 1;
        self.constants - 1
    }

    /// A plain dense array from the blob, seen as `shape`.
    pub(super) fn dense(
        &mut self,
        b: &Builder<'c>,
        blob: V<'c>,
        name: &str,
        value: Attribute<'c>,
        shape: &[i64],
    ) -> V<'c> {
        let cache = (identity(value), shape.to_vec());
        if let Some(view) = self.dense.get(&cache) {
            return *view;
        }
        let slot = self.next_slot;
        self.next_slot += 1;
        let view = b.value(bcr::dense(
            b.context, blob, name, slot, shape, value, b.location,
        ));
        self.dense.insert(cache, view);
        view
    }
}

impl<'c> Lowering<'c, '_> {
    /// The weights of a product with an `m x k` weight matrix, read as
    /// `reads` says: row panels
    /// when the op asks for the dense kernel (`kernel = "dense"`), BCRC
    /// arrays otherwise. A matrix-vector product gets its own copy (its
    /// panels are taller, its BCR values column panels); so does a narrow
    /// one whose BCR values are compact panels.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn weights(
        &mut self,
        b: &Builder<'c>,
        op: &OperationRef<'c, '_>,
        name: &str,
        value: Attribute<'c>,
        m: i64,
        k: i64,
        reads: Reads,
    ) -> Result<Weights<'c>, PassError> {
        let dense = grim_dialects::attr::string(op, grim::KERNEL_ATTR).as_deref()
            == Some(grim::KERNEL_DENSE);
        self.weights_on(b, op, name, value, m, k, reads, dense)
    }

    /// [`Lowering::weights`] with the kernel given (`dense`: row panels).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn weights_on(
        &mut self,
        b: &Builder<'c>,
        op: &OperationRef<'c, '_>,
        name: &str,
        value: Attribute<'c>,
        m: i64,
        k: i64,
        reads: Reads,
        dense: bool,
    ) -> Result<Weights<'c>, PassError> {
        let blob = self.blob();
        if !dense {
            return Ok(Weights::Bcr(
                self.packed_weight(b, op, name, value, m, k, reads)?,
            ));
        }
        let slots = &mut self.weights;
        let cache = (identity(value), reads == Reads::Vector);
        let w = match slots.panels.get(&cache) {
            Some(w) => *w,
            None => {
                let w = b.value(bcr::dense_panels(
                    self.context,
                    blob,
                    name,
                    slots.next_slot,
                    value,
                    m,
                    b.location,
                ));
                slots.next_slot += 1;
                slots.panels.insert(cache, w);
                w
            }
        };
        Ok(Weights::Dense(w))
    }

    /// The BCRC arrays of a product's weight (shared by products with the
    /// same weight, block and layout).
    #[allow(clippy::too_many_arguments)]
    fn packed_weight(
        &mut self,
        b: &Builder<'c>,
        op: &OperationRef<'c, '_>,
        name: &str,
        value: Attribute<'c>,
        m: i64,
        k: i64,
        reads: Reads,
    ) -> Result<(bcr::Packed<'c, 'c>, i64, i64), PassError> {
        let blob = self.blob();
        let block_rows =
            grim_dialects::attr::int(op, grim::BLOCK_ATTR).unwrap_or(self.pass.block.0);
        let block_cols =
            grim_dialects::attr::int(op, grim::BLOCK_COLS_ATTR).unwrap_or(self.pass.block.1);
        if !(1..=64).contains(&block_rows) || !(1..=64).contains(&block_cols) {
            return Err(op_error(
                op,
                format!("block size {block_rows}x{block_cols} out of range"),
            ));
        }
        let pinned = grim_dialects::attr::string(op, grim::ORDER_ATTR);
        let order = pinned.clone().unwrap_or_else(|| self.pass.order.clone());
        // Matrix-vector products read column panels (a strip's outputs stay
        // in registers); a narrow matrix product (a recurrent step over a
        // small batch) reads compact panels too, with one sum per column.
        let narrow = match reads {
            Reads::Vector => true,
            Reads::Columns(n) => n <= bcr::COMPACT_SPMM_MAX_N,
            Reads::Image => false,
        };
        let compact = narrow && compact_pays(self.isa, value, m, k, block_rows, block_cols);
        let layout = if compact {
            bcr::LAYOUT_COMPACT_PANELS
        } else if reads == Reads::Vector {
            bcr::LAYOUT_COL_PANELS
        } else {
            bcr::LAYOUT_ROW_MAJOR
        };
        let slots = &mut self.weights;
        let cache = (identity(value), block_rows, block_cols, layout);
        let packed = match slots.packed.get(&cache) {
            Some(values) => *values,
            None => {
                let layout = layout.to_string();
                let info = bcr::PackedInfo {
                    name: name.to_string(),
                    slot: slots.next_slot,
                    rows: m,
                    cols: k,
                    block_rows,
                    block_cols,
                    order,
                    layout,
                    kept: None,
                };
                slots.next_slot += bcr::PACKED_SLOTS;
                let results = b.insert(bcr::packed(self.context, blob, &info, value, b.location));
                if pinned.is_some() {
                    // A per-layer order from the LR file: bcr-reorder must keep it.
                    // SAFETY: the op was just inserted; only an attribute is added.
                    unsafe { OperationRefMut::from_raw(results.to_raw()) }
                        .set_attribute(bcr::PINNED_ATTR, Attribute::unit(self.context));
                }
                let values: Vec<V<'c>> = results.results().map(|r| erase(r.into())).collect();
                let values = [values[0], values[1], values[2], values[3]];
                slots.packed.insert(cache, values);
                values
            }
        };
        Ok((
            bcr::Packed {
                strips: packed[0],
                block_col: packed[1],
                masks: packed[2],
                values: packed[3],
            },
            block_rows,
            block_cols,
        ))
    }

    /// The row panels of a product's weight computed at run time
    /// (`bcr.pack_panels` into the product's first temporary): `W` is the
    /// tensor read as `[M, K]` (a conv's `[M, C, kh, kw]` is one), or with
    /// `transposed` the tensor is `[K, M]`; `scale` multiplies every value.
    pub(super) fn runtime_panels(
        &mut self,
        b: &Builder<'c>,
        op: &OperationRef<'c, '_>,
        weight: &super::values::Tensor<'c>,
        transposed: bool,
        scale: f32,
    ) -> Result<Weights<'c>, PassError> {
        let shape = weight.shape();
        let (rows, cols) = (shape[0], shape[1..].iter().product::<i64>());
        let (m, k) = if transposed {
            (cols, rows)
        } else {
            (rows, cols)
        };
        let floats = bcr::pack_panels_floats(m, k);
        let offset = self.temporary_offset(op, 0)?;
        let source = self.read(b, weight, &[rows, cols]);
        let panels = self.dynamic_view(b, offset, floats);
        let pack = bcr::pack_panels(self.context, source, panels, transposed, scale, b.location);
        Ok(Weights::Dense(b.value(pack)))
    }

    /// A per-layer schedule on the product (from the LR file: lanes,
    /// register tile, N tile, threads) becomes the bcr product's, which
    /// bcr-vectorize, bcr-lre and bcr-tile then keep.
    pub(super) fn copy_schedule(
        &self,
        source: &OperationRef<'c, '_>,
        product: OperationRef<'c, '_>,
    ) {
        // SAFETY: the product was just inserted; only attributes change.
        let mut product = unsafe { OperationRefMut::from_raw(product.to_raw()) };
        grim_dialects::schedule::Schedule::of(source)
            .lr_fields()
            .apply(self.context, &mut product);
        // A dense product's register tile is its weight's panel height: set
        // both, or, for a weight another product already fixed, take its.
        let given = grim_dialects::attr::int(&product, bcr::REGISTER_TILE_ATTR);
        let weights = product.operand(0).ok().and_then(bcr::defining_panels);
        if let (Some(rows), Some(weights), true) = (
            given,
            weights,
            product.name().as_string_ref().as_str() == Ok(bcr::GEMM),
        ) {
            match grim_dialects::attr::int(&weights, bcr::PANEL_ROWS_ATTR) {
                Some(fixed) => {
                    bcr::set_int(&mut product, self.context, bcr::REGISTER_TILE_ATTR, fixed)
                }
                None => {
                    // SAFETY: the weight op is alive; only an attribute is added.
                    let mut weights = unsafe { OperationRefMut::from_raw(weights.to_raw()) };
                    bcr::set_int(&mut weights, self.context, bcr::PANEL_ROWS_ATTR, rows);
                }
            }
        }
    }
}
