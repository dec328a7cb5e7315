//! A product's schedule, as one typed struct: the integer attributes the LR
//! file, graph-apply-lr and the bcr passes (bcr-vectorize, bcr-lre,
//! bcr-tile) set and the loop lowering reads. A field that is absent is the
//! passes' to choose; a field that is set is kept by every later pass.

use crate::{attr, bcr};
use melior::{
    ir::operation::{OperationLike, OperationRefMut},
    Context,
};

/// The schedule attributes of a product (`grim.gemm`/`grim.conv2d` at the
/// graph level, `bcr.spmm`/`spmv`/`gemm` at the bcr level).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Schedule {
    /// f32 lanes per vector (`vector_width`).
    pub vector_width: Option<i64>,
    /// Kept rows (BCR) or rows (dense) per register tile (`register_tile`).
    pub register_tile: Option<i64>,
    /// Vectors along N per register tile row (`vectors`).
    pub vectors: Option<i64>,
    /// Output columns per cache tile (`tile_n`).
    pub tile_n: Option<i64>,
    /// Rows of W per work item of the dense kernel (`tile_m`).
    pub tile_m: Option<i64>,
    /// Columns of W per cache block of the dense kernel (`tile_k`).
    pub tile_k: Option<i64>,
    /// The most threads the product's parallel loop may use (`threads`).
    pub threads: Option<i64>,
    /// The target's vector registers (`registers`, set by bcr-vectorize).
    pub registers: Option<i64>,
}

/// Every schedule field: its attribute name, and how to read and write it.
type Field = (
    &'static str,
    fn(&Schedule) -> Option<i64>,
    fn(&mut Schedule, i64),
);

/// The fields, in attribute-name order.
pub const FIELDS: [Field; 8] = [
    (
        bcr::REGISTER_TILE_ATTR,
        |s| s.register_tile,
        |s, v| s.register_tile = Some(v),
    ),
    (
        bcr::REGISTERS_ATTR,
        |s| s.registers,
        |s, v| s.registers = Some(v),
    ),
    (bcr::THREADS_ATTR, |s| s.threads, |s, v| s.threads = Some(v)),
    (bcr::TILE_K_ATTR, |s| s.tile_k, |s, v| s.tile_k = Some(v)),
    (bcr::TILE_M_ATTR, |s| s.tile_m, |s, v| s.tile_m = Some(v)),
    (bcr::TILE_N_ATTR, |s| s.tile_n, |s, v| s.tile_n = Some(v)),
    (
        bcr::VECTOR_WIDTH_ATTR,
        |s| s.vector_width,
        |s, v| s.vector_width = Some(v),
    ),
    (bcr::VECTORS_ATTR, |s| s.vectors, |s, v| s.vectors = Some(v)),
];

/// The fields an LR file's `schedule` may fix on a layer.
pub const LR_FIELDS: [&str; 4] = [
    bcr::VECTOR_WIDTH_ATTR,
    bcr::REGISTER_TILE_ATTR,
    bcr::TILE_N_ATTR,
    bcr::THREADS_ATTR,
];

impl Schedule {
    /// The schedule an op carries.
    pub fn of<'c: 'a, 'a>(op: &impl OperationLike<'c, 'a>) -> Schedule {
        let mut schedule = Schedule::default();
        for (name, _, set) in FIELDS {
            if let Some(value) = attr::int(op, name) {
                set(&mut schedule, value);
            }
        }
        schedule
    }

    /// Sets every field that is set here on `op` (the others are left as
    /// they are).
    pub fn apply<'c>(&self, context: &'c Context, op: &mut OperationRefMut<'c, '_>) {
        for (name, get, _) in FIELDS {
            if let Some(value) = get(self) {
                bcr::set_int(op, context, name, value);
            }
        }
    }

    /// Only the fields an LR file may fix (what a graph-level product
    /// hands to its bcr products).
    pub fn lr_fields(&self) -> Schedule {
        Schedule {
            vector_width: self.vector_width,
            register_tile: self.register_tile,
            tile_n: self.tile_n,
            threads: self.threads,
            ..Schedule::default()
        }
    }
}
