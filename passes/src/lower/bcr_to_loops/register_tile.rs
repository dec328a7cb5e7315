//! The register tile (`RowTile`) the sparse walk and the dense GEMM end in:
//! a tile of output rows times register chunks of columns, loaded once,
//! accumulated with one FMA per weight and activation vector, stored once.
//!
//! The sparse walk and the dense GEMM only differ in which weights and
//! activations the tile reads ([`Walk`], [`PackedX`], an image shift), so
//! they share this code and get the same load-redundancy elimination.

use super::packing::PackedX;
use crate::builder::{Builder, V};
use melior::ir::Type;

/// Emits the products of a tile of kept rows of one block, over all of N.
///
/// For `tile` rows and chunks of `vectors` x `lanes` columns, the output
/// tile (`tile * vectors` accumulators) is loaded once, each kept column's
/// activation vectors are loaded once and reused by every row of the tile
/// (GRIM's register-level load-redundancy elimination), each weight is
/// broadcast once and reused by every vector, and the tile is stored once.
/// Columns left over run with one vector, then scalar; `lanes == 1` (spmv)
/// is all scalar.
pub(super) struct RowTile<'c> {
    /// Which rows, columns and weights the tile reads.
    pub(super) walk: Walk<'c>,
    pub(super) x: V<'c>,
    /// `Some`: `x` is a packed activation block ([`PackedX`]), not `X`.
    pub(super) packed: Option<PackedX<'c>>,
    /// `Some(shift)`: `x` is a flat image and the kept column list holds
    /// patch offsets: column `n` of kept patch row `k` is `x[k + shift + n]`.
    pub(super) image_shift: Option<V<'c>>,
    pub(super) c: V<'c>,
    /// `c` and `x` are matrices (spmm), not vectors (spmv).
    pub(super) matrix: bool,
    /// First output column of this walk.
    pub(super) n_base: V<'c>,
    /// Output columns in this walk.
    pub(super) n: i64,
    pub(super) lanes: i64,
    pub(super) vectors: i64,
}

/// The weights a [`RowTile`] multiplies.
#[derive(Clone, Copy)]
pub(super) enum Walk<'c> {
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
    pub(super) fn emit(&self, b: &Builder<'c>, first: V<'c>, tile: usize) {
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
