//! GotoBLAS-style packing of a dense GEMM's activation block, with the
//! patches of an image copied in on the way (implicit im2col).
//!
//! The register tile reads the packed block as one contiguous stream; the
//! buffer layout and the address computation live together here so the two
//! cannot drift apart.

use crate::builder::{Builder, V};
use crate::lower::im2col::Geometry;

/// An activation block `X[k0..k0 + depth, n0..]` copied into a 1-D buffer
/// the way GotoBLAS packs B: in chunks of `width` columns (one register
/// tile's columns), each chunk `depth` rows of `width` consecutive values,
/// the last chunk zero-padded. The register tile then reads one contiguous
/// stream of `width` values per column of W instead of rows `N * 4` bytes
/// apart (N = 3136: 196 cache lines apart, which map to 16 of the 64 L1
/// sets, and a new page every row).
#[derive(Clone, Copy)]
pub(super) struct PackedX<'c> {
    pub(super) k0: V<'c>,
    pub(super) n0: V<'c>,
    pub(super) depth: i64,
    pub(super) width: i64,
}

impl<'c> PackedX<'c> {
    /// Chunks of a block `columns` wide.
    fn chunks(&self, columns: i64) -> i64 {
        (columns + self.width - 1) / self.width
    }

    /// Index of `X[k, column]` in the buffer (`column` absolute).
    pub(super) fn address(&self, b: &Builder<'c>, k: V<'c>, column: V<'c>) -> V<'c> {
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
    pub(super) fn fill(
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
