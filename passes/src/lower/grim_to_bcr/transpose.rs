//! The 2-D transposes around a product on `[N, K]` activations (and
//! `grim.transpose` itself): in square tiles, and in registers where the
//! target has vectors.

use crate::builder::{Builder, V};

/// Rows and columns per cache tile.
const TILE: i64 = 16;

/// `target[j, i] = source[i, j]` for a `[rows, cols]` source, in square
/// tiles: a row-by-row transpose writes a whole column of cache lines per
/// row, and with a power-of-two stride they collide in the same cache sets
/// (measured: two thirds of a 3072x768x128 gemm's time went to its untiled
/// output transpose).
///
/// With `lanes` of 4 or more dividing the tile, and a shape the tile
/// divides, each tile is `(TILE / lanes)^2` register transposes of
/// `lanes x lanes` ([`square`]); otherwise element by element. Measured on
/// the 1536x1536 gemm on a batch of 64 (Zen 3, AVX2, perf samples): the
/// scalar transposes in and out took 10% of the layer, the register ones 6%.
pub(super) fn transpose<'c>(
    b: &Builder<'c>,
    source: V<'c>,
    target: V<'c>,
    rows: i64,
    cols: i64,
    lanes: i64,
) {
    let in_registers = lanes >= 4 && TILE % lanes == 0 && rows % TILE == 0 && cols % TILE == 0;
    let (row_limit, col_limit) = (b.index(rows), b.index(cols));
    b.for_range(0, rows, TILE, &[], |b, i0, _| {
        b.for_range(0, cols, TILE, &[], |b, j0, _| {
            if in_registers {
                for di in (0..TILE).step_by(lanes as usize) {
                    for dj in (0..TILE).step_by(lanes as usize) {
                        let i = b.addi(i0, b.index(di));
                        let j = b.addi(j0, b.index(dj));
                        square(b, source, target, i, j, lanes as usize);
                    }
                }
                return vec![];
            }
            let tile = b.index(TILE);
            let i_end = b.minui(b.addi(i0, tile), row_limit);
            let j_end = b.minui(b.addi(j0, tile), col_limit);
            let one = b.index(1);
            b.for_loop(j0, j_end, one, &[], |b, j, _| {
                b.for_loop(i0, i_end, one, &[], |b, i, _| {
                    let x = b.load(source, &[i, j]);
                    b.store(x, target, &[j, i]);
                    vec![]
                });
                vec![]
            });
            vec![]
        });
        vec![]
    });
}

/// `target[j + c, i + r] = source[i + r, j + c]` for `r, c < lanes`: the
/// `lanes` rows loaded as vectors, then log2(lanes) rounds that zip row `r`
/// with row `r + lanes / 2` (low halves into row `2r`, high halves into row
/// `2r + 1`), which leaves row `c` holding column `c`; LLVM selects the
/// target's unpack and permute instructions for the zips.
fn square<'c>(b: &Builder<'c>, source: V<'c>, target: V<'c>, i: V<'c>, j: V<'c>, lanes: usize) {
    let half = lanes / 2;
    let zip = |first: usize| -> Vec<i64> {
        (0..half)
            .flat_map(|t| [(first + t) as i64, (lanes + first + t) as i64])
            .collect()
    };
    let (low, high) = (zip(0), zip(half));
    let mut rows: Vec<V<'c>> = (0..lanes)
        .map(|r| b.vload(source, &[b.addi(i, b.index(r as i64)), j], lanes as u64))
        .collect();
    let mut width = 1;
    while width < lanes {
        rows = (0..half)
            .flat_map(|r| {
                [
                    b.shuffle(rows[r], rows[r + half], &low),
                    b.shuffle(rows[r], rows[r + half], &high),
                ]
            })
            .collect();
        width *= 2;
    }
    for (c, row) in rows.into_iter().enumerate() {
        b.vstore(row, target, &[b.addi(j, b.index(c as i64)), i]);
    }
}
