//! The matrix-vector kernels' output panel: sums kept in vector registers
//! over a whole strip (spmv) or all of K (dense), added to the output once.
//!
//! Shared by the column-panel spmv and the dense GEMM over a vector; both
//! cut their rows into panels whose height the lanes tile exactly, so the
//! sums need no masks.

use crate::builder::{Builder, V};

/// Lanes that tile a panel of `rows` exactly: the widest of `vector_width`,
/// 8, 4, 2, 1 that divides it.
pub(super) fn panel_lanes(vector_width: i64, rows: i64) -> i64 {
    [vector_width.max(1), 8, 4, 2, 1]
        .into_iter()
        .find(|l| *l <= rows && rows % l == 0)
        .unwrap_or(1)
}

/// A panel of `lanes * vectors` output rows whose sums were kept in vector
/// registers (matrix-vector products).
pub(super) struct Panel<'c> {
    /// The output vector.
    pub(super) c: V<'c>,
    /// A stack buffer of the panel's height, for a panel that `rows` cuts short.
    pub(super) sums: V<'c>,
    /// Rows of the output.
    pub(super) rows: i64,
    pub(super) lanes: i64,
    pub(super) vectors: i64,
}

impl<'c> Panel<'c> {
    /// Adds `results` (one per vector) into `c[row_base ..]`: with vector
    /// loads and stores, or row by row for a bottom panel that `rows` cuts short.
    pub(super) fn add(&self, b: &Builder<'c>, row_base: V<'c>, results: &[V<'c>]) {
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
